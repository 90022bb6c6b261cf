//! `neurodiff cell --fit`: fits channel, calcium pool and passive parameters of a cell, or of
//! the cells and synapses of a network file (`[[cells]]`), to recorded voltage traces and
//! voltage-clamp currents with the adjoint gradient (`neurodiff::cell::adjoint`,
//! `neurodiff::cell::network::value_and_grad`), restarts run as the batch (one cell or network
//! each when a passive property is fitted).
//!
//! Everything given is checked before anything is written: a bad parameter, bound, target
//! file, time step or length is an error naming it, and no output file is created.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use neurodiff::cell::adjoint::{check_levels, default_levels, value_and_grad, TraceLoss};
use neurodiff::cell::config::Resolved;
use neurodiff::cell::fit::{
    gather, gather_net, parse_fit_param, parse_net_fit_param, set_net_values, set_values,
    trace_loss, FitParam, LossKind, Owner,
};
use neurodiff::cell::net_config::{is_network, NetConfig, NetResolved};
use neurodiff::cell::network::{self, NetProbe, Network};
use neurodiff::cell::{simulate, Cell, CellConfig, Probe, Protocol, Recording};
use neurodiff::io::{check_output_path, read_npy, write_text};
use neurodiff::plot::CellTraces;
use neurodiff::{Error, Result};

/// Flags of `neurodiff cell --fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// Fit channel parameters to `--target` instead of only simulating (writes FILE.json,
    /// FILE.png and FILE.state.json for `--out FILE.json`, default out/cell_fit.json).
    #[arg(long)]
    pub fit: bool,
    /// Recorded traces: `[samples]`, `[samples, records]` or `[samples, records, 1]` (what
    /// `neurodiff cell` writes), sample k at t = k dt, one column per voltage (mV) or
    /// voltage-clamp current (`vclamp.i`, nA) `[[record]]` of the config, in the config's order
    /// (gate records are not compared), `duration/dt + 1` samples.
    #[arg(long, value_name = "FILE.npy", requires = "fit")]
    pub target: Option<PathBuf>,
    /// The target's time step, ms; must equal the config's `dt`.
    #[arg(long, value_name = "MS", requires = "fit")]
    pub target_dt: Option<f64>,
    /// A fitted parameter with bounds in its unit: `CHANNEL.PARAM=LO..HI` (every placement of
    /// the channel, one value) or `CHANNEL.PARAM@GROUP=LO..HI` (the placements on GROUP),
    /// e.g. `hh_na.gbar@soma=50..200` (mS/cm²); the calcium pool by its name,
    /// `ca_dynamics_e2.decay=20..200` (ms); passive properties as `passive.cm` (µF/cm²),
    /// `passive.ra` (Ω·cm) and `passive.radius` (µm), e.g. `passive.ra@basal=50..300` (then
    /// each restart runs as its own cell). In a network file: the same on every cell,
    /// `NAME:SPEC` on the cells of entry NAME only (`inh:hh.gkbar=10..80`), and
    /// `synapses[J].PARAM=LO..HI` on the synapses of `[[synapses]]` entry J
    /// (`synapses[0].gs=0.001..0.2`, µS). Repeat for more.
    #[arg(long = "fit-param", value_name = "SPEC", requires = "fit")]
    pub fit_param: Vec<String>,
    /// The loss: mse (mV²), stats (normalised MAE of the mean and s.d. of V in `--windows`
    /// equal windows, mV) or sdtw (debiased soft-DTW divergence, `--gamma`, `--lambda`).
    #[arg(long, default_value = "mse", value_parser = ["mse", "stats", "sdtw"])]
    pub loss: String,
    /// Windows of the stats loss.
    #[arg(long, default_value_t = 10)]
    pub windows: usize,
    /// Soft-DTW smoothing, mV.
    #[arg(long, default_value_t = 1.0)]
    pub gamma: f64,
    /// Soft-DTW warping penalty, mV per sample of lag.
    #[arg(long, default_value_t = 0.1)]
    pub lambda: f64,
    /// The optimiser, on the inverse-sigmoid (unbounded) variables.
    #[arg(long, default_value = "adam", value_parser = ["adam", "polyak"])]
    pub optimizer: String,
    /// Adam's learning rate, or Polyak's step γ (unbounded variables, dimensionless).
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// Iterations (gradient evaluations), in total when resuming.
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// Parallel restarts, run as the batch: restart 0 starts from the config's values, the
    /// others uniformly in the middle 80 % of the bounds (`--seed`).
    #[arg(long, default_value_t = 4)]
    pub restarts: usize,
    /// Seed of the restarts' starts (with `--lyapunov`: of the random initial tangent).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint levels of the gradient, e.g. 100,100 (default one level of ⌈√steps⌉).
    #[arg(long, value_delimiter = ',', value_name = "C1,C2,..")]
    pub checkpoint: Vec<usize>,
    /// Continue from a state file (FILE.state.json of an earlier run with the same settings).
    #[arg(long, value_name = "FILE.state.json", requires = "fit")]
    pub resume: Option<PathBuf>,
}

/// What must match for a resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    config: String,
    target: String,
    target_dt_ms: f64,
    params: Vec<(String, f64, f64)>,
    loss: String,
    windows: usize,
    gamma: f64,
    lambda: f64,
    optimizer: String,
    lr: f64,
    restarts: usize,
    seed: u64,
    checkpoint: Vec<usize>,
}

/// The resumable state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FitState {
    settings: Settings,
    iteration: usize,
    /// Unbounded variables `[restart][param]`.
    z: Vec<f64>,
    adam_m: Vec<f64>,
    adam_v: Vec<f64>,
    adam_t: u64,
    /// Starting values `[restart][param]`.
    start: Vec<f64>,
    /// Losses per iteration and restart.
    history: Vec<Vec<f64>>,
    /// Best loss and parameters per restart.
    best_loss: Vec<f64>,
    best_theta: Vec<f64>,
    wall_time_s: f64,
}

#[derive(Serialize)]
struct RestartOut {
    start: serde_json::Map<String, serde_json::Value>,
    fitted: serde_json::Map<String, serde_json::Value>,
    best_loss: f64,
    final_loss: f64,
}

#[derive(Serialize)]
struct FitOut<'a> {
    settings: &'a Settings,
    units: &'static str,
    iterations: usize,
    best: RestartOut,
    best_restart: usize,
    restarts: Vec<RestartOut>,
    loss_history: &'a [Vec<f64>],
    wall_time_s: f64,
}

fn named(params: &[FitParam], v: &[f64]) -> serde_json::Map<String, serde_json::Value> {
    params
        .iter()
        .zip(v)
        .map(|(p, &x)| (p.label.clone(), serde_json::json!(x)))
        .collect()
}

/// Runs `neurodiff cell --fit`.
pub fn run(
    config: &Path,
    out: Option<&Path>,
    quiet: bool,
    no_figure: bool,
    a: &FitArgs,
) -> Result<()> {
    let out = out.map_or_else(|| PathBuf::from("out/cell_fit.json"), Path::to_path_buf);
    check_output_path(&out, Some("json"))?;
    let png = out.with_extension("png");
    let state_path = out.with_extension("state.json");
    let text = std::fs::read_to_string(config).map_err(|e| Error::io(config, e))?;
    let Setup {
        model,
        protocol,
        duration,
        labels,
        // The compared records: voltages and voltage-clamp currents (not gates).
        compared: probes,
        voltage,
        params,
    } = if is_network(&text) {
        net_setup(config, a)?
    } else {
        cell_setup(config, a)?
    };
    let loss_kind = match a.loss.as_str() {
        "mse" => LossKind::Mse,
        "stats" => LossKind::Stats { windows: a.windows },
        _ => LossKind::Sdtw {
            gamma: a.gamma,
            lambda: a.lambda,
        },
    };
    if a.restarts == 0 {
        return Err(Error::setting("restarts", "must be at least 1"));
    }
    if a.iterations == 0 {
        return Err(Error::setting("iterations", "must be at least 1"));
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        return Err(Error::setting(
            "lr",
            format!("must be positive, got {}", a.lr),
        ));
    }
    let levels = if a.checkpoint.is_empty() {
        default_levels(protocol.steps)
    } else {
        a.checkpoint.clone()
    };
    check_levels(&levels)?;

    // The target.
    let target_path = a
        .target
        .as_deref()
        .ok_or_else(|| Error::setting("target", "--fit needs --target FILE.npy"))?;
    let target_dt = a.target_dt.ok_or_else(|| {
        Error::setting(
            "target-dt",
            "--fit needs the target's time step, --target-dt MS",
        )
    })?;
    if !(target_dt.is_finite() && target_dt > 0.0) {
        return Err(Error::setting(
            "target-dt",
            format!("must be a positive time step in ms, got {target_dt}"),
        ));
    }
    if (target_dt - protocol.dt).abs() > 1e-9 * protocol.dt {
        return Err(Error::setting(
            "target-dt",
            format!(
                "the target's time step {target_dt} ms differs from the config's dt {} ms \
                 (resample the target or change dt)",
                protocol.dt
            ),
        ));
    }
    let arr = read_npy(target_path)?;
    let samples = protocol.steps + 1;
    let cols = match arr.shape.as_slice() {
        [_] => 1,
        [_, c] | [_, c, 1] => *c,
        s => {
            return Err(Error::data(
                target_path,
                format!(
                    "shape {s:?}: expected [samples], [samples, records] or [samples, records, 1]"
                ),
            ))
        }
    };
    if arr.shape[0] != samples {
        return Err(Error::data(
            target_path,
            format!(
                "{} samples, but duration {} ms at dt {} ms needs {samples} (sample k at t = k dt, \
                 k = 0 the initial state)",
                arr.shape[0], duration, protocol.dt
            ),
        ));
    }
    if cols != probes.len() {
        return Err(Error::data(
            target_path,
            format!(
                "{cols} traces, but the config records {} voltages and clamp currents ({})",
                probes.len(),
                probes
                    .iter()
                    .map(|&j| labels[j].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let Some(i) = arr.data.iter().position(|x| !x.is_finite()) {
        return Err(Error::data(
            target_path,
            format!("sample {} of trace {} is not finite", i / cols, i % cols),
        ));
    }
    let target: Vec<Vec<f64>> = (0..cols)
        .map(|c| (0..samples).map(|k| arr.data[k * cols + c]).collect())
        .collect();

    let settings = Settings {
        config: config.display().to_string(),
        target: target_path.display().to_string(),
        target_dt_ms: target_dt,
        params: params
            .iter()
            .map(|p| (p.label.clone(), p.lower, p.upper))
            .collect(),
        loss: a.loss.clone(),
        windows: a.windows,
        gamma: a.gamma,
        lambda: a.lambda,
        optimizer: a.optimizer.clone(),
        lr: a.lr,
        restarts: a.restarts,
        seed: a.seed,
        checkpoint: levels.clone(),
    };
    let (r, np) = (a.restarts, params.len());
    let mut state = match &a.resume {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let st: FitState = serde_json::from_str(&text)
                .map_err(|e| Error::data(path, format!("not a fit state: {e}")))?;
            if st.settings != settings {
                return Err(Error::data(
                    path,
                    format!(
                        "written for other settings: {} (now {})",
                        serde_json::to_string(&st.settings).unwrap_or_default(),
                        serde_json::to_string(&settings).unwrap_or_default()
                    ),
                ));
            }
            st
        }
        None => {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(a.seed);
            let mut start = Vec::with_capacity(r * np);
            for b in 0..r {
                for p in &params {
                    start.push(if b == 0 {
                        model.value(p)
                    } else {
                        p.lower + (p.upper - p.lower) * rng.random_range(0.1..0.9)
                    });
                }
            }
            let z = start
                .iter()
                .enumerate()
                .map(|(i, &x)| params[i % np].bounds().to_unbounded_f64(x))
                .collect();
            FitState {
                settings: settings.clone(),
                iteration: 0,
                z,
                adam_m: vec![0.0; r * np],
                adam_v: vec![0.0; r * np],
                adam_t: 0,
                start,
                history: Vec::new(),
                best_loss: vec![f64::INFINITY; r],
                best_theta: vec![f64::NAN; r * np],
                wall_time_s: 0.0,
            }
        }
    };

    // Restarts as the batch of one cell or network; with a passive property fitted (one
    // value per cell), one each.
    let mut runs = model.restarts(r, params.iter().any(|p| p.owner == Owner::Passive));
    // Per restart, the loss and its gradient with respect to the fitted parameters.
    let evaluate = |runs: &mut [Model], theta: &[f64]| -> Result<(Vec<f64>, Vec<f64>)> {
        let (mut loss, mut gt) = (Vec::with_capacity(r), Vec::with_capacity(r * np));
        let per_run = theta.len() / runs.len();
        for (m, th) in runs.iter_mut().zip(theta.chunks(per_run)) {
            m.set(&params, th)?;
            let (l, g) = m.value_and_grad(&protocol, &levels, &params, |rec| {
                trace_loss(loss_kind, rec, &target, &probes)
            })?;
            loss.extend(l);
            gt.extend(g);
        }
        Ok((loss, gt))
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let t0 = Instant::now();
    let wall0 = state.wall_time_s;
    while state.iteration < a.iterations {
        let theta: Vec<f64> = state
            .z
            .iter()
            .enumerate()
            .map(|(i, &z)| params[i % np].bounds().to_bounded_f64(z))
            .collect();
        let (loss, gt) = evaluate(&mut runs, &theta)?;
        // dθ/dz = (θ − l)(u − θ)/(u − l).
        let gz: Vec<f64> = gt
            .iter()
            .zip(&theta)
            .enumerate()
            .map(|(i, (&g, &x))| {
                let p = &params[i % np];
                g * (x - p.lower) * (p.upper - x) / (p.upper - p.lower)
            })
            .collect();
        for b in 0..r {
            if loss[b] < state.best_loss[b] {
                state.best_loss[b] = loss[b];
                state.best_theta[b * np..(b + 1) * np]
                    .copy_from_slice(&theta[b * np..(b + 1) * np]);
            }
        }
        state.history.push(loss.clone());
        optimizer_step(a, &mut state, &gz, r, np)?;
        state.iteration += 1;
        state.wall_time_s = wall0 + t0.elapsed().as_secs_f64();
        let text =
            serde_json::to_string(&state).map_err(|e| Error::data(&state_path, e.to_string()))?;
        write_text(&state_path, &text)?;
        let every = (a.iterations / 20).max(1);
        if !quiet && (state.iteration % every == 0 || state.iteration == a.iterations) {
            let best = loss.iter().cloned().fold(f64::INFINITY, f64::min);
            eprintln!(
                "iteration {}/{}: {} loss best {best:.6} (restarts {})",
                state.iteration,
                a.iterations,
                a.loss,
                loss.iter()
                    .map(|l| format!("{l:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    let best_restart = (0..r)
        .min_by(|&x, &y| state.best_loss[x].total_cmp(&state.best_loss[y]))
        .unwrap_or(0);
    let restart_out = |b: usize| RestartOut {
        start: named(&params, &state.start[b * np..(b + 1) * np]),
        fitted: named(&params, &state.best_theta[b * np..(b + 1) * np]),
        best_loss: state.best_loss[b],
        final_loss: state.history.last().map_or(f64::NAN, |h| h[b]),
    };
    let fit_out = FitOut {
        settings: &settings,
        units: "time ms, voltage mV, clamp current nA, conductances mS/cm², reversal potentials \
                mV, pool decay ms, depth µm, min_cai mM, passive.cm µF/cm², passive.ra Ω·cm, \
                passive.radius µm; loss summed over the compared records: mse mV² (nA² for a \
                clamp current), stats and sdtw mV (nA)",
        iterations: state.iteration,
        best: restart_out(best_restart),
        best_restart,
        restarts: (0..r).map(restart_out).collect(),
        loss_history: &state.history,
        wall_time_s: state.wall_time_s,
    };
    let text =
        serde_json::to_string_pretty(&fit_out).map_err(|e| Error::data(&out, e.to_string()))?;
    write_text(&out, &text)?;
    if !no_figure {
        let mut best = model.clone();
        best.set(
            &params,
            &state.best_theta[best_restart * np..(best_restart + 1) * np],
        )?;
        let rec = best.simulate(&protocol)?;
        // The voltages, or, when only clamp currents are compared, those.
        let is_v = |p: usize| voltage[p];
        let what = if probes.iter().any(|&p| is_v(p)) {
            CellTraces::Voltage
        } else {
            CellTraces::ClampCurrent
        };
        let mut traces = Vec::new();
        for (c, &p) in probes.iter().enumerate() {
            if is_v(p) == (what == CellTraces::Voltage) {
                traces.push((format!("data {}", labels[p]), target[c].clone()));
                traces.push((format!("fit {}", labels[p]), rec.trace(p, 0)));
            }
        }
        neurodiff::plot::cell_figure(&png, &traces, protocol.dt, what)?;
    }
    if !quiet {
        println!(
            "best restart {best_restart}: loss {:.6} at {}",
            state.best_loss[best_restart],
            params
                .iter()
                .enumerate()
                .map(|(j, p)| format!(
                    "{} = {:.6}",
                    p.label,
                    state.best_theta[best_restart * np + j]
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "wrote {}, {}{}",
            out.display(),
            state_path.display(),
            if no_figure {
                String::new()
            } else {
                format!(" and {}", png.display())
            }
        );
    }
    Ok(())
}

/// What a fit is of, resolved from the configuration.
struct Setup {
    model: Model,
    protocol: Protocol,
    /// Simulated time, ms.
    duration: f64,
    /// One label per probe.
    labels: Vec<String>,
    /// The probes the target holds: voltages and voltage-clamp currents, in order.
    compared: Vec<usize>,
    /// Per probe, whether it is a voltage.
    voltage: Vec<bool>,
    params: Vec<FitParam>,
}

/// A cell, or a network with what it records.
#[derive(Clone)]
enum Model {
    Cell(Cell),
    Net(Network, Vec<NetProbe>),
}

impl Model {
    /// `r` restarts: one copy with batch `r`, or (`one_each`) `r` copies of batch 1.
    fn restarts(&self, r: usize, one_each: bool) -> Vec<Model> {
        if one_each {
            return vec![self.clone(); r];
        }
        let batched = |c: &mut Cell| {
            c.batch = r;
            for pl in &mut c.channels {
                pl.params = pl.params.repeat(r);
            }
            for pool in &mut c.pools {
                pool.params = pool.params.repeat(r);
            }
        };
        let mut m = self.clone();
        match &mut m {
            Model::Cell(c) => batched(c),
            Model::Net(n, _) => {
                n.cells.iter_mut().for_each(batched);
                batched(&mut n.merged);
                for s in &mut n.synapses {
                    s.params = s.params.repeat(r);
                }
                for d in &mut n.drives {
                    d.weight = d.weight.repeat(r);
                }
            }
        }
        vec![m]
    }

    /// A fitted parameter's value in the configuration.
    fn value(&self, p: &FitParam) -> f64 {
        match self {
            Model::Cell(c) => p.value(c, 0),
            Model::Net(n, _) => p.net_value(n, 0),
        }
    }

    /// Sets the fitted parameters, `[batch][param]`.
    fn set(&mut self, params: &[FitParam], theta: &[f64]) -> Result<()> {
        match self {
            Model::Cell(c) => set_values(c, params, theta),
            Model::Net(n, _) => set_net_values(n, params, theta),
        }
    }

    /// The loss per batch element and its gradient with respect to `params`,
    /// `[batch][param]`, by the adjoint with checkpoint `levels`.
    fn value_and_grad(
        &self,
        protocol: &Protocol,
        levels: &[usize],
        params: &[FitParam],
        loss: impl FnOnce(&Recording) -> Result<TraceLoss>,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        Ok(match self {
            Model::Cell(c) => {
                let g = value_and_grad(c, protocol, levels, loss)?;
                let gt = gather(params, &g, c.batch);
                (g.loss, gt)
            }
            Model::Net(n, probes) => {
                let g = network::value_and_grad(n, protocol, probes, levels, loss)?;
                let gt = gather_net(params, &g, n.batch());
                (g.loss, gt)
            }
        })
    }

    /// A run of the model in `f64`.
    fn simulate(&self, protocol: &Protocol) -> Result<Recording> {
        match self {
            Model::Cell(c) => Ok(simulate::<f64>(c, protocol)?),
            Model::Net(n, probes) => network::simulate::<f64>(n, protocol, probes),
        }
    }
}

/// Refuses a configuration with lists of values (a batch).
fn single(batch: usize) -> Result<()> {
    if batch != 1 {
        return Err(Error::setting(
            "fit",
            format!(
                "the config describes a batch of {batch} (lists of values); a fit runs its \
                 restarts as the batch, so give one value per setting"
            ),
        ));
    }
    Ok(())
}

/// The fitted parameters from `--fit-param`, each resolved by `parse`; none, or one fitted
/// twice, is an error.
fn fit_params(a: &FitArgs, parse: impl Fn(&str) -> Result<FitParam>) -> Result<Vec<FitParam>> {
    if a.fit_param.is_empty() {
        return Err(Error::setting(
            "fit-param",
            "give at least one, e.g. --fit-param hh_na.gbar=50..200",
        ));
    }
    let params: Vec<FitParam> = a
        .fit_param
        .iter()
        .map(|s| parse(s))
        .collect::<Result<_>>()?;
    for (i, p) in params.iter().enumerate() {
        if params[..i].iter().any(|q| {
            q.owner == p.owner
                && q.param == p.param
                && q.placements.iter().any(|c| p.placements.contains(c))
        }) {
            return Err(Error::setting(
                format!("fit-param `{}`", p.label),
                "fitted twice (it shares a placement with an earlier --fit-param)",
            ));
        }
    }
    Ok(params)
}

/// A cell file's fit.
fn cell_setup(config: &Path, a: &FitArgs) -> Result<Setup> {
    let (
        cfg,
        Resolved {
            cell,
            protocol,
            labels,
        },
    ) = CellConfig::load_resolved(config)?;
    single(cell.batch)?;
    let params = fit_params(a, |s| parse_fit_param(s, &cell))?;
    let compared = (0..protocol.probes.len())
        .filter(|&j| !matches!(protocol.probes[j], Probe::Gate { .. }))
        .collect();
    let voltage = protocol
        .probes
        .iter()
        .map(|p| matches!(p, Probe::V { .. }))
        .collect();
    Ok(Setup {
        model: Model::Cell(cell),
        protocol,
        duration: cfg.duration,
        labels,
        compared,
        voltage,
        params,
    })
}

/// A network file's fit: the cells' parameters (`NAME:` for one entry's cells) and the
/// synapse entries' (`synapses[J].PARAM`).
fn net_setup(config: &Path, a: &FitArgs) -> Result<Setup> {
    let (
        cfg,
        NetResolved {
            network,
            protocol,
            probes,
            labels,
            cell_names,
            synapse_entries,
            ..
        },
    ) = NetConfig::load_resolved(config)?;
    single(network.batch())?;
    let params = fit_params(a, |s| {
        parse_net_fit_param(s, &network, &cell_names, &synapse_entries)
    })?;
    let is_v = |p: &NetProbe| matches!(p, NetProbe::V { .. } | NetProbe::Merged(Probe::V { .. }));
    let compared = (0..probes.len())
        .filter(|&j| {
            is_v(&probes[j]) || matches!(probes[j], NetProbe::Merged(Probe::VClampCurrent { .. }))
        })
        .collect();
    let voltage = probes.iter().map(is_v).collect();
    Ok(Setup {
        model: Model::Net(network, probes),
        protocol,
        duration: cfg.duration,
        labels,
        compared,
        voltage,
        params,
    })
}

/// One optimiser step on the unbounded variables (restarts as rows).
#[cfg(feature = "ndarray")]
fn optimizer_step(a: &FitArgs, st: &mut FitState, gz: &[f64], r: usize, np: usize) -> Result<()> {
    use burn::prelude::{Tensor, TensorData};
    type B = burn::backend::NdArray<f64>;
    let device = Default::default();
    let t = |v: &[f64]| -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(v.to_vec(), [r, np]),
            neurodiff::float_opts::<B>(&device),
        )
    };
    let host = |x: Tensor<B, 2>| -> Vec<f64> {
        x.into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .expect("f64")
    };
    let optim = |e: neurodiff_optim::Error| Error::setting("optimizer", e.to_string());
    let z = [t(&st.z)];
    let g = [t(gz)];
    let new = if a.optimizer == "polyak" {
        let p = neurodiff_optim::Polyak::new(a.lr, neurodiff_optim::Polyak::spread_betas(r))
            .map_err(optim)?;
        p.step(&z, &g).map_err(optim)?
    } else {
        let adam = neurodiff_optim::Adam::new(neurodiff_optim::AdamConfig {
            lr: a.lr,
            ..Default::default()
        })
        .map_err(optim)?;
        let mut s = neurodiff_optim::AdamState {
            m: vec![t(&st.adam_m)],
            v: vec![t(&st.adam_v)],
            t: st.adam_t,
        };
        let out = adam.step(&z, &g, &mut s).map_err(optim)?;
        st.adam_m = host(s.m.remove(0));
        st.adam_v = host(s.v.remove(0));
        st.adam_t = s.t;
        out
    };
    st.z = host(new.into_iter().next().expect("one tensor"));
    Ok(())
}

#[cfg(not(feature = "ndarray"))]
fn optimizer_step(_: &FitArgs, _: &mut FitState, _: &[f64], _: usize, _: usize) -> Result<()> {
    Err(Error::setting(
        "fit",
        "the optimisers run on the ndarray backend: build with the `ndarray` feature",
    ))
}
