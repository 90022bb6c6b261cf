//! `neurodiff bench`: the benchmark cases of `shared/anchors/BENCHMARKS.md`, printed as JSON
//! lines with the same fields as the reference script `vbjax_mpr.py` (`tool`, `device`, `case`,
//! `nodes`, `batch`, `steps`, `seconds`, and the case's figures), plus `backend` and `engine`.
//! `mpr_fc_gradient` runs each step count in a fresh child process, so `peak_rss_mb` is per case.
//!
//! Cases:
//! - `mpr_forward`: MPR on the bundled HCP 80-region connectome, batch sweep.
//! - `mpr_fc_gradient`: the FC-loss gradient by the fused adjoint and by Burn's autodiff.
//! - `sparse_coupling`: MPR with linear coupling on random connectomes (80, 1,000 and 20,000
//!   nodes at 1% and 5% density), dense against sparse coupling, each configuration in a fresh
//!   process so that `peak_rss_mb` is its own peak memory.
//! - `delays`: MPR on `hcp80` with conduction delays (3 and 10 mm/ms) against none.
//! - `edge_list`: a 100,000-region connectome at 0.1 % density loaded from an edge list and run
//!   sparse in a fresh process: load time and memory (the dense matrix would take 80 GB).
//!
//! In the last two, `us_per_step` excludes set-up: it is `(t(steps) − t(1 step)) / (steps − 1)`
//! with medians over the repetitions, and `setup_seconds` is `t(1 step)` (building the network
//! and its weights, the connectome being given).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use neurodiff::backend::{with_backend, BackendKind, BackendTask};
use neurodiff::connectome::Connectome;
use neurodiff::coupling::CouplingKind;
use neurodiff::fit::LossKind;
use neurodiff::fused::GradOptions;
use neurodiff::integrate::Integrator;
use neurodiff::monitor::Monitor;
use neurodiff::network::{param_specs, NetworkConfig};
use neurodiff::noise::{Noise, NoiseMode, NoiseSource};
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::problem::{simulate, value_and_grad, Engine, Gradient, Loss, Problem};
use neurodiff::sim::{default_chunk, Run};
use neurodiff::sparse::{density as density_of, SparseMode};
use neurodiff::{Error, Result};

/// Prints one line of results to stdout. A closed stdout (`neurodiff bench | head`) ends the
/// run quietly (exit status 0) instead of panicking in `println!`.
macro_rules! emit {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Case to run: mpr_forward, mpr_fc_gradient, sparse_coupling, delays, edge_list,
    /// circuit_forward (spiking STN–GPe–GPi), circuit_grad (its beta-power gradient),
    /// circuit_tensor (the circuit on Burn tensors, --backend), circuit_tensor_grad (its surrogate
    /// gradient on tensors, checkpointed), stn_only (10,000 STN cells), cell_hh
    /// (cell forward), cell_hh_grad (cell gradients and checkpoint memory), or all.
    /// [default: mpr_forward and mpr_fc_gradient]
    #[arg(long)]
    case: Option<String>,
    /// Backend: ndarray, flex, wgpu, cuda. [default: ndarray]
    #[arg(long, default_value = "ndarray")]
    backend: String,
    /// Engine for forward cases: fused, tensor or both. [default: both on CPU, tensor on GPU]
    #[arg(long)]
    engine: Option<String>,
    /// Batch sizes of mpr_forward [default: 1 16 256 on CPU; 1 16 256 4096 16384 on GPU], of
    /// delays [default: 1 256] and of cell_hh [default: 1 1000 for the point cell, 1 100 for the
    /// 100-compartment cell].
    #[arg(long, num_args = 1..)]
    batch: Vec<usize>,
    /// Steps: of mpr_forward [default: 10000]; of delays [default: 2000, 500 from batch 64]; of
    /// sparse_coupling the most per configuration, fewer for large networks (4e8 / nodes², at
    /// least 10) [default: 2000].
    #[arg(long)]
    steps: Option<usize>,
    /// Node counts of sparse_coupling [default: 80 1000 20000]; of cell_hh, the compartments of
    /// the cells to run: 1 (the point cell) and/or 100 [default: both].
    #[arg(long, num_args = 1..)]
    nodes: Vec<usize>,
    /// Densities (fraction of nonzero weights) of sparse_coupling. [default: 0.01 0.05]
    #[arg(long, num_args = 1..)]
    density: Vec<f64>,
    /// Internal: run one configuration of sparse_coupling (`ENGINE,MODE,NODES,DENSITY`) in this
    /// process (how the case measures each configuration's peak memory).
    #[arg(long, hide = true)]
    sparse_child: Option<String>,
    /// Internal: load and run one edge list file (edge_list case) in this process.
    #[arg(long, hide = true)]
    edges_child: Option<PathBuf>,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Worker threads of the fused engine (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Steps of mpr_fc_gradient (each in a fresh process, so that peak memory is per case).
    #[arg(long, num_args = 1.., default_values_t = [10_000, 50_000, 200_000])]
    grad_steps: Vec<usize>,
    /// Gradient engines of mpr_fc_gradient: fused-adjoint, burn-autodiff or both.
    #[arg(long, default_value = "both")]
    grad_engine: String,
    /// The longest mpr_fc_gradient run given to burn-autodiff (slow: ~0.25 ms per step).
    #[arg(long, default_value_t = 50_000)]
    burn_max_steps: usize,
    /// Steps per checkpointed chunk of mpr_fc_gradient.
    #[arg(long, default_value_t = 1000)]
    grad_chunk: usize,
    /// Internal: run one mpr_fc_gradient case (`ENGINE:STEPS`) in this process.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: run one circuit_tensor_grad case (`METHOD:STEPS`) in this process.
    #[arg(long, hide = true)]
    circuit_grad_child: Option<String>,
    /// circuit_forward also runs the 10,000–20,000–15,000 circuit (~104 M synapses, ~1 GB).
    #[arg(long)]
    circuit_large: bool,
    /// cell_hh and cell_hh_grad place NEURON's `hh` as three channels (`hh_na`, `hh_k`,
    /// `leak`) instead of the one channel `hh` (as Jaxley's `HH` holds it).
    #[arg(long)]
    hh_apart: bool,
    /// circuit_forward also runs a 100,000-neuron circuit (22,222–44,444–33,334; ~500 M
    /// synapses, ~4 GB): that it fits, its step time and peak memory.
    #[arg(long)]
    circuit_huge: bool,
    /// circuit_forward with AdEx STN cells (GPe's parameters, drive and noise): the network of
    /// the Brian2 reference figures (`benches/brian2/circuit.py --stn adex`).
    #[arg(long)]
    circuit_adex: bool,
    /// circuit_forward with the weights scaled by the fan-in ([`Circuit::keep_fan_in`] on the
    /// 1K–2K–1.5K circuit the default weights were tuned at), so every size has that size's
    /// mean synaptic input per neuron.
    #[arg(long)]
    keep_fan_in: bool,
}

/// Peak resident memory of this process so far, in MB (Linux `VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse::<f64>().ok()))
        })
        .flatten()
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite timings"));
    v[v.len() / 2]
}

/// The mpr_forward run: stochastic Heun, sigma 0.01 on both variables, only the final state.
fn forward_run(batch: usize, steps: usize, source: NoiseSource) -> Run {
    Run {
        dt: 0.01,
        steps,
        integrator: Integrator::Heun,
        noise: Noise {
            sigma: vec![0.01, 0.01],
            mode: NoiseMode::Independent,
            seed: 1,
            source,
        },
        chunk: default_chunk(batch, 80, 2),
        monitor: Monitor {
            every: steps,
            mean: false,
            transient: 0,
            vars: vec![0, 1],
            bold: None,
        },
    }
}

/// MPR on `conn` from the benchmark initial state, as a façade [`Problem`].
fn mpr_problem(
    conn: Connectome,
    net: &NetworkConfig,
    table: ParamTable,
    run: Run,
    threads: usize,
) -> Result<Problem> {
    let x0 = bench_x0(conn.n);
    let mut p = Problem::new(conn, net.clone(), table, run)?.with_initial_state(1, x0)?;
    p.threads = threads;
    Ok(p)
}

/// Wall time of a forward run of `p` with `run` (the final state is read back to the host inside
/// the timed region, which synchronises GPU backends).
fn time_run(p: &mut Problem, run: Run, kind: BackendKind, engine: Engine) -> Result<f64> {
    p.run = run;
    let t0 = Instant::now();
    simulate(p, kind, engine, &mut |_| Ok(()), &mut |_| {})?;
    Ok(t0.elapsed().as_secs_f64())
}

/// The mpr_forward case.
fn forward_case(a: &BenchArgs, kind: BackendKind, engines: &[Engine]) -> Result<()> {
    let steps = a.steps.unwrap_or(10_000);
    let conn = Connectome::load("hcp80", None)?;
    let nodes = conn.n;
    let batches = if a.batch.is_empty() {
        if kind.is_cpu() {
            vec![1, 16, 256]
        } else {
            vec![1, 16, 256, 4096, 16384]
        }
    } else {
        a.batch.clone()
    };
    let device_name = if kind.is_cpu() { "cpu" } else { "gpu" };
    for &b in &batches {
        let given = vec![(
            "G".to_string(),
            if b == 1 {
                ParamValue::Scalar(0.1)
            } else {
                ParamValue::parse("G", &format!("linspace(0.1,1.0,{b})"))?
            },
        )];
        let table = ParamTable::new(
            &param_specs(neurodiff::models::find("mpr")?, CouplingKind::Linear),
            &given,
            nodes,
            None,
        )?;
        let run = forward_run(b, steps, kind.default_noise_source());
        let net = NetworkConfig::new("mpr");
        let mut p = mpr_problem(conn.clone(), &net, table, run.clone(), a.threads)?;
        for &engine in engines {
            let mut times = Vec::new();
            // One untimed warm-up (kernel compilation on GPUs, page faults on CPUs).
            for rep in 0..=a.repeats {
                let warm = rep == 0;
                let mut r = run.clone();
                if warm {
                    r.steps = r.chunk.min(steps).max(1);
                    r.monitor.every = r.steps;
                }
                let t = time_run(&mut p, r, kind, engine)?;
                if !warm {
                    times.push(t);
                }
            }
            let t = median(times);
            emit!(
                "{}",
                json!({
                    "tool": "neurodiff",
                    "device": device_name,
                    "backend": kind.name(),
                    "engine": engine_name(engine),
                    "case": "mpr_forward",
                    "nodes": nodes,
                    "batch": b,
                    "steps": steps,
                    "seconds": t,
                    "us_per_step": t / steps as f64 * 1e6,
                    "node_steps_per_s": (b * nodes * steps) as f64 / t,
                    "peak_rss_mb": peak_rss_mb(),
                })
            );
        }
    }
    Ok(())
}

/// The steps, medians and memory of one timed configuration.
struct Timing {
    /// Median wall time of a whole run of `steps` steps, set-up included.
    seconds: f64,
    /// Median wall time of a one-step run (set-up and one step).
    setup_seconds: f64,
    /// `(seconds − setup_seconds) / (steps − 1)`, in µs.
    us_per_step: f64,
}

/// Times a forward run of MPR (stochastic Heun as in mpr_forward) on one engine: an untimed
/// warm-up, then `repeats` runs of one step and of `steps` steps.
#[allow(clippy::too_many_arguments)]
fn timed(
    conn: Connectome,
    net: &NetworkConfig,
    table: ParamTable,
    batch: usize,
    steps: usize,
    repeats: usize,
    threads: usize,
    kind: BackendKind,
    engine: Engine,
) -> Result<Timing> {
    let run_of = |steps: usize| {
        let mut r = forward_run(batch, steps, kind.default_noise_source());
        r.chunk = r.chunk.min(steps);
        r.monitor.every = steps;
        r
    };
    let mut p = mpr_problem(conn, net, table, run_of(1), threads)?;
    let mut once = |steps: usize| time_run(&mut p, run_of(steps), kind, engine);
    once(1)?;
    let steps = steps.max(2);
    let reps = repeats.max(1);
    let setup_seconds = median((0..reps).map(|_| once(1)).collect::<Result<_>>()?);
    let seconds = median((0..reps).map(|_| once(steps)).collect::<Result<_>>()?);
    Ok(Timing {
        seconds,
        setup_seconds,
        us_per_step: (seconds - setup_seconds).max(0.0) / (steps - 1) as f64 * 1e6,
    })
}

/// Parameters of MPR with linear coupling at `G` (one batch element, or a sweep of `batch`).
fn mpr_table(nodes: usize, batch: usize, g: f64) -> Result<ParamTable> {
    let given = vec![(
        "G".to_string(),
        if batch == 1 {
            ParamValue::Scalar(g)
        } else {
            ParamValue::parse("G", &format!("linspace({},{},{batch})", g / 4.0, g))?
        },
    )];
    ParamTable::new(
        &param_specs(neurodiff::models::find("mpr")?, CouplingKind::Linear),
        &given,
        nodes,
        None,
    )
}

/// A random connectome: every node receives `max(1, round(density · n))` connections from
/// distinct other nodes, with weights uniform in (0, 2/k] (in-strengths about 1).
pub fn random_connectome(n: usize, density: f64, seed: u64) -> Result<Connectome> {
    use rand::SeedableRng;
    let k = ((density * n as f64).round() as usize).clamp(1, n - 1);
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut w = vec![0.0; n * n];
    for i in 0..n {
        for (j, wij) in random_inputs(&mut rng, n, i, k) {
            w[i * n + j] = wij;
        }
    }
    Connectome::from_arrays(
        neurodiff::io::Array {
            shape: vec![n, n],
            data: w,
        },
        None,
        None,
        &format!("random({n}, {density})"),
    )
}

/// The `k` inputs of node `i` of a random connectome of `n` nodes: distinct sources other than
/// `i`, each with a weight uniform in (0, 2/k] (in-strengths about 1).
fn random_inputs(
    rng: &mut rand_xoshiro::Xoshiro256PlusPlus,
    n: usize,
    i: usize,
    k: usize,
) -> Vec<(usize, f64)> {
    use rand::Rng;
    rand::seq::index::sample(rng, n - 1, k)
        .into_iter()
        .map(|j| {
            let j = if j >= i { j + 1 } else { j };
            (j, (1.0 - rng.random::<f64>()) * 2.0 / k as f64)
        })
        .collect()
}

/// Resident memory of this process now (`VmRSS`) in MB.
fn rss_mb() -> f64 {
    proc_status_kb("VmRSS:").map_or(f64::NAN, |kb| kb / 1024.0)
}

fn proc_status_kb(key: &str) -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Memory the system can still give, in MB (`MemAvailable`).
fn available_mb() -> Option<f64> {
    neurodiff::io::available_memory_bytes().map(|b| b as f64 / (1024.0 * 1024.0))
}

/// A rough upper estimate of a sparse_coupling configuration's peak memory in MB: the dense
/// `f64` connectome, plus the dense weights as built (tensor engine: an `f64` copy and the
/// `f32` tensor; fused: `f32`), or about 40 bytes per edge when sparse.
fn estimate_mb(engine: Engine, sparse: bool, n: usize, nnz: usize) -> f64 {
    let n2 = (n * n) as f64;
    let extra = match (sparse, engine) {
        (true, _) => 40.0 * nnz as f64,
        (false, Engine::Fused) => 4.0 * n2,
        (false, _) => 12.0 * n2,
    };
    (8.0 * n2 + extra) / 1e6 + 50.0
}

/// Bytes of the coupling weights as an engine keeps them for a run without delays: dense, `Wᵀ`
/// in `f32` (`4 n²`); sparse, per edge a source and target index (`i64` tensors) and an `f32`
/// weight in the tensor engine (20 bytes), a `u32` source, a `u32` delay and an `f32` weight
/// plus a row offset per node in the fused engine.
fn coupling_bytes(engine: Engine, sparse: bool, n: usize, nnz: usize) -> f64 {
    match (sparse, engine) {
        (false, _) => 4.0 * (n * n) as f64,
        (true, Engine::Fused) => 12.0 * nnz as f64 + 8.0 * (n + 1) as f64,
        (true, _) => 20.0 * nnz as f64,
    }
}

const SPARSE_NODES: [usize; 3] = [80, 1000, 20_000];
const SPARSE_DENSITIES: [f64; 2] = [0.01, 0.05];

/// The sparse_coupling case: one child process per configuration.
fn sparse_case(args: &BenchArgs, engines: &[Engine]) -> Result<()> {
    let nodes = if args.nodes.is_empty() {
        SPARSE_NODES.to_vec()
    } else {
        args.nodes.clone()
    };
    let densities = if args.density.is_empty() {
        SPARSE_DENSITIES.to_vec()
    } else {
        args.density.clone()
    };
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    for &n in &nodes {
        for &density in &densities {
            let k = ((density * n as f64).round() as usize).clamp(1, n - 1);
            for &engine in engines {
                for sparse in [false, true] {
                    let mode = if sparse { "sparse" } else { "dense" };
                    let ename = engine_name(engine);
                    let need = estimate_mb(engine, sparse, n, n * k);
                    let avail = available_mb().unwrap_or(f64::INFINITY);
                    let base = json!({
                        "tool": "neurodiff", "device": "cpu", "backend": args.backend,
                        "engine": ename, "case": "sparse_coupling", "nodes": n, "batch": 1,
                        "density": (n * k) as f64 / (n * n) as f64, "mode": mode,
                    });
                    if need > 0.9 * avail {
                        let mut v = base;
                        v["skipped"] = json!(format!(
                            "needs about {:.1} GB, {:.1} GB available",
                            need / 1e3,
                            avail / 1e3
                        ));
                        emit!("{v}");
                        continue;
                    }
                    let mut cmd = Command::new(&exe);
                    cmd.args(["bench", "--case", "sparse_coupling", "--backend"])
                        .arg(&args.backend)
                        .args(["--repeats", &args.repeats.to_string()])
                        .args(["--threads", &args.threads.to_string()])
                        .arg("--sparse-child")
                        .arg(format!("{ename},{mode},{n},{density}"));
                    if let Some(s) = args.steps {
                        cmd.args(["--steps", &s.to_string()]);
                    }
                    let out = cmd.output().map_err(|e| Error::io(&exe, e))?;
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    if out.status.success() && !stdout.trim().is_empty() {
                        print!("{stdout}");
                    } else {
                        let mut v = base;
                        v["error"] = json!(format!(
                            "{} ({})",
                            out.status,
                            String::from_utf8_lossy(&out.stderr).trim()
                        ));
                        emit!("{v}");
                    }
                }
            }
        }
    }
    Ok(())
}

fn engine_name(e: Engine) -> &'static str {
    if e == Engine::Fused {
        "fused"
    } else {
        "tensor"
    }
}

/// One sparse_coupling configuration, in this process.
fn sparse_child(args: &BenchArgs, spec: &str) -> Result<()> {
    let bad = || {
        Error::setting(
            "child",
            format!("`{spec}` is not ENGINE,MODE,NODES,DENSITY"),
        )
    };
    let parts: Vec<&str> = spec.split(',').collect();
    let [engine, mode, n, density] = parts[..] else {
        return Err(bad());
    };
    let engine: Engine = engine.parse()?;
    let sparse = match mode {
        "sparse" => SparseMode::On,
        "dense" => SparseMode::Off,
        _ => return Err(bad()),
    };
    let n: usize = n.parse().map_err(|_| bad())?;
    let density: f64 = density.parse().map_err(|_| bad())?;
    let conn = random_connectome(n, density, 7)?;
    let nnz = conn.nnz();
    let conn_rss = rss_mb();
    let steps = args
        .steps
        .unwrap_or(2000)
        .min((4e8 / (n * n) as f64) as usize)
        .max(10);
    let repeats = if n >= 10_000 { 1 } else { args.repeats };
    let net = NetworkConfig {
        sparse,
        ..NetworkConfig::new("mpr")
    };
    let table = mpr_table(n, 1, 0.5)?;
    let kind: BackendKind = args.backend.parse()?;
    let t = timed(
        conn,
        &net,
        table,
        1,
        steps,
        repeats,
        args.threads,
        kind,
        engine,
    )?;
    emit!(
        "{}",
        json!({
            "tool": "neurodiff",
            "device": "cpu",
            "backend": kind.name(),
            "engine": engine_name(engine),
            "case": "sparse_coupling",
            "nodes": n,
            "batch": 1,
            "density": density_of(n, nnz),
            "mode": mode,
            "steps": steps,
            "seconds": t.seconds,
            "setup_seconds": t.setup_seconds,
            "us_per_step": t.us_per_step,
            "node_steps_per_s": n as f64 / (t.us_per_step * 1e-6),
            "coupling_mb": coupling_bytes(engine, sparse == SparseMode::On, n, nnz) / 1e6,
            "connectome_rss_mb": conn_rss,
            "peak_rss_mb": peak_rss_mb(),
        })
    );
    Ok(())
}

/// The delays case, in this process.
fn delays_case(args: &BenchArgs, engines: &[Engine]) -> Result<()> {
    let kind: BackendKind = args.backend.parse()?;
    let conn = Connectome::load("hcp80", None)?;
    let batches = if args.batch.is_empty() {
        vec![1, 256]
    } else {
        args.batch.clone()
    };
    for &b in &batches {
        let steps = args.steps.unwrap_or(if b >= 64 { 500 } else { 2000 });
        let table = mpr_table(conn.n, b, 0.5)?;
        for &engine in engines {
            for speed in [None, Some(10.0), Some(3.0)] {
                let repeats = args.repeats;
                let net = NetworkConfig {
                    speed,
                    ..NetworkConfig::new("mpr")
                };
                let t = timed(
                    conn.clone(),
                    &net,
                    table.clone(),
                    b,
                    steps,
                    repeats,
                    args.threads,
                    kind,
                    engine,
                )?;
                let horizon = speed.map(|v| {
                    neurodiff::network::Delays::from_lengths(
                        conn.lengths.as_ref().expect("hcp80 has lengths"),
                        v,
                        0.01,
                    )
                    .map(|d| d.horizon)
                });
                emit!(
                    "{}",
                    json!({
                        "tool": "neurodiff",
                        "device": if kind.is_cpu() { "cpu" } else { "gpu" },
                        "backend": kind.name(),
                        "engine": engine_name(engine),
                        "case": "delays",
                        "nodes": conn.n,
                        "batch": b,
                        "speed_mm_per_ms": speed,
                        "horizon_steps": horizon.transpose()?,
                        "density": density_of(conn.n, conn.nnz()),
                        "mode": "dense",
                        "steps": steps,
                        "seconds": t.seconds,
                        "setup_seconds": t.setup_seconds,
                        "us_per_step": t.us_per_step,
                        "node_steps_per_s": (b * conn.n) as f64 / (t.us_per_step * 1e-6),
                        "peak_rss_mb": peak_rss_mb(),
                    })
                );
            }
        }
    }
    Ok(())
}

pub fn run(args: BenchArgs) -> Result<()> {
    let kind: BackendKind = args.backend.parse()?;
    let engines = match args.engine.as_deref() {
        None if kind.is_cpu() => vec![Engine::Fused, Engine::Tensor],
        None | Some("tensor") => vec![Engine::Tensor],
        Some("fused") => vec![Engine::Fused],
        Some("both") => vec![Engine::Fused, Engine::Tensor],
        Some(e) => {
            return Err(Error::setting(
                "engine",
                format!("`{e}` is not one of: fused, tensor, both"),
            ))
        }
    };
    if let Some(child) = &args.child {
        return gradient_child(&args, child);
    }
    if let Some(spec) = &args.circuit_grad_child {
        return circuit_tensor_grad_child(spec, kind);
    }
    if let Some(spec) = &args.sparse_child {
        return sparse_child(&args, spec);
    }
    if let Some(path) = &args.edges_child {
        return edges_child(&args, path);
    }
    let all = [
        "mpr_forward",
        "mpr_fc_gradient",
        "sparse_coupling",
        "delays",
        "edge_list",
        "circuit_forward",
        "circuit_grad",
        "circuit_tensor",
        "circuit_tensor_grad",
        "stn_only",
        "cell_hh",
        "cell_hh_grad",
    ];
    let cases: Vec<&str> = match args.case.as_deref() {
        None => vec!["mpr_forward", "mpr_fc_gradient"],
        Some("all") => all.to_vec(),
        Some(c) if all.contains(&c) => vec![c],
        Some(c) => {
            return Err(Error::setting(
                "case",
                format!("`{c}` is not one of: {}, all", all.join(", ")),
            ))
        }
    };
    for case in cases {
        if case == "mpr_fc_gradient" {
            gradient_parent(&args)?;
        }
        if case == "sparse_coupling" {
            sparse_case(&args, &engines)?;
        }
        if case == "delays" {
            delays_case(&args, &engines)?;
        }
        if case == "edge_list" {
            edge_list_case(&args)?;
        }
        if case == "mpr_forward" {
            forward_case(&args, kind, &engines)?;
        }
        if case == "circuit_forward" {
            circuit_case(&args)?;
        }
        if case == "circuit_grad" {
            circuit_grad_case()?;
        }
        if case == "circuit_tensor" {
            circuit_tensor_case(&args, kind)?;
        }
        if case == "circuit_tensor_grad" {
            circuit_tensor_grad_parent(kind)?;
        }
        if case == "stn_only" {
            stn_only_case(&args)?;
        }
        if case == "cell_hh" {
            cell_case(&args)?;
        }
        if case == "cell_hh_grad" {
            cell_grad_case(&args)?;
        }
    }
    Ok(())
}

/// The circuit_forward case (issue 13): the default STN–GPe–GPi circuit at 100–200–150 and
/// 1000–2000–1500 neurons (and 10,000–20,000–15,000 with `--circuit-large`), 200 ms at dt
/// 0.025 ms after 20 ms of warm-up, spikes and rates recorded as `neurodiff circuit` does, one
/// thread. Sizes run smallest first in this process, so `peak_rss_mb` (the process's peak so
/// far) is each size's own peak.
fn circuit_case(args: &BenchArgs) -> Result<()> {
    use neurodiff::spiking::{Circuit, Engine as Spiking, Record, Recorder};
    let mut sizes = vec![(100, 200, 150), (1000, 2000, 1500)];
    if args.circuit_large {
        sizes.push((10_000, 20_000, 15_000));
    }
    if args.circuit_huge {
        sizes.push((22_222, 44_444, 33_334));
    }
    for (n_stn, n_gpe, n_gpi) in sizes {
        let mut c = if args.keep_fan_in {
            let mut c = Circuit::default_stn_gpe_gpi(1000, 2000, 1500);
            c.keep_fan_in();
            for (pop, n) in c.populations.iter_mut().zip([n_stn, n_gpe, n_gpi]) {
                pop.n = n;
            }
            c
        } else {
            Circuit::default_stn_gpe_gpi(n_stn, n_gpe, n_gpi)
        };
        if args.circuit_adex {
            // The Brian2 reference network: AdEx in all three populations, the STN
            // with GPe's parameters, drive and noise (benches/brian2/circuit.py --stn adex).
            let gpe = c.populations[1].clone();
            let stn = &mut c.populations[0];
            stn.neuron = gpe.neuron;
            stn.params = gpe.params;
            stn.heterogeneity = gpe.heterogeneity;
            stn.current = gpe.current;
            stn.ou = gpe.ou;
        }
        let t0 = std::time::Instant::now();
        let mut e = Spiking::new(&c)?;
        let build = t0.elapsed().as_secs_f64();
        let dt = e.dt();
        let warm = (20.0 / dt).round() as u64;
        let steps = (200.0 / dt).round() as u64;
        let mut rec = Recorder::new(Record::default(), &e);
        e.run(warm, &mut rec, &mut |_, _| {})?;
        let mut times = Vec::new();
        for _ in 0..args.repeats.max(1) {
            let t = std::time::Instant::now();
            e.run(steps, &mut rec, &mut |_, _| {})?;
            times.push(t.elapsed().as_secs_f64());
        }
        let seconds = median(times);
        let synapses: usize = e.synapse_counts().iter().sum();
        // Mean rate per population over warm-up and the timed runs (the work done per step
        // grows with it, so a comparison with another simulator states it).
        let bins = rec.rates_hz(dt);
        let rates: serde_json::Map<String, serde_json::Value> = (0..e.n_populations())
            .map(|k| {
                let mean = bins.iter().map(|b| b[k]).sum::<f64>() / bins.len().max(1) as f64;
                (e.population(k).0.to_string(), serde_json::json!(mean))
            })
            .collect();
        emit!(
            "{}",
            serde_json::json!({
                "tool": "neurodiff", "device": "cpu", "backend": "fused-f64", "engine": "spiking",
                "case": "circuit_forward", "nodes": n_stn + n_gpe + n_gpi, "batch": 1,
                "steps": steps, "seconds": seconds, "ms_per_step": seconds * 1e3 / steps as f64,
                "n_stn": n_stn, "n_gpe": n_gpe, "n_gpi": n_gpi, "synapses": synapses,
                "build_s": build, "peak_rss_mb": peak_rss_mb(), "rate_hz": rates,
                "stn": if args.circuit_adex { "adex" } else { "stn" },
                "keep_fan_in": args.keep_fan_in,
            })
        );
    }
    Ok(())
}

/// The stn_only case (issue 13; the JAX implementation's reported 3.3 ms/step): 10,000 STN
/// cells (the default circuit's STN population: Terman–Rubin model, bias, OU background,
/// heterogeneity) without synapses, 200 ms at dt 0.025 ms after 20 ms of warm-up, one thread.
fn stn_only_case(args: &BenchArgs) -> Result<()> {
    use neurodiff::spiking::{Circuit, Engine as Spiking, Record, Recorder};
    let mut c = Circuit::default_stn_gpe_gpi(10_000, 1, 1);
    c.populations.truncate(1);
    c.projections.clear();
    let mut e = Spiking::new(&c)?;
    let dt = e.dt();
    let (warm, steps) = ((20.0 / dt).round() as u64, (200.0 / dt).round() as u64);
    let mut rec = Recorder::new(Record::default(), &e);
    e.run(warm, &mut rec, &mut |_, _| {})?;
    let mut times = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let t = std::time::Instant::now();
        e.run(steps, &mut rec, &mut |_, _| {})?;
        times.push(t.elapsed().as_secs_f64());
    }
    let seconds = median(times);
    let bins = rec.rates_hz(dt);
    let rate = bins.iter().map(|b| b[0]).sum::<f64>() / bins.len().max(1) as f64;
    emit!(
        "{}",
        serde_json::json!({
            "tool": "neurodiff", "device": "cpu", "backend": "fused-f64", "engine": "spiking",
            "case": "stn_only", "nodes": 10_000, "batch": 1, "steps": steps,
            "seconds": seconds, "ms_per_step": seconds * 1e3 / steps as f64,
            "peak_rss_mb": peak_rss_mb(), "rate_hz": rate,
        })
    );
    Ok(())
}

/// The circuit_tensor case (issue 13): the default circuit at 100–200–150 and 1000–2000–1500
/// on the Burn tensor engine (`spiking::TensorEngine`, `--backend`, batch 1), 20 ms at dt
/// 0.025 ms after 2 ms of warm-up: the path GPUs run, beside circuit_forward's fused engine.
fn circuit_tensor_case(args: &BenchArgs, kind: BackendKind) -> Result<()> {
    struct Task<'a>(&'a BenchArgs);
    impl BackendTask for Task<'_> {
        type Output = Result<()>;
        fn run<B: burn::prelude::Backend>(
            self,
            kind: BackendKind,
            device: B::Device,
        ) -> Result<()> {
            use neurodiff::spiking::{Circuit, TensorEngine};
            for (n_stn, n_gpe, n_gpi) in [(100, 200, 150), (1000, 2000, 1500)] {
                let c = Circuit::default_stn_gpe_gpi(n_stn, n_gpe, n_gpi);
                let mut e = TensorEngine::<B>::new(std::slice::from_ref(&c), false, &device)?;
                let dt = e.dt();
                let (warm, steps) = ((2.0 / dt).round() as usize, (20.0 / dt).round() as usize);
                let sync = |e: &TensorEngine<B>| {
                    let _ = e.voltages(0).into_data();
                };
                for _ in 0..warm {
                    e.step()?;
                }
                sync(&e);
                let mut times = Vec::new();
                for _ in 0..self.0.repeats.max(1) {
                    let t = std::time::Instant::now();
                    for _ in 0..steps {
                        e.step()?;
                    }
                    sync(&e);
                    times.push(t.elapsed().as_secs_f64());
                }
                let seconds = median(times);
                emit!(
                    "{}",
                    serde_json::json!({
                        "tool": "neurodiff", "device": if kind.is_cpu() { "cpu" } else { "gpu" }, "backend": kind.name(),
                        "engine": "spiking-tensor", "case": "circuit_tensor",
                        "nodes": n_stn + n_gpe + n_gpi, "batch": 1, "steps": steps,
                        "seconds": seconds, "ms_per_step": seconds * 1e3 / steps as f64,
                        "peak_rss_mb": peak_rss_mb(),
                    })
                );
            }
            Ok(())
        }
    }
    with_backend(kind, Task(args))?
}

/// The circuit_tensor_grad case (issue 13): the surrogate gradient of the rates objective
/// (GPe 50 Hz, GPi 60 Hz over the run after its first 5 ms) of the default 100–200–150 circuit
/// with respect to 4 parameters (`w:stn->gpe`, `w:gpe->stn`, `gpe.current`, `stn.current`), on
/// the tensor engine under `Autodiff` (`--backend`), for 1,000 and 4,000 steps of
/// 0.025 ms, by chunked checkpointing (chunks of 100 steps) and with one tape over the whole
/// run. Each in a fresh child process, so that `peak_rss_mb` is its own.
fn circuit_tensor_grad_parent(kind: BackendKind) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::setting("bench", e.to_string()))?;
    for steps in [1000, 4000] {
        for method in ["checkpointed", "full-tape"] {
            let child = format!("{method}:{steps}");
            run_child(
                &exe,
                &[
                    "bench",
                    "--case",
                    "circuit_tensor_grad",
                    "--circuit-grad-child",
                    &child,
                    "--backend",
                    kind.name(),
                ],
                &format!("circuit_tensor_grad {method} {steps} steps"),
            )?;
        }
    }
    Ok(())
}

/// Runs this executable (`exe`) with `args` in a fresh process, so that its peak memory is its
/// own, passes its JSON lines through to stdout, and fails naming `what` if the child fails.
fn run_child(exe: &std::path::Path, args: &[&str], what: &str) -> Result<()> {
    let out = std::process::Command::new(exe)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::setting("bench", e.to_string()))?;
    if !out.status.success() {
        return Err(Error::setting(
            "bench",
            format!("{what} failed ({})", out.status),
        ));
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// One circuit_tensor_grad case in this process (see [`circuit_tensor_grad_parent`]).
fn circuit_tensor_grad_child(spec: &str, kind: BackendKind) -> Result<()> {
    struct Task<'a>(&'a str);
    impl BackendTask for Task<'_> {
        type Output = Result<()>;
        fn run<B: burn::prelude::Backend>(
            self,
            kind: BackendKind,
            device: B::Device,
        ) -> Result<()> {
            use neurodiff::spiking::grad::Objective;
            use neurodiff::spiking::tensor_grad::{value_and_grad, value_and_grad_full};
            use neurodiff::spiking::{Circuit, Seed};
            type Ad<B> = burn::backend::Autodiff<B>;
            let spec = self.0;
            let bad = || {
                Error::setting(
                    "circuit-grad-child",
                    format!("`{spec}` is not METHOD:STEPS"),
                )
            };
            let (method, steps) = spec.split_once(':').ok_or_else(bad)?;
            let steps: usize = steps.parse().map_err(|_| bad())?;
            let chunk = 100;
            let c = Circuit::default_stn_gpe_gpi(100, 200, 150);
            let obj = Objective {
                window_ms: (5.0, steps as f64 * c.dt_ms),
                rates: vec![(1, 50.0), (2, 60.0)],
                beta: vec![],
            };
            let seeds = ["w:stn->gpe", "w:gpe->stn", "gpe.current", "stn.current"]
                .iter()
                .map(|k| Seed::parse(k, &c))
                .collect::<Result<Vec<_>>>()?;
            let circuits = std::slice::from_ref(&c);
            let t = std::time::Instant::now();
            let g = match method {
                "checkpointed" => value_and_grad::<Ad<B>>(circuits, &seeds, &obj, chunk, &device)?,
                "full-tape" => value_and_grad_full::<Ad<B>>(circuits, &seeds, &obj, &device)?,
                _ => return Err(bad()),
            };
            let seconds = t.elapsed().as_secs_f64();
            emit!(
                "{}",
                serde_json::json!({
                    "tool": "neurodiff", "device": if kind.is_cpu() { "cpu" } else { "gpu" },
                    "backend": kind.name(), "engine": "spiking-tensor-autodiff",
                    "case": "circuit_tensor_grad", "nodes": c.n_neurons(), "batch": 1,
                    "steps": steps, "parameters": seeds.len(), "method": method,
                    "chunk": if method == "checkpointed" { Some(chunk) } else { None },
                    "seconds": seconds, "ms_per_step": seconds * 1e3 / steps as f64,
                    "peak_rss_mb": peak_rss_mb(), "loss": g.loss[0], "grad": g.grad[0],
                })
            );
            Ok(())
        }
    }
    with_backend(kind, Task(spec))?
}

/// The circuit_grad case (issue 13): the loss on the STN's beta power (13–30 Hz) over 1 s of
/// the default 1000–2000–1500 circuit (window 200–1000 ms) and its gradient with respect to 4
/// parameters (`w:stn->gpe`, `w:gpe->stn`, `gpe.current`, `stn.current`), by forward-mode dual
/// numbers (spikes held; `Dual<f64, 4>`), after a plain `f64` evaluation of the same loss. One
/// thread; `peak_rss_mb` is the process's peak after each.
fn circuit_grad_case() -> Result<()> {
    use neurodiff::spiking::grad::{evaluate, evaluate_in, Objective};
    use neurodiff::spiking::{Circuit, Seed};
    let c = Circuit::default_stn_gpe_gpi(1000, 2000, 1500);
    let obj = Objective {
        window_ms: (200.0, 1000.0),
        rates: vec![],
        beta: vec![(0, 1.0)],
    };
    let seeds = ["w:stn->gpe", "w:gpe->stn", "gpe.current", "stn.current"]
        .iter()
        .map(|k| Seed::parse(k, &c))
        .collect::<Result<Vec<_>>>()?;
    let t = std::time::Instant::now();
    let plain = evaluate_in::<f64>(&c, &[], &obj, false)?;
    let forward_s = t.elapsed().as_secs_f64();
    let forward_rss = peak_rss_mb();
    let t = std::time::Instant::now();
    let g = evaluate(&c, &seeds, &obj, false)?;
    let grad_s = t.elapsed().as_secs_f64();
    emit!(
        "{}",
        serde_json::json!({
            "tool": "neurodiff", "device": "cpu", "backend": "fused-f64", "engine": "spiking",
            "case": "circuit_grad", "nodes": c.n_neurons(), "batch": 1,
            "steps": (1000.0 / c.dt_ms).round() as u64, "parameters": seeds.len(),
            "method": "forward-mode Dual<f64, 4>, spikes held",
            "forward_s": forward_s, "forward_peak_rss_mb": forward_rss,
            "seconds": grad_s, "gradient_over_forward": grad_s / forward_s,
            "peak_rss_mb": peak_rss_mb(),
            "loss": g.loss, "loss_f64": plain.loss, "grad": g.grad,
        })
    );
    Ok(())
}

/// NEURON's `hh` (sodium conductance `gna` mS/cm², the other values its defaults) on the
/// soma: the one channel `hh`, or (`apart`) `hh_na`, `hh_k` and `leak`.
fn insert_hh(cell: &mut neurodiff::cell::Cell, gna: f64, apart: bool) -> Result<()> {
    let soma = [neurodiff::cell::Group::Soma];
    if apart {
        cell.insert_named("hh_na", &soma, &[vec![gna, 50.0]])?;
        cell.insert_named("hh_k", &soma, &[vec![36.0, -77.0]])?;
        cell.insert_named("leak", &soma, &[vec![0.3, -54.3]])?;
    } else {
        let p = vec![gna, 36.0, 0.3, 50.0, -77.0, -54.3];
        cell.insert_named("hh", &soma, &[p])?;
    }
    Ok(())
}

/// The engines of the cell cases: `--engine fused`, `tensor` (the cell on Burn tensors,
/// `--backend`) or `both`; by default the fused solver on a CPU backend, tensors on a GPU.
fn cell_engines(args: &BenchArgs) -> Result<(bool, bool)> {
    let kind: BackendKind = args.backend.parse()?;
    Ok(match args.engine.as_deref() {
        Some("fused") => (true, false),
        Some("tensor") => (false, true),
        Some("both") => (true, true),
        None => (kind.is_cpu(), !kind.is_cpu()),
        Some(other) => {
            return Err(Error::setting(
                "engine",
                format!("`{other}` is not an engine of the cell cases (fused, tensor or both)"),
            ))
        }
    })
}

/// One cell_hh row on the tensor engine (`neurodiff::cell::tensor`, `--backend`): the median
/// of `--repeats` runs after one untimed run (a GPU compiles its kernels then).
fn cell_tensor_row(
    args: &BenchArgs,
    cell: &neurodiff::cell::Cell,
    protocol: &neurodiff::cell::Protocol,
) -> Result<()> {
    struct Task<'a>(
        &'a BenchArgs,
        &'a neurodiff::cell::Cell,
        &'a neurodiff::cell::Protocol,
    );
    impl BackendTask for Task<'_> {
        type Output = Result<()>;
        fn run<B: burn::prelude::Backend>(
            self,
            kind: BackendKind,
            device: B::Device,
        ) -> Result<()> {
            let Task(args, cell, protocol) = self;
            let run = || neurodiff::cell::tensor::simulate::<B>(cell, protocol, &device);
            run()?;
            let mut times = Vec::new();
            for _ in 0..args.repeats.max(1) {
                let t = std::time::Instant::now();
                run()?;
                times.push(t.elapsed().as_secs_f64());
            }
            let (seconds, steps, batch) = (median(times), protocol.steps, cell.batch);
            let comps = cell.area.iter().filter(|&&a| a > 0.0).count();
            emit!(
                "{}",
                serde_json::json!({
                    "tool": "neurodiff", "device": if kind.is_cpu() { "cpu" } else { "gpu" },
                    "backend": kind.name(), "engine": "cell-tensor", "case": "cell_hh",
                    "nodes": comps, "batch": batch,
                    "hh": if args.hh_apart { "apart" } else { "whole" },
                    "steps": steps, "seconds": seconds,
                    "us_per_step": seconds * 1e6 / steps as f64,
                    "cell_steps_per_s": (batch * steps) as f64 / seconds,
                    "peak_rss_mb": peak_rss_mb(),
                })
            );
            Ok(())
        }
    }
    let kind: BackendKind = args.backend.parse()?;
    with_backend(kind, Task(args, cell, protocol))?
}

/// The cell_hh case (issue 14, the Jaxley rows' forward part): 8,000 steps of 0.025 ms of (1) a
/// Hodgkin–Huxley point cell (one compartment, L = diam = 20 µm, NEURON's `hh`) at batch 1 and
/// 1,000 and (2) a 100-compartment branched cell (an HH soma and three passive dendrites of 33
/// compartments) at batch 1 and 100, each in f32 and f64, a 0.1 nA step into the soma (the
/// point cell fires repetitively), the soma's voltage recorded every step. One thread.
fn cell_case(args: &BenchArgs) -> Result<()> {
    use neurodiff::cell::{simulate, Branch, Cell, Clamp, Group, Morphology, Passive, Probe};
    use neurodiff::cell::{Protocol, Waveform};
    let branch = |parent: Option<usize>, length: f64, radius: f64, ncomp: usize, group| Branch {
        name: None,
        parent,
        length,
        radius,
        ncomp,
        group,
    };
    let build = |dends: bool, batch: usize| -> Result<Cell> {
        let mut b = vec![branch(None, 20.0, 10.0, 1, Group::Soma)];
        if dends {
            for _ in 0..3 {
                b.push(branch(Some(0), 300.0, 1.0, 33, Group::Basal));
            }
        }
        let pas = |_| Passive { cm: 1.0, ra: 100.0 };
        let mut cell = Cell::new(Morphology { branches: b }, pas, batch)?;
        insert_hh(&mut cell, 120.0, args.hh_apart)?;
        cell.insert_named("leak", &[Group::Basal], &[vec![0.1, -65.0]])?;
        Ok(cell)
    };
    let steps = 8000;
    let protocol = Protocol {
        dt: 0.025,
        steps,
        clamps: vec![Clamp {
            node: 0,
            batch: None,
            waveform: Waveform::Step {
                amp: 0.1,
                delay: 0.0,
                dur: 1e9,
            },
        }],
        probes: vec![Probe::V { node: 0 }],
        ..Protocol::default()
    };
    let (fused, tensor) = cell_engines(args)?;
    // `--nodes 1` / `--nodes 100` picks one of the cells, `--batch` its batch sizes.
    let cells = [
        (false, 1usize, vec![1usize, 1000]),
        (true, 100, vec![1, 100]),
    ];
    for (dends, comps, default_batches) in cells {
        if !args.nodes.is_empty() && !args.nodes.contains(&comps) {
            continue;
        }
        let batches = if args.batch.is_empty() {
            default_batches
        } else {
            args.batch.clone()
        };
        for batch in batches {
            let cell = build(dends, batch)?;
            if tensor {
                cell_tensor_row(args, &cell, &protocol)?;
            }
            if !fused {
                continue;
            }
            for f32_run in [true, false] {
                let mut times = Vec::new();
                for _ in 0..args.repeats.max(1) {
                    let t = std::time::Instant::now();
                    if f32_run {
                        simulate::<f32>(&cell, &protocol)?;
                    } else {
                        simulate::<f64>(&cell, &protocol)?;
                    }
                    times.push(t.elapsed().as_secs_f64());
                }
                let seconds = median(times);
                let comps = cell.area.iter().filter(|&&a| a > 0.0).count();
                emit!(
                    "{}",
                    serde_json::json!({
                        "tool": "neurodiff", "device": "cpu",
                        "backend": if f32_run { "cell-f32" } else { "cell-f64" },
                        "engine": "cell", "case": "cell_hh", "nodes": comps, "batch": batch,
                        "hh": if args.hh_apart { "apart" } else { "whole" },
                        "steps": steps, "seconds": seconds,
                        "us_per_step": seconds * 1e6 / steps as f64,
                        "cell_steps_per_s": (batch * steps) as f64 / seconds,
                    })
                );
            }
        }
    }
    Ok(())
}

/// One cell_hh_grad row on the tensor engine (`neurodiff::cell::tensor::value_and_grad`,
/// `--backend`): the windowed-statistics loss against `target`, chunks of `chunk` steps; the
/// median of `--repeats` runs after one untimed run.
fn cell_tensor_grad_row(
    args: &BenchArgs,
    cell: &neurodiff::cell::Cell,
    protocol: &neurodiff::cell::Protocol,
    target: &[Vec<f64>],
    chunk: usize,
) -> Result<()> {
    use neurodiff::cell::fit::{trace_loss, LossKind};
    type Cx<'a> = (
        &'a BenchArgs,
        &'a neurodiff::cell::Cell,
        &'a neurodiff::cell::Protocol,
        &'a [Vec<f64>],
        usize,
    );
    struct Task<'a>(Cx<'a>);
    impl BackendTask for Task<'_> {
        type Output = Result<()>;
        fn run<B: burn::prelude::Backend>(
            self,
            kind: BackendKind,
            device: B::Device,
        ) -> Result<()> {
            let (args, cell, p, target, chunk) = self.0;
            let kind_loss = LossKind::Stats { windows: 10 };
            let run = || {
                neurodiff::cell::tensor::value_and_grad::<B>(
                    cell,
                    p,
                    chunk,
                    |r| trace_loss(kind_loss, r, target, &[0]),
                    &device,
                )
            };
            run()?;
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..args.repeats.max(1) {
                let t = std::time::Instant::now();
                last = Some(run()?);
                times.push(t.elapsed().as_secs_f64());
            }
            let g = last.expect("one repeat");
            let comps = cell.area.iter().filter(|&&a| a > 0.0).count();
            emit!(
                "{}",
                serde_json::json!({
                    "tool": "neurodiff", "device": if kind.is_cpu() { "cpu" } else { "gpu" },
                    "backend": kind.name(), "engine": "cell-tensor-autodiff",
                    "case": "cell_hh_grad", "nodes": comps, "batch": cell.batch,
                    "hh": if args.hh_apart { "apart" } else { "whole" },
                    "steps": p.steps, "chunk": chunk, "seconds": median(times),
                    "loss": g.loss[0], "peak_rss_mb": peak_rss_mb(),
                })
            );
            Ok(())
        }
    }
    let kind: BackendKind = args.backend.parse()?;
    with_backend(kind, Task((args, cell, protocol, target, chunk)))?
}

/// The cell_hh_grad case (issue 14, the Jaxley gradient rows): the gradient of the windowed-
/// statistics loss (normalised MAE of the mean and s.d. of V in 10 windows, against a trace of
/// the same cell with hh_na.gbar = 100) with respect to every channel parameter, (1) through
/// 8,000 steps of 0.025 ms of the HH point cell of cell_hh at batch 1 (one checkpoint level of
/// 90), (2) through 200,000 steps of the same point cell with checkpoint levels (60, 60) and
/// (448) (the Jaxley memory row), (3) through 200,000 steps of cell_hh's 100-compartment cell
/// with checkpoint levels (60, 60), (448) and (200000) (every state kept), in that order, so
/// that each row's `peak_rss_mb` (the process's peak so far) is its own. f64, one thread.
fn cell_grad_case(args: &BenchArgs) -> Result<()> {
    use neurodiff::cell::adjoint::value_and_grad;
    use neurodiff::cell::fit::{trace_loss, LossKind};
    use neurodiff::cell::{simulate, Branch, Cell, Clamp, Group, Morphology, Passive, Probe};
    use neurodiff::cell::{Protocol, Waveform};
    let branch = |parent: Option<usize>, length: f64, radius: f64, ncomp: usize, group| Branch {
        name: None,
        parent,
        length,
        radius,
        ncomp,
        group,
    };
    let build_batch = |dends: bool, gna: f64, batch: usize| -> Result<Cell> {
        let mut b = vec![branch(None, 20.0, 10.0, 1, Group::Soma)];
        if dends {
            for _ in 0..3 {
                b.push(branch(Some(0), 300.0, 1.0, 33, Group::Basal));
            }
        }
        let pas = |_| Passive { cm: 1.0, ra: 100.0 };
        let mut cell = Cell::new(Morphology { branches: b }, pas, batch)?;
        insert_hh(&mut cell, gna, args.hh_apart)?;
        if dends {
            cell.insert_named("leak", &[Group::Basal], &[vec![0.1, -65.0]])?;
        }
        Ok(cell)
    };
    let protocol = |steps: usize| Protocol {
        dt: 0.025,
        steps,
        clamps: vec![Clamp {
            node: 0,
            batch: None,
            waveform: Waveform::Step {
                amp: 0.1,
                delay: 0.0,
                dur: 1e9,
            },
        }],
        probes: vec![Probe::V { node: 0 }],
        ..Protocol::default()
    };
    let build = |dends: bool, gna: f64| build_batch(dends, gna, 1);
    let (fused, tensor) = cell_engines(args)?;
    if tensor {
        // The tensor engine: 8,000 steps of each cell at each batch size, chunks of 400 steps.
        for (dends, comps) in [(false, 1usize), (true, 100)] {
            if !args.nodes.is_empty() && !args.nodes.contains(&comps) {
                continue;
            }
            let p = protocol(8000);
            let target = vec![simulate::<f64>(&build(dends, 100.0)?, &p)?.trace(0, 0)];
            let batches = if args.batch.is_empty() {
                vec![1, 100]
            } else {
                args.batch.clone()
            };
            for batch in batches {
                let cell = build_batch(dends, 120.0, batch)?;
                cell_tensor_grad_row(args, &cell, &p, &target, 400)?;
            }
        }
    }
    if !fused {
        return Ok(());
    }
    for (dends, steps, levels) in [
        (false, 8000usize, vec![90usize]),
        (false, 200_000, vec![60, 60]),
        (false, 200_000, vec![448]),
        (true, 200_000, vec![60, 60]),
        (true, 200_000, vec![448]),
        (true, 200_000, vec![200_000]),
    ] {
        let cell = build(dends, 120.0)?;
        let p = protocol(steps);
        let target = vec![simulate::<f64>(&build(dends, 100.0)?, &p)?.trace(0, 0)];
        let kind = LossKind::Stats { windows: 10 };
        let mut times = Vec::new();
        let mut last = None;
        let reps = if steps > 10_000 {
            1
        } else {
            args.repeats.max(1)
        };
        for _ in 0..reps {
            let t = std::time::Instant::now();
            let g = value_and_grad(&cell, &p, &levels, |r| trace_loss(kind, r, &target, &[0]))?;
            times.push(t.elapsed().as_secs_f64());
            last = Some(g);
        }
        let g = last.expect("one repeat");
        let comps = cell.area.iter().filter(|&&a| a > 0.0).count();
        emit!(
            "{}",
            serde_json::json!({
                "tool": "neurodiff", "device": "cpu", "backend": "cell-f64-adjoint",
                "engine": "cell", "case": "cell_hh_grad", "nodes": comps, "batch": 1,
                "hh": if args.hh_apart { "apart" } else { "whole" },
                "steps": steps, "checkpoint": levels, "seconds": median(times),
                "loss": g.loss[0], "peak_states": g.peak_states,
                "state_bytes": g.state_size * 8,
                "checkpoint_mb": (g.peak_states * g.state_size * 8) as f64 / 1e6,
                "peak_rss_mb": peak_rss_mb(),
            })
        );
    }
    Ok(())
}

/// The mpr_fc_gradient run: stochastic Heun with sigma 0.01 on both variables (a fixed noise
/// realisation), r sampled every 10 steps.
fn gradient_run(steps: usize) -> Run {
    let mut r = forward_run(1, steps, NoiseSource::Host);
    r.monitor.every = 10;
    r.monitor.vars = vec![0];
    r
}

/// Runs each mpr_fc_gradient case in a child process of this binary and forwards its JSON line.
fn gradient_parent(a: &BenchArgs) -> Result<()> {
    let engines: Vec<&str> = match a.grad_engine.as_str() {
        "both" => vec!["fused-adjoint", "burn-autodiff"],
        e @ ("fused-adjoint" | "burn-autodiff") => vec![e],
        e => {
            return Err(Error::setting(
                "grad-engine",
                format!("`{e}` is not one of: fused-adjoint, burn-autodiff, both"),
            ))
        }
    };
    let exe = std::env::current_exe().map_err(|e| Error::setting("bench", e.to_string()))?;
    for &steps in &a.grad_steps {
        for &engine in &engines {
            if engine == "burn-autodiff" && steps > a.burn_max_steps {
                continue;
            }
            let (child, repeats) = (format!("{engine}:{steps}"), a.repeats.to_string());
            let (threads, chunk) = (a.threads.to_string(), a.grad_chunk.to_string());
            run_child(
                &exe,
                &[
                    "bench",
                    "--case",
                    "mpr_fc_gradient",
                    "--child",
                    &child,
                    "--repeats",
                    &repeats,
                    "--threads",
                    &threads,
                    "--grad-chunk",
                    &chunk,
                ],
                &format!("mpr_fc_gradient {engine} {steps} steps"),
            )?;
        }
    }
    Ok(())
}

/// One mpr_fc_gradient case in this process: one untimed warm-up, then the median of the
/// timed repetitions of one loss value plus its gradient with respect to (G, eta).
fn gradient_child(a: &BenchArgs, spec: &str) -> Result<()> {
    let bad = || Error::setting("child", format!("`{spec}` is not ENGINE:STEPS"));
    let (engine, steps) = spec.split_once(':').ok_or_else(bad)?;
    let steps: usize = steps.parse().map_err(|_| bad())?;
    let conn = Connectome::load("hcp80", None)?;
    let nodes = conn.n;
    let emp = neurodiff::connectome::bundled_fc_hcp80().data;
    let given = vec![
        ("G".to_string(), ParamValue::Scalar(0.5)),
        ("eta".to_string(), ParamValue::Scalar(-5.0)),
    ];
    let table = ParamTable::new(
        &param_specs(neurodiff::models::find("mpr")?, CouplingKind::Linear),
        &given,
        nodes,
        None,
    )?;
    let gradient = match engine {
        "fused-adjoint" => Gradient::Adjoint,
        "burn-autodiff" => Gradient::Autodiff,
        e => return Err(Error::setting("child", format!("unknown engine `{e}`"))),
    };
    let cfg = NetworkConfig::new("mpr");
    let mut p = mpr_problem(conn, &cfg, table, gradient_run(steps), a.threads)?;
    let target = Loss::Fc {
        target: emp,
        kind: LossKind::Corr,
    };
    let opts = GradOptions {
        chunk: a.grad_chunk,
        wrt: Some(vec!["G".into(), "eta".into()]),
    };
    let mut times = Vec::new();
    let mut grads = Vec::new();
    let mut loss = f64::NAN;
    for rep in 0..=a.repeats {
        let warm = rep == 0;
        p.run = gradient_run(if warm { steps.min(1000) } else { steps });
        let t0 = Instant::now();
        let g = value_and_grad(&p, &target, gradient, &opts, BackendKind::Ndarray)?;
        let pick = |name: &str| {
            p.params
                .index(name)
                .and_then(|k| g.grads[k].as_ref())
                .map_or(f64::NAN, |p| p.values[0])
        };
        let (l, g) = (g.loss[0], vec![pick("G"), pick("eta")]);
        if !warm {
            times.push(t0.elapsed().as_secs_f64());
            loss = l;
            grads = g;
        }
    }
    let t = median(times);
    emit!(
        "{}",
        json!({
            "tool": "neurodiff",
            "device": "cpu",
            "engine": engine,
            "case": "mpr_fc_gradient",
            "nodes": nodes,
            "batch": 1,
            "steps": steps,
            "seconds": t,
            "us_per_step": t / steps as f64 * 1e6,
            "chunk": a.grad_chunk,
            "loss": loss,
            "grad_G": grads.first(),
            "grad_eta": grads.get(1),
            "peak_rss_mb": peak_rss_mb(),
        })
    );
    Ok(())
}

/// MPR's benchmark initial state (r, V) = (0.1, −2).
fn bench_x0(nodes: usize) -> Vec<f64> {
    [0.1f64, -2.0]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, nodes))
        .collect()
}

/// The edge_list case: a random connectome of `--nodes` regions [default: 100000] at `--density`
/// [default: 0.001] written as an edge list `.npy` (`[edges, 3]`, float32), then loaded and run
/// in a fresh process (10 steps of MPR, fused engine, sparse coupling), reporting the load time,
/// the memory after loading and the peak memory. The dense matrix would take 8 n² bytes.
fn edge_list_case(args: &BenchArgs) -> Result<()> {
    use rand::SeedableRng;
    let nodes = if args.nodes.is_empty() {
        vec![100_000]
    } else {
        args.nodes.clone()
    };
    let densities = if args.density.is_empty() {
        vec![0.001]
    } else {
        args.density.clone()
    };
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    for &n in &nodes {
        for &density in &densities {
            let k = ((density * n as f64).round() as usize).clamp(1, n - 1);
            let path = std::env::temp_dir().join(format!(
                "neurodiff-bench-{}-{n}.edges.npy",
                std::process::id()
            ));
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
            let mut out =
                neurodiff::io::NpyStream::create(&path, &[n * k, 3], neurodiff::io::Dtype::F32)?;
            let mut rows = Vec::with_capacity(3 * k);
            for i in 0..n {
                rows.clear();
                for (j, w) in random_inputs(&mut rng, n, i, k) {
                    rows.extend([j as f32, i as f32, w as f32]);
                }
                out.write(&rows)?;
            }
            out.finish()?;
            let file_mb = std::fs::metadata(&path).map_or(f64::NAN, |m| m.len() as f64 / 1e6);
            let mut cmd = Command::new(&exe);
            cmd.args(["bench", "--case", "edge_list", "--threads"])
                .arg(args.threads.to_string())
                .arg("--edges-child")
                .arg(&path);
            let res = cmd.output().map_err(|e| Error::io(&exe, e));
            let _ = std::fs::remove_file(&path);
            let out = res?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && !stdout.trim().is_empty() {
                let mut v: serde_json::Value = serde_json::from_str(stdout.trim())
                    .map_err(|e| Error::setting("bench", e.to_string()))?;
                v["file_mb"] = json!(file_mb);
                v["dense_matrix_mb"] = json!(8.0 * (n as f64).powi(2) / 1e6);
                emit!("{v}");
            } else {
                emit!(
                    "{}",
                    json!({
                        "tool": "neurodiff", "case": "edge_list", "nodes": n,
                        "error": format!("{} ({})", out.status,
                            String::from_utf8_lossy(&out.stderr).trim()),
                    })
                );
            }
        }
    }
    Ok(())
}

/// One edge_list configuration, in this process.
fn edges_child(args: &BenchArgs, path: &std::path::Path) -> Result<()> {
    let before = rss_mb();
    let t0 = Instant::now();
    let conn = Connectome::load(&format!("edges:{}", path.display()), None)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let load_rss = rss_mb();
    let (n, nnz) = (conn.n, conn.nnz());
    let steps = 10;
    let mut run = forward_run(1, steps, NoiseSource::Host);
    run.monitor.every = steps;
    let table = mpr_table(n, 1, 0.5)?;
    let mut p = mpr_problem(
        conn,
        &NetworkConfig::new("mpr"),
        table,
        run.clone(),
        args.threads,
    )?;
    let sparse = p.is_sparse();
    let t = time_run(&mut p, run, BackendKind::Ndarray, Engine::Fused)?;
    emit!(
        "{}",
        json!({
            "tool": "neurodiff",
            "device": "cpu",
            "engine": "fused",
            "case": "edge_list",
            "nodes": n,
            "edges": nnz,
            "density": density_of(n, nnz),
            "sparse_coupling": sparse,
            "load_seconds": load_seconds,
            "rss_before_load_mb": before,
            "rss_after_load_mb": load_rss,
            "steps": steps,
            "seconds": t,
            "us_per_step": t / steps as f64 * 1e6,
            "peak_rss_mb": peak_rss_mb(),
        })
    );
    Ok(())
}
