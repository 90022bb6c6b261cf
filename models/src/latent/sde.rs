//! The exact state-space (SDE) form of the Matérn-ν/2 kernels, ν ∈ {1, 3, 5}, and its exact
//! discretisation on a grid of step `Δ` bins.
//!
//! A Matérn-ν/2 process (`p = ν/2 + 1/2 = m − 1`, state dimension `m`) is the first component
//! of the linear time-invariant SDE
//!
//! ```text
//! ds/dt = F s + L w(t),   w white noise of spectral density Qc,   z(t) = H s(t),  H = [1 0 …]
//! ```
//!
//! with `F` the companion matrix of `(λ + d/dt)^m`, `λ = √(2·(m − 1/2))/ℓ` (so `λ = 1/ℓ`,
//! `√3/ℓ`, `√5/ℓ`), `L = e_m` and `Qc = σ² (m−1)!² (2λ)^(2m−1) / (2m−2)!`
//! (Hartikainen & Särkkä 2010, eq. 11–13; Särkkä & Solin 2019, §12.3). Its stationary
//! covariance `P∞` solves `F P∞ + P∞ Fᵀ + L Qc Lᵀ = 0`; on a grid
//!
//! ```text
//! s_{k+1} = A s_k + q_k,   A = expm(F Δ),   Q = Cov(q_k) = P∞ − A P∞ Aᵀ
//! ```
//!
//! exactly (the stationary form of the discretised noise integral), so that
//! `H P∞ (Aᵀ)^k Hᵀ = k(kΔ)` for every `k` — the test `latent` in `models/tests` checks it.

use super::linalg::{expm, Mat};

/// A linear time-invariant SDE whose stationary first component has a Matérn covariance.
#[derive(Debug, Clone, PartialEq)]
pub struct Sde {
    /// Drift matrix `F` (1/bin).
    pub f: Mat,
    /// Noise input `L` (column).
    pub l: Mat,
    /// White-noise spectral density `Qc`.
    pub qc: f64,
    /// Stationary covariance `P∞`.
    pub pinf: Mat,
}

/// The Matérn SDE with state dimension `m` (1, 2 or 3: ν = 1/2, 3/2, 5/2), timescale `ell`
/// bins and variance `var`.
///
/// # Panics
/// On `m` outside 1..=3.
pub fn matern(m: usize, ell: f64, var: f64) -> Sde {
    match m {
        1 => {
            let lam = 1.0 / ell;
            Sde {
                f: Mat::from_vec(1, 1, vec![-lam]),
                l: Mat::from_vec(1, 1, vec![1.0]),
                qc: 2.0 * var * lam,
                pinf: Mat::from_vec(1, 1, vec![var]),
            }
        }
        2 => {
            let lam = 3f64.sqrt() / ell;
            Sde {
                f: Mat::from_vec(2, 2, vec![0.0, 1.0, -lam * lam, -2.0 * lam]),
                l: Mat::from_vec(2, 1, vec![0.0, 1.0]),
                qc: 4.0 * var * lam.powi(3),
                pinf: Mat::diag(&[var, lam * lam * var]),
            }
        }
        3 => {
            let lam = 5f64.sqrt() / ell;
            let kap = lam * lam * var / 3.0;
            Sde {
                f: Mat::from_vec(
                    3,
                    3,
                    vec![
                        0.0,
                        1.0,
                        0.0,
                        0.0,
                        0.0,
                        1.0,
                        -lam.powi(3),
                        -3.0 * lam * lam,
                        -3.0 * lam,
                    ],
                ),
                l: Mat::from_vec(3, 1, vec![0.0, 0.0, 1.0]),
                qc: 16.0 / 3.0 * var * lam.powi(5),
                pinf: Mat::from_vec(
                    3,
                    3,
                    vec![var, 0.0, -kap, 0.0, kap, 0.0, -kap, 0.0, lam.powi(4) * var],
                ),
            }
        }
        _ => panic!("sde::matern: state dimension {m} is not 1, 2 or 3"),
    }
}

impl Sde {
    /// The state dimension.
    pub fn dim(&self) -> usize {
        self.f.rows
    }
    /// The observation row `H = [1, 0, …]` (the process is the first component).
    pub fn h(&self) -> Mat {
        Mat::from_fn(1, self.dim(), |_, j| if j == 0 { 1.0 } else { 0.0 })
    }
    /// The exact discretisation on a step of `dt` bins: `(A, Q)` with `A = expm(F dt)` and
    /// `Q = P∞ − A P∞ Aᵀ` (symmetrised).
    pub fn discretise(&self, dt: f64) -> (Mat, Mat) {
        let a = expm(&self.f.scale(dt));
        let q = self.pinf.sub(&a.mul(&self.pinf).mul_t(&a)).sym();
        (a, q)
    }
    /// The residual of the Lyapunov equation `F P∞ + P∞ Fᵀ + L Qc Lᵀ` (zero for a correct
    /// `P∞`).
    pub fn lyapunov_residual(&self) -> Mat {
        let fp = self.f.mul(&self.pinf);
        fp.add(&fp.t()).add(&self.l.mul_t(&self.l).scale(self.qc))
    }
}
