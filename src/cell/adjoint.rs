//! Gradients of a cell simulation: the discrete adjoint (reverse mode) of exactly the step of
//! [`super::solve`], with nested (multilevel) checkpointing.
//!
//! ## What is differentiated
//! The loss is any function of the recorded samples ([`Recording::data`], `[sample][probe]
//! [batch]`); the caller gives its value per batch element and its gradient with respect to
//! every recorded sample. The result is the gradient with respect to every parameter of every
//! channel placement and batch element (maximal conductances, reversal potentials, any other
//! parameter in a channel's table), laid out like [`super::Placement::params`]. It is the
//! gradient of the discrete simulation (the same operations, in `f64`), not of the ODE, so it
//! agrees with finite differences of [`super::simulate`] to rounding.
//!
//! ## The reverse step
//! The forward step `k` is `A(x_k) v_{k+1} = b(v_k, x_k)` (one tree solve, [`super::hines_solve`]),
//! then `x_{k+1} = x∞(v_{k+1}) + (x_k − x∞(v_{k+1})) e^{−dt φ/τ(v_{k+1})}`. In reverse, with
//! `λ` the adjoint of the state after the step:
//! 1. gates: `λ_v' += Σ λ_x' ∂x'/∂v'`, `∇p += λ_x' ∂x'/∂p`, `λ_x ← λ_x' e^{−dt φ/τ}`, the
//!    partial derivatives by evaluating the channel's own generic `gates` on dual numbers
//!    ([`crate::fused::dual::Dual`]; no derivative is written by hand);
//! 2. the linear solve: `μ = A⁻ᵀ λ_v' = A⁻¹ λ_v'` (`A` is symmetric): **one more tree solve
//!    with the same matrix**, so the solver is never unrolled. Since `dv' = A⁻¹(db − dA v')`,
//!    `∂L/∂b = μ` and `∂L/∂A_ii = −μ_i v'_i` (the off-diagonals are constant);
//! 3. the assembly: `λ_v = (C/dt) μ`; a channel's conductance `G = g(x, p)·area` enters the
//!    diagonal and `G E(p)` the right-hand side, so `∂L/∂G = μ (E − v')` and `∂L/∂E = μ G`,
//!    chained through `g` and `E` on dual numbers to `λ_x` and the parameters;
//! 4. calcium (NEURON's order: the pools advance after the voltage, with the calcium current of
//!    the step's start, and a gate that reads calcium reads the new value): the gates'
//!    derivatives carry `cai'` too; the pool update `cai' = cai∞(ica, p) + (cai − cai∞)
//!    e^{−dt/τ(p)}` gives `∂L/∂ica` and the pools' parameter gradients ([`CellGrad::pools`]);
//!    where a calcium current's reversal potential is the pool's Nernst potential, the assembly
//!    and `ica = Σ g (v − E(cai))` chain back to `cai` as well.
//!
//! The passive part of the system gives the gradients with respect to each branch's `C_m`,
//! `R_a` and radius ([`CellGrad::passive`]): `C/dt` enters the diagonal and `C/dt · v` the
//! right-hand side, so `∂L/∂(C/dt) = μ (v − v')`; an axial conductance `g` between a node and
//! its parent enters both diagonals and both off-diagonals, so
//! `∂L/∂g = −(μ_i − μ_p)(v'_i − v'_p)`; a channel's `∂L/∂area = μ (g E − g v')`; then
//! `C = C_m·area`, `area ∝ a` and `g ∝ a²/R_a` of the branch it belongs to.
//!
//! A voltage clamp's conductance and command are constants of the system, so its reverse step
//! is the same solve; its recorded current `(vc − v)/rs` seeds `λ_v` with `−1/rs` while it is
//! on.
//!
//! Crank–Nicolson solves the same system over `h = dt/2` for `u = v½` and extrapolates
//! `v' = 2u − v`, so its reverse step is the same with three changes: the solve's adjoint input
//! is `λ_u = 2 λ_v'`, the direct use of `v` gives `λ_v = (C/h) μ − λ_v'`, and every term that
//! reads the solution (`g (E − u)`, `μ (v − u)` for `C/h`, the axial `u_i − u_p`, a synapse's
//! `E − u_post`) reads `u` where backward Euler's reads `v'`. The gates are updated at `v'` in
//! both schemes.
//!
//! The initial gates are the steady states at `v_init`, which may depend on the parameters: the
//! last adjoint is chained through them too.
//!
//! ## Checkpointing
//! The reverse sweep needs the states in reverse order. With levels `[c_1, …, c_m]` the segment
//! lengths are `S_j = c_j ⋯ c_m` (`S_{m+1} = 1`): the first forward pass (which also records the
//! traces) keeps the state at every multiple of `S_1`; in reverse, each segment of level `j`
//! (at most `S_j` steps) is run forward again from its checkpoint keeping a state every
//! `S_{j+1}` steps (at most `c_j` states), and its sub-segments are reversed in turn; at the
//! innermost level every state of at most `c_m` steps is kept and the steps are reversed one by
//! one. A checkpoint moves into the segment it starts, so at most `⌈T/S_1⌉ + c_1 + … + c_m − m`
//! states are held at once (reported as [`CellGrad::peak_states`]; exactly that when the
//! lengths divide), for `m` extra forward passes: with `c_j ≈ T^{1/(m+1)}` memory is
//! `O((m+1) T^{1/(m+1)})` states. `[100, 100]` keeps a state every 10,000 steps, then every
//! 100 within a segment, then every step within 100. Every level gives the same gradient: the
//! recomputed states are bit-identical to the first pass.

use neurodiff_models::channel::{ca_dynamics, Calcium};

use super::solve::{hines_solve, Ch, Scheme, Slot, State, Stepper};
use super::{Cell, CellError, Protocol, Recording};
use crate::fused::dual::Dual;
use crate::Result;

/// The dual directions the adjoint's local derivatives carry: a channel's `n_gates` and
/// `1 + n_params` must not exceed it (its gates and parameters together may: the conductance's
/// derivatives then take two passes).
pub const MAX_DIRECTIONS: usize = 8;

type D = Dual<f64, MAX_DIRECTIONS>;

/// The loss of one recording: per batch element, and its gradient with respect to every sample
/// of [`Recording::data`] (same layout).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceLoss {
    /// One loss per batch element.
    pub loss: Vec<f64>,
    /// `∂L/∂data`, `[sample][probe][batch]` like [`Recording::data`].
    pub grad: Vec<f64>,
}

/// The loss of a simulation and its gradient with respect to the channel parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct CellGrad {
    /// The forward simulation's recordings.
    pub recording: Recording,
    /// The loss per batch element.
    pub loss: Vec<f64>,
    /// Per placement ([`Cell::channels`]), `∂L/∂params`, `[batch][param]` like
    /// [`super::Placement::params`].
    pub grad: Vec<Vec<f64>>,
    /// Per calcium pool ([`Cell::pools`]), `∂L/∂params` `[batch][param]` like
    /// [`super::Pool::params`] (`gamma`, `decay`, `depth`, `min_cai`).
    pub pools: Vec<Vec<f64>>,
    /// Per branch ([`Cell::passive`]), `∂L/∂(C_m, R_a, radius)` `[batch][3]`: per µF/cm², Ω·cm
    /// and µm (the fused adjoint; empty from the tensor engine).
    pub passive: Vec<Vec<f64>>,
    /// The most states (voltages and gates of the whole cell and batch) held at once.
    pub peak_states: usize,
    /// The numbers in one state (`n_nodes · batch` voltages plus the gates).
    pub state_size: usize,
}

/// Checks checkpoint levels: at least one, each at least 1, their product finite.
pub fn check_levels(levels: &[usize]) -> Result<(), CellError> {
    if levels.is_empty() {
        return Err(CellError::setting(
            "checkpoint",
            "give at least one level (e.g. 100 or 100,100)",
        ));
    }
    if levels.contains(&0) {
        return Err(CellError::setting(
            "checkpoint",
            format!("every level must be at least 1, got {levels:?}"),
        ));
    }
    let mut p: usize = 1;
    for &c in levels {
        p = p.checked_mul(c).ok_or_else(|| {
            CellError::setting("checkpoint", format!("the product of {levels:?} overflows"))
        })?;
    }
    Ok(())
}

/// Checks that the adjoint covers the step: every channel's derivatives within
/// [`MAX_DIRECTIONS`] dual directions.
pub(crate) fn check_directions(st: &Stepper<'_, f64>) -> Result<(), CellError> {
    for ch in &st.chans {
        let spec = ch.kind.spec();
        // The gates' derivatives carry `v` (and `cai` for a channel that reads it) beside the
        // parameters.
        let before = gate_param_offset(ch);
        if ch.ng > MAX_DIRECTIONS || before + ch.np > MAX_DIRECTIONS {
            return Err(CellError::setting(
                format!("channels.{}", spec.name),
                format!(
                    "{} gates and {} parameters: the adjoint handles at most {MAX_DIRECTIONS} \
                     gates and {} parameters",
                    ch.ng,
                    ch.np,
                    MAX_DIRECTIONS - before
                ),
            ));
        }
        // A calcium current filling a pool is differentiated in one pass (gates and
        // parameters together).
        if st.calcium && ch.ca == Calcium::Current && ch.ng + ch.np > MAX_DIRECTIONS {
            return Err(CellError::setting(
                format!("channels.{}", spec.name),
                format!(
                    "{} gates and {} parameters: a calcium current filling a pool may have at \
                     most {MAX_DIRECTIONS} together in the adjoint",
                    ch.ng, ch.np
                ),
            ));
        }
    }
    Ok(())
}

/// One level of about `√steps` (the default).
pub fn default_levels(steps: usize) -> Vec<usize> {
    vec![((steps as f64).sqrt().ceil() as usize).max(1)]
}

/// Counts the states held.
#[derive(Default)]
pub(crate) struct Held {
    pub(crate) now: usize,
    pub(crate) peak: usize,
}

impl Held {
    pub(crate) fn add(&mut self, n: usize) {
        self.now += n;
        self.peak = self.peak.max(self.now);
    }
}

/// Simulates `protocol` on `cell` in `f64`, evaluates `loss` on the recording and returns the
/// loss and its gradient with respect to every channel parameter, with checkpoint `levels`
/// (see the [module documentation](self)).
pub fn value_and_grad(
    cell: &Cell,
    protocol: &Protocol,
    levels: &[usize],
    loss: impl FnOnce(&Recording) -> Result<TraceLoss>,
) -> Result<CellGrad> {
    check_levels(levels)?;
    let st = Stepper::<f64>::new(cell, protocol)?;
    check_directions(&st)?;
    let steps = protocol.steps;
    let nb = cell.batch;
    let n_probes = protocol.probes.len();
    let seg = segments(levels);

    // First pass: record, keep a state every S_1 steps.
    let mut held = Held::default();
    let mut data = super::solve::recording_buffer((steps + 1) * n_probes * nb);
    let mut state = st.init();
    let mut scratch = st.scratch();
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
    let recording = Recording {
        data,
        n_probes,
        batch: nb,
        dt: protocol.dt,
    };
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

    let mut rev = Reverse {
        st: &st,
        seeds: &seeds,
        lam: State {
            v: vec![0.0; state.v.len()],
            gates: state.gates.iter().map(|g| vec![0.0; g.len()]).collect(),
            cai: vec![0.0; state.cai.len()],
        },
        grad: cell
            .channels
            .iter()
            .map(|p| vec![0.0; p.params.len()])
            .collect(),
        d0: vec![0.0; state.v.len()],
        mu: vec![0.0; state.v.len()],
        vn: vec![0.0; state.v.len()],
        ca: CaBack::new(&st),
        pas: PassiveBack::new(state.v.len()),
        scratch: st.scratch(),
        held,
    };
    let state_size = state.size();
    drop(state);
    rev.seed(steps);
    let mut held = std::mem::take(&mut rev.held);
    sweep(&mut rev, &seg, steps, top, &mut held)?;
    initial_back(&st, &rev.lam, &mut rev.grad);
    Ok(CellGrad {
        recording,
        loss,
        grad: rev.grad,
        pools: rev.ca.grad,
        passive: rev.pas.grad(cell, protocol),
        peak_states: held.peak,
        state_size,
    })
}

/// The reverse sweep's working set.
struct Reverse<'s, 'a> {
    st: &'s Stepper<'a, f64>,
    seeds: &'s [f64],
    /// The adjoint of the current state.
    lam: State<f64>,
    grad: Vec<Vec<f64>>,
    d0: Vec<f64>,
    mu: Vec<f64>,
    /// The new voltage of a Crank–Nicolson step.
    vn: Vec<f64>,
    ca: CaBack,
    pas: PassiveBack,
    scratch: super::solve::Scratch<f64>,
    held: Held,
}

/// The step of the backward-Euler solve: `dt`, or `dt/2` for Crank–Nicolson.
pub(crate) fn solve_step(protocol: &Protocol) -> f64 {
    match protocol.scheme {
        Scheme::BackwardEuler => protocol.dt,
        Scheme::CrankNicolson => 0.5 * protocol.dt,
    }
}

/// The passive part of the reverse sweep: `∂L/∂(C/h)` (`h` the solve's step,
/// [`solve_step`]), `∂L/∂g_axial` (a node's conductance to its parent) and the channels'
/// `∂L/∂area`, per node and batch element, summed over the steps.
pub(crate) struct PassiveBack {
    g_cdt: Vec<f64>,
    g_axial: Vec<f64>,
    /// Filled by [`membrane_back`].
    pub(crate) g_area: Vec<f64>,
}

impl PassiveBack {
    /// Zeros for `len` (nodes × batch) values.
    pub(crate) fn new(len: usize) -> Self {
        PassiveBack {
            g_cdt: vec![0.0; len],
            g_axial: vec![0.0; len],
            g_area: vec![0.0; len],
        }
    }

    /// Adds one step's terms: `C/h` on the diagonal and `C/h · v` on the right-hand side; each
    /// axial conductance on two diagonals and two off-diagonals; with `mu = A⁻¹ λ_u`, `v` the
    /// step's start voltage and `u` the solve's solution.
    pub(crate) fn step(&mut self, parent: &[usize], nb: usize, mu: &[f64], v: &[f64], u: &[f64]) {
        for (i, &p) in parent.iter().enumerate() {
            for b in 0..nb {
                let ii = i * nb + b;
                self.g_cdt[ii] += mu[ii] * (v[ii] - u[ii]);
                if p != usize::MAX {
                    let pp = p * nb + b;
                    self.g_axial[ii] -= (mu[ii] - mu[pp]) * (u[ii] - u[pp]);
                }
            }
        }
    }

    /// `∂L/∂(C_m, R_a, radius)` per branch of `cell`, `[batch][3]`.
    pub(crate) fn grad(&self, cell: &Cell, protocol: &Protocol) -> Vec<Vec<f64>> {
        passive_grad(
            cell,
            solve_step(protocol),
            &self.g_cdt,
            &self.g_axial,
            &self.g_area,
        )
    }
}

/// `CellGrad::passive` from the summed `∂L/∂(C/h)`, `∂L/∂g_axial` and (channels')
/// `∂L/∂area` per node: for the compartments of a branch of radius `a`, `C/h =
/// C_m·area/h` with `area ∝ a`, and every axial conductance the branch contributes (its
/// compartments' to their parents, its junction's) is `∝ a²/R_a`.
pub(crate) fn passive_grad(
    cell: &Cell,
    dt: f64,
    g_cdt: &[f64],
    g_axial: &[f64],
    g_area: &[f64],
) -> Vec<Vec<f64>> {
    let nb = cell.batch;
    let mut out = vec![vec![0.0; 3 * nb]; cell.passive.len()];
    for i in 0..cell.n_nodes() {
        let br = match cell.kind[i] {
            super::NodeKind::Compartment { branch, .. } | super::NodeKind::Junction { branch } => {
                branch
            }
        };
        let (pas, a) = (cell.passive[br], cell.morphology.branches[br].radius);
        for b in 0..nb {
            let k = i * nb + b;
            let (d_cm, d_g) = (g_cdt[k] * cell.area[i] / dt, g_axial[k] * cell.g_axial[i]);
            out[br][3 * b] += d_cm;
            out[br][3 * b + 1] -= d_g / pas.ra;
            // area ∝ a: C/dt and the channels; g ∝ a².
            let d_area = d_cm * pas.cm + g_area[k] * cell.area[i];
            out[br][3 * b + 2] += (d_area + 2.0 * d_g) / a;
        }
    }
    out
}

/// Segment lengths `S_1 … S_m` of checkpoint `levels`, then `S_{m+1} = 1`.
pub(crate) fn segments(levels: &[usize]) -> Vec<usize> {
    let mut seg = vec![1usize; levels.len() + 1];
    for j in (0..levels.len()).rev() {
        seg[j] = seg[j + 1].saturating_mul(levels[j]);
    }
    seg
}

/// A simulation the checkpointed reverse sweep can run: its state, one step forward (to
/// recompute a segment) and one step back (from the step's start state; then the seeds of
/// that sample).
pub(crate) trait Sweep {
    /// The state a checkpoint holds.
    type S: Clone;
    /// Step `k` forward, in place.
    fn forward(&mut self, k: usize, s: &mut Self::S);
    /// Reverses step `k` from its start state `s`, then adds the seeds of sample `k`.
    fn backward(&mut self, k: usize, s: &Self::S) -> Result<()>;
}

/// The reverse sweep over `steps` steps from the first pass's checkpoints `top` (one every
/// `seg[0]` steps), recomputing segments level by level (see the [module documentation](self)).
pub(crate) fn sweep<W: Sweep>(
    w: &mut W,
    seg: &[usize],
    steps: usize,
    top: Vec<W::S>,
    held: &mut Held,
) -> Result<()> {
    for (i, s) in top.into_iter().enumerate().rev() {
        let k0 = i * seg[0];
        let len = seg[0].min(steps - k0);
        // The checkpoint moves into the segment it starts (counted there).
        held.now -= 1;
        segment(w, seg, held, 1, k0, len, s)?;
    }
    Ok(())
}

/// Reverses the `len` steps from `k0`, starting from `start` (the state at `k0`), at level
/// `level` (1-based; the innermost keeps every state).
fn segment<W: Sweep>(
    w: &mut W,
    seg: &[usize],
    held: &mut Held,
    level: usize,
    k0: usize,
    len: usize,
    start: W::S,
) -> Result<()> {
    let sub = seg[level];
    let count = len.div_ceil(sub);
    let mut ckpt = Vec::with_capacity(count);
    let mut s = start;
    for i in 0..count {
        ckpt.push(s.clone());
        held.add(1);
        if i + 1 < count {
            for k in k0 + i * sub..k0 + (i + 1) * sub {
                w.forward(k, &mut s);
            }
        }
    }
    drop(s);
    for i in (0..count).rev() {
        let s = ckpt.pop().expect("one checkpoint per sub-segment");
        let kk = k0 + i * sub;
        held.now -= 1;
        if sub == 1 {
            w.backward(kk, &s)?;
        } else {
            segment(w, seg, held, level + 1, kk, sub.min(k0 + len - kk), s)?;
        }
    }
    Ok(())
}

impl Sweep for Reverse<'_, '_> {
    type S = State<f64>;

    fn forward(&mut self, k: usize, s: &mut State<f64>) {
        self.st.step(k, s, &mut self.scratch);
    }

    fn backward(&mut self, k: usize, s: &State<f64>) -> Result<()> {
        self.step_back(k, s)?;
        self.seed(k);
        Ok(())
    }
}

impl Reverse<'_, '_> {
    /// Adds `∂L/∂(sample k)` to the adjoint of the state at sample `k`.
    fn seed(&mut self, k: usize) {
        let nb = self.st.nb;
        let np = self.st.protocol.probes.len();
        let row = &self.seeds[k * np * nb..(k + 1) * np * nb];
        for p in 0..np {
            seed_probe(self.st, p, k, &row[p * nb..(p + 1) * nb], &mut self.lam);
        }
    }

    /// Reverses step `k` from its start state `s`: on entry `lam` is the adjoint of the state
    /// after the step, on exit of `s`; parameter gradients accumulate in `grad`.
    fn step_back(&mut self, k: usize, s: &State<f64>) -> Result<()> {
        let st = self.st;
        let nb = st.nb;
        let cell = st.cell;
        // Recompute the step's system and solution exactly as the forward step does.
        let sc = &mut self.scratch;
        st.assemble(k, s, &mut sc.d, &mut sc.rhs);
        self.d0.copy_from_slice(&sc.d);
        hines_solve(&cell.parent, &st.a, &mut sc.d, &mut sc.rhs, nb);
        let u = &sc.rhs;
        let vn = new_voltage(st, s, u, &mut self.vn); // v' = v_{k+1}
        membrane_back(
            st,
            s,
            vn,
            u,
            &mut self.d0,
            &mut self.mu,
            &mut self.ca,
            &mut self.lam,
            &mut self.grad,
            &mut self.pas.g_area,
        );
        self.pas.step(&cell.parent, nb, &self.mu, &s.v, u);
        if let Some(e) = st.check_finite(&self.lam, k, "adjoint of ") {
            return Err(e.into());
        }
        Ok(())
    }
}

/// The step's new voltage from the solve's solution `u`: `u` itself for backward Euler,
/// `2u − v` (in `buf`) for Crank–Nicolson.
pub(crate) fn new_voltage<'b>(
    st: &Stepper<'_, f64>,
    s: &State<f64>,
    u: &'b [f64],
    buf: &'b mut [f64],
) -> &'b [f64] {
    match st.protocol.scheme {
        Scheme::BackwardEuler => u,
        Scheme::CrankNicolson => {
            for ((x, &u), &v) in buf.iter_mut().zip(u).zip(&s.v) {
                *x = 2.0 * u - v;
            }
            buf
        }
    }
}

/// The first dual direction of a channel's parameters in [`gates_back`]: after `v` (direction
/// 0) and, for a channel whose gates read calcium, `cai` (direction 1).
pub(crate) fn gate_param_offset(ch: &Ch<f64>) -> usize {
    if ch.ca == Calcium::Reads {
        2
    } else {
        1
    }
}

/// Adds the seeds `g` (`∂L/∂` probe `p` at sample `k`, one per batch element) to `lam`, the
/// adjoint of the state at sample `k`.
pub(crate) fn seed_probe(
    st: &Stepper<'_, f64>,
    p: usize,
    k: usize,
    g: &[f64],
    lam: &mut State<f64>,
) {
    match st.probe_slot(p) {
        Slot::V(at) => {
            for (l, &g) in lam.v[at..at + g.len()].iter_mut().zip(g) {
                *l += g;
            }
        }
        Slot::Gate(c, at) => {
            let ng = st.chans[c].ng;
            for (b, &g) in g.iter().enumerate() {
                lam.gates[c][at + b * ng] += g;
            }
        }
        Slot::Clamp(c) => {
            // i = (vc − v)/rs while the command is on: ∂i/∂v = −1/rs.
            let vc = &st.protocol.vclamps[c];
            for (b, &g) in g.iter().enumerate() {
                if vc.command_at_sample(k, st.protocol.dt, b).is_some() {
                    lam.v[vc.node * st.nb + b] -= g / vc.rs;
                }
            }
        }
    }
}

/// The calcium of a step being reversed, and the gradients of the pools' parameters (all empty
/// when the cell has no calcium).
pub(crate) struct CaBack {
    /// The calcium current density of each node at the step's start, µA/cm² (`[node][batch]`).
    ica: Vec<f64>,
    /// The calcium after the step, mM.
    cai: Vec<f64>,
    /// `∂L/∂ica`.
    lam_ica: Vec<f64>,
    /// Per pool, `∂L/∂params` `[batch][param]`.
    pub(crate) grad: Vec<Vec<f64>>,
}

impl CaBack {
    pub(crate) fn new(st: &Stepper<'_, f64>) -> Self {
        let n = if st.calcium { st.n * st.nb } else { 0 };
        CaBack {
            ica: vec![0.0; n],
            cai: vec![0.0; n],
            lam_ica: vec![0.0; n],
            grad: st
                .cell
                .pools
                .iter()
                .map(|p| vec![0.0; p.params.len()])
                .collect(),
        }
    }
}

/// The membrane's part of reversing a step whose system the caller has assembled (diagonal
/// `d0`, before the solve) and solved (`vn`, the new voltage) from the start state `s`: on
/// entry `lam` is the adjoint of the state after the step and `mu` holds nothing; on exit `lam`
/// is the adjoint of `s` and `mu = A⁻¹ λ_v'` (for terms the caller added to the system).
/// `d0` is used up. In order: the gates ([`gates_back`]), the pools ([`pool_back`]), the
/// solve, the assembly ([`assembly_back`]) and the calcium current the pools read
/// ([`ica_back`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn membrane_back(
    st: &Stepper<'_, f64>,
    s: &State<f64>,
    vn: &[f64],
    u: &[f64],
    d0: &mut [f64],
    mu: &mut [f64],
    ca: &mut CaBack,
    lam: &mut State<f64>,
    grad: &mut [Vec<f64>],
    g_area: &mut [f64],
) {
    if st.calcium {
        // The step's calcium: the current at its start, the pools after it.
        st.calcium_current(s, &mut ca.ica);
        ca.cai.copy_from_slice(&s.cai);
        st.pool_update(&mut ca.cai, &ca.ica);
    }
    gates_back(st, s, vn, &ca.cai, lam, grad);
    pool_back(st, s, ca, lam);
    // The solve: μ = A⁻¹ λ_u with the same matrix, where λ_u = λ_v' for backward Euler and
    // 2 λ_v' for Crank–Nicolson (v' = 2u − v).
    mu.copy_from_slice(&lam.v);
    if st.protocol.scheme == Scheme::CrankNicolson {
        mu.iter_mut().for_each(|m| *m *= 2.0);
    }
    hines_solve(&st.cell.parent, &st.a, d0, mu, st.nb);
    assembly_back(st, s, u, mu, lam, grad, g_area);
    ica_back(st, s, &ca.lam_ica, lam, grad);
}

/// Step 1 of a reverse step (gates): with `vn` the step's new voltage and `cai` its new calcium
/// (empty without calcium), `lam` the adjoint of the state after the step, adds
/// `λ_x' ∂x'/∂v'` to `lam.v`, `λ_x' ∂x'/∂cai'` to `lam.cai` (gates that read calcium),
/// `λ_x' ∂x'/∂p` to `grad` and replaces `lam.gates` by `λ_x' ∂x'/∂x`. `s` is the step's start
/// state.
pub(crate) fn gates_back(
    st: &Stepper<'_, f64>,
    s: &State<f64>,
    vn: &[f64],
    cai: &[f64],
    lam: &mut State<f64>,
    grad: &mut [Vec<f64>],
) {
    let nb = st.nb;
    let dt = D::cst(st.dt);
    // x' = x∞(v', cai') + (x − x∞(v', cai')) e^{−dt φ/τ(v', cai')}.
    for (c, (ch, pl)) in st.chans.iter().zip(&st.cell.channels).enumerate() {
        let (ng, np) = (ch.ng, ch.np);
        if ng == 0 {
            continue;
        }
        let reads = ch.ca == Calcium::Reads;
        let o = gate_param_offset(ch);
        let phi = D::cst(ch.phi);
        let (mut inf, mut rate) = ([D::cst(0.0); MAX_DIRECTIONS], [D::cst(0.0); MAX_DIRECTIONS]);
        let mut p = [D::cst(0.0); MAX_DIRECTIONS];
        for (j, &node) in pl.nodes.iter().enumerate() {
            for b in 0..nb {
                let idx = node * nb + b;
                for (q, pq) in p[..np].iter_mut().enumerate() {
                    *pq = D::var(ch.params[b * np + q], o + q);
                }
                let v = D::var(vn[idx], 0);
                let ca = reads.then(|| D::var(cai[idx], 1));
                ch.kind
                    .gates_rate(v, ca, &p[..np], &mut inf[..ng], &mut rate[..ng]);
                let row = (j * nb + b) * ng;
                let x = &s.gates[c][row..row + ng];
                let mut xn = [D::cst(0.0); MAX_DIRECTIONS];
                for g in 0..ng {
                    xn[g] = D::cst(x[g]);
                }
                // The same function as the forward step, on dual numbers; `e` alone is
                // ∂x'/∂x.
                super::lanes::gate_update(dt, phi, &inf[..ng], &rate[..ng], &mut xn[..ng]);
                let gr = &mut grad[c][b * np..(b + 1) * np];
                for g in 0..ng {
                    let lx = lam.gates[c][row + g];
                    if lx == 0.0 {
                        continue;
                    }
                    lam.v[idx] += lx * xn[g].eps[0];
                    if reads {
                        lam.cai[idx] += lx * xn[g].eps[1];
                    }
                    for (q, gq) in gr.iter_mut().enumerate() {
                        *gq += lx * xn[g].eps[o + q];
                    }
                    let e = (-st.dt * ch.phi * rate[g].re).exp();
                    lam.gates[c][row + g] = lx * e;
                }
            }
        }
    }
}

/// Step 2 of a reverse step (the pools), after [`gates_back`]: with `lam.cai` the adjoint of
/// the calcium after the step, `cai' = cai∞(ica, p) + (cai − cai∞) e^{−dt/τ(p)}` (derivatives
/// on dual numbers from `ca_dynamics`' own functions) gives `∂L/∂ica` (`ca.lam_ica`), the
/// pools' parameter gradients, and `lam.cai ← λ_cai' e^{−dt/τ}`. Calcium where there is no
/// pool is constant.
fn pool_back(st: &Stepper<'_, f64>, s: &State<f64>, ca: &mut CaBack, lam: &mut State<f64>) {
    if !st.calcium {
        return;
    }
    let nb = st.nb;
    let np = ca_dynamics::PARAMS.len();
    ca.lam_ica.iter_mut().for_each(|x| *x = 0.0);
    let dt = D::cst(st.dt);
    for ((pool, params), grad) in st.cell.pools.iter().zip(&st.pool_params).zip(&mut ca.grad) {
        for b in 0..nb {
            let mut p = [D::cst(0.0); MAX_DIRECTIONS];
            for (q, pq) in p[..np].iter_mut().enumerate() {
                *pq = D::var(params[b * np + q], 1 + q);
            }
            for &node in &pool.nodes {
                let idx = node * nb + b;
                let l = lam.cai[idx];
                if l == 0.0 {
                    continue;
                }
                // The same operations as `Stepper::pool_update`.
                let inf = ca_dynamics::steady(D::var(ca.ica[idx], 0), &p[..np]);
                let e = num_traits::Float::exp(-dt / ca_dynamics::tau(&p[..np]));
                let next = inf + (D::cst(s.cai[idx]) - inf) * e;
                ca.lam_ica[idx] = l * next.eps[0];
                for (q, gq) in grad[b * np..(b + 1) * np].iter_mut().enumerate() {
                    *gq += l * next.eps[1 + q];
                }
                lam.cai[idx] = l * e.re;
            }
        }
    }
}

/// The Nernst potential of calcium at `cai` and its derivative `∂E/∂cai` (mV/mM), from
/// `ca_dynamics::nernst` on a dual number.
fn nernst_and_slope(cai: f64, celsius: f64) -> (f64, f64) {
    let e = ca_dynamics::nernst(Dual::<f64, 1>::var(cai, 0), celsius);
    (e.re, e.eps[0])
}

/// Step 4 of a reverse step (the assembly), with `mu = A⁻¹ λ_u` and `u` the solve's solution
/// (`v'` for backward Euler; `v½` for Crank–Nicolson): sets `lam.v = (C/h) μ` (less `λ_v'`
/// for Crank–Nicolson, whose `v' = 2u − v` reads `v` directly; `h` is `dt` or `dt/2`) and
/// chains each channel's `G = g(x, p)·area` (diagonal) and `G·E` (right-hand side) to
/// `lam.gates` and `grad` (and, where `E` is a pool's Nernst potential, to `lam.cai`); adds the
/// channels' `∂L/∂area` per node and batch element to `g_area` (unless it is empty).
pub(crate) fn assembly_back(
    st: &Stepper<'_, f64>,
    s: &State<f64>,
    u: &[f64],
    mu: &[f64],
    lam: &mut State<f64>,
    grad: &mut [Vec<f64>],
    g_area: &mut [f64],
) {
    let nb = st.nb;
    // Crank–Nicolson's `v' = 2u − v` also reads `v` directly: `λ_v = (C/h) μ − λ_v'`.
    let direct = match st.protocol.scheme {
        Scheme::BackwardEuler => 0.0,
        Scheme::CrankNicolson => 1.0,
    };
    for i in 0..st.n {
        for b in 0..nb {
            let ii = i * nb + b;
            lam.v[ii] = st.cdt[i] * mu[ii] - direct * lam.v[ii];
        }
    }
    for (c, (ch, pl)) in st.chans.iter().zip(&st.cell.channels).enumerate() {
        let (ng, np) = (ch.ng, ch.np);
        // Gates and parameters as dual directions `0..ng` and `ng..ng + np` in one pass, or,
        // when they are more than the dual numbers carry (`hh`: 3 + 6), in two passes: the
        // gates' directions, then the parameters' (each from direction 0).
        let passes: &[(bool, Option<usize>)] = if ng + np > MAX_DIRECTIONS {
            &[(true, None), (false, Some(0))]
        } else {
            &[(true, Some(ng))]
        };
        let mut xp = [D::cst(0.0); 2 * MAX_DIRECTIONS];
        for b in 0..nb {
            let pb = &ch.params[b * np..(b + 1) * np];
            for &(gate_dirs, param_dirs) in passes {
                for q in 0..np {
                    xp[ng + q] = match param_dirs {
                        Some(o) => D::var(pb[q], o + q),
                        None => D::cst(pb[q]),
                    };
                }
                for (j, &node) in pl.nodes.iter().enumerate() {
                    let idx = node * nb + b;
                    let m = mu[idx];
                    if m == 0.0 {
                        continue;
                    }
                    let row = (j * nb + b) * ng;
                    for (g, xg) in xp[..ng].iter_mut().enumerate() {
                        let x = s.gates[c][row + g];
                        *xg = if gate_dirs { D::var(x, g) } else { D::cst(x) };
                    }
                    let ma = m * st.area[node];
                    // The current's part of the residual is `A (g E − g v)`
                    // (`Channel::drive`); where `E` is a pool's Nernst potential, `g` alone
                    // carries the gates and parameters and `E` the calcium.
                    let (g, ge) = if st.pooled_current(ch, node) {
                        let (e, slope) = nernst_and_slope(s.cai[idx], st.protocol.celsius);
                        let g = ch.kind.conductance(&xp[..ng], &xp[ng..ng + np]);
                        if gate_dirs {
                            lam.cai[idx] += ma * g.re * slope;
                        }
                        (g, g * D::cst(e))
                    } else {
                        ch.kind.drive(&xp[..ng], &xp[ng..ng + np])
                    };
                    let vv = u[idx];
                    if gate_dirs {
                        for q in 0..ng {
                            lam.gates[c][row + q] += ma * (ge.eps[q] - vv * g.eps[q]);
                        }
                        if !g_area.is_empty() {
                            g_area[idx] += m * (ge.re - vv * g.re);
                        }
                    }
                    if let Some(o) = param_dirs {
                        let gr = &mut grad[c][b * np..(b + 1) * np];
                        for (q, gq) in gr.iter_mut().enumerate() {
                            *gq += ma * (ge.eps[o + q] - vv * g.eps[o + q]);
                        }
                    }
                }
            }
        }
    }
}

/// Step 5 of a reverse step, after [`assembly_back`]: chains `∂L/∂ica` (from [`pool_back`])
/// through the calcium current density at the step's start,
/// `ica = Σ g(x, p) (v − E(cai))` over the calcium currents of each compartment with a pool
/// (`Stepper::calcium_current`), to `lam.v`, `lam.gates`, `lam.cai` and `grad`.
fn ica_back(
    st: &Stepper<'_, f64>,
    s: &State<f64>,
    lam_ica: &[f64],
    lam: &mut State<f64>,
    grad: &mut [Vec<f64>],
) {
    if lam_ica.is_empty() {
        return;
    }
    let nb = st.nb;
    let mut xp = [D::cst(0.0); MAX_DIRECTIONS];
    for (c, (ch, pl)) in st.chans.iter().zip(&st.cell.channels).enumerate() {
        if ch.ca != Calcium::Current {
            continue;
        }
        // One pass: `check_directions` holds `ng + np` within the dual directions.
        let (ng, np) = (ch.ng, ch.np);
        for b in 0..nb {
            for q in 0..np {
                xp[ng + q] = D::var(ch.params[b * np + q], ng + q);
            }
            for (j, &node) in pl.nodes.iter().enumerate() {
                let idx = node * nb + b;
                let l = lam_ica[idx];
                if l == 0.0 || !st.pooled_current(ch, node) {
                    continue;
                }
                let row = (j * nb + b) * ng;
                for (g, (xg, &x)) in xp.iter_mut().zip(&s.gates[c][row..row + ng]).enumerate() {
                    *xg = D::var(x, g);
                }
                let g = ch.kind.conductance(&xp[..ng], &xp[ng..ng + np]);
                let (e, slope) = nernst_and_slope(s.cai[idx], st.protocol.celsius);
                let drive = s.v[idx] - e;
                lam.v[idx] += l * g.re;
                lam.cai[idx] -= l * g.re * slope;
                for q in 0..ng {
                    lam.gates[c][row + q] += l * drive * g.eps[q];
                }
                for q in 0..np {
                    grad[c][b * np + q] += l * drive * g.eps[ng + q];
                }
            }
        }
    }
}

/// Chains the adjoint `lam.gates` of the initial gates through their steady states at
/// `v_init` (and NEURON's default calcium, as [`Stepper::init`]) into `grad`.
pub(crate) fn initial_back(st: &Stepper<'_, f64>, lam: &State<f64>, grad: &mut [Vec<f64>]) {
    let nb = st.nb;
    let v0 = D::cst(st.protocol.v_init);
    let cai0 = D::cst(ca_dynamics::CAI_DEFAULT);
    for (c, (ch, pl)) in st.chans.iter().zip(&st.cell.channels).enumerate() {
        let (ng, np) = (ch.ng, ch.np);
        if ng == 0 {
            continue;
        }
        let (mut inf, mut tau) = ([D::cst(0.0); MAX_DIRECTIONS], [D::cst(0.0); MAX_DIRECTIONS]);
        let mut p = [D::cst(0.0); MAX_DIRECTIONS];
        for b in 0..nb {
            for (q, pq) in p[..np].iter_mut().enumerate() {
                *pq = D::var(ch.params[b * np + q], q);
            }
            ch.kind
                .gates_ca(v0, cai0, &p[..np], &mut inf[..ng], &mut tau[..ng]);
            for j in 0..pl.nodes.len() {
                let row = (j * nb + b) * ng;
                for (g, infg) in inf[..ng].iter().enumerate() {
                    let lx = lam.gates[c][row + g];
                    for q in 0..np {
                        grad[c][b * np + q] += lx * infg.eps[q];
                    }
                }
            }
        }
    }
}
