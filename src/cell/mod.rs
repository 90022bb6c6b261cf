//! Multi-compartment cells (issue 14, first slice): morphologies ([`morph`]: branches in code or
//! TOML, an SWC reader), the compartments and their axial conductances ([`Cell`]), channels
//! from `neurodiff_models::channel` placed per group, and the solver ([`solve`]): backward Euler
//! (or Crank–Nicolson) for the voltage with a tree (Hines) solver, exponential Euler for the
//! gates, current and voltage clamps, a batch of parameter sets and stimuli in one run, in `f32`
//! or `f64`; gradients with respect to every channel parameter, calcium pool parameter and
//! branch's `C_m`, `R_a` and radius by the discrete adjoint of that step with nested checkpointing
//! ([`adjoint`]), and fitting to recorded traces ([`fit`], `neurodiff cell --fit`).
//!
//! ## Units
//! Voltage mV, time ms, lengths and radii µm, specific capacitance `C_m` µF/cm², axial
//! resistivity `R_a` Ω·cm, channel conductances mS/cm² (NEURON's S/cm² × 1000), injected
//! currents nA, a voltage clamp's series resistance MΩ (so `(vc − v)/rs` is in nA). Inside the solver each compartment carries absolute quantities: area cm²,
//! capacitance µF, conductances mS, currents µA (mS · mV = µA, µF · mV/ms = µA).
//!
//! ## Compartments and axial conductances (as NEURON computes them)
//! A branch of length `L`, radius `a` and `n` compartments is cut into `n` cylinders of length
//! `Δx = L/n`; each has a node at its centre with area `2π a Δx` and capacitance `C_m · area`.
//! The resistance of half a compartment is `r½ = R_a (Δx/2) / (π a²)` (with µm converted to cm:
//! `r½ = 10⁴ R_a Δx / (2π a²)` Ω). Neighbouring centres in a branch are joined by `1/(2 r½)`.
//! As in NEURON, a branch with children has a node of zero area at its distal end (`x = 1`),
//! joined to its last centre by `1/r½`; each child's first centre is joined to that node by the
//! child's own `1/r½`. A zero-area node carries no capacitance and no channel: its equation is
//! Kirchhoff's law, so where three or more branches meet the currents split as in NEURON's
//! tree (a star, not a pairwise `1/(r½ + r½')` between every two branches). NEURON's
//! `ri = 1e-2 R_a (Δx/2) / (π (d/2)²)` MΩ is the same resistance.
//!
//! ## Time stepping (NEURON's fixed step with `secondorder = 0`)
//! Per step of length `dt`, with the gates frozen, each compartment's membrane current is linear
//! in `V`, so backward Euler is one tree solve:
//! `(C/dt + Σ_c g_c + Σ_j g_ij) V_i' − Σ_j g_ij V_j' = (C/dt) V_i + Σ_c g_c E_c + I_i(t + dt/2)`,
//! with `g_c` each channel's conductance times the area and `I_i` the injected current
//! evaluated at the middle of the step (NEURON evaluates currents at `t + dt/2`). Then each gate
//! advances by exponential Euler at the new voltage, `x ← x∞(V') + (x − x∞(V')) e^{−dt φ/τ(V')}`
//! (NEURON's `cnexp`, after the voltage update). At `t = 0` the voltage is `v_init` everywhere and
//! every gate is at its steady state there (NEURON's `finitialize`).
//!
//! ## Voltage clamps (NEURON's `SEClamp`)
//! A [`VClamp`] joins a compartment through a series resistance `rs` (MΩ) to a command
//! `vc(t)` (three levels `amp1..3` mV for `dur1..3` ms, then off). Its current
//! `i = (vc − v)/rs` nA is linear in `V`, so it enters the same system implicitly: `1e-3/rs` mS
//! on the diagonal, `1e-3 vc/rs` µA on the right-hand side, with `vc` at `t + dt/2`; a step is
//! still one tree solve. The recorded clamp current ([`Probe::VClampCurrent`]) at `t = (k+1) dt`
//! is `(vc_k − V_{k+1})/rs`, the step's command and the new voltage, as NEURON records
//! `SEClamp.i`.
//!
//! ## Crank–Nicolson (NEURON's `secondorder = 2`)
//! With [`Scheme::CrankNicolson`] the system above is solved with `2C/dt` in place of `C/dt`
//! (backward Euler over half a step, to `V½` at `t + dt/2`) and the voltage is extrapolated to
//! `V' = 2 V½ − V`: the θ = ½ scheme for the frozen-gate linear system, second order in `dt`.
//! The gates keep the same exponential-Euler update at `V'`, which makes them staggered: the
//! gates after step `k` stand for `t = (k + 3/2) dt`, so their update is centred on `V'` at its
//! midpoint (NEURON's `secondorder` does exactly this). Large steps on stiff parts (a short
//! `rs C`, thin compartments) give damped oscillations rather than the smooth backward-Euler
//! error. The adjoint differentiates both schemes.

pub mod adjoint;
pub mod config;
pub mod fit;
mod lanes;
pub mod lyapunov;
pub mod morph;
pub mod net_config;
pub mod network;
pub mod solve;
pub mod tensor;
pub mod tensor_net;
pub mod train;

use std::path::PathBuf;

use neurodiff_models::channel::ChannelKind;

pub use adjoint::{value_and_grad, CellGrad, TraceLoss};
pub use config::CellConfig;
pub use lyapunov::{largest_lyapunov, Lyapunov};
pub use morph::{Branch, Group, Morphology};
pub use network::{Drive, NetGrad, NetProbe, Network, Synapse};
pub use solve::{
    hines_solve, simulate, Clamp, Probe, Protocol, Recording, Scheme, VClamp, Waveform,
};

/// Errors of cells: morphology, channels, settings and the simulation.
#[derive(Debug, thiserror::Error)]
pub enum CellError {
    /// An SWC file is malformed (row 0: the file as a whole).
    #[error("{}: row {row}: {message}", file.display())]
    Swc {
        /// The file.
        file: PathBuf,
        /// The row (1-based line number).
        row: usize,
        /// What is wrong.
        message: String,
    },
    /// A branch of a morphology is not acceptable.
    #[error("branch `{branch}` (index {index}): {message}")]
    Branch {
        /// Its name.
        branch: String,
        /// Its index.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A channel name is not in the catalogue.
    #[error("unknown channel `{name}` ({context}); the channels are: {known}")]
    UnknownChannel {
        /// The name given.
        name: String,
        /// Where it was given.
        context: String,
        /// The names there are.
        known: String,
    },
    /// A parameter of a channel, a calcium pool or the passive properties is unknown or out of
    /// its bounds.
    #[error("{}: parameter `{param}`: {message}", owner(channel))]
    Param {
        /// The channel, the pool (`ca_dynamics_e2`) or `passive`.
        channel: String,
        /// The parameter.
        param: String,
        /// What is wrong.
        message: String,
    },
    /// A setting is not acceptable.
    #[error("setting `{name}`: {message}")]
    Setting {
        /// The key.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A state became NaN or infinite.
    #[error(
        "cell simulation diverged at step {step} (t = {time} ms): `{var}` of compartment {node} \
         ({location}) in batch element {batch} became {value}; try a smaller dt or a weaker \
         stimulus"
    )]
    Diverged {
        /// The step (1-based count of steps taken).
        step: usize,
        /// Its time, ms.
        time: f64,
        /// The variable (`v`, or `channel.gate`).
        var: String,
        /// The compartment (node index).
        node: usize,
        /// Branch and compartment within it.
        location: String,
        /// The batch element.
        batch: usize,
        /// The value.
        value: f64,
    },
}

impl CellError {
    /// A [`CellError::Setting`].
    pub fn setting(name: impl Into<String>, message: impl Into<String>) -> Self {
        CellError::Setting {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// What owns a parameter of [`CellError::Param`], in words.
fn owner(name: &str) -> String {
    match name {
        "passive" => "the passive properties".into(),
        n if n == neurodiff_models::channel::ca_dynamics::NAME => format!("calcium pool `{n}`"),
        n => format!("channel `{n}`"),
    }
}

/// Passive properties of a group.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passive {
    /// Specific membrane capacitance, µF/cm² (NEURON's default 1).
    #[serde(default = "default_cm")]
    pub cm: f64,
    /// Axial resistivity, Ω·cm (NEURON's default 35.4).
    #[serde(default = "default_ra")]
    pub ra: f64,
}

fn default_cm() -> f64 {
    1.0
}
fn default_ra() -> f64 {
    35.4
}

impl Default for Passive {
    fn default() -> Self {
        Passive {
            cm: default_cm(),
            ra: default_ra(),
        }
    }
}

/// A channel placed on a set of compartments, with its parameters per batch element.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The channel.
    pub kind: ChannelKind,
    /// The compartments (node indices) it is on.
    pub nodes: Vec<usize>,
    /// Parameters `[batch][param]` flattened (batch-major): one row per batch element, in the
    /// order of the channel's parameter table.
    pub params: Vec<f64>,
}

/// A calcium pool (`CaDynamics_E2`, `neurodiff_models::channel::ca_dynamics`) on a set of
/// compartments, with its parameters per batch element.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// The compartments (node indices) it is in.
    pub nodes: Vec<usize>,
    /// Parameters `[batch][param]` flattened, in the order of `ca_dynamics::PARAMS`.
    pub params: Vec<f64>,
}

/// Where a compartment sits: its branch and its index within the branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// The centre of compartment `comp` of branch `branch`.
    Compartment {
        /// The branch.
        branch: usize,
        /// The compartment within it (0 proximal).
        comp: usize,
    },
    /// The zero-area node at the distal end of branch `branch`, where its children attach.
    Junction {
        /// The branch.
        branch: usize,
    },
}

/// A cell ready to simulate: its nodes (parents before children), their areas, capacitances
/// and axial conductances, and the channels placed on them.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The morphology it was built from.
    pub morphology: Morphology,
    /// Each node's parent (`usize::MAX` for the root, node 0); always an earlier node.
    pub parent: Vec<usize>,
    /// What each node is.
    pub kind: Vec<NodeKind>,
    /// Membrane area, cm² (0 for junctions).
    pub area: Vec<f64>,
    /// Capacitance, µF (0 for junctions).
    pub cap: Vec<f64>,
    /// Axial conductance to the parent, mS (0 for the root).
    pub g_axial: Vec<f64>,
    /// The nodes of each branch's compartments, proximal to distal.
    pub comps: Vec<Vec<usize>>,
    /// The channels.
    pub channels: Vec<Placement>,
    /// The calcium pools (at most one per compartment).
    pub pools: Vec<Pool>,
    /// Passive properties per branch (what `cap` and `g_axial` were built from; change them
    /// with [`Cell::set_passive`], and a radius with [`Cell::set_radius`]).
    pub passive: Vec<Passive>,
    /// The batch size the placements' parameters are given for.
    pub batch: usize,
}

/// A branch's compartment area (cm²) and the conductance of half a compartment (mS) with
/// passive properties `pas` (see the [module documentation](self)).
fn compartment_geometry(b: &Branch, pas: Passive) -> (f64, f64) {
    let dx = b.length / b.ncomp as f64;
    // r½ in Ω: R_a [Ω·cm] · (Δx/2) [µm → 1e-4 cm] / (π a² [µm² → 1e-8 cm²]).
    let r_half = pas.ra * (0.5 * dx) * 1e4 / (std::f64::consts::PI * b.radius * b.radius);
    let area = 2.0 * std::f64::consts::PI * b.radius * dx * 1e-8; // cm²
    (area, 1e3 / r_half)
}

/// Checks passive properties (`what` names them in the error).
fn check_passive(pas: Passive, what: &str) -> Result<(), CellError> {
    for (name, v) in [("cm", pas.cm), ("ra", pas.ra)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(CellError::setting(
                format!("{what}.{name}"),
                format!("must be positive, got {v}"),
            ));
        }
    }
    Ok(())
}

impl Cell {
    /// Builds the compartments of `morphology` with passive properties `passive(group)`; no
    /// channels yet (see [`Cell::insert`]), batch size `batch`.
    pub fn new(
        morphology: Morphology,
        passive: impl Fn(Group) -> Passive,
        batch: usize,
    ) -> Result<Self, CellError> {
        morphology.validate()?;
        if batch == 0 {
            return Err(CellError::setting("batch", "must be at least 1"));
        }
        let nb = morphology.branches.len();
        let mut has_children = vec![false; nb];
        for b in &morphology.branches {
            if let Some(p) = b.parent {
                has_children[p] = true;
            }
        }
        let mut cell = Cell {
            parent: Vec::new(),
            kind: Vec::new(),
            area: Vec::new(),
            cap: Vec::new(),
            g_axial: Vec::new(),
            comps: vec![Vec::new(); nb],
            channels: Vec::new(),
            pools: Vec::new(),
            passive: Vec::new(),
            batch,
            morphology: Morphology::default(),
        };
        // The nodes and their parents first; areas, capacitances and axial conductances per
        // branch from its geometry and passive properties (`rebuild_branch`).
        let mut junction = vec![usize::MAX; nb];
        for (i, b) in morphology.branches.iter().enumerate() {
            let pas = passive(b.group);
            check_passive(pas, &format!("passive.{}", b.group.name()))?;
            cell.passive.push(pas);
            for c in 0..b.ncomp {
                let id = cell.parent.len();
                cell.parent.push(match (c, b.parent) {
                    (0, Some(p)) => junction[p],
                    (0, None) => usize::MAX,
                    _ => id - 1,
                });
                cell.kind.push(NodeKind::Compartment { branch: i, comp: c });
                cell.comps[i].push(id);
            }
            if has_children[i] {
                let id = cell.parent.len();
                cell.parent.push(id - 1);
                cell.kind.push(NodeKind::Junction { branch: i });
                junction[i] = id;
            }
        }
        let n = cell.parent.len();
        cell.area = vec![0.0; n];
        cell.cap = vec![0.0; n];
        cell.g_axial = vec![0.0; n];
        cell.morphology = morphology;
        for i in 0..nb {
            cell.rebuild_branch(i);
        }
        Ok(cell)
    }

    /// Sets the passive properties of branch `branch` and recomputes its compartments'
    /// capacitances and axial conductances (those to its parent, and its distal junction's).
    pub fn set_passive(&mut self, branch: usize, pas: Passive) -> Result<(), CellError> {
        self.check_branch(branch)?;
        check_passive(
            pas,
            &format!("passive of branch `{}`", self.morphology.name(branch)),
        )?;
        self.passive[branch] = pas;
        self.rebuild_branch(branch);
        Ok(())
    }

    /// Sets the radius (µm) of branch `branch` and recomputes its compartments' areas,
    /// capacitances and axial conductances.
    pub fn set_radius(&mut self, branch: usize, radius: f64) -> Result<(), CellError> {
        self.check_branch(branch)?;
        if !(radius.is_finite() && radius > 0.0) {
            return Err(CellError::Branch {
                branch: self.morphology.name(branch),
                index: branch,
                message: format!("radius must be positive, got {radius} µm"),
            });
        }
        self.morphology.branches[branch].radius = radius;
        self.rebuild_branch(branch);
        Ok(())
    }

    fn check_branch(&self, branch: usize) -> Result<(), CellError> {
        if branch >= self.comps.len() {
            return Err(CellError::setting(
                "branch",
                format!("no branch {branch} (the cell has {})", self.comps.len()),
            ));
        }
        Ok(())
    }

    /// Recomputes branch `branch`'s areas, capacitances and axial conductances from its
    /// geometry and passive properties: its compartments' (a centre joins the one before by
    /// `1/(2 r½)`, the first joins the parent's junction by `1/r½`, a root nothing) and its
    /// distal junction's (`1/r½`, the node after its last compartment; a zero-area node).
    fn rebuild_branch(&mut self, branch: usize) {
        let pas = self.passive[branch];
        let b = &self.morphology.branches[branch];
        let (area, g_half) = compartment_geometry(b, pas);
        let has_parent = b.parent.is_some();
        for (c, &n) in self.comps[branch].iter().enumerate() {
            self.area[n] = area;
            self.cap[n] = pas.cm * area;
            self.g_axial[n] = match (c, has_parent) {
                (0, true) => g_half,
                (0, false) => 0.0,
                _ => 0.5 * g_half,
            };
        }
        if let Some(&last) = self.comps[branch].last() {
            if self.kind.get(last + 1) == Some(&NodeKind::Junction { branch }) {
                self.g_axial[last + 1] = g_half;
            }
        }
    }

    /// The number of nodes (compartments and junctions).
    pub fn n_nodes(&self) -> usize {
        self.parent.len()
    }

    /// The node of branch `branch` at position `x ∈ [0, 1]` along it: the compartment whose
    /// cylinder holds `x` (NEURON's rule for a segment, `x = 1` in the last one).
    pub fn node_at(&self, branch: usize, x: f64) -> Result<usize, CellError> {
        let comps = self.comps.get(branch).ok_or_else(|| {
            CellError::setting(
                "branch",
                format!("no branch {branch} (the cell has {})", self.comps.len()),
            )
        })?;
        if !(0.0..=1.0).contains(&x) {
            return Err(CellError::setting(
                "x",
                format!("position along a branch must lie in [0, 1], got {x}"),
            ));
        }
        let n = comps.len();
        Ok(comps[((x * n as f64) as usize).min(n - 1)])
    }

    /// Where node `i` is, in words (`soma0 compartment 0`, `basal3 end`).
    pub fn location(&self, i: usize) -> String {
        match self.kind[i] {
            NodeKind::Compartment { branch, comp } => {
                format!(
                    "branch `{}` compartment {comp}",
                    self.morphology.name(branch)
                )
            }
            NodeKind::Junction { branch } => {
                format!("branch `{}` distal end", self.morphology.name(branch))
            }
        }
    }

    /// Places channel `kind` on every compartment of the branches for which `on(branch)` is
    /// true, with parameters `params[b]` (a full row per batch element, or one row for all).
    pub fn insert(
        &mut self,
        kind: ChannelKind,
        on: impl Fn(usize, &Branch) -> bool,
        params: &[Vec<f64>],
    ) -> Result<(), CellError> {
        let spec = kind.spec();
        let flat = self.param_rows(spec.name, spec.params, params)?;
        let nodes: Vec<usize> = self
            .morphology
            .branches
            .iter()
            .enumerate()
            .filter(|(i, b)| on(*i, b))
            .flat_map(|(i, _)| self.comps[i].iter().copied())
            .collect();
        if !nodes.is_empty() {
            self.channels.push(Placement {
                kind,
                nodes,
                params: flat,
            });
        }
        Ok(())
    }

    /// Places a calcium pool (`CaDynamics_E2`: `gamma`, `decay` ms, `depth` µm, `min_cai` mM;
    /// see `neurodiff_models::channel::ca_dynamics`) in every compartment of the branches for
    /// which `on(branch)` is true, with parameters `params[b]` (a row per batch element, or one
    /// row for all). A compartment holds at most one pool.
    pub fn insert_pool(
        &mut self,
        on: impl Fn(usize, &Branch) -> bool,
        params: &[Vec<f64>],
    ) -> Result<(), CellError> {
        use neurodiff_models::channel::ca_dynamics::{NAME, PARAMS};
        let flat = self.param_rows(NAME, PARAMS, params)?;
        let nodes: Vec<usize> = self
            .morphology
            .branches
            .iter()
            .enumerate()
            .filter(|(i, b)| on(*i, b))
            .flat_map(|(i, _)| self.comps[i].iter().copied())
            .collect();
        if let Some(&n) = nodes
            .iter()
            .find(|n| self.pools.iter().any(|p| p.nodes.contains(n)))
        {
            return Err(CellError::setting(
                NAME,
                format!("{} has a calcium pool already", self.location(n)),
            ));
        }
        if !nodes.is_empty() {
            self.pools.push(Pool {
                nodes,
                params: flat,
            });
        }
        Ok(())
    }

    /// Checks parameter rows (1 or `batch`, each a full row within bounds) and flattens them.
    fn param_rows(
        &self,
        name: &str,
        specs: &[neurodiff_models::spec::ParamSpec],
        params: &[Vec<f64>],
    ) -> Result<Vec<f64>, CellError> {
        if params.len() != 1 && params.len() != self.batch {
            return Err(CellError::setting(
                format!("channels.{name}"),
                format!(
                    "{} parameter rows for a batch of {} (give 1 or {})",
                    params.len(),
                    self.batch,
                    self.batch
                ),
            ));
        }
        let mut flat = Vec::with_capacity(self.batch * specs.len());
        for b in 0..self.batch {
            let row = &params[if params.len() == 1 { 0 } else { b }];
            if row.len() != specs.len() {
                return Err(CellError::setting(
                    format!("channels.{name}"),
                    format!("{} parameters, expected {}", row.len(), specs.len()),
                ));
            }
            for (p, &v) in specs.iter().zip(row) {
                if !p.admits(v) {
                    return Err(CellError::Param {
                        channel: name.into(),
                        param: p.name.into(),
                        message: format!(
                            "{v} {} (batch element {b}) is outside [{}, {}]",
                            p.unit, p.lower, p.upper
                        ),
                    });
                }
            }
            flat.extend_from_slice(row);
        }
        Ok(flat)
    }

    /// [`Cell::insert`] by channel name, on the branches of `groups`.
    pub fn insert_named(
        &mut self,
        name: &str,
        groups: &[Group],
        params: &[Vec<f64>],
    ) -> Result<(), CellError> {
        let kind = ChannelKind::find(name).ok_or_else(|| CellError::UnknownChannel {
            name: name.into(),
            context: format!(
                "placed on {}",
                groups
                    .iter()
                    .map(|g| g.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            known: ChannelKind::names(),
        })?;
        self.insert(kind, |_, b| groups.contains(&b.group), params)
    }
}
