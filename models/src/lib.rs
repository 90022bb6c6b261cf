//! # neurodiff-models
//!
//! The dynamical systems of neurodiff, as pure functions. Nothing here integrates, couples nodes or
//! reads files: a model is a right-hand side `f(state, coupling_input, params) -> d state / dt`
//! plus an optional projection back onto the admissible state space, and a static [`ModelSpec`]
//! (names, units, defaults and bounds).
//!
//! Each equation is written once, generic over the number trait [`Real`]: the same function
//! runs on `f32`/`f64` (the fused CPU engine; `f64` is also what the analytic and reference checks
//! use), on the engine's dual numbers (local Jacobians for the adjoint) and on Burn tensors
//! through [`real::Tx`] (the tensor engine on every backend, differentiable under `Autodiff<B>`).
//! Parameters are read by name through a struct that [`params!`] generates with the spec.
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
//! `larter_breakspear`, `coombes_byrne`, `linear`, `vdp`, `threshold_linear`, `lorenz`.

pub mod channel;
pub mod latent;
pub mod mass;
pub mod neuron;
pub mod real;
pub mod registry;
pub mod spec;
pub mod synapse;
mod util;

pub use mass::{
    bvep, coombes_byrne, epileptor, fhn, generic2d, hopf, jansen_rit, kuramoto, larter_breakspear,
    linear, mpr, wilson_cowan, wong_wang, wong_wang_ei,
};
pub use mass::{
    bvep::Bvep, coombes_byrne::CoombesByrne, epileptor::Epileptor, fhn::FitzHughNagumo,
    generic2d::Generic2d, hopf::Hopf, jansen_rit::JansenRit, kuramoto::Kuramoto,
    larter_breakspear::LarterBreakspear, linear::Linear, mpr::Mpr, wilson_cowan::WilsonCowan,
    wong_wang::WongWang, wong_wang_ei::WongWangEi,
};
pub use real::{k, Real};
pub use registry::{catalogue, dynamics, find, visit, ModelVisitor, UnknownModel};
pub use spec::{CouplingFunction, CouplingSpec, ModelSpec, ParamSpec, TimeUnit, VarSpec};

use burn::prelude::{Backend, Tensor};
use num_traits::Float;

use real::Tx;

/// A model: its static description and its equations, each written once over the number trait
/// [`Real`] (so the same function runs on `f32`/`f64` in the fused CPU engine, on dual numbers
/// for the adjoint's local Jacobians, and on Burn tensors through [`Tx`] in the tensor engine).
/// Implement this; the object-safe tensor face [`Dynamics<B>`] follows from it.
///
/// Slices: `x` has one entry per state variable, `c` one per coupling input (the constant 0 when
/// that input is switched off), `p` one per parameter, in the order of [`Model::spec`]. Read `p`
/// by name through the model's parameter struct (see [`params!`]).
///
/// A model may carry data (a table, a morphology, a parsed description): the fused engine holds
/// it by reference (`&M`, shared by its threads), the tensor engine boxes one clone (keep large
/// data behind an `Arc`). Its description may be built from the data too ([`Model::spec`]
/// returns a leaked one), and then [`Model::tensor_key`] must tell instances apart. Only the
/// catalogue ([`registry!`](crate::registry)) needs `Default`, to build its entries without
/// data; the `neurodiff` crate registers a model value at run time (`neurodiff::model::register`)
/// and runs it by name like a catalogue model.
pub trait Model: Send + Sync + 'static {
    /// The description of the model: names, units, defaults, bounds. A model with a fixed
    /// description returns its `const` (`&SPEC`); one built from data (a parsed spec file) builds
    /// its description once and leaks it (`Box::leak`), so that it lives as long as the program.
    fn spec(&self) -> &'static ModelSpec;

    /// A key that tells apart instances of this type whose tensor operations differ (see
    /// [`real::scope_keyed`]: the tensor engine reuses the read counts of the first call of
    /// each model type, backend and pattern of coupling inputs). A model without data runs the
    /// same operations whatever the instance: the default `Some(0)`. A model whose operations
    /// depend on its data (a table with zeros that fold away, a list of terms) returns a key
    /// that differs wherever its operations do, or `None`, which turns that reuse off.
    fn tensor_key(&self) -> Option<u64> {
        Some(0)
    }

    /// Whether [`Model::project`] does anything (lets the engine skip the call).
    const PROJECTS: bool = false;

    /// Writes `d state / dt` into `dx` (length `n_vars`) for state `x`, coupling inputs `c` and
    /// parameters `p`.
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]);

    /// Whether [`Model::linear`] gives the drift's diagonal linear part (exponential
    /// integrators use it; without it exponential Euler is Euler).
    const LINEAR: bool = false;

    /// The diagonal linear part of the drift, for exponential integrators: writes `a[v]` such
    /// that `dx_v/dt = a_v x_v + b_v` where neither `a_v` nor `b_v` depends on `x_v` (a gating
    /// variable `dm/dt = (m∞(V) − m)/τ(V)` has `a = −1/τ(V)`). Exponential Euler then advances
    /// each such variable exactly for `a` and `b` frozen over the step, which keeps stiff gates
    /// stable at any step. Only called when [`Model::LINEAR`] is set; entries left untouched
    /// are 0 (that variable is stepped by Euler).
    fn linear<R: Real>(&self, _x: &[R], _c: &[R], _p: &[R], _a: &mut [R]) {}

    /// Maps a state back onto the admissible set after each integration stage (e.g. firing
    /// rates stay non-negative), in place. The default leaves the state as it is.
    fn project<R: Real>(&self, _x: &mut [R]) {}

    /// The quantity each node sends through the connectome to form coupling input `k`, from its
    /// own state `x` and parameters `p`. The default is the state variable
    /// `spec().coupling[k].var` itself; a model overrides this only for inputs whose
    /// [`CouplingSpec::sends`] is set (the engine may skip the call for the others).
    #[inline(always)]
    fn coupled<R: Real>(&self, k: usize, x: &[R], _p: &[R]) -> R {
        x[self.spec().coupling[k].var]
    }

    /// Whether the model supplies hand-written vector–Jacobian products
    /// ([`Model::drift_vjp_point`] and, when it projects, [`Model::project_vjp_point`]). The
    /// fused adjoint then calls them instead of differentiating [`Model::drift`] and
    /// [`Model::project`] with dual numbers, which is several times slower; the engine's
    /// tests check every model that sets this against the dual-number path. A model that sets
    /// it without implementing them panics at the first call (never a silent zero gradient).
    const HAND_VJP: bool = false;

    /// The vector–Jacobian product of [`Model::drift`] at `(x, c, p)`: with `ld` the adjoint of
    /// `dx` (length `n_vars`), adds `Σ_o ld[o] ∂dx_o/∂x_v` to `lx[v]`, `Σ_o ld[o] ∂dx_o/∂c_k`
    /// to `lc[k]` and `Σ_o ld[o] ∂dx_o/∂p_q` to `lp[q]`. Where `drift` takes `max`/`min`, the
    /// derivative is that of the branch taken, ties going to the first argument (as in the
    /// engine's dual numbers). Only called when [`Model::HAND_VJP`] is set.
    ///
    /// # Panics
    /// By default: a model that sets `HAND_VJP` must implement it.
    #[allow(clippy::too_many_arguments)]
    fn drift_vjp_point<T: Float + 'static>(
        &self,
        _x: &[T],
        _c: &[T],
        _p: &[T],
        _ld: &[T],
        _lx: &mut [T],
        _lc: &mut [T],
        _lp: &mut [T],
    ) {
        panic!(
            "model `{}` sets HAND_VJP but does not implement drift_vjp_point",
            self.spec().name
        )
    }

    /// The vector–Jacobian product of [`Model::project`] at the unprojected state `u`:
    /// `lam ← (∂P/∂u)ᵀ lam`. Only called when [`Model::HAND_VJP`] and [`Model::PROJECTS`] are
    /// set.
    ///
    /// # Panics
    /// By default: a projecting model that sets `HAND_VJP` must implement it.
    fn project_vjp_point<T: Float + 'static>(&self, _u: &[T], _lam: &mut [T]) {
        panic!(
            "model `{}` sets HAND_VJP and PROJECTS but does not implement project_vjp_point",
            self.spec().name
        )
    }
}

/// The object-safe face of a [`Model`] on tensors of one backend, which the tensor engine holds
/// as `Box<dyn Dynamics<B>>`. Every [`Model`] implements it by running its one generic
/// definition on [`Tx`] expressions.
///
/// # Shapes
/// - state: one `[batch, nodes]` tensor per state variable;
/// - coupling: one entry per [`CouplingSpec`], `None` when that input is off (it then counts as
///   zero and its terms fold away), otherwise `[batch, nodes]`;
/// - parameters: one tensor per [`ParamSpec`], each broadcastable to `[batch, nodes]` (`[1, 1]`
///   for a global value, `[batch, 1]` per simulation, `[1, nodes]` per region, `[batch, nodes]`).
pub trait Dynamics<B: Backend>: Send + Sync {
    /// The static description of the model.
    fn spec(&self) -> &'static ModelSpec;
    /// `d state / dt`, one tensor per state variable, each `[batch, nodes]`.
    fn drift(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>> {
        self.drift_folded(x, c, p, &[])
    }
    /// [`Dynamics::drift`] with some parameters given as host values (`k[i] = Some(v)`: parameter
    /// `i` is `v` everywhere; `p[i]` is then not read). Their operations fold into scalar ones
    /// (`t · v` as `mul_scalar`, products of constants on the host): the forward tensor engine
    /// passes its global parameters this way, which at small batches saves about a third of the
    /// operations. `k` may be shorter than `p` (missing entries are tensors). Not for gradients
    /// with respect to those parameters: a host value carries none.
    fn drift_folded(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
        k: &[Option<f64>],
    ) -> Vec<Tensor<B, 2>>;
    /// See [`Model::linear`]: the diagonal linear part, one tensor per variable, or `None` when
    /// the model has none ([`Model::LINEAR`] unset).
    fn linear(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Option<Vec<Tensor<B, 2>>> {
        self.linear_folded(x, c, p, &[])
    }
    /// [`Dynamics::linear`] with host parameters, as [`Dynamics::drift_folded`].
    fn linear_folded(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
        k: &[Option<f64>],
    ) -> Option<Vec<Tensor<B, 2>>>;
    /// See [`Model::project`].
    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>>;
    /// See [`Model::PROJECTS`].
    fn has_projection(&self) -> bool;
    /// See [`Model::coupled`].
    fn coupled(&self, k: usize, x: &[Tensor<B, 2>], p: &[Tensor<B, 2>]) -> Tensor<B, 2> {
        self.coupled_folded(k, x, p, &[])
    }
    /// [`Dynamics::coupled`] with host parameters, as [`Dynamics::drift_folded`].
    fn coupled_folded(
        &self,
        k: usize,
        x: &[Tensor<B, 2>],
        p: &[Tensor<B, 2>],
        consts: &[Option<f64>],
    ) -> Tensor<B, 2>;
}

/// Runs `f` in a keyed tensor scope ([`real::scope_keyed`]) whose key is the model's type and
/// [`Model::tensor_key`], the backend, which function (`what`) and the pattern of absent
/// coupling inputs, which are what decide the operations a call runs; in a plain scope when the
/// model has no key.
fn keyed<M: Model, B: Backend, T>(
    m: &M,
    what: u64,
    c: &[Option<Tensor<B, 2>>],
    consts: &[Option<f64>],
    f: impl FnOnce() -> T,
) -> T {
    use std::hash::{Hash, Hasher};
    let Some(instance) = m.tensor_key() else {
        return real::scope(f);
    };
    let mut h = real::KeyHasher::default();
    std::any::TypeId::of::<(M, B)>().hash(&mut h);
    instance.hash(&mut h);
    what.hash(&mut h);
    for (i, ci) in c.iter().enumerate() {
        (i, ci.is_some()).hash(&mut h);
    }
    // Host parameters fold by value (a factor of 1 or 0 removes an operation).
    for (i, k) in consts.iter().enumerate() {
        (i, k.map(f64::to_bits)).hash(&mut h);
    }
    real::scope_keyed(h.finish(), f)
}

fn txs<B: Backend>(t: &[Tensor<B, 2>]) -> Vec<Tx<B>> {
    t.iter().map(|t| Tx::new(t.clone())).collect()
}

/// The parameters as expressions: host values as constants, the others as tensors.
fn params<B: Backend>(p: &[Tensor<B, 2>], consts: &[Option<f64>]) -> Vec<Tx<B>> {
    p.iter()
        .enumerate()
        .map(|(i, t)| match consts.get(i) {
            Some(Some(v)) => Tx::constant(*v),
            _ => Tx::new(t.clone()),
        })
        .collect()
}

impl<B: Backend, M: Model> Dynamics<B> for M {
    fn spec(&self) -> &'static ModelSpec {
        Model::spec(self)
    }
    fn drift_folded(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
        k: &[Option<f64>],
    ) -> Vec<Tensor<B, 2>> {
        let shape = x[0].dims();
        let device = x[0].device();
        keyed(self, 0, c, k, || {
            let xs = txs(x);
            let cs: Vec<Tx<B>> = c
                .iter()
                .map(|c| c.as_ref().map_or(Tx::constant(0.0), |t| Tx::new(t.clone())))
                .collect();
            let mut dx = vec![Tx::constant(0.0); xs.len()];
            Model::drift(self, &xs, &cs, &params(p, k), &mut dx);
            dx.into_iter().map(|d| d.tensor(shape, &device)).collect()
        })
    }
    fn linear_folded(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
        k: &[Option<f64>],
    ) -> Option<Vec<Tensor<B, 2>>> {
        if !M::LINEAR {
            return None;
        }
        let shape = x[0].dims();
        let device = x[0].device();
        Some(keyed(self, 1, c, k, || {
            let xs = txs(x);
            let cs: Vec<Tx<B>> = c
                .iter()
                .map(|c| c.as_ref().map_or(Tx::constant(0.0), |t| Tx::new(t.clone())))
                .collect();
            let mut a = vec![Tx::constant(0.0); xs.len()];
            Model::linear(self, &xs, &cs, &params(p, k), &mut a);
            a.into_iter().map(|v| v.tensor(shape, &device)).collect()
        }))
    }
    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
        if !M::PROJECTS {
            return x;
        }
        let shape = x[0].dims();
        let device = x[0].device();
        keyed(self, 2, &[] as &[Option<Tensor<B, 2>>], &[], || {
            let mut xs = txs(&x);
            Model::project(self, &mut xs);
            xs.into_iter().map(|v| v.tensor(shape, &device)).collect()
        })
    }
    fn has_projection(&self) -> bool {
        M::PROJECTS
    }
    fn coupled_folded(
        &self,
        k: usize,
        x: &[Tensor<B, 2>],
        p: &[Tensor<B, 2>],
        consts: &[Option<f64>],
    ) -> Tensor<B, 2> {
        let shape = x[0].dims();
        let device = x[0].device();
        keyed(
            self,
            3 + k as u64,
            &[] as &[Option<Tensor<B, 2>>],
            consts,
            || Model::coupled(self, k, &txs(x), &params(p, consts)).tensor(shape, &device),
        )
    }
}
