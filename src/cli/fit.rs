//! `neurodiff fit`: fit model parameters to an empirical FC by gradient descent through the
//! simulation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Parser};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use neurodiff::backend::BackendKind;
use neurodiff::connectome::{bundled_fc_hcp80, Connectome, Normalization};
use neurodiff::coupling::CouplingKind;
use neurodiff::fit::{
    fit_on, FitProblem, FitState, FreeParam, GradientEngine, LossKind, Optimizer,
};
use neurodiff::integrate::Integrator;
use neurodiff::io::{read_npy, write_npy_f32, write_text, Array};
use neurodiff::models::{ModelSpec, TimeUnit};
use neurodiff::monitor::{BoldMonitor, Monitor, MonitorKind};
use neurodiff::network::NetworkConfig;
use neurodiff::noise::{Noise, NoiseMode};
use neurodiff::params::ParamValue;
use neurodiff::sim::Run;
use neurodiff::{Error, Result};

use super::simulate::{parse_noise, read_config, split_assignment, toml_param};

/// Flags of `neurodiff fit`. Every flag can also be given in the `--config` TOML file (same
/// name with `_` for `-`; `fit` and `fit_regional` as tables `{ G = [0.0, 3.0] }`, fixed
/// parameters in a `[params]` table); flags win.
#[derive(Debug, Args, Default)]
pub struct FitArgs {
    /// TOML config file; flags given on the command line override its entries.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Model name (see `neurodiff models`). [default: hopf]
    #[arg(long)]
    model: Option<String>,
    /// Connectome: a bundled name (hcp80, tvb76), a TVB folder, a matrix file, or an edge list
    /// (`edges:FILE`, `*.edges.csv`, `*.edges.npy`). [default: hcp80]
    #[arg(long, value_name = "NAME|PATH")]
    connectome: Option<String>,
    /// Tract lengths in mm, overriding those of the connectome.
    #[arg(long, value_name = "PATH")]
    lengths: Option<PathBuf>,
    /// Weight normalisation: none or max. [default: none]
    #[arg(long)]
    normalize: Option<String>,
    /// Target FC (.npy, regions × regions). [default: the bundled HCP group FC with hcp80]
    #[arg(long, value_name = "PATH")]
    target_fc: Option<PathBuf>,
    /// Target BOLD (.npy, regions × frames); its FC is the target.
    #[arg(long, value_name = "PATH")]
    target_bold: Option<PathBuf>,
    /// Repetition time of the data, in seconds. [default: 0.72, HCP]
    #[arg(long)]
    tr: Option<f64>,
    /// Free global parameter and its bounds: NAME=lower,upper. Repeatable. [default for hopf:
    /// G=0,3 and a=-0.2,0.1]
    #[arg(long = "fit", value_name = "NAME=LO,HI")]
    fit: Vec<String>,
    /// Free per-region parameter and its bounds: NAME=lower,upper. Repeatable.
    #[arg(long = "fit-regional", value_name = "NAME=LO,HI")]
    fit_regional: Vec<String>,
    /// Starting value of a free parameter (strictly inside its bounds): NAME=VALUE. Repeatable.
    /// [default: drawn per restart inside the bounds]
    #[arg(long = "init", value_name = "NAME=VALUE")]
    init: Vec<String>,
    /// Fixed parameter value: NAME=x or NAME=@file.npy (per region). Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Coupling function. [default: the model's own]
    #[arg(long)]
    coupling: Option<String>,
    /// Conduction speed for delays, mm per model time unit. [default: no delays]
    #[arg(long)]
    speed: Option<f64>,
    /// Integration step in the model's time unit; the TR must be a whole number of steps.
    /// [default: the model's default step, adjusted to the nearest step that divides the TR]
    #[arg(long)]
    dt: Option<f64>,
    /// Simulated time compared with the data, in the model's time unit. [default: the target
    /// BOLD's length, or 1200 frames]
    #[arg(long, allow_negative_numbers = true)]
    duration: Option<f64>,
    /// Transient before it, in the model's time unit. [default: 60 s]
    #[arg(long, allow_negative_numbers = true)]
    transient: Option<f64>,
    /// Integrator: euler, heun, rk3 or rk4 (deterministic only), or exp_euler (autodiff only).
    /// [default: heun]
    #[arg(long)]
    integrator: Option<String>,
    /// Noise amplitude (one for all variables, or var=sigma,...). [default: 0.02 for s-unit
    /// models such as hopf, 0.01 otherwise]
    #[arg(long, value_name = "SIGMA")]
    noise: Option<String>,
    /// Noise layout: independent or shared. [default: independent]
    #[arg(long)]
    noise_mode: Option<String>,
    /// Seed of the noise and of the starting points. [default: 1]
    #[arg(long)]
    seed: Option<u64>,
    /// The simulated signal whose FC is compared: raw (a state variable sampled every TR) or
    /// bold (BOLD driven by that variable). [default: raw for models in seconds, bold for models
    /// in ms]
    #[arg(long)]
    observe: Option<String>,
    /// The state variable observed (or driving BOLD). [default: the model's first]
    #[arg(long, value_name = "VAR")]
    record: Option<String>,
    /// Number of restarts fitted in parallel (the batch). [default: 4]
    #[arg(long)]
    restarts: Option<usize>,
    /// Number of iterations. [default: 30]
    #[arg(long)]
    iterations: Option<usize>,
    /// Optimiser: polyak, annealed (Polyak × loss) or adam. [default: adam]
    #[arg(long)]
    optimizer: Option<String>,
    /// Step size of polyak/annealed (in the unbounded space). [default: 0.3]
    #[arg(long)]
    gamma: Option<f64>,
    /// Learning rate of adam (in the unbounded space). [default: 0.1]
    #[arg(long)]
    lr: Option<f64>,
    /// Loss: corr (1 − corr of FC upper triangles), mse, or mixed. [default: corr]
    #[arg(long)]
    loss: Option<String>,
    /// Weight of the MSE term with --loss mixed. [default: 1]
    #[arg(long)]
    w_mse: Option<f64>,
    /// Steps per checkpointed chunk of the gradient. [default: 100]
    #[arg(long)]
    chunk: Option<usize>,
    /// Backend: ndarray, ndarray64, flex, wgpu, cuda. [default: ndarray]
    #[arg(long)]
    backend: Option<String>,
    /// Gradients: adjoint (the fused CPU engine's hand-written adjoint: fast; BOLD included; no
    /// delays or exp_euler; corr loss), autodiff (Burn autodiff through the tensor engine: everything, any
    /// backend), or auto (adjoint where it applies on a CPU backend). [default: auto]
    #[arg(long)]
    gradient: Option<String>,
    /// Output folder: fit.json, history.csv, fc_sim.npy, fit.png, state.json. [default: out/fit]
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Continue the fit saved in the output folder: alone (with --iterations, --out-dir), it
    /// takes the saved fit's settings; other flags must agree with them.
    #[arg(long)]
    resume: bool,
    /// No progress bar and no per-iteration lines.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FitConfig {
    model: Option<String>,
    connectome: Option<String>,
    lengths: Option<PathBuf>,
    normalize: Option<String>,
    target_fc: Option<PathBuf>,
    target_bold: Option<PathBuf>,
    tr: Option<f64>,
    #[serde(default)]
    fit: BTreeMap<String, [f64; 2]>,
    #[serde(default)]
    fit_regional: BTreeMap<String, [f64; 2]>,
    #[serde(default)]
    init: BTreeMap<String, f64>,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
    coupling: Option<String>,
    speed: Option<f64>,
    dt: Option<f64>,
    duration: Option<f64>,
    transient: Option<f64>,
    integrator: Option<String>,
    noise: Option<toml::Value>,
    noise_mode: Option<String>,
    seed: Option<u64>,
    observe: Option<String>,
    record: Option<String>,
    restarts: Option<usize>,
    iterations: Option<usize>,
    optimizer: Option<String>,
    gamma: Option<f64>,
    lr: Option<f64>,
    loss: Option<String>,
    w_mse: Option<f64>,
    chunk: Option<usize>,
    backend: Option<String>,
    gradient: Option<String>,
    out_dir: Option<PathBuf>,
}

/// The resolved settings of a fit (written to fit.json and compared on --resume).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct FitSettings {
    model: String,
    connectome: String,
    lengths: Option<PathBuf>,
    normalize: Normalization,
    target: String,
    tr: f64,
    free: Vec<FreeParam>,
    fixed: Vec<(String, ParamValue)>,
    network: NetworkConfig,
    dt: f64,
    duration: f64,
    transient: f64,
    time_unit: String,
    integrator: Integrator,
    noise: Noise,
    observe: MonitorKind,
    record: String,
    restarts: usize,
    optimizer: Optimizer,
    loss: LossKind,
    chunk: usize,
    backend: BackendKind,
    #[serde(default)]
    gradient: GradientEngine,
}

fn parse_bounds(s: &str) -> Result<(String, f64, f64)> {
    let (name, v) = split_assignment(s)?;
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    let nums: Vec<f64> = parts
        .iter()
        .map(|p| p.parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::param(&name, format!("`{v}` is not of the form lower,upper")))?;
    match nums.as_slice() {
        [lo, hi] if lo < hi && lo.is_finite() && hi.is_finite() => Ok((name, *lo, *hi)),
        [lo, hi] => Err(Error::param(
            &name,
            format!("bounds must satisfy lower < upper (finite), got lower {lo}, upper {hi}"),
        )),
        _ => Err(Error::param(
            &name,
            format!("`{v}` is not of the form lower,upper"),
        )),
    }
}

/// The fewest BOLD frames a target FC is computed from.
const MIN_FRAMES: usize = 20;

/// Pearson correlation matrix of the rows of a `regions × frames` array.
fn fc_of_rows(a: &Array) -> Vec<f64> {
    let (n, t) = (a.shape[0], a.shape[1]);
    let mut z = a.data.clone();
    for i in 0..n {
        let row = &mut z[i * t..(i + 1) * t];
        let m = row.iter().sum::<f64>() / t as f64;
        row.iter_mut().for_each(|v| *v -= m);
        let s = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        row.iter_mut().for_each(|v| *v /= s);
    }
    let mut fc = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let c: f64 = (0..t).map(|k| z[i * t + k] * z[j * t + k]).sum();
            fc[i * n + j] = c;
            fc[j * n + i] = c;
        }
    }
    fc
}

impl FitSettings {
    fn resolve(a: &FitArgs) -> Result<(Self, Vec<f64>, usize, PathBuf)> {
        let cfg: FitConfig = match &a.config {
            Some(p) => read_config(p)?,
            None => FitConfig::default(),
        };
        let model = a
            .model
            .clone()
            .or(cfg.model)
            .unwrap_or_else(|| "hopf".into());
        let spec: &ModelSpec = neurodiff::models::find(&model)?;
        let connectome = a
            .connectome
            .clone()
            .or(cfg.connectome)
            .unwrap_or_else(|| neurodiff::connectome::DEFAULT.into());
        let lengths = a.lengths.clone().or(cfg.lengths);
        let normalize: Normalization = a
            .normalize
            .clone()
            .or(cfg.normalize)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or_default();
        let mut conn = Connectome::load(&connectome, lengths.as_deref())?;
        conn.normalize(normalize);
        let n = conn.n;
        let tr = a.tr.or(cfg.tr).unwrap_or(0.72);
        if !(tr > 0.0 && tr.is_finite()) {
            return Err(Error::setting("tr", format!("must be positive, got {tr}")));
        }
        // Target.
        let target_bold = a.target_bold.clone().or(cfg.target_bold);
        let target_fc_path = a.target_fc.clone().or(cfg.target_fc);
        let (target, target_fc, frames) = match (target_fc_path, target_bold) {
            (Some(_), Some(_)) => {
                return Err(Error::setting(
                    "target",
                    "give either --target-fc or --target-bold, not both",
                ))
            }
            (Some(p), None) => {
                let arr = read_npy(&p)?;
                if arr.shape != vec![n, n] {
                    return Err(Error::data(
                        &p,
                        format!(
                            "target FC has shape {:?} but the connectome has {n} regions \
                             ([{n}, {n}] expected)",
                            arr.shape
                        ),
                    ));
                }
                check_finite(&p, &arr)?;
                (p.display().to_string(), arr.data, 1200)
            }
            (None, Some(p)) => {
                let arr = read_npy(&p)?;
                if arr.ndim() != 2 || arr.shape[0] != n || arr.shape[1] < MIN_FRAMES {
                    return Err(Error::data(
                        &p,
                        format!(
                            "target BOLD must be regions × frames with {n} regions and at \
                             least {MIN_FRAMES} frames (an FC from T frames has rank at most \
                             T − 1 and is mostly noise for small T), found shape {:?}",
                            arr.shape
                        ),
                    ));
                }
                check_finite(&p, &arr)?;
                let frames = arr.shape[1];
                (p.display().to_string(), fc_of_rows(&arr), frames)
            }
            (None, None) => {
                if connectome != "hcp80" {
                    return Err(Error::setting(
                        "target",
                        "a target is needed (--target-fc or --target-bold); the bundled group \
                         FC only matches the bundled hcp80 connectome",
                    ));
                }
                (
                    "bundled:hcp80/fc_cortical80.npy".into(),
                    bundled_fc_hcp80().data,
                    1200,
                )
            }
        };
        // Time.
        let tr_model = tr / spec.time_unit.seconds();
        let dt = match a.dt.or(cfg.dt) {
            Some(dt) => {
                let k = tr_model / dt;
                if dt.is_nan() || dt <= 0.0 || (k - k.round()).abs() > 1e-6 * k.max(1.0) {
                    return Err(Error::setting(
                        "dt",
                        format!(
                            "the TR ({tr} s = {tr_model} {}) must be a whole number of steps; \
                             dt = {dt} gives {k:.4}",
                            spec.time_unit
                        ),
                    ));
                }
                dt
            }
            None => tr_model / (tr_model / spec.default_dt).round().max(1.0),
        };
        let duration = a
            .duration
            .or(cfg.duration)
            .unwrap_or(frames as f64 * tr_model);
        let transient = a
            .transient
            .or(cfg.transient)
            .unwrap_or(60.0 / spec.time_unit.seconds());
        // Free and fixed parameters.
        let inits: BTreeMap<String, f64> = a
            .init
            .iter()
            .map(|s| {
                let (name, v) = split_assignment(s)?;
                let x: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| Error::param(&name, format!("`{v}` is not a number")))?;
                Ok((name, x))
            })
            .collect::<Result<BTreeMap<_, _>>>()?
            .into_iter()
            .chain(cfg.init)
            .collect();
        let mut free = Vec::new();
        let flags_given = !a.fit.is_empty() || !a.fit_regional.is_empty();
        let mut add = |name: String, lo: f64, hi: f64, regional: bool| {
            free.retain(|f: &FreeParam| f.name != name);
            free.push(FreeParam {
                init: inits.get(&name).copied(),
                name,
                lower: lo,
                upper: hi,
                regional,
            });
        };
        if flags_given {
            for s in &a.fit {
                let (n, lo, hi) = parse_bounds(s)?;
                add(n, lo, hi, false);
            }
            for s in &a.fit_regional {
                let (n, lo, hi) = parse_bounds(s)?;
                add(n, lo, hi, true);
            }
        } else if !cfg.fit.is_empty() || !cfg.fit_regional.is_empty() {
            for (n, [lo, hi]) in &cfg.fit {
                add(n.clone(), *lo, *hi, false);
            }
            for (n, [lo, hi]) in &cfg.fit_regional {
                add(n.clone(), *lo, *hi, true);
            }
        } else if model == "hopf" {
            add("G".into(), 0.0, 3.0, false);
            add("a".into(), -0.2, 0.1, false);
        } else {
            return Err(Error::setting(
                "fit",
                "say which parameters to fit, e.g. --fit G=0.0,3.0 --fit eta=-6,-4",
            ));
        }
        for (name, lo, hi) in free.iter().map(|f| (&f.name, f.lower, f.upper)) {
            if lo >= hi {
                return Err(Error::param(
                    name,
                    format!("bounds must satisfy lower < upper, got {lo}, {hi}"),
                ));
            }
        }
        if let Some(name) = inits.keys().find(|k| !free.iter().any(|f| &f.name == *k)) {
            return Err(Error::param(
                name,
                "--init is for fitted parameters; use --param for fixed ones",
            ));
        }
        let mut fixed = Vec::new();
        for (name, v) in &cfg.params {
            fixed.push((name.clone(), toml_param(name, v)?));
        }
        for p in &a.params {
            let (name, v) = split_assignment(p)?;
            fixed.push((name.clone(), ParamValue::parse(&name, v)?));
        }
        if let Some((name, _)) = fixed
            .iter()
            .find(|(_, v)| matches!(v, ParamValue::Batch(_)))
        {
            return Err(Error::param(
                name,
                "fixed parameters of a fit take one value (or @file per region), not a list: \
                 the batch holds the restarts",
            ));
        }
        let network = NetworkConfig {
            model: model.clone(),
            coupling: a
                .coupling
                .clone()
                .or(cfg.coupling)
                .map(|s| s.parse::<CouplingKind>())
                .transpose()?,
            inputs: None,
            speed: a.speed.or(cfg.speed),
            hold_coupling: false,
            sparse: neurodiff::sparse::SparseMode::Auto,
        };
        let default_sigma = if spec.time_unit == TimeUnit::S {
            0.02
        } else {
            0.01
        };
        let sigma = match (a.noise.clone(), cfg.noise) {
            (Some(t), _) => parse_noise(spec, &t)?,
            (None, Some(v)) => parse_noise(spec, &v.to_string())?,
            (None, None) => vec![default_sigma; spec.n_vars()],
        };
        let seed = a.seed.or(cfg.seed).unwrap_or(1);
        let noise = Noise {
            sigma,
            mode: a
                .noise_mode
                .clone()
                .or(cfg.noise_mode)
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(NoiseMode::Independent),
            seed,
            source: BackendKind::Ndarray.default_noise_source(),
        };
        let observe = match a.observe.clone().or(cfg.observe) {
            Some(o) => match o.parse::<MonitorKind>() {
                Ok(MonitorKind::Mean) | Err(_) => {
                    return Err(Error::setting(
                        "observe",
                        format!("`{o}` is not one of: raw, bold"),
                    ))
                }
                Ok(kind) => kind,
            },
            None if spec.time_unit == TimeUnit::S => MonitorKind::Raw,
            None => MonitorKind::Bold,
        };
        let record = a
            .record
            .clone()
            .or(cfg.record)
            .unwrap_or_else(|| spec.state[0].name.to_string());
        spec.var_index(&record).ok_or_else(|| {
            Error::setting(
                "record",
                format!("model `{model}` has no state variable `{record}`"),
            )
        })?;
        let optimizer = match a
            .optimizer
            .clone()
            .or(cfg.optimizer)
            .as_deref()
            .unwrap_or("adam")
        {
            "polyak" => Optimizer::Polyak {
                gamma: a.gamma.or(cfg.gamma).unwrap_or(0.3),
                annealed: false,
            },
            "annealed" => Optimizer::Polyak {
                gamma: a.gamma.or(cfg.gamma).unwrap_or(0.3),
                annealed: true,
            },
            "adam" => Optimizer::Adam {
                lr: a.lr.or(cfg.lr).unwrap_or(0.1),
            },
            o => {
                return Err(Error::setting(
                    "optimizer",
                    format!("`{o}` is not one of: polyak, annealed, adam"),
                ))
            }
        };
        let loss = match a.loss.clone().or(cfg.loss).as_deref().unwrap_or("corr") {
            "corr" => LossKind::Corr,
            "mse" => LossKind::Mse,
            "mixed" => LossKind::Mixed {
                w_corr: 1.0,
                w_mse: a.w_mse.or(cfg.w_mse).unwrap_or(1.0),
            },
            l => {
                return Err(Error::setting(
                    "loss",
                    format!("`{l}` is not one of: corr, mse, mixed"),
                ))
            }
        };
        let integrator: Integrator = a
            .integrator
            .clone()
            .or(cfg.integrator)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(Integrator::Heun);
        let backend: BackendKind = a
            .backend
            .clone()
            .or(cfg.backend)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(BackendKind::Ndarray);
        let gradient: GradientEngine = a
            .gradient
            .clone()
            .or(cfg.gradient)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or_default();
        let iterations = a.iterations.or(cfg.iterations).unwrap_or(30);
        let out_dir = a
            .out_dir
            .clone()
            .or(cfg.out_dir)
            .unwrap_or_else(|| PathBuf::from("out/fit"));
        let mut noise = noise;
        noise.source = backend.default_noise_source();
        Ok((
            Self {
                model,
                connectome,
                lengths,
                normalize,
                target,
                tr,
                free,
                fixed,
                network,
                dt,
                duration,
                transient,
                time_unit: spec.time_unit.name().into(),
                integrator,
                noise,
                observe,
                record,
                restarts: a.restarts.or(cfg.restarts).unwrap_or(4),
                optimizer,
                loss,
                chunk: a.chunk.or(cfg.chunk).unwrap_or(100),
                backend,
                gradient,
            },
            target_fc,
            iterations,
            out_dir,
        ))
    }

    fn problem(&self, target_fc: Vec<f64>) -> Result<FitProblem> {
        let spec = neurodiff::models::find(&self.model)?;
        let mut conn = Connectome::load(&self.connectome, self.lengths.as_deref())?;
        conn.normalize(self.normalize);
        let every = ((self.tr / spec.time_unit.seconds()) / self.dt).round() as usize;
        let transient = (self.transient / self.dt).round() as usize;
        let steps = transient + ((self.duration / self.dt).round() as usize);
        let var = spec.var_index(&self.record).expect("checked");
        // One haemodynamic Heun step per 10 ms: Heun's error there is ~1e-4 of the BOLD
        // response's peak (observe::bold), and the adjoint keeps one mean of the driving
        // variable per BOLD step, so a coarser step keeps long fits in memory. The BOLD step
        // divides the TR in steps.
        let bold = (self.observe == MonitorKind::Bold)
            .then(|| BoldMonitor::for_model(spec.time_unit, self.dt, var, 1e-2, Some(every)));
        Ok(FitProblem {
            network: self.network.clone(),
            connectome: conn,
            target_fc,
            fixed: self.fixed.clone(),
            free: self.free.clone(),
            run: Run {
                dt: self.dt,
                steps,
                integrator: self.integrator,
                noise: self.noise.clone(),
                chunk: self.chunk,
                monitor: Monitor {
                    every,
                    mean: false,
                    transient,
                    vars: vec![var],
                    bold,
                },
            },
            chunk: self.chunk,
            restarts: self.restarts,
            optimizer: self.optimizer,
            loss: self.loss,
            seed: self.noise.seed,
            // The adjoint runs on the CPU: on a GPU backend, auto means autodiff there.
            gradient: match self.gradient {
                GradientEngine::Auto if !self.backend.is_cpu() => GradientEngine::Autodiff,
                g => g,
            },
        })
    }
}

fn check_finite(path: &Path, a: &Array) -> Result<()> {
    if let Some(k) = a.data.iter().position(|v| !v.is_finite()) {
        let cols = a.shape[1];
        return Err(Error::data(
            path,
            format!(
                "value at row {}, column {} (0-based) is {}: values must be finite",
                k / cols,
                k % cols,
                a.data[k]
            ),
        ));
    }
    Ok(())
}

/// What `state.json` holds: the settings (to refuse resuming a different fit) and the state.
#[derive(Serialize, Deserialize)]
struct Saved {
    settings: FitSettings,
    state: FitState,
    wall_time_s: f64,
    /// The command line that started the fit (absent in fits saved by older versions), so that
    /// `--resume` alone continues it.
    #[serde(default)]
    argv: Option<Vec<String>>,
}

/// Just the command line of a saved fit.
#[derive(Deserialize)]
struct SavedArgv {
    #[serde(default)]
    argv: Option<Vec<String>>,
}

/// Flags that may differ between a fit and its resumption, with whether they take a value.
const SESSION_FLAGS: [(&str, bool); 5] = [
    ("--resume", false),
    ("--iterations", true),
    ("--out-dir", true),
    ("--quiet", false),
    ("-q", false),
];

/// `argv` without the program, the subcommand and the session flags, and those session flags.
fn split_session(argv: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut rest, mut session) = (Vec::new(), Vec::new());
    let mut it = argv.iter().skip(2);
    while let Some(a) = it.next() {
        let name = a.split('=').next().unwrap_or(a);
        match SESSION_FLAGS.iter().find(|(f, _)| *f == name) {
            Some((_, takes)) => {
                session.push(a.clone());
                if *takes && !a.contains('=') {
                    if let Some(v) = it.next() {
                        session.push(v.clone());
                    }
                }
            }
            None => rest.push(a.clone()),
        }
    }
    (rest, session)
}

/// For `--resume` given with no other setting: the saved fit's own command line, with this
/// one's `--iterations`, `--out-dir` and `--quiet`. Otherwise the arguments as they are (the
/// settings are then compared with the saved ones, and any difference is named).
fn resume_args(now: FitArgs) -> Result<FitArgs> {
    let argv: Vec<String> = std::env::args().collect();
    let (rest, session) = split_session(&argv);
    if !rest.is_empty() || argv.get(1).map(String::as_str) != Some("fit") {
        return Ok(now);
    }
    let out_dir = now
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/fit"));
    let path = out_dir.join("state.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(now);
    };
    let saved: SavedArgv = serde_json::from_str(&text)
        .map_err(|e| Error::data(&path, format!("not a saved fit: {e}")))?;
    let Some(saved_argv) = saved.argv else {
        return Ok(now);
    };
    let (saved_rest, _) = split_session(&saved_argv);
    let mut merged = vec![argv[0].clone(), "fit".to_string()];
    merged.extend(saved_rest);
    merged.extend(session);
    super::Cli::try_parse_from(&merged)
        .map_err(|e| {
            Error::data(
                &path,
                format!(
                    "the saved command line no longer parses: {}",
                    e.to_string().trim()
                ),
            )
        })?
        .into_fit()
        .ok_or_else(|| Error::data(&path, "the saved command line is not a fit"))
}

/// The top-level settings that differ between two fits, with both values.
fn differences(saved: &FitSettings, now: &FitSettings) -> String {
    let (a, b) = (
        serde_json::to_value(saved).expect("serialisable"),
        serde_json::to_value(now).expect("serialisable"),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return String::new();
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k} (saved {v}, now {})",
                b.get(k).map_or("none".into(), |x| x.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

struct FitTask {
    settings: FitSettings,
    target_fc: Vec<f64>,
    iterations: usize,
    out_dir: PathBuf,
    resume: bool,
    quiet: bool,
}

impl FitTask {
    fn run(self) -> Result<()> {
        let s = &self.settings;
        let problem = s.problem(self.target_fc.clone())?;
        problem.validate()?;
        std::fs::create_dir_all(&self.out_dir).map_err(|e| Error::io(&self.out_dir, e))?;
        let state_path = self.out_dir.join("state.json");
        let (state, wall_before) = if self.resume {
            let text = std::fs::read_to_string(&state_path).map_err(|e| {
                Error::io(
                    &state_path,
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot resume: {e} (run without --resume first)"),
                    ),
                )
            })?;
            let saved: Saved = serde_json::from_str(&text)
                .map_err(|e| Error::data(&state_path, format!("not a saved fit: {e}")))?;
            if saved.settings != *s {
                return Err(Error::setting(
                    "resume",
                    format!(
                        "the saved fit in {} has other settings: {}; resume with `--resume` \
                         alone (and --iterations), or with the same settings",
                        state_path.display(),
                        differences(&saved.settings, s)
                    ),
                ));
            }
            (saved.state, saved.wall_time_s)
        } else {
            (problem.initial_state()?, 0.0)
        };
        let started = Instant::now();
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new(self.iterations as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} iterations {msg}",
                )
                .expect("valid template"),
            );
            b.set_position(state.iteration as u64);
            b
        };
        let names: Vec<String> = s.free.iter().map(|f| f.name.clone()).collect();
        let quiet = self.quiet;
        let gradient_used = match (problem.gradient_method()?, problem.adjoint_unsupported()) {
            (GradientEngine::Autodiff, Some(why)) if problem.gradient == GradientEngine::Auto => {
                format!("autodiff (the adjoint does not support {})", why.feature)
            }
            (g, _) => g.to_string(),
        };
        if !quiet {
            println!("gradients: {gradient_used}");
        }
        let state = fit_on(
            s.backend,
            &problem,
            state,
            self.iterations,
            &mut |st, rep| {
                let best = st.best.as_ref().expect("set after an iteration");
                let wall = wall_before + started.elapsed().as_secs_f64();
                write_text(
                    &state_path,
                    &serde_json::to_string(&Saved {
                        settings: s.clone(),
                        state: st.clone(),
                        wall_time_s: wall,
                        argv: Some(std::env::args().collect()),
                    })
                    .expect("serialisable"),
                )?;
                let mean_loss = rep.loss.iter().sum::<f64>() / rep.loss.len() as f64;
                bar.set_position(st.iteration as u64);
                bar.set_message(format!("best corr {:.4}", best.corr));
                if !quiet {
                    bar.println(format!(
                        "iteration {:>4}  mean loss {mean_loss:.4}  best corr(FC) {:.4}  ({})",
                        rep.iteration,
                        best.corr,
                        names
                            .iter()
                            .zip(&best.values)
                            .map(|(n, v)| if v.len() == 1 {
                                format!("{n} = {:.4}", v[0])
                            } else {
                                format!("{n}: mean {:.4}", v.iter().sum::<f64>() / v.len() as f64)
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Ok(())
            },
        )?;
        bar.finish_and_clear();
        let wall = wall_before + started.elapsed().as_secs_f64();
        let best = state.best.clone().ok_or_else(|| {
            Error::setting("iterations", "no iteration was run (--iterations 0?)")
        })?;
        let n = problem.connectome.n;
        // Outputs.
        let mut csv = String::from("iteration,restart,loss,corr");
        for f in &s.free {
            csv.push(',');
            csv.push_str(&f.name);
            if f.regional {
                csv.push_str("_mean");
            }
        }
        csv.push('\n');
        for h in &state.history {
            csv.push_str(&format!(
                "{},{},{},{}",
                h.iteration, h.restart, h.loss, h.corr
            ));
            for v in &h.params {
                csv.push_str(&format!(",{v}"));
            }
            csv.push('\n');
        }
        write_text(&self.out_dir.join("history.csv"), &csv)?;
        write_npy_f32(
            &self.out_dir.join("fc_sim.npy"),
            &[n, n],
            &best.fc.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        )?;
        let mut params = BTreeMap::new();
        for (f, v) in s.free.iter().zip(&best.values) {
            params.insert(
                f.name.clone(),
                if v.len() == 1 {
                    serde_json::json!(v[0])
                } else {
                    serde_json::json!(v)
                },
            );
        }
        let summary = serde_json::json!({
            "neurodiff_version": env!("CARGO_PKG_VERSION"),
            "burn_version": "0.21.0",
            "command": std::env::args().collect::<Vec<_>>(),
            "best": {
                "params": params,
                "loss": best.loss,
                "corr_fc": best.corr,
                "iteration": best.iteration,
                "restart": best.restart,
            },
            "iterations": state.iteration,
            "restarts": s.restarts,
            "gradient": gradient_used,
            "settings": s,
            "wall_time_s": wall,
        });
        write_text(
            &self.out_dir.join("fit.json"),
            &serde_json::to_string_pretty(&summary).expect("serialisable"),
        )?;
        neurodiff::plot::fit_figure(
            &self.out_dir.join("fit.png"),
            &state.history,
            s.restarts,
            &self.target_fc,
            &best.fc,
            n,
            &format!(
                "{} on {}: best corr(FC) = {:.3}",
                s.model, s.connectome, best.corr
            ),
        )?;
        if !self.quiet {
            println!(
                "best corr(FC_sim, FC_emp) = {:.4} (loss {:.4}) at iteration {}, restart {}; {} \
                 iterations × {} restarts in {wall:.1} s",
                best.corr, best.loss, best.iteration, best.restart, state.iteration, s.restarts
            );
            for (f, v) in s.free.iter().zip(&best.values) {
                if v.len() == 1 {
                    println!("  {} = {:.5}", f.name, v[0]);
                } else {
                    let (lo, hi) = v
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                            (a.min(x), b.max(x))
                        });
                    println!(
                        "  {} per region: mean {:.5}, range [{lo:.5}, {hi:.5}]",
                        f.name,
                        v.iter().sum::<f64>() / v.len() as f64
                    );
                }
            }
            println!(
                "wrote {0}/fit.json, {0}/history.csv, {0}/fc_sim.npy, {0}/fit.png ({0}/state.json \
                 resumes with --resume)",
                self.out_dir.display()
            );
        }
        Ok(())
    }
}

pub fn run(args: FitArgs) -> Result<()> {
    let args = if args.resume {
        resume_args(args)?
    } else {
        args
    };
    let (settings, target_fc, iterations, out_dir) = FitSettings::resolve(&args)?;
    let backend = settings.backend;
    backend.ensure_compiled()?;
    FitTask {
        settings,
        target_fc,
        iterations,
        out_dir,
        resume: args.resume,
        quiet: args.quiet,
    }
    .run()
}
