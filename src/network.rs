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
//! unless given.

use burn::prelude::{Backend, Int, Tensor, TensorData};
use neurodiff_models::{Dynamics, ModelSpec, ParamSpec};

use crate::connectome::Connectome;
use crate::coupling::CouplingKind;
use crate::error::{Error, Result};
use crate::integrate::VectorField;

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
        if !(speed > 0.0) || speed.is_nan() {
            return Err(Error::setting(
                "speed",
                format!("conduction speed must be positive, got {speed}"),
            ));
        }
        let steps: Vec<usize> = lengths
            .iter()
            .map(|&l| (l / speed / dt).round_ties_even() as usize)
            .collect();
        let horizon = steps.iter().copied().max().unwrap_or(0) + 1;
        Ok(Self { steps, horizon })
    }
}

/// A model on every node of a connectome, with a coupling and optional delays.
pub struct Network<B: Backend> {
    model: Box<dyn Dynamics<B>>,
    spec: &'static ModelSpec,
    coupling: CouplingKind,
    /// `Wᵀ`, so that the summed input of a batch of states `[batch, nodes]` is `s · Wᵀ`.
    wt: Tensor<B, 2>,
    /// `W` as `[1, nodes, nodes]`, for delayed sums.
    w3: Tensor<B, 3>,
    /// In-strengths `Σ_j W_ij`, `[1, nodes]`.
    rowsum: Tensor<B, 2>,
    inputs_on: Vec<bool>,
    /// Distinct sent quantities: for each, the coupling input that defines it.
    sources: Vec<usize>,
    /// For each coupling input: index into `sources`, or `None` if off.
    input_src: Vec<Option<usize>>,
    delays: Option<(Delays, Tensor<B, 2, Int>)>,
    hold: bool,
    n: usize,
}

impl<B: Backend> Network<B> {
    /// Builds a network on `connectome`; `dt` (model time unit) converts delays to steps.
    pub fn build(
        cfg: &NetworkConfig,
        connectome: &Connectome,
        dt: f64,
        device: &B::Device,
    ) -> Result<Self> {
        let dynamics = neurodiff_models::dynamics::<B>(&cfg.model)?;
        let spec = dynamics.spec();
        let inputs_on = resolve_inputs(spec, cfg.inputs.as_deref())?;
        let coupling = cfg
            .coupling
            .unwrap_or_else(|| spec.coupling_function.into());
        let n = connectome.n;
        let opts = || crate::float_opts::<B>(device);
        let mut wt = vec![0f64; n * n];
        let mut rowsum = vec![0f64; n];
        for i in 0..n {
            for j in 0..n {
                let w = connectome.weights[i * n + j];
                wt[j * n + i] = w;
                rowsum[i] += w;
            }
        }
        let (sources, input_src) = sent_quantities(spec, &inputs_on);
        let delays = match cfg.speed {
            None => None,
            Some(speed) => {
                let lengths = connectome.lengths.as_ref().ok_or_else(|| {
                    Error::setting(
                        "speed",
                        format!(
                            "delays need tract lengths, and connectome {} has none (give them \
                             with --lengths)",
                            connectome.source
                        ),
                    )
                })?;
                let d = Delays::from_lengths(lengths, speed, dt)?;
                // Flat index of (slot, source) for slot = (n - d) mod H, at n = 0.
                let h = d.horizon;
                let base: Vec<i64> = (0..n * n)
                    .map(|k| (((h - d.steps[k] % h) % h) * n + k % n) as i64)
                    .collect();
                let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(base, [1, n * n]), device);
                Some((d, idx))
            }
        };
        Ok(Self {
            model: dynamics,
            spec,
            coupling,
            wt: Tensor::from_data(TensorData::new(wt, [n, n]), opts()),
            w3: Tensor::from_data(
                TensorData::new(connectome.weights.clone(), [1, n, n]),
                opts(),
            ),
            rowsum: Tensor::from_data(TensorData::new(rowsum, [1, n]), opts()),
            inputs_on,
            sources,
            input_src,
            hold: cfg.hold_coupling || delays.is_some(),
            delays,
            n,
        })
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

    /// The delays, if any.
    pub fn delays(&self) -> Option<&Delays> {
        self.delays.as_ref().map(|d| &d.0)
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
    /// repeated over the horizon (`[batch, H · nodes]`, slot-major). Empty without delays.
    pub fn initial_history(
        &self,
        x0: &[Tensor<B, 2>],
        params: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>> {
        let Some((d, _)) = &self.delays else {
            return Vec::new();
        };
        let (model_p, _) = params.split_at(self.spec.params.len());
        // Tiled with `cat`, not `repeat_dim`: Burn 0.21's autodiff backward of `repeat_dim`
        // sums the incoming gradient as if the copies were interleaved (`[.., n, times]`) while
        // the forward tiles them (`[.., times, n]`), mixing nodes' gradients (caught by
        // `tests/delays.rs`).
        self.sources
            .iter()
            .map(|&k| Tensor::cat(vec![self.sent(k, x0, model_p); d.horizon], 1))
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
            self.model.coupled(k, x, model_p)
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
                self.coupling.apply(&s, &self.wt, &self.rowsum, coupling_p)
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
        history: &mut [Tensor<B, 2>],
        step: usize,
        params: &[Tensor<B, 2>],
    ) -> Vec<Option<Tensor<B, 2>>> {
        let Some((d, base)) = &self.delays else {
            return self.inputs(x, params);
        };
        let (model_p, coupling_p) = params.split_at(self.spec.params.len());
        let (n, h) = (self.n, d.horizon);
        let slot = step % h;
        let [batch, _] = x[0].dims();
        // idx = (base + slot * n) mod (h * n): the flat (slot, source) each pair reads.
        let idx = base
            .clone()
            .add_scalar((slot * n) as i64)
            .remainder_scalar((h * n) as i64)
            .expand([batch, n * n]);
        let per_source = self
            .sources
            .iter()
            .zip(history.iter_mut())
            .map(|(&k, hist)| {
                let s = self.sent(k, x, model_p);
                *hist = hist
                    .clone()
                    .slice_assign([0..batch, slot * n..(slot + 1) * n], s.clone());
                let delayed = hist.clone().gather(1, idx.clone()).reshape([batch, n, n]);
                self.coupling
                    .apply_delayed(&s, delayed, &self.w3, &self.rowsum, coupling_p)
            })
            .collect();
        self.per_input(per_source)
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

impl<B: Backend> VectorField<B> for Field<'_, B> {
    fn eval(&self, x: &[Tensor<B, 2>]) -> Vec<Tensor<B, 2>> {
        let c = match &self.held {
            Some(c) => c.clone(),
            None => {
                let per_source = self
                    .net
                    .sources
                    .iter()
                    .map(|&k| {
                        let s = self.net.sent(k, x, self.model_p);
                        self.net
                            .coupling
                            .apply(&s, &self.net.wt, &self.net.rowsum, self.coupling_p)
                    })
                    .collect();
                self.net.per_input(per_source)
            }
        };
        self.net.model.drift(x, &c, self.model_p)
    }

    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
        if self.net.model.has_projection() {
            self.net.model.project(x)
        } else {
            x
        }
    }
}
