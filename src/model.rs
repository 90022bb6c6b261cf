//! Models as the engines see them: looked up by name in one place, from the catalogue of
//! `neurodiff-models` or from models registered at run time — models that carry data (a table,
//! a parsed description), which the catalogue cannot build with `Default`.
//!
//! A [`ModelHandle`] is a model with the engines' entry points compiled for its type (the fused
//! forward in `f32`/`f64`, the fused adjoint, the tensor face for every compiled backend), so
//! the engines, the façade and the fitter never name a model's type. [`register`] adds a model
//! value under its spec's name; from then on [`crate::problem::Problem::builder`], the fitter
//! and every engine run it like a catalogue model:
//!
//! ```no_run
//! # use neurodiff::models::{Model, ModelSpec, Real};
//! # #[derive(Clone)] struct MyTable { rates: std::sync::Arc<Vec<f64>> }
//! # impl Model for MyTable {
//! #     fn spec(&self) -> &'static ModelSpec { unimplemented!() }
//! #     fn drift<R: Real>(&self, _: &[R], _: &[R], _: &[R], _: &mut [R]) {}
//! # }
//! # fn main() -> neurodiff::Result<()> {
//! neurodiff::model::register(MyTable { rates: std::sync::Arc::new(vec![1.0, 2.0]) })?;
//! # Ok(()) }
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use burn::prelude::Backend;
use neurodiff_models::{Dynamics, Model, ModelSpec, ModelVisitor};

use crate::fused::{FusedRun, FusedValueAndGrad, GradOptions, HostLoss};
use crate::{Error, Result};

/// A model with the engines' entry points compiled for its type. Implemented for every
/// [`Model`] that is `Clone` (the tensor engine boxes its own copy: keep large data behind an
/// `Arc` inside the model).
trait EngineModel: Send + Sync + 'static {
    fn spec(&self) -> &'static ModelSpec;
    fn simulate_fused(
        &self,
        double: bool,
        fr: &FusedRun<'_>,
        on_samples: &mut dyn FnMut(usize, usize, Vec<f64>) -> Result<()>,
        on_progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f64>>;
    fn value_and_grad_fused(
        &self,
        double: bool,
        fr: &FusedRun<'_>,
        opts: &GradOptions,
        loss: &HostLoss<'_>,
    ) -> Result<FusedValueAndGrad>;
    /// `Box<dyn Dynamics<B>>` (as `Box<dyn Any>`) for the backend whose type id is `backend`,
    /// when it is one that [`crate::backend::with_backend`] runs.
    fn dynamics(&self, backend: TypeId) -> Option<Box<dyn Any>>;
}

struct Held<M>(M);

impl<M: Model + Clone> EngineModel for Held<M> {
    fn spec(&self) -> &'static ModelSpec {
        self.0.spec()
    }

    fn simulate_fused(
        &self,
        double: bool,
        fr: &FusedRun<'_>,
        on_samples: &mut dyn FnMut(usize, usize, Vec<f64>) -> Result<()>,
        on_progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f64>> {
        if double {
            #[cfg(feature = "ndarray64")]
            return crate::fused::simulate_model::<M, f64>(&self.0, fr, on_samples, on_progress);
            #[cfg(not(feature = "ndarray64"))]
            return Err(missing64());
        }
        crate::fused::simulate_model::<M, f32>(&self.0, fr, on_samples, on_progress)
    }

    fn value_and_grad_fused(
        &self,
        double: bool,
        fr: &FusedRun<'_>,
        opts: &GradOptions,
        loss: &HostLoss<'_>,
    ) -> Result<FusedValueAndGrad> {
        if double {
            #[cfg(feature = "ndarray64")]
            return crate::fused::value_and_grad_model::<M, f64>(&self.0, fr, opts, loss);
            #[cfg(not(feature = "ndarray64"))]
            return Err(missing64());
        }
        crate::fused::value_and_grad_model::<M, f32>(&self.0, fr, opts, loss)
    }

    fn dynamics(&self, backend: TypeId) -> Option<Box<dyn Any>> {
        macro_rules! try_backends {
            ($($feature:literal => $b:ty),* $(,)?) => {$(
                #[cfg(feature = $feature)]
                if backend == TypeId::of::<$b>() {
                    let d: Box<dyn Dynamics<$b>> = Box::new(self.0.clone());
                    return Some(Box::new(d));
                }
                #[cfg(feature = $feature)]
                if backend == TypeId::of::<burn::backend::Autodiff<$b>>() {
                    let d: Box<dyn Dynamics<burn::backend::Autodiff<$b>>> =
                        Box::new(self.0.clone());
                    return Some(Box::new(d));
                }
            )*};
        }
        try_backends!(
            "ndarray" => burn::backend::NdArray<f32>,
            "ndarray64" => burn::backend::NdArray<f64>,
            "flex" => burn::backend::Flex,
            "wgpu" => burn::backend::Wgpu,
            "cuda" => burn::backend::Cuda,
        );
        None
    }
}

#[cfg(not(feature = "ndarray64"))]
fn missing64() -> Error {
    crate::backend::missing(crate::backend::BackendKind::Ndarray64, "ndarray64")
}

/// A model by name or by value, with the engines' entry points for its type: what every engine
/// runs. Cheap to clone (shared).
#[derive(Clone)]
pub struct ModelHandle(Arc<dyn EngineModel>);

impl std::fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelHandle({})", self.spec().name)
    }
}

impl ModelHandle {
    /// A handle on `model` (not registered: see [`register`] to run it by name).
    pub fn new<M: Model + Clone>(model: M) -> Self {
        Self(Arc::new(Held(model)))
    }

    /// The model's description.
    pub fn spec(&self) -> &'static ModelSpec {
        self.0.spec()
    }

    /// Runs the fused engine on this model in `f64` (`double`) or `f32` (see
    /// [`crate::fused::simulate_fused`]).
    pub fn simulate_fused(
        &self,
        double: bool,
        fr: &FusedRun<'_>,
        on_samples: &mut dyn FnMut(usize, usize, Vec<f64>) -> Result<()>,
        on_progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f64>> {
        self.0.simulate_fused(double, fr, on_samples, on_progress)
    }

    /// The fused adjoint on this model (see [`crate::fused::value_and_grad_fused`]).
    pub fn value_and_grad_fused(
        &self,
        double: bool,
        fr: &FusedRun<'_>,
        opts: &GradOptions,
        loss: &HostLoss<'_>,
    ) -> Result<FusedValueAndGrad> {
        self.0.value_and_grad_fused(double, fr, opts, loss)
    }

    /// The model's tensor face on backend `B`, for the tensor engine.
    ///
    /// # Errors
    /// `B` is not a backend that [`crate::backend::with_backend`] runs (only for models
    /// registered at run time; catalogue models run on any backend).
    pub fn dynamics<B: Backend>(&self) -> Result<Box<dyn Dynamics<B>>> {
        let any = self.0.dynamics(TypeId::of::<B>()).ok_or_else(|| {
            Error::setting(
                "model",
                format!(
                    "model `{}` was registered at run time and runs on the compiled backends \
                     of `--backend` only, not on {}",
                    self.spec().name,
                    std::any::type_name::<B>()
                ),
            )
        })?;
        Ok(*any
            .downcast::<Box<dyn Dynamics<B>>>()
            .expect("the box was made for this backend's type id"))
    }
}

fn registered() -> &'static RwLock<HashMap<&'static str, ModelHandle>> {
    static TABLE: std::sync::OnceLock<RwLock<HashMap<&'static str, ModelHandle>>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// Adds `model` to the models the engines find by name, under its spec's name, for the rest
/// of the program; a model of that name registered before is replaced.
///
/// # Errors
/// The name is a catalogue model's, or the spec is inconsistent (no state, a coupling input
/// reading a variable that does not exist, a default outside its bounds).
pub fn register<M: Model + Clone>(model: M) -> Result<ModelHandle> {
    let spec = model.spec();
    if neurodiff_models::find(spec.name).is_ok() {
        return Err(Error::setting(
            "model",
            format!(
                "`{}` is a catalogue model; register a model under another name",
                spec.name
            ),
        ));
    }
    check_spec(spec)?;
    let handle = ModelHandle::new(model);
    registered()
        .write()
        .expect("the model table is never poisoned: nothing panics under its lock")
        .insert(spec.name, handle.clone());
    Ok(handle)
}

/// The checks of a spec made at run time that the catalogue's tests make of its own.
fn check_spec(spec: &ModelSpec) -> Result<()> {
    let bad = |message: String| Err(Error::setting(format!("model `{}`", spec.name), message));
    if spec.name.is_empty() || spec.state.is_empty() {
        return bad("a model needs a name and at least one state variable".into());
    }
    if spec.default_dt.is_nan() || spec.default_dt <= 0.0 {
        return bad(format!("default_dt {} is not positive", spec.default_dt));
    }
    for c in spec.coupling {
        if c.var >= spec.n_vars() {
            return bad(format!(
                "coupling input `{}` reads variable {} of {}",
                c.name,
                c.var,
                spec.n_vars()
            ));
        }
    }
    for p in spec.params {
        if !(p.lower <= p.default && p.default <= p.upper) {
            return bad(format!(
                "parameter `{}`: default {} outside its bounds [{}, {}]",
                p.name, p.default, p.lower, p.upper
            ));
        }
    }
    Ok(())
}

/// The model called `name`: a registered one, else the catalogue's.
pub fn lookup(name: &str) -> Result<ModelHandle> {
    if let Some(h) = registered()
        .read()
        .expect("the model table is never poisoned")
        .get(name)
    {
        return Ok(h.clone());
    }
    struct Wrap;
    impl ModelVisitor for Wrap {
        type Output = ModelHandle;
        fn visit<M: Model + Clone>(self, model: M) -> ModelHandle {
            ModelHandle::new(model)
        }
    }
    Ok(neurodiff_models::visit(name, Wrap)?)
}

/// The description of the model called `name` (registered or in the catalogue).
pub fn find(name: &str) -> Result<&'static ModelSpec> {
    Ok(lookup(name)?.spec())
}

/// The tensor face of the model called `name` on backend `B`.
pub fn dynamics<B: Backend>(name: &str) -> Result<Box<dyn Dynamics<B>>> {
    let registered = registered()
        .read()
        .expect("the model table is never poisoned")
        .get(name)
        .cloned();
    match registered {
        Some(h) => h.dynamics::<B>(),
        None => Ok(neurodiff_models::dynamics::<B>(name)?),
    }
}
