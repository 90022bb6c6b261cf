//! The AR(P) Markov lift of a stationary kernel, multi-output with per-output delays: the
//! state-space prior of one DLAG across-region latent (Gokcen et al. 2022) in the form mbrila
//! uses for its SSM engine, with the exact Gaussian conditional in place of mbrila's heuristic
//! noise.
//!
//! The `D` outputs `x_a(t) = z(t − δ_a)` of one latent, on a grid of unit step (bins), have the
//! lagged covariances `Cov(x_a(t − i), x_b(t − j)) = k(j − i + δ_b − δ_a)` (plus `jitter` on the
//! diagonal at lag 0: a small white noise that keeps the joint covariance positive definite
//! when two delays coincide). The state is the last `P` values, newest first,
//! `s_t = [x_t, x_{t−1}, …, x_{t−P+1}]` (dimension `P·D`), with
//!
//! ```text
//! s_{t+1} = A s_t + q_t,   A = [B; I 0],   B = K₀,past K_past⁻¹,   Q = diag(K₀₀ − B K_past,₀, 0)
//! ```
//!
//! the exact conditional of `x_{t+1}` given the `P` previous values. `P∞` (the joint covariance
//! of `P` consecutive values) is stationary under `(A, Q)` exactly, so the lift reproduces the
//! kernel exactly at lags `< P` and approximates it (as an order-`P` Markov process) beyond.

use super::linalg::{chol_solve, cholesky, Mat, NotPositiveDefinite};
use super::Kernel;

/// A lifted linear-Gaussian state-space prior: `s_{t+1} = A s_t + N(0, Q)`, `s_1 ~ N(0, P∞)`,
/// the outputs `H s_t`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lift {
    /// Transition `A`.
    pub a: Mat,
    /// Process noise covariance `Q` (may be singular: the shifted lags carry none).
    pub q: Mat,
    /// Stationary covariance `P∞` (the initial covariance).
    pub pinf: Mat,
    /// Output rows `H` (`D × state`).
    pub h: Mat,
}

/// The joint covariance of `lags` consecutive values of the `D = delays.len()` outputs, newest
/// first: block `(i, j)` is `Cov(x(t − i), x(t − j))`.
pub fn lagged_cov(k: &dyn Kernel, delays: &[f64], lags: usize, jitter: f64) -> Mat {
    let d = delays.len();
    Mat::from_fn(lags * d, lags * d, |r, c| {
        let (i, a) = (r / d, r % d);
        let (j, b) = (c / d, c % d);
        let tau = j as f64 - i as f64;
        let v = super::delayed_cov(k, tau, delays[a], delays[b]);
        if r == c {
            v + jitter
        } else {
            v
        }
    })
}

/// The AR(`p`) lift of kernel `k` for outputs delayed by `delays` (bins).
pub fn ar_lift(
    k: &dyn Kernel,
    delays: &[f64],
    p: usize,
    jitter: f64,
) -> Result<Lift, NotPositiveDefinite> {
    let d = delays.len();
    let n = p * d;
    let full = lagged_cov(k, delays, p + 1, jitter);
    let past = full.block(d, d, n, n);
    let k0p = full.block(0, d, d, n);
    let k00 = full.block(0, 0, d, d);
    let lp = cholesky(&past)?;
    // B = K0p Kpast⁻¹  ⇔  Kpast Bᵀ = Kp0.
    let b = chol_solve(&lp, &k0p.t()).t();
    let qn = k00.sub(&b.mul_t(&k0p)).sym();
    cholesky(&qn)?;
    let mut a = Mat::zeros(n, n);
    a.set_block(0, 0, &b);
    for i in d..n {
        a[(i, i - d)] = 1.0;
    }
    let mut q = Mat::zeros(n, n);
    q.set_block(0, 0, &qn);
    let pinf = full.block(0, 0, n, n);
    let h = Mat::from_fn(d, n, |i, j| if i == j { 1.0 } else { 0.0 });
    Ok(Lift { a, q, pinf, h })
}

/// The exact Matérn SDE as a [`Lift`] (one output, no delay), discretised on unit steps.
pub fn sde_lift(sde: &super::Sde) -> Lift {
    let (a, q) = sde.discretise(1.0);
    Lift {
        a,
        q,
        pinf: sde.pinf.clone(),
        h: sde.h(),
    }
}
