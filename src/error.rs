//! Structured errors. Everything that can go wrong with user input is validated at the edges
//! (command line, config files, data files) and reported here with the facts needed to fix it.

use std::path::PathBuf;

/// Errors of the neurodiff engine and its input/output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A data file was read but its content is not acceptable.
    #[error("{path}: {message}")]
    Data {
        /// The file (or a description of the in-memory source).
        path: PathBuf,
        /// What is wrong, with row/column where it applies.
        message: String,
    },

    /// A model name is not in the catalogue.
    #[error(transparent)]
    UnknownModel(#[from] neurodiff_models::UnknownModel),

    /// A parameter was named that the model or coupling does not have, or its value is outside
    /// the admissible bounds.
    #[error("parameter `{name}`: {message}")]
    Param {
        /// The parameter.
        name: String,
        /// What is wrong.
        message: String,
    },

    /// A setting (command-line flag or config entry) is not acceptable.
    #[error("setting `{name}`: {message}")]
    Setting {
        /// The flag or key.
        name: String,
        /// What is wrong.
        message: String,
    },

    /// A config file could not be parsed.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },

    /// The simulation produced a non-finite value.
    #[error(
        "simulation diverged at step {step} (t = {time} {time_unit}): state variable `{var}` of \
         node {node} (batch element {batch}) became {value}; try a smaller dt, weaker coupling or \
         less noise"
    )]
    Diverged {
        /// The first step (1-based count of steps taken) after which a value was non-finite.
        step: usize,
        /// The simulated time at that step.
        time: f64,
        /// The model's unit of time.
        time_unit: &'static str,
        /// The state variable.
        var: String,
        /// The node (0-based index into the connectome).
        node: usize,
        /// The batch element (0-based).
        batch: usize,
        /// The offending value (NaN or ±inf).
        value: f32,
    },

    /// An optimiser or transform setting that `neurodiff-optim` refused (its message names the
    /// parameter or setting).
    #[error(transparent)]
    Optim(neurodiff_optim::Error),

    /// Another error with advice on what to change.
    #[error("{error}\n  hint: {hint}")]
    Hint {
        /// The error.
        error: Box<Error>,
        /// What to try.
        hint: String,
    },

    /// An engine was asked for something it cannot do (see
    /// [`crate::problem::Problem::capabilities`]).
    #[error(transparent)]
    Unsupported(#[from] crate::problem::Unsupported),

    /// A multi-compartment cell's morphology, channels, settings or simulation (names the file
    /// and row, branch, channel, parameter or compartment).
    #[error(transparent)]
    Cell(#[from] crate::cell::CellError),
    /// A multi-region latent-variable model (`neurodiff latent`) failed or was given bad input.
    #[error(transparent)]
    Latent(#[from] crate::latent::LatentError),

    /// A backend was asked for that this build does not include or this machine cannot run.
    #[error("backend `{name}`: {message}")]
    Backend {
        /// The backend.
        name: String,
        /// Why it cannot be used.
        message: String,
    },
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Setting`] error.
    pub fn setting(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Setting {
            name: name.into(),
            message: message.into(),
        }
    }

    /// A [`Error::Param`] error.
    pub fn param(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Param {
            name: name.into(),
            message: message.into(),
        }
    }

    /// A [`Error::Data`] error.
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A [`Error::Io`] error.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
