//! `neurodiff simulate`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use neurodiff::backend::BackendKind;
use neurodiff::connectome::{Connectome, Normalization};
use neurodiff::coupling::CouplingKind;
use neurodiff::integrate::Integrator;
use neurodiff::io::{
    available_memory_bytes, check_output_path, free_disk_bytes, read_npy, AtomicFile, Dtype,
    NpyStream,
};
use neurodiff::models::ModelSpec;
use neurodiff::monitor::{BoldMonitor, Monitor, MonitorKind};
use neurodiff::network::{param_specs, resolve_inputs, NetworkConfig};
use neurodiff::noise::{Noise, NoiseMode, NoiseSource};
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::problem::{simulate, Engine, Problem};
use neurodiff::sim::{default_chunk, Run};
use neurodiff::sparse::SparseMode;
use neurodiff::{Error, Result};

/// Flags of `neurodiff simulate`. Every flag can also be given in the `--config` TOML file
/// (same name with `_` for `-`); flags win.
#[derive(Debug, Args, Default)]
pub struct SimulateArgs {
    /// TOML config file; flags given on the command line override its entries.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Model name (see `neurodiff models`). [default: mpr]
    #[arg(long)]
    model: Option<String>,
    /// Connectome: a bundled name (hcp80, tvb76), a TVB folder, a matrix file (.npy or text),
    /// W[target][source], or an edge list kept sparse (`edges:FILE`, or FILE named `*.edges.csv`
    /// / `*.edges.npy`: rows `source, target, weight[, length]`, 0-based). [default: hcp80]
    #[arg(long, value_name = "NAME|PATH")]
    connectome: Option<String>,
    /// Tract lengths in mm (.npy or text), overriding those that come with the connectome.
    #[arg(long, value_name = "PATH")]
    lengths: Option<PathBuf>,
    /// Weight normalisation: none or max. [default: none]
    #[arg(long)]
    normalize: Option<String>,
    /// Parameter value: NAME=x, NAME=a,b,c or NAME=linspace(a,b,n) (a batch), NAME=@file.npy
    /// (per region). Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Batch size when no parameter list sets it (e.g. several noise realisations).
    #[arg(long)]
    batch: Option<usize>,
    /// Integration step, in the model's time unit. [default: the model's, 0.01 ms for mpr]
    #[arg(long, allow_negative_numbers = true)]
    dt: Option<f64>,
    /// Recorded duration after the transient, in the model's time unit. [default: 3000 ms or
    /// 60 s]
    #[arg(long, allow_negative_numbers = true)]
    duration: Option<f64>,
    /// Initial transient that is simulated but not recorded, in the model's time unit.
    /// [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    transient: Option<f64>,
    /// Integrator: euler, heun, rk3 or rk4 (deterministic only) or exp_euler (exponential Euler on the
    /// linear part of models that give one, e.g. `linear`; tensor engine). [default: heun]
    #[arg(long)]
    integrator: Option<String>,
    /// Additive noise amplitude: one sigma for every state variable, or per variable as
    /// `r=0.01,V=0.02` (0 = deterministic). [default: 0]
    #[arg(long, value_name = "SIGMA")]
    noise: Option<String>,
    /// Noise layout: independent, shared (same for all nodes) or none. [default: independent]
    #[arg(long)]
    noise_mode: Option<String>,
    /// Noise generator: host (identical on all backends) or device. [default: host on CPU,
    /// device on GPU]
    #[arg(long)]
    noise_source: Option<String>,
    /// Seed of the noise (and of a random initial state). [default: 42]
    #[arg(long)]
    seed: Option<u64>,
    /// Initial state: a .npy of shape [vars, nodes] or [batch, vars, nodes], or `random` (uniform
    /// in each variable's range). [default: the model's initial values at every node]
    #[arg(long, value_name = "PATH|random")]
    initial_state: Option<String>,
    /// Keep one sample every K steps. [default: 1 ms, or 0.1 s, of steps]
    #[arg(long, value_name = "K")]
    sample_every: Option<usize>,
    /// What a sample is: raw (the state at that step), mean (average over the K steps), or bold
    /// (the Balloon–Windkessel BOLD signal driven by the first recorded variable, integrated
    /// every 1 ms of model time; samples every 0.72 s unless --sample-every says otherwise).
    /// [default: raw]
    #[arg(long)]
    monitor: Option<String>,
    /// State variables to record, comma-separated names. [default: all]
    #[arg(long, value_name = "VARS")]
    record: Option<String>,
    /// Coupling function: linear, difference, kuramoto, sigmoidal_jansen_rit, sigmoidal.
    /// [default: the model's own, see `neurodiff models`]
    #[arg(long)]
    coupling: Option<String>,
    /// Conduction speed for delays, in mm per model time unit (mm/ms for most models); delays
    /// are tract length / speed, rounded to steps. [default: no delays]
    #[arg(long)]
    speed: Option<f64>,
    /// Evaluate the coupling once per step and hold it for every integrator stage (TVB's
    /// scheme; always so with delays). [default: per stage, as vbjax]
    #[arg(long)]
    hold_coupling: bool,
    /// Coupling sums over the connectome's nonzero weights only (an edge list: gather,
    /// weight, scatter-add) instead of dense matrix products: auto, on or off. `auto` is sparse
    /// for networks of at least 1000 nodes with at most 2% nonzero weights, or at least 3000
    /// nodes with at most 5%; the result is the same up to rounding. [default: auto]
    #[arg(long, value_name = "auto|on|off")]
    sparse: Option<String>,
    /// The model's coupling inputs to compute, comma-separated (see `neurodiff models`).
    /// [default: the model's]
    #[arg(long, value_name = "INPUTS")]
    coupling_inputs: Option<String>,
    /// Steps per chunk (noise drawn and divergence checked once per chunk). [default: up to
    /// 1000]
    #[arg(long)]
    chunk: Option<usize>,
    /// Backend: ndarray, ndarray64, flex, wgpu, cuda. [default: ndarray]
    #[arg(long)]
    backend: Option<String>,
    /// Engine: auto (the fused CPU engine for CPU backends when it supports the run), tensor
    /// (Burn tensor ops on the backend) or fused. [default: auto]
    #[arg(long)]
    engine: Option<String>,
    /// Worker threads of the fused engine (0 = one per core). [default: 0]
    #[arg(long)]
    threads: Option<usize>,
    /// Output .npy file of shape [samples, batch, vars, nodes]; a .json sidecar is written
    /// beside it. [default: out/sim.npy]
    #[arg(long, short, value_name = "PATH")]
    out: Option<PathBuf>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Run even if the output is estimated not to fit on its disk or the run not in memory.
    #[arg(long)]
    force: bool,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateConfig {
    model: Option<String>,
    connectome: Option<String>,
    lengths: Option<PathBuf>,
    normalize: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
    batch: Option<usize>,
    dt: Option<f64>,
    duration: Option<f64>,
    transient: Option<f64>,
    integrator: Option<String>,
    noise: Option<toml::Value>,
    noise_mode: Option<String>,
    noise_source: Option<String>,
    seed: Option<u64>,
    initial_state: Option<String>,
    sample_every: Option<usize>,
    monitor: Option<String>,
    record: Option<Vec<String>>,
    coupling: Option<String>,
    speed: Option<f64>,
    hold_coupling: Option<bool>,
    sparse: Option<String>,
    coupling_inputs: Option<Vec<String>>,
    chunk: Option<usize>,
    backend: Option<String>,
    engine: Option<String>,
    threads: Option<usize>,
    out: Option<PathBuf>,
}

/// Reads and parses a TOML config file into `T`, with the parser's line and column on error.
pub fn read_config<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Converts a TOML parameter value (number, array of numbers, or string in the flag syntax).
pub fn toml_param(name: &str, v: &toml::Value) -> Result<ParamValue> {
    let num = |x: &toml::Value| -> Result<f64> {
        x.as_float()
            .or_else(|| x.as_integer().map(|i| i as f64))
            .ok_or_else(|| Error::param(name, format!("`{x}` is not a number")))
    };
    match v {
        toml::Value::Array(a) => Ok(ParamValue::Batch(
            a.iter().map(num).collect::<Result<Vec<_>>>()?,
        )),
        toml::Value::String(s) => ParamValue::parse(name, s),
        x => Ok(ParamValue::Scalar(num(x)?)),
    }
}

/// Parses `NAME=VALUE`.
pub fn split_assignment(s: &str) -> Result<(String, &str)> {
    let (n, v) = s
        .split_once('=')
        .ok_or_else(|| Error::setting("param", format!("`{s}` is not of the form NAME=VALUE")))?;
    Ok((n.trim().to_string(), v))
}

/// Parses a noise setting: one sigma for all variables, or `var=sigma,...`.
pub fn parse_noise(spec: &ModelSpec, text: &str) -> Result<Vec<f64>> {
    let nv = spec.n_vars();
    let t = text.trim();
    if let Ok(s) = t.parse::<f64>() {
        return Ok(vec![s; nv]);
    }
    let mut sigma = vec![0.0; nv];
    for part in t.split(',') {
        let (name, val) = part.split_once('=').ok_or_else(|| {
            Error::setting(
                "noise",
                format!("`{t}` is neither a number nor of the form var=sigma,..."),
            )
        })?;
        let v = spec.var_index(name.trim()).ok_or_else(|| {
            Error::setting(
                "noise",
                format!(
                    "model `{}` has no state variable `{}`; it has: {}",
                    spec.name,
                    name.trim(),
                    var_names(spec)
                ),
            )
        })?;
        sigma[v] = val
            .trim()
            .parse()
            .map_err(|_| Error::setting("noise", format!("`{val}` is not a number")))?;
    }
    Ok(sigma)
}

fn var_names(spec: &ModelSpec) -> String {
    spec.state
        .iter()
        .map(|v| v.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything a simulation needs, resolved from defaults, config and flags.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub model: String,
    pub connectome: String,
    pub lengths: Option<PathBuf>,
    pub normalize: Normalization,
    pub network: NetworkConfig,
    pub given_params: Vec<(String, ParamValue)>,
    pub batch: Option<usize>,
    pub dt: f64,
    pub duration: f64,
    pub transient: f64,
    pub integrator: Integrator,
    pub noise_sigma: Vec<f64>,
    pub noise_mode: NoiseMode,
    pub noise_source: Option<NoiseSource>,
    pub seed: u64,
    pub initial_state: Option<String>,
    pub sample_every: usize,
    pub monitor: MonitorKind,
    pub record: Vec<usize>,
    pub chunk: Option<usize>,
    pub backend: BackendKind,
    pub engine: Engine,
    pub threads: usize,
    pub out: PathBuf,
    pub time_unit: &'static str,
    /// Run despite the up-front size estimates.
    pub force: bool,
    /// What was adjusted or rounded, said to the user and kept in the sidecar.
    pub notes: Vec<String>,
}

/// Length of a haemodynamic step of `--monitor bold`, in seconds.
const BOLD_STEP_S: f64 = 1e-3;

/// Whether `step` divides `period` to within rounding.
fn divides(period: f64, step: f64) -> bool {
    let k = (period / step).round();
    k >= 1.0 && (k * step - period).abs() <= 1e-9 * period.abs().max(step)
}

/// A number as a person writes it: at most 10 significant digits, no float noise
/// (0.7000000000000001 prints as 0.7).
pub fn fmt_num(x: f64) -> String {
    let s = format!("{}", (x * 1e10).round() / 1e10);
    if s.contains('e') || s.len() > 16 {
        format!("{x:.6e}")
    } else {
        s
    }
}

/// Bytes in a human unit.
fn fmt_bytes(b: f64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

fn parse_or<T: std::str::FromStr<Err = Error>>(v: Option<String>, default: T) -> Result<T> {
    v.map(|s| s.parse())
        .transpose()
        .map(|o| o.unwrap_or(default))
}

impl Settings {
    fn resolve(a: SimulateArgs) -> Result<Self> {
        let cfg: SimulateConfig = match &a.config {
            Some(p) => read_config(p)?,
            None => SimulateConfig::default(),
        };
        let model = a.model.or(cfg.model).unwrap_or_else(|| "mpr".into());
        let spec = neurodiff::models::find(&model)?;
        let mut given_params = Vec::new();
        for (name, v) in &cfg.params {
            given_params.push((name.clone(), toml_param(name, v)?));
        }
        for p in &a.params {
            let (name, v) = split_assignment(p)?;
            let value = ParamValue::parse(&name, v)?;
            given_params.push((name, value));
        }
        let dt_given = a.dt.or(cfg.dt);
        let mut dt = dt_given.unwrap_or(spec.default_dt);
        let (default_duration, default_period) = (
            spec.time_unit.default_duration(),
            spec.default_sample_period(),
        );
        let duration = a.duration.or(cfg.duration).unwrap_or(default_duration);
        let transient = a.transient.or(cfg.transient).unwrap_or(0.0);
        for (name, v) in [("duration", duration), ("transient", transient)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::setting(
                    name,
                    format!("must be a finite time ≥ 0 (in {}), got {v}", spec.time_unit),
                ));
            }
        }
        if !(dt > 0.0 && dt.is_finite()) {
            return Err(Error::setting(
                "dt",
                format!(
                    "must be a positive, finite step (in {}), got {dt}",
                    spec.time_unit
                ),
            ));
        }
        let noise_sigma = match (a.noise, cfg.noise) {
            (Some(t), _) => parse_noise(spec, &t)?,
            (None, Some(toml::Value::Table(t))) => {
                let text = t
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                parse_noise(spec, &text)?
            }
            (None, Some(v)) => parse_noise(spec, &v.to_string())?,
            (None, None) => vec![0.0; spec.n_vars()],
        };
        let record = match a
            .record
            .map(|s| s.split(',').map(|v| v.trim().to_string()).collect())
            .or(cfg.record)
        {
            None => (0..spec.n_vars()).collect(),
            Some(names) => names
                .iter()
                .map(|n: &String| {
                    spec.var_index(n).ok_or_else(|| {
                        Error::setting(
                            "record",
                            format!(
                                "model `{}` has no state variable `{n}`; it has: {}",
                                spec.name,
                                var_names(spec)
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let monitor = parse_or(a.monitor.or(cfg.monitor), MonitorKind::Raw)?;
        let to_s = spec.time_unit.seconds();
        let default_period = if monitor == MonitorKind::Bold {
            0.72 / to_s
        } else {
            default_period
        };
        let mut notes = Vec::new();
        let given_every = a.sample_every.or(cfg.sample_every);
        if given_every.is_none() && dt_given.is_none() && !divides(default_period, dt) {
            // The model's default step does not divide the default sampling period (Hopf's 0.1 s
            // and a 0.72 s TR): shorten it to the next step that does.
            let k = (default_period / dt).ceil();
            let new_dt = default_period / k;
            notes.push(format!(
                "dt {} {u} shortened to {} {u} so that {k} steps make the {} {u} sample period",
                fmt_num(dt),
                fmt_num(new_dt),
                fmt_num(default_period),
                u = spec.time_unit,
            ));
            dt = new_dt;
        }
        let bold_every = BoldMonitor::for_model(spec.time_unit, dt, 0, BOLD_STEP_S, None).every;
        let sample_every = given_every.unwrap_or_else(|| {
            let k = ((default_period / dt).round() as usize).max(1);
            if monitor == MonitorKind::Bold {
                (k / bold_every).max(1) * bold_every
            } else {
                k
            }
        });
        if given_every.is_none() && !divides(default_period, sample_every as f64 * dt) {
            notes.push(format!(
                "sampling every {} {u} ({sample_every} steps of {} {u}), not every {} {u}: \
                 the step does not divide it (give --dt or --sample-every to choose)",
                fmt_num(sample_every as f64 * dt),
                fmt_num(dt),
                fmt_num(default_period),
                u = spec.time_unit,
            ));
        }
        if a.batch.or(cfg.batch) == Some(0) {
            return Err(Error::setting(
                "batch",
                "must be at least 1 (the number of simulations run together)",
            ));
        }
        Ok(Self {
            model: model.clone(),
            connectome: a
                .connectome
                .or(cfg.connectome)
                .unwrap_or_else(|| neurodiff::connectome::DEFAULT.into()),
            lengths: a.lengths.or(cfg.lengths),
            normalize: parse_or(a.normalize.or(cfg.normalize), Normalization::None)?,
            network: NetworkConfig {
                model: model.clone(),
                coupling: a
                    .coupling
                    .or(cfg.coupling)
                    .map(|s| s.parse::<CouplingKind>())
                    .transpose()?,
                inputs: a
                    .coupling_inputs
                    .map(|s| s.split(',').map(|v| v.trim().to_string()).collect())
                    .or(cfg.coupling_inputs),
                speed: a.speed.or(cfg.speed),
                hold_coupling: a.hold_coupling || cfg.hold_coupling.unwrap_or(false),
                sparse: parse_or(a.sparse.or(cfg.sparse), SparseMode::Auto)?,
            },
            given_params,
            batch: a.batch.or(cfg.batch),
            dt,
            duration,
            transient,
            integrator: parse_or(a.integrator.or(cfg.integrator), Integrator::Heun)?,
            noise_sigma,
            noise_mode: parse_or(a.noise_mode.or(cfg.noise_mode), NoiseMode::Independent)?,
            noise_source: a
                .noise_source
                .or(cfg.noise_source)
                .map(|s| s.parse())
                .transpose()?,
            seed: a.seed.or(cfg.seed).unwrap_or(42),
            initial_state: a.initial_state.or(cfg.initial_state),
            sample_every,
            monitor,
            record,
            chunk: a.chunk.or(cfg.chunk),
            backend: parse_or(a.backend.or(cfg.backend), BackendKind::Ndarray)?,
            engine: parse_or(a.engine.or(cfg.engine), Engine::Auto)?,
            threads: a.threads.or(cfg.threads).unwrap_or(0),
            out: a
                .out
                .or(cfg.out)
                .unwrap_or_else(|| PathBuf::from("out/sim.npy")),
            time_unit: spec.time_unit.name(),
            force: a.force,
            notes,
        })
    }

    fn steps(&self, t: f64) -> usize {
        (t / self.dt).round() as usize
    }
}

/// The initial state as host values `[batch, vars, nodes]`, or `[1, vars, nodes]` to broadcast.
fn initial_state(
    s: &Settings,
    spec: &ModelSpec,
    batch: usize,
    nodes: usize,
) -> Result<(usize, Vec<f64>)> {
    let nv = spec.n_vars();
    match s.initial_state.as_deref() {
        None => {
            let mut v = Vec::with_capacity(nv * nodes);
            for var in spec.state {
                v.extend(std::iter::repeat_n(var.initial, nodes));
            }
            Ok((1, v))
        }
        Some("random") => {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(s.seed ^ 0x5EED);
            let mut v = Vec::with_capacity(batch * nv * nodes);
            for _ in 0..batch {
                for var in spec.state {
                    for _ in 0..nodes {
                        v.push(rng.random_range(var.range.0..=var.range.1));
                    }
                }
            }
            Ok((batch, v))
        }
        Some(path) => {
            let p = Path::new(path);
            let a = read_npy(p)?;
            let rows = match a.shape.as_slice() {
                [v, n] if *v == nv && *n == nodes => 1,
                [b, v, n] if *v == nv && *n == nodes && (*b == batch || *b == 1) => *b,
                sh => {
                    return Err(Error::data(
                        p,
                        format!(
                            "initial state must have shape [{nv}, {nodes}] or [{batch}, {nv}, \
                             {nodes}] (batch, variables {}, nodes), found {sh:?}",
                            var_names(spec)
                        ),
                    ))
                }
            };
            if let Some(k) = a.data.iter().position(|x| !x.is_finite()) {
                return Err(Error::data(
                    p,
                    format!("initial state entry {k} (flat index) is not finite"),
                ));
            }
            Ok((rows, a.data))
        }
    }
}

struct SimTask {
    settings: Settings,
    quiet: bool,
}

#[derive(Serialize)]
struct Sidecar<'a> {
    /// Element type of the `.npy`: the backend's float type (`float64` for `ndarray64`).
    dtype: &'a str,
    neurodiff_version: &'a str,
    burn_version: &'a str,
    command: Vec<String>,
    output: String,
    shape: [usize; 4],
    axes: [&'a str; 4],
    variables: Vec<&'a str>,
    sample_times: SampleTimes,
    time_unit: &'a str,
    model: &'a str,
    connectome: ConnectomeInfo,
    params: BTreeMap<String, serde_json::Value>,
    settings: &'a Settings,
    steps: usize,
    backend: &'a str,
    engine: Engine,
    /// Whether the coupling sums ran over the nonzero weights only.
    sparse_coupling: bool,
    noise_source: NoiseSource,
    wall_time_s: f64,
}

#[derive(Serialize)]
struct SampleTimes {
    first: f64,
    step: f64,
    note: &'static str,
}

#[derive(Serialize)]
struct ConnectomeInfo {
    source: String,
    nodes: usize,
    convention: &'static str,
}

impl SimTask {
    fn run(self, kind: BackendKind) -> Result<()> {
        let s = &self.settings;
        let started = Instant::now();
        let mut conn = Connectome::load(&s.connectome, s.lengths.as_deref())?;
        conn.normalize(s.normalize);
        let spec = neurodiff::models::find(&s.model)?;
        let coupling = s
            .network
            .coupling
            .unwrap_or_else(|| spec.coupling_function.into());
        resolve_inputs(spec, s.network.inputs.as_deref())?;
        let nodes = conn.n;
        let table = ParamTable::new(
            &param_specs(spec, coupling),
            &s.given_params,
            nodes,
            s.batch,
        )?;
        let (rows, x0_host) = initial_state(s, spec, table.batch, nodes)?;
        let batch = if rows > 1 && table.batch == 1 && s.batch.is_none() {
            rows
        } else {
            table.batch
        };
        let nv = spec.n_vars();
        let transient = s.steps(s.transient);
        let steps = transient + s.steps(s.duration);
        let noise_source = s
            .noise_source
            .unwrap_or_else(|| kind.default_noise_source());
        let run = Run {
            dt: s.dt,
            steps,
            integrator: s.integrator,
            noise: Noise {
                sigma: s.noise_sigma.clone(),
                mode: s.noise_mode,
                seed: s.seed,
                source: noise_source,
            },
            chunk: s.chunk.unwrap_or_else(|| default_chunk(batch, nodes, nv)),
            monitor: Monitor {
                every: s.sample_every,
                mean: s.monitor == MonitorKind::Mean,
                transient,
                vars: s.record.clone(),
                bold: (s.monitor == MonitorKind::Bold).then(|| {
                    BoldMonitor::for_model(spec.time_unit, s.dt, s.record[0], BOLD_STEP_S, None)
                }),
            },
        };
        let problem =
            Problem::new(conn, s.network.clone(), table, run)?.with_initial_state(rows, x0_host)?;
        let (conn, table, run) = (&problem.connectome, &problem.params, &problem.run);
        let engine = problem.engine_for(kind, s.engine)?;
        let n_samples = run.n_samples();
        let n_rec = if s.monitor == MonitorKind::Bold {
            1
        } else {
            s.record.len()
        };
        let shape = [n_samples, batch, n_rec, nodes];
        if n_samples == 0 {
            return Err(Error::setting(
                "sample-every",
                format!(
                    "no sample would be recorded: the run has {} steps after the transient and \
                     one sample is kept every {} steps; shorten --sample-every or lengthen \
                     --duration",
                    steps - transient,
                    s.sample_every
                ),
            ));
        }
        check_output_path(&s.out, Some("npy"))?;
        let out_dir = match s.out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
        let dtype = kind.float_dtype();
        check_sizes(s, &shape, dtype, batch, nodes, nv, run, &out_dir)?;
        for note in &s.notes {
            if !self.quiet {
                eprintln!("note: {note}");
            }
        }
        let mut out = NpyStream::create(&s.out, &shape, dtype)?;
        let plain = Progress::new(steps, !self.quiet && !std::io::stderr().is_terminal());
        let bar = if self.quiet || plain.on {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new(steps as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} steps ({eta} left)",
                )
                .expect("valid template"),
            );
            b
        };
        // The final state, [batch, vars, nodes] on the host.
        let result = simulate(&problem, kind, engine, &mut |v| out.write(v), &mut |done| {
            bar.set_position(done as u64);
            plain.at(done);
        });
        let done = result.map_err(|e| divergence_hint(e, conn, s.normalize))?;
        let (final_state, sparse) = (done.final_state, done.sparse);
        bar.finish_and_clear();
        let wall = started.elapsed().as_secs_f64();

        let mut pmap = BTreeMap::new();
        for (spec_p, v) in table.specs.iter().zip(&table.values) {
            pmap.insert(
                spec_p.name.to_string(),
                serde_json::to_value(v).expect("serialisable"),
            );
        }
        let json = Sidecar {
            dtype: dtype.name(),
            neurodiff_version: env!("CARGO_PKG_VERSION"),
            burn_version: "0.21.0",
            command: std::env::args().collect(),
            output: s.out.display().to_string(),
            shape,
            axes: ["sample", "batch", "variable", "node"],
            variables: if s.monitor == MonitorKind::Bold {
                vec!["bold"]
            } else {
                s.record.iter().map(|&v| spec.state[v].name).collect()
            },
            sample_times: SampleTimes {
                first: (transient + s.sample_every) as f64 * s.dt,
                step: s.sample_every as f64 * s.dt,
                note: "sample k is the state (or mean over the window) after \
                       transient + sample_every*(k+1) steps",
            },
            time_unit: spec.time_unit.name(),
            model: spec.name,
            connectome: ConnectomeInfo {
                source: conn.source.clone(),
                nodes,
                convention: "weights[target][source]",
            },
            params: pmap,
            settings: s,
            steps,
            backend: kind.name(),
            engine,
            sparse_coupling: sparse,
            noise_source,
            wall_time_s: wall,
        };
        let json_path = s.out.with_extension("json");
        let mut side = AtomicFile::create(&json_path)?;
        side.write_all(
            serde_json::to_string_pretty(&json)
                .expect("serialisable")
                .as_bytes(),
        )?;
        out.finish()?;
        side.commit()?;

        if !self.quiet {
            println!(
                "simulated {} {} of {} on {} ({nodes} nodes), batch {batch}: {steps} {} steps \
                 in {wall:.2} s ({:.0} steps/s) on {} ({} engine, {} coupling)",
                fmt_num(s.duration + s.transient),
                spec.time_unit,
                spec.name,
                conn.source,
                s.integrator.name(),
                steps as f64 / wall,
                kind.name(),
                if engine == Engine::Fused {
                    "fused"
                } else {
                    "tensor"
                },
                if sparse { "sparse" } else { "dense" }
            );
            println!(
                "wrote {}  shape [samples {}, batch {}, variables {}, nodes {}], one sample \
                 every {} {}",
                s.out.display(),
                shape[0],
                shape[1],
                shape[2],
                shape[3],
                fmt_num(s.sample_every as f64 * s.dt),
                spec.time_unit
            );
            println!(
                "      {}  (settings, parameter values, versions, wall time)",
                json_path.display()
            );
            for (v, var) in spec.state.iter().enumerate() {
                let (lo, hi) = (0..batch)
                    .flat_map(|b| {
                        final_state[(b * nv + v) * nodes..(b * nv + v + 1) * nodes].iter()
                    })
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                        (a.min(x), b.max(x))
                    });
                println!("final {:<4} in [{lo:.4}, {hi:.4}] {}", var.name, var.unit);
            }
        }
        Ok(())
    }
}

pub fn run(args: SimulateArgs) -> Result<()> {
    let quiet = args.quiet;
    let settings = Settings::resolve(args)?;
    let backend = settings.backend;
    backend.ensure_compiled()?;
    SimTask { settings, quiet }.run(backend)
}

/// Plain progress lines on stderr (every 10 % of the steps) for when it is not a terminal
/// (cluster jobs, `> log 2>&1`), where the progress bar would print nothing.
struct Progress {
    on: bool,
    total: usize,
    next: std::cell::Cell<usize>,
    started: Instant,
}

impl Progress {
    fn new(total: usize, on: bool) -> Self {
        Self {
            on,
            total: total.max(1),
            next: std::cell::Cell::new(1),
            started: Instant::now(),
        }
    }

    fn at(&self, done: usize) {
        if !self.on {
            return;
        }
        while self.next.get() <= 10 && done * 10 >= self.next.get() * self.total {
            let pct = self.next.get() * 10;
            let el = self.started.elapsed().as_secs_f64();
            let left = el * (self.total as f64 / done.max(1) as f64 - 1.0);
            eprintln!(
                "progress: {pct:3}% ({done}/{} steps), {el:.1} s elapsed, ~{left:.0} s left",
                self.total
            );
            self.next.set(self.next.get() + 1);
        }
    }
}

/// Refuses, before anything is simulated, an output larger than the free space on its disk or
/// a run whose state is estimated not to fit in the available memory (`--force` overrides).
#[allow(clippy::too_many_arguments)]
fn check_sizes(
    s: &Settings,
    shape: &[usize; 4],
    dtype: Dtype,
    batch: usize,
    nodes: usize,
    nv: usize,
    run: &Run,
    out_dir: &Path,
) -> Result<()> {
    if s.force {
        return Ok(());
    }
    // The state of one step with its integrator stages and coupling sums (~16 copies of
    // [batch, vars, nodes] in f64, generous for every engine) plus one chunk of samples.
    let state = (batch * nv * nodes) as f64 * 8.0 * 16.0;
    let chunk_samples =
        (run.chunk / run.monitor.every.max(1) + 1) as f64 * (batch * shape[2] * nodes) as f64 * 8.0;
    let need = state + chunk_samples;
    if let Some(avail) = available_memory_bytes() {
        if need > avail as f64 {
            return Err(Error::setting(
                "batch",
                format!(
                    "the run needs about {} of memory (batch {batch} × {nv} variables × {nodes} \
                     nodes) but {} is available; use a smaller batch or split the sweep \
                     (--force runs anyway)",
                    fmt_bytes(need),
                    fmt_bytes(avail as f64)
                ),
            ));
        }
    }
    let out_bytes = shape.iter().map(|&d| d as f64).product::<f64>() * dtype.size() as f64;
    if let Some(free) = free_disk_bytes(out_dir) {
        if out_bytes > free as f64 {
            return Err(Error::setting(
                "out",
                format!(
                    "the output would be {} ({} samples × batch {} × {} variables × {} nodes × {} \
                     bytes) but {} has {} free; sample less often (--sample-every), record fewer \
                     variables (--record) or shorten the run (--force runs anyway)",
                    fmt_bytes(out_bytes),
                    shape[0],
                    shape[1],
                    shape[2],
                    shape[3],
                    dtype.size(),
                    out_dir.display(),
                    fmt_bytes(free as f64)
                ),
            ));
        }
    }
    Ok(())
}

/// Adds to a divergence the likely cause when the connectome's weights are not normalised and
/// large (TVB's raw weights reach 3 with in-strengths near 70).
fn divergence_hint(e: Error, conn: &Connectome, normalize: Normalization) -> Error {
    if !matches!(e, Error::Diverged { .. }) || normalize != Normalization::None {
        return e;
    }
    let max_w = conn.max_weight();
    let max_in = conn.row_sums().into_iter().fold(0f64, f64::max);
    if max_w <= 1.0 {
        return e;
    }
    Error::Hint {
        error: Box::new(e),
        hint: format!(
            "the connectome {} is not normalised (weights up to {}, in-strengths up to {}); \
             try --normalize max, or a smaller G",
            conn.source,
            fmt_num(max_w),
            fmt_num(max_in)
        ),
    }
}
