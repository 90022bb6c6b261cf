//! `neurodiff circuit`: a spiking STN–GPe–GPi circuit (or any circuit from a TOML file) on the
//! fused CPU spiking engine; writes spikes, population rates, the LFP proxy, `circuit.json`
//! and `circuit.png`, and prints rates and ISI CV per population.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde_json::json;

use neurodiff::backend::{with_backend, BackendKind, BackendTask};
use neurodiff::io::{write_text, Dtype, NpyStream};
use neurodiff::observe::spectra::{band_power, isi_cv, modulation_index, welch};
use neurodiff::spiking::fit::{fit, FitParam, FitSettings, Gradient, Optimizer};
use neurodiff::spiking::grad::Objective;
use neurodiff::spiking::{
    Circuit, Dbs, Engine, InputSeries, Record, Recorder, Seed, BYTES_PER_SYNAPSE,
};
use neurodiff::{Error, Result};

use super::simulate::{read_config, split_assignment};

/// Flags of `neurodiff circuit`.
#[derive(Debug, Args)]
pub struct CircuitArgs {
    /// Circuit TOML file (populations, projections, dt_ms, seed, dbs; see README). The
    /// flags below apply on top. [default: the healthy STN–GPe–GPi circuit]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// STN size (the population named `stn`). [default: 1000]
    #[arg(long)]
    n_stn: Option<usize>,
    /// GPe size (the population named `gpe`). [default: 2000]
    #[arg(long)]
    n_gpe: Option<usize>,
    /// GPi size (the population named `gpi`). [default: 1500]
    #[arg(long)]
    n_gpi: Option<usize>,
    /// Scale each projection's weights with its fan-in when --n-stn/--n-gpe/--n-gpi resize
    /// the circuit, so that every neuron keeps the summed synaptic input (and roughly the
    /// rates) of the circuit before resizing: weight × (p·n_pre before) / (p·n_pre after).
    /// Without it the weights stay as given and a larger presynaptic population drives each
    /// neuron harder. Recorded per projection as `fan_in_ref` in circuit.json.
    #[arg(long)]
    keep_fan_in: bool,
    /// Simulated time, ms.
    #[arg(long, value_name = "MS", default_value_t = 1000.0)]
    duration: f64,
    /// Start of the window over which rates and CV are measured, ms (the initial transient is
    /// simulated and written but not measured). [default: a fifth of the duration, at most
    /// 200 ms]
    #[arg(long, value_name = "MS")]
    transient: Option<f64>,
    /// Integration step, ms. [default: the circuit's, 0.025]
    #[arg(long, value_name = "MS")]
    dt: Option<f64>,
    /// Deep brain stimulation of the STN: FREQ (Hz), AMP (µA/cm²), WIDTH (ms), and optionally
    /// ON, OFF (ms).
    #[arg(
        long,
        value_name = "FREQ,AMP,WIDTH[,ON,OFF]",
        allow_hyphen_values = true
    )]
    dbs: Option<String>,
    /// A current from a file into a population, POP=FILE.npy@DT_MS: `[samples]` (every neuron)
    /// or `[samples, n]` (one column per neuron) in the population's input unit (pA for
    /// AdEx/LIF, µA/cm² for HH/STN), sample k held during [k·DT, (k+1)·DT) ms, 0 after the
    /// last. Repeatable; adds to the circuit file's `[[inputs]]`.
    #[arg(long = "input", value_name = "POP=FILE@DT_MS")]
    inputs: Vec<String>,
    /// Set a parameter, KEY=VALUE: a neuron parameter POP.NAME (e.g. gpe.C=45), POP.current,
    /// POP.ou_mu, a projection's mean weight w:PRE->POST, or dbs.amplitude. Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    params: Vec<String>,
    /// Fit this parameter before the run, KEY=LO..HI (keys as --param; bounds in its unit).
    /// Repeatable, at most 8. Needs --target-rate or --target-beta.
    #[arg(long = "fit", value_name = "KEY=LO..HI", allow_hyphen_values = true)]
    fit: Vec<String>,
    /// Fit target: a population's rate over the measured window, POP=HZ. Repeatable.
    #[arg(long = "target-rate", value_name = "POP=HZ")]
    target_rates: Vec<String>,
    /// Fit target: a population's beta power (13–30 Hz, of its mean V), POP=MV2. Repeatable.
    #[arg(long = "target-beta", value_name = "POP=MV2")]
    target_betas: Vec<String>,
    /// Fit: optimiser steps.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Fit: optimiser, adam or polyak.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Fit: step size in the bounded parameters' unbounded coordinates (Adam's learning rate,
    /// Polyak's γ).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Fit: length of each fitting run, ms (the measured window starts after --transient).
    /// [default: --duration]
    #[arg(long, value_name = "MS")]
    fit_duration: Option<f64>,
    /// Fit: the gradient, fd (central differences with common random numbers, 2P extra runs in
    /// parallel), surrogate (forward-mode dual numbers, surrogate spikes) or held (dual
    /// numbers, spikes held at their steps).
    #[arg(long, default_value = "fd")]
    gradient: String,
    /// Fit: finite-difference step as a fraction of each parameter's bounds.
    #[arg(long, default_value_t = 0.02)]
    fd_step: f64,
    /// Seed of connectivity, heterogeneity, initial state and noise. [default: 42]
    #[arg(long)]
    seed: Option<u64>,
    /// Rate bin width, ms.
    #[arg(long, value_name = "MS", default_value_t = 1.0)]
    bin: f64,
    /// Run on Burn tensors on this backend (ndarray, ndarray64, flex, wgpu, cuda) instead of the
    /// fused CPU engine: the same step, sparse propagation over every synapse each step (for
    /// GPUs; on the CPU the fused engine is much faster). [default: the fused engine]
    #[arg(long)]
    backend: Option<String>,
    /// Output folder.
    #[arg(long, value_name = "DIR", default_value = "out/circuit")]
    out_dir: PathBuf,
    /// No figure.
    #[arg(long)]
    no_plot: bool,
    /// No progress and no summary.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_dbs(text: &str) -> Result<Dbs> {
    let v: Vec<f64> = text
        .split(',')
        .map(|s| {
            s.trim().parse::<f64>().map_err(|_| {
                Error::setting(
                    "dbs",
                    format!("`{s}` is not a number (FREQ,AMP,WIDTH[,ON,OFF])"),
                )
            })
        })
        .collect::<Result<_>>()?;
    if !(v.len() == 3 || v.len() == 5) {
        return Err(Error::setting(
            "dbs",
            format!(
                "expected FREQ,AMP,WIDTH or FREQ,AMP,WIDTH,ON,OFF, got {} values",
                v.len()
            ),
        ));
    }
    Ok(Dbs {
        population: "stn".into(),
        freq_hz: v[0],
        amplitude: v[1],
        width_ms: v[2],
        on_ms: v.get(3).copied().unwrap_or(0.0),
        off_ms: v.get(4).copied(),
    })
}

/// `POP=FILE@DT_MS` of `--input`.
fn parse_input(text: &str) -> Result<InputSeries> {
    let (population, rest) = split_assignment(text)?;
    let (file, dt) = rest.rsplit_once('@').ok_or_else(|| {
        Error::setting(
            "input",
            format!("`{text}`: expected POP=FILE.npy@DT_MS (the sample period in ms after @)"),
        )
    })?;
    let dt_ms: f64 = dt.trim().parse().map_err(|_| {
        Error::setting(
            "input",
            format!("`{text}`: the sample period `{dt}` is not a number of ms"),
        )
    })?;
    Ok(InputSeries {
        population: population.trim().to_string(),
        file: PathBuf::from(file.trim()),
        dt_ms,
        scale: 1.0,
    })
}

/// The circuit the flags describe.
fn resolve(a: &CircuitArgs) -> Result<Circuit> {
    let mut c = match &a.config {
        Some(path) => {
            let mut c = read_config::<Circuit>(path)?;
            // Files named in a circuit file are relative to its folder.
            let base = path.parent().unwrap_or_else(|| std::path::Path::new("."));
            for input in &mut c.inputs {
                if input.file.is_relative() {
                    input.file = base.join(&input.file);
                }
            }
            c
        }
        // Resized below.
        None => Circuit::default_stn_gpe_gpi(1000, 2000, 1500),
    };
    if a.keep_fan_in {
        // The reference is the circuit before resizing: the default's 1K–2K–1.5K or the file's.
        c.keep_fan_in();
    }
    for (name, n) in [("stn", a.n_stn), ("gpe", a.n_gpe), ("gpi", a.n_gpi)] {
        if let Some(n) = n {
            let k = c.population_index(name).ok_or_else(|| {
                Error::setting(
                    format!("n-{name}"),
                    format!("the circuit has no population `{name}`"),
                )
            })?;
            c.populations[k].n = n;
        }
    }
    if let Some(s) = a.seed {
        c.seed = s;
    }
    if let Some(dt) = a.dt {
        c.dt_ms = dt;
    }
    if let Some(text) = &a.dbs {
        c.dbs = Some(parse_dbs(text)?);
    }
    for text in &a.inputs {
        c.inputs.push(parse_input(text)?);
    }
    for text in &a.params {
        let (key, value) = split_assignment(text)?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| Error::param(&key, format!("`{value}` is not a number")))?;
        Seed::parse(&key, &c)?.set(&mut c, v)?;
    }
    Ok(c)
}

/// Per population: (rate Hz, mean ISI CV over neurons with ≥ 3 spikes, their number) in the
/// window `[from, to)` ms.
fn metrics(
    engine: &Engine,
    spikes: &[(u32, u32)],
    dt: f64,
    from: f64,
    to: f64,
) -> Vec<(f64, Option<f64>, usize)> {
    let mut trains: Vec<Vec<f64>> = vec![Vec::new(); engine.n_neurons()];
    for &(id, s) in spikes {
        let t = (s as f64 + 1.0) * dt;
        if t >= from && t < to {
            trains[id as usize].push(t);
        }
    }
    (0..engine.n_populations())
        .map(|k| {
            let (_, n, off) = engine.population(k);
            let trains = &trains[off..off + n];
            let count: usize = trains.iter().map(Vec::len).sum();
            let rate = count as f64 / (n as f64 * (to - from) / 1000.0);
            let cvs: Vec<f64> = trains.iter().filter_map(|t| isi_cv(t)).collect();
            let cv = (!cvs.is_empty()).then(|| cvs.iter().sum::<f64>() / cvs.len() as f64);
            (rate, cv, cvs.len())
        })
        .collect()
}

/// The beta band, Hz.
const BETA: (f64, f64) = (13.0, 30.0);
/// The gamma band of the phase–amplitude coupling, Hz.
const GAMMA: (f64, f64) = (50.0, 200.0);

/// Power (unit² of `x`) in the beta band of `x` sampled at `fs_hz`, by Welch with segments of
/// up to 256 samples; `None` when the series is too short or the band does not fit.
fn beta_power(x: &[f64], fs_hz: f64) -> Option<f64> {
    let segment = x.len().min(256);
    let (f, psd) = welch(x, fs_hz, segment).ok()?;
    band_power(&f, &psd, BETA.0, BETA.1).ok()
}

/// Column `k` of a row-major `[rows][cols]` table, rows `from..`.
fn column(table: &[f64], cols: usize, k: usize, from: usize) -> Vec<f64> {
    table.chunks(cols).skip(from).map(|r| r[k]).collect()
}

fn write_npy(path: &Path, shape: &[usize], values: &[f64]) -> Result<()> {
    let mut s = NpyStream::create(path, shape, Dtype::F64)?;
    s.write(values)?;
    s.finish()
}

/// Runs `neurodiff circuit`.
pub fn run(a: CircuitArgs) -> Result<()> {
    let c = resolve(&a)?;
    let transient = a.transient.unwrap_or((a.duration / 5.0).min(200.0));
    if !(a.duration.is_finite() && a.duration > 0.0) {
        return Err(Error::setting(
            "duration",
            format!("must be positive, got {}", a.duration),
        ));
    }
    if !(transient >= 0.0 && transient < a.duration) {
        return Err(Error::setting(
            "transient",
            format!("must lie in [0, duration), got {transient}"),
        ));
    }
    let bin_steps = (a.bin / c.dt_ms).round() as usize;
    if !(a.bin.is_finite() && bin_steps >= 1) {
        return Err(Error::setting(
            "bin",
            format!("must be at least dt, got {}", a.bin),
        ));
    }
    let plan = plan_fit(&a, &c, transient)?;
    let fitted = match &plan {
        Some(settings) => Some(run_fit(&a, &c, settings)?),
        None => None,
    };
    let c = fitted.as_ref().map_or(c, |f| f.circuit.clone());
    let t_build = Instant::now();
    let mut engine = Engine::new(&c)?;
    let build_s = t_build.elapsed().as_secs_f64();
    let steps = (a.duration / c.dt_ms).round() as u64;
    let lfp_every = (1.0 / c.dt_ms).round().max(1.0) as usize;
    let mut rec = Recorder::new(
        Record {
            spikes: true,
            rate_bin_steps: bin_steps,
            v_neurons: Vec::new(),
            sample_every: lfp_every,
            lfp: true,
        },
        &engine,
    );
    let show = !a.quiet && std::io::stderr().is_terminal();
    let mut progress = |done: u64, total: u64| {
        if show {
            eprint!("\r{done}/{total} steps");
            if done == total {
                eprintln!();
            }
        }
    };
    let t0 = Instant::now();
    let backend = match &a.backend {
        Some(name) => {
            let kind: BackendKind = name.parse()?;
            kind.ensure_compiled()?;
            with_backend(
                kind,
                OnTensors {
                    circuit: &c,
                    steps,
                    lfp_every: lfp_every as u64,
                    rec: &mut rec,
                    progress: &mut progress,
                },
            )??;
            Some(kind)
        }
        None => {
            engine.run(steps, &mut rec, &mut progress)?;
            None
        }
    };
    let wall = t0.elapsed().as_secs_f64();
    let ms_per_step = 1000.0 * wall / steps as f64;

    let dt = c.dt_ms;
    let m = metrics(&engine, &rec.spikes, dt, transient, a.duration);
    let np = engine.n_populations();
    let rates = rec.rates_hz(dt);
    let rate_flat: Vec<f64> = rates.iter().flatten().copied().collect();
    // Spectra over the measured window: the LFP proxy (mean V, sampled every 1 ms) and the
    // population rate (per bin).
    let lfp_dt = lfp_every as f64 * dt;
    let lfp_from = (transient / lfp_dt).ceil() as usize;
    let bin_ms = bin_steps as f64 * dt;
    let rate_from = (transient / bin_ms).ceil() as usize;
    let mut betas = Vec::with_capacity(np);
    let mut psds = Vec::with_capacity(np);
    let mut pops = serde_json::Map::new();
    for (k, (rate, cv, with_cv)) in m.iter().enumerate() {
        let (name, n, off) = engine.population(k);
        let lfp = column(&rec.lfp, np, k, lfp_from);
        let beta = beta_power(&lfp, 1000.0 / lfp_dt);
        psds.push(welch(&lfp, 1000.0 / lfp_dt, lfp.len().min(256)).ok());
        let beta_rate = beta_power(&column(&rate_flat, np, k, rate_from), 1000.0 / bin_ms);
        let pac = modulation_index(&lfp, 1000.0 / lfp_dt, BETA, GAMMA, 18).ok();
        betas.push(beta);
        pops.insert(
            name.to_string(),
            json!({
                "neuron": c.populations[k].neuron,
                "n": n,
                "first_id": off,
                "rate_hz": rate,
                "cv": cv,
                "cv_neurons": with_cv,
                "beta_power": beta,
                "beta_power_rate": beta_rate,
                "pac_mi": pac,
            }),
        );
    }
    let synapses: BTreeMap<String, usize> = c
        .projections
        .iter()
        .zip(engine.synapse_counts())
        .map(|(p, n)| (p.label(), n))
        .collect();
    let total_syn: usize = synapses.values().sum();
    let n_samples = rec.lfp.len() / np.max(1);
    let summary = json!({
        "circuit": c,
        "duration_ms": a.duration,
        "transient_ms": transient,
        "steps": steps,
        "metrics_window_ms": [transient, a.duration],
        "populations": pops,
        "synapses": synapses,
        "synapses_total": total_syn,
        "bytes_per_synapse": BYTES_PER_SYNAPSE,
        "synapse_memory_bytes": engine.synapse_bytes(),
        "rate_bin_ms": bin_steps as f64 * dt,
        "lfp_sample_ms": lfp_dt,
        "spectra": {
            "beta_band_hz": [BETA.0, BETA.1],
            "beta_power": "Welch PSD (Hann, segments of up to 256 samples, 50 % overlap) of the \
                           population's mean V (mV², LFP proxy) over the measured window, \
                           integrated over the beta band",
            "beta_power_rate": "the same of the population rate per bin (Hz²)",
            "pac_mi": "Tort's modulation index of the mean V: beta phase × gamma (50–200 Hz) \
                       amplitude, 18 phase bins",
        },
        "outputs": {
            "spikes.npy": "[n_spikes, 2]: global neuron id, spike time (ms, end of its step)",
            "rates.npy": "[bins, populations]: population rate (Hz) per bin",
            "lfp.npy": "[samples, populations]: population mean V (mV), LFP proxy",
        },
        "engine": backend.map_or("fused CPU (f64)".to_string(), |k| format!("Burn tensors on {}", k.name())),
        "build_s": build_s,
        "wall_time_s": wall,
        "ms_per_step": ms_per_step,
    });

    std::fs::create_dir_all(&a.out_dir).map_err(|e| Error::io(&a.out_dir, e))?;
    let mut flat = Vec::with_capacity(rec.spikes.len() * 2);
    for &(id, s) in &rec.spikes {
        flat.push(id as f64);
        flat.push((s as f64 + 1.0) * dt);
    }
    write_npy(&a.out_dir.join("spikes.npy"), &[rec.spikes.len(), 2], &flat)?;
    write_npy(&a.out_dir.join("rates.npy"), &[rates.len(), np], &rate_flat)?;
    write_npy(&a.out_dir.join("lfp.npy"), &[n_samples, np], &rec.lfp)?;
    if let (Some(settings), Some(f)) = (&plan, &fitted) {
        write_fit(&a, &c, settings, f)?;
    }
    let json_path = a.out_dir.join("circuit.json");
    let text = serde_json::to_string_pretty(&summary)
        .map_err(|e| Error::data(&json_path, e.to_string()))?;
    write_text(&json_path, &text)?;
    if !a.no_plot {
        let names: Vec<String> = (0..np)
            .map(|k| engine.population(k).0.to_string())
            .collect();
        let bounds: Vec<usize> = (0..np).map(|k| engine.population(k).2).collect();
        neurodiff::plot::circuit_figure(
            &a.out_dir.join("circuit.png"),
            &flat,
            engine.n_neurons(),
            &bounds,
            &names,
            &rate_flat,
            bin_steps as f64 * dt,
            a.duration,
            &psds,
        )?;
    }
    if !a.quiet {
        println!(
            "{} neurons, {total_syn} synapses, {steps} steps of {dt} ms in {wall:.2} s \
             ({ms_per_step:.4} ms/step; build {build_s:.2} s)",
            engine.n_neurons()
        );
        for (k, (rate, cv, _)) in m.iter().enumerate() {
            let cv = cv.map_or("–".to_string(), |v| format!("{v:.3}"));
            let beta = betas[k].map_or("–".to_string(), |v| format!("{v:.4}"));
            println!(
                "{:>5}: rate {rate:7.2} Hz   ISI CV {cv}   beta power (mean V) {beta} mV²",
                engine.population(k).0
            );
        }
        println!("wrote {}", a.out_dir.display());
    }
    Ok(())
}

/// The fit the flags ask for, if any (checked before anything runs).
fn plan_fit(a: &CircuitArgs, c: &Circuit, transient: f64) -> Result<Option<FitSettings>> {
    let has_targets = !(a.target_rates.is_empty() && a.target_betas.is_empty());
    if a.fit.is_empty() {
        if has_targets {
            return Err(Error::setting(
                "target-rate/target-beta",
                "targets without --fit KEY=LO..HI: name the parameters to fit",
            ));
        }
        return Ok(None);
    }
    if !has_targets {
        return Err(Error::setting(
            "fit",
            "nothing to fit to: add --target-rate POP=HZ and/or --target-beta POP=MV2",
        ));
    }
    let params = a
        .fit
        .iter()
        .map(|t| FitParam::parse(t, c))
        .collect::<Result<Vec<_>>>()?;
    let targets = |list: &[String], flag: &str| -> Result<Vec<(usize, f64)>> {
        list.iter()
            .map(|t| {
                let (pop, v) = split_assignment(t)?;
                let k = c.population_index(&pop).ok_or_else(|| {
                    Error::setting(
                        flag,
                        format!(
                            "no population `{pop}` (populations: {})",
                            c.population_names()
                        ),
                    )
                })?;
                let v: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| Error::setting(flag, format!("`{v}` is not a number")))?;
                Ok((k, v))
            })
            .collect()
    };
    let fit_duration = a.fit_duration.unwrap_or(a.duration);
    if !(fit_duration.is_finite() && fit_duration > transient) {
        return Err(Error::setting(
            "fit-duration",
            format!("must exceed the transient ({transient} ms), got {fit_duration} ms"),
        ));
    }
    let optimizer = match a.optimizer.as_str() {
        "adam" => Optimizer::Adam { lr: a.lr },
        "polyak" => Optimizer::Polyak {
            gamma: a.lr,
            beta: 0.9,
        },
        other => {
            return Err(Error::setting(
                "optimizer",
                format!("`{other}`: expected adam or polyak"),
            ))
        }
    };
    let gradient = match a.gradient.as_str() {
        // fit::fit checks the step's range.
        "fd" => Gradient::FiniteDifference { step: a.fd_step },
        "surrogate" => Gradient::Dual { surrogate: true },
        "held" => Gradient::Dual { surrogate: false },
        other => {
            return Err(Error::setting(
                "gradient",
                format!("`{other}`: expected fd, surrogate or held"),
            ))
        }
    };
    if a.iterations == 0 {
        return Err(Error::setting("iterations", "must be at least 1"));
    }
    Ok(Some(FitSettings {
        params,
        objective: Objective {
            window_ms: (transient, fit_duration),
            rates: targets(&a.target_rates, "target-rate")?,
            beta: targets(&a.target_betas, "target-beta")?,
        },
        iterations: a.iterations,
        optimizer,
        gradient,
    }))
}

/// Runs the fit, printing one line per evaluation on stderr.
fn run_fit(
    a: &CircuitArgs,
    c: &Circuit,
    settings: &FitSettings,
) -> Result<neurodiff::spiking::fit::FitOutcome> {
    let keys: Vec<String> = settings.params.iter().map(|p| p.seed.key(c)).collect();
    let t0 = Instant::now();
    let mut show = |r: &neurodiff::spiking::fit::FitRow| {
        if a.quiet {
            return;
        }
        let values: Vec<String> = keys
            .iter()
            .zip(&r.values)
            .map(|(k, v)| format!("{k}={v:.4}"))
            .collect();
        let rates: Vec<String> = settings
            .objective
            .rates
            .iter()
            .map(|&(k, _)| format!("{} {:.1} Hz", c.populations[k].name, r.eval.rates_hz[k]))
            .chain(settings.objective.beta.iter().map(|&(k, _)| {
                format!(
                    "{} beta {:.3e} mV²",
                    c.populations[k].name, r.eval.beta_mv2[k]
                )
            }))
            .collect();
        eprintln!(
            "fit {:>3}/{}  loss {:.4e}  {}  [{}]  {:.0} s",
            r.iteration,
            settings.iterations,
            r.eval.loss,
            values.join(" "),
            rates.join(", "),
            t0.elapsed().as_secs_f64()
        );
    };
    fit(c, settings, &mut show)
}

/// Writes `fit.json`, `fitted.toml` (the circuit with the best parameters, for `--config`)
/// and `fit.png`.
fn write_fit(
    a: &CircuitArgs,
    fitted: &Circuit,
    settings: &FitSettings,
    f: &neurodiff::spiking::fit::FitOutcome,
) -> Result<()> {
    let keys: Vec<String> = settings.params.iter().map(|p| p.seed.key(fitted)).collect();
    let name = |k: usize| fitted.populations[k].name.clone();
    let history: Vec<serde_json::Value> = f
        .history
        .iter()
        .map(|r| {
            json!({
                "iteration": r.iteration,
                "loss": r.eval.loss,
                "params": keys.iter().cloned().zip(r.values.iter().copied()).collect::<BTreeMap<_, _>>(),
                "grad": keys.iter().cloned().zip(r.eval.grad.iter().copied()).collect::<BTreeMap<_, _>>(),
                "rates_hz": (0..fitted.populations.len()).map(|k| (name(k), r.eval.rates_hz[k])).collect::<BTreeMap<_, _>>(),
                "beta_mv2": settings.objective.beta.iter().map(|&(k, _)| (name(k), r.eval.beta_mv2[k])).collect::<BTreeMap<_, _>>(),
            })
        })
        .collect();
    let (optimizer, step) = match settings.optimizer {
        Optimizer::Adam { lr } => ("adam", lr),
        Optimizer::Polyak { gamma, .. } => ("polyak", gamma),
    };
    let best = &f.history[f.best];
    let summary = json!({
        "params": settings.params.iter().zip(&keys).map(|(p, k)| json!({
            "key": k, "lower": p.bounds.lower(), "upper": p.bounds.upper(),
            "start": f.history[0].values[keys.iter().position(|x| x == k).unwrap_or(0)],
        })).collect::<Vec<_>>(),
        "targets": {
            "rate_hz": settings.objective.rates.iter().map(|&(k, v)| (name(k), v)).collect::<BTreeMap<_, _>>(),
            "beta_mv2": settings.objective.beta.iter().map(|&(k, v)| (name(k), v)).collect::<BTreeMap<_, _>>(),
        },
        "window_ms": [settings.objective.window_ms.0, settings.objective.window_ms.1],
        "loss": "Σ ((rate − target)/target)² + Σ (ln beta − ln target)²",
        "optimizer": optimizer,
        "step": step,
        "iterations": settings.iterations,
        "gradient": match settings.gradient {
            Gradient::FiniteDifference { step } => json!({"method": "central differences, common random numbers", "step_of_bounds": step}),
            Gradient::Dual { surrogate } => json!({"method": "forward-mode dual numbers", "surrogate_spikes": surrogate}),
        },
        "best_iteration": f.best,
        "best_loss": best.eval.loss,
        "best_params": keys.iter().cloned().zip(best.values.iter().copied()).collect::<BTreeMap<_, _>>(),
        "history": history,
    });
    let path = a.out_dir.join("fit.json");
    let text =
        serde_json::to_string_pretty(&summary).map_err(|e| Error::data(&path, e.to_string()))?;
    write_text(&path, &text)?;
    let path = a.out_dir.join("fitted.toml");
    let text = toml::to_string_pretty(fitted).map_err(|e| Error::data(&path, e.to_string()))?;
    write_text(&path, &text)?;
    if !a.no_plot {
        let bounds: Vec<(String, f64, f64)> = settings
            .params
            .iter()
            .zip(&keys)
            .map(|(p, k)| (k.clone(), p.bounds.lower(), p.bounds.upper()))
            .collect();
        let loss: Vec<f64> = f.history.iter().map(|r| r.eval.loss).collect();
        let values: Vec<Vec<f64>> = f.history.iter().map(|r| r.values.clone()).collect();
        neurodiff::plot::circuit_fit_figure(&a.out_dir.join("fit.png"), &loss, &bounds, &values)?;
    }
    Ok(())
}

/// `neurodiff circuit --backend`: the run on the tensor engine, recorded step by step.
struct OnTensors<'a> {
    circuit: &'a Circuit,
    steps: u64,
    lfp_every: u64,
    rec: &'a mut Recorder,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl BackendTask for OnTensors<'_> {
    type Output = Result<()>;
    fn run<B: burn::prelude::Backend>(self, _kind: BackendKind, device: B::Device) -> Result<()> {
        use neurodiff::spiking::tensor::{Snapshot, TensorEngine};
        let mut e = TensorEngine::<B>::new(std::slice::from_ref(self.circuit), false, &device)?;
        for s in 0..self.steps {
            e.step()?;
            let sample = (s + 1).is_multiple_of(self.lfp_every.max(1));
            self.rec.observe(&Snapshot::take(&e, 0, sample));
            if (s + 1) % 1000 == 0 {
                (self.progress)(s + 1, self.steps);
            }
        }
        e.check()?;
        (self.progress)(self.steps, self.steps);
        Ok(())
    }
}
