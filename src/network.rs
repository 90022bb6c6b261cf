//! A network: a model at every node of a connectome, joined by a coupling, optionally with
//! conduction delays. The bound [`Field`] (network + parameter values) is the only vector field
//! an integrator sees.
//!
//! # When the coupling is evaluated
//! - Without delays (default): at every integration stage, from that stage's state (as vbjax).
//! - With delays, or with [`NetworkConfig::hold_coupling`]: once per step, from the state at the
//!   start of the step and the history, and held for every stage of the step (as TVB).
//!
//! # Delays
//! The delay of each connection, in steps, is `d_ij = round(length_ij / (speed · dt))`, rounding
//! halves to even (NumPy's `rint`, as TVB). The step from `n` to `n + 1` uses what source `j`
//! sent at step `n − d_ij` (`d = 0`: the current state). The history of each sent quantity is a
//! ring buffer of `H = max d + 1` steps carried with the state (so checkpointed gradients flow
//! through it); before the first step it holds the initial state's value at every past step
//! unless given. It is one flat vector per sent quantity, slot-major with the batch innermost
//! (`[H, nodes, batch]`): a step writes one contiguous slot, and reads each pair's (or edge's)
//! delayed values with one `select` of `batch · reads` entries. (A `[batch, H · nodes]` matrix
//! read by `gather` cost `O(batch · H · nodes)` per step on `ndarray`, whose `gather` copies its
//! whole input: 0.3–0.9 s per step at batch 256 on `hcp80`, against milliseconds now.)
//!
//! # Sparse coupling
//! With [`NetworkConfig::sparse`] resolving to sparse ([`SparseMode`]; by default for networks of
//! at least [`crate::sparse::AUTO_MIN_NODES`] nodes with a density of at most
//! [`crate::sparse::AUTO_MAX_DENSITY`]), the weights are kept as a list of the nonzero edges and
//! every sum runs over them (gather, weight, scatter-add; see [`crate::sparse`]) instead of
//! matrix products over all `N²` pairs; delayed sums read one value per edge from the history.
//! The results equal the dense ones up to rounding, gradients included.

use burn::prelude::{Backend, Int, Tensor, TensorData};
use neurodiff_models::{Dynamics, ModelSpec, ParamSpec};

use crate::connectome::Connectome;
use crate::coupling::{CouplingKind, SparseWeights};
use crate::error::{Error, Result};
use crate::integrate::VectorField;
use crate::sparse::SparseMode;

/// How to build a network (besides the connectome).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetworkConfig {
    /// Model name.
    pub model: String,
    /// Coupling function (`None`: the model's own, [`ModelSpec::coupling_function`]).
    pub coupling: Option<CouplingKind>,
    /// Coupling inputs to compute (`None`: the model's defaults).
    pub inputs: Option<Vec<String>>,
    /// Conduction speed in mm per unit of model time (mm/ms for most models); `None`: no delays.
    pub speed: Option<f64>,
    /// Evaluate the coupling once per step and hold it for every stage even without delays (TVB's
    /// scheme). Always on with delays.
    pub hold_coupling: bool,
    /// Whether coupling sums run over the nonzero weights only (see [`crate::sparse`]).
    #[serde(default)]
    pub sparse: SparseMode,
}

impl NetworkConfig {
    /// A model with its own coupling, no delays.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            coupling: None,
            inputs: None,
            speed: None,
            hold_coupling: false,
            sparse: SparseMode::Auto,
        }
    }
}

/// Conduction delays of a network.
#[derive(Debug, Clone, PartialEq)]
pub struct Delays {
    /// `d_ij` in steps, row-major `[target][source]`.
    pub steps: Vec<usize>,
    /// History length `H = max d + 1`.
    pub horizon: usize,
}

impl Delays {
    /// Delays from tract lengths (mm), a conduction speed (mm per time unit) and a step.
    pub fn from_lengths(lengths: &[f64], speed: f64, dt: f64) -> Result<Self> {
        check_speed(speed)?;
        let steps: Vec<usize> = lengths.iter().map(|&l| delay_steps(l, speed, dt)).collect();
        let horizon = steps.iter().copied().max().unwrap_or(0) + 1;
        Ok(Self { steps, horizon })
    }
}

/// Checks that a conduction speed is positive.
pub(crate) fn check_speed(speed: f64) -> Result<()> {
    if speed.is_nan() || speed <= 0.0 {
        return Err(Error::setting(
            "speed",
            format!("conduction speed must be positive, got {speed}"),
        ));
    }
    Ok(())
}

/// The delay in steps of a tract of `length` mm: `round(length / (speed · dt))`, halves to even.
pub fn delay_steps(length: f64, speed: f64, dt: f64) -> usize {
    (length / speed / dt).round_ties_even() as usize
}

/// The tract lengths of `connectome`, or the error that delays need them.
pub(crate) fn lengths_for_delays(connectome: &Connectome) -> Result<&[f64]> {
    connectome
        .lengths
        .as_deref()
        .ok_or_else(|| no_lengths(connectome))
}

/// The tract length of each edge of [`Connectome::csr`], for delays.
pub(crate) fn edge_lengths_for_delays(
    connectome: &Connectome,
) -> Result<std::borrow::Cow<'_, [f64]>> {
    connectome
        .edge_lengths()
        .ok_or_else(|| no_lengths(connectome))
}

fn no_lengths(connectome: &Connectome) -> Error {
    Error::setting(
        "speed",
        format!(
            "delays need tract lengths, and connectome {} has none (give them with --lengths, \
             or as the fourth column of an edge list)",
            connectome.source
        ),
    )
}

/// The coupling weights as the tensor engine keeps them.
enum Weights<B: Backend> {
    /// `Wᵀ`, so that the summed input of a batch of states `[batch, nodes]` is `s · Wᵀ`; and
    /// with delays `W` as `[1, nodes, nodes]`.
    Dense {
        wt: Tensor<B, 2>,
        w3: Option<Tensor<B, 3>>,
    },
    /// The nonzero edges.
    Sparse(SparseWeights<B>),
}

/// The delays as the tensor engine uses them: the history length and, for each pair (dense,
/// `[1, nodes²]`) or edge (sparse, `[1, nnz]`), the index `slot · nodes + source` of the history
/// row it reads at step 0 (`slot = (−d) mod H`).
struct DelayIndex<B: Backend> {
    horizon: usize,
    base: Tensor<B, 2, Int>,
}

/// A model on every node of a connectome, with a coupling and optional delays.
pub struct Network<B: Backend> {
    model: Box<dyn Dynamics<B>>,
    spec: &'static ModelSpec,
    coupling: CouplingKind,
    weights: Weights<B>,
    /// In-strengths `Σ_j W_ij`, `[1, nodes]`.
    rowsum: Tensor<B, 2>,
    inputs_on: Vec<bool>,
    /// Distinct sent quantities: for each, the coupling input that defines it.
    sources: Vec<usize>,
    /// For each coupling input: index into `sources`, or `None` if off.
    input_src: Vec<Option<usize>>,
    delays: Option<DelayIndex<B>>,
    hold: bool,
    n: usize,
    /// Model parameters given as host values (see [`Network::fold_params`]); empty: none.
    model_consts: Vec<Option<f64>>,
}

impl<B: Backend> Network<B> {
    /// Builds a network on `connectome`; `dt` (model time unit) converts delays to steps.
    pub fn build(
        cfg: &NetworkConfig,
        connectome: &Connectome,
        dt: f64,
        device: &B::Device,
    ) -> Result<Self> {
        let dynamics = crate::model::dynamics::<B>(&cfg.model)?;
        let spec = dynamics.spec();
        let inputs_on = resolve_inputs(spec, cfg.inputs.as_deref())?;
        let coupling = cfg
            .coupling
            .unwrap_or_else(|| spec.coupling_function.into());
        let n = connectome.n;
        let opts = || crate::float_opts::<B>(device);
        let (sources, input_src) = sent_quantities(spec, &inputs_on);
        let speed = match cfg.speed {
            None => None,
            Some(speed) => {
                check_speed(speed)?;
                Some(speed)
            }
        };
        let sparse = cfg.sparse.is_sparse(n, connectome.nnz());
        let idx = |v: Vec<i64>| {
            let len = v.len();
            Tensor::<B, 2, Int>::from_data(TensorData::new(v, [1, len]), device)
        };
        let (weights, rowsum, delays) = if sparse {
            // An edge list stays sparse: nothing here is n × n.
            let csr = connectome.csr();
            let lengths = match speed {
                None => None,
                Some(s) => Some((edge_lengths_for_delays(connectome)?, s)),
            };
            let delays = lengths.map(|(l, speed)| {
                let steps: Vec<usize> = l.iter().map(|&len| delay_steps(len, speed, dt)).collect();
                let h = steps.iter().copied().max().unwrap_or(0) + 1;
                let base = steps
                    .iter()
                    .zip(&csr.source)
                    .map(|(&d, &j)| (((h - d % h) % h) * n + j as usize) as i64)
                    .collect();
                DelayIndex {
                    horizon: h,
                    base: idx(base),
                }
            });
            let w = SparseWeights::new(&csr, device);
            (Weights::Sparse(w), csr.rowsum(), delays)
        } else {
            let dense = connectome.to_dense()?;
            let connectome: &Connectome = &dense;
            let lengths = match speed {
                None => None,
                Some(s) => Some((lengths_for_delays(connectome)?, s)),
            };
            let mut wt = vec![0f64; n * n];
            let mut rowsum = vec![0f64; n];
            for i in 0..n {
                for j in 0..n {
                    let w = connectome.weights[i * n + j];
                    wt[j * n + i] = w;
                    rowsum[i] += w;
                }
            }
            let delays = match lengths {
                None => None,
                Some((l, speed)) => {
                    let d = Delays::from_lengths(l, speed, dt)?;
                    // Flat index of (slot, source) for slot = (n - d) mod H, at n = 0.
                    let h = d.horizon;
                    let base: Vec<i64> = (0..n * n)
                        .map(|k| (((h - d.steps[k] % h) % h) * n + k % n) as i64)
                        .collect();
                    Some(DelayIndex {
                        horizon: h,
                        base: idx(base),
                    })
                }
            };
            // `W` as [1, n, n] only for delayed sums.
            let w3 = delays.as_ref().map(|_| {
                Tensor::from_data(
                    TensorData::new(connectome.weights.clone(), [1, n, n]),
                    opts(),
                )
            });
            let wt = Tensor::from_data(TensorData::new(wt, [n, n]), opts());
            (Weights::Dense { wt, w3 }, rowsum, delays)
        };
        Ok(Self {
            model: dynamics,
            spec,
            coupling,
            weights,
            rowsum: Tensor::from_data(TensorData::new(rowsum, [1, n]), opts()),
            inputs_on,
            sources,
            input_src,
            hold: cfg.hold_coupling || delays.is_some(),
            delays,
            n,
            model_consts: Vec::new(),
        })
    }

    /// Declares model parameters that are the same everywhere: `values[i] = Some(v)` when model
    /// parameter `i` is `v` for every batch element and node (entries past the model's
    /// parameters, the coupling's, are ignored). The model's equations then run with `v` folded
    /// into scalar operations instead of broadcasting a `[1, 1]` tensor (fewer, cheaper
    /// operations per step at small batches); the parameter tensors passed later must hold
    /// those same values. For forward runs only: a parameter given this way has no gradient.
    pub fn fold_params(&mut self, values: &[Option<f64>]) {
        let n = self.spec.params.len().min(values.len());
        self.model_consts = values[..n].to_vec();
    }

    /// A network of the model called `model` with coupling `coupling` (`None`: the model's
    /// own), no delays, per-stage coupling.
    pub fn new(
        model: &str,
        connectome: &Connectome,
        coupling: Option<CouplingKind>,
        inputs: Option<&[String]>,
        device: &B::Device,
    ) -> Result<Self> {
        let cfg = NetworkConfig {
            coupling,
            inputs: inputs.map(|i| i.to_vec()),
            ..NetworkConfig::new(model)
        };
        Self::build(&cfg, connectome, 1.0, device)
    }

    /// The model's static description.
    pub fn spec(&self) -> &'static ModelSpec {
        self.spec
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.n
    }

    /// The coupling function.
    pub fn coupling(&self) -> CouplingKind {
        self.coupling
    }

    /// Which of the model's coupling inputs are computed.
    pub fn inputs_on(&self) -> &[bool] {
        &self.inputs_on
    }

    /// The history length `H = max d + 1` in steps (over the connections the sums use: all
    /// pairs when dense, the nonzero edges when sparse), or `None` without delays.
    pub fn delay_horizon(&self) -> Option<usize> {
        self.delays.as_ref().map(|d| d.horizon)
    }

    /// Whether the coupling sums run over the nonzero edges only (see [`crate::sparse`]).
    pub fn is_sparse(&self) -> bool {
        matches!(self.weights, Weights::Sparse(_))
    }

    /// The undelayed coupling of sent quantity `s`.
    fn couple(&self, s: &Tensor<B, 2>, coupling_p: &[Tensor<B, 2>]) -> Tensor<B, 2> {
        match &self.weights {
            Weights::Dense { wt, .. } => self.coupling.apply(s, wt, &self.rowsum, coupling_p),
            Weights::Sparse(w) => self.coupling.apply_sparse(s, w, &self.rowsum, coupling_p),
        }
    }

    /// Whether the coupling is evaluated once per step and held (see the module documentation).
    pub fn holds_coupling(&self) -> bool {
        self.hold
    }

    /// The full parameter list: the model's parameters, then the coupling's (see
    /// [`param_specs`]).
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        param_specs(self.spec, self.coupling)
    }

    /// The model's default initial state at every node, `[batch, nodes]` per variable.
    pub fn initial_state(&self, batch: usize, device: &B::Device) -> Vec<Tensor<B, 2>> {
        self.spec
            .state
            .iter()
            .map(|v| Tensor::full([batch, self.n], v.initial, crate::float_opts::<B>(device)))
            .collect()
    }

    /// The initial delay history: for each sent quantity, its value at the initial state `x0`
    /// repeated over the horizon (flat `[H, nodes, batch]`, see the module documentation). Empty
    /// without delays.
    pub fn initial_history(
        &self,
        x0: &[Tensor<B, 2>],
        params: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 1>> {
        let Some(d) = &self.delays else {
            return Vec::new();
        };
        let (model_p, _) = params.split_at(self.spec.params.len());
        let [batch, _] = x0[0].dims();
        // Tiled with `cat`, not `repeat_dim`: Burn 0.21's autodiff backward of `repeat_dim`
        // sums the incoming gradient as if the copies were interleaved while the forward tiles
        // them, mixing nodes' gradients (caught by `tests/integration/delays.rs`).
        self.sources
            .iter()
            .map(|&k| {
                let slot = batch_inner(self.sent(k, x0, model_p), batch, self.n);
                Tensor::cat(vec![slot; d.horizon], 0)
            })
            .collect()
    }

    /// Binds parameter values (one tensor per entry of [`Network::param_specs`], each
    /// broadcastable to `[batch, nodes]`) to make a vector field whose coupling is evaluated at
    /// every stage.
    pub fn field<'a>(&'a self, params: &'a [Tensor<B, 2>]) -> Field<'a, B> {
        debug_assert_eq!(params.len(), self.param_specs().len());
        let (model_p, coupling_p) = params.split_at(self.spec.params.len());
        Field {
            net: self,
            model_p,
            coupling_p,
            held: None,
        }
    }

    /// A vector field for one step whose coupling inputs are fixed to `held`.
    pub fn field_held<'a>(
        &'a self,
        params: &'a [Tensor<B, 2>],
        held: Vec<Option<Tensor<B, 2>>>,
    ) -> Field<'a, B> {
        let mut f = self.field(params);
        f.held = Some(held);
        f
    }

    /// The quantity coupling input `k` sends, from state `x`.
    fn sent(&self, k: usize, x: &[Tensor<B, 2>], model_p: &[Tensor<B, 2>]) -> Tensor<B, 2> {
        let c = &self.spec.coupling[k];
        if c.sends.is_some() {
            self.model.coupled_folded(k, x, model_p, &self.model_consts)
        } else {
            x[c.var].clone()
        }
    }

    /// Expands per-source values into per-input values.
    fn per_input(&self, per_source: Vec<Tensor<B, 2>>) -> Vec<Option<Tensor<B, 2>>> {
        self.input_src
            .iter()
            .map(|s| s.map(|i| per_source[i].clone()))
            .collect()
    }

    /// The coupling inputs for state `x`, without delays.
    pub fn inputs(&self, x: &[Tensor<B, 2>], params: &[Tensor<B, 2>]) -> Vec<Option<Tensor<B, 2>>> {
        let (model_p, coupling_p) = params.split_at(self.spec.params.len());
        let per_source = self
            .sources
            .iter()
            .map(|&k| {
                let s = self.sent(k, x, model_p);
                self.couple(&s, coupling_p)
            })
            .collect();
        self.per_input(per_source)
    }

    /// The coupling inputs of step `step` (0-based) from the state at its start, updating the
    /// delay history (which must come from [`Network::initial_history`] or a previous call).
    /// Without delays `history` is empty and the inputs are the undelayed ones.
    pub fn step_inputs(
        &self,
        x: &[Tensor<B, 2>],
        history: &mut [Tensor<B, 1>],
        step: usize,
        params: &[Tensor<B, 2>],
    ) -> Vec<Option<Tensor<B, 2>>> {
        let Some(d) = &self.delays else {
            return self.inputs(x, params);
        };
        let (model_p, coupling_p) = params.split_at(self.spec.params.len());
        let (n, h) = (self.n, d.horizon);
        let slot = step % h;
        let [batch, _] = x[0].dims();
        let [_, reads] = d.base.dims();
        let device = x[0].device();
        // The history row (slot, source) each pair or edge reads: (base + slot · n) mod (H · n);
        // its entry for batch element b is row · batch + b, in [batch, reads] order.
        let rows = d
            .base
            .clone()
            .add_scalar((slot * n) as i64)
            .remainder_scalar((h * n) as i64);
        let idx: Tensor<B, 1, Int> = if batch == 1 {
            rows.reshape([reads])
        } else {
            let b = Tensor::<B, 1, Int>::arange(0..batch as i64, &device)
                .reshape([batch, 1])
                .expand([batch, reads]);
            (rows.mul_scalar(batch as i64).expand([batch, reads]) + b).reshape([batch * reads])
        };
        let per_source = self
            .sources
            .iter()
            .zip(history.iter_mut())
            .map(|(&k, hist)| {
                let s = self.sent(k, x, model_p);
                // Take the history out of `hist` first so that it is not shared, which lets
                // backends write the slot in place rather than copy the whole history.
                let placeholder = Tensor::empty([1], crate::float_opts::<B>(&device));
                let owned = std::mem::replace(hist, placeholder);
                let at = slot * n * batch;
                #[allow(clippy::single_range_in_vec_init)] // one range per dimension
                let range = [at..at + n * batch];
                *hist = owned.slice_assign(range, batch_inner(s.clone(), batch, n));
                let delayed = hist.clone().select(0, idx.clone()).reshape([batch, reads]);
                match &self.weights {
                    Weights::Dense { w3, .. } => self.coupling.apply_delayed(
                        &s,
                        delayed.reshape([batch, n, n]),
                        w3.as_ref().expect("dense weights with delays keep W"),
                        &self.rowsum,
                        coupling_p,
                    ),
                    Weights::Sparse(w) => {
                        self.coupling
                            .apply_delayed_sparse(&s, delayed, w, &self.rowsum, coupling_p)
                    }
                }
            })
            .collect();
        self.per_input(per_source)
    }
}

/// `s` (`[batch, nodes]`, or `[1, nodes]` broadcast to `batch`) as one history slot: flat
/// `[nodes, batch]`.
fn batch_inner<B: Backend>(s: Tensor<B, 2>, batch: usize, n: usize) -> Tensor<B, 1> {
    let s = s.expand([batch, n]);
    if batch == 1 {
        s.reshape([n])
    } else {
        s.transpose().reshape([n * batch])
    }
}

/// Distinct sent quantities among the enabled inputs (an input sending a plain variable is
/// shared with another sending the same variable), and each input's index into them.
pub(crate) fn sent_quantities(
    spec: &ModelSpec,
    inputs_on: &[bool],
) -> (Vec<usize>, Vec<Option<usize>>) {
    let mut sources: Vec<usize> = Vec::new();
    let mut input_src = Vec::new();
    for (k, c) in spec.coupling.iter().enumerate() {
        if !inputs_on[k] {
            input_src.push(None);
            continue;
        }
        let same = sources.iter().position(|&m| {
            let o = &spec.coupling[m];
            o.sends.is_none() && c.sends.is_none() && o.var == c.var
        });
        match same {
            Some(i) => input_src.push(Some(i)),
            None => {
                sources.push(k);
                input_src.push(Some(sources.len() - 1));
            }
        }
    }
    (sources, input_src)
}

/// The full parameter list of a model with a coupling: the model's parameters, then the
/// coupling's. The coupling's `G` defaults to the model's typical coupling strength.
pub fn param_specs(spec: &ModelSpec, coupling: CouplingKind) -> Vec<ParamSpec> {
    let mut v: Vec<ParamSpec> = spec.params.to_vec();
    for p in coupling.params() {
        let mut p = *p;
        if p.name == "G" {
            p.default = spec.coupling_strength;
        }
        v.push(p);
    }
    v
}

/// Which coupling inputs of a model are computed: the named ones, or the model's defaults.
pub fn resolve_inputs(spec: &ModelSpec, inputs: Option<&[String]>) -> Result<Vec<bool>> {
    match inputs {
        None => Ok(spec.coupling.iter().map(|c| c.default_on).collect()),
        Some(names) => {
            let mut on = vec![false; spec.coupling.len()];
            for name in names {
                let k = spec
                    .coupling
                    .iter()
                    .position(|c| c.name == name)
                    .ok_or_else(|| {
                        Error::setting(
                            "coupling-inputs",
                            format!(
                                "model `{}` has no coupling input `{name}`; it has: {}",
                                spec.name,
                                spec.coupling
                                    .iter()
                                    .map(|c| c.name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })?;
                on[k] = true;
            }
            Ok(on)
        }
    }
}

/// A network with its parameter values bound: the vector field integrators step.
pub struct Field<'a, B: Backend> {
    net: &'a Network<B>,
    model_p: &'a [Tensor<B, 2>],
    coupling_p: &'a [Tensor<B, 2>],
    held: Option<Vec<Option<Tensor<B, 2>>>>,
}

impl<B: Backend> Field<'_, B> {
    /// The coupling inputs at state `x` (held ones as held).
    fn coupling_inputs(&self, x: &[Tensor<B, 2>]) -> Vec<Option<Tensor<B, 2>>> {
        match &self.held {
            Some(c) => c.clone(),
            None => {
                let per_source = self
                    .net
                    .sources
                    .iter()
                    .map(|&k| {
                        let s = self.net.sent(k, x, self.model_p);
                        self.net.couple(&s, self.coupling_p)
                    })
                    .collect();
                self.net.per_input(per_source)
            }
        }
    }
}

impl<B: Backend> VectorField<B> for Field<'_, B> {
    fn eval(&self, x: &[Tensor<B, 2>]) -> Vec<Tensor<B, 2>> {
        let c = self.coupling_inputs(x);
        let k = &self.net.model_consts;
        self.net.model.drift_folded(x, &c, self.model_p, k)
    }

    fn eval_linear(&self, x: &[Tensor<B, 2>]) -> (Vec<Tensor<B, 2>>, Option<Vec<Tensor<B, 2>>>) {
        let c = self.coupling_inputs(x);
        let k = &self.net.model_consts;
        let a = self.net.model.linear_folded(x, &c, self.model_p, k);
        (self.net.model.drift_folded(x, &c, self.model_p, k), a)
    }

    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
        if self.net.model.has_projection() {
            self.net.model.project(x)
        } else {
            x
        }
    }
}
