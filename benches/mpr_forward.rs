//! `cargo bench --bench mpr_forward`: the `mpr_forward` case of the shared benchmark set
//! (MPR, 80 HCP regions, stochastic Heun, σ = 0.01, G = linspace(0.1, 1, b)) on the fused CPU
//! engine and the Burn tensor engine (ndarray), one JSON line per batch size and engine, median
//! of 3 runs. `neurodiff bench` runs the full set (all cases, backends, 10,000 steps); this
//! bench is the quick library-level form of it (2,000 steps).
use std::time::Instant;

use neurodiff::backend::BackendKind;
use neurodiff::connectome::Connectome;
use neurodiff::coupling::CouplingKind;
use neurodiff::integrate::Integrator;
use neurodiff::monitor::Monitor;
use neurodiff::network::{param_specs, NetworkConfig};
use neurodiff::noise::{Noise, NoiseMode, NoiseSource};
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::problem::{simulate, Engine, Problem};
use neurodiff::sim::{default_chunk, Run};

fn main() -> neurodiff::Result<()> {
    let steps = 2000;
    let conn = Connectome::load("hcp80", None)?;
    let n = conn.n;
    for b in [1usize, 16, 256] {
        let g = if b == 1 {
            ParamValue::Scalar(0.1)
        } else {
            ParamValue::parse("G", &format!("linspace(0.1,1.0,{b})"))?
        };
        let table = ParamTable::new(
            &param_specs(neurodiff::models::find("mpr")?, CouplingKind::Linear),
            &[("G".to_string(), g)],
            n,
            None,
        )?;
        let run = Run {
            dt: 0.01,
            steps,
            integrator: Integrator::Heun,
            noise: Noise {
                sigma: vec![0.01, 0.01],
                mode: NoiseMode::Independent,
                seed: 1,
                source: NoiseSource::Host,
            },
            chunk: default_chunk(b, n, 2),
            monitor: Monitor {
                every: steps,
                mean: false,
                transient: 0,
                vars: vec![0, 1],
                bold: None,
            },
        };
        let x0: Vec<f64> = [0.1f64, -2.0]
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, n))
            .collect();
        let problem = Problem::new(conn.clone(), NetworkConfig::new("mpr"), table, run)?
            .with_initial_state(1, x0)?;
        for engine in [Engine::Fused, Engine::Tensor] {
            let mut times = Vec::new();
            for _ in 0..3 {
                let t0 = Instant::now();
                simulate(
                    &problem,
                    BackendKind::Ndarray,
                    engine,
                    &mut |_| Ok(()),
                    &mut |_| {},
                )?;
                times.push(t0.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let s = times[1];
            println!(
                "{{\"tool\":\"neurodiff\",\"device\":\"cpu\",\"case\":\"mpr_forward\",\"engine\":\"{engine}\",\"nodes\":{n},\"batch\":{b},\"steps\":{steps},\"seconds\":{s},\"us_per_step\":{},\"node_steps_per_s\":{}}}",
                s / steps as f64 * 1e6,
                (b * n * steps) as f64 / s
            );
        }
    }
    Ok(())
}
