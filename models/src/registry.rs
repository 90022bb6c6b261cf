//! The list of models, looked up by name. Adding a model is one module plus one line in
//! [`registry!`](crate::registry) below.

use burn::prelude::Backend;

use crate::spec::ModelSpec;
use crate::{Dynamics, Model};

/// A model name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model `{name}`; known models: {known}")]
pub struct UnknownModel {
    /// The name that was asked for.
    pub name: String,
    /// Comma-separated list of known names.
    pub known: String,
}

/// Generic code to run for a model chosen by name at run time (static dispatch: the visitor's
/// `visit` is compiled once per model).
pub trait ModelVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the model that was looked up.
    fn visit<M: Model>(self, model: M) -> Self::Output;
}

macro_rules! registry {
    ($($ty:path),* $(,)?) => {
        /// Every model's static description, in catalogue order.
        pub fn catalogue() -> Vec<&'static ModelSpec> {
            vec![$(<$ty as Model>::SPEC),*]
        }

        /// Runs `visitor` with the model called `name`.
        pub fn visit<V: ModelVisitor>(name: &str, visitor: V) -> Result<V::Output, UnknownModel> {
            $(
                if <$ty as Model>::SPEC.name == name {
                    return Ok(visitor.visit(<$ty>::default()));
                }
            )*
            Err(unknown(name))
        }
    };
}

registry![
    crate::mpr::Mpr,
    crate::jansen_rit::JansenRit,
    crate::wilson_cowan::WilsonCowan,
    crate::wong_wang::WongWang,
    crate::wong_wang_ei::WongWangEi,
    crate::hopf::Hopf,
    crate::fhn::FitzHughNagumo,
    crate::generic2d::Generic2d,
    crate::kuramoto::Kuramoto,
    crate::epileptor::Epileptor,
    crate::bvep::Bvep,
    crate::larter_breakspear::LarterBreakspear,
    crate::coombes_byrne::CoombesByrne,
    crate::linear::Linear,
];

fn unknown(name: &str) -> UnknownModel {
    UnknownModel {
        name: name.to_string(),
        known: catalogue()
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The static description of the model called `name`.
pub fn find(name: &str) -> Result<&'static ModelSpec, UnknownModel> {
    catalogue()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| unknown(name))
}

/// The model called `name`, boxed for backend `B`.
pub fn dynamics<B: Backend>(name: &str) -> Result<Box<dyn Dynamics<B>>, UnknownModel> {
    struct Boxer<B>(std::marker::PhantomData<B>);
    impl<B: Backend> ModelVisitor for Boxer<B> {
        type Output = Box<dyn Dynamics<B>>;
        fn visit<M: Model>(self, model: M) -> Self::Output {
            Box::new(model)
        }
    }
    visit(name, Boxer::<B>(std::marker::PhantomData))
}
