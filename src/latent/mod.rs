//! # Multi-region latent-variable models (issue 15): GPFA, DLAG, mDLAG, LDS, ADM
//!
//! Several brain regions recorded at once, as `.npy` arrays `trials × time bins × neurons`
//! per region. Each region's activity is a linear-Gaussian readout of a few latent processes,
//!
//! ```text
//! y_r(t) = C_r x_r(t) + d_r + ε_r(t),   ε_r ~ N(0, diag R_r)
//! ```
//!
//! where `x_r(t)` holds the region's copies of the *across-region* latents, delayed per region
//! (`z_j(t − δ_{r,j})`, DLAG: Gokcen et al. 2022, Nat. Comput. Sci. 2:512), and its own
//! *within-region* latents; GPFA (Yu et al. 2009, J. Neurophysiol. 102:614) is the case of
//! shared latents without delays. Every latent is a stationary Gaussian process with a kernel
//! of `neurodiff_models::latent` (unit variance; timescales and delays in **bins**).
//!
//! Inference is on the host in `f64`: each latent's GP prior is lifted into a linear-Gaussian
//! state-space model (the exact SDE of a Matérn kernel, or the AR(P) lift of any kernel with
//! delays; [`model`]), and posteriors come from a Kalman filter and RTS smoother, sequential
//! or as a parallel associative scan ([`kalman`]), batched over trials. [`fit`] runs EM: the
//! loadings, offsets and noise in closed form, the timescales and delays by gradient ascent
//! on the marginal likelihood (ECME: every step increases it). [`synth`] draws data from the
//! exact GPs with known truth. mDLAG (Gokcen et al. 2023) lets every latent load on any subset
//! of the regions, found by variational automatic relevance determination ([`ard`]); its EM is
//! variational and its trace the evidence lower bound.
//! The adaptive-delay model ADM (Li et al., ICML 2025) lets DLAG's delays vary over the trial,
//! `δ_{r,j}(t)` in a cosine basis, with a time-varying lift and a rank-1 deflation
//! initialisation ([`adm`], following mbrila's formulation where stated there).
//!
//! The linear algebra is the small hand-written module `neurodiff_models::latent::linalg`
//! (see its documentation for why not `faer`).

pub mod adm;
pub mod ard;
pub mod exact;
pub mod fit;
pub mod kalman;
pub mod model;
pub mod synth;

pub use fit::{cosmooth, fit, infer, Cosmooth, Engine, FitResult, Method, Spec};
pub use model::{Data, Lds, ObsParams};

/// Errors of the latent-variable models.
#[derive(Debug, thiserror::Error)]
pub enum LatentError {
    /// A covariance of the filter or smoother stopped being positive definite.
    #[error(
        "{what} is not positive definite at time bin {step}{} (value {value:e}); the \
         covariances are shared by every trial, so all trials fail together: the model has \
         become degenerate (a noise variance near zero, or a timescale far outside the trial)",
        iteration.map(|i| format!(", EM iteration {i}")).unwrap_or_default()
    )]
    NotPositiveDefinite {
        /// Which covariance.
        what: &'static str,
        /// The time bin (0-based).
        step: usize,
        /// The EM iteration, when in a fit.
        iteration: Option<usize>,
        /// The failing pivot's value.
        value: f64,
    },
    /// Bad input data.
    #[error("{0}")]
    Data(String),
    /// A bad setting.
    #[error("setting `{name}`: {message}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl LatentError {
    /// The same error, at time bin `t` (for a covariance of a time-varying lift).
    pub fn at_step(self, t: usize) -> Self {
        match self {
            Self::NotPositiveDefinite {
                what,
                iteration,
                value,
                ..
            } => Self::NotPositiveDefinite {
                what,
                step: t,
                iteration,
                value,
            },
            e => e,
        }
    }
    /// The same error, tagged with the EM iteration.
    pub fn at_iteration(self, it: usize) -> Self {
        match self {
            Self::NotPositiveDefinite {
                what, step, value, ..
            } => Self::NotPositiveDefinite {
                what,
                step,
                iteration: Some(it),
                value,
            },
            e => e,
        }
    }
}
