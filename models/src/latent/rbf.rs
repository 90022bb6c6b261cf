//! Squared exponential (RBF) kernel, the GPFA and DLAG default:
//! `k(τ) = σ² exp(−τ² / (2ℓ²))`, `τ` and `ℓ` in bins (Rasmussen & Williams 2006, eq. 4.9;
//! Yu et al. 2009 eq. 3 without the noise term). It has no finite state-space form: its Markov
//! lift is the AR(P) approximation of [`super::ar`].

use super::Kernel;

/// The squared exponential kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rbf {
    /// Length scale ℓ, bins.
    pub ell: f64,
    /// Variance σ² (1 by default).
    pub variance: f64,
}

impl Rbf {
    /// Unit variance, timescale `ell` bins.
    pub fn new(ell: f64) -> Self {
        Self { ell, variance: 1.0 }
    }
}

impl Kernel for Rbf {
    fn name(&self) -> &'static str {
        "rbf"
    }
    fn cov(&self, tau: f64) -> f64 {
        self.variance * (-0.5 * (tau / self.ell).powi(2)).exp()
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
