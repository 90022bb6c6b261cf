//! The adaptive-delay model (ADM; Li et al., ICML 2025): DLAG whose inter-region delays vary
//! over the trial, `δ_{r,j}(t)`, for each across-region latent `j` and region `r` (region 0 the
//! reference, `δ_0 ≡ 0`).
//!
//! **What follows mbrila** (BRAINML-GT/MBRILA, `src/mbrila/models/adm.py`,
//! `delays/time_varying.py`, `dynamics/markov_gp.py`, `examples/synthetic/demo_common.py`):
//!
//! - the prior is the AR(P) lift of each across latent with the delays *of the current bin*:
//!   the transition into bin `t + 1` is the exact Gaussian conditional of the outputs on the
//!   `P` previous values under the lagged covariances `k(τ + δ_b(t+1) − δ_a(t+1))`, and bin 0
//!   starts from the stationary law at `δ(0)` (mbrila's `lagged_cov_grid` with a `(T, R)`
//!   delay tensor: a locally stationary approximation, exact when `δ` is constant);
//! - the delays are learned by gradient ascent on the marginal likelihood inside EM, the
//!   observation model in closed form;
//! - the rank-1 deflation initialisation: one round per across latent, a model with a single
//!   across latent (and the within latents) is fitted to the residual, its across
//!   reconstruction `C_{:,j} x_j` subtracted; its timescale, delay trajectory and loading
//!   column seed latent `j` of the full model (mbrila's `rank1_deflation_init`; skipped when
//!   there is one across latent, where the round would be the full fit itself).
//!
//! **What differs**: mbrila learns one raw delay per bin, smoothed by a Gaussian window, with
//! Adam and weight decay; here `δ(t)` has few parameters, a cosine (DCT-II) basis
//!
//! ```text
//! δ_{r,j}(t) = w_0 + Σ_{b=1}^{B−1} w_b cos(π b (t + ½) / T),   t = 0 … T − 1 (bins)
//! ```
//!
//! with `B` = `Spec::delay_basis` (`--delay-basis`; `B = 1` is DLAG). `w_0` is the DLAG delay
//! of the process (the time average of `δ`, since the cosines sum to zero over the trial),
//! learned as in DLAG (grid search, then gradient steps); the `w_b` by normalised gradient
//! steps on central finite differences of the Kalman filter's likelihood, each accepted only
//! if the likelihood increases (ECME), so the trace never decreases. `δ(t)` is clamped to
//! `±max_delay`. The smoothness of `δ` is set by `B` rather than by a smoothing window. The
//! exact (dense GP) engine has no time-varying form; `adm` needs `--engine ssm`.

// Processes, outputs and basis functions index parallel arrays: index loops read clearer.
#![allow(clippy::needless_range_loop)]

use neurodiff_models::latent::linalg::Mat;

use super::fit::{fit, Method, Spec};
use super::model::{Data, Kind, Prior, Process};
use super::LatentError;

/// The time-varying part of the across latents' delays.
#[derive(Debug, Clone)]
pub struct TvDelay {
    /// Trial length `T`, bins.
    pub bins: usize,
    /// Basis size `B` (the constant included).
    pub basis: usize,
    /// Per process, per output, the coefficients `w_1 … w_{B−1}` (bins); empty for a process
    /// without time-varying delays.
    pub coefs: Vec<Vec<Vec<f64>>>,
    /// `|δ(t)|` is clamped to this (bins).
    pub bound: f64,
}

impl TvDelay {
    /// Zero coefficients for every across process of `processes` (outputs `1..`; output 0 is
    /// the reference and stays zero).
    pub fn new(processes: &[Process], bins: usize, basis: usize, bound: f64) -> Self {
        let coefs = processes
            .iter()
            .map(|p| {
                if p.kind == Kind::Across {
                    vec![vec![0.0; basis.saturating_sub(1)]; p.delays.len()]
                } else {
                    vec![]
                }
            })
            .collect();
        Self {
            bins,
            basis,
            coefs,
            bound,
        }
    }
    /// Basis function `b ≥ 1` at bin `t`.
    pub fn phi(&self, b: usize, t: usize) -> f64 {
        (std::f64::consts::PI * b as f64 * (t as f64 + 0.5) / self.bins as f64).cos()
    }
    /// Whether process `p` has time-varying delays.
    pub fn varies(&self, p: usize) -> bool {
        self.coefs
            .get(p)
            .is_some_and(|c| c.iter().any(|w| !w.is_empty()))
    }
    /// Whether any process has.
    pub fn any_varies(&self) -> bool {
        (0..self.coefs.len()).any(|p| self.varies(p))
    }
    /// `δ` of output `o` of process `p` (`proc_`) at bin `t`, bins.
    pub fn delay(&self, p: usize, proc_: &Process, o: usize, t: usize) -> f64 {
        let w = self
            .coefs
            .get(p)
            .and_then(|c| c.get(o))
            .map_or(&[][..], |w| &w[..]);
        let v = proc_.delays[o]
            + w.iter()
                .enumerate()
                .map(|(b, wb)| wb * self.phi(b + 1, t))
                .sum::<f64>();
        v.clamp(-self.bound, self.bound)
    }
    /// Process `p` with its delays at bin `t`.
    pub fn process_at(&self, p: usize, proc_: &Process, t: usize) -> Process {
        let mut out = proc_.clone();
        out.delays = (0..proc_.delays.len())
            .map(|o| self.delay(p, proc_, o, t))
            .collect();
        out
    }
    /// The trajectory `δ(t)` of output `o` of process `p` over the trial, bins.
    pub fn path(&self, p: usize, proc_: &Process, o: usize) -> Vec<f64> {
        (0..self.bins).map(|t| self.delay(p, proc_, o, t)).collect()
    }
    /// The learnable coefficients: `(process, output, index)`, outputs `1..`.
    pub fn params(&self) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        for (p, c) in self.coefs.iter().enumerate() {
            for (o, w) in c.iter().enumerate().skip(1) {
                for b in 0..w.len() {
                    v.push((p, o, b));
                }
            }
        }
        v
    }
    fn get(&self, params: &[(usize, usize, usize)]) -> Vec<f64> {
        params
            .iter()
            .map(|&(p, o, b)| self.coefs[p][o][b])
            .collect()
    }
    fn set(&mut self, params: &[(usize, usize, usize)], th: &[f64]) {
        for (&(p, o, b), &v) in params.iter().zip(th) {
            self.coefs[p][o][b] = v;
        }
    }
}

/// The prior with the time-varying delays set from a path (for a fit read back from
/// `latent.json`): `coefs[o]` per output, the bound the largest `|δ|` of the paths (so a path
/// clamped at the fit's bound is reproduced).
pub fn tv_from_paths(
    processes: &[Process],
    coefs: Vec<Vec<Vec<f64>>>,
    paths: &[Vec<Vec<f64>>],
) -> Result<TvDelay, LatentError> {
    let bins = paths.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let basis = coefs
        .iter()
        .flatten()
        .map(|w| w.len() + 1)
        .max()
        .unwrap_or(1);
    if coefs.len() != processes.len() {
        return Err(LatentError::Setting {
            name: "fit",
            message: "delay_coefs given for some processes only".into(),
        });
    }
    let bound = paths
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    Ok(TvDelay {
        bins,
        basis,
        coefs,
        bound,
    })
}

/// One ECME step in the basis coefficients: a normalised gradient step (central finite
/// differences of `objective`, step `h = 10⁻⁴` bins) of length `*step` bins, halved until the
/// objective increases (at most 12 times); `f0` is the objective at `prior`. Returns the new
/// objective.
pub(super) fn coef_step(
    prior: &mut Prior,
    f0: f64,
    step: &mut f64,
    objective: impl Fn(&Prior) -> f64,
) -> f64 {
    let Some(tv) = prior.tv.as_ref() else {
        return f0;
    };
    let params = tv.params();
    if params.is_empty() {
        return f0;
    }
    let th = tv.get(&params);
    let eval = |x: &[f64]| {
        let mut pr = prior.clone();
        pr.tv.as_mut().expect("tv").set(&params, x);
        (objective(&pr), pr)
    };
    let grad = super::fit::central_gradient(&th, 1e-4, |x| eval(x).0);
    let gn = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    if gn == 0.0 {
        return f0;
    }
    let mut a = *step;
    for _ in 0..12 {
        let cand: Vec<f64> = th.iter().zip(&grad).map(|(t, g)| t + a * g / gn).collect();
        let (v, pr) = eval(&cand);
        if v > f0 {
            *prior = pr;
            *step = (a * 2.0).min(1.0);
            return v;
        }
        a *= 0.5;
        *step = a.max(1e-6);
    }
    f0
}

/// What one deflation round hands to the full model: the across latent's timescale, DLAG
/// delays (`w_0`), basis coefficients per output, and loading column per region.
#[derive(Debug, Clone)]
pub(super) struct Rank1 {
    pub timescale: f64,
    pub delays: Vec<f64>,
    pub coefs: Vec<Vec<f64>>,
    pub columns: Vec<Vec<f64>>,
}

/// The rank-1 deflation initialisation (see the module documentation): `spec.across` rounds,
/// each an `adm` fit with one across latent (and `spec.within`) of at most
/// `spec.deflation_iter` EM iterations on the residual.
pub(super) fn deflate(data: &Data, spec: &Spec) -> Result<Vec<Rank1>, LatentError> {
    let mut resid = data.clone();
    let mut out = Vec::with_capacity(spec.across);
    let mut s1 = spec.clone();
    s1.method = Method::Adm;
    s1.across = 1;
    s1.deflation_iter = 0;
    s1.max_iter = spec.deflation_iter;
    for _ in 0..spec.across {
        let res = fit(&resid, &s1, |_, _| {})?;
        let pr = &res.prior;
        let proc0 = &pr.processes[0];
        let tv = pr.tv.as_ref().expect("adm prior");
        let qd = pr.q_dims();
        let mut columns = Vec::with_capacity(data.n_regions());
        let mut col = 0;
        for r in 0..data.n_regions() {
            let c = &res.obs.c[r];
            let cr: Vec<f64> = (0..c.rows).map(|i| c[(i, 0)]).collect();
            for (trial, y) in resid.regions[r].iter_mut().enumerate() {
                let lat: &Mat = &res.latents[trial];
                for t in 0..y.rows {
                    let x = lat[(t, col)];
                    for i in 0..y.cols {
                        y[(t, i)] -= cr[i] * x;
                    }
                }
            }
            columns.push(cr);
            col += qd[r];
        }
        out.push(Rank1 {
            timescale: proc0.kernel.timescale(),
            delays: proc0.delays.clone(),
            coefs: tv.coefs[0].clone(),
            columns,
        });
    }
    Ok(out)
}

/// Delay-trajectory recovery RMSE (bins): the fitted `δ_r(t) − δ_0(t)` of every across latent
/// against the truth's (`truth[j][r][t]`), over regions `1..`, all bins, with the fitted
/// latents matched to the true ones by the best permutation (up to 6 latents). `None` when
/// the counts differ or there is nothing to compare.
pub fn delay_path_rmse(fitted: &[Vec<Vec<f64>>], truth: &[Vec<Vec<f64>>]) -> Option<f64> {
    let k = fitted.len();
    if k == 0 || k != truth.len() || k > 6 {
        return None;
    }
    let err = |f: &Vec<Vec<f64>>, t: &Vec<Vec<f64>>| -> Option<(f64, usize)> {
        if f.len() != t.len() {
            return None;
        }
        let mut s = 0.0;
        let mut n = 0;
        for r in 1..f.len() {
            if f[r].len() != t[r].len() || f[0].len() != f[r].len() || t[0].len() != t[r].len() {
                return None;
            }
            for b in 0..f[r].len() {
                let d = (f[r][b] - f[0][b]) - (t[r][b] - t[0][b]);
                s += d * d;
                n += 1;
            }
        }
        Some((s, n))
    };
    let mut best: Option<f64> = None;
    let mut perm: Vec<usize> = (0..k).collect();
    loop {
        let mut s = 0.0;
        let mut n = 0;
        for (i, &j) in perm.iter().enumerate() {
            let (a, b) = err(&fitted[i], &truth[j])?;
            s += a;
            n += b;
        }
        if n > 0 {
            let v = (s / n as f64).sqrt();
            best = Some(best.map_or(v, |b: f64| b.min(v)));
        }
        // Next permutation (lexicographic).
        let Some(i) = (0..k.saturating_sub(1))
            .rev()
            .find(|&i| perm[i] < perm[i + 1])
        else {
            break;
        };
        let j = (i + 1..k)
            .rev()
            .find(|&j| perm[j] > perm[i])
            .expect("exists");
        perm.swap(i, j);
        perm[i + 1..].reverse();
    }
    best
}
