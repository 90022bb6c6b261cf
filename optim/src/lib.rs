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
//! - [`traces`]: host batches of traces `[B, N]` (one target or one per trace) and MSE.
//! - [`sdtw`]: soft-DTW with a warping penalty (`|x_i − y_j| + λ|i − j|`), its analytic
//!   gradient, the debiased divergence, and a Burn surrogate that chains the host gradient into
//!   autodiff.
//! - [`stats`]: windowed mean and s.d. of traces, the normalised MAE between statistics, MSE on
//!   tensors (host versions with gradients; tensor versions differentiable under autodiff).
//! - [`smooth`]: the parent–child smoothness regulariser for per-branch parameters.
//! - [`mod@hmc`]: Hamiltonian Monte Carlo over a (fallible) log density and its gradient:
//!   leapfrog, diagonal mass, Metropolis correction, dual-averaging step adaptation in warm-up,
//!   bounded parameters through the inverse-sigmoid transform (with its log-Jacobian),
//!   divergences counted and rejected, seeded.
//!
//! ## Conventions
//! Parameters are lists of tensors whose leading dimension is the restart (batch) index `R`:
//! `[R, 1]` for a global parameter, `[R, N]` for a per-region one. The optimisers return new
//! tensors rather than mutating; under `Autodiff` they are meant to run on the inner backend
//! (detached values and their gradients), after which the caller re-attaches the result.
//!
//! The trace losses work on host `f64` slices (`[B, N]` row-major, see [`traces::Traces`]) and
//! return one loss per row with the gradient `[B, N]`; a simulator whose trace is a Burn tensor
//! either uses the tensor versions (MSE, windowed statistics) or [`sdtw::sdtw_surrogate`].
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
pub use hmc::{
    hmc, DualAveraging, HmcConfig, HmcResult, MassAdaptation, MAX_ENERGY_ERROR, MIN_MASS_WARMUP,
};
pub use loss::{
    fc_corr_loss, fc_mse, upper_triangle, upper_triangle_indices, weighted, PEARSON_EPS,
};
pub use polyak::{grad_norms, Polyak, BETA_MAX, BETA_MIN};
pub use sdtw::{sdtw_surrogate, SoftDtw};
pub use smooth::Smoothness;
pub use stats::{mse_tensor, Windows, SD_EPS};
pub use traces::{mse, LossGrad, Traces};
pub use transform::Bounds;

/// `sign(v)` with `sign(0) = 0` (the subgradient of `|v|` used at ties).
#[inline]
pub(crate) fn sign0(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

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

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    /// Deterministic pseudo-random numbers in [-1, 1) (a 64-bit LCG; no crate needed).
    pub(crate) fn rand_vec(seed: u64, n: usize) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }
}
