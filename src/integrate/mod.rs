//! Fixed-step integrators. A scheme is data ([`Tableau`]: the stage coefficients, the weights,
//! where noise and the projection apply) that an engine interprets, plus exponential Euler for
//! the models that give their drift's diagonal linear part. Schemes are stateless, know their
//! order, and see only a [`VectorField`]: a model, its coupling and its parameters bound
//! together by the network.
//!
//! With additive noise, `z` (already scaled by `sigma sqrt(dt)`) is added once per step:
//! - Euler–Maruyama: `x' = P(x + dt f(x) + z)`
//! - stochastic Heun (vbjax, TVB): `x~ = P(x + dt f(x) + z)`,
//!   `x' = P(x + dt/2 (f(x) + f(x~)) + z)`
//! - Kutta's RK3 and classical RK4 (deterministic runs only);
//! - exponential Euler: `x' = P(x + dt φ₁(a dt) f(x) + z)` with `a` the drift's diagonal linear
//!   part ([`neurodiff_models::Model::linear`]) and `φ₁(z) = (eᶻ − 1)/z`: exact for
//!   `dx/dt = a x + b` with `a`, `b` frozen over the step (gating variables), Euler where the
//!   model has no linear part.
//!
//! `P` is the model's projection (identity for most models).
//!
//! The tensor engine interprets the tableau ([`Integrator::step`]), and so do the fused CPU
//! engine (its one step function) and its adjoint (which records that step and sweeps the
//! stages backwards). Exponential Euler has no tableau: the tensor engine runs it, the fused
//! engine and the adjoint refuse it with a typed "unsupported" (see
//! [`crate::problem::Problem::capabilities`]). A new explicit scheme is a [`Tableau`] constant
//! and a variant of [`Integrator`]; the convergence-order, engine-agreement and
//! adjoint-agreement tests iterate over [`Integrator::ALL`].

mod scheme;
mod tensor;

pub use scheme::{Integrator, Tableau};
pub use tensor::VectorField;
