//! The fused CPU engine: forward simulation without a tensor framework in the inner loop.
//!
//! It runs the same network, integrators, monitor and noise streams as the tensor engine
//! ([`crate::sim`]), but each step is one pass over plain arrays: the coupling is a matrix
//! product (`matrixmultiply`), and each node's right-hand side is the model's
//! [`Model::drift`](neurodiff_models::Model::drift), inlined. Batch elements are
//! independent, so the batch is split across threads, each running whole chunks of steps.
//!
//! The tensor engine dispatches dozens of tensor operations per step (~0.4 µs each on CPU),
//! which dominates at small batch sizes; this engine removes that overhead. It has no tape;
//! gradients on it come from its hand-written discrete adjoint ([`adjoint`]). It is
//! tested against the tensor engine (`tests/integration/fused.rs`): same noise, same result to
//! floating-point tolerance.
//!
//! Supported: every model, every coupling function, conduction delays, held or per-stage
//! coupling, every integrator, every monitor (raw, temporal mean, and BOLD, whose haemodynamics
//! run on the host from the temporal means), both noise modes with the host noise source. Only
//! device noise is not (reported by [`crate::problem::Problem::capabilities`]; such runs use the tensor engine).
//!
//! Delayed coupling keeps, per sent quantity, a ring buffer of what each node contributed to the
//! sums over the last `H` steps, and sums over the connectome's nonzero entries only (a
//! compressed sparse row list of `(target, source, weight, delay)`).
//!
//! Sparse coupling ([`NetworkConfig::sparse`], see [`crate::sparse`]) uses the same edge list for
//! the undelayed sums too, instead of the dense `Wᵀ` (which is then not built).
//!
//! `engine` is the forward stepping, `adjoint` its reverse sweep (with the BOLD haemodynamics
//! between them in `adjoint/bold.rs`), `dual` the forward-mode dual numbers behind the adjoint's
//! local Jacobians. Outside this folder only what is re-exported here is visible.

mod adjoint;
pub mod dual;
mod engine;

pub use adjoint::{
    fc_corr_loss, value_and_grad_fused, value_and_grad_fused_in, value_and_grad_model,
    FusedValueAndGrad, GradOptions, HostLoss, ParamGrad,
};
pub use engine::{simulate_fused, simulate_model, FusedRun, Real, MAX_VARS};
