//! `neurodiff bench`: the benchmark cases of `shared/anchors/BENCHMARKS.md`, printed as JSON
//! lines with the same fields as the reference script `vbjax_mpr.py` (`tool`, `device`, `case`,
//! `nodes`, `batch`, `steps`, `seconds`, and the case's figures), plus `backend` and `engine`.
//! `mpr_fc_gradient` runs each step count in a fresh child process, so `peak_rss_mb` is per case.

use std::time::Instant;

use burn::prelude::{Backend, Tensor};
use clap::Args;
use serde_json::json;

use neurodiff::adjoint;
use neurodiff::backend::{with_backend, BackendKind, BackendTask};
use neurodiff::connectome::Connectome;
use neurodiff::coupling::CouplingKind;
use neurodiff::fused::{self, Engine, FusedRun};
use neurodiff::integrate::Integrator;
use neurodiff::network::{param_specs, Network, NetworkConfig};
use neurodiff::noise::{Noise, NoiseMode, NoiseSource};
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::sim::{default_chunk, simulate, Monitor, Run};
use neurodiff::{Error, Result};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Case to run: mpr_forward, mpr_fc_gradient. [default: all]
    #[arg(long)]
    case: Option<String>,
    /// Backend: ndarray, flex, wgpu, cuda. [default: ndarray]
    #[arg(long, default_value = "ndarray")]
    backend: String,
    /// Engine for forward cases: fused, tensor or both. [default: both on CPU, tensor on GPU]
    #[arg(long)]
    engine: Option<String>,
    /// Batch sizes of mpr_forward. [default: 1 16 256 on CPU; 1 16 256 4096 16384 on GPU]
    #[arg(long, num_args = 1..)]
    batch: Vec<usize>,
    /// Steps of mpr_forward.
    #[arg(long, default_value_t = 10_000)]
    steps: usize,
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

struct Forward<'a> {
    args: &'a BenchArgs,
    conn: Connectome,
    engines: Vec<Engine>,
}

impl BackendTask for Forward<'_> {
    type Output = Result<()>;

    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Result<()> {
        let a = self.args;
        let conn = &self.conn;
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
            for &engine in &self.engines {
                let run = forward_run(b, a.steps, kind.default_noise_source());
                let mut times = Vec::new();
                // One untimed warm-up (kernel compilation on GPUs, page faults on CPUs).
                for rep in 0..=a.repeats {
                    let warm = rep == 0;
                    let mut r = run.clone();
                    if warm {
                        r.steps = r.chunk.min(a.steps).max(1);
                        r.monitor.every = r.steps;
                    }
                    let t0 = Instant::now();
                    match engine {
                        Engine::Fused => {
                            let x0: Vec<f64> = [0.1f64, -2.0]
                                .iter()
                                .flat_map(|&v| std::iter::repeat_n(v, nodes))
                                .collect();
                            let fr = FusedRun {
                                connectome: conn,
                                network: &NetworkConfig::new("mpr"),
                                params: &table,
                                x0: &x0,
                                x0_rows: 1,
                                batch: b,
                                run: &r,
                                threads: a.threads,
                            };
                            fused::simulate_fused::<f32>(&fr, &mut |_, _, _| Ok(()), &mut |_| {})?;
                        }
                        _ => {
                            let net = Network::<B>::build(
                                &NetworkConfig::new("mpr"),
                                conn,
                                0.01,
                                &device,
                            )?;
                            let params = table.tensors::<B>(&device);
                            let x0 = vec![
                                Tensor::full([b, nodes], 0.1, neurodiff::float_opts::<B>(&device)),
                                Tensor::full([b, nodes], -2.0, neurodiff::float_opts::<B>(&device)),
                            ];
                            let fin = simulate(&net, &params, x0, &r, |_| Ok(()), |_| {})?;
                            // Synchronise inside the timed region.
                            let _ = neurodiff::sim::to_host(fin[0].clone());
                        }
                    }
                    if !warm {
                        times.push(t0.elapsed().as_secs_f64());
                    }
                }
                let t = median(times);
                println!(
                    "{}",
                    json!({
                        "tool": "neurodiff",
                        "device": device_name,
                        "backend": kind.name(),
                        "engine": if engine == Engine::Fused { "fused" } else { "tensor" },
                        "case": "mpr_forward",
                        "nodes": nodes,
                        "batch": b,
                        "steps": a.steps,
                        "seconds": t,
                        "us_per_step": t / a.steps as f64 * 1e6,
                        "node_steps_per_s": (b * nodes * a.steps) as f64 / t,
                        "peak_rss_mb": peak_rss_mb(),
                    })
                );
            }
        }
        Ok(())
    }
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
    let cases: Vec<&str> = match args.case.as_deref() {
        None => vec!["mpr_forward", "mpr_fc_gradient"],
        Some(c @ ("mpr_forward" | "mpr_fc_gradient")) => vec![c],
        Some(c) => {
            return Err(Error::setting(
                "case",
                format!("`{c}` is not one of: mpr_forward, mpr_fc_gradient"),
            ))
        }
    };
    for case in cases {
        if case == "mpr_fc_gradient" {
            gradient_parent(&args)?;
        }
        if case == "mpr_forward" {
            let conn = Connectome::load("hcp80", None)?;
            with_backend(
                kind,
                Forward {
                    args: &args,
                    conn,
                    engines: engines.clone(),
                },
            )??;
        }
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
            let out = std::process::Command::new(&exe)
                .args(["bench", "--case", "mpr_fc_gradient"])
                .args(["--child", &format!("{engine}:{steps}")])
                .args(["--repeats", &a.repeats.to_string()])
                .args(["--threads", &a.threads.to_string()])
                .args(["--grad-chunk", &a.grad_chunk.to_string()])
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| Error::setting("bench", e.to_string()))?;
            if !out.status.success() {
                return Err(Error::setting(
                    "bench",
                    format!(
                        "mpr_fc_gradient {engine} {steps} steps failed ({})",
                        out.status
                    ),
                ));
            }
            print!("{}", String::from_utf8_lossy(&out.stdout));
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
    let cfg = NetworkConfig::new("mpr");
    let mut times = Vec::new();
    let mut grads = Vec::new();
    let mut loss = f64::NAN;
    for rep in 0..=a.repeats {
        let warm = rep == 0;
        let run = gradient_run(if warm { steps.min(1000) } else { steps });
        let t0 = Instant::now();
        let (l, g) =
            match engine {
                "fused-adjoint" => gradient_fused(&conn, &cfg, &table, &run, a, &emp)?,
                #[cfg(feature = "ndarray")]
                "burn-autodiff" => gradient_burn::<
                    burn::backend::Autodiff<burn::backend::NdArray<f32>>,
                >(&conn, &cfg, &table, &run, a, &emp)?,
                e => return Err(Error::setting("child", format!("unknown engine `{e}`"))),
            };
        if !warm {
            times.push(t0.elapsed().as_secs_f64());
            loss = l;
            grads = g;
        }
    }
    let t = median(times);
    println!(
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

fn gradient_fused(
    conn: &Connectome,
    cfg: &NetworkConfig,
    table: &ParamTable,
    run: &Run,
    a: &BenchArgs,
    emp: &[f64],
) -> Result<(f64, Vec<f64>)> {
    let x0 = bench_x0(conn.n);
    let fr = FusedRun {
        connectome: conn,
        network: cfg,
        params: table,
        x0: &x0,
        x0_rows: 1,
        batch: 1,
        run,
        threads: a.threads,
    };
    let loss = |y: &[f64], shape: [usize; 4]| Ok(adjoint::fc_corr_loss(y, shape, 0, emp));
    let g = adjoint::value_and_grad_fused_in(
        false,
        &fr,
        &adjoint::GradOptions {
            chunk: a.grad_chunk,
            wrt: Some(vec!["G".into(), "eta".into()]),
        },
        &loss,
    )?;
    let pick = |name: &str| {
        table
            .index(name)
            .and_then(|k| g.grads[k].as_ref())
            .map_or(f64::NAN, |p| p.values[0])
    };
    Ok((g.loss[0], vec![pick("G"), pick("eta")]))
}

#[cfg(feature = "ndarray")]
fn gradient_burn<B: burn::tensor::backend::AutodiffBackend>(
    conn: &Connectome,
    cfg: &NetworkConfig,
    table: &ParamTable,
    run: &Run,
    a: &BenchArgs,
    emp: &[f64],
) -> Result<(f64, Vec<f64>)> {
    use burn::prelude::TensorData;
    let device = Default::default();
    let n = conn.n;
    let net = Network::<B>::build(cfg, conn, run.dt, &device)?;
    let net_in = Network::<B::InnerBackend>::build(cfg, conn, run.dt, &device)?;
    let params = table.tensors::<B::InnerBackend>(&device);
    let x0: Vec<Tensor<B::InnerBackend, 2>> = [0.1, -2.0]
        .iter()
        .map(|&v| Tensor::full([1, n], v, neurodiff::float_opts::<B::InnerBackend>(&device)))
        .collect();
    let e = Tensor::<B, 2>::from_data(
        TensorData::new(emp.to_vec(), [n, n]),
        neurodiff::float_opts::<B>(&device),
    );
    let loss = move |y: Tensor<B, 4>| {
        let [t, r, _, n] = y.dims();
        let x = y.swap_dims(0, 1).reshape([r, t, n]);
        neurodiff_optim::fc_corr_loss(neurodiff::observe::fc(x), e.clone())
            .expect("FC shapes are checked by construction")
    };
    let g = neurodiff::grad::value_and_grad(&net, &net_in, &params, x0, run, a.grad_chunk, &loss)?;
    let host = |t: Tensor<B::InnerBackend, 2>| -> f64 {
        t.into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .map_or(f64::NAN, |v| v[0])
    };
    let l = g
        .loss
        .into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .map_or(f64::NAN, |v| v[0]);
    let pick = |name: &str| {
        table
            .index(name)
            .map_or(f64::NAN, |k| host(g.grads[k].clone()))
    };
    Ok((l, vec![pick("G"), pick("eta")]))
}
