//! # neurodiff-models
//!
//! The dynamical systems of neurodiff, as pure functions. Nothing here integrates, couples nodes or
//! reads files: a model is a right-hand side `f(state, coupling_input, params) -> d state / dt`
//! plus an optional projection back onto the admissible state space, and a static [`ModelSpec`]
//! (names, units, defaults and bounds).
//!
//! Each model is written twice, on purpose:
//! - [`Model::drift`]: on Burn tensors, generic over the backend, differentiable under `Autodiff<B>`.
//!   This is what the engine integrates on every backend and what gradients flow through.
//! - [`Model::drift_point`]: on plain numbers, for one node at a time, generic over `f32`/`f64`. In
//!   `f64` it is the independent oracle the tensor version is tested against; in `f32` it is the
//!   inner loop of the fused CPU engine.
//!
//! ## Shapes
//! - state: a slice of `n_vars` tensors, each `[batch, nodes]`;
//! - coupling: a slice with one entry per [`CouplingSpec`] of the model, `None` when that input
//!   is switched off (it then counts as zero), otherwise `[batch, nodes]`;
//! - parameters: a slice with one tensor per [`ParamSpec`], each broadcastable to
//!   `[batch, nodes]` (so `[1, 1]` for a global value, `[batch, 1]` for one value per simulation,
//!   `[1, nodes]` per region, `[batch, nodes]` for both).
//!
//! ## Coupling
//! The model's right-hand side receives each coupling input already summed over the connectome.
//! What each node sends for input `k` is [`Model::coupled`]: the state variable
//! `SPEC.coupling[k].var` itself unless [`CouplingSpec::sends`] says otherwise (Jansen–Rit sends
//! `y1 - y2`, Larter–Breakspear its firing rate). The coupling function a model is normally used
//! with (linear, difference, sigmoidal Jansen–Rit, Kuramoto) is [`ModelSpec::coupling_function`],
//! and its typical strength [`ModelSpec::coupling_strength`].
//!
//! ## Catalogue
//! See [`catalogue`] and `MODELS.md`: `mpr`, `jansen_rit`, `wilson_cowan`, `wong_wang`,
//! `wong_wang_ei`, `hopf`, `fhn`, `generic2d`, `kuramoto`, `epileptor`, `bvep`,
//! `larter_breakspear`, `coombes_byrne`, `linear`.

pub mod bvep;
pub mod coombes_byrne;
pub mod epileptor;
pub mod fhn;
pub mod generic2d;
pub mod hopf;
pub mod jansen_rit;
pub mod kuramoto;
pub mod larter_breakspear;
pub mod linear;
pub mod mpr;
pub mod registry;
pub mod spec;
mod util;
pub mod wilson_cowan;
pub mod wong_wang;
pub mod wong_wang_ei;

pub use bvep::Bvep;
pub use coombes_byrne::CoombesByrne;
pub use epileptor::Epileptor;
pub use fhn::FitzHughNagumo;
pub use generic2d::Generic2d;
pub use hopf::Hopf;
pub use jansen_rit::JansenRit;
pub use kuramoto::Kuramoto;
pub use larter_breakspear::LarterBreakspear;
pub use linear::Linear;
pub use mpr::Mpr;
pub use registry::{catalogue, dynamics, find, visit, ModelVisitor, UnknownModel};
pub use spec::{CouplingFunction, CouplingSpec, ModelSpec, ParamSpec, VarSpec};
pub use wilson_cowan::WilsonCowan;
pub use wong_wang::WongWang;
pub use wong_wang_ei::WongWangEi;

use burn::prelude::{Backend, Tensor};
use num_traits::Float;

/// A model: its static description and its right-hand side, written once on tensors (generic over
/// the backend) and once on plain numbers (generic over the float type). Implement this; the
/// object-safe [`Dynamics<B>`] follows from it.
pub trait Model: Send + Sync + Copy + Default + 'static {
    /// The static description of the model.
    const SPEC: &'static ModelSpec;

    /// Whether [`Model::project`] does anything (lets the engine skip the call).
    const PROJECTS: bool = false;

    /// `d state / dt`, one tensor per state variable, each `[batch, nodes]` (see the crate
    /// documentation for the shapes of `x`, `c` and `p`).
    ///
    /// # Panics
    /// If the slices do not have the lengths given by [`Model::SPEC`]; the engine checks them
    /// once when a network is built.
    fn drift<B: Backend>(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>>;

    /// Maps a state back onto the admissible set after each integration stage (e.g. firing
    /// rates stay non-negative). The default leaves the state as it is.
    fn project<B: Backend>(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
        x
    }

    /// Writes `d state / dt` into `dx` (length `n_vars`) for one node with state `x`, coupling
    /// inputs `c` (one per coupling input, zero when switched off) and parameters `p`.
    fn drift_point<T: Float>(&self, x: &[T], c: &[T], p: &[T], dx: &mut [T]);

    /// In-place version of [`Model::project`] for one node.
    fn project_point<T: Float>(&self, _x: &mut [T]) {}

    /// Whether the model supplies hand-written vector–Jacobian products
    /// ([`Model::drift_vjp_point`] and, when it projects, [`Model::project_vjp_point`]). The
    /// fused adjoint then calls them instead of differentiating [`Model::drift_point`] and
    /// [`Model::project_point`] with dual numbers, which is several times slower; the engine's
    /// tests check every model that sets this against the dual-number path.
    const HAND_VJP: bool = false;

    /// The vector–Jacobian product of [`Model::drift_point`] at `(x, c, p)`: with `ld` the
    /// adjoint of `dx` (length `n_vars`), adds `Σ_o ld[o] ∂dx_o/∂x_v` to `lx[v]`,
    /// `Σ_o ld[o] ∂dx_o/∂c_k` to `lc[k]` and `Σ_o ld[o] ∂dx_o/∂p_q` to `lp[q]`. Where
    /// `drift_point` takes `max`/`min`, the derivative is that of the branch taken, ties going
    /// to the first argument (as in the engine's dual numbers). Only called when
    /// [`Model::HAND_VJP`] is set; the default does nothing.
    #[allow(clippy::too_many_arguments)]
    fn drift_vjp_point<T: Float>(
        &self,
        _x: &[T],
        _c: &[T],
        _p: &[T],
        _ld: &[T],
        _lx: &mut [T],
        _lc: &mut [T],
        _lp: &mut [T],
    ) {
    }

    /// The vector–Jacobian product of [`Model::project_point`] at the unprojected state `u`:
    /// `lam ← (∂P/∂u)ᵀ lam`. Only called when [`Model::HAND_VJP`] and [`Model::PROJECTS`] are
    /// set; the default (identity) leaves `lam` as it is.
    fn project_vjp_point<T: Float>(&self, _u: &[T], _lam: &mut [T]) {}

    /// The quantity each node sends through the connectome to form coupling input `k`
    /// (`[batch, nodes]`), from its own state `x` and parameters `p`. The default is the state
    /// variable `SPEC.coupling[k].var` itself; a model overrides this only for inputs whose
    /// [`CouplingSpec::sends`] is set (the engine may skip the call for the others).
    fn coupled<B: Backend>(
        &self,
        k: usize,
        x: &[Tensor<B, 2>],
        _p: &[Tensor<B, 2>],
    ) -> Tensor<B, 2> {
        x[Self::SPEC.coupling[k].var].clone()
    }

    /// [`Model::coupled`] for one node.
    #[inline(always)]
    fn coupled_point<T: Float>(&self, k: usize, x: &[T], _p: &[T]) -> T {
        x[Self::SPEC.coupling[k].var]
    }
}

/// The object-safe face of a [`Model`] for one backend, which the engine holds as
/// `Box<dyn Dynamics<B>>`. Every [`Model`] implements it.
pub trait Dynamics<B: Backend>: Send + Sync {
    /// The static description of the model.
    fn spec(&self) -> &'static ModelSpec;
    /// See [`Model::drift`].
    fn drift(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>>;
    /// See [`Model::project`].
    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>>;
    /// See [`Model::PROJECTS`].
    fn has_projection(&self) -> bool;
    /// See [`Model::coupled`].
    fn coupled(&self, k: usize, x: &[Tensor<B, 2>], p: &[Tensor<B, 2>]) -> Tensor<B, 2>;
}

impl<B: Backend, M: Model> Dynamics<B> for M {
    fn spec(&self) -> &'static ModelSpec {
        M::SPEC
    }
    fn drift(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>> {
        Model::drift(self, x, c, p)
    }
    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
        Model::project(self, x)
    }
    fn has_projection(&self) -> bool {
        M::PROJECTS
    }
    fn coupled(&self, k: usize, x: &[Tensor<B, 2>], p: &[Tensor<B, 2>]) -> Tensor<B, 2> {
        Model::coupled(self, k, x, p)
    }
}

/// Converts an `f64` constant into the number type of a point model.
#[inline(always)]
pub(crate) fn k<T: Float>(v: f64) -> T {
    T::from(v).expect("constant representable in the float type")
}
