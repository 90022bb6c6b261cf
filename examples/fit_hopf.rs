//! Fits the Hopf whole-brain model (Deco et al. 2017) to the bundled HCP group FC by gradient
//! descent through the simulation, on the CPU, and prints the result.
//!
//! ```sh
//! cargo run --release --example fit_hopf [ITERATIONS [RESTARTS [FRAMES]]]
//! ```
//!
//! The defaults (10 Adam iterations, 2 restarts, the data's 1,200 frames) take about 40 s on
//! one core of a laptop-class CPU; `neurodiff fit` is the full tool (resume, figures, files).
use std::time::Instant;

use neurodiff::backend::BackendKind;
use neurodiff::connectome::{bundled_fc_hcp80, Connectome};
use neurodiff::fit::{fit_on, FitProblem, FreeParam, GradientEngine, LossKind, Optimizer};
use neurodiff::integrate::Integrator;
use neurodiff::monitor::Monitor;
use neurodiff::network::NetworkConfig;
use neurodiff::noise::{Noise, NoiseMode, NoiseSource};
use neurodiff::sim::Run;

fn main() -> neurodiff::Result<()> {
    let arg = |i: usize, name: &str, d: usize| -> neurodiff::Result<usize> {
        match std::env::args().nth(i) {
            None => Ok(d),
            Some(s) => s.parse().map_err(|_| {
                neurodiff::Error::setting(name, format!("`{s}` is not a whole number"))
            }),
        }
    };
    let iterations = arg(1, "iterations", 10)?;
    let restarts = arg(2, "restarts", 2)?;
    let frames = arg(3, "frames", 1200)?;
    // TR = 0.72 s = 7 steps of 0.1029 s; a 60 s transient, then one frame per TR.
    let dt = 0.72 / 7.0;
    let transient = (60.0 / dt) as usize;
    let problem = FitProblem {
        network: NetworkConfig::new("hopf"),
        connectome: Connectome::load("hcp80", None)?,
        target_fc: bundled_fc_hcp80().data,
        fixed: vec![],
        free: vec![
            FreeParam {
                name: "G".into(),
                lower: 0.0,
                upper: 3.0,
                regional: false,
                init: None,
            },
            FreeParam {
                name: "a".into(),
                lower: -0.2,
                upper: 0.1,
                regional: false,
                init: None,
            },
        ],
        run: Run {
            dt,
            steps: transient + 7 * frames,
            integrator: Integrator::Heun,
            noise: Noise {
                sigma: vec![0.02, 0.02],
                mode: NoiseMode::Independent,
                seed: 1,
                source: NoiseSource::Host,
            },
            chunk: 1000,
            monitor: Monitor {
                every: 7,
                mean: false,
                transient,
                vars: vec![0],
                bold: None,
            },
        },
        chunk: 100,
        gradient: GradientEngine::Auto,
        restarts,
        optimizer: Optimizer::Adam { lr: 0.1 },
        loss: LossKind::Corr,
        seed: 7,
    };
    let started = Instant::now();
    let state = problem.initial_state()?;
    let state = fit_on(
        BackendKind::Ndarray,
        &problem,
        state,
        iterations,
        &mut |_, rep| {
            let best = rep.corr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            println!(
                "iteration {:3}  {:6.1} s  loss {:?}  best corr {best:.4}",
                rep.iteration,
                started.elapsed().as_secs_f64(),
                rep.loss
                    .iter()
                    .map(|l| (l * 1e4).round() / 1e4)
                    .collect::<Vec<_>>()
            );
            Ok(())
        },
    )?;
    let best = state.best.expect("at least one iteration");
    println!(
        "best corr(FC_sim, FC_emp) = {:.4} with G = {:.4}, a = {:.4} (restart {}, iteration {}), {:.1} s",
        best.corr,
        best.values[0][0],
        best.values[1][0],
        best.restart,
        best.iteration,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
