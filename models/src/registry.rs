//! The list of models, looked up by name. Adding a model is its file in `mass/` plus one line in
//! the [`registry!`](crate::registry) invocation of `mass/mod.rs`.

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
    fn visit<M: Model + Clone>(self, model: M) -> Self::Output;
}

/// Declares the model modules of a folder and the catalogue over them, in catalogue order: each
/// entry `module::Type` is a `pub mod module;` (with its `pub const SPEC`) beside the invocation and a model in
/// [`catalogue`] and [`visit`]. Invoked once, in `mass/mod.rs`; adding a model is its file and
/// one line there.
#[macro_export]
#[doc(hidden)]
macro_rules! registry {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every model's static description, in catalogue order.
        pub fn catalogue() -> Vec<&'static $crate::ModelSpec> {
            vec![$(&$module::SPEC),*]
        }

        /// Runs `visitor` with the model called `name`, if there is one.
        pub fn visit<V: $crate::ModelVisitor>(name: &str, visitor: V) -> Option<V::Output> {
            $(
                if $module::SPEC.name == name {
                    return Some(visitor.visit(<$module::$ty>::default()));
                }
            )*
            None
        }
    };
}

/// Every model's static description, in catalogue order.
pub fn catalogue() -> Vec<&'static ModelSpec> {
    crate::mass::catalogue()
}

/// Runs `visitor` with the model called `name`.
pub fn visit<V: ModelVisitor>(name: &str, visitor: V) -> Result<V::Output, UnknownModel> {
    crate::mass::visit(name, visitor).ok_or_else(|| unknown(name))
}

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
