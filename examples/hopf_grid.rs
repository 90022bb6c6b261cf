//! Grid search of the Hopf model's global coupling G and bifurcation parameter a against the
//! bundled HCP group FC: the forward-only baseline that gradient fitting must match.
//!
//! ```sh
//! cargo run --release --example hopf_grid [G_MIN G_MAX A_MIN A_MAX NG NA [FRAMES]]
//! ```
//!
//! Defaults: G in [0, 3], a in [-0.2, 0.1], a 16 × 16 grid, the data's 1,200 frames. The same
//! set-up as `neurodiff fit`'s default (TR 0.72 s = 7 Heun steps, σ = 0.02, 60 s transient,
//! seed 1), all grid points in one batch on the fused CPU engine. Prints `G a corr` per point
//! and the best point.
use neurodiff::backend::BackendKind;
use neurodiff::connectome::{bundled_fc_hcp80, Connectome};
use neurodiff::fit::fc_corr;
use neurodiff::integrate::Integrator;
use neurodiff::monitor::Monitor;
use neurodiff::network::{param_specs, NetworkConfig};
use neurodiff::noise::{Noise, NoiseMode, NoiseSource};
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::problem::{simulate, Engine, Problem};
use neurodiff::sim::Run;
use neurodiff::{Error, Result};

/// Pearson correlation matrix of the rows of `xs` (regions × time).
fn fc(mut xs: Vec<Vec<f64>>) -> Vec<f64> {
    let n = xs.len();
    for x in &mut xs {
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let s = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>().sqrt();
        x.iter_mut().for_each(|v| *v = (*v - m) / s);
    }
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = xs[i].iter().zip(&xs[j]).map(|(a, b)| a * b).sum();
        }
    }
    out
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: f64| -> Result<f64> {
        args.get(i).map_or(Ok(d), |s| {
            s.parse()
                .map_err(|_| Error::setting("arguments", format!("`{s}` is not a number")))
        })
    };
    let (g0, g1, a0, a1) = (num(0, 0.0)?, num(1, 3.0)?, num(2, -0.2)?, num(3, 0.1)?);
    let (ng, na, frames) = (
        num(4, 16.0)? as usize,
        num(5, 16.0)? as usize,
        num(6, 1200.0)? as usize,
    );
    if ng < 1 || na < 1 || frames < 3 {
        return Err(Error::setting(
            "arguments",
            "need NG, NA ≥ 1 and FRAMES ≥ 3",
        ));
    }
    let conn = Connectome::load("hcp80", None)?;
    let emp = bundled_fc_hcp80().data;
    let n = conn.n;
    let lin =
        |lo: f64, hi: f64, k: usize, i: usize| lo + (hi - lo) * i as f64 / (k - 1).max(1) as f64;
    let (mut gs, mut as_) = (Vec::new(), Vec::new());
    for i in 0..ng {
        for j in 0..na {
            gs.push(lin(g0, g1, ng, i));
            as_.push(lin(a0, a1, na, j));
        }
    }
    let b = gs.len();
    let spec = neurodiff::models::find("hopf")?;
    let table = ParamTable::new(
        &param_specs(spec, spec.coupling_function.into()),
        &[
            ("G".into(), ParamValue::Batch(gs.clone())),
            ("a".into(), ParamValue::Batch(as_.clone())),
        ],
        n,
        None,
    )?;
    let dt: f64 = 0.72 / 7.0;
    let transient = (60.0 / dt).round() as usize;
    let run = Run {
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
    };
    let problem = Problem::new(conn, NetworkConfig::new("hopf"), table, run)?
        .with_initial_state(1, vec![0.0; 2 * n])?;
    let mut out: Vec<f64> = Vec::new();
    let t0 = std::time::Instant::now();
    // A diverging grid point stops the run with its step, node and variable.
    simulate(
        &problem,
        BackendKind::Ndarray,
        Engine::Fused,
        &mut |v| {
            out.extend_from_slice(v);
            Ok(())
        },
        &mut |_| {},
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    let mut best = (f64::NEG_INFINITY, 0.0, 0.0);
    for k in 0..b {
        let xs = (0..n)
            .map(|i| (0..frames).map(|s| out[(s * b + k) * n + i]).collect())
            .collect();
        let r = fc_corr(&fc(xs), &emp, n);
        println!("{:.4} {:.4} {:.4}", gs[k], as_[k], r);
        if r > best.0 {
            best = (r, gs[k], as_[k]);
        }
    }
    eprintln!(
        "{b} grid points × {} steps in {seconds:.1} s; best corr(FC_sim, FC_emp) = {:.4} at G = {:.4}, a = {:.4}",
        problem.run.steps, best.0, best.1, best.2
    );
    Ok(())
}
