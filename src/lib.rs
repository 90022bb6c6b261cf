//! # neurodiff
//!
//! A differentiable simulator of brain dynamics on the Burn tensor framework: whole-brain
//! networks of neural masses on real connectomes, simulated for a batch of parameter sets at
//! once on any Burn backend, with gradients through the simulation.
//!
//! - [`connectome`]: loading and validating structural connectomes (convention:
//!   `W[target][source]`).
//! - [`network`] and [`coupling`]: a model at every node, joined through the connectome.
//! - [`integrate`]: Euler, (stochastic) Heun, RK3, RK4 and exponential Euler.
//! - [`noise`]: seeded, regenerable additive noise.
//! - [`sim`]: the chunked simulation loop and monitors.
//! - [`sparse`]: sparse coupling (edge lists) for large sparse connectomes.
//! - [`fused`]: the fused CPU engine for forward runs; [`adjoint`]: its discrete adjoint for
//!   gradients ([`grad`] differentiates the tensor engine through Burn's autodiff).
//!
//! - [`problem`]: the façade — a resolved [`problem::Problem`] and the entry points
//!   [`problem::simulate`] and [`problem::value_and_grad`] with the engine as a parameter.
//!
//! Models live in the `neurodiff-models` crate (re-exported as [`models`]).

/// One way to declare a choice: its names on the command line and in config files, listed in
/// errors. `choice!(Type, "setting", [Variant => "name", ...])` implements `FromStr` (an error
/// naming the setting and every admissible name), `name()` and `NAMES`.
#[macro_export]
macro_rules! choice {
    ($ty:ty, $setting:literal, [$($variant:ident => $name:literal),+ $(,)?]) => {
        impl $ty {
            /// The admissible names, in order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];
            /// The name as written on the command line.
            pub fn name(&self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }
        impl ::std::str::FromStr for $ty {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    _ => Err($crate::Error::setting(
                        $setting,
                        format!("`{s}` is not one of: {}", Self::NAMES.join(", ")),
                    )),
                }
            }
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

pub mod backend;
pub mod cell;
pub mod connectome;
pub mod coupling;
pub mod error;
pub mod fit;
pub mod fused;
pub mod grad;
pub mod integrate;
pub mod io;
pub mod latent;
pub mod model;
pub mod monitor;
pub mod network;
pub mod noise;
pub mod observe;
pub mod params;
pub mod plot;
pub mod problem;
pub mod sim;
pub mod sparse;
pub mod spiking;

pub use error::{Error, Result};
pub use neurodiff_models as models;

use burn::prelude::Backend;
use burn::tensor::{Element, TensorCreationOptions};

/// Creation options for a float tensor of backend `B` on `device`, in `B`'s own float type.
///
/// Always create tensors through this. Burn 0.21 keys the default float dtype by device *type*,
/// so `NdArray<f32>` and `NdArray<f64>` used in one process share whichever dtype was registered
/// first, and an `NdArray<f64>` tensor created with a bare `&device` can silently be `f32`.
pub fn float_opts<B: Backend>(device: &B::Device) -> TensorCreationOptions<B> {
    (device, <B::FloatElem as Element>::dtype()).into()
}
