//! The cable solver: backward Euler (or Crank–Nicolson, [`Scheme`]) for the voltage through a
//! tree (Hines) solve, O(nodes) per step, and exponential Euler for the gates, on a batch of
//! parameter sets and stimuli (current clamps, voltage clamps), generic over the number type
//! (`f32` or `f64`). See the [module documentation](super) for the scheme.

use neurodiff_models::channel::ca_dynamics::{self, CAI_DEFAULT};
use neurodiff_models::channel::{Calcium, ChannelKind};
use num_traits::Float;

use super::{lanes, Cell, CellError};

/// A current clamp's time course, nA.
#[derive(Debug, Clone, PartialEq)]
pub enum Waveform {
    /// `amp` nA from `delay` for `dur` ms (NEURON's `IClamp`: on while
    /// `delay ≤ t + dt/2 < delay + dur`).
    Step {
        /// Amplitude, nA.
        amp: f64,
        /// Onset, ms.
        delay: f64,
        /// Duration, ms.
        dur: f64,
    },
    /// One value per step, nA: `values[k]` flows during step `k` (from `k dt` to `(k+1) dt`).
    Samples(Vec<f64>),
}

impl Waveform {
    /// The current during step `k` of length `dt`, nA.
    #[inline]
    pub fn at(&self, k: usize, dt: f64) -> f64 {
        match self {
            Waveform::Step { amp, delay, dur } => {
                let t = (k as f64 + 0.5) * dt;
                if t >= *delay && t < delay + dur {
                    *amp
                } else {
                    0.0
                }
            }
            Waveform::Samples(v) => v[k],
        }
    }
}

/// A current clamp on one compartment, for one batch element or all.
#[derive(Debug, Clone, PartialEq)]
pub struct Clamp {
    /// The node (see [`Cell::node_at`]).
    pub node: usize,
    /// The batch element it drives; `None`: every element.
    pub batch: Option<usize>,
    /// Its current.
    pub waveform: Waveform,
}

/// A single-electrode voltage clamp on one compartment (NEURON's `SEClamp`): a series
/// resistance `rs` (MΩ) to a command voltage `amp[0]` mV for `dur[0]` ms from `t = 0`, then
/// `amp[1]` for `dur[1]` ms, then `amp[2]` for `dur[2]` ms, then off (no current). While on it
/// injects `i = (vc − v)/rs` nA (positive depolarises), taken into the step's linear system
/// (conductance `1/rs` µS), so the step stays one tree solve. As with a current clamp, the
/// command of a step is the one at its middle, `t + dt/2`.
#[derive(Debug, Clone, PartialEq)]
pub struct VClamp {
    /// The node (see [`Cell::node_at`]).
    pub node: usize,
    /// Series resistance, MΩ (NEURON's default 1).
    pub rs: f64,
    /// Command voltages `amp1..3`, mV: one row for every batch element, or one per element.
    pub amp: Vec<[f64; 3]>,
    /// Durations `dur1..3`, ms.
    pub dur: [f64; 3],
}

impl VClamp {
    /// Checks the series resistance, durations and command voltages (`batch` elements);
    /// `name` names the stimulus in the error.
    pub fn check(&self, name: &str, batch: usize) -> Result<(), CellError> {
        if !(self.rs.is_finite() && self.rs > 0.0) {
            return Err(CellError::setting(
                name,
                format!("voltage clamp: rs must be positive, got {} MΩ", self.rs),
            ));
        }
        if let Some(j) = self.dur.iter().position(|d| !(d.is_finite() && *d >= 0.0)) {
            return Err(CellError::setting(
                name,
                format!(
                    "voltage clamp: dur{} must be finite and ≥ 0, got {} ms",
                    j + 1,
                    self.dur[j]
                ),
            ));
        }
        if self.amp.len() != 1 && self.amp.len() != batch {
            return Err(CellError::setting(
                name,
                format!(
                    "voltage clamp: {} rows of command voltages for a batch of {batch} (give 1 \
                     or {batch})",
                    self.amp.len()
                ),
            ));
        }
        if self.amp.iter().flatten().any(|a| !a.is_finite()) {
            return Err(CellError::setting(
                name,
                "voltage clamp: amp1..3 must be finite (mV)",
            ));
        }
        Ok(())
    }

    /// The command voltage at time `t` (ms) for batch element `b`, mV; `None` when off.
    #[inline]
    pub fn command(&self, t: f64, b: usize) -> Option<f64> {
        let amp = &self.amp[if self.amp.len() == 1 { 0 } else { b }];
        let mut end = 0.0;
        for (a, d) in amp.iter().zip(&self.dur) {
            end += d;
            if t < end {
                return Some(*a);
            }
        }
        None
    }

    /// The command during step `k` of length `dt` (at its middle), mV; `None` when off.
    #[inline]
    pub fn command_in_step(&self, k: usize, dt: f64, b: usize) -> Option<f64> {
        self.command((k as f64 + 0.5) * dt, b)
    }

    /// The clamp current at sample `s` (`t = s dt`) for voltage `v`, nA: `(vc − v)/rs` with the
    /// command of the step that ended there (at `t = 0`, the command at 0), as NEURON records
    /// `SEClamp.i` (computed after the voltage update, with the step's command); 0 when off.
    pub fn current_at_sample(&self, s: usize, dt: f64, b: usize, v: f64) -> f64 {
        self.command_at_sample(s, dt, b)
            .map_or(0.0, |vc| (vc - v) / self.rs)
    }

    /// The command that [`VClamp::current_at_sample`] uses at sample `s`, mV; `None` when off.
    pub(crate) fn command_at_sample(&self, s: usize, dt: f64, b: usize) -> Option<f64> {
        if s == 0 {
            self.command(0.0, b)
        } else {
            self.command_in_step(s - 1, dt, b)
        }
    }
}

/// The time scheme of the voltage equation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Backward (implicit) Euler, first order: NEURON's `secondorder = 0`.
    #[default]
    BackwardEuler,
    /// Crank–Nicolson, second order: NEURON's `secondorder = 2` (backward Euler over half a
    /// step, then extrapolated to the full step; the gates are staggered half a step).
    CrankNicolson,
}

/// A recorded quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The membrane potential of a node, mV.
    V {
        /// The node.
        node: usize,
    },
    /// A gate of a channel placement at a node, 1.
    Gate {
        /// The placement (index into [`Cell::channels`]).
        channel: usize,
        /// The node.
        node: usize,
        /// The gate (index into the channel's gates).
        gate: usize,
    },
    /// The current of a voltage clamp, nA (positive depolarises; NEURON's `SEClamp.i`).
    VClampCurrent {
        /// The clamp (index into [`Protocol::vclamps`]).
        clamp: usize,
    },
}

impl Probe {
    /// The unit of what it records: `mV`, `1` or `nA`.
    pub fn unit(self) -> &'static str {
        match self {
            Probe::V { .. } => "mV",
            Probe::Gate { .. } => "1",
            Probe::VClampCurrent { .. } => "nA",
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    /// Time step, ms.
    pub dt: f64,
    /// Number of steps.
    pub steps: usize,
    /// Temperature, °C (NEURON's `celsius`, default 6.3).
    pub celsius: f64,
    /// The initial voltage everywhere, mV (gates start at their steady states there).
    pub v_init: f64,
    /// The current clamps.
    pub clamps: Vec<Clamp>,
    /// The voltage clamps.
    pub vclamps: Vec<VClamp>,
    /// The scheme of the voltage equation.
    pub scheme: Scheme,
    /// What to record, at `t = 0` and after every step.
    pub probes: Vec<Probe>,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            dt: 0.025,
            steps: 0,
            celsius: 6.3,
            v_init: -65.0,
            clamps: Vec::new(),
            vclamps: Vec::new(),
            scheme: Scheme::BackwardEuler,
            probes: Vec::new(),
        }
    }
}

/// Recorded traces, `[steps + 1][probes][batch]` flattened, in `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The values.
    pub data: Vec<f64>,
    /// The number of probes.
    pub n_probes: usize,
    /// The batch size.
    pub batch: usize,
    /// The time step, ms (sample `k` is at `t = k dt`).
    pub dt: f64,
}

impl Recording {
    /// The number of samples (`steps + 1`).
    pub fn len(&self) -> usize {
        self.data.len() / (self.n_probes * self.batch).max(1)
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The trace of probe `p` in batch element `b`.
    pub fn trace(&self, p: usize, b: usize) -> Vec<f64> {
        let stride = self.n_probes * self.batch;
        (0..self.len())
            .map(|k| self.data[k * stride + p * self.batch + b])
            .collect()
    }

    /// Upward crossings of `threshold` by probe `p` in batch element `b`, ms, each placed by
    /// linear interpolation between the samples around it.
    pub fn crossings(&self, p: usize, b: usize, threshold: f64) -> Vec<f64> {
        crossings(&self.trace(p, b), self.dt, threshold)
    }
}

/// Upward crossings of `threshold` by `trace` sampled every `dt`, ms, linearly interpolated.
pub fn crossings(trace: &[f64], dt: f64, threshold: f64) -> Vec<f64> {
    trace
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < threshold && w[1] >= threshold)
        .map(|(k, w)| (k as f64 + (threshold - w[0]) / (w[1] - w[0])) * dt)
        .collect()
}

/// Solves the tree system in place for `batch` right-hand sides at once: with node `i`'s
/// parent `parent[i] < i` (`parent[0]` unused), the symmetric matrix has diagonal `d[i][b]` and
/// off-diagonal `a[i]` between `i` and `parent[i]`; `rhs[i][b]` becomes the solution. Hines'
/// elimination from the leaves to the root, then substitution back: O(nodes · batch), no fill,
/// one division per node and batch element (the pivot's reciprocal, kept in `d` for the
/// substitution). `d` is overwritten. Arrays are node-major, batch innermost; on x86-64
/// processors with AVX2 the loops over the batch run on AVX registers (the same IEEE
/// operations, so the same bits).
pub fn hines_solve<T: Float + 'static>(
    parent: &[usize],
    a: &[T],
    d: &mut [T],
    rhs: &mut [T],
    batch: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2.
        unsafe { hines_avx2(parent, a, d, rhs, batch) };
        return;
    }
    hines(parent, a, d, rhs, batch)
}

/// [`hines`] compiled for AVX2.
///
/// # Safety
/// The processor must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hines_avx2<T: Float + 'static>(
    parent: &[usize],
    a: &[T],
    d: &mut [T],
    rhs: &mut [T],
    batch: usize,
) {
    hines(parent, a, d, rhs, batch)
}

/// The body of [`hines_solve`].
#[inline(always)]
fn hines<T: Float + 'static>(parent: &[usize], a: &[T], d: &mut [T], rhs: &mut [T], batch: usize) {
    let n = parent.len();
    // Rows as slices (`parent[i] < i`, so a node's row lies after its parent's): loops over
    // the batch without a bounds check per element, which the compiler vectorises. A node's
    // pivot is final when it is reached (its children come after it and are eliminated first).
    for i in (1..n).rev() {
        let p = parent[i];
        let ai = a[i];
        let (d_lo, d_hi) = d.split_at_mut(i * batch);
        let (r_lo, r_hi) = rhs.split_at_mut(i * batch);
        let (dp, di) = (&mut d_lo[p * batch..(p + 1) * batch], &mut d_hi[..batch]);
        let (rp, ri) = (&mut r_lo[p * batch..(p + 1) * batch], &r_hi[..batch]);
        for b in 0..batch {
            let inv = T::one() / di[b];
            let f = ai * inv;
            dp[b] = dp[b] - f * ai;
            rp[b] = rp[b] - f * ri[b];
            di[b] = inv;
        }
    }
    for (r, &dd) in rhs[..batch].iter_mut().zip(&d[..batch]) {
        *r = *r / dd;
    }
    for i in 1..n {
        let p = parent[i];
        let ai = a[i];
        let (r_lo, r_hi) = rhs.split_at_mut(i * batch);
        let (rp, ri) = (&r_lo[p * batch..(p + 1) * batch], &mut r_hi[..batch]);
        let inv = &d[i * batch..(i + 1) * batch];
        for b in 0..batch {
            ri[b] = (ri[b] - ai * rp[b]) * inv[b];
        }
    }
}

/// One channel placement's numbers in the solver's type: parameters `[batch][param]`,
/// reversal potentials per batch element and temperature factor.
pub(crate) struct Ch<T> {
    pub(crate) kind: ChannelKind,
    pub(crate) ng: usize,
    pub(crate) np: usize,
    pub(crate) params: Vec<T>,
    /// The parameters transposed, `[param][batch]`.
    pub(crate) params_t: Vec<T>,
    pub(crate) rev: Vec<T>,
    pub(crate) phi: T,
    pub(crate) ca: Calcium,
    /// A calcium current placed in a compartment with a pool: its reversal potential is the
    /// pool's Nernst potential there, not `rev`.
    pub(crate) nernst: bool,
}

/// The state of a cell: voltages `[node][batch]`, per placement, gates
/// `[(j * batch + b) * n_gates + g]` for the placement's `j`-th node, and, when the cell has a
/// calcium pool or a channel that reads calcium, the calcium concentration `[node][batch]` (mM;
/// constant at NEURON's default where there is no pool), else nothing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct State<T> {
    pub(crate) v: Vec<T>,
    pub(crate) gates: Vec<Vec<T>>,
    pub(crate) cai: Vec<T>,
}

impl<T: Copy> State<T> {
    /// The number of numbers held.
    pub(crate) fn size(&self) -> usize {
        self.v.len() + self.gates.iter().map(Vec::len).sum::<usize>() + self.cai.len()
    }
}

/// The one time step of the solver, shared by [`simulate`] and the adjoint
/// ([`super::adjoint`]): the checked protocol and the constant parts of the step in `T`.
pub(crate) struct Stepper<'a, T> {
    pub(crate) cell: &'a Cell,
    pub(crate) protocol: &'a Protocol,
    pub(crate) n: usize,
    pub(crate) nb: usize,
    pub(crate) dt: T,
    /// `C/dt` per node (`2C/dt` for Crank–Nicolson), mS (µF/ms).
    pub(crate) cdt: Vec<T>,
    /// The axial part of the diagonal, mS.
    pub(crate) dax: Vec<T>,
    /// The off-diagonal `−g_axial`, mS.
    pub(crate) a: Vec<T>,
    /// Membrane area per node, cm².
    pub(crate) area: Vec<T>,
    pub(crate) chans: Vec<Ch<T>>,
    /// Whether the state carries calcium (a pool, or a channel that reads it).
    pub(crate) calcium: bool,
    /// Whether a placement's reversal potential is a pool's Nernst potential.
    nernst: bool,
    /// Per node, the pool in it (index into [`Cell::pools`]), `usize::MAX` for none.
    pool_at: Vec<usize>,
    /// Per pool, its parameters `[batch][param]` in `T`.
    pub(crate) pool_params: Vec<Vec<T>>,
    /// Per probe: the index of its node within its placement (gate probes).
    probe_idx: Vec<usize>,
}

/// Where a probe reads the state of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A voltage: the index of batch element 0 in [`State::v`] (add `b`).
    V(usize),
    /// A gate: the placement, and the index of batch element 0's gate in its
    /// [`State::gates`] (add `b * ng`).
    Gate(usize, usize),
    /// The current of voltage clamp `clamp`, `(vc − v)/rs` at its node.
    Clamp(usize),
}

/// Batches below this size step each placement's gates and next conductances in one pass.
const FUSE_BELOW: usize = 8;

/// How [`Stepper::step_body`] finds and leaves the system in the scratch space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Assembles the whole system from the state (the adjoint and networks).
    Whole,
    /// Finds the state's part of the system there and leaves the next step's
    /// ([`Stepper::step_primed`]).
    Primed,
}

/// Scratch space of one step: the matrix diagonal and right-hand side, calcium currents.
pub(crate) struct Scratch<T> {
    pub(crate) d: Vec<T>,
    pub(crate) rhs: Vec<T>,
    /// The calcium current density of each node at the start of the step, µA/cm².
    pub(crate) ica: Vec<T>,
}

impl<'a, T: Float + 'static> Stepper<'a, T> {
    /// Checks `protocol` against `cell` and prepares the constant parts of the step.
    pub(crate) fn new(cell: &'a Cell, protocol: &'a Protocol) -> Result<Self, CellError> {
        check_protocol(cell, protocol)?;
        let n = cell.n_nodes();
        let nb = cell.batch;
        let c = |x: f64| T::from(x).expect("f64 to float");
        let dt = protocol.dt;
        // Crank–Nicolson solves backward Euler over dt/2 (NEURON's `cj = 2/dt`).
        let h = match protocol.scheme {
            Scheme::BackwardEuler => dt,
            Scheme::CrankNicolson => 0.5 * dt,
        };
        let cdt: Vec<T> = cell.cap.iter().map(|&x| c(x / h)).collect();
        let mut dax = vec![0.0f64; n];
        for i in 1..n {
            dax[i] += cell.g_axial[i];
            dax[cell.parent[i]] += cell.g_axial[i];
        }
        let dax: Vec<T> = dax.into_iter().map(c).collect();
        let a: Vec<T> = cell.g_axial.iter().map(|&g| c(-g)).collect();
        let area: Vec<T> = cell.area.iter().map(|&x| c(x)).collect();
        let mut pool_at = vec![usize::MAX; n];
        for (q, pool) in cell.pools.iter().enumerate() {
            for &node in &pool.nodes {
                pool_at[node] = q;
            }
        }
        let chans: Vec<Ch<T>> = cell
            .channels
            .iter()
            .map(|pl| {
                let spec = pl.kind.spec();
                let (ng, np) = (spec.gates.len(), spec.params.len());
                let params: Vec<T> = pl.params.iter().map(|&x| c(x)).collect();
                let rev = (0..nb)
                    .map(|b| pl.kind.reversal(&params[b * np..(b + 1) * np]))
                    .collect();
                let params_t = (0..np * nb)
                    .map(|i| params[(i % nb) * np + i / nb])
                    .collect();
                Ch {
                    kind: pl.kind,
                    ng,
                    np,
                    params,
                    params_t,
                    rev,
                    phi: c(spec.temperature_factor(protocol.celsius)),
                    ca: spec.calcium,
                    nernst: spec.calcium == Calcium::Current
                        && pl.nodes.iter().any(|&n| pool_at[n] != usize::MAX),
                }
            })
            .collect();
        let probe_idx = protocol
            .probes
            .iter()
            .map(|p| match *p {
                Probe::V { .. } | Probe::VClampCurrent { .. } => 0,
                Probe::Gate { channel, node, .. } => cell.channels[channel]
                    .nodes
                    .iter()
                    .position(|&x| x == node)
                    .unwrap_or(0),
            })
            .collect();
        let calcium = !cell.pools.is_empty()
            || cell
                .channels
                .iter()
                .any(|pl| pl.kind.spec().calcium == Calcium::Reads);
        let pool_params = cell
            .pools
            .iter()
            .map(|p| p.params.iter().map(|&x| c(x)).collect())
            .collect();
        Ok(Stepper {
            cell,
            calcium,
            nernst: chans.iter().any(|ch| ch.nernst),
            pool_at,
            pool_params,
            protocol,
            n,
            nb,
            dt: c(dt),
            cdt,
            dax,
            a,
            area,
            chans,
            probe_idx,
        })
    }

    /// Scratch space for [`Stepper::step`].
    pub(crate) fn scratch(&self) -> Scratch<T> {
        Scratch {
            d: vec![T::zero(); self.n * self.nb],
            rhs: vec![T::zero(); self.n * self.nb],
            ica: vec![
                T::zero();
                if self.cell.pools.is_empty() {
                    0
                } else {
                    self.n * self.nb
                }
            ],
        }
    }

    /// The state at `t = 0`: `v_init` everywhere, calcium at NEURON's default `cai0_ca_ion`,
    /// every gate at its steady state there.
    pub(crate) fn init(&self) -> State<T> {
        let nb = self.nb;
        let v0 = T::from(self.protocol.v_init).expect("f64 to float");
        let cai0 = T::from(CAI_DEFAULT).expect("f64 to float");
        let gates = self
            .chans
            .iter()
            .zip(&self.cell.channels)
            .map(|(ch, pl)| {
                let ng = ch.ng;
                let mut gates = vec![T::zero(); pl.nodes.len() * nb * ng];
                let (mut inf, mut tau) = (vec![T::zero(); ng], vec![T::zero(); ng]);
                for j in 0..pl.nodes.len() {
                    for b in 0..nb {
                        ch.kind.gates_ca(
                            v0,
                            cai0,
                            &ch.params[b * ch.np..(b + 1) * ch.np],
                            &mut inf,
                            &mut tau,
                        );
                        gates[(j * nb + b) * ng..(j * nb + b + 1) * ng].copy_from_slice(&inf);
                    }
                }
                gates
            })
            .collect();
        State {
            v: vec![v0; self.n * nb],
            gates,
            cai: if self.calcium {
                vec![cai0; self.n * nb]
            } else {
                Vec::new()
            },
        }
    }

    /// The backward-Euler system of step `k` from state `st` (over `dt/2` for Crank–Nicolson):
    /// the diagonal `d` and right-hand side `rhs` (the off-diagonal is the constant
    /// [`Stepper::a`]).
    pub(crate) fn assemble(&self, k: usize, st: &State<T>, d: &mut [T], rhs: &mut [T]) {
        self.assemble_state(st, d, rhs);
        self.add_stimuli(k, d, rhs);
    }

    /// The parts of the system that depend on the state alone: capacitance, axial and channel
    /// conductances. [`Stepper::add_stimuli`] completes it.
    fn assemble_state(&self, st: &State<T>, d: &mut [T], rhs: &mut [T]) {
        self.capacitive(&st.v, d, rhs);
        for ((ch, pl), gates) in self.chans.iter().zip(&self.cell.channels).zip(&st.gates) {
            if ch.nernst {
                self.add_nernst(ch, pl, gates, st, d, rhs);
                continue;
            }
            // One dispatch per placement, batch elements in lanes.
            lanes::add_conductances(
                ch.kind,
                &mut lanes::Conduct {
                    np: ch.np,
                    ng: ch.ng,
                    nb: self.nb,
                    nodes: &pl.nodes,
                    area: &self.area,
                    params: &ch.params,
                    params_t: &ch.params_t,
                    gates,
                    d: &mut *d,
                    rhs: &mut *rhs,
                },
            );
        }
    }

    /// The system's capacitive and axial part: `d = C/dt + Σ g_axial`, `rhs = C/dt · v`.
    #[inline(always)]
    fn capacitive(&self, v: &[T], d: &mut [T], rhs: &mut [T]) {
        let nb = self.nb;
        // Row by row over slices (loops the compiler vectorises: no bounds check per element).
        for i in 0..self.n {
            let rows = i * nb..(i + 1) * nb;
            let (c, diag) = (self.cdt[i], self.cdt[i] + self.dax[i]);
            d[rows.clone()].fill(diag);
            for (r, &v) in rhs[rows.clone()].iter_mut().zip(&v[rows]) {
                *r = c * v;
            }
        }
    }

    /// The conductances of a calcium current whose reversal potential is a pool's Nernst
    /// potential (one element at a time: the reversal potential varies with the state).
    fn add_nernst(
        &self,
        ch: &Ch<T>,
        pl: &super::Placement,
        gates: &[T],
        st: &State<T>,
        d: &mut [T],
        rhs: &mut [T],
    ) {
        self.each_element(
            ch,
            pl,
            gates,
            st,
            |_| true,
            |idx, node, g, e| {
                let g = g * self.area[node];
                d[idx] = d[idx] + g;
                rhs[idx] = rhs[idx] + g * e;
            },
        );
    }

    /// Calls `f(idx, node, g, e)` for every batch element of placement `ch` (on `pl`, gates
    /// `gates`) at the nodes `keep` accepts: `idx` its index in `[node][batch]`, `g` its
    /// conductance density (mS/cm²) and `e` its reversal potential ([`Stepper::reversal`]).
    #[inline(always)]
    fn each_element(
        &self,
        ch: &Ch<T>,
        pl: &super::Placement,
        gates: &[T],
        st: &State<T>,
        keep: impl Fn(usize) -> bool,
        mut f: impl FnMut(usize, usize, T, T),
    ) {
        let nb = self.nb;
        for (j, &node) in pl.nodes.iter().enumerate() {
            if !keep(node) {
                continue;
            }
            for b in 0..nb {
                let x = &gates[(j * nb + b) * ch.ng..(j * nb + b + 1) * ch.ng];
                let g = ch
                    .kind
                    .conductance(x, &ch.params[b * ch.np..(b + 1) * ch.np]);
                f(node * nb + b, node, g, self.reversal(ch, node, b, st));
            }
        }
    }

    /// The current and voltage clamps of step `k` added to the system.
    #[inline(always)]
    fn add_stimuli(&self, k: usize, d: &mut [T], rhs: &mut [T]) {
        let nb = self.nb;
        let dt = self.protocol.dt;
        for cl in &self.protocol.clamps {
            let i_ua = T::from(cl.waveform.at(k, dt) * 1e-3).expect("f64 to float"); // nA → µA
            match cl.batch {
                Some(b) => rhs[cl.node * nb + b] = rhs[cl.node * nb + b] + i_ua,
                None => rhs[cl.node * nb..(cl.node + 1) * nb]
                    .iter_mut()
                    .for_each(|r| *r = *r + i_ua),
            }
        }
        for vc in &self.protocol.vclamps {
            let g = 1e-3 / vc.rs; // 1/rs: MΩ → µS → mS
            for b in 0..nb {
                if let Some(u) = vc.command_in_step(k, dt, b) {
                    let idx = vc.node * nb + b;
                    d[idx] = d[idx] + T::from(g).expect("f64 to float");
                    rhs[idx] = rhs[idx] + T::from(g * u).expect("f64 to float");
                }
            }
        }
    }

    /// The reversal potential of placement `ch` at `node` in batch element `b`: the pool's
    /// Nernst potential for a calcium current in a compartment with a pool, else the channel's.
    #[inline(always)]
    pub(crate) fn reversal(&self, ch: &Ch<T>, node: usize, b: usize, st: &State<T>) -> T {
        if self.pooled_current(ch, node) {
            ca_dynamics::nernst(st.cai[node * self.nb + b], self.protocol.celsius)
        } else {
            ch.rev[b]
        }
    }

    /// Whether placement `ch` at `node` is a calcium current filling a pool (its reversal
    /// potential is then the pool's Nernst potential).
    #[inline(always)]
    pub(crate) fn pooled_current(&self, ch: &Ch<T>, node: usize) -> bool {
        ch.ca == Calcium::Current && self.pool_at[node] != usize::MAX
    }

    /// The calcium current density (µA/cm²) of every node with a pool, from the state at the
    /// start of the step (NEURON's `ica` of that step), into `ica`.
    pub(crate) fn calcium_current(&self, st: &State<T>, ica: &mut [T]) {
        ica.iter_mut().for_each(|x| *x = T::zero());
        for ((ch, pl), gates) in self.chans.iter().zip(&self.cell.channels).zip(&st.gates) {
            if ch.ca != Calcium::Current {
                continue;
            }
            let pooled = |node: usize| self.pooled_current(ch, node);
            self.each_element(ch, pl, gates, st, pooled, |idx, _, g, e| {
                ica[idx] = ica[idx] + g * (st.v[idx] - e);
            });
        }
    }

    /// Advances every pool's calcium over the step (exact for the step's frozen current, as
    /// NEURON's `cnexp`): `cai ← cai∞ + (cai − cai∞) e^{−dt/τ_decay}`.
    pub(crate) fn pool_update(&self, cai: &mut [T], ica: &[T]) {
        let nb = self.nb;
        let np = ca_dynamics::PARAMS.len();
        for (pool, params) in self.cell.pools.iter().zip(&self.pool_params) {
            for &node in &pool.nodes {
                for b in 0..nb {
                    let p = &params[b * np..(b + 1) * np];
                    let idx = node * nb + b;
                    let inf = ca_dynamics::steady(ica[idx], p);
                    let e = Float::exp(-self.dt / ca_dynamics::tau(p));
                    cai[idx] = inf + (cai[idx] - inf) * e;
                }
            }
        }
    }

    /// Step `k` (from `t = k dt` to `(k + 1) dt`): the voltage by one tree solve (Crank–Nicolson:
    /// the solve gives `v` at `t + dt/2`, extrapolated to `2 v½ − v`), then the gates at the new
    /// voltage.
    pub(crate) fn step(&self, k: usize, st: &mut State<T>, s: &mut Scratch<T>) {
        self.step_with(k, st, s, |_, _| {});
    }

    /// [`Stepper::step`] with `extra(d, rhs)` adding terms to the assembled system before the
    /// solve (a network's synapses and drives).
    pub(crate) fn step_with(
        &self,
        k: usize,
        st: &mut State<T>,
        s: &mut Scratch<T>,
        extra: impl FnOnce(&mut [T], &mut [T]),
    ) {
        self.step_mode(k, st, s, extra, Mode::Whole)
    }

    /// Puts into `s` the part of step `k`'s system that the state `st` gives, for a run of
    /// [`Stepper::step_primed`] from `st`.
    pub(crate) fn prime(&self, st: &State<T>, s: &mut Scratch<T>) {
        self.assemble_state(st, &mut s.d, &mut s.rhs);
    }

    /// [`Stepper::step`] on scratch that holds the state's part of the system (from
    /// [`Stepper::prime`] or the previous `step_primed`), leaving there the next step's: below
    /// batch 8 ([`FUSE_BELOW`]) each placement's gates and conductances in one pass instead of
    /// two (5–8 % of a long batch-1 point-cell run). The same operations in the same order as
    /// [`Stepper::step`], so the same bits.
    pub(crate) fn step_primed(&self, k: usize, st: &mut State<T>, s: &mut Scratch<T>) {
        self.step_mode(k, st, s, |_, _| {}, Mode::Primed)
    }

    /// The step in either [`Mode`].
    #[inline(always)]
    fn step_mode(
        &self,
        k: usize,
        st: &mut State<T>,
        s: &mut Scratch<T>,
        extra: impl FnOnce(&mut [T], &mut [T]),
        mode: Mode,
    ) {
        #[cfg(target_arch = "x86_64")]
        if lanes::simd() {
            // SAFETY: the processor has AVX2 and FMA.
            unsafe { self.step_simd(k, st, s, extra, mode) };
            return;
        }
        self.step_body(k, st, s, extra, mode)
    }

    /// [`Stepper::step_body`] compiled for AVX2 and FMA, so that the lanes kernels it calls
    /// (compiled for them too) inline into it: at small batches the calls were a third of a
    /// step.
    ///
    /// # Safety
    /// The processor must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_simd(
        &self,
        k: usize,
        st: &mut State<T>,
        s: &mut Scratch<T>,
        extra: impl FnOnce(&mut [T], &mut [T]),
        mode: Mode,
    ) {
        self.step_body(k, st, s, extra, mode)
    }

    /// The body of [`Stepper::step_mode`].
    #[inline(always)]
    fn step_body(
        &self,
        k: usize,
        st: &mut State<T>,
        s: &mut Scratch<T>,
        extra: impl FnOnce(&mut [T], &mut [T]),
        mode: Mode,
    ) {
        let nb = self.nb;
        let pools = !self.cell.pools.is_empty();
        if pools {
            self.calcium_current(st, &mut s.ica);
        }
        if mode == Mode::Whole {
            self.assemble_state(st, &mut s.d, &mut s.rhs);
        }
        self.add_stimuli(k, &mut s.d, &mut s.rhs);
        extra(&mut s.d, &mut s.rhs);
        // `hines` itself, not `hines_solve`: this body is already compiled for AVX2 where the
        // processor has it (`step_simd`), so no second check and call.
        hines(&self.cell.parent, &self.a, &mut s.d, &mut s.rhs, nb);
        std::mem::swap(&mut st.v, &mut s.rhs);
        if self.protocol.scheme == Scheme::CrankNicolson {
            let two = T::one() + T::one();
            for (v, &old) in st.v.iter_mut().zip(&s.rhs) {
                *v = two * *v - old;
            }
        }
        if pools {
            // NEURON advances `CaDynamics_E2` before `SK_E2` (mechanism order), so the gates
            // below read the new calcium.
            self.pool_update(&mut st.cai, &s.ica);
        }
        // In `Primed` mode, the next step's system: with the gates in one pass at small
        // batches (at batch 1 a point-cell step took 5–8 % less; at batch 1,000 the fused
        // kernels were 3 % slower), unless a Nernst placement's conductance needs the whole new
        // state; otherwise after the gates.
        let primed = mode == Mode::Primed;
        let fused = primed && !self.nernst && nb < FUSE_BELOW;
        if fused {
            self.capacitive(&st.v, &mut s.d, &mut s.rhs);
        }
        for ((ch, pl), gates) in self
            .chans
            .iter()
            .zip(&self.cell.channels)
            .zip(&mut st.gates)
        {
            if ch.ng == 0 && !fused {
                continue;
            }
            // One dispatch per placement, batch elements in lanes; fused, the placement's
            // conductance at its new gates is added next, in placement order as
            // `assemble_state` adds it.
            lanes::step_gates(
                ch.kind,
                &mut lanes::GateStep {
                    dt: self.dt,
                    phi: ch.phi,
                    np: ch.np,
                    ng: ch.ng,
                    nb,
                    nodes: &pl.nodes,
                    v: &st.v,
                    cai: (ch.ca == Calcium::Reads).then_some(&st.cai[..]),
                    params: &ch.params,
                    params_t: &ch.params_t,
                    gates,
                    next: fused.then_some(lanes::Next {
                        area: &self.area,
                        d: &mut s.d,
                        rhs: &mut s.rhs,
                    }),
                },
            );
        }
        if primed && !fused {
            self.assemble_state(st, &mut s.d, &mut s.rhs);
        }
    }

    /// Appends the probes' values in `st`, the state at sample `sample` (`t = sample dt`), to
    /// `data` (`[probe][batch]`).
    pub(crate) fn record(&self, sample: usize, st: &State<T>, data: &mut Vec<f64>) {
        let nb = self.nb;
        let f = |x: T| x.to_f64().unwrap_or(f64::NAN);
        for (p, &jj) in self.protocol.probes.iter().zip(&self.probe_idx) {
            // One row of the batch per probe (a voltage row is contiguous: a loop the compiler
            // vectorises).
            match *p {
                Probe::V { node } => {
                    data.extend(st.v[node * nb..(node + 1) * nb].iter().map(|&x| f(x)))
                }
                Probe::Gate { channel, gate, .. } => {
                    let ng = self.chans[channel].ng;
                    let g = &st.gates[channel];
                    data.extend((0..nb).map(|b| f(g[(jj * nb + b) * ng + gate])));
                }
                Probe::VClampCurrent { clamp } => {
                    let vc = &self.protocol.vclamps[clamp];
                    data.extend((0..nb).map(|b| {
                        let v = f(st.v[vc.node * nb + b]);
                        vc.current_at_sample(sample, self.protocol.dt, b, v)
                    }));
                }
            }
        }
    }

    /// Where probe `p` reads the state (see [`Slot`]).
    pub(crate) fn probe_slot(&self, p: usize) -> Slot {
        match self.protocol.probes[p] {
            Probe::V { node } => Slot::V(node * self.nb),
            Probe::Gate { channel, gate, .. } => {
                let ng = self.chans[channel].ng;
                Slot::Gate(channel, self.probe_idx[p] * self.nb * ng + gate)
            }
            Probe::VClampCurrent { clamp } => Slot::Clamp(clamp),
        }
    }

    /// The first non-finite voltage or gate of `st` after step `step`, as an error naming the
    /// compartment and variable (`prefix` before the variable's name, e.g. `adjoint of `).
    pub(crate) fn check_finite(
        &self,
        st: &State<T>,
        step: usize,
        prefix: &str,
    ) -> Option<CellError> {
        check_finite(self.cell, st, &self.chans, step, self.protocol.dt, prefix)
    }
}

/// Checks the protocol's settings, clamps and probes against `cell`.
fn check_protocol(cell: &Cell, protocol: &Protocol) -> Result<(), CellError> {
    let n = cell.n_nodes();
    let nb = cell.batch;
    let Protocol {
        dt,
        steps,
        celsius,
        v_init,
        ..
    } = *protocol;
    if !(dt.is_finite() && dt > 0.0) {
        return Err(CellError::setting(
            "dt",
            format!("must be positive, got {dt} ms"),
        ));
    }
    if !celsius.is_finite() || !v_init.is_finite() {
        return Err(CellError::setting("celsius/v_init", "must be finite"));
    }
    for (j, c) in protocol.clamps.iter().enumerate() {
        let name = format!("stimuli[{j}]");
        if c.node >= n {
            return Err(CellError::setting(name, format!("no node {}", c.node)));
        }
        if let Some(b) = c.batch.filter(|&b| b >= nb) {
            return Err(CellError::setting(
                name,
                format!("no batch element {b} (batch {nb})"),
            ));
        }
        match &c.waveform {
            Waveform::Step { amp, delay, dur } => {
                if !(amp.is_finite() && delay.is_finite() && dur.is_finite() && *dur >= 0.0) {
                    return Err(CellError::setting(
                        name,
                        format!("need finite amp, delay and dur ≥ 0, got {amp} nA, {delay} ms, {dur} ms"),
                    ));
                }
            }
            Waveform::Samples(v) => {
                if v.len() < steps {
                    return Err(CellError::setting(
                        name,
                        format!("the waveform has {} samples for {steps} steps", v.len()),
                    ));
                }
                if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                    return Err(CellError::setting(
                        name,
                        format!("sample {k} is not finite"),
                    ));
                }
            }
        }
    }
    for (j, vc) in protocol.vclamps.iter().enumerate() {
        let name = format!("vclamps[{j}]");
        if vc.node >= n {
            return Err(CellError::setting(
                name,
                format!("no node {} (the cell has {n})", vc.node),
            ));
        }
        vc.check(&name, nb)?;
    }
    for (j, p) in protocol.probes.iter().enumerate() {
        let ok = match *p {
            Probe::V { node } => node < n,
            Probe::Gate {
                channel,
                node,
                gate,
            } => cell
                .channels
                .get(channel)
                .is_some_and(|c| c.nodes.contains(&node) && gate < c.kind.n_gates()),
            Probe::VClampCurrent { clamp } => clamp < protocol.vclamps.len(),
        };
        if !ok {
            return Err(CellError::setting(
                format!("record[{j}]"),
                format!("{p:?} is not a node, channel, gate or voltage clamp of this cell"),
            ));
        }
    }
    Ok(())
}

/// Runs `protocol` on `cell` in number type `T` (`f32` or `f64`) and returns the recordings.
pub fn simulate<T: Float + 'static>(
    cell: &Cell,
    protocol: &Protocol,
) -> Result<Recording, CellError> {
    let st = Stepper::<T>::new(cell, protocol)?;
    let steps = protocol.steps;
    let nb = cell.batch;
    let np_ = protocol.probes.len();
    let mut data = recording_buffer((steps + 1) * np_ * nb);
    let mut state = st.init();
    let mut scratch = st.scratch();
    st.record(0, &state, &mut data);
    st.prime(&state, &mut scratch);
    for k in 0..steps {
        st.step_primed(k, &mut state, &mut scratch);
        if let Some(e) = st.check_finite(&state, k + 1, "") {
            return Err(e);
        }
        st.record(k + 1, &state, &mut data);
    }
    Ok(Recording {
        data,
        n_probes: np_,
        batch: nb,
        dt: protocol.dt,
    })
}

/// An empty vector of capacity `cap` for a recording. On Linux, above 4 MB the kernel is advised
/// to back it with transparent huge pages (`madvise(MADV_HUGEPAGE)`): one page fault per 2 MB
/// instead of per 4 kB. The faults were a fifth of a batch-1,000 point-cell run (`perf`:
/// 64 MB of recording, 16,000 faults per run). Advice only: the contents are the same.
pub(crate) fn recording_buffer(cap: usize) -> Vec<f64> {
    let v: Vec<f64> = Vec::with_capacity(cap);
    #[cfg(target_os = "linux")]
    {
        let bytes = v.capacity() * std::mem::size_of::<f64>();
        if bytes >= 4 << 20 {
            const PAGE: usize = 4096;
            let start = v.as_ptr() as usize;
            let (a, b) = (
                (start + PAGE - 1) & !(PAGE - 1),
                (start + bytes) & !(PAGE - 1),
            );
            if b > a {
                // SAFETY: advice on whole pages inside this vector's own allocation, which it
                // does not read or change; a refusal (an error code) is ignored.
                unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE) };
            }
        }
    }
    v
}

/// The first non-finite voltage, calcium concentration or gate of `st`, as an error naming the
/// compartment and variable.
fn check_finite<T: Float + 'static>(
    cell: &Cell,
    st: &State<T>,
    chans: &[Ch<T>],
    step: usize,
    dt: f64,
    prefix: &str,
) -> Option<CellError> {
    let nb = cell.batch;
    let diverged = |var: String, node: usize, batch: usize, value: T| CellError::Diverged {
        step,
        time: step as f64 * dt,
        var: format!("{prefix}{var}"),
        node,
        location: cell.location(node),
        batch,
        value: value.to_f64().unwrap_or(f64::NAN),
    };
    let State { v, gates, cai } = st;
    if let Some(i) = first_non_finite(v) {
        return Some(diverged("v".into(), i / nb, i % nb, v[i]));
    }
    if let Some(i) = first_non_finite(cai) {
        return Some(diverged("cai".into(), i / nb, i % nb, cai[i]));
    }
    for (ci, (ch, g)) in chans.iter().zip(gates).enumerate() {
        let (ng, kind) = (ch.ng, ch.kind);
        if let Some(i) = first_non_finite(g) {
            let (jb, gate) = (i / ng, i % ng);
            let (j, b) = (jb / nb, jb % nb);
            let spec = kind.spec();
            return Some(diverged(
                format!("{}.{}", spec.name, spec.gates[gate].name),
                cell.channels[ci].nodes[j],
                b,
                g[i],
            ));
        }
    }
    None
}

/// The index of the first non-finite number of `x`. Blocks of 256 are tested without an early
/// exit (a loop the compiler vectorises; the solver tests every state every step), and only
/// a block that fails is searched.
fn first_non_finite<T: Float>(x: &[T]) -> Option<usize> {
    const BLOCK: usize = 256;
    for (c, block) in x.chunks(BLOCK).enumerate() {
        if block.iter().fold(false, |bad, v| bad | !v.is_finite()) {
            return block
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| c * BLOCK + i);
        }
    }
    None
}
