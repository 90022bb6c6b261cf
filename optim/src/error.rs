//! Errors of the optimisation crate. Bad settings and inconsistent inputs are reported here, with
//! the values involved, rather than by a panic.

/// Errors of `neurodiff-optim`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A pair of bounds that cannot define the inverse-sigmoid transform.
    #[error("invalid bounds [{lower}, {upper}]: {reason}")]
    InvalidBounds {
        /// The lower bound as given.
        lower: f64,
        /// The upper bound as given.
        upper: f64,
        /// What is wrong with them.
        reason: &'static str,
    },

    /// An initial parameter value outside (or on) its bounds.
    #[error(
        "parameter `{name}`: initial value {value} {problem}; it must lie strictly inside its \
         bounds ({lower}, {upper}), because the inverse-sigmoid transform maps the bounds \
         themselves to -inf and +inf"
    )]
    OutOfBounds {
        /// The parameter.
        name: String,
        /// The offending value.
        value: f64,
        /// The lower bound.
        lower: f64,
        /// The upper bound.
        upper: f64,
        /// Which bound is violated and how (e.g. "lies on its upper bound 1").
        problem: String,
    },

    /// An optimiser or loss setting that is not acceptable.
    #[error("setting `{name}`: {message}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// What is wrong, with the value.
        message: String,
    },

    /// Tensors whose shapes do not fit together.
    #[error("{context}: {message}")]
    Shape {
        /// The function or argument concerned.
        context: &'static str,
        /// The shapes involved.
        message: String,
    },
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Setting`] error.
    pub fn setting(name: &'static str, message: impl Into<String>) -> Self {
        Error::Setting {
            name,
            message: message.into(),
        }
    }

    /// An [`Error::Shape`] error.
    pub fn shape(context: &'static str, message: impl Into<String>) -> Self {
        Error::Shape {
            context,
            message: message.into(),
        }
    }
}
