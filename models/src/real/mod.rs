//! The number type every equation is written over: [`Real`], with one implementation for every
//! `num_traits::Float` (`f32`, `f64`, the engine's dual numbers) and one for Burn tensors
//! ([`Tx`], a `Copy` handle to a tensor expression in a scoped arena).

pub mod exp;
mod lanes;
mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod simd;
mod tensor;

#[cfg(target_arch = "x86_64")]
pub use lanes::{FmaLanes, FmaLanes32};
pub use lanes::{Lanes, Lanes32};
pub use scalar::{k, Real, EXP_MAX};
#[cfg(target_arch = "x86_64")]
pub use simd::{F32x8, F64x4};
pub use tensor::{scope, scope_keyed, KeyHasher, Tx, TxMask};
