//! Seeded synthetic multi-region data drawn from the exact (dense) Gaussian processes, with
//! known delays, timescales, latent counts and signal-to-noise ratio — the ground truth for
//! delay and timescale recovery.
//!
//! Each across-region latent `j` is one draw of the joint GP of its `R` delayed copies over
//! the `T` bins (covariance `k(t − t' + δ_{r'} − δ_r)`, a dense `RT × RT` Cholesky factor, the
//! exact reference the state-space lift approximates); each within-region latent a draw of a
//! `T × T` GP. Loadings are standard normal, offsets normal, and region `r`'s private noise
//! variances are scaled so that `tr(C_r C_rᵀ) / tr(R_r) = snr` (the SNR convention of
//! Gokcen et al. 2022). Everything in bins.
//!
//! Time-varying delays (for the `adm` preset): with `delay_sway[j][r] = a`, region `r` sees
//! latent `j` delayed by `δ_r(t) = delays[j][r] + a·sin(2π t / (T − 1))` bins, i.e.
//! `x_r(t) = z(t − δ_r(t))` for one GP draw `z`: the joint covariance
//! `k((t − δ_r(t)) − (t' − δ_{r'}(t')))` is that of `z` at warped times, so still exact.

// Regions, trials and latents index several parallel arrays at once: index loops read clearer.
#![allow(clippy::needless_range_loop)]

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use neurodiff_models::latent::linalg::{cholesky, Mat};
use neurodiff_models::latent::{kernel_by_name, KERNEL_NAMES};

use super::model::{Data, ObsParams};
use super::LatentError;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    /// Trials.
    pub trials: usize,
    /// Bins per trial.
    pub bins: usize,
    /// Neurons per region.
    pub neurons: Vec<usize>,
    /// Kernel name (see `neurodiff_models::latent::kernel_by_name`).
    pub kernel: String,
    /// Timescale of each across-region latent, bins.
    pub across_timescales: Vec<f64>,
    /// Delays `[across latent][region]`, bins (region 0 should be 0: it is the reference).
    pub delays: Vec<Vec<f64>>,
    /// Within-region latents per region.
    pub within: Vec<usize>,
    /// Timescale of the within-region latents, bins.
    pub within_timescale: f64,
    /// Signal-to-noise ratio `tr(C Cᵀ) / tr(R)` per region.
    pub snr: f64,
    /// Which regions each across latent loads on, `[latent][region]` (mDLAG's loading
    /// pattern: a `false` zeroes that column of the region's loadings); empty: all.
    pub loads: Vec<Vec<bool>>,
    /// Amplitude of a sinusoidal sway of each delay over the trial, `[latent][region]`, bins
    /// (see the module documentation); empty: constant delays.
    pub delay_sway: Vec<Vec<f64>>,
    /// Seed.
    pub seed: u64,
}

/// The truth behind generated data.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    /// Delays `[across][region]`, bins.
    pub delays: Vec<Vec<f64>>,
    /// Across-region timescales, bins.
    pub across_timescales: Vec<f64>,
    /// Within-region timescale, bins.
    pub within_timescale: f64,
    /// The observation model (columns of `C_r`: across latents, then the region's within).
    pub obs: ObsParams,
    /// Kernel.
    pub kernel: String,
    /// SNR.
    pub snr: f64,
    /// Which regions each across latent loads on, `[latent][region]`.
    pub loads: Vec<Vec<bool>>,
    /// The delay trajectories `[across][region][bin]`, bins, when they vary over time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delay_paths: Vec<Vec<Vec<f64>>>,
    /// Seed.
    pub seed: u64,
}

fn bad(name: &'static str, message: String) -> LatentError {
    LatentError::Setting { name, message }
}

/// Draws `n` standard normals.
fn normals(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sample(StandardNormal)).collect()
}

/// Generates data and its truth. Returns per region per trial `T × N_r` matrices.
pub fn synth(spec: &SynthSpec) -> Result<(Data, Truth), LatentError> {
    let nr = spec.neurons.len();
    if nr == 0 || spec.trials == 0 || spec.bins < 2 {
        return Err(bad(
            "neurons",
            "need at least one region, one trial and two bins".into(),
        ));
    }
    if spec.within.len() != nr {
        return Err(bad(
            "within",
            format!("{} values for {nr} regions", spec.within.len()),
        ));
    }
    if spec.delays.len() != spec.across_timescales.len()
        || spec.delays.iter().any(|d| d.len() != nr)
    {
        return Err(bad(
            "delays",
            format!("need one delay per region ({nr}) for each across latent"),
        ));
    }
    if !spec.loads.is_empty()
        && (spec.loads.len() != spec.delays.len() || spec.loads.iter().any(|l| l.len() != nr))
    {
        return Err(bad(
            "loads",
            format!(
                "need one list of {nr} regions for each of the {} across latents",
                spec.delays.len()
            ),
        ));
    }
    if !spec.delay_sway.is_empty()
        && (spec.delay_sway.len() != spec.delays.len()
            || spec
                .delay_sway
                .iter()
                .any(|l| l.len() != nr || l.iter().any(|a| !a.is_finite())))
    {
        return Err(bad(
            "delay-sway",
            format!(
                "need one finite amplitude per region ({nr}) for each of the {} across latents",
                spec.delays.len()
            ),
        ));
    }
    let loads: Vec<Vec<bool>> = if spec.loads.is_empty() {
        vec![vec![true; nr]; spec.delays.len()]
    } else {
        spec.loads.clone()
    };
    if !(spec.snr > 0.0 && spec.snr.is_finite()) {
        return Err(bad("snr", format!("{} is not positive", spec.snr)));
    }
    let pa = spec.across_timescales.len();
    for (r, &n) in spec.neurons.iter().enumerate() {
        if pa + spec.within[r] > n {
            return Err(bad(
                "neurons",
                format!(
                    "region {r} has {n} neurons but {} latents",
                    pa + spec.within[r]
                ),
            ));
        }
    }
    let kern = |ell: f64| {
        kernel_by_name(&spec.kernel, ell).ok_or_else(|| {
            bad(
                "kernel",
                format!(
                    "`{}` is not one of: {}",
                    spec.kernel,
                    KERNEL_NAMES.join(", ")
                ),
            )
        })
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(spec.seed);
    let (nt, tn) = (spec.trials, spec.bins);
    // Latents: x[r][trial] is T × q_r (across first, then within).
    let qs: Vec<usize> = spec.within.iter().map(|w| pa + w).collect();
    let mut x: Vec<Vec<Mat>> = qs
        .iter()
        .map(|&q| (0..nt).map(|_| Mat::zeros(tn, q)).collect())
        .collect();
    // δ[j][r][t], bins.
    let paths: Vec<Vec<Vec<f64>>> = (0..pa)
        .map(|j| {
            (0..nr)
                .map(|r| {
                    let a = spec.delay_sway.get(j).map_or(0.0, |s| s[r]);
                    (0..tn)
                        .map(|t| {
                            let ph = 2.0 * std::f64::consts::PI * t as f64 / (tn - 1) as f64;
                            spec.delays[j][r] + a * ph.sin()
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    for j in 0..pa {
        let k = kern(spec.across_timescales[j])?;
        let dl = &paths[j];
        let n = nr * tn;
        let cov = Mat::from_fn(n, n, |a, b| {
            let (ra, ta) = (a / tn, a % tn);
            let (rb, tb) = (b / tn, b % tn);
            k.cov(ta as f64 - tb as f64 + dl[rb][tb] - dl[ra][ta]) + if a == b { 1e-9 } else { 0.0 }
        });
        let l = cholesky(&cov).map_err(|_| {
            bad(
                "delays",
                "the joint covariance is not positive definite".into(),
            )
        })?;
        for trial in 0..nt {
            let z = l.mv(&normals(&mut rng, n));
            for r in 0..nr {
                for t in 0..tn {
                    x[r][trial][(t, j)] = z[r * tn + t];
                }
            }
        }
    }
    let kw = kern(spec.within_timescale)?;
    let lw = cholesky(&Mat::from_fn(tn, tn, |a, b| {
        kw.cov(a as f64 - b as f64) + if a == b { 1e-9 } else { 0.0 }
    }))
    .map_err(|_| {
        bad(
            "within_timescale",
            "GP covariance not positive definite".into(),
        )
    })?;
    for r in 0..nr {
        for j in 0..spec.within[r] {
            for trial in 0..nt {
                let z = lw.mv(&normals(&mut rng, tn));
                for t in 0..tn {
                    x[r][trial][(t, pa + j)] = z[t];
                }
            }
        }
    }
    // Observations.
    let mut obs = ObsParams {
        c: vec![],
        d: vec![],
        r: vec![],
    };
    let mut regions = Vec::with_capacity(nr);
    for r in 0..nr {
        let n = spec.neurons[r];
        let mut c = Mat::from_vec(n, qs[r], normals(&mut rng, n * qs[r]));
        for (j, l) in loads.iter().enumerate() {
            if !l[r] {
                for i in 0..n {
                    c[(i, j)] = 0.0;
                }
            }
        }
        let d = normals(&mut rng, n);
        let raw: Vec<f64> = (0..n).map(|_| rng.random_range(0.5..1.5)).collect();
        let tr_cc: f64 = c.data.iter().map(|v| v * v).sum();
        let scale = tr_cc / (spec.snr * raw.iter().sum::<f64>());
        let rv: Vec<f64> = raw.iter().map(|v| v * scale).collect();
        let trials: Vec<Mat> = (0..nt)
            .map(|trial| {
                let mut y = x[r][trial].mul_t(&c);
                for t in 0..tn {
                    let e = normals(&mut rng, n);
                    for i in 0..n {
                        y[(t, i)] += d[i] + rv[i].sqrt() * e[i];
                    }
                }
                y
            })
            .collect();
        regions.push(trials);
        obs.c.push(c);
        obs.d.push(d);
        obs.r.push(rv);
    }
    let names = (0..nr).map(|r| format!("region{r}")).collect();
    let data = Data::new(names, regions)?;
    Ok((
        data,
        Truth {
            delays: spec.delays.clone(),
            across_timescales: spec.across_timescales.clone(),
            within_timescale: spec.within_timescale,
            obs,
            kernel: spec.kernel.clone(),
            snr: spec.snr,
            loads,
            delay_paths: if spec.delay_sway.is_empty() {
                vec![]
            } else {
                paths
            },
            seed: spec.seed,
        },
    ))
}
