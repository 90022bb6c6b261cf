//! Bayesian inference of three conductances of a Hodgkin–Huxley compartment from a noisy voltage
//! trace, by Hamiltonian Monte Carlo ([`neurodiff_optim::hmc`]) with the simulator's exact
//! gradient (the discrete adjoint, [`neurodiff::cell::adjoint::value_and_grad`]).
//!
//! ```sh
//! cargo run --release --example cell_hmc [OUT.npy]
//! ```
//!
//! The data: one HH compartment (NEURON's `hh` as the channels `hh_na`, `hh_k`, `leak`; 20 µm
//! long, 10 µm radius, cm = 1 µF/cm², 6.3 °C) driven by 0.3 nA from 1 ms, simulated for 30 ms at
//! dt = 0.025 ms with the true maximal conductances `ḡ_Na = 120`, `ḡ_K = 36`, `g_L = 0.3` mS/cm²,
//! plus independent Gaussian noise of known s.d. σ = 2 mV on each of the 1,201 samples. The
//! likelihood is therefore exact: `log p(y | ḡ) = −Σ_k (V_k(ḡ) − y_k)² / (2σ²) + const`. The
//! prior is uniform on the boxes below (mS/cm²), so the posterior is the normalised likelihood
//! there; the sampler works on the inverse-sigmoid coordinates of the boxes, with their
//! log-Jacobian.
//!
//! The chain, in three stages that each start from the last draw of the one before (dual
//! averaging of the step in every warm-up): (1) unit mass from a start 5 % off the truth; its
//! draws give (2) a diagonal mass `M_i = 1 / Var(z_i)` in the sampler's coordinates `z`; its
//! draws give the posterior mean `μ` and covariance `L Lᵀ` of `z`, and (3), the draws kept,
//! samples whitened coordinates `w`, `z = μ + L w` (a dense mass matrix in effect: ḡ_Na and
//! ḡ_K are strongly correlated). It prints the posterior mean ± s.d. and central 95 %
//! interval per conductance against the truth, the acceptance, the step size and the cost, and
//! writes the kept draws `[samples, 3]` (mS/cm², columns `hh_na.gbar`, `hh_k.gbar`, `leak.gbar`)
//! to `OUT.npy` (default `cell_hmc_draws.npy`).
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use neurodiff::cell::adjoint::{default_levels, value_and_grad, TraceLoss};
use neurodiff::cell::{
    simulate, Branch, Cell, CellError, Clamp, Group, Morphology, Passive, Probe, Protocol, Waveform,
};
use neurodiff::io::{Dtype, NpyStream};
use neurodiff_models::channel::ChannelKind;
use neurodiff_optim::{hmc, Bounds, HmcConfig, HmcResult};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Names, true values and prior boxes (mS/cm²) of the sampled conductances; each is parameter
/// 0 (`gbar`) of placement `i` of the cell.
const NAMES: [&str; 3] = ["hh_na.gbar", "hh_k.gbar", "leak.gbar"];
const TRUTH: [f64; 3] = [120.0, 36.0, 0.3];
const BOXES: [(f64, f64); 3] = [(40.0, 300.0), (10.0, 100.0), (0.05, 1.5)];
/// Noise s.d., mV.
const SIGMA: f64 = 2.0;

/// The HH compartment with conductances `g` (mS/cm²) and its protocol.
fn hh_cell(g: &[f64]) -> Result<(Cell, Protocol), CellError> {
    let m = Morphology {
        branches: vec![Branch {
            name: Some("soma".into()),
            parent: None,
            length: 20.0,
            radius: 10.0,
            ncomp: 1,
            group: Group::Soma,
        }],
    };
    let mut cell = Cell::new(m, |_| Passive { cm: 1.0, ra: 100.0 }, 1)?;
    cell.insert(ChannelKind::HhNa, |_, _| true, &[vec![g[0], 50.0]])?;
    cell.insert(ChannelKind::HhK, |_, _| true, &[vec![g[1], -77.0]])?;
    cell.insert(ChannelKind::Leak, |_, _| true, &[vec![g[2], -54.3]])?;
    let p = Protocol {
        dt: 0.025,
        steps: 1200,
        celsius: 6.3,
        v_init: -65.0,
        clamps: vec![Clamp {
            node: 0,
            batch: None,
            waveform: Waveform::Step {
                amp: 0.3,
                delay: 1.0,
                dur: 1e9,
            },
        }],
        probes: vec![Probe::V { node: 0 }],
        ..Protocol::default()
    };
    Ok((cell, p))
}

/// `log p(y | g)` (up to a constant) and its gradient with respect to `g`, by the adjoint. A
/// simulation that diverges gives `−∞` (the sampler rejects that proposal); other errors end
/// the run.
fn log_lik(
    cell: &mut Cell,
    protocol: &Protocol,
    y: &[f64],
    g: &[f64],
) -> Result<(f64, Vec<f64>), Box<dyn Error>> {
    for (c, &gi) in g.iter().enumerate() {
        cell.channels[c].params[0] = gi;
    }
    let levels = default_levels(protocol.steps);
    let res = value_and_grad(cell, protocol, &levels, |rec| {
        let s2 = SIGMA * SIGMA;
        let mut nll = 0.0;
        let grad: Vec<f64> = rec
            .data
            .iter()
            .zip(y)
            .map(|(v, yk)| {
                nll += 0.5 * (v - yk) * (v - yk) / s2;
                (v - yk) / s2
            })
            .collect();
        Ok(TraceLoss {
            loss: vec![nll],
            grad,
        })
    });
    match res {
        Ok(cg) => Ok((-cg.loss[0], (0..g.len()).map(|c| -cg.grad[c][0]).collect())),
        Err(neurodiff::Error::Cell(CellError::Diverged { .. })) => {
            Ok((f64::NEG_INFINITY, vec![f64::NAN; g.len()]))
        }
        Err(e) => Err(e.into()),
    }
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (
        m,
        (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
    )
}

/// Mean and covariance (`n − 1`) of rows.
fn moments(rows: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (n, d) = (rows.len() as f64, rows[0].len());
    let mu: Vec<f64> = (0..d)
        .map(|i| rows.iter().map(|r| r[i]).sum::<f64>() / n)
        .collect();
    let cov = (0..d)
        .map(|i| {
            (0..d)
                .map(|j| {
                    rows.iter()
                        .map(|r| (r[i] - mu[i]) * (r[j] - mu[j]))
                        .sum::<f64>()
                        / (n - 1.0)
                })
                .collect()
        })
        .collect();
    (mu, cov)
}

/// Lower Cholesky factor, `None` unless positive definite.
fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let d = a.len();
    let mut l = vec![vec![0.0; d]; d];
    for i in 0..d {
        for j in 0..=i {
            let s = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    Some(l)
}

fn quantile(x: &[f64], q: f64) -> f64 {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (pos - lo as f64) * (s[hi] - s[lo])
}

fn report(stage: &str, r: &HmcResult, secs: f64) {
    println!(
        "{stage}: {} draws, acceptance {:.3} (mean α {:.3}), step {:.4}, divergences {} \
         (warm-up {}), {} gradient evaluations, {secs:.1} s",
        r.samples.len() / r.dim,
        r.accept_rate,
        r.mean_accept_prob,
        r.step_size,
        r.divergences,
        r.warmup_divergences,
        r.evaluations,
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    let out = PathBuf::from(
        args.iter()
            .find(|a| !a.starts_with("--"))
            .map_or("cell_hmc_draws.npy", |a| a.as_str()),
    );
    let t_all = Instant::now();

    // Synthetic data: the true trace plus N(0, σ²) noise.
    let (true_cell, protocol) = hh_cell(&TRUTH)?;
    let clean = simulate::<f64>(&true_cell, &protocol)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2026);
    let y: Vec<f64> = clean
        .data
        .iter()
        .map(|v| {
            v + SIGMA * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
        })
        .collect();
    let peaks = clean
        .data
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    println!(
        "data: {} samples over {} ms (dt {} ms), {peaks} spikes, noise σ = {SIGMA} mV",
        y.len(),
        protocol.steps as f64 * protocol.dt,
        protocol.dt
    );

    let bounds: Vec<Option<Bounds>> = BOXES
        .iter()
        .map(|&(l, u)| Bounds::new(l, u).map(Some))
        .collect::<Result<_, _>>()?;
    let (mut cell, _) = hh_cell(&TRUTH)?;
    let mut lp = |g: &[f64]| log_lik(&mut cell, &protocol, &y, g);

    // Stage 1: unit mass, dual averaging, from the start; its draws set a diagonal mass.
    let start: Vec<f64> = TRUTH
        .iter()
        .zip([1.05, 0.95, 1.05])
        .map(|(t, f)| t * f)
        .collect();
    let z_of = |theta: &[f64]| -> Vec<f64> {
        theta
            .iter()
            .zip(&bounds)
            .map(|(&t, b)| b.expect("bounded").to_unbounded_f64(t))
            .collect()
    };
    let cfg1 = HmcConfig {
        step_size: 0.01,
        n_leapfrog: 10,
        n_warmup: 150,
        n_samples: 150,
        seed: 1,
        ..Default::default()
    };
    let t = Instant::now();
    let r1 = hmc(&mut lp, &start, &bounds, &cfg1)?;
    report("stage 1 (unit mass)", &r1, t.elapsed().as_secs_f64());
    let (_, cov1) = moments(
        &(0..r1.samples.len() / 3)
            .map(|s| z_of(r1.sample(s)))
            .collect::<Vec<_>>(),
    );
    let mass: Vec<f64> = (0..3).map(|i| 1.0 / cov1[i][i].max(1e-12)).collect();

    // Stage 2: that diagonal mass; its draws give the posterior's mean and covariance in z.
    let cfg2 = HmcConfig {
        step_size: 0.5,
        n_leapfrog: 8,
        n_warmup: 150,
        n_samples: 400,
        mass: Some(mass),
        seed: 2,
        ..Default::default()
    };
    let t = Instant::now();
    let r2 = hmc(&mut lp, r1.sample(r1.samples.len() / 3 - 1), &bounds, &cfg2)?;
    report("stage 2 (diagonal mass)", &r2, t.elapsed().as_secs_f64());
    let z2: Vec<Vec<f64>> = (0..r2.samples.len() / 3)
        .map(|s| z_of(r2.sample(s)))
        .collect();
    let (mu, cov) = moments(&z2);
    let l = cholesky(&cov).ok_or("the stage-2 covariance is not positive definite")?;

    // Stage 3 (kept): whitened coordinates `w` with `z = μ + L w` (`L Lᵀ` the stage-2
    // covariance), the equivalent of a dense mass matrix: the conductances are strongly
    // correlated (ḡ_Na with ḡ_K above all). The density of `w` is the likelihood at `θ(z)` times
    // the Jacobian `Π dθ_i/dz_i` (that of `w ↦ z` is constant); `∇_w = Lᵀ ∇_z`.
    let theta_of = |w: &[f64]| -> (Vec<f64>, Vec<f64>) {
        let z: Vec<f64> = (0..3)
            .map(|i| mu[i] + (0..=i).map(|j| l[i][j] * w[j]).sum::<f64>())
            .collect();
        let theta = z
            .iter()
            .zip(&bounds)
            .map(|(&zi, b)| b.expect("bounded").to_bounded_f64(zi))
            .collect();
        (z, theta)
    };
    let mut lp_w = |w: &[f64]| -> Result<(f64, Vec<f64>), Box<dyn Error>> {
        let (z, theta) = theta_of(w);
        let (ll, g_theta) = lp(&theta)?;
        let mut total = ll;
        let mut g_z = [0.0; 3];
        for i in 0..3 {
            let width = bounds[i].expect("bounded").width();
            let s = 1.0 / (1.0 + (-z[i]).exp());
            total += width.ln() + s.ln() + (1.0 - s).ln();
            g_z[i] = g_theta[i] * width * s * (1.0 - s) + 1.0 - 2.0 * s;
        }
        let g_w = (0..3)
            .map(|j| (j..3).map(|i| l[i][j] * g_z[i]).sum::<f64>())
            .collect();
        Ok((total, g_w))
    };
    // The start: stage 2's last draw in `w` (`L w = z − μ`, forward substitution).
    let z_last = z2.last().expect("draws");
    let mut w0 = vec![0.0; 3];
    for i in 0..3 {
        w0[i] = (z_last[i] - mu[i] - (0..i).map(|j| l[i][j] * w0[j]).sum::<f64>()) / l[i][i];
    }
    let cfg = HmcConfig {
        step_size: 0.5,
        // Unit scales here: ε ≈ 1 and 3 steps make about half an oscillation period (2π).
        n_leapfrog: 3,
        n_warmup: 200,
        n_samples: 3000,
        seed: 3,
        ..Default::default()
    };
    let t = Instant::now();
    let r = hmc(&mut lp_w, &w0, &[None; 3], &cfg)?;
    report("stage 3 (whitened, kept)", &r, t.elapsed().as_secs_f64());
    let n = r.samples.len() / 3;
    let draws: Vec<f64> = (0..n).flat_map(|s| theta_of(r.sample(s)).1).collect();
    let column = |i: usize| -> Vec<f64> { (0..n).map(|s| draws[s * 3 + i]).collect() };
    println!(
        "{:>11} {:>8} {:>20} {:>22} {:>7}",
        "mS/cm²", "truth", "posterior mean ± sd", "central 95 %", "inside"
    );
    let mut inside = 0;
    for (i, name) in NAMES.iter().enumerate() {
        let x = column(i);
        let (m, sd) = mean_sd(&x);
        let (lo, hi) = (quantile(&x, 0.025), quantile(&x, 0.975));
        let ok = lo <= TRUTH[i] && TRUTH[i] <= hi;
        inside += ok as usize;
        println!(
            "{name:>11} {:>8.4} {:>11.4} ± {:<7.4} [{lo:>9.4}, {hi:>9.4}] {:>7}",
            TRUTH[i],
            m,
            sd,
            if ok { "yes" } else { "NO" }
        );
    }
    println!("truth inside the central 95 % for {inside} of 3 conductances");

    if check {
        // A gradient-free reference: random-walk Metropolis on the same density of `w`
        // (forward simulations only), proposal N(0, (2.38²/3) I) (Roberts et al. 1997).
        let t = Instant::now();
        let (mut fcell, _) = hh_cell(&TRUTH)?;
        let mut lp_val = |w: &[f64]| -> Result<f64, Box<dyn Error>> {
            let (z, theta) = theta_of(w);
            for (c, &g) in theta.iter().enumerate() {
                fcell.channels[c].params[0] = g;
            }
            let rec = match simulate::<f64>(&fcell, &protocol) {
                Ok(rec) => rec,
                Err(CellError::Diverged { .. }) => return Ok(f64::NEG_INFINITY),
                Err(e) => return Err(e.into()),
            };
            let nll: f64 = rec
                .data
                .iter()
                .zip(&y)
                .map(|(v, yk)| 0.5 * (v - yk) * (v - yk) / (SIGMA * SIGMA))
                .sum();
            let log_jac: f64 = z
                .iter()
                .zip(&bounds)
                .map(|(&zi, b)| {
                    let s = 1.0 / (1.0 + (-zi).exp());
                    b.expect("bounded").width().ln() + s.ln() + (1.0 - s).ln()
                })
                .sum();
            Ok(log_jac - nll)
        };
        let (burn, keep) = (2000, 40000);
        let scale = 2.38 / 3f64.sqrt();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        let mut w = r.sample(0).to_vec();
        let mut cur = lp_val(&w)?;
        let (mut acc, mut rw) = (0usize, Vec::with_capacity(keep * 3));
        for it in 0..burn + keep {
            let prop: Vec<f64> = w
                .iter()
                .map(|wi| {
                    wi + scale
                        * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
                })
                .collect();
            let lq = lp_val(&prop)?;
            let u: f64 = rand_distr::Open01.sample(&mut rng);
            if u.ln() < lq - cur {
                (w, cur) = (prop, lq);
                acc += (it >= burn) as usize;
            }
            if it >= burn {
                rw.extend(theta_of(&w).1);
            }
        }
        println!(
            "check: random-walk Metropolis, {keep} draws, acceptance {:.3}, {:.1} s",
            acc as f64 / keep as f64,
            t.elapsed().as_secs_f64()
        );
        for (i, name) in NAMES.iter().enumerate() {
            let x: Vec<f64> = rw.iter().skip(i).step_by(3).copied().collect();
            let (m, sd) = mean_sd(&x);
            let (mh, sdh) = mean_sd(&column(i));
            println!(
                "{name:>11} RWM {m:>11.4} ± {sd:<7.4}  (HMC − RWM: mean {:+.3} sd, sd ratio {:.3})",
                (mh - m) / sd,
                sdh / sd
            );
        }
    }

    let mut npy = NpyStream::create(&out, &[n, 3], Dtype::F64)?;
    npy.write(&draws)?;
    npy.finish()?;
    println!(
        "draws written to {} ([samples, 3], mS/cm²: {}); total {:.1} s",
        out.display(),
        NAMES.join(", "),
        t_all.elapsed().as_secs_f64()
    );
    Ok(())
}
