//! Coupling: how the nodes' states are combined through the connectome into each node's network
//! input. A coupling is separate from the model and swappable.
//!
//! Convention (see [`crate::connectome`]): `W[i][j]` is the weight from source `j` onto target
//! `i`.

use burn::prelude::{Backend, Tensor};
use neurodiff_models::ParamSpec;

use crate::error::{Error, Result};

/// The coupling function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CouplingKind {
    /// `c_i = G Σ_j W_ij x_j`.
    #[default]
    Linear,
}

impl std::str::FromStr for CouplingKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(Self::Linear),
            _ => Err(Error::setting(
                "coupling",
                format!("`{s}` is not one of: linear"),
            )),
        }
    }
}

/// Parameters of the linear coupling.
pub const LINEAR_PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "G",
    default: 1.0,
    unit: "1",
    lower: -1e4,
    upper: 1e4,
    doc: "global coupling strength (scales every connectome weight)",
}];

impl CouplingKind {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
        }
    }

    /// The coupling's own parameters (appended after the model's).
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            Self::Linear => LINEAR_PARAMS,
        }
    }

    /// The network input from the sent variable `x` (`[batch, nodes]`), given `wt = Wᵀ`
    /// (`[nodes, nodes]`) and the coupling's parameters.
    pub fn apply<B: Backend>(
        self,
        x: &Tensor<B, 2>,
        wt: &Tensor<B, 2>,
        p: &[Tensor<B, 2>],
    ) -> Tensor<B, 2> {
        match self {
            Self::Linear => x.clone().matmul(wt.clone()) * p[0].clone(),
        }
    }
}
