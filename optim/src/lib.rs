//! # neurodiff-optim
//!
//! Fitting machinery for neurodiff that sees only tensors and gradients, generic over the Burn
//! backend `B`:
//!
//! - [`transform`]: bounded parameters through the inverse-sigmoid (logit) transform, with
//!   checks of initial values against their bounds.
//! - [`polyak`]: Polyak-style normalised gradient descent, plain and loss-annealed, for `R`
//!   parallel restarts.
//! - [`adam`]: Adam on plain tensors.
//! - [`loss`]: differentiable losses between batched simulated FC matrices and an empirical FC.
//!
//! ## Conventions
//! Parameters are lists of tensors whose leading dimension is the restart (batch) index `R`:
//! `[R, 1]` for a global parameter, `[R, N]` for a per-region one. The optimisers return new
//! tensors rather than mutating; under `Autodiff` they are meant to run on the inner backend
//! (detached values and their gradients), after which the caller re-attaches the result.
//!
//! Bad settings and inconsistent shapes are reported as [`Error`]s, not panics.

pub mod adam;
pub mod error;
pub mod hmc;
pub mod loss;
pub mod polyak;
pub mod sdtw;
pub mod smooth;
pub mod stats;
mod tensors;
pub mod traces;
pub mod transform;

pub use adam::{Adam, AdamConfig, AdamState};
pub use error::{Error, Result};
pub use hmc::{hmc, DualAveraging, HmcConfig, HmcResult};
pub use loss::{
    fc_corr_loss, fc_mse, upper_triangle, upper_triangle_indices, weighted, PEARSON_EPS,
};
pub use polyak::{grad_norms, Polyak, BETA_MAX, BETA_MIN};
pub use sdtw::{sdtw_surrogate, SoftDtw};
pub use smooth::Smoothness;
pub use stats::{mse_tensor, Windows, SD_EPS};
pub use traces::{mse, LossGrad, Traces};
pub use transform::Bounds;

/// Creation options in `B`'s own float type, for tests. Burn 0.21 keys the default float dtype
/// by device type, so `NdArray<f32>` and `NdArray<f64>` in one test binary would otherwise share
/// whichever registered first.
#[cfg(test)]
pub(crate) fn test_opts<B: burn::prelude::Backend>(
    device: &B::Device,
) -> burn::tensor::TensorCreationOptions<B> {
    use burn::tensor::Element;
    (device, <B::FloatElem as Element>::dtype()).into()
}
