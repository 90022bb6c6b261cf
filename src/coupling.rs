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
//! and `Sigmoidal` (TVB's `a` is our `G`; checked against TVB in `tests/integration/tvb.rs`). The coupling's
//! own parameters carry a `cpl_` prefix so they never clash with a model's (Jansen–Rit has its
//! own `r`).
//!
//! Without delays the sums are matrix products (`s · Wᵀ`, with `Σ_j W_ij (s_j − s_i) =
//! (s · Wᵀ)_i − s_i Σ_j W_ij` and `sin(s_j − s_i) = sin s_j cos s_i − cos s_j sin s_i`). With
//! delays each pair reads `s_j` from its own past step, so the sum runs over the delayed values
//! `[batch, target, source]` ([`CouplingKind::apply_delayed`]).
//!
//! With sparse weights ([`SparseWeights`], see [`crate::sparse`]) the same formulas run over the
//! nonzero edges only: each product `s · Wᵀ` becomes gather (sources) × weights → scatter-add
//! (targets) ([`CouplingKind::apply_sparse`]), and the delayed sum reads one delayed value per
//! edge (`[batch, nnz]`, [`CouplingKind::apply_delayed_sparse`]).

use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::tensor::IndexingUpdateOp;
use neurodiff_models::{CouplingFunction, ParamSpec};
use num_traits::Float;

use crate::error::{Error, Result};
use crate::sparse::Csr;

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
        self.apply_with(s, |x| product(&x, wt), rowsum, p)
    }

    /// [`CouplingKind::apply`] with sparse weights: each sum `Σ_j W_ij x_j` over the nonzero
    /// edges only.
    pub fn apply_sparse<B: Backend>(
        self,
        s: &Tensor<B, 2>,
        w: &SparseWeights<B>,
        rowsum: &Tensor<B, 2>,
        p: &[Tensor<B, 2>],
    ) -> Tensor<B, 2> {
        self.apply_with(s, |x| w.matvec(x), rowsum, p)
    }

    /// The undelayed coupling given `sum(x)_i = Σ_j W_ij x_j` for `x` of shape `[batch, nodes]`.
    fn apply_with<B: Backend>(
        self,
        s: &Tensor<B, 2>,
        sum: impl Fn(Tensor<B, 2>) -> Tensor<B, 2>,
        rowsum: &Tensor<B, 2>,
        p: &[Tensor<B, 2>],
    ) -> Tensor<B, 2> {
        let g = p[0].clone();
        match self {
            Self::Linear => sum(s.clone()) * g,
            Self::Difference => (sum(s.clone()) - s.clone() * rowsum.clone()) * g,
            Self::Kuramoto => {
                let (sin, cos) = (s.clone().sin(), s.clone().cos());
                (cos.clone() * sum(sin.clone()) - sin * sum(cos)) * g
            }
            Self::SigmoidalJansenRit => {
                let pre = jr_sigmoid(s.clone(), &p[1], &p[2], &p[3], &p[4]);
                sum(pre) * g
            }
            Self::Sigmoidal => sigmoidal_post(sum(s.clone()), &g, &p[1], &p[2], &p[3], &p[4]),
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

    /// The network input with delays and sparse weights: `delayed[b, e]` is the value the source
    /// of edge `e` sent `d_e` steps ago (`[batch, nnz]`, edges in the order of `w`).
    pub fn apply_delayed_sparse<B: Backend>(
        self,
        s_now: &Tensor<B, 2>,
        delayed: Tensor<B, 2>,
        w: &SparseWeights<B>,
        rowsum: &Tensor<B, 2>,
        p: &[Tensor<B, 2>],
    ) -> Tensor<B, 2> {
        let [b, _] = delayed.dims();
        let sum = |t: Tensor<B, 2>| w.scatter_targets(t * w.weights(), b);
        let g = p[0].clone();
        match self {
            Self::Linear => sum(delayed) * g,
            Self::Difference => (sum(delayed) - s_now.clone() * rowsum.clone()) * g,
            Self::Kuramoto => sum((delayed - w.at_targets(s_now)).sin()) * g,
            Self::SigmoidalJansenRit => {
                // Parameters at each edge's source, as in the undelayed form.
                let at = |t: &Tensor<B, 2>| w.at_sources(t);
                let pre = jr_sigmoid(delayed, &at(&p[1]), &at(&p[2]), &at(&p[3]), &at(&p[4]));
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

/// The nonzero weights of a connectome on a tensor backend, as an edge list sorted by target
/// (from a [`Csr`]). Sums over sources are a gather of the sources' values, a product with the
/// weights and a scatter-add into the targets; all three have gradients.
#[derive(Clone, Debug)]
pub struct SparseWeights<B: Backend> {
    n: usize,
    nnz: usize,
    /// Source of each edge, `[1, nnz]`.
    source: Tensor<B, 2, Int>,
    /// Target of each edge, `[1, nnz]`.
    target: Tensor<B, 2, Int>,
    /// Weight of each edge, `[1, nnz]`.
    weight: Tensor<B, 2>,
}

impl<B: Backend> SparseWeights<B> {
    /// The edges of `csr` on `device`.
    pub fn new(csr: &Csr, device: &B::Device) -> Self {
        let nnz = csr.nnz();
        let idx =
            |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, [1, nnz]), device);
        Self {
            n: csr.n,
            nnz,
            source: idx(csr.source.iter().map(|&j| j as i64).collect()),
            target: idx(csr.targets().into_iter().map(|i| i as i64).collect()),
            weight: Tensor::from_data(
                TensorData::new(csr.weight.clone(), [1, nnz]),
                crate::float_opts::<B>(device),
            ),
        }
    }

    /// Number of edges.
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.n
    }

    /// The weights, `[1, nnz]`.
    pub fn weights(&self) -> Tensor<B, 2> {
        self.weight.clone()
    }

    /// `Σ_j W_ij x_j` for `x` of shape `[batch, nodes]`.
    pub fn matvec(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let [b, _] = x.dims();
        self.scatter_targets(self.at_sources(&x) * self.weight.clone(), b)
    }

    /// Each edge's source value, `[rows, nnz]`, of `x` (`[rows, nodes]`, or `[rows, 1]` which
    /// is returned as is, to broadcast).
    pub fn at_sources(&self, x: &Tensor<B, 2>) -> Tensor<B, 2> {
        self.pick(x, &self.source)
    }

    /// Each edge's target value, `[rows, nnz]`, of `x` (as [`SparseWeights::at_sources`]).
    pub fn at_targets(&self, x: &Tensor<B, 2>) -> Tensor<B, 2> {
        self.pick(x, &self.target)
    }

    fn pick(&self, x: &Tensor<B, 2>, idx: &Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [rows, cols] = x.dims();
        if cols == 1 {
            return x.clone();
        }
        debug_assert_eq!(cols, self.n);
        x.clone().gather(1, idx.clone().expand([rows, self.nnz]))
    }

    /// Per-edge values `v` (`[batch, nnz]`, or `[1, nnz]` broadcast to `batch`) summed into
    /// their targets: `[batch, nodes]`.
    pub fn scatter_targets(&self, v: Tensor<B, 2>, batch: usize) -> Tensor<B, 2> {
        let v = v.expand([batch, self.nnz]);
        let zeros = Tensor::zeros([batch, self.n], crate::float_opts::<B>(&v.device()));
        zeros.scatter(
            1,
            self.target.clone().expand([batch, self.nnz]),
            v,
            IndexingUpdateOp::Add,
        )
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
    pub fn pre<T: Float + 'static>(kind: CouplingKind, s: T, p: &[T]) -> [T; 2] {
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
    pub fn post<T: Float + 'static>(
        kind: CouplingKind,
        sums: [T; 2],
        s_i: T,
        rowsum: T,
        p: &[T],
    ) -> T {
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

/// `x · wt` (`[batch, n] × [n, m]`): Burn's `matmul`, except on the plain `NdArray` backend,
/// where the product runs on the two arrays as they are. burn-ndarray 0.21's `matmul` reshapes
/// both operands to `[batches, rows, cols]` and its `reshape` copies a view into a new array, so
/// each coupling sum copied the whole weight matrix first (14 % of the tensor engine's
/// instructions at batch 1 on 80 nodes, more than the product itself). Under `Autodiff` and on
/// the other backends the primitive is not an `NdArrayTensor` and `matmul` runs.
pub(crate) fn product<B: Backend>(x: &Tensor<B, 2>, wt: &Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "ndarray")]
    if let Some(out) = ndarray_product(x, wt) {
        return out;
    }
    x.clone().matmul(wt.clone())
}

#[cfg(feature = "ndarray")]
fn ndarray_product<B: Backend>(x: &Tensor<B, 2>, wt: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    use burn::backend::ndarray::NdArrayTensor;
    use burn::tensor::TensorPrimitive;
    use ndarray017::{ArrayViewD, Ix2, LinalgScalar};
    use std::any::Any;

    fn dot<E: LinalgScalar>(
        a: ArrayViewD<'_, E>,
        b: ArrayViewD<'_, E>,
    ) -> Option<ndarray017::ArcArray<E, ndarray017::IxDyn>> {
        let a = a.into_dimensionality::<Ix2>().ok()?;
        let b = b.into_dimensionality::<Ix2>().ok()?;
        (a.ncols() == b.nrows()).then(|| a.dot(&b).into_shared().into_dyn())
    }

    let xp = x.clone().into_primitive().tensor();
    let wp = wt.clone().into_primitive().tensor();
    let (xa, wa): (&dyn Any, &dyn Any) = (&xp, &wp);
    let out: NdArrayTensor = match (
        xa.downcast_ref::<NdArrayTensor>()?,
        wa.downcast_ref::<NdArrayTensor>()?,
    ) {
        (NdArrayTensor::F32(a), NdArrayTensor::F32(b)) => dot(a.view(), b.view())?.into(),
        (NdArrayTensor::F64(a), NdArrayTensor::F64(b)) => dot(a.view(), b.view())?.into(),
        _ => return None,
    };
    let out: Box<dyn Any> = Box::new(out);
    let out = *out.downcast::<B::FloatTensorPrimitive>().ok()?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// The `NdArray` product against Burn's `matmul` (which it replaces there): f32 and f64,
    /// a transposed (non-standard layout) right operand and a broadcast left one.
    fn product_equals_matmul<B: Backend>(tol: f64) {
        let d = Default::default();
        let t = |v: Vec<f64>, s: [usize; 2]| -> Tensor<B, 2> {
            Tensor::from_data(TensorData::new(v, s), crate::float_opts::<B>(&d))
        };
        let vals = |n: usize, k: u64| -> Vec<f64> {
            (0..n)
                .map(|i| (((i as u64 + 1) * 2_654_435_761 + k) % 1000) as f64 / 500.0 - 1.0)
                .collect()
        };
        let x = t(vals(3 * 7, 1), [3, 7]);
        let w = t(vals(7 * 7, 2), [7, 7]);
        let row = t(vals(7, 3), [1, 7]).expand([4, 7]);
        for (a, b) in [
            (x.clone(), w.clone()),
            (x.clone(), w.clone().transpose()),
            (row, w.clone()),
        ] {
            let want: Vec<f64> = a
                .clone()
                .matmul(b.clone())
                .into_data()
                .convert::<f64>()
                .into_vec()
                .unwrap();
            let got = product(&a, &b);
            assert_eq!(got.dims(), [a.dims()[0], 7]);
            let got: Vec<f64> = got.into_data().convert::<f64>().into_vec().unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()),
                    "{g} against matmul's {w}"
                );
            }
        }
    }

    #[test]
    fn ndarray_product_equals_matmul() {
        product_equals_matmul::<burn::backend::NdArray<f32>>(1e-6);
        product_equals_matmul::<burn::backend::NdArray<f64>>(1e-13);
        product_equals_matmul::<burn::backend::Autodiff<burn::backend::NdArray<f64>>>(1e-13);
    }
}
