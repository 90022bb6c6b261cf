//! `neurodiff bench`: the benchmark cases of `shared/anchors/BENCHMARKS.md`, printed as JSON
//! lines with the same fields as the reference script `vbjax_mpr.py` (`tool`, `device`, `case`,
//! `nodes`, `batch`, `steps`, `seconds`, and the case's figures), plus `backend` and `engine`.

use std::time::Instant;

use burn::prelude::{Backend, Tensor};
use clap::Args;
use serde_json::json;

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
    /// Case to run: mpr_forward. [default: all]
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
    let cases: Vec<&str> = match args.case.as_deref() {
        None => vec!["mpr_forward"],
        Some(c @ "mpr_forward") => vec![c],
        Some(c) => {
            return Err(Error::setting(
                "case",
                format!("`{c}` is not one of: mpr_forward"),
            ))
        }
    };
    for case in cases {
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
