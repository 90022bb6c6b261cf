//! # Latent-variable models: kernels and state-space priors
//!
//! The priors of the multi-region latent-variable models (GPFA, DLAG; issue 15): each latent
//! process `z(t)` is a stationary Gaussian process with a kernel `k(τ)`, and region `r` sees it
//! delayed, `x_r(t) = z(t − δ_r)`, so that
//!
//! ```text
//! Cov(x_a(s), x_b(t)) = k(s − t + δ_b − δ_a)            (see [`delayed_cov`])
//! ```
//!
//! (a positive `δ_r` means region `r` receives the signal later). Time, lags `τ`, timescales and
//! delays are all in **time bins** (multiply by the bin width for seconds); kernels have unit
//! variance at `τ = 0` unless a `variance` is set (the latents' scale lives in the loading
//! matrices, as in GPFA).
//!
//! - [`Kernel`]: the extension point (one small file per kernel): [`Rbf`],
//!   [`Matern12`], [`Matern32`], [`Matern52`] and [`RationalQuadratic`] (the custom-kernel
//!   example: it implements only `cov` and its timescale);
//! - [`sde`]: the exact finite state-space (SDE) form of the Matérn-ν/2 kernels and its exact
//!   discretisation, which turns GP inference into Kalman filtering;
//! - [`ar`]: the AR(P) Markov lift of any stationary kernel, with per-output delays (the
//!   multi-output process of one DLAG across-region latent);
//! - [`linalg`]: the small dense `f64` linear algebra both need (and the inference in
//!   `neurodiff::latent` uses).
//!
//! References: Rasmussen & Williams (2006) *Gaussian Processes for Machine Learning*, ch. 4
//! (kernels); Hartikainen & Särkkä (2010) *Kalman filtering and smoothing solutions to temporal
//! Gaussian process regression models*, IEEE MLSP; Särkkä & Solin (2019) *Applied Stochastic
//! Differential Equations*, §12.3 (Matérn SDEs); Yu et al. (2009) *GPFA*, J. Neurophysiol.
//! 102:614; Gokcen et al. (2022) *DLAG*, Nat. Comput. Sci. 2:512.

pub mod ar;
pub mod linalg;
pub mod matern12;
pub mod matern32;
pub mod matern52;
pub mod rational_quadratic;
pub mod rbf;
pub mod sde;

pub use matern12::Matern12;
pub use matern32::Matern32;
pub use matern52::Matern52;
pub use rational_quadratic::RationalQuadratic;
pub use rbf::Rbf;
pub use sde::Sde;

use std::fmt::Debug;

/// A stationary covariance function of a scalar latent process, lags in time bins.
///
/// To add a kernel: one file with a struct holding its timescale (and any other
/// hyperparameters), `cov`, the timescale accessors and `box_clone`; give `sde` only if the
/// kernel has an exact finite state-space form (otherwise the AR(P) lift is used).
pub trait Kernel: Send + Sync + Debug {
    /// The name (as on the command line).
    fn name(&self) -> &'static str;
    /// `k(τ)`, `τ` in bins; must be even and positive definite.
    fn cov(&self, tau: f64) -> f64;
    /// The timescale (length scale) `ℓ`, in bins.
    fn timescale(&self) -> f64;
    /// Sets the timescale `ℓ` (bins, > 0).
    fn set_timescale(&mut self, ell: f64);
    /// The exact state-space (SDE) form, where one exists (the Matérn half-integer kernels).
    fn sde(&self) -> Option<Sde> {
        None
    }
    /// A boxed copy.
    fn box_clone(&self) -> Box<dyn Kernel>;
}

impl Clone for Box<dyn Kernel> {
    fn clone(&self) -> Self {
        self.box_clone()
    }
}

/// `Cov(x_a(s), x_b(t))` for `x_r(t) = z(t − δ_r)`: `k(τ + δ_b − δ_a)` with `τ = s − t`, all in
/// bins.
pub fn delayed_cov(k: &dyn Kernel, tau: f64, delta_a: f64, delta_b: f64) -> f64 {
    k.cov(tau + delta_b - delta_a)
}

/// The kernels by name: `rbf`, `matern12`, `matern32`, `matern52`, `rq` (rational quadratic,
/// α = 1), each with timescale `ell` bins. `None` for an unknown name.
pub fn kernel_by_name(name: &str, ell: f64) -> Option<Box<dyn Kernel>> {
    Some(match name {
        "rbf" => Box::new(Rbf::new(ell)),
        "matern12" => Box::new(Matern12::new(ell)),
        "matern32" => Box::new(Matern32::new(ell)),
        "matern52" => Box::new(Matern52::new(ell)),
        "rq" => Box::new(RationalQuadratic::new(ell, 1.0)),
        _ => return None,
    })
}

/// The names [`kernel_by_name`] accepts.
pub const KERNEL_NAMES: &[&str] = &["rbf", "matern12", "matern32", "matern52", "rq"];
