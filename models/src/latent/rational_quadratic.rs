//! Rational quadratic kernel — the custom-kernel example: a kernel needs only `cov` and its
//! timescale; without an exact state-space form it is lifted by AR(P) ([`super::ar`]).
//!
//! `k(τ) = σ² (1 + τ² / (2αℓ²))^(−α)`, `τ`, `ℓ` in bins, `α > 0` dimensionless: a scale mixture
//! of RBF kernels, tending to the RBF as `α → ∞` (Rasmussen & Williams 2006, eq. 4.19).

use super::Kernel;

/// The rational quadratic kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RationalQuadratic {
    /// Length scale ℓ, bins.
    pub ell: f64,
    /// Shape α (dimensionless, > 0).
    pub alpha: f64,
    /// Variance σ² (1 by default).
    pub variance: f64,
}

impl RationalQuadratic {
    /// Unit variance, timescale `ell` bins, shape `alpha`.
    pub fn new(ell: f64, alpha: f64) -> Self {
        Self {
            ell,
            alpha,
            variance: 1.0,
        }
    }
}

impl Kernel for RationalQuadratic {
    fn name(&self) -> &'static str {
        "rq"
    }
    fn cov(&self, tau: f64) -> f64 {
        self.variance
            * (1.0 + tau * tau / (2.0 * self.alpha * self.ell * self.ell)).powf(-self.alpha)
    }
    fn timescale(&self) -> f64 {
        self.ell
    }
    fn set_timescale(&mut self, ell: f64) {
        self.ell = ell;
    }
    fn box_clone(&self) -> Box<dyn Kernel> {
        Box::new(*self)
    }
}
