//! The largest Lyapunov exponent of a cell (Benettin et al. 1980), by forward-mode
//! sensitivities through the solver (what Jaxley computes with JVPs).
//!
//! The solver's step is run on dual numbers ([`crate::fused::dual::Dual`]) with one derivative
//! direction: alongside the state `x` it carries a tangent vector `u` over every state
//! variable (voltages, gates, calcium) and maps it by the step's Jacobian, `u ← J(x) u`, exact to
//! rounding (no finite differences, no Jacobian matrix). After every step the tangent is
//! renormalised and the log of its growth accumulated; after a transient of `transient` steps
//! (which also lets `u` turn towards the most unstable direction) the estimate is
//!
//! ```text
//! λ = 1/((steps − transient) dt) · Σ_{k > transient} ln ‖u_k‖      (1/ms)
//! ```
//!
//! with `‖u_{k−1}‖ = 1`. It is the exponent of the discrete map the solver integrates (backward
//! Euler or Crank–Nicolson for `V`, exponential Euler for the gates), which tends to the ODE's as
//! `dt → 0`. Sign: `λ > 0` chaos, `λ ≈ 0` a limit cycle (periodic firing: the direction along the
//! orbit neither grows nor shrinks), `λ < 0` a stable rest state (then `λ` is the slowest decay
//! rate, e.g. `−g/C` for a passive compartment). Each batch element has its own exponent. The
//! norm is the Euclidean one over all state variables (mV, 1, mM together): the limit does not
//! depend on the norm, only the transient does.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::solve::{State, Stepper};
use super::{Cell, CellError, Protocol};
use crate::fused::dual::Dual;

type D = Dual<f64, 1>;

/// The result of [`largest_lyapunov`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lyapunov {
    /// The largest Lyapunov exponent of each batch element, 1/ms.
    pub exponent: Vec<f64>,
    /// The running estimate of each batch element every `sample_every` steps after the
    /// transient (`[sample][batch]`), 1/ms: it should settle.
    pub running: Vec<Vec<f64>>,
    /// Steps between the entries of `running`.
    pub sample_every: usize,
    /// Steps discarded at the start.
    pub transient: usize,
    /// Steps averaged over.
    pub measured: usize,
    /// Time step, ms.
    pub dt: f64,
}

/// The largest Lyapunov exponent of `cell` under `protocol` (see the module documentation):
/// `protocol.steps` steps, the first `transient` discarded; the initial tangent is a random
/// unit vector drawn from `seed`.
pub fn largest_lyapunov(
    cell: &Cell,
    protocol: &Protocol,
    transient: usize,
    seed: u64,
) -> Result<Lyapunov, CellError> {
    let steps = protocol.steps;
    if transient >= steps {
        return Err(CellError::setting(
            "lyapunov",
            format!(
                "the transient ({transient} steps) must be shorter than the run ({steps} steps)"
            ),
        ));
    }
    let st = Stepper::<D>::new(cell, protocol)?;
    let nb = st.nb;
    let mut state = st.init();
    let mut scratch = st.scratch();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for_each_tangent(&st, &mut state, |_, u| *u = StandardNormal.sample(&mut rng));
    normalise(&st, &mut state);
    let measured = steps - transient;
    let sample_every = (measured / 200).max(1);
    let mut sum = vec![0.0; nb];
    let mut running = Vec::new();
    for k in 0..steps {
        st.step(k, &mut state, &mut scratch);
        if let Some(e) = st.check_finite(&state, k + 1, "") {
            return Err(e);
        }
        let growth = normalise(&st, &mut state);
        if let Some(b) = growth.iter().position(|g| !(g.is_finite() && *g > 0.0)) {
            return Err(CellError::setting(
                "lyapunov",
                format!(
                    "the tangent of batch element {b} became {} at step {} (t = {} ms)",
                    growth[b],
                    k + 1,
                    (k + 1) as f64 * protocol.dt
                ),
            ));
        }
        if k >= transient {
            for (s, g) in sum.iter_mut().zip(&growth) {
                *s += g.ln();
            }
            let done = k + 1 - transient;
            if done.is_multiple_of(sample_every) {
                running.push(
                    sum.iter()
                        .map(|s| s / (done as f64 * protocol.dt))
                        .collect(),
                );
            }
        }
    }
    Ok(Lyapunov {
        exponent: sum
            .iter()
            .map(|s| s / (measured as f64 * protocol.dt))
            .collect(),
        running,
        sample_every,
        transient,
        measured,
        dt: protocol.dt,
    })
}

/// Calls `f(batch element, tangent component)` on every tangent component of `state`.
fn for_each_tangent(st: &Stepper<'_, D>, state: &mut State<D>, mut f: impl FnMut(usize, &mut f64)) {
    let nb = st.nb;
    for (i, x) in state.v.iter_mut().enumerate() {
        f(i % nb, &mut x.eps[0]);
    }
    for (i, x) in state.cai.iter_mut().enumerate() {
        f(i % nb, &mut x.eps[0]);
    }
    for (ch, gates) in st.chans.iter().zip(&mut state.gates) {
        for (i, x) in gates.iter_mut().enumerate() {
            f((i / ch.ng) % nb, &mut x.eps[0]);
        }
    }
}

/// Scales each batch element's tangent to unit length; returns the lengths it had.
fn normalise(st: &Stepper<'_, D>, state: &mut State<D>) -> Vec<f64> {
    let mut sq = vec![0.0; st.nb];
    for_each_tangent(st, state, |b, u| sq[b] += *u * *u);
    let norm: Vec<f64> = sq.into_iter().map(f64::sqrt).collect();
    for_each_tangent(st, state, |b, u| *u /= norm[b]);
    norm
}
