//! Networks of cells joined by synapses with per-synapse delays (issue 14): cells of
//! [`super::Cell`], synapses of `neurodiff_models::synapse` from a (cell, compartment) to a
//! (cell, compartment) with their parameters (the first is the weight) and a delay, and current
//! drives (a weight times a signal per batch element); the forward run in `f32`/`f64` with a
//! batch, and the gradient of a loss on the recording with respect to every synapse parameter,
//! drive weight, channel and pool parameter and each branch's passive properties by the discrete
//! adjoint with nested checkpointing.
//!
//! ## The cells as one system
//! The cells' compartments are laid end to end in one node list ([`Network::merged`]): each
//! cell's root is joined to node 0 by an axial conductance of exactly zero, so the tree solve
//! of the whole network is each cell's own tree solve (a zero off-diagonal neither eliminates
//! nor substitutes anything) and one backward-Euler step is one tree solve per cell.
//!
//! ## One step (`t_k → t_{k+1}`, `dt`)
//! 1. Every synapse reads the presynaptic voltage `u = V_pre(t_{k−d})` of its delay `d` (a whole
//!    number of steps; before `t = 0` the voltage is `v_init`): `d = 0` reads the current state,
//!    `d ≥ 1` a ring buffer holding the last `D = max d` voltages of every presynaptic
//!    compartment, which then stores `V_pre(t_k)` in the slot just read for `d = D`.
//! 2. Its states advance by exponential Euler at `u` (Jaxley's order: synapse states, then
//!    currents with the new states): `s ← s∞(u) + (s − s∞(u)) e^{−dt r(u)}`.
//! 3. The backward-Euler system of the cells gets, at the postsynaptic compartment, the
//!    synapse's conductance `G = g(s)` on the diagonal and `G·E + I(u)` on the right-hand side
//!    (implicit in `V_post`), and every drive its current `w · signal_k` on the right-hand side;
//!    one tree solve; the gates at the new voltage (as for a single cell).
//!
//! So with `d = 0` a synapse sees the presynaptic voltage at the start of the step, as in
//! Jaxley; a delay of `d` steps shifts exactly that input by `d` steps. The synapse states start
//! at their steady state for the presynaptic `v_init`.
//!
//! ## Units
//! As for cells (mV, ms, µm, mS in the solver), synaptic conductances µS (× 1e-3 → mS) and
//! synaptic and drive currents nA (× 1e-3 → µA), delays ms.
//!
//! ## Gradients
//! The state of the network is the cells' state, the synapse states and the ring buffer; the
//! checkpoints of the reverse sweep ([`super::adjoint`]'s nested levels) hold all three. The
//! reverse step undoes in reverse order: the gates and the solve (the cell adjoint's own
//! pieces, with the synapses' conductances in the matrix), the assembly (channels, then
//! `∂L/∂G = μ_post (E − V'_post)`, `∂L/∂E = μ_post G`, `∂L/∂I = μ_post`), the buffer write
//! (its slot's adjoint goes to `V_pre(t_k)`), the state update and the buffer read, the local
//! derivatives on dual numbers through the synapse's own generic equations.

// Indices run over several parallel arrays (states, rates, duals) at once.
#![allow(clippy::needless_range_loop)]

use std::sync::Arc;

use neurodiff_models::synapse::SynapseKind;
use num_traits::Float;

use super::adjoint::{
    check_directions, check_levels, initial_back, membrane_back, new_voltage, seed_probe, segments,
    sweep, CaBack, Held, PassiveBack, Sweep, TraceLoss, MAX_DIRECTIONS,
};
use super::solve::{hines_solve, Scratch, State, Stepper};
use super::{Cell, CellError, Morphology, Protocol, Recording};
use crate::fused::dual::Dual;
use crate::Result;

type D = Dual<f64, MAX_DIRECTIONS>;

/// µS or nA to the solver's mS or µA.
const MILLI: f64 = 1e-3;

/// A synapse of a network.
#[derive(Debug, Clone, PartialEq)]
pub struct Synapse {
    /// Its equations.
    pub kind: SynapseKind,
    /// The presynaptic compartment: (cell, node of that cell).
    pub pre: (usize, usize),
    /// The postsynaptic compartment: (cell, node of that cell).
    pub post: (usize, usize),
    /// The delay, ms: a whole number of steps of the run's `dt`.
    pub delay: f64,
    /// Parameters `[batch][param]` flattened, in the order of the synapse's table (the weight
    /// first).
    pub params: Vec<f64>,
}

/// A current drive: `weight[b] · signal[b][k]` nA into one compartment during step `k`.
#[derive(Debug, Clone, PartialEq)]
pub struct Drive {
    /// The compartment: (cell, node of that cell).
    pub node: (usize, usize),
    /// The weight per batch element (a gradient is given for it).
    pub weight: Vec<f64>,
    /// The signal, one row for every batch element or one row each (at least one value per
    /// step), nA per unit weight; shared (drives of the same signal hold one copy).
    pub signal: Arc<Vec<Vec<f64>>>,
}

impl Drive {
    /// The signal of batch element `b` in step `k`.
    #[inline]
    pub fn signal_at(&self, b: usize, k: usize) -> f64 {
        self.signal[if self.signal.len() == 1 { 0 } else { b }][k]
    }
}

/// Cells, synapses and drives.
#[derive(Debug, Clone)]
pub struct Network {
    /// The cells, as given.
    pub cells: Vec<Cell>,
    /// All cells as one node list (see the [module documentation](self)).
    pub merged: Cell,
    /// The first merged node of each cell.
    pub offset: Vec<usize>,
    /// The synapses.
    pub synapses: Vec<Synapse>,
    /// The drives.
    pub drives: Vec<Drive>,
}

/// What a network records, beyond the cells' probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetProbe {
    /// The membrane potential of (cell, node), mV.
    V {
        /// The cell.
        cell: usize,
        /// Its node.
        node: usize,
    },
    /// Any probe of the merged cell ([`Network::merged`]: its nodes, its channel placements and
    /// the protocol's voltage clamps): a gate, a clamp current, a voltage.
    Merged(super::Probe),
    /// The conductance of a synapse, µS (0 for a current synapse).
    Synapse {
        /// The synapse's index.
        synapse: usize,
    },
}

impl Network {
    /// A network of `cells` (all with the same batch size), no synapses yet.
    pub fn new(cells: Vec<Cell>) -> Result<Self, CellError> {
        let first = cells
            .first()
            .ok_or_else(|| CellError::setting("cells", "a network needs at least one cell"))?;
        let batch = first.batch;
        if let Some(c) = cells.iter().position(|c| c.batch != batch) {
            return Err(CellError::setting(
                format!("cells[{c}]"),
                format!(
                    "batch {} differs from cell 0's batch {batch}",
                    cells[c].batch
                ),
            ));
        }
        let mut merged = Cell {
            morphology: Morphology::default(),
            parent: Vec::new(),
            kind: Vec::new(),
            area: Vec::new(),
            cap: Vec::new(),
            g_axial: Vec::new(),
            comps: Vec::new(),
            channels: Vec::new(),
            pools: Vec::new(),
            passive: Vec::new(),
            batch,
        };
        let mut offset = Vec::with_capacity(cells.len());
        for (ci, c) in cells.iter().enumerate() {
            let off = merged.parent.len();
            let boff = merged.morphology.branches.len();
            offset.push(off);
            for (i, &p) in c.parent.iter().enumerate() {
                if p == usize::MAX {
                    // A cell's root: joined to node 0 by a conductance of zero.
                    merged
                        .parent
                        .push(if off + i == 0 { usize::MAX } else { 0 });
                    merged.g_axial.push(0.0);
                } else {
                    merged.parent.push(p + off);
                    merged.g_axial.push(c.g_axial[i]);
                }
            }
            merged.kind.extend(c.kind.iter().map(|k| match *k {
                super::NodeKind::Compartment { branch, comp } => super::NodeKind::Compartment {
                    branch: branch + boff,
                    comp,
                },
                super::NodeKind::Junction { branch } => super::NodeKind::Junction {
                    branch: branch + boff,
                },
            }));
            merged.area.extend_from_slice(&c.area);
            merged.cap.extend_from_slice(&c.cap);
            merged.comps.extend(
                c.comps
                    .iter()
                    .map(|v| v.iter().map(|&n| n + off).collect::<Vec<_>>()),
            );
            for (i, b) in c.morphology.branches.iter().enumerate() {
                let mut b = b.clone();
                b.name = Some(format!("cell{ci}.{}", c.morphology.name(i)));
                b.parent = b.parent.map(|p| p + boff);
                merged.morphology.branches.push(b);
            }
            for pl in &c.channels {
                let mut pl = pl.clone();
                for n in &mut pl.nodes {
                    *n += off;
                }
                merged.channels.push(pl);
            }
            for pool in &c.pools {
                let mut pool = pool.clone();
                for n in &mut pool.nodes {
                    *n += off;
                }
                merged.pools.push(pool);
            }
            merged.passive.extend_from_slice(&c.passive);
        }
        Ok(Network {
            cells,
            merged,
            offset,
            synapses: Vec::new(),
            drives: Vec::new(),
        })
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.merged.batch
    }

    /// The merged node of (cell, node), or an error naming `what`.
    pub fn node(&self, what: &str, (cell, node): (usize, usize)) -> Result<usize, CellError> {
        let c = self.cells.get(cell).ok_or_else(|| {
            CellError::setting(
                what,
                format!("no cell {cell} (the network has {})", self.cells.len()),
            )
        })?;
        if node >= c.n_nodes() {
            return Err(CellError::setting(
                what,
                format!(
                    "cell {cell} has no compartment {node} (it has {})",
                    c.n_nodes()
                ),
            ));
        }
        Ok(self.offset[cell] + node)
    }

    /// Adds a synapse of `kind` from `pre` to `post` (each (cell, node)) with `delay` ms and
    /// parameters `params` (one row for every batch element or one per element; the weight
    /// first); returns its index.
    pub fn connect(
        &mut self,
        kind: SynapseKind,
        pre: (usize, usize),
        post: (usize, usize),
        delay: f64,
        params: &[Vec<f64>],
    ) -> Result<usize, CellError> {
        let j = self.synapses.len();
        let what = format!("synapses[{j}] ({})", kind.spec().name);
        self.node(&format!("{what}: pre"), pre)?;
        self.node(&format!("{what}: post"), post)?;
        if !(delay.is_finite() && delay >= 0.0) {
            return Err(CellError::setting(
                format!("{what}: delay"),
                format!("must be finite and ≥ 0 ms, got {delay} ms"),
            ));
        }
        let spec = kind.spec();
        let nb = self.batch();
        if params.len() != 1 && params.len() != nb {
            return Err(CellError::setting(
                &what,
                format!("{} parameter rows for a batch of {nb}", params.len()),
            ));
        }
        let mut flat = Vec::with_capacity(nb * spec.params.len());
        for b in 0..nb {
            let row = &params[if params.len() == 1 { 0 } else { b }];
            if row.len() != spec.params.len() {
                return Err(CellError::setting(
                    &what,
                    format!("{} parameters, expected {}", row.len(), spec.params.len()),
                ));
            }
            for (p, &v) in spec.params.iter().zip(row) {
                if !p.admits(v) {
                    return Err(CellError::setting(
                        format!("{what}: {}", p.name),
                        format!(
                            "{v} {} (batch element {b}) is outside [{}, {}]",
                            p.unit, p.lower, p.upper
                        ),
                    ));
                }
            }
            flat.extend_from_slice(row);
        }
        self.synapses.push(Synapse {
            kind,
            pre,
            post,
            delay,
            params: flat,
        });
        Ok(j)
    }

    /// [`Network::connect`] by synapse name.
    pub fn connect_named(
        &mut self,
        name: &str,
        pre: (usize, usize),
        post: (usize, usize),
        delay: f64,
        params: &[Vec<f64>],
    ) -> Result<usize, CellError> {
        let kind = SynapseKind::find(name).ok_or_else(|| {
            CellError::setting(
                format!("synapses[{}]", self.synapses.len()),
                format!(
                    "unknown synapse `{name}`; the synapses are: {}",
                    SynapseKind::names()
                ),
            )
        })?;
        self.connect(kind, pre, post, delay, params)
    }

    /// Adds a drive `weight[b] · signal[b][k]` nA into `node` ((cell, node); `weight` and
    /// `signal` with one entry for all batch elements or one each); returns its index.
    pub fn drive(
        &mut self,
        node: (usize, usize),
        weight: &[f64],
        signal: impl Into<Arc<Vec<Vec<f64>>>>,
    ) -> Result<usize, CellError> {
        let signal = signal.into();
        let i = self.drives.len();
        let what = format!("drives[{i}]");
        self.node(&what, node)?;
        let nb = self.batch();
        for (name, len) in [("weight", weight.len()), ("signal", signal.len())] {
            if len != 1 && len != nb {
                return Err(CellError::setting(
                    format!("{what}: {name}"),
                    format!("{len} rows for a batch of {nb} (give 1 or {nb})"),
                ));
            }
        }
        if let Some(w) = weight.iter().find(|w| !w.is_finite()) {
            return Err(CellError::setting(
                format!("{what}: weight"),
                format!("must be finite, got {w}"),
            ));
        }
        if signal.iter().flatten().any(|x| !x.is_finite()) {
            return Err(CellError::setting(
                format!("{what}: signal"),
                "holds a non-finite value",
            ));
        }
        let weight = (0..nb)
            .map(|b| weight[if weight.len() == 1 { 0 } else { b }])
            .collect();
        self.drives.push(Drive {
            node,
            weight,
            signal,
        });
        Ok(i)
    }
}

/// A delay of `delay` ms in steps of `dt` ms, if it is a whole number (≥ 0) of them (to a
/// relative 1e-6).
pub(crate) fn delay_steps(delay: f64, dt: f64) -> Option<usize> {
    let steps = delay / dt;
    let d = steps.round();
    (delay >= 0.0 && (steps - d).abs() <= 1e-6 * steps.max(1.0)).then_some(d as usize)
}

/// What is wrong with a delay [`delay_steps`] refuses.
pub(crate) fn delay_error(delay: f64, dt: f64) -> String {
    format!(
        "{delay} ms is not a whole number of steps of dt = {dt} ms (0, {dt}, {} …)",
        2.0 * dt
    )
}

/// One synapse in the stepper's type.
pub(crate) struct Sy<T> {
    pub(crate) kind: SynapseKind,
    pub(crate) ns: usize,
    pub(crate) np: usize,
    params: Vec<T>,
    rev: Vec<T>,
    pub(crate) pre: usize,
    pub(crate) post: usize,
    pub(crate) delay: usize,
    /// Its presynaptic compartment's slot in the ring buffer (`d ≥ 1`).
    pub(crate) slot: usize,
}

/// The state of a network: the cells' state, the synapse states (per synapse
/// `[b * n_states + i]`) and the ring buffer `[slot][presynaptic compartment][batch]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NetState<T> {
    cell: State<T>,
    syn: Vec<Vec<T>>,
    hist: Vec<T>,
}

impl<T> NetState<T> {
    fn size(&self) -> usize {
        self.cell.v.len()
            + self.cell.gates.iter().map(Vec::len).sum::<usize>()
            + self.syn.iter().map(Vec::len).sum::<usize>()
            + self.hist.len()
    }
}

/// The network's step: the cells' [`Stepper`] and the synapses and drives.
pub(crate) struct NetStepper<'a, T> {
    inner: Stepper<'a, T>,
    net: &'a Network,
    pub(crate) syn: Vec<Sy<T>>,
    /// The presynaptic compartments with a delayed synapse.
    pub(crate) pre_nodes: Vec<usize>,
    /// The ring buffer's length (the longest delay, steps).
    pub(crate) depth: usize,
    /// Per drive: its merged node.
    pub(crate) drive_node: Vec<usize>,
    /// The probes: cell probes (of `inner`) first, then synapse probes.
    syn_probes: Vec<usize>,
    /// Scratch: the presynaptic voltage each synapse read this step, `[j][b]`.
    u: Vec<T>,
}

fn c<T: Float + 'static>(x: f64) -> T {
    T::from(x).expect("f64 to float")
}

/// Splits network probes into the merged cell's protocol probes and synapse probes.
fn split_probes(
    net: &Network,
    probes: &[NetProbe],
) -> Result<(Vec<super::Probe>, Vec<usize>), CellError> {
    let mut cell = Vec::new();
    let mut syn = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        match *p {
            NetProbe::V { cell: ci, node } => {
                let n = net.node(&format!("record[{i}]"), (ci, node))?;
                cell.push(super::Probe::V { node: n });
            }
            NetProbe::Merged(p) => cell.push(p),
            NetProbe::Synapse { synapse } => {
                if synapse >= net.synapses.len() {
                    return Err(CellError::setting(
                        format!("record[{i}]"),
                        format!(
                            "no synapse {synapse} (the network has {})",
                            net.synapses.len()
                        ),
                    ));
                }
                syn.push(synapse);
            }
        }
    }
    Ok((cell, syn))
}

/// The protocol of the merged cell: `protocol`'s settings with the cell probes of `probes`
/// (voltage probes first in the recording, then the synapse probes, each in the order given).
pub fn net_protocol(
    net: &Network,
    protocol: &Protocol,
    probes: &[NetProbe],
) -> Result<(Protocol, Vec<usize>), CellError> {
    let (cp, sp) = split_probes(net, probes)?;
    let mut p = protocol.clone();
    p.probes = cp;
    Ok((p, sp))
}

impl<'a, T: Float + 'static> NetStepper<'a, T> {
    pub(crate) fn new(
        net: &'a Network,
        protocol: &'a Protocol,
        syn_probes: Vec<usize>,
    ) -> Result<Self> {
        let inner = Stepper::<T>::new(&net.merged, protocol)?;
        let nb = net.batch();
        let dt = protocol.dt;
        let mut pre_nodes: Vec<usize> = Vec::new();
        let mut syn = Vec::with_capacity(net.synapses.len());
        let mut depth = 0;
        for (j, s) in net.synapses.iter().enumerate() {
            let what = format!("synapses[{j}] ({})", s.kind.spec().name);
            let pre = net.node(&format!("{what}: pre"), s.pre)?;
            let post = net.node(&format!("{what}: post"), s.post)?;
            let d = delay_steps(s.delay, dt).ok_or_else(|| {
                CellError::setting(format!("{what}: delay"), delay_error(s.delay, dt))
            })?;
            depth = depth.max(d);
            let slot = if d > 0 {
                match pre_nodes.iter().position(|&n| n == pre) {
                    Some(q) => q,
                    None => {
                        pre_nodes.push(pre);
                        pre_nodes.len() - 1
                    }
                }
            } else {
                0
            };
            let spec = s.kind.spec();
            let np = spec.params.len();
            let params: Vec<T> = s.params.iter().map(|&x| c(x)).collect();
            let rev = (0..nb)
                .map(|b| s.kind.reversal(&params[b * np..(b + 1) * np]))
                .collect();
            syn.push(Sy {
                kind: s.kind,
                ns: spec.states.len(),
                np,
                params,
                rev,
                pre,
                post,
                delay: d,
                slot,
            });
        }
        let mut drive_node = Vec::new();
        for (i, dr) in net.drives.iter().enumerate() {
            drive_node.push(net.node(&format!("drives[{i}]"), dr.node)?);
            if let Some(b) = dr.signal.iter().position(|s| s.len() < protocol.steps) {
                return Err(CellError::setting(
                    format!("drives[{i}]: signal"),
                    format!(
                        "row {b} has {} samples for {} steps",
                        dr.signal[b].len(),
                        protocol.steps
                    ),
                )
                .into());
            }
        }
        Ok(NetStepper {
            inner,
            net,
            u: vec![T::zero(); syn.len() * nb],
            syn,
            pre_nodes,
            depth,
            drive_node,
            syn_probes,
        })
    }

    fn init(&self) -> NetState<T> {
        let nb = self.inner.nb;
        let v0: T = c(self.inner.protocol.v_init);
        let syn = self
            .syn
            .iter()
            .map(|s| {
                let mut x = vec![T::zero(); nb * s.ns];
                let (mut inf, mut rate) = (vec![T::zero(); s.ns], vec![T::zero(); s.ns]);
                for b in 0..nb {
                    s.kind
                        .kinetics(v0, &s.params[b * s.np..(b + 1) * s.np], &mut inf, &mut rate);
                    x[b * s.ns..(b + 1) * s.ns].copy_from_slice(&inf);
                }
                x
            })
            .collect();
        NetState {
            cell: self.inner.init(),
            syn,
            hist: vec![v0; self.depth * self.pre_nodes.len() * nb],
        }
    }

    /// The ring-buffer slot synapse `s` reads in step `k` (`d ≥ 1`).
    #[inline]
    fn read_slot(&self, k: usize, d: usize) -> usize {
        (k % self.depth + self.depth - d) % self.depth
    }

    /// Steps 1 and 2 of the module documentation: reads each synapse's `u` (into
    /// [`NetStepper::u`]) from the voltages `v` or the buffer `hist` and advances the synapse
    /// states `syn` at it.
    fn synapses_forward(&mut self, k: usize, v: &[T], hist: &[T], syn: &mut [Vec<T>]) {
        let nb = self.inner.nb;
        let npre = self.pre_nodes.len();
        let dt = self.inner.dt;
        let mut inf = [T::zero(); MAX_DIRECTIONS];
        let mut rate = [T::zero(); MAX_DIRECTIONS];
        for (j, s) in self.syn.iter().enumerate() {
            let base = if s.delay > 0 {
                Some((self.read_slot(k, s.delay) * npre + s.slot) * nb)
            } else {
                None
            };
            for b in 0..nb {
                let u = match base {
                    Some(at) => hist[at + b],
                    None => v[s.pre * nb + b],
                };
                self.u[j * nb + b] = u;
                if s.ns == 0 {
                    continue;
                }
                let p = &s.params[b * s.np..(b + 1) * s.np];
                s.kind.kinetics(u, p, &mut inf[..s.ns], &mut rate[..s.ns]);
                let x = &mut syn[j][b * s.ns..(b + 1) * s.ns];
                for i in 0..s.ns {
                    x[i] = inf[i] + (x[i] - inf[i]) * (-dt * rate[i]).exp();
                }
            }
        }
    }

    /// The buffer write of step `k`: `V_pre(t_k)` into slot `k mod D`.
    fn write_hist(&self, k: usize, v: &[T], hist: &mut [T]) {
        let nb = self.inner.nb;
        let npre = self.pre_nodes.len();
        if self.depth > 0 {
            let w = k % self.depth;
            for (q, &n) in self.pre_nodes.iter().enumerate() {
                let at = (w * npre + q) * nb;
                hist[at..at + nb].copy_from_slice(&v[n * nb..(n + 1) * nb]);
            }
        }
    }

    /// Adds the synapses' and drives' terms of step `k` to the system.
    fn add_terms(&self, k: usize, syn: &[Vec<T>], d: &mut [T], rhs: &mut [T]) {
        let nb = self.inner.nb;
        let milli: T = c(MILLI);
        for (j, s) in self.syn.iter().enumerate() {
            for b in 0..nb {
                let p = &s.params[b * s.np..(b + 1) * s.np];
                let idx = s.post * nb + b;
                let g = s.kind.conductance(&syn[j][b * s.ns..(b + 1) * s.ns], p) * milli;
                let i = s.kind.current(self.u[j * nb + b], p) * milli;
                d[idx] = d[idx] + g;
                rhs[idx] = rhs[idx] + g * s.rev[b] + i;
            }
        }
        for (dr, &n) in self.net.drives.iter().zip(&self.drive_node) {
            for b in 0..nb {
                let i: T = c(dr.weight[b] * dr.signal_at(b, k) * MILLI);
                rhs[n * nb + b] = rhs[n * nb + b] + i;
            }
        }
    }

    fn step(&mut self, k: usize, st: &mut NetState<T>, s: &mut Scratch<T>) {
        self.synapses_forward(k, &st.cell.v, &st.hist, &mut st.syn);
        self.write_hist(k, &st.cell.v, &mut st.hist);
        let this = &*self;
        let syn = &st.syn;
        this.inner
            .step_with(k, &mut st.cell, s, |d, rhs| this.add_terms(k, syn, d, rhs));
    }

    fn record(&self, sample: usize, st: &NetState<T>, data: &mut Vec<f64>) {
        let nb = self.inner.nb;
        self.inner.record(sample, &st.cell, data);
        for &j in &self.syn_probes {
            let s = &self.syn[j];
            for b in 0..nb {
                let g = s.kind.conductance(
                    &st.syn[j][b * s.ns..(b + 1) * s.ns],
                    &s.params[b * s.np..(b + 1) * s.np],
                );
                data.push(g.to_f64().unwrap_or(f64::NAN));
            }
        }
    }

    fn check_finite(&self, st: &NetState<T>, step: usize, prefix: &str) -> Option<CellError> {
        if let Some(e) = self.inner.check_finite(&st.cell, step, prefix) {
            return Some(e);
        }
        let nb = self.inner.nb;
        for (j, (s, x)) in self.syn.iter().zip(&st.syn).enumerate() {
            if let Some(i) = x.iter().position(|v| !v.is_finite()) {
                let spec = s.kind.spec();
                return Some(CellError::Diverged {
                    step,
                    time: step as f64 * self.inner.protocol.dt,
                    var: format!(
                        "{prefix}synapse {j} {}.{}",
                        spec.name,
                        spec.states[i % s.ns].name
                    ),
                    node: s.post,
                    location: self.net.merged.location(s.post),
                    batch: (i / s.ns) % nb,
                    value: x[i].to_f64().unwrap_or(f64::NAN),
                });
            }
        }
        None
    }
}

/// Runs the network for `protocol` (its `dt`, `steps`, `celsius`, `v_init` and clamps on
/// merged nodes; its own probes are replaced by `probes`) in number type `T`.
pub fn simulate<T: Float + 'static>(
    net: &Network,
    protocol: &Protocol,
    probes: &[NetProbe],
) -> Result<Recording> {
    let (p, sp) = net_protocol(net, protocol, probes)?;
    let n_probes = probes.len();
    let mut st = NetStepper::<T>::new(net, &p, sp)?;
    let nb = net.batch();
    let mut data = super::solve::recording_buffer((p.steps + 1) * n_probes * nb);
    let mut state = st.init();
    let mut scratch = st.inner.scratch();
    st.record(0, &state, &mut data);
    for k in 0..p.steps {
        st.step(k, &mut state, &mut scratch);
        if let Some(e) = st.check_finite(&state, k + 1, "") {
            return Err(e.into());
        }
        st.record(k + 1, &state, &mut data);
    }
    Ok(recording_in_probe_order(data, probes, nb, p.dt))
}

/// Reorders a recording from (cell probes, synapse probes) to the order of `probes`.
pub(crate) fn recording_in_probe_order(
    data: Vec<f64>,
    probes: &[NetProbe],
    nb: usize,
    dt: f64,
) -> Recording {
    let order = probe_order(probes);
    let np = probes.len();
    let mut out = vec![0.0; data.len()];
    for (k, row) in data.chunks(np * nb.max(1)).enumerate() {
        for (internal, &given) in order.iter().enumerate() {
            let dst = k * np * nb + given * nb;
            out[dst..dst + nb].copy_from_slice(&row[internal * nb..(internal + 1) * nb]);
        }
    }
    Recording {
        data: out,
        n_probes: np,
        batch: nb,
        dt,
    }
}

/// For each internal probe position (cell probes, then synapse probes), its position in
/// `probes`.
pub(crate) fn probe_order(probes: &[NetProbe]) -> Vec<usize> {
    let v = probes
        .iter()
        .enumerate()
        .filter(|(_, p)| !matches!(p, NetProbe::Synapse { .. }))
        .map(|(i, _)| i);
    let s = probes
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p, NetProbe::Synapse { .. }))
        .map(|(i, _)| i);
    v.chain(s).collect()
}

/// A network's loss and its gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct NetGrad {
    /// The forward run's recording (in the order of the probes given).
    pub recording: Recording,
    /// The loss per batch element.
    pub loss: Vec<f64>,
    /// Per channel placement of [`Network::merged`], `∂L/∂params` `[batch][param]`.
    pub channels: Vec<Vec<f64>>,
    /// Per calcium pool of [`Network::merged`], `∂L/∂params` `[batch][param]`.
    pub pools: Vec<Vec<f64>>,
    /// Per synapse, `∂L/∂params` `[batch][param]` like [`Synapse::params`].
    pub synapses: Vec<Vec<f64>>,
    /// Per drive, `∂L/∂weight` per batch element.
    pub drives: Vec<Vec<f64>>,
    /// Per branch of [`Network::merged`], `∂L/∂(C_m, R_a, radius)` `[batch][3]` (µF/cm², Ω·cm,
    /// µm), as `CellGrad::passive` (empty from the tensor engine).
    pub passive: Vec<Vec<f64>>,
    /// The most network states held at once.
    pub peak_states: usize,
    /// The numbers in one state (voltages, gates, synapse states, ring buffer).
    pub state_size: usize,
}

/// Runs the network in `f64` for `protocol` recording `probes`, evaluates `loss` on the
/// recording and returns the loss with its gradient with respect to every channel parameter,
/// synapse parameter and drive weight, with checkpoint `levels`.
pub fn value_and_grad(
    net: &Network,
    protocol: &Protocol,
    probes: &[NetProbe],
    levels: &[usize],
    loss: impl FnOnce(&Recording) -> Result<TraceLoss>,
) -> Result<NetGrad> {
    check_levels(levels)?;
    let (p, sp) = net_protocol(net, protocol, probes)?;
    let mut st = NetStepper::<f64>::new(net, &p, sp)?;
    check_directions(&st.inner)?;
    for (j, s) in st.syn.iter().enumerate() {
        if s.ns + s.np + 1 > MAX_DIRECTIONS {
            return Err(CellError::setting(
                format!("synapses[{j}]"),
                format!(
                    "{} states and {} parameters: the adjoint handles at most {} together",
                    s.ns,
                    s.np,
                    MAX_DIRECTIONS - 1
                ),
            )
            .into());
        }
    }
    let steps = p.steps;
    let nb = net.batch();
    let n_probes = probes.len();
    let seg = segments(levels);
    let mut held = Held::default();
    let mut data = super::solve::recording_buffer((steps + 1) * n_probes * nb);
    let mut state = st.init();
    let mut scratch = st.inner.scratch();
    let mut top = Vec::new();
    st.record(0, &state, &mut data);
    for k in 0..steps {
        if k % seg[0] == 0 {
            top.push(state.clone());
            held.add(1);
        }
        st.step(k, &mut state, &mut scratch);
        if let Some(e) = st.check_finite(&state, k + 1, "") {
            return Err(e.into());
        }
        st.record(k + 1, &state, &mut data);
    }
    let recording = recording_in_probe_order(data, probes, nb, p.dt);
    let TraceLoss { loss, grad: seeds } = loss(&recording)?;
    if loss.len() != nb || seeds.len() != recording.data.len() {
        return Err(CellError::setting(
            "loss",
            format!(
                "the loss gave {} values and {} gradient entries for a batch of {nb} and {} \
                 recorded values",
                loss.len(),
                seeds.len(),
                recording.data.len()
            ),
        )
        .into());
    }
    // Seeds in the internal order (cell probes, then synapse probes).
    let order = probe_order(probes);
    let mut internal = vec![0.0; seeds.len()];
    for k in 0..=steps {
        for (i, &g) in order.iter().enumerate() {
            let (src, dst) = ((k * n_probes + g) * nb, (k * n_probes + i) * nb);
            internal[dst..dst + nb].copy_from_slice(&seeds[src..src + nb]);
        }
    }
    let state_size = state.size();
    let syn_after = state.syn.clone();
    let lam = NetState {
        cell: State {
            v: vec![0.0; state.cell.v.len()],
            gates: state
                .cell
                .gates
                .iter()
                .map(|g| vec![0.0; g.len()])
                .collect(),
            cai: vec![0.0; state.cell.cai.len()],
        },
        syn: state.syn.iter().map(|g| vec![0.0; g.len()]).collect(),
        hist: vec![0.0; state.hist.len()],
    };
    let mut rev = NetReverse {
        syn_after,
        grad_ch: net
            .merged
            .channels
            .iter()
            .map(|p| vec![0.0; p.params.len()])
            .collect(),
        grad_syn: net
            .synapses
            .iter()
            .map(|s| vec![0.0; s.params.len()])
            .collect(),
        grad_drive: net.drives.iter().map(|_| vec![0.0; nb]).collect(),
        pas: PassiveBack::new(lam.cell.v.len()),
        d0: vec![0.0; lam.cell.v.len()],
        vn: vec![0.0; lam.cell.v.len()],
        mu: vec![0.0; lam.cell.v.len()],
        ca: CaBack::new(&st.inner),
        lam_u: vec![0.0; st.u.len()],
        lam,
        seeds: &internal,
        scratch: st.inner.scratch(),
        st: &mut st,
    };
    rev.seed(steps, &state);
    drop(state);
    sweep(&mut rev, &seg, steps, top, &mut held)?;
    rev.initial();
    Ok(NetGrad {
        recording,
        loss,
        channels: rev.grad_ch,
        pools: rev.ca.grad,
        synapses: rev.grad_syn,
        drives: rev.grad_drive,
        passive: rev.pas.grad(&net.merged, protocol),
        peak_states: held.peak,
        state_size,
    })
}

/// The network's reverse sweep.
struct NetReverse<'s, 'a> {
    st: &'s mut NetStepper<'a, f64>,
    seeds: &'s [f64],
    lam: NetState<f64>,
    lam_u: Vec<f64>,
    grad_ch: Vec<Vec<f64>>,
    grad_syn: Vec<Vec<f64>>,
    grad_drive: Vec<Vec<f64>>,
    pas: PassiveBack,
    d0: Vec<f64>,
    /// The new voltage of a Crank–Nicolson step.
    vn: Vec<f64>,
    mu: Vec<f64>,
    ca: CaBack,
    scratch: Scratch<f64>,
    /// Scratch: the synapse states after the update of the step being reversed.
    syn_after: Vec<Vec<f64>>,
}

impl Sweep for NetReverse<'_, '_> {
    type S = NetState<f64>;

    fn forward(&mut self, k: usize, s: &mut NetState<f64>) {
        self.st.step(k, s, &mut self.scratch);
    }

    fn backward(&mut self, k: usize, s: &NetState<f64>) -> Result<()> {
        self.step_back(k, s)?;
        self.seed(k, s);
        Ok(())
    }
}

impl NetReverse<'_, '_> {
    /// Adds `∂L/∂(sample k)` to the adjoint of the state `s` at sample `k`.
    fn seed(&mut self, k: usize, s: &NetState<f64>) {
        let st = &*self.st;
        let nb = st.inner.nb;
        let ncp = st.inner.protocol.probes.len();
        let np = ncp + st.syn_probes.len();
        let row = &self.seeds[k * np * nb..(k + 1) * np * nb];
        for p in 0..ncp {
            seed_probe(
                &st.inner,
                p,
                k,
                &row[p * nb..(p + 1) * nb],
                &mut self.lam.cell,
            );
        }
        let mut x = [D::cst(0.0); MAX_DIRECTIONS];
        for (i, &j) in st.syn_probes.iter().enumerate() {
            let sy = &st.syn[j];
            let (ns, npar) = (sy.ns, sy.np);
            for b in 0..nb {
                let g = row[(ncp + i) * nb + b];
                if g == 0.0 {
                    continue;
                }
                for q in 0..ns {
                    x[q] = D::var(s.syn[j][b * ns + q], q);
                }
                for q in 0..npar {
                    x[ns + q] = D::var(sy.params[b * npar + q], ns + q);
                }
                let gd = sy.kind.conductance(&x[..ns], &x[ns..ns + npar]);
                for q in 0..ns {
                    self.lam.syn[j][b * ns + q] += g * gd.eps[q];
                }
                for q in 0..npar {
                    self.grad_syn[j][b * npar + q] += g * gd.eps[ns + q];
                }
            }
        }
    }

    /// Reverses step `k` from its start state `s` (see the [module documentation](self)).
    fn step_back(&mut self, k: usize, s: &NetState<f64>) -> Result<()> {
        // Recompute the step: synapse update (on a copy), system, solution.
        let mut after = std::mem::take(&mut self.syn_after);
        for (a, x) in after.iter_mut().zip(&s.syn) {
            a.copy_from_slice(x);
        }
        self.st.synapses_forward(k, &s.cell.v, &s.hist, &mut after);
        let st = &*self.st;
        let nb = st.inner.nb;
        let parent = &st.net.merged.parent;
        let sc = &mut self.scratch;
        st.inner.assemble(k, &s.cell, &mut sc.d, &mut sc.rhs);
        st.add_terms(k, &after, &mut sc.d, &mut sc.rhs);
        self.d0.copy_from_slice(&sc.d);
        hines_solve(parent, &st.inner.a, &mut sc.d, &mut sc.rhs, nb);
        let sol = &sc.rhs;
        let vn = new_voltage(&st.inner, &s.cell, sol, &mut self.vn);
        membrane_back(
            &st.inner,
            &s.cell,
            vn,
            sol,
            &mut self.d0,
            &mut self.mu,
            &mut self.ca,
            &mut self.lam.cell,
            &mut self.grad_ch,
            &mut self.pas.g_area,
        );
        self.pas.step(parent, nb, &self.mu, &s.cell.v, sol);
        let mu = &self.mu;

        // Synapses in the assembly: G = g(s', p)·1e-3 on the diagonal, G·E + I(u, p)·1e-3 on
        // the right-hand side.
        self.lam_u.iter_mut().for_each(|x| *x = 0.0);
        let mut x = [D::cst(0.0); MAX_DIRECTIONS];
        for (j, sy) in st.syn.iter().enumerate() {
            let (ns, np) = (sy.ns, sy.np);
            for b in 0..nb {
                let idx = sy.post * nb + b;
                let m = mu[idx];
                if m == 0.0 {
                    continue;
                }
                for q in 0..ns {
                    x[q] = D::var(after[j][b * ns + q], q);
                }
                for q in 0..np {
                    x[ns + q] = D::var(sy.params[b * np + q], ns + q);
                }
                let u = D::var(st.u[j * nb + b], ns + np);
                let (xs, xp) = x.split_at(ns);
                let g = sy.kind.conductance(xs, &xp[..np]);
                let e = sy.kind.reversal(&xp[..np]);
                let i = sy.kind.current(u, &xp[..np]);
                let dl_dg = m * (e.re - sol[idx]) * MILLI;
                let dl_de = m * g.re * MILLI;
                let dl_di = m * MILLI;
                for q in 0..ns {
                    self.lam.syn[j][b * ns + q] += dl_dg * g.eps[q];
                }
                let gr = &mut self.grad_syn[j][b * np..(b + 1) * np];
                for (q, gq) in gr.iter_mut().enumerate() {
                    *gq += dl_dg * g.eps[ns + q] + dl_de * e.eps[ns + q] + dl_di * i.eps[ns + q];
                }
                self.lam_u[j * nb + b] += dl_di * i.eps[ns + np];
            }
        }
        for ((dr, &n), gd) in st
            .net
            .drives
            .iter()
            .zip(&st.drive_node)
            .zip(&mut self.grad_drive)
        {
            for b in 0..nb {
                gd[b] += mu[n * nb + b] * dr.signal_at(b, k) * MILLI;
            }
        }

        // The buffer write: slot k mod D held V_pre(t_k).
        let npre = st.pre_nodes.len();
        if st.depth > 0 {
            let w = k % st.depth;
            for (q, &n) in st.pre_nodes.iter().enumerate() {
                let at = (w * npre + q) * nb;
                for b in 0..nb {
                    self.lam.cell.v[n * nb + b] += self.lam.hist[at + b];
                    self.lam.hist[at + b] = 0.0;
                }
            }
        }

        // The synapse state update s' = s∞(u) + (s − s∞(u)) e^{−dt r(u)}, then the read of u.
        let dt = D::cst(st.inner.dt);
        let (mut inf, mut rate) = ([D::cst(0.0); MAX_DIRECTIONS], [D::cst(0.0); MAX_DIRECTIONS]);
        for (j, sy) in st.syn.iter().enumerate() {
            let (ns, np) = (sy.ns, sy.np);
            for b in 0..nb {
                let mut lu = self.lam_u[j * nb + b];
                if ns > 0 {
                    for q in 0..np {
                        x[q] = D::var(sy.params[b * np + q], q);
                    }
                    let u = D::var(st.u[j * nb + b], np);
                    sy.kind
                        .kinetics(u, &x[..np], &mut inf[..ns], &mut rate[..ns]);
                    for q in 0..ns {
                        let lx = self.lam.syn[j][b * ns + q];
                        if lx == 0.0 {
                            continue;
                        }
                        let s0 = D::cst(s.syn[j][b * ns + q]);
                        let e = (-dt * rate[q]).exp();
                        let sn = inf[q] + (s0 - inf[q]) * e;
                        lu += lx * sn.eps[np];
                        let gr = &mut self.grad_syn[j][b * np..(b + 1) * np];
                        for (qq, gq) in gr.iter_mut().enumerate() {
                            *gq += lx * sn.eps[qq];
                        }
                        self.lam.syn[j][b * ns + q] = lx * e.re;
                    }
                }
                if lu != 0.0 {
                    if sy.delay > 0 {
                        let at = (st.read_slot(k, sy.delay) * npre + sy.slot) * nb;
                        self.lam.hist[at + b] += lu;
                    } else {
                        self.lam.cell.v[sy.pre * nb + b] += lu;
                    }
                }
            }
        }
        self.syn_after = after;
        if let Some(e) = st.check_finite(&self.lam, k, "adjoint of ") {
            return Err(e.into());
        }
        Ok(())
    }

    /// The initial gates' and synapse states' steady states at `v_init`.
    fn initial(&mut self) {
        let st = &*self.st;
        initial_back(&st.inner, &self.lam.cell, &mut self.grad_ch);
        let nb = st.inner.nb;
        let v0 = D::cst(st.inner.protocol.v_init);
        let (mut inf, mut rate) = ([D::cst(0.0); MAX_DIRECTIONS], [D::cst(0.0); MAX_DIRECTIONS]);
        let mut x = [D::cst(0.0); MAX_DIRECTIONS];
        for (j, sy) in st.syn.iter().enumerate() {
            let (ns, np) = (sy.ns, sy.np);
            if ns == 0 {
                continue;
            }
            for b in 0..nb {
                for q in 0..np {
                    x[q] = D::var(sy.params[b * np + q], q);
                }
                sy.kind
                    .kinetics(v0, &x[..np], &mut inf[..ns], &mut rate[..ns]);
                for q in 0..ns {
                    let lx = self.lam.syn[j][b * ns + q];
                    for qq in 0..np {
                        self.grad_syn[j][b * np + qq] += lx * inf[q].eps[qq];
                    }
                }
            }
        }
    }
}
