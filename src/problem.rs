//! The façade: one resolved [`Problem`] (network, parameters, initial state, run and monitor),
//! and the entry points that run it on an engine chosen by parameter:
//!
//! - [`simulate`]: a forward run on the tensor engine (any backend) or the fused CPU engine;
//! - [`value_and_grad`]: a loss of the samples and its gradient with respect to the parameters,
//!   by Burn's autodiff through the tensor engine or by the fused engine's discrete adjoint;
//! - [`Problem::capabilities`]: what each engine can do with this problem, as typed
//!   [`Unsupported`] reasons. [`Engine::Auto`] and [`Gradient::Auto`] choose from it.
//!
//! The command line, the fitter, `bench` and the examples go through these functions; they do
//! not build engines themselves. The entry points are not generic: the backend is a value
//! ([`BackendKind`]) and the one dispatch to Burn's type parameter happens here, so the engine
//! is compiled once, in this crate, for every backend of the build.
//!
//! ```no_run
//! use neurodiff::backend::BackendKind;
//! use neurodiff::connectome::Connectome;
//! use neurodiff::problem::{simulate_collect, Engine, Problem, RunSpec};
//!
//! let conn = Connectome::load("hcp80", None)?;
//! let problem = Problem::builder("mpr", conn)
//!     .param("G", 0.5)
//!     .run(RunSpec { duration: 1000.0, ..RunSpec::default() })
//!     .build()?;
//! let (samples, shape, done) = simulate_collect(&problem, BackendKind::Ndarray, Engine::Auto)?;
//! println!("{shape:?} on the {} engine", done.engine.name());
//! # Ok::<(), neurodiff::Error>(())
//! ```

use burn::prelude::{Backend, Tensor};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::TensorData;
use neurodiff_models::ModelSpec;

use crate::backend::{with_backend, BackendKind, BackendTask};
use crate::connectome::Connectome;
use crate::coupling::CouplingKind;
use crate::error::{Error, Result};
use crate::fused::FusedRun;
use crate::fused::{GradOptions, ParamGrad};
use crate::integrate::Integrator;
use crate::monitor::Monitor;
use crate::network::{param_specs, resolve_inputs, Network, NetworkConfig};
use crate::noise::{Noise, NoiseMode, NoiseSource};
use crate::params::{ParamTable, ParamValue};
use crate::sim::{default_chunk, Run};

/// Which engine runs a forward simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The fused engine on CPU backends when it supports the problem, else the tensor engine.
    #[default]
    Auto,
    /// Burn tensors on the chosen backend.
    Tensor,
    /// The fused CPU engine (an error if it does not support the problem).
    Fused,
}

/// How gradients are taken. Both give the same gradient of the same loss up to floating-point
/// rounding (tested against each other and against finite differences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gradient {
    /// `adjoint` when it supports the problem and loss, else `autodiff`.
    #[default]
    Auto,
    /// The fused CPU engine's discrete adjoint ([`crate::fused`]): many times faster on the
    /// CPU; no conduction delays, Euler or Heun, the `corr` loss.
    Adjoint,
    /// Burn's autodiff through the tensor engine ([`crate::grad`]): everything, on any backend.
    Autodiff,
}

crate::choice!(Engine, "engine", [Auto => "auto", Tensor => "tensor", Fused => "fused"]);
crate::choice!(Gradient, "gradient", [Auto => "auto", Adjoint => "adjoint", Autodiff => "autodiff"]);

/// Why an engine cannot run a problem: the engine, the feature it lacks, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// `tensor`, `fused` or `adjoint`.
    pub engine: &'static str,
    /// What the problem asks for that the engine lacks.
    pub feature: String,
    /// What to change (another engine, another setting).
    pub hint: String,
}

impl Unsupported {
    fn new(engine: &'static str, feature: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            engine,
            feature: feature.into(),
            hint: hint.into(),
        }
    }
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} engine does not support {}",
            self.engine, self.feature
        )?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for Unsupported {}

/// Why the fused engine cannot run `run`, or `None` if it can. The one list of what the fused
/// forward lacks ([`Problem::capabilities`] and the engine's own guard read it).
pub fn fused_unsupported(run: &Run) -> Option<Unsupported> {
    if run.integrator == Integrator::ExpEuler {
        return Some(Unsupported::new(
            "fused",
            "the exp_euler integrator",
            "use --engine tensor (the default picks it)",
        ));
    }
    if !run.noise.is_off() && run.noise.source != NoiseSource::Host {
        return Some(Unsupported::new(
            "fused",
            "noise drawn on the device",
            "use --noise-source host, or --engine tensor",
        ));
    }
    None
}

/// The gradient method asked for (`gradient`) given why the adjoint cannot take this problem's
/// gradients (`why`, `None` if it can): `Auto` takes the adjoint where it can, autodiff
/// elsewhere; `Adjoint` where it cannot is the typed refusal. The one rule, used by
/// [`Problem::gradient_for`] and the fitter.
pub fn choose_gradient(gradient: Gradient, why: Option<Unsupported>) -> Result<Gradient> {
    match (gradient, why) {
        (Gradient::Autodiff, _) | (Gradient::Auto, Some(_)) => Ok(Gradient::Autodiff),
        (Gradient::Adjoint | Gradient::Auto, None) => Ok(Gradient::Adjoint),
        (Gradient::Adjoint, Some(u)) => Err(u.into()),
    }
}

/// Why the fused adjoint cannot differentiate `run` on `network`, or `None` if it can (the loss
/// is checked by [`value_and_grad`]). The one list of what the adjoint lacks.
pub fn adjoint_unsupported(network: &NetworkConfig, run: &Run) -> Option<Unsupported> {
    let neural;
    let run = match &run.monitor.bold {
        // The BOLD layer runs on the host: what matters is the neural run.
        Some(b) => {
            neural = crate::monitor::neural_run(run, b);
            &neural
        }
        None => run,
    };
    if let Some(mut u) = fused_unsupported(run) {
        u.engine = "adjoint";
        u.hint = "use --gradient autodiff (Burn's autodiff through the tensor engine)".into();
        return Some(u);
    }
    if network.speed.is_some() {
        return Some(Unsupported::new(
            "adjoint",
            "conduction delays",
            "use --gradient autodiff (the tensor engine differentiates through delays)",
        ));
    }
    None
}

/// What each engine can do with a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The tensor engine's forward run (it runs every problem).
    pub tensor: std::result::Result<(), Unsupported>,
    /// The fused CPU engine's forward run.
    pub fused: std::result::Result<(), Unsupported>,
    /// Gradients by autodiff through the tensor engine (every problem).
    pub autodiff: std::result::Result<(), Unsupported>,
    /// Gradients by the fused engine's adjoint (the loss is checked separately).
    pub adjoint: std::result::Result<(), Unsupported>,
}

/// The run settings in the model's own units, before they are turned into steps.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Step in the model's unit of time (`None`: the model's default).
    pub dt: Option<f64>,
    /// Duration kept after the transient, in the model's unit of time.
    pub duration: f64,
    /// Transient run first and not kept.
    pub transient: f64,
    /// Integration scheme.
    pub integrator: Integrator,
    /// Additive noise amplitude per state variable (empty: none).
    pub noise_sigma: Vec<f64>,
    /// Noise mode.
    pub noise_mode: NoiseMode,
    /// Where noise is drawn.
    pub noise_source: NoiseSource,
    /// Seed of the noise.
    pub seed: u64,
    /// Keep one sample every this many steps.
    pub sample_every: usize,
    /// Keep temporal means instead of the state.
    pub mean: bool,
    /// The variables kept (empty: all).
    pub record: Vec<usize>,
    /// Steps per chunk (`None`: [`default_chunk`]).
    pub chunk: Option<usize>,
}

impl Default for RunSpec {
    fn default() -> Self {
        Self {
            dt: None,
            duration: 1000.0,
            transient: 0.0,
            integrator: Integrator::Heun,
            noise_sigma: Vec::new(),
            noise_mode: NoiseMode::Independent,
            noise_source: NoiseSource::Host,
            seed: 42,
            sample_every: 10,
            mean: false,
            record: Vec::new(),
            chunk: None,
        }
    }
}

/// Builds a [`Problem`] from a model name and a connectome, with the model's defaults for
/// everything not given.
#[derive(Debug, Clone)]
pub struct ProblemBuilder {
    connectome: Connectome,
    network: NetworkConfig,
    given: Vec<(String, ParamValue)>,
    batch: Option<usize>,
    run: RunSpec,
    threads: usize,
}

impl ProblemBuilder {
    /// Sets a parameter to one value.
    pub fn param(mut self, name: &str, value: f64) -> Self {
        self.given
            .push((name.to_string(), ParamValue::Scalar(value)));
        self
    }

    /// Sets a parameter to any [`ParamValue`] (per batch element, per region).
    pub fn param_value(mut self, name: &str, value: ParamValue) -> Self {
        self.given.push((name.to_string(), value));
        self
    }

    /// Forces the batch size.
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = Some(batch);
        self
    }

    /// The coupling function (default: the model's own).
    pub fn coupling(mut self, c: CouplingKind) -> Self {
        self.network.coupling = Some(c);
        self
    }

    /// The network settings (model name, coupling, inputs, delays, sparsity).
    pub fn network(mut self, n: NetworkConfig) -> Self {
        self.network = n;
        self
    }

    /// The run settings.
    pub fn run(mut self, r: RunSpec) -> Self {
        self.run = r;
        self
    }

    /// Worker threads of the fused engine (0: one per core).
    pub fn threads(mut self, t: usize) -> Self {
        self.threads = t;
        self
    }

    /// Resolves everything and checks it.
    pub fn build(self) -> Result<Problem> {
        let spec = crate::model::find(&self.network.model)?;
        let coupling = self
            .network
            .coupling
            .unwrap_or_else(|| spec.coupling_function.into());
        let n = self.connectome.n;
        let params = ParamTable::new(&param_specs(spec, coupling), &self.given, n, self.batch)?;
        let r = &self.run;
        let dt = r.dt.unwrap_or(spec.default_dt);
        let steps_of = |t: f64| (t / dt).round() as usize;
        let transient = steps_of(r.transient);
        let nv = spec.n_vars();
        let mut sigma = r.noise_sigma.clone();
        if sigma.is_empty() {
            sigma = vec![0.0; nv];
        }
        let run = Run {
            dt,
            steps: transient + steps_of(r.duration),
            integrator: r.integrator,
            noise: Noise {
                sigma,
                mode: r.noise_mode,
                seed: r.seed,
                source: r.noise_source,
            },
            chunk: r
                .chunk
                .unwrap_or_else(|| default_chunk(params.batch, n, nv)),
            monitor: Monitor {
                every: r.sample_every,
                mean: r.mean,
                transient,
                vars: if r.record.is_empty() {
                    (0..nv).collect()
                } else {
                    r.record.clone()
                },
                bold: None,
            },
        };
        let mut p = Problem::new(self.connectome, self.network, params, run)?;
        p.threads = self.threads;
        Ok(p)
    }
}

/// Everything that defines a simulation, resolved and checked, independent of the engine that
/// runs it.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The connectome (`W[target][source]`, lengths for delays).
    pub connectome: Connectome,
    /// The network: model, coupling, inputs, delays, sparsity.
    pub network: NetworkConfig,
    /// Every parameter's value (model's, then the coupling's).
    pub params: ParamTable,
    /// Initial state `[x0_rows, vars, nodes]` row-major; `x0_rows` is 1 (broadcast) or the batch.
    pub x0: Vec<f64>,
    /// Rows of `x0`.
    pub x0_rows: usize,
    /// Batch size.
    pub batch: usize,
    /// Steps, integrator, noise, chunking, monitor.
    pub run: Run,
    /// Worker threads of the fused engine (0: one per core).
    pub threads: usize,
}

impl Problem {
    /// Starts a problem of `model` on `connectome` with defaults for everything.
    pub fn builder(model: &str, connectome: Connectome) -> ProblemBuilder {
        ProblemBuilder {
            connectome,
            network: NetworkConfig::new(model),
            given: Vec::new(),
            batch: None,
            run: RunSpec::default(),
            threads: 0,
        }
    }

    /// A problem from resolved parts, starting from each variable's initial value on every node
    /// (see [`Problem::with_initial_state`]). Checks the model, the coupling inputs and the run.
    pub fn new(
        connectome: Connectome,
        network: NetworkConfig,
        params: ParamTable,
        run: Run,
    ) -> Result<Self> {
        let spec = crate::model::find(&network.model)?;
        resolve_inputs(spec, network.inputs.as_deref())?;
        if params.nodes != connectome.n {
            return Err(Error::setting(
                "params",
                format!(
                    "the parameter table is for {} regions but the connectome has {}",
                    params.nodes, connectome.n
                ),
            ));
        }
        run.validate(spec.n_vars())?;
        let n = connectome.n;
        let x0 = spec
            .state
            .iter()
            .flat_map(|v| std::iter::repeat_n(v.initial, n))
            .collect();
        Ok(Self {
            batch: params.batch,
            connectome,
            network,
            params,
            x0,
            x0_rows: 1,
            run,
            threads: 0,
        })
    }

    /// Replaces the initial state: `rows` is 1 (every batch element starts there) or the batch
    /// size; `values` is `[rows, vars, nodes]` row-major. A per-element state of a problem
    /// whose parameters are shared sets the batch size.
    pub fn with_initial_state(mut self, rows: usize, values: Vec<f64>) -> Result<Self> {
        let (nv, n) = (self.spec().n_vars(), self.nodes());
        if rows == 0 || values.len() != rows * nv * n {
            return Err(Error::setting(
                "initial-state",
                format!(
                    "{} values for {rows} rows; expected rows × {nv} variables × {n} nodes",
                    values.len()
                ),
            ));
        }
        if rows > 1 && self.batch == 1 {
            self.batch = rows;
        }
        if rows != 1 && rows != self.batch {
            return Err(Error::setting(
                "initial-state",
                format!(
                    "{rows} initial states for a batch of {}: give 1 or {}",
                    self.batch, self.batch
                ),
            ));
        }
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::setting(
                "initial-state",
                format!("entry {k} (flat index) is not finite"),
            ));
        }
        self.x0 = values;
        self.x0_rows = rows;
        Ok(self)
    }

    /// The model's spec.
    pub fn spec(&self) -> &'static ModelSpec {
        crate::model::find(&self.network.model).expect("checked by Problem::new")
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.connectome.n
    }

    /// The shape of the samples, `[samples, batch, recorded, nodes]`.
    pub fn sample_shape(&self) -> [usize; 4] {
        let rec = if self.run.monitor.bold.is_some() {
            1
        } else {
            self.run.monitor.vars.len()
        };
        [self.run.n_samples(), self.batch, rec, self.nodes()]
    }

    /// Whether the coupling sums run over the nonzero weights only.
    pub fn is_sparse(&self) -> bool {
        self.network
            .sparse
            .is_sparse(self.nodes(), self.connectome.nnz())
    }

    /// What each engine can do with this problem.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            tensor: Ok(()),
            fused: fused_unsupported(&self.run).map_or(Ok(()), Err),
            autodiff: Ok(()),
            adjoint: adjoint_unsupported(&self.network, &self.run).map_or(Ok(()), Err),
        }
    }

    /// The engine that runs this problem on `backend` when `engine` is asked for: `Auto` is the
    /// fused engine on CPU backends when it can, else the tensor engine.
    pub fn engine_for(&self, backend: BackendKind, engine: Engine) -> Result<Engine> {
        let caps = self.capabilities();
        match engine {
            Engine::Tensor => Ok(Engine::Tensor),
            Engine::Fused => caps.fused.map(|_| Engine::Fused).map_err(Error::from),
            Engine::Auto if backend.is_cpu() && caps.fused.is_ok() => Ok(Engine::Fused),
            Engine::Auto => Ok(Engine::Tensor),
        }
    }

    /// The gradient method for this problem and `loss` when `gradient` is asked for: `Auto` is
    /// the adjoint when it can, else autodiff.
    pub fn gradient_for(&self, loss: &Loss, gradient: Gradient) -> Result<Gradient> {
        let why = self
            .capabilities()
            .adjoint
            .err()
            .or_else(|| loss.adjoint_unsupported(&self.run));
        choose_gradient(gradient, why)
    }

    /// The fused engine's view of this problem.
    pub fn fused_run(&self) -> FusedRun<'_> {
        FusedRun {
            connectome: &self.connectome,
            network: &self.network,
            params: &self.params,
            x0: &self.x0,
            x0_rows: self.x0_rows,
            batch: self.batch,
            run: &self.run,
            threads: self.threads,
        }
    }

    /// The initial state as tensors, one `[batch, nodes]` per variable.
    pub fn x0_tensors<B: Backend>(&self, device: &B::Device) -> Vec<Tensor<B, 2>> {
        let (nv, n, rows) = (self.spec().n_vars(), self.nodes(), self.x0_rows);
        let all: Tensor<B, 3> = Tensor::from_data(
            TensorData::new(self.x0.clone(), [rows, nv, n]),
            crate::float_opts::<B>(device),
        );
        (0..nv)
            .map(|v| {
                all.clone()
                    .narrow(1, v, 1)
                    .reshape([rows, n])
                    .expand([self.batch, n])
            })
            .collect()
    }
}

/// What a forward run reports besides its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulated {
    /// The final state, `[batch, vars, nodes]` row-major, in `f64` (exact: the engine's own
    /// float type, widened).
    pub final_state: Vec<f64>,
    /// The engine that ran.
    pub engine: Engine,
    /// Whether the coupling sums ran over the nonzero weights only.
    pub sparse: bool,
}

/// Runs `problem` forward on `backend` with `engine` (see [`Problem::engine_for`]).
/// `on_samples` receives the samples chunk by chunk (`[k, batch, recorded, nodes]` row-major,
/// each chunk checked to be finite first), in `f64` whatever the backend's float type (exact:
/// see [`BackendKind::float_dtype`] for what the backend computed in), `on_progress` the
/// number of steps done.
pub fn simulate(
    problem: &Problem,
    backend: BackendKind,
    engine: Engine,
    on_samples: &mut dyn FnMut(&[f64]) -> Result<()>,
    on_progress: &mut dyn FnMut(usize),
) -> Result<Simulated> {
    let engine = problem.engine_for(backend, engine)?;
    let sparse = problem.is_sparse();
    let final_state = if engine == Engine::Fused {
        let fr = problem.fused_run();
        let mut write = |_first: usize, _k: usize, v: Vec<f64>| on_samples(&v);
        let double = backend == BackendKind::Ndarray64;
        crate::model::lookup(&problem.network.model)?.simulate_fused(
            double,
            &fr,
            &mut write,
            on_progress,
        )?
    } else {
        with_backend(
            backend,
            TensorForward {
                problem,
                on_samples,
                on_progress,
            },
        )??
    };
    Ok(Simulated {
        final_state,
        engine,
        sparse,
    })
}

/// [`simulate`] keeping every sample: `(samples, shape, report)` with the samples
/// `[samples, batch, recorded, nodes]` row-major.
pub fn simulate_collect(
    problem: &Problem,
    backend: BackendKind,
    engine: Engine,
) -> Result<(Vec<f64>, [usize; 4], Simulated)> {
    let mut out = Vec::new();
    let done = simulate(
        problem,
        backend,
        engine,
        &mut |s| {
            out.extend_from_slice(s);
            Ok(())
        },
        &mut |_| {},
    )?;
    Ok((out, problem.sample_shape(), done))
}

struct TensorForward<'a, 'f> {
    problem: &'a Problem,
    on_samples: &'f mut dyn FnMut(&[f64]) -> Result<()>,
    on_progress: &'f mut dyn FnMut(usize),
}

impl BackendTask for TensorForward<'_, '_> {
    type Output = Result<Vec<f64>>;

    fn run<B: Backend>(self, _kind: BackendKind, device: B::Device) -> Result<Vec<f64>> {
        let p = self.problem;
        let mut net = Network::<B>::build(&p.network, &p.connectome, p.run.dt, &device)?;
        // A forward run: global parameter values fold into the model's operations.
        net.fold_params(&p.params.globals());
        let params = p.params.tensors::<B>(&device);
        let fin = crate::sim::simulate(
            &net,
            &params,
            p.x0_tensors::<B>(&device),
            &p.run,
            |samples| (self.on_samples)(&crate::sim::to_host64(samples.values)),
            |done| (self.on_progress)(done),
        )?;
        Ok(crate::sim::to_host64(Tensor::stack::<3>(fin, 1)))
    }
}

/// A loss of the samples, with a tensor form (autodiff) and a host form with its gradient (the
/// adjoint).
#[derive(Debug, Clone, PartialEq)]
pub enum Loss {
    /// A loss between the simulated functional connectivity (Pearson correlation of the one
    /// recorded signal across nodes) and a target FC.
    Fc {
        /// The target FC, `nodes × nodes` row-major.
        target: Vec<f64>,
        /// Which comparison.
        kind: crate::fit::LossKind,
    },
}

impl Loss {
    /// Why the adjoint cannot take this loss's gradient on `run`, or `None`.
    pub fn adjoint_unsupported(&self, run: &Run) -> Option<Unsupported> {
        match self {
            Loss::Fc { kind, .. } => {
                if *kind != crate::fit::LossKind::Corr {
                    return Some(Unsupported::new(
                        "adjoint",
                        "FC losses other than corr",
                        "use --loss corr, or --gradient autodiff",
                    ));
                }
                if run.monitor.bold.is_none() && run.monitor.vars.len() != 1 {
                    return Some(Unsupported::new(
                        "adjoint",
                        "an FC loss over more than one recorded variable",
                        "record one variable",
                    ));
                }
                None
            }
        }
    }

    fn check(&self, shape: [usize; 4]) -> Result<()> {
        match self {
            Loss::Fc { target, .. } => {
                let [t, _, rec, n] = shape;
                if target.len() != n * n {
                    return Err(Error::setting(
                        "target",
                        format!(
                            "the target FC has {} entries; the network has {n} nodes",
                            target.len()
                        ),
                    ));
                }
                if rec != 1 {
                    return Err(Error::setting(
                        "record",
                        format!("an FC loss needs one recorded signal, the run keeps {rec}"),
                    ));
                }
                if t < 2 {
                    return Err(Error::setting(
                        "duration",
                        format!("FC needs at least 2 samples, the run records {t}"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// What [`value_and_grad`] returns, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// Loss per batch element.
    pub loss: Vec<f64>,
    /// `d (Σ loss) / d param` for each parameter of the table in its value's shape (`None` for
    /// those not asked for).
    pub grads: Vec<Option<ParamGrad>>,
    /// The samples, `[samples, batch, recorded, nodes]` row-major.
    pub outputs: Vec<f64>,
    /// Shape of `outputs`.
    pub shape: [usize; 4],
    /// The method that took them.
    pub gradient: Gradient,
}

/// The longest chunk the autodiff gradient runs in one recorded graph. Burn's autodiff costs
/// more than linearly in the length of the graph it differentiates (its checkpointer copies
/// the graph's bookkeeping at each node: 80 % of the instructions at 1,000 steps), so shorter
/// chunks are faster and smaller: MPR on hcp80, 10,000 steps, 7.0 s and 107 MB at 1,000 steps
/// per chunk, 2.8 s and 20 MB at 100, 2.3 s and 16 MB at 30 (release build, 2026-12-04). The
/// result does not depend on the chunking.
pub const AUTODIFF_MAX_CHUNK: usize = 100;

/// The value of `loss` on `problem`'s samples and its gradient with respect to the parameters
/// named in `opts.wrt` (all when `None`), by `gradient` (see [`Problem::gradient_for`]), on
/// `backend`. Batch elements are independent: each gets its own gradient in its rows of
/// per-batch parameters. Memory is one state per chunk of `opts.chunk` steps plus one chunk's
/// tape, whatever the length of the run. Autodiff uses chunks of at most
/// [`AUTODIFF_MAX_CHUNK`] steps whatever `opts.chunk` says.
pub fn value_and_grad(
    problem: &Problem,
    loss: &Loss,
    gradient: Gradient,
    opts: &GradOptions,
    backend: BackendKind,
) -> Result<Gradients> {
    struct Task<'a> {
        problem: &'a Problem,
        loss: &'a Loss,
        gradient: Gradient,
        opts: &'a GradOptions,
    }
    impl BackendTask for Task<'_> {
        type Output = Result<Gradients>;
        fn run<B: Backend>(self, _kind: BackendKind, device: B::Device) -> Result<Gradients> {
            value_and_grad_on::<burn::backend::Autodiff<B>>(
                self.problem,
                self.loss,
                self.gradient,
                self.opts,
                &device,
            )
        }
    }
    with_backend(
        backend,
        Task {
            problem,
            loss,
            gradient,
            opts,
        },
    )?
}

/// [`value_and_grad`] on the autodiff backend `B` (the adjoint, when chosen, runs in `B`'s float
/// precision). For code that is already generic over the backend, such as the fitter.
pub fn value_and_grad_on<B: AutodiffBackend>(
    problem: &Problem,
    loss: &Loss,
    gradient: Gradient,
    opts: &GradOptions,
    device: &B::Device,
) -> Result<Gradients> {
    let gradient = problem.gradient_for(loss, gradient)?;
    loss.check(problem.sample_shape())?;
    if let Some(names) = &opts.wrt {
        for name in names {
            if problem.params.index(name).is_none() {
                return Err(Error::param(
                    name,
                    format!(
                        "no such parameter; known parameters: {}",
                        problem
                            .params
                            .specs
                            .iter()
                            .map(|s| s.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    if gradient == Gradient::Adjoint {
        let Loss::Fc { target, .. } = loss;
        let host = |y: &[f64], shape: [usize; 4]| -> Result<(Vec<f64>, Vec<f64>)> {
            Ok(crate::fused::fc_corr_loss(y, shape, 0, target))
        };
        let double = std::mem::size_of::<B::FloatElem>() == 8;
        let vg = crate::fused::value_and_grad_fused_in(double, &problem.fused_run(), opts, &host)?;
        return Ok(Gradients {
            loss: vg.loss,
            grads: vg.grads,
            outputs: vg.outputs,
            shape: vg.shape,
            gradient,
        });
    }
    let p = problem;
    let net = Network::<B>::build(&p.network, &p.connectome, p.run.dt, device)?;
    let net_in = Network::<B::InnerBackend>::build(&p.network, &p.connectome, p.run.dt, device)?;
    let params = p.params.tensors::<B::InnerBackend>(device);
    let Loss::Fc { target, kind } = loss;
    let n = p.nodes();
    let target: Tensor<B, 2> = Tensor::from_data(
        TensorData::new(target.clone(), [n, n]),
        crate::float_opts::<B>(device),
    );
    let kind = *kind;
    let tensor_loss = |y: Tensor<B, 4>| crate::fit::fc_loss(y, &target, kind);
    let vg = crate::grad::value_and_grad(
        &net,
        &net_in,
        &params,
        p.x0_tensors::<B::InnerBackend>(device),
        &p.run,
        opts.chunk.min(AUTODIFF_MAX_CHUNK),
        &tensor_loss,
    )?;
    let shape = vg.outputs.dims();
    let grads = p
        .params
        .specs
        .iter()
        .zip(vg.grads)
        .map(|(s, g)| {
            let wanted = opts
                .wrt
                .as_ref()
                .is_none_or(|w| w.iter().any(|n| n == s.name));
            wanted.then(|| {
                let [rows, cols] = g.dims();
                ParamGrad {
                    shape: [rows, cols],
                    values: crate::sim::to_host64(g),
                }
            })
        })
        .collect();
    Ok(Gradients {
        loss: crate::sim::to_host64(vg.loss),
        grads,
        outputs: crate::sim::to_host64(vg.outputs),
        shape,
        gradient,
    })
}
