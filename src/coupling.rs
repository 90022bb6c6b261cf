//! Coupling: how the quantity each node sends (`s_j`, by default one of its state variables) is
//! combined through the connectome into each node's network input. A coupling is separate from
//! the model and swappable; each model names the one it is normally used with.
//!
//! Convention (see [`crate::connectome`]): `W[i][j]` is the weight from source `j` onto target
//! `i`. In TVB's terms every coupling is `c_i = post(Σ_j W_ij pre(s_i, s_j))`:
//!
//! | kind | `c_i` | parameters |
//! |---|---|---|
//! | `linear` | `G Σ_j W_ij s_j` | `G` |
//! | `difference` | `G Σ_j W_ij (s_j − s_i)` | `G` |
//! | `kuramoto` | `G Σ_j W_ij sin(s_j − s_i)` (no 1/N, as TVB) | `G` |
//! | `sigmoidal_jansen_rit` | `G Σ_j W_ij [cmin + (cmax − cmin) / (1 + exp(r (midpoint − s_j)))]` | `G`, `cpl_cmin`, `cpl_cmax`, `cpl_midpoint`, `cpl_r` |
//! | `sigmoidal` | `cmin + (cmax − cmin) / (1 + exp(−G (Σ_j W_ij s_j − midpoint) / sigma))` | `G`, `cpl_cmin`, `cpl_cmax`, `cpl_midpoint`, `cpl_sigma` |
//!
//! These match TVB's `Linear` (with `b = 0`), `Difference`, `Kuramoto`, `SigmoidalJansenRit`
//! and `Sigmoidal` (TVB's `a` is our `G`; checked against TVB in `tests/tvb.rs`). The coupling's
//! own parameters carry a `cpl_` prefix so they never clash with a model's (Jansen–Rit has its
//! own `r`).
//!
//! Without delays the sums are matrix products (`s · Wᵀ`, with `Σ_j W_ij (s_j − s_i) =
//! (s · Wᵀ)_i − s_i Σ_j W_ij` and `sin(s_j − s_i) = sin s_j cos s_i − cos s_j sin s_i`). With
//! delays each pair reads `s_j` from its own past step, so the sum runs over the delayed values
//! `[batch, target, source]` ([`CouplingKind::apply_delayed`]).

use burn::prelude::{Backend, Tensor};
use neurodiff_models::{CouplingFunction, ParamSpec};
use num_traits::Float;

use crate::error::{Error, Result};

/// The coupling function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CouplingKind {
    /// `c_i = G Σ_j W_ij s_j`.
    Linear,
    /// `c_i = G Σ_j W_ij (s_j − s_i)`.
    Difference,
    /// `c_i = G Σ_j W_ij sin(s_j − s_i)`.
    Kuramoto,
    /// TVB's `SigmoidalJansenRit`: a sigmoid of each sender's quantity, summed.
    SigmoidalJansenRit,
    /// TVB's `Sigmoidal`: a sigmoid of the summed input.
    Sigmoidal,
}

impl std::str::FromStr for CouplingKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::setting(
                    "coupling",
                    format!(
                        "`{s}` is not one of: {}",
                        Self::ALL.map(|k| k.name()).join(", ")
                    ),
                )
            })
    }
}

impl From<CouplingFunction> for CouplingKind {
    fn from(f: CouplingFunction) -> Self {
        match f {
            CouplingFunction::Linear => Self::Linear,
            CouplingFunction::Difference => Self::Difference,
            CouplingFunction::Kuramoto => Self::Kuramoto,
            CouplingFunction::SigmoidalJansenRit => Self::SigmoidalJansenRit,
        }
    }
}

const G: ParamSpec = ParamSpec {
    name: "G",
    default: 1.0,
    unit: "1",
    lower: -1e4,
    upper: 1e4,
    doc: "global coupling strength (scales every connectome weight)",
};

const SIGMOIDAL_JR_PARAMS: &[ParamSpec] = &[
    G,
    ParamSpec {
        name: "cpl_cmin",
        default: 0.0,
        unit: "ms⁻¹",
        lower: -1e3,
        upper: 1e3,
        doc: "lowest value of the pre-synaptic sigmoid",
    },
    ParamSpec {
        name: "cpl_cmax",
        default: 0.005,
        unit: "ms⁻¹",
        lower: -1e3,
        upper: 1e3,
        doc: "highest value of the pre-synaptic sigmoid (2 e0 of Jansen–Rit)",
    },
    ParamSpec {
        name: "cpl_midpoint",
        default: 6.0,
        unit: "mV",
        lower: -1e3,
        upper: 1e3,
        doc: "potential at the sigmoid's midpoint",
    },
    ParamSpec {
        name: "cpl_r",
        default: 0.56,
        unit: "mV⁻¹",
        lower: 0.0,
        upper: 1e3,
        doc: "steepness of the sigmoid",
    },
];

const SIGMOIDAL_PARAMS: &[ParamSpec] = &[
    G,
    ParamSpec {
        name: "cpl_cmin",
        default: -1.0,
        unit: "1",
        lower: -1e6,
        upper: 1e6,
        doc: "lowest value of the sigmoid",
    },
    ParamSpec {
        name: "cpl_cmax",
        default: 1.0,
        unit: "1",
        lower: -1e6,
        upper: 1e6,
        doc: "highest value of the sigmoid",
    },
    ParamSpec {
        name: "cpl_midpoint",
        default: 0.0,
        unit: "1",
        lower: -1e6,
        upper: 1e6,
        doc: "summed input at the sigmoid's midpoint",
    },
    ParamSpec {
        name: "cpl_sigma",
        default: 230.0,
        unit: "1",
        lower: 1e-9,
        upper: 1e9,
        doc: "width of the sigmoid",
    },
];

impl CouplingKind {
    /// Every kind.
    pub const ALL: [CouplingKind; 5] = [
        Self::Linear,
        Self::Difference,
        Self::Kuramoto,
        Self::SigmoidalJansenRit,
        Self::Sigmoidal,
    ];

    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Difference => "difference",
            Self::Kuramoto => "kuramoto",
            Self::SigmoidalJansenRit => "sigmoidal_jansen_rit",
            Self::Sigmoidal => "sigmoidal",
        }
    }

    /// The coupling's own parameters (appended after the model's), `G` first.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            Self::Linear | Self::Difference | Self::Kuramoto => std::slice::from_ref(&G),
            Self::SigmoidalJansenRit => SIGMOIDAL_JR_PARAMS,
            Self::Sigmoidal => SIGMOIDAL_PARAMS,
        }
    }

    /// The network input without delays from the sent quantity `s` (`[batch, nodes]`), given
    /// `wt = Wᵀ` (`[nodes, nodes]`), the in-strengths `rowsum_i = Σ_j W_ij` (`[1, nodes]`) and
    /// the coupling's parameters (each broadcastable to `[batch, nodes]`).
    pub fn apply<B: Backend>(
        self,
        s: &Tensor<B, 2>,
        wt: &Tensor<B, 2>,
        rowsum: &Tensor<B, 2>,
        p: &[Tensor<B, 2>],
    ) -> Tensor<B, 2> {
        let g = p[0].clone();
        match self {
            Self::Linear => s.clone().matmul(wt.clone()) * g,
            Self::Difference => (s.clone().matmul(wt.clone()) - s.clone() * rowsum.clone()) * g,
            Self::Kuramoto => {
                let (sin, cos) = (s.clone().sin(), s.clone().cos());
                (cos.clone() * sin.clone().matmul(wt.clone()) - sin * cos.matmul(wt.clone())) * g
            }
            Self::SigmoidalJansenRit => {
                let pre = jr_sigmoid(s.clone(), &p[1], &p[2], &p[3], &p[4]);
                pre.matmul(wt.clone()) * g
            }
            Self::Sigmoidal => {
                let sum = s.clone().matmul(wt.clone());
                sigmoidal_post(sum, &g, &p[1], &p[2], &p[3], &p[4])
            }
        }
    }

    /// The network input with delays: `s_now` is the current sent quantity (`[batch, nodes]`),
    /// `delayed[b, i, j]` the value node `j` sent `d_ij` steps ago as seen by target `i`
    /// (`[batch, nodes, nodes]`), `w` the weights `W` as `[1, nodes, nodes]`.
    pub fn apply_delayed<B: Backend>(
        self,
        s_now: &Tensor<B, 2>,
        delayed: Tensor<B, 3>,
        w: &Tensor<B, 3>,
        rowsum: &Tensor<B, 2>,
        p: &[Tensor<B, 2>],
    ) -> Tensor<B, 2> {
        let [b, n, _] = delayed.dims();
        let sum = |t: Tensor<B, 3>| (t * w.clone()).sum_dim(2).reshape([b, n]);
        let g = p[0].clone();
        match self {
            Self::Linear => sum(delayed) * g,
            Self::Difference => (sum(delayed) - s_now.clone() * rowsum.clone()) * g,
            Self::Kuramoto => {
                let si: Tensor<B, 3> = s_now.clone().unsqueeze_dim(2);
                sum((delayed - si).sin()) * g
            }
            Self::SigmoidalJansenRit => {
                // Per source node j (the last axis), as in the undelayed form.
                let u = |t: &Tensor<B, 2>| -> Tensor<B, 3> { t.clone().unsqueeze_dim(1) };
                let pre = jr_sigmoid3(delayed, &u(&p[1]), &u(&p[2]), &u(&p[3]), &u(&p[4]));
                sum(pre) * g
            }
            Self::Sigmoidal => sigmoidal_post(sum(delayed), &g, &p[1], &p[2], &p[3], &p[4]),
        }
    }

    /// Whether the coupling needs `cos`/`sin` sums (two matrix products instead of one).
    pub fn is_kuramoto(self) -> bool {
        self == Self::Kuramoto
    }
}

fn jr_sigmoid<B: Backend>(
    s: Tensor<B, 2>,
    cmin: &Tensor<B, 2>,
    cmax: &Tensor<B, 2>,
    mid: &Tensor<B, 2>,
    r: &Tensor<B, 2>,
) -> Tensor<B, 2> {
    let e = ((mid.clone() - s) * r.clone()).exp();
    cmin.clone() + (cmax.clone() - cmin.clone()) / (e + 1.0)
}

fn jr_sigmoid3<B: Backend>(
    s: Tensor<B, 3>,
    cmin: &Tensor<B, 3>,
    cmax: &Tensor<B, 3>,
    mid: &Tensor<B, 3>,
    r: &Tensor<B, 3>,
) -> Tensor<B, 3> {
    let e = ((mid.clone() - s) * r.clone()).exp();
    cmin.clone() + (cmax.clone() - cmin.clone()) / (e + 1.0)
}

fn sigmoidal_post<B: Backend>(
    sum: Tensor<B, 2>,
    g: &Tensor<B, 2>,
    cmin: &Tensor<B, 2>,
    cmax: &Tensor<B, 2>,
    mid: &Tensor<B, 2>,
    sigma: &Tensor<B, 2>,
) -> Tensor<B, 2> {
    let e = ((sum - mid.clone()) * g.clone().neg() / sigma.clone()).exp();
    cmin.clone() + (cmax.clone() - cmin.clone()) / (e + 1.0)
}

/// The same couplings one number at a time, for the fused CPU engine: what each source sends
/// into the sums (`pre`, up to two sums for Kuramoto) and how a target turns the sums into its
/// input (`post`).
pub(crate) mod point {
    use super::*;

    /// How many sums over sources the coupling needs.
    pub fn n_sums(kind: CouplingKind) -> usize {
        if kind == CouplingKind::Kuramoto {
            2
        } else {
            1
        }
    }

    /// The values source `j` with sent quantity `s` contributes to the sums (`p` = coupling
    /// parameters at the source's node, used by the sigmoidal Jansen–Rit pre-synaptic sigmoid).
    #[inline(always)]
    pub fn pre<T: Float>(kind: CouplingKind, s: T, p: &[T]) -> [T; 2] {
        match kind {
            CouplingKind::Kuramoto => [s.sin(), s.cos()],
            CouplingKind::SigmoidalJansenRit => {
                let e = ((p[3] - s) * p[4]).exp();
                [p[1] + (p[2] - p[1]) / (e + T::one()), T::zero()]
            }
            _ => [s, T::zero()],
        }
    }

    /// A target's input from its sums, its own sent quantity `s_i`, its in-strength and the
    /// coupling parameters at the target.
    #[inline(always)]
    pub fn post<T: Float>(kind: CouplingKind, sums: [T; 2], s_i: T, rowsum: T, p: &[T]) -> T {
        let g = p[0];
        match kind {
            CouplingKind::Linear | CouplingKind::SigmoidalJansenRit => g * sums[0],
            CouplingKind::Difference => g * (sums[0] - s_i * rowsum),
            CouplingKind::Kuramoto => g * (s_i.cos() * sums[0] - s_i.sin() * sums[1]),
            CouplingKind::Sigmoidal => {
                let e = (-g * (sums[0] - p[3]) / p[4]).exp();
                p[1] + (p[2] - p[1]) / (e + T::one())
            }
        }
    }
}
