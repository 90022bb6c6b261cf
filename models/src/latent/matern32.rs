//! Matérn-3/2 kernel, `k(τ) = σ² (1 + √3 r/ℓ) exp(−√3 r/ℓ)` with `r = |τ|`; `τ`, `ℓ` in bins (Rasmussen & Williams
//! 2006, eq. 4.14–4.17).
//!
//! It is the stationary covariance of a linear SDE with a 2-dimensional state
//! (Hartikainen & Särkkä 2010; Särkkä & Solin 2019, §12.3), so GP inference with it is exact
//! Kalman filtering: [`Kernel::sde`] gives that form ([`super::sde::matern`]).

use super::{sde, Kernel, Sde};

/// The Matérn-3/2 kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matern32 {
    /// Length scale ℓ, bins.
    pub ell: f64,
    /// Variance σ² (1 by default).
    pub variance: f64,
}

impl Matern32 {
    /// Unit variance, timescale `ell` bins.
    pub fn new(ell: f64) -> Self {
        Self { ell, variance: 1.0 }
    }
}

impl Kernel for Matern32 {
    fn name(&self) -> &'static str {
        "matern32"
    }
    fn cov(&self, tau: f64) -> f64 {
        let r = tau.abs();
        let a = 3f64.sqrt() * r / self.ell;
        self.variance * (1.0 + a) * (-a).exp()
    }
    fn timescale(&self) -> f64 {
        self.ell
    }
    fn set_timescale(&mut self, ell: f64) {
        self.ell = ell;
    }
    fn sde(&self) -> Option<Sde> {
        Some(sde::matern(2, self.ell, self.variance))
    }
    fn box_clone(&self) -> Box<dyn Kernel> {
        Box::new(*self)
    }
}
