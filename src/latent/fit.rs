//! `fit(data, spec)`: GPFA and DLAG by expectation–maximisation on the state-space engine.
//!
//! One iteration:
//! 1. **E-step**: lift the prior ([`Prior::lift`]), reduce the observations to the latent
//!    space ([`reduce`]), Kalman filter (the log marginal likelihood, recorded in the trace)
//!    and RTS smoother (sequential or parallel scan, `Spec::parallel`);
//! 2. **M-step, observations**: `[C_r d_r] = (Σ y x̃ᵀ)(Σ E[x̃ x̃ᵀ])⁻¹` with `x̃ = [x; 1]` and
//!    `R_r = diag(Σ y yᵀ − [C_r d_r] Σ x̃ yᵀ) / (trials·T)`, floored at `min_var_frac` of each
//!    neuron's variance (Yu et al. 2009; the floor is GPFA's `minVarFrac`);
//! 3. **M-step, prior**: one gradient-ascent step on the log marginal likelihood in the log
//!    timescales and the delays (central finite differences of the filter's likelihood, a
//!    normalised step halved until the likelihood increases): an ECME step (Liu & Rubin 1994),
//!    so the likelihood never decreases. Delays start from a coarse grid search (½-bin steps,
//!    coordinate-wise, within `±max_delay`) at iteration `delay_grid_at`.
//!
//! Presets: `gpfa` (every latent shared by all regions, no delay; Matérn kernels use their
//! exact SDE) and `dlag` (across-region latents with one delay per region and latent, region 0
//! the reference, plus within-region latents; the across latents use the AR(P) lift).
//! Initialisation: PCA of all neurons for the shared/across loadings, PCA of each region's
//! residual for its within loadings.

// Regions, trials and latents index several parallel arrays at once: index loops read clearer.
#![allow(clippy::needless_range_loop)]

use std::time::Instant;

use neurodiff_models::latent::linalg::{chol_solve, cholesky, sym_eigen, Mat};
use neurodiff_models::latent::{kernel_by_name, KERNEL_NAMES};
use serde::Serialize;

use super::ard::{Ard, ArdOut, RegionStats};
use super::exact;
use super::kalman::{filter, filter_parallel, smooth, smooth_parallel, Smoothed, Ssm};
use super::model::{
    reduce, reduce_with, Data, Kind, Lds, Lifted, ObsParams, Prior, Process, Reduced,
};
use super::LatentError;

/// The model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Gaussian-process factor analysis: shared latents, no delays.
    Gpfa,
    /// Delayed latents across groups: across-region latents with delays, within-region latents.
    Dlag,
    /// A free linear-Gaussian dynamical system shared by all regions (learnable A, Q, initial
    /// mean and covariance).
    Lds,
    /// Multi-region DLAG (Gokcen et al. 2023): every latent delayed per region, the regions
    /// it loads on found by variational automatic relevance determination ([`super::ard`]).
    Mdlag,
    /// The adaptive-delay model (Li et al., ICML 2025): DLAG with time-varying delays
    /// `δ(t)` in a cosine basis, initialised by rank-1 deflation ([`super::adm`]).
    Adm,
}

crate::choice!(Method, "method", [Gpfa => "gpfa", Dlag => "dlag", Lds => "lds", Mdlag => "mdlag", Adm => "adm"]);

/// How the E-step computes the posterior of the latents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The state-space lift and a Kalman filter/smoother, `O(T)`.
    Ssm,
    /// The dense joint Gaussian process, `O((Tq)³)` ([`super::exact`]): the reference.
    Exact,
}

crate::choice!(Engine, "engine", [Ssm => "ssm", Exact => "exact"]);

/// What to fit and how.
#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    /// The model family.
    pub method: Method,
    /// Across-region (DLAG) or shared (GPFA) latents.
    pub across: usize,
    /// Within-region latents per region (DLAG; empty or zeros for GPFA).
    pub within: Vec<usize>,
    /// Kernel name.
    pub kernel: String,
    /// Initial timescale, bins.
    pub init_timescale: f64,
    /// AR order of the lift for kernels without an exact SDE or with delays.
    pub ar_order: usize,
    /// White-noise jitter of AR-lifted latents (variance relative to 1).
    pub jitter: f64,
    /// Largest |delay|, bins (must be below the trial length).
    pub max_delay: f64,
    /// EM iterations at most.
    pub max_iter: usize,
    /// Stop when the log-likelihood gains less than `tol · |LL|` in an iteration.
    pub tol: f64,
    /// Use the parallel-scan filter and smoother in the E-step.
    pub parallel: bool,
    /// The E-step's engine.
    pub engine: Engine,
    /// Learn timescales.
    pub learn_timescales: bool,
    /// Learn delays (DLAG).
    pub learn_delays: bool,
    /// The iteration at which the delays are initialised by grid search (DLAG).
    pub delay_grid_at: usize,
    /// Floor of the private variances, as a fraction of each neuron's variance.
    pub min_var_frac: f64,
    /// mDLAG: shape `a₀` and rate `b₀` of the Gamma prior on the loadings' precisions.
    pub ard_prior: (f64, f64),
    /// mDLAG: a latent loads on a region when it explains at least this share of the
    /// region's variance (else it is pruned there, and its delay and, when pruned everywhere
    /// but one region, its timescale are no longer learned).
    pub prune_frac: f64,
    /// ADM: size `B` of the delays' cosine basis over the trial (the constant included; 1 is
    /// DLAG), at most half the trial length.
    pub delay_basis: usize,
    /// ADM: EM iterations of each rank-1 deflation round (0: no deflation initialisation).
    pub deflation_iter: usize,
}

impl Spec {
    /// The defaults of a preset.
    pub fn preset(method: Method, across: usize, within: Vec<usize>) -> Self {
        Self {
            method,
            across,
            within,
            kernel: "rbf".into(),
            init_timescale: 5.0,
            ar_order: 4,
            jitter: 1e-3,
            max_delay: 5.0,
            max_iter: 200,
            tol: 1e-7,
            parallel: false,
            engine: Engine::Ssm,
            learn_timescales: true,
            learn_delays: matches!(method, Method::Dlag | Method::Mdlag | Method::Adm),
            delay_grid_at: 3,
            min_var_frac: 0.01,
            ard_prior: (1e-3, 1e-3),
            prune_frac: 0.01,
            delay_basis: 4,
            deflation_iter: 30,
        }
    }
}

/// One fitted latent process.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ProcessOut {
    /// Shared, across or within.
    pub kind: Kind,
    /// The region of a within-region latent.
    pub region: Option<usize>,
    /// Kernel.
    pub kernel: String,
    /// Timescale, bins.
    pub timescale: f64,
    /// Delay per region (across latents; region 0 is the reference), bins.
    pub delays: Vec<f64>,
    /// Standard error of each delay, bins (0 for the reference region; `null` where the
    /// log-likelihood is not concave in the delays): from the curvature of the marginal
    /// log-likelihood at the fitted delays and timescales, `√diag((−∇²ℓ)⁻¹)` by central finite
    /// differences, the observation model held at its fitted value.
    #[serde(default, deserialize_with = "null_as_nan")]
    pub delay_se: Vec<f64>,
    /// ADM: the delay trajectory `δ_r(t)` per region and bin (bins; region 0 the reference);
    /// `delays` is then its time average.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delay_path: Vec<Vec<f64>>,
    /// ADM: per region the coefficients `w_1 … w_{B−1}` of the cosine basis (bins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delay_coefs: Vec<Vec<f64>>,
}

/// `null` (how JSON writes NaN) read back as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    use serde::Deserialize;
    let v: Vec<Option<f64>> = Vec::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

/// The prior of a fitted model from its processes (as written in `latent.json`), for
/// evaluating it on data without refitting.
pub fn prior_from(
    processes: &[ProcessOut],
    lds: Option<Lds>,
    n_regions: usize,
    ar_order: usize,
    jitter: f64,
) -> Result<Prior, LatentError> {
    let mut out = Vec::with_capacity(processes.len());
    for (i, p) in processes.iter().enumerate() {
        let kernel = kernel_by_name(&p.kernel, p.timescale)
            .ok_or_else(|| bad("fit", format!("process {i}: unknown kernel `{}`", p.kernel)))?;
        if !(p.timescale > 0.0 && p.timescale.is_finite()) {
            return Err(bad(
                "fit",
                format!("process {i}: timescale {}", p.timescale),
            ));
        }
        let (delays, observers) = match p.kind {
            Kind::Shared => (vec![0.0], (0..n_regions).map(|r| (r, 0)).collect()),
            Kind::Across => {
                if p.delays.len() != n_regions {
                    return Err(bad(
                        "fit",
                        format!(
                            "process {i} has {} delays for {n_regions} regions",
                            p.delays.len()
                        ),
                    ));
                }
                (p.delays.clone(), (0..n_regions).map(|r| (r, r)).collect())
            }
            Kind::Within => match p.region {
                Some(r) if r < n_regions => (vec![0.0], vec![(r, 0)]),
                _ => {
                    return Err(bad(
                        "fit",
                        format!("within-region process {i} names no region of the {n_regions}"),
                    ))
                }
            },
        };
        out.push(Process {
            kind: p.kind,
            kernel,
            delays,
            observers,
        });
    }
    let tv = if processes.iter().any(|p| !p.delay_coefs.is_empty()) {
        let coefs = processes.iter().map(|p| p.delay_coefs.clone()).collect();
        let paths: Vec<Vec<Vec<f64>>> = processes.iter().map(|p| p.delay_path.clone()).collect();
        Some(super::adm::tv_from_paths(&out, coefs, &paths)?)
    } else {
        None
    };
    Ok(Prior {
        processes: out,
        ar_order,
        jitter,
        n_regions,
        lds,
        tv,
    })
}

/// Delay-recovery RMSE (bins) of the fitted across-region latents against true delays
/// `truth[latent][region]` (region 0 the reference of both): over the delays of regions ≥ 1,
/// with the fitted latents matched to the true ones by the assignment of least error (the
/// latents' order is arbitrary). `None` without across latents on either side.
pub fn delay_rmse(processes: &[ProcessOut], truth: &[Vec<f64>]) -> Option<f64> {
    let est: Vec<&Vec<f64>> = processes
        .iter()
        .filter(|p| p.kind == Kind::Across)
        .map(|p| &p.delays)
        .collect();
    let m = est.len().min(truth.len());
    if m == 0 {
        return None;
    }
    // Squared error of one latent's delays relative to region 0, and their count.
    fn err(e: &[f64], t: &[f64]) -> (f64, usize) {
        let n = e.len().min(t.len());
        let se = (1..n).map(|r| (e[r] - e[0] - (t[r] - t[0])).powi(2)).sum();
        (se, n.saturating_sub(1))
    }
    // Best assignment of true latents to fitted ones by exhaustive search (few latents).
    fn best(
        i: usize,
        used: &mut [bool],
        est: &[&Vec<f64>],
        truth: &[Vec<f64>],
        m: usize,
    ) -> (f64, usize) {
        if i == m {
            return (0.0, 0);
        }
        let mut out = (f64::INFINITY, 0);
        for j in 0..est.len() {
            if used[j] {
                continue;
            }
            used[j] = true;
            let (a, na) = err(est[j], &truth[i]);
            let (b, nb) = best(i + 1, used, est, truth, m);
            used[j] = false;
            if a + b < out.0 {
                out = (a + b, na + nb);
            }
        }
        out
    }
    let (se, n) = best(0, &mut vec![false; est.len()], &est, truth, m);
    (n > 0).then(|| (se / n as f64).sqrt())
}

/// Delay-recovery RMSE (bins) of an mDLAG fit: each true latent that loads on two regions or
/// more (`truth_loads[latent][region]`) is matched to one fitted latent that ARD kept on two
/// regions or more (`fit_loads[region][latent]`, as in [`ArdOut::loads`]), by the assignment
/// of least error; the error of a pair is over the true latent's regions, delays relative to
/// the first of them. `None` when no true latent is shared or fewer fitted latents are.
pub fn delay_rmse_masked(
    processes: &[ProcessOut],
    fit_loads: &[Vec<bool>],
    truth: &[Vec<f64>],
    truth_loads: &[Vec<bool>],
) -> Option<f64> {
    let est: Vec<&Vec<f64>> = processes
        .iter()
        .enumerate()
        .filter(|(p, _)| fit_loads.iter().filter(|l| l[*p]).count() >= 2)
        .map(|(_, p)| &p.delays)
        .collect();
    let shared: Vec<(Vec<usize>, &Vec<f64>)> = truth
        .iter()
        .zip(truth_loads)
        .map(|(t, l)| ((0..l.len()).filter(|&r| l[r]).collect::<Vec<_>>(), t))
        .filter(|(rs, _)| rs.len() >= 2)
        .collect();
    if shared.is_empty() || est.len() < shared.len() {
        return None;
    }
    fn err(e: &[f64], t: &[f64], rs: &[usize]) -> f64 {
        let r0 = rs[0];
        rs[1..]
            .iter()
            .map(|&r| (e[r] - e[r0] - (t[r] - t[r0])).powi(2))
            .sum()
    }
    fn best(
        i: usize,
        used: &mut [bool],
        est: &[&Vec<f64>],
        shared: &[(Vec<usize>, &Vec<f64>)],
    ) -> f64 {
        if i == shared.len() {
            return 0.0;
        }
        let mut out = f64::INFINITY;
        for j in 0..est.len() {
            if used[j] {
                continue;
            }
            used[j] = true;
            let v = err(est[j], shared[i].1, &shared[i].0) + best(i + 1, used, est, shared);
            used[j] = false;
            out = out.min(v);
        }
        out
    }
    let n: usize = shared.iter().map(|(rs, _)| rs.len() - 1).sum();
    let se = best(0, &mut vec![false; est.len()], &est, &shared);
    Some((se / n as f64).sqrt())
}

/// What `fit` returns.
#[derive(Debug, Clone, Serialize)]
pub struct FitResult {
    /// The settings.
    pub spec: Spec,
    /// The latent processes.
    pub processes: Vec<ProcessOut>,
    /// The observation model.
    pub obs: ObsParams,
    /// The fitted latent dynamics of the `lds` preset.
    pub lds: Option<super::model::Lds>,
    /// mDLAG: the loadings' relevance (which latent loads on which region).
    pub ard: Option<ArdOut>,
    /// Log marginal likelihood after each E-step (nats, all trials).
    pub loglik: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the tolerance was reached.
    pub converged: bool,
    /// Per region, the names of its latents (`across0`, `within1`, …) in column order.
    pub latent_names: Vec<Vec<String>>,
    /// Wall time, s.
    pub wall_s: f64,
    /// Posterior means, per trial `T × q` (all regions' latents, region by region).
    #[serde(skip)]
    pub latents: Vec<Mat>,
    /// Posterior covariances of the latents per bin, `q × q` (shared by all trials).
    #[serde(skip)]
    pub latent_covs: Vec<Mat>,
    /// The fitted prior (for [`infer`] on other trials).
    #[serde(skip)]
    pub prior: Prior,
}

/// The posterior of the latents of `data` under a fitted model: the log marginal likelihood
/// (all trials), per trial the `T × q` posterior means, per bin the `q × q` covariances.
pub fn infer(
    data: &Data,
    prior: &Prior,
    obs: &ObsParams,
    engine: Engine,
    parallel: bool,
) -> Result<(f64, Vec<Mat>, Vec<Mat>), LatentError> {
    let red = reduce(data, obs, &data.names)?;
    let e = estep(prior, &red.ys, &red.r, engine, parallel)?;
    Ok((e.loglik + red.constant, e.latents, e.covs))
}

/// The E-step on reduced observations: the reduced log-likelihood (without the reduction's
/// constant), the latents' posterior moments and, for the state-space engine, the state's.
struct EStep {
    loglik: f64,
    latents: Vec<Mat>,
    covs: Vec<Mat>,
    state: Option<Smoothed>,
}

fn estep(
    prior: &Prior,
    ys: &[Mat],
    r: &Mat,
    engine: Engine,
    parallel: bool,
) -> Result<EStep, LatentError> {
    let tn = ys.first().map_or(0, |y| y.rows);
    if let Some(tv) = prior.tv.as_ref().filter(|tv| tv.any_varies()) {
        if tv.bins != tn {
            return Err(LatentError::Data(format!(
                "the adm fit's delay trajectory has {} bins but the data have {tn}",
                tv.bins
            )));
        }
    }
    match engine {
        Engine::Exact => {
            let (loglik, latents, covs) = exact::posterior(prior, ys, r)?;
            Ok(EStep {
                loglik,
                latents,
                covs,
                state: None,
            })
        }
        Engine::Ssm => {
            let lifted = prior.lift()?;
            let ssm = ssm_of(&lifted, r.clone());
            let (f, s) = if parallel {
                let f = filter_parallel(&ssm, ys)?;
                let s = smooth_parallel(&ssm, &f)?;
                (f, s)
            } else {
                let f = filter(&ssm, ys)?;
                let s = smooth(&ssm, &f)?;
                (f, s)
            };
            let (latents, covs) = project(&lifted, &s.means, &s.covs, tn);
            Ok(EStep {
                loglik: f.loglik.iter().sum(),
                latents,
                covs,
                state: Some(s),
            })
        }
    }
}

/// The latents' moments from the state's.
fn project(lifted: &Lifted, means: &[Mat], covs: &[Mat], tn: usize) -> (Vec<Mat>, Vec<Mat>) {
    let q = lifted.h.rows;
    let latents = means
        .iter()
        .map(|m| {
            let mut out = Mat::zeros(tn, q);
            for t in 0..tn {
                let v = lifted.h.mv(&m.data[t * m.cols..(t + 1) * m.cols]);
                out.data[t * q..(t + 1) * q].copy_from_slice(&v);
            }
            out
        })
        .collect();
    let covs = covs
        .iter()
        .map(|c| lifted.h.mul(c).mul_t(&lifted.h))
        .collect();
    (latents, covs)
}

fn bad(name: &'static str, message: String) -> LatentError {
    LatentError::Setting { name, message }
}

/// Checks the spec against the data.
fn validate(data: &Data, spec: &Spec) -> Result<(), LatentError> {
    let nr = data.n_regions();
    let tn = data.n_bins();
    if kernel_by_name(&spec.kernel, 1.0).is_none() {
        return Err(bad(
            "kernel",
            format!(
                "`{}` is not one of: {}",
                spec.kernel,
                KERNEL_NAMES.join(", ")
            ),
        ));
    }
    let within: Vec<usize> = match spec.method {
        Method::Gpfa => {
            if spec.within.iter().any(|&w| w > 0) {
                return Err(bad(
                    "within",
                    "GPFA has no within-region latents: give --across only".into(),
                ));
            }
            vec![0; nr]
        }
        Method::Lds => {
            if spec.within.iter().any(|&w| w > 0) {
                return Err(bad(
                    "within",
                    "LDS latents are shared by all regions: give --across only".into(),
                ));
            }
            if spec.engine == Engine::Exact {
                return Err(bad(
                    "engine",
                    "the exact engine is for the GP presets (gpfa, dlag), not lds".into(),
                ));
            }
            vec![0; nr]
        }
        Method::Mdlag => {
            if spec.within.iter().any(|&w| w > 0) {
                return Err(bad(
                    "within",
                    "mDLAG finds which regions each latent loads on by ARD: give --across (the \
                     number of latents) only"
                        .into(),
                ));
            }
            if nr < 2 {
                return Err(bad("method", "mDLAG needs at least two regions".into()));
            }
            if !(spec.ard_prior.0 > 0.0 && spec.ard_prior.1 > 0.0) {
                return Err(bad(
                    "ard-prior",
                    format!("{:?}: shape and rate must be positive", spec.ard_prior),
                ));
            }
            vec![0; nr]
        }
        Method::Dlag | Method::Adm => {
            if spec.method == Method::Adm {
                if spec.across == 0 {
                    return Err(bad(
                        "across",
                        "method adm needs at least one across-region latent (its delays are \
                         what varies over time): give --across 1 or more"
                            .into(),
                    ));
                }
                if nr < 2 {
                    return Err(bad("method", "adm needs at least two regions".into()));
                }
                if spec.delay_basis == 0 || spec.delay_basis > tn / 2 {
                    return Err(bad(
                        "delay-basis",
                        format!(
                            "{} basis functions: must be in 1..={} (half the trial of {tn} bins)",
                            spec.delay_basis,
                            tn / 2
                        ),
                    ));
                }
                if spec.engine == Engine::Exact {
                    return Err(bad(
                        "engine",
                        "the exact engine has no time-varying delays: use --engine ssm for adm"
                            .into(),
                    ));
                }
            }
            if spec.within.len() != nr {
                return Err(bad(
                    "within",
                    format!("{} values given for {nr} regions", spec.within.len()),
                ));
            }
            spec.within.clone()
        }
    };
    if spec.across + within.iter().sum::<usize>() == 0 {
        return Err(bad("across", "no latents to fit".into()));
    }
    for (r, n) in data.neurons().into_iter().enumerate() {
        let q = spec.across + within[r];
        if q > n {
            return Err(bad(
                "across",
                format!(
                    "region `{}` has {n} neurons but {q} latents: more latents than neurons",
                    data.names[r]
                ),
            ));
        }
    }
    if matches!(spec.method, Method::Dlag | Method::Mdlag | Method::Adm)
        && spec.learn_delays
        && !(spec.max_delay >= 0.0 && spec.max_delay < (tn - 1) as f64)
    {
        return Err(bad(
            "max-delay",
            format!(
                "{} bins is not below the trial length ({tn} bins)",
                spec.max_delay
            ),
        ));
    }
    if spec.method != Method::Lds && !(spec.init_timescale > 0.0 && spec.init_timescale.is_finite())
    {
        return Err(bad(
            "init-timescale",
            format!("{} is not positive", spec.init_timescale),
        ));
    }
    if spec.ar_order == 0 || spec.ar_order >= tn {
        return Err(bad(
            "ar-order",
            format!("{} must be in 1..{tn} (the trial length)", spec.ar_order),
        ));
    }
    Ok(())
}

/// The prior of a preset with every timescale at `ell` and zero delays.
fn build_prior(data: &Data, spec: &Spec) -> Prior {
    let nr = data.n_regions();
    let k = |ell| kernel_by_name(&spec.kernel, ell).expect("validated kernel");
    let mut processes = Vec::new();
    let mut lds = None;
    match spec.method {
        Method::Lds => {
            // A slow, stable start: A = 0.9 I with the stationary covariance I.
            let q = spec.across;
            lds = Some(Lds {
                a: Mat::eye(q).scale(0.9),
                q: Mat::eye(q).scale(1.0 - 0.81),
                m0: vec![0.0; q],
                p0: Mat::eye(q),
            });
        }
        Method::Gpfa => {
            for _ in 0..spec.across {
                processes.push(Process {
                    kind: Kind::Shared,
                    kernel: k(spec.init_timescale),
                    delays: vec![0.0],
                    observers: (0..nr).map(|r| (r, 0)).collect(),
                });
            }
        }
        Method::Dlag | Method::Mdlag | Method::Adm => {
            for _ in 0..spec.across {
                processes.push(Process {
                    kind: Kind::Across,
                    kernel: k(spec.init_timescale),
                    delays: vec![0.0; nr],
                    observers: (0..nr).map(|r| (r, r)).collect(),
                });
            }
            for (r, &w) in spec.within.iter().enumerate() {
                for _ in 0..w {
                    processes.push(Process {
                        kind: Kind::Within,
                        kernel: k(spec.init_timescale),
                        delays: vec![0.0],
                        observers: vec![(r, 0)],
                    });
                }
            }
        }
    }
    let tv = (spec.method == Method::Adm).then(|| {
        super::adm::TvDelay::new(&processes, data.n_bins(), spec.delay_basis, spec.max_delay)
    });
    Prior {
        processes,
        ar_order: spec.ar_order,
        jitter: spec.jitter,
        n_regions: nr,
        lds,
        tv,
    }
}

/// Sample mean and covariance of a region (or of all neurons stacked).
fn moments(data: &Data, regions: &[usize]) -> (Vec<f64>, Mat) {
    let cols: Vec<(usize, usize)> = regions
        .iter()
        .flat_map(|&r| (0..data.regions[r][0].cols).map(move |i| (r, i)))
        .collect();
    let n = cols.len();
    let mut mean = vec![0.0; n];
    let mut cnt = 0.0;
    for k in 0..data.n_trials() {
        for t in 0..data.n_bins() {
            for (c, &(r, i)) in cols.iter().enumerate() {
                mean[c] += data.regions[r][k][(t, i)];
            }
            cnt += 1.0;
        }
    }
    mean.iter_mut().for_each(|m| *m /= cnt);
    let mut cov = Mat::zeros(n, n);
    let mut v = vec![0.0; n];
    for k in 0..data.n_trials() {
        for t in 0..data.n_bins() {
            for (c, &(r, i)) in cols.iter().enumerate() {
                v[c] = data.regions[r][k][(t, i)] - mean[c];
            }
            for a in 0..n {
                for b in a..n {
                    cov[(a, b)] += v[a] * v[b];
                }
            }
        }
    }
    let cov = Mat::from_fn(n, n, |a, b| {
        if a <= b {
            cov[(a, b)] / cnt
        } else {
            cov[(b, a)] / cnt
        }
    });
    (mean, cov)
}

/// PCA initialisation of the observation model, columns in the order of
/// [`Prior::region_latents`] (shared/across first, then within).
fn init_obs(data: &Data, prior: &Prior, spec: &Spec) -> ObsParams {
    let nr = data.n_regions();
    let all: Vec<usize> = (0..nr).collect();
    let (_, cov_all) = moments(data, &all);
    let (vals, vecs) = sym_eigen(&cov_all);
    let pa = spec.across;
    let neurons = data.neurons();
    let mut obs = ObsParams {
        c: vec![],
        d: vec![],
        r: vec![],
    };
    let mut row0 = 0;
    for r in 0..nr {
        let n = neurons[r];
        let (mean, cov) = moments(data, &[r]);
        let qr = prior.q_dims()[r];
        let mut c = Mat::zeros(n, qr);
        for j in 0..pa.min(qr) {
            let s = vals[j].max(1e-12).sqrt();
            for i in 0..n {
                c[(i, j)] = vecs[(row0 + i, j)] * s;
            }
        }
        let ca = c.block(0, 0, n, pa.min(qr));
        let resid = cov.sub(&ca.mul_t(&ca));
        let (rv, rvec) = sym_eigen(&resid);
        for j in pa..qr {
            let s = rv[j - pa].max(1e-12).sqrt();
            for i in 0..n {
                c[(i, j)] = rvec[(i, j - pa)] * s;
            }
        }
        let cc = c.mul_t(&c);
        let rdiag = (0..n)
            .map(|i| {
                (cov[(i, i)] - cc[(i, i)])
                    .max(spec.min_var_frac * cov[(i, i)])
                    .max(1e-9)
            })
            .collect();
        obs.c.push(c);
        obs.d.push(mean);
        obs.r.push(rdiag);
        row0 += n;
    }
    obs
}

/// The learnable prior parameters: `(process, None)` for a log timescale, `(process,
/// Some(output))` for a delay.
fn param_list(prior: &Prior, spec: &Spec) -> Vec<(usize, Option<usize>)> {
    let mut v = Vec::new();
    for (p, proc_) in prior.processes.iter().enumerate() {
        if spec.learn_timescales {
            v.push((p, None));
        }
        if spec.learn_delays && proc_.kind == Kind::Across {
            for o in 1..proc_.delays.len() {
                v.push((p, Some(o)));
            }
        }
    }
    v
}

fn get_theta(prior: &Prior, params: &[(usize, Option<usize>)]) -> Vec<f64> {
    params
        .iter()
        .map(|&(p, o)| match o {
            None => prior.processes[p].kernel.timescale().ln(),
            Some(o) => prior.processes[p].delays[o],
        })
        .collect()
}

fn set_theta(prior: &mut Prior, params: &[(usize, Option<usize>)], th: &[f64], b: &Bounds) {
    for (&(p, o), &v) in params.iter().zip(th) {
        match o {
            None => prior.processes[p]
                .kernel
                .set_timescale(v.clamp(b.log_ell.0, b.log_ell.1).exp()),
            Some(o) => prior.processes[p].delays[o] = v.clamp(-b.delay, b.delay),
        }
    }
}

fn clamp_theta(th: &mut [f64], params: &[(usize, Option<usize>)], b: &Bounds) {
    for (v, &(_, o)) in th.iter_mut().zip(params) {
        *v = match o {
            None => v.clamp(b.log_ell.0, b.log_ell.1),
            Some(_) => v.clamp(-b.delay, b.delay),
        };
    }
}

struct Bounds {
    log_ell: (f64, f64),
    delay: f64,
}

fn ssm_of(l: &Lifted, r: Mat) -> Ssm {
    Ssm {
        a: l.a.clone(),
        q: l.q.clone(),
        h: l.h.clone(),
        r,
        m0: l.m0.clone(),
        p0: l.p0.clone(),
        tv: l.tv.clone(),
    }
}

/// The reduced log-likelihood of the prior `prior` on pseudo-observations `ys`, or −∞ when
/// the prior cannot be lifted or filtered (a step that went too far).
fn objective(prior: &Prior, ys: &[Mat], r: &Mat, engine: Engine) -> f64 {
    if engine == Engine::Exact {
        return match exact::loglik(prior, ys, r) {
            Ok(v) if v.is_finite() => v,
            _ => f64::NEG_INFINITY,
        };
    }
    let Ok(l) = prior.lift() else {
        return f64::NEG_INFINITY;
    };
    match filter(&ssm_of(&l, r.clone()), ys) {
        Ok(f) => {
            let s: f64 = f.loglik.iter().sum();
            if s.is_finite() {
                s
            } else {
                f64::NEG_INFINITY
            }
        }
        Err(_) => f64::NEG_INFINITY,
    }
}

/// Per region, its range of latent indices (region by region).
fn region_rows(prior: &Prior) -> Vec<std::ops::Range<usize>> {
    let mut o = 0;
    prior
        .q_dims()
        .into_iter()
        .map(|q| {
            o += q;
            o - q..o
        })
        .collect()
}

/// The closed-form M-step of the LDS dynamics from the smoothed state moments (Shumway &
/// Stoffer 1982; Ghahramani & Hinton 1996): with `Σ` over trials and bins,
/// `A = Σ E[x_{t+1} x_tᵀ] (Σ E[x_t x_tᵀ])⁻¹`, `Q = (Σ E[x_{t+1} x_{t+1}ᵀ] − A Σ E[x_t x_{t+1}ᵀ]) / (K(T−1))`,
/// `m0` the mean of the first bin's posterior means, `P0` their scatter plus the posterior
/// covariance. `E[x_{t+1} x_tᵀ] = P^s_{t+1} G_tᵀ + m_{t+1} m_tᵀ`.
fn lds_mstep(l: &mut Lds, s: &Smoothed) -> Result<(), LatentError> {
    let n = l.a.rows;
    let tn = s.covs.len();
    let nk = s.means.len() as f64;
    let m0: Vec<f64> = (0..n)
        .map(|i| s.means.iter().map(|m| m[(0, i)]).sum::<f64>() / nk)
        .collect();
    let mut p0 = s.covs[0].clone();
    for m in &s.means {
        for a in 0..n {
            for b in 0..n {
                p0[(a, b)] += (m[(0, a)] - m0[a]) * (m[(0, b)] - m0[b]) / nk;
            }
        }
    }
    if tn < 2 {
        l.m0 = m0;
        l.p0 = p0.sym();
        return Ok(());
    }
    let (mut s00, mut s11, mut s10) = (Mat::zeros(n, n), Mat::zeros(n, n), Mat::zeros(n, n));
    for t in 0..tn - 1 {
        let cross = s.covs[t + 1].mul_t(&s.gains[t]);
        s00 = s00.add(&s.covs[t].scale(nk));
        s11 = s11.add(&s.covs[t + 1].scale(nk));
        s10 = s10.add(&cross.scale(nk));
        for m in &s.means {
            for a in 0..n {
                for b in 0..n {
                    s00[(a, b)] += m[(t, a)] * m[(t, b)];
                    s11[(a, b)] += m[(t + 1, a)] * m[(t + 1, b)];
                    s10[(a, b)] += m[(t + 1, a)] * m[(t, b)];
                }
            }
        }
    }
    let l00 = cholesky(&s00.sym()).map_err(|e| LatentError::NotPositiveDefinite {
        what: "latent second moment Σ E[x xᵀ] of the LDS M-step",
        step: 0,
        iteration: None,
        value: e.value,
    })?;
    let a = chol_solve(&l00, &s10.t()).t();
    let q = s11
        .sub(&a.mul_t(&s10))
        .scale(1.0 / (nk * (tn - 1) as f64))
        .sym();
    l.a = a;
    l.q = q;
    l.m0 = m0;
    l.p0 = p0.sym();
    Ok(())
}

/// Standard errors of the learned delays: `√diag((−H)⁻¹)` with `H` the Hessian of the
/// marginal log-likelihood in all learned prior parameters (log timescales and delays, so the
/// delays' errors account for their correlation with the timescales) by central finite
/// differences (step 0.05 bins / 0.05 in log timescale), the observation model fixed. NaN
/// where `−H` is not positive definite. Returns `(process, output, se)`.
fn delay_standard_errors(
    prior: &Prior,
    params: &[(usize, Option<usize>)],
    spec: &Spec,
    ys: &[Mat],
    r: &Mat,
) -> Vec<(usize, usize, f64)> {
    let th = get_theta(prior, params);
    let n = th.len();
    let h = 0.05;
    // Unclamped evaluation: a delay at its bound still has a curvature.
    let wide = Bounds {
        log_ell: (f64::NEG_INFINITY, f64::INFINITY),
        delay: f64::INFINITY,
    };
    let f = |d: &[(usize, f64)]| {
        let mut x = th.clone();
        for &(i, v) in d {
            x[i] += v;
        }
        let mut pr = prior.clone();
        set_theta(&mut pr, params, &x, &wide);
        objective(&pr, ys, r, spec.engine)
    };
    let f0 = f(&[]);
    let mut hess = Mat::zeros(n, n);
    for i in 0..n {
        hess[(i, i)] = (f(&[(i, h)]) - 2.0 * f0 + f(&[(i, -h)])) / (h * h);
        for j in 0..i {
            let v = (f(&[(i, h), (j, h)]) - f(&[(i, h), (j, -h)]) - f(&[(i, -h), (j, h)])
                + f(&[(i, -h), (j, -h)]))
                / (4.0 * h * h);
            hess[(i, j)] = v;
            hess[(j, i)] = v;
        }
    }
    let cov = cholesky(&hess.scale(-1.0))
        .ok()
        .map(|l| chol_solve(&l, &Mat::eye(n)));
    params
        .iter()
        .enumerate()
        .filter_map(|(i, &(p, o))| {
            o.map(|o| {
                let se = cov.as_ref().map_or(f64::NAN, |c| {
                    if c[(i, i)] > 0.0 {
                        c[(i, i)].sqrt()
                    } else {
                        f64::NAN
                    }
                });
                (p, o, se)
            })
        })
        .collect()
}

/// The learnable prior parameters that still matter: without ARD all of them; under ARD a
/// latent's timescale while it loads on some region, its delay in region `o` while it loads
/// on `o` and on another region.
fn active_params(
    params: &[(usize, Option<usize>)],
    ard: Option<&Ard>,
    obs: &ObsParams,
    spec: &Spec,
) -> Vec<(usize, Option<usize>)> {
    let Some(a) = ard else {
        return params.to_vec();
    };
    let vf = a.variance_fraction(obs);
    let on = |p: usize, r: usize| vf[r][p] >= spec.prune_frac;
    params
        .iter()
        .copied()
        .filter(|&(p, o)| {
            let n_on = (0..vf.len()).filter(|&r| on(p, r)).count();
            match o {
                None => n_on >= 1,
                Some(o) => on(p, o) && n_on >= 2,
            }
        })
        .collect()
}

/// Fits `spec` to `data` by EM; `progress(iteration, loglik)` after every E-step.
pub fn fit(
    data: &Data,
    spec: &Spec,
    mut progress: impl FnMut(usize, f64),
) -> Result<FitResult, LatentError> {
    let start = Instant::now();
    validate(data, spec)?;
    let tn = data.n_bins();
    let nr = data.n_regions();
    let mut prior = build_prior(data, spec);
    let mut obs = init_obs(data, &prior, spec);
    // ADM: the rank-1 deflation initialisation of the across latents.
    let deflated = spec.method == Method::Adm && spec.deflation_iter > 0 && spec.across > 1;
    if deflated {
        let rounds = super::adm::deflate(data, spec)?;
        for (j, r1) in rounds.into_iter().enumerate() {
            let p = &mut prior.processes[j];
            p.kernel.set_timescale(r1.timescale);
            p.delays = r1.delays;
            if let Some(tv) = &mut prior.tv {
                tv.coefs[j] = r1.coefs;
            }
            for (r, col) in r1.columns.iter().enumerate() {
                for (i, v) in col.iter().enumerate() {
                    obs.c[r][(i, j)] = *v;
                }
            }
        }
    }
    let mut step_tv = 0.5;
    let mut ard = (spec.method == Method::Mdlag)
        .then(|| Ard::new(&obs, spec.ard_prior.0, spec.ard_prior.1, 1e-6));
    // The reduced observations (under ARD with the loadings' expected precision).
    let reduced = |obs: &ObsParams, ard: &Option<Ard>| -> Result<Reduced, LatentError> {
        let extra = ard.as_ref().map(|a| a.extra_j(obs));
        reduce_with(data, obs, extra.as_deref(), &data.names)
    };
    let floors: Vec<Vec<f64>> = (0..nr)
        .map(|r| {
            let (_, cov) = moments(data, &[r]);
            (0..cov.rows)
                .map(|i| (spec.min_var_frac * cov[(i, i)]).max(1e-12))
                .collect()
        })
        .collect();
    let params = param_list(&prior, spec);
    let bounds = Bounds {
        log_ell: (0.3f64.ln(), (2.0 * tn as f64).ln()),
        delay: spec.max_delay,
    };
    let mut step = 0.5;
    let mut trace = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    let mut last = None;
    for it in 0..spec.max_iter.max(1) {
        iterations = it + 1;
        // E-step.
        let red = reduced(&obs, &ard)?;
        let e = estep(&prior, &red.ys, &red.r, spec.engine, spec.parallel)
            .map_err(|e| e.at_iteration(it))?;
        // The log-likelihood, or under ARD the evidence lower bound.
        let ll = e.loglik + red.constant + ard.as_ref().map_or(0.0, |a| a.elbo_terms(&obs));
        if !ll.is_finite() {
            return Err(LatentError::NotPositiveDefinite {
                what: "log-likelihood (not finite)",
                step: 0,
                iteration: Some(it),
                value: ll,
            });
        }
        progress(it, ll);
        let done = trace
            .last()
            .is_some_and(|&prev: &f64| (ll - prev).abs() < spec.tol * ll.abs());
        trace.push(ll);
        let region_rows = region_rows(&prior);
        if done || it + 1 == spec.max_iter.max(1) {
            converged = done;
            last = Some((e.latents, e.covs));
            break;
        }
        // M-step: the latent dynamics of the LDS preset (closed form).
        if let (Some(l), Some(s)) = (&mut prior.lds, &e.state) {
            lds_mstep(l, s).map_err(|e| e.at_iteration(it))?;
        }
        // M-step: observation model, region by region.
        for r in 0..nr {
            let rows = region_rows[r].clone();
            let qr = rows.len();
            let n = data.regions[r][0].cols;
            let mut sxx = Mat::zeros(qr + 1, qr + 1);
            let mut syx = Mat::zeros(n, qr + 1);
            let mut syy = vec![0.0; n];
            for t in 0..tn {
                let cov = e.covs[t].block(rows.start, rows.start, qr, qr);
                for k in 0..data.n_trials() {
                    let lk = &e.latents[k];
                    let m = &lk.data[t * lk.cols + rows.start..t * lk.cols + rows.end];
                    for a in 0..qr {
                        for b in 0..qr {
                            sxx[(a, b)] += cov[(a, b)] + m[a] * m[b];
                        }
                        sxx[(a, qr)] += m[a];
                        sxx[(qr, a)] += m[a];
                    }
                    sxx[(qr, qr)] += 1.0;
                    let y = &data.regions[r][k];
                    for i in 0..n {
                        let yi = y[(t, i)];
                        for a in 0..qr {
                            syx[(i, a)] += yi * m[a];
                        }
                        syx[(i, qr)] += yi;
                        syy[i] += yi * yi;
                    }
                }
            }
            if let Some(a) = &mut ard {
                let st = RegionStats {
                    sxx: &sxx,
                    syx: &syx,
                    syy: &syy,
                };
                a.update_region(&mut obs, r, &st, &floors[r])
                    .map_err(|e| e.at_iteration(it))?;
                continue;
            }
            let l = cholesky(&sxx.sym()).map_err(|e| LatentError::NotPositiveDefinite {
                what: "latent second-moment matrix of the M-step",
                step: 0,
                iteration: Some(it),
                value: e.value,
            })?;
            let cd = chol_solve(&l, &syx.t()).t();
            let cnt = (data.n_trials() * tn) as f64;
            obs.c[r] = cd.block(0, 0, n, qr);
            obs.d[r] = (0..n).map(|i| cd[(i, qr)]).collect();
            obs.r[r] = (0..n)
                .map(|i| {
                    let v =
                        (syy[i] - (0..=qr).map(|a| cd[(i, a)] * syx[(i, a)]).sum::<f64>()) / cnt;
                    v.max(floors[r][i])
                })
                .collect();
        }
        // M-step: the prior's timescales and delays (ECME). Under ARD, only those of the
        // latents that load on the regions concerned.
        let params = active_params(&params, ard.as_ref(), &obs, spec);
        if params.is_empty() {
            continue;
        }
        let red = reduced(&obs, &ard)?;
        let mut th = get_theta(&prior, &params);
        let mut f0 = objective(&prior, &red.ys, &red.r, spec.engine);
        let grid_at = spec.delay_grid_at.min(spec.max_iter.saturating_sub(2));
        // ADM: the delays' time-varying part, once the constant part has been searched for.
        if spec.learn_delays && (deflated || it > grid_at) {
            f0 = super::adm::coef_step(&mut prior, f0, &mut step_tv, |pr| {
                objective(pr, &red.ys, &red.r, spec.engine)
            });
        }
        if spec.learn_delays && !deflated && it == grid_at {
            // Coordinate-wise grid search of every delay, ½-bin steps.
            let grid: Vec<f64> = {
                let k = (spec.max_delay / 0.5).floor() as i64;
                (-k..=k).map(|i| i as f64 * 0.5).collect()
            };
            for (pi, &(_, o)) in params.iter().enumerate() {
                if o.is_none() {
                    continue;
                }
                for &g in &grid {
                    let mut cand = th.clone();
                    cand[pi] = g;
                    let mut pr = prior.clone();
                    set_theta(&mut pr, &params, &cand, &bounds);
                    let v = objective(&pr, &red.ys, &red.r, spec.engine);
                    if v > f0 {
                        f0 = v;
                        th = cand;
                        prior = pr;
                    }
                }
            }
        }
        let grad = central_gradient(&th, 1e-4, |x| {
            let mut p = prior.clone();
            set_theta(&mut p, &params, x, &bounds);
            objective(&p, &red.ys, &red.r, spec.engine)
        });
        let gn = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        if gn > 0.0 {
            let mut a = step;
            for _ in 0..12 {
                let mut cand: Vec<f64> =
                    th.iter().zip(&grad).map(|(t, g)| t + a * g / gn).collect();
                clamp_theta(&mut cand, &params, &bounds);
                let mut pr = prior.clone();
                set_theta(&mut pr, &params, &cand, &bounds);
                let v = objective(&pr, &red.ys, &red.r, spec.engine);
                if v > f0 {
                    prior = pr;
                    step = (a * 2.0).min(1.0);
                    break;
                }
                a *= 0.5;
                step = a.max(1e-6);
            }
        }
    }
    let (latents, latent_covs) = last.expect("at least one E-step");
    let delay_se =
        if spec.learn_delays && matches!(spec.method, Method::Dlag | Method::Mdlag | Method::Adm) {
            let red = reduced(&obs, &ard)?;
            let active = active_params(&param_list(&prior, spec), ard.as_ref(), &obs, spec);
            delay_standard_errors(&prior, &active, spec, &red.ys, &red.r)
        } else {
            vec![]
        };
    let mut counters = [0usize; 3];
    let names_of: Vec<String> = prior
        .processes
        .iter()
        .map(|p| {
            let (i, stem) = match p.kind {
                Kind::Shared => (0, "shared"),
                Kind::Across => (1, "across"),
                Kind::Within => (2, "within"),
            };
            counters[i] += 1;
            format!("{stem}{}", counters[i] - 1)
        })
        .collect();
    let latent_names = (0..nr)
        .map(|r| {
            prior
                .region_latents(r)
                .into_iter()
                .map(|(p, _)| match prior.lds {
                    Some(_) => format!("lds{p}"),
                    None => names_of[p].clone(),
                })
                .collect()
        })
        .collect();
    let mut processes = prior
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| ProcessOut {
            kind: p.kind,
            region: (p.kind == Kind::Within).then(|| p.observers[0].0),
            kernel: p.kernel.name().to_string(),
            timescale: p.kernel.timescale(),
            delays: if p.kind == Kind::Across {
                p.delays.clone()
            } else {
                vec![]
            },
            delay_se: vec![],
            delay_path: match &prior.tv {
                Some(tv) if tv.varies(i) => (0..p.delays.len()).map(|o| tv.path(i, p, o)).collect(),
                _ => vec![],
            },
            delay_coefs: match &prior.tv {
                Some(tv) if tv.varies(i) => tv.coefs[i].clone(),
                _ => vec![],
            },
        })
        .collect::<Vec<_>>();
    for (p, o, se) in delay_se {
        let d = &mut processes[p].delay_se;
        if d.is_empty() {
            *d = vec![0.0; prior.processes[p].delays.len()];
        }
        d[o] = se;
    }
    let ard_out = ard.as_ref().map(|a| a.report(&obs, spec.prune_frac));
    Ok(FitResult {
        spec: spec.clone(),
        processes,
        obs,
        lds: prior.lds.clone(),
        ard: ard_out,
        loglik: trace,
        iterations,
        converged,
        latent_names,
        wall_s: start.elapsed().as_secs_f64(),
        latents,
        latent_covs,
        prior,
    })
}

/// Central-difference gradient of `f` at `th` with step `h`; a non-finite difference counts
/// as 0 (that direction is not taken). Used by the delay/timescale ascent here and by ADM's
/// delay-basis coefficients.
pub(crate) fn central_gradient(th: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    (0..th.len())
        .map(|i| {
            let mut up = th.to_vec();
            up[i] += h;
            let mut dn = th.to_vec();
            dn[i] -= h;
            let g = (f(&up) - f(&dn)) / (2.0 * h);
            if g.is_finite() {
                g
            } else {
                0.0
            }
        })
        .collect()
}

/// Held-out-neuron co-smoothing RMSE per region (the NLB-style evaluation mbrila reports):
/// averaged over `masks` random masks.
#[derive(Debug, Clone, Serialize)]
pub struct Cosmooth {
    /// Fraction of each region's neurons held out per mask.
    pub frac: f64,
    /// Number of masks averaged.
    pub masks: usize,
    /// Per region, RMSE of the trial-averaged (PSTH) prediction of the held-out neurons, in
    /// the data's units.
    pub psth_rmse: Vec<f64>,
    /// Per region, RMSE of the single-trial prediction.
    pub single_trial_rmse: Vec<f64>,
    /// For the figure: per region, the first held-out neuron of the first mask, its observed
    /// and predicted trial means per bin.
    #[serde(skip)]
    pub examples: Vec<(String, Vec<f64>, Vec<f64>)>,
}

/// Co-smoothing on `data` (normally held-out trials) under a fitted model: for each mask, a
/// fraction `frac` of every region's neurons (at least one, leaving at least as many context
/// neurons as the region has latents) is hidden; the latents are inferred from the other
/// neurons of all regions; the hidden neurons are predicted as `C x + d`.
pub fn cosmooth(
    data: &Data,
    prior: &Prior,
    obs: &ObsParams,
    frac: f64,
    masks: usize,
    seed: u64,
    engine: Engine,
) -> Result<Cosmooth, LatentError> {
    use rand::{Rng, SeedableRng};
    if !(frac > 0.0 && frac < 1.0) || masks == 0 {
        return Err(bad(
            "cosmooth-frac",
            format!("{frac} must be in (0, 1), with at least one mask"),
        ));
    }
    let nr = data.n_regions();
    let qs = prior.q_dims();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut all = Vec::with_capacity(masks);
    for _ in 0..masks {
        let mut held: Vec<Vec<usize>> = Vec::with_capacity(nr);
        for r in 0..nr {
            let n = obs.c[r].rows;
            let k = ((n as f64 * frac).round() as usize).clamp(1, n.saturating_sub(qs[r]).max(1));
            if n - k < qs[r] || k >= n {
                return Err(bad(
                    "cosmooth-frac",
                    format!(
                        "region `{}` has {n} neurons and {} latents: too few to hold any out",
                        data.names[r], qs[r]
                    ),
                ));
            }
            let mut idx: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                idx.swap(i, rng.random_range(0..=i));
            }
            let mut h = idx[..k].to_vec();
            h.sort_unstable();
            held.push(h);
        }
        all.push(held);
    }
    let mut cs = cosmooth_masks(data, prior, obs, &all, engine)?;
    cs.frac = frac;
    Ok(cs)
}

/// [`cosmooth`] with the held-out neurons given: `masks[m][r]` lists the hidden neurons of
/// region `r` in mask `m` (0-based within the region), e.g. another tool's masks, so that both
/// are scored on the same neurons. Each region of each mask must hide at least one neuron and
/// keep at least as many as the region has latents; the reported `frac` is the mean hidden
/// fraction.
///
/// # Errors
/// No mask; a mask with the wrong number of regions; a neuron out of range or listed twice;
/// a region left with fewer neurons than latents (each naming mask, region and neuron).
pub fn cosmooth_masks(
    data: &Data,
    prior: &Prior,
    obs: &ObsParams,
    masks_given: &[Vec<Vec<usize>>],
    engine: Engine,
) -> Result<Cosmooth, LatentError> {
    let nr = data.n_regions();
    let (nt, tn) = (data.n_trials(), data.n_bins());
    let qs = prior.q_dims();
    let masks = masks_given.len();
    if masks == 0 {
        return Err(bad("holdout-file", "no held-out-neuron mask given".into()));
    }
    let mut frac = 0.0;
    for (m, held) in masks_given.iter().enumerate() {
        if held.len() != nr {
            return Err(bad(
                "holdout-file",
                format!("mask {m} lists {} regions; the data have {nr}", held.len()),
            ));
        }
        for (r, h) in held.iter().enumerate() {
            let n = obs.c[r].rows;
            let region = &data.names[r];
            if h.is_empty() {
                return Err(bad(
                    "holdout-file",
                    format!("mask {m}, region `{region}`: no neuron held out"),
                ));
            }
            if let Some(&i) = h.iter().find(|&&i| i >= n) {
                return Err(bad(
                    "holdout-file",
                    format!("mask {m}, region `{region}`: neuron {i} is beyond its {n} neurons"),
                ));
            }
            let mut sorted = h.clone();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(bad(
                    "holdout-file",
                    format!(
                        "mask {m}, region `{region}`: neuron {} is listed twice",
                        w[0]
                    ),
                ));
            }
            if n - h.len() < qs[r] {
                return Err(bad(
                    "holdout-file",
                    format!(
                        "mask {m}, region `{region}`: hiding {} of {n} neurons leaves fewer than its {} latents",
                        h.len(),
                        qs[r]
                    ),
                ));
            }
            frac += h.len() as f64 / n as f64 / (masks * nr) as f64;
        }
    }
    let offs: Vec<usize> = qs
        .iter()
        .scan(0, |o, &q| {
            let v = *o;
            *o += q;
            Some(v)
        })
        .collect();
    let mut psth = vec![0.0; nr];
    let mut single = vec![0.0; nr];
    let mut examples = Vec::new();
    for (mask, held) in masks_given.iter().enumerate() {
        let held: Vec<Vec<usize>> = held
            .iter()
            .map(|h| {
                let mut h = h.clone();
                h.sort_unstable();
                h
            })
            .collect();
        let keep: Vec<Vec<usize>> = (0..nr)
            .map(|r| {
                (0..obs.c[r].rows)
                    .filter(|i| !held[r].contains(i))
                    .collect()
            })
            .collect();
        let ctx = Data {
            names: data.names.clone(),
            regions: (0..nr)
                .map(|r| {
                    data.regions[r]
                        .iter()
                        .map(|m| Mat::from_fn(tn, keep[r].len(), |t, j| m[(t, keep[r][j])]))
                        .collect()
                })
                .collect(),
        };
        let ctx_obs = ObsParams {
            c: (0..nr)
                .map(|r| Mat::from_fn(keep[r].len(), qs[r], |i, j| obs.c[r][(keep[r][i], j)]))
                .collect(),
            d: (0..nr)
                .map(|r| keep[r].iter().map(|&i| obs.d[r][i]).collect())
                .collect(),
            r: (0..nr)
                .map(|r| keep[r].iter().map(|&i| obs.r[r][i]).collect())
                .collect(),
        };
        let (_, latents, _) = infer(&ctx, prior, &ctx_obs, engine, false)?;
        for r in 0..nr {
            let h = &held[r];
            let mut se_single = 0.0;
            let mut mean_pred = vec![0.0; tn * h.len()];
            let mut mean_true = vec![0.0; tn * h.len()];
            for (k, lat) in latents.iter().enumerate() {
                for t in 0..tn {
                    for (hi, &i) in h.iter().enumerate() {
                        let pred = obs.d[r][i]
                            + (0..qs[r])
                                .map(|j| obs.c[r][(i, j)] * lat[(t, offs[r] + j)])
                                .sum::<f64>();
                        let y = data.regions[r][k][(t, i)];
                        se_single += (pred - y) * (pred - y);
                        mean_pred[t * h.len() + hi] += pred / nt as f64;
                        mean_true[t * h.len() + hi] += y / nt as f64;
                    }
                }
            }
            if mask == 0 {
                let nh = h.len();
                examples.push((
                    format!("{} neuron {}", data.names[r], h[0]),
                    (0..tn).map(|t| mean_true[t * nh]).collect(),
                    (0..tn).map(|t| mean_pred[t * nh]).collect(),
                ));
            }
            let se_psth: f64 = mean_pred
                .iter()
                .zip(&mean_true)
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            psth[r] += (se_psth / mean_pred.len() as f64).sqrt() / masks as f64;
            single[r] += (se_single / (nt * tn * h.len()) as f64).sqrt() / masks as f64;
        }
    }
    Ok(Cosmooth {
        frac,
        masks,
        psth_rmse: psth,
        single_trial_rmse: single,
        examples,
    })
}

/// One candidate of [`cross_validate`].
#[derive(Debug, Clone, Serialize)]
pub struct CvRow {
    /// Across-region (DLAG) or shared (GPFA, LDS) latents.
    pub across: usize,
    /// Within-region latents per region (DLAG).
    pub within: Vec<usize>,
    /// Wall time of the candidate's fits, s.
    pub wall_s: f64,
    /// Held-out log-likelihood per trial (nats), summed over the folds' held-out trials and
    /// divided by the number of trials.
    pub heldout_loglik_per_trial: f64,
}

/// The cross-validated choice of the number of across-region (or shared) latents: for each
/// candidate, `folds`-fold cross-validation over the trials of `data` (trial `k` in fold
/// `k mod folds`): fit on the other folds, the held-out fold's marginal log-likelihood under
/// that fit. Returns the rows and the index of the best (highest held-out likelihood).
pub fn cross_validate(
    data: &Data,
    spec: &Spec,
    candidates: &[usize],
    folds: usize,
) -> Result<(Vec<CvRow>, usize), LatentError> {
    let grid: Vec<(usize, Vec<usize>)> = candidates
        .iter()
        .map(|&c| (c, spec.within.clone()))
        .collect();
    cross_validate_grid(data, spec, &grid, folds)
}

/// [`cross_validate`] over a grid of `(across, within per region)` candidates (the within
/// counts as in [`Spec::within`]).
pub fn cross_validate_grid(
    data: &Data,
    spec: &Spec,
    candidates: &[(usize, Vec<usize>)],
    folds: usize,
) -> Result<(Vec<CvRow>, usize), LatentError> {
    let nt = data.n_trials();
    if folds < 2 || folds > nt {
        return Err(bad(
            "cv-folds",
            format!("{folds} folds for {nt} trials: need 2 ≤ folds ≤ trials"),
        ));
    }
    if candidates.is_empty() {
        return Err(bad("across", "no candidate latent counts".into()));
    }
    let mut rows = Vec::with_capacity(candidates.len());
    for (c, w) in candidates {
        let t0 = Instant::now();
        let mut s = spec.clone();
        s.across = *c;
        s.within = w.clone();
        let mut total = 0.0;
        for f in 0..folds {
            let train: Vec<usize> = (0..nt).filter(|k| k % folds != f).collect();
            let test: Vec<usize> = (0..nt).filter(|k| k % folds == f).collect();
            let res = fit(&data.subset(&train), &s, |_, _| {}).map_err(|e| match e {
                LatentError::Setting { name, message } => LatentError::Setting {
                    name,
                    message: format!(
                        "{message} (cross-validation candidate {c} across, {w:?} within)"
                    ),
                },
                e => e,
            })?;
            let (ll, _, _) = infer(&data.subset(&test), &res.prior, &res.obs, s.engine, false)?;
            total += ll;
        }
        rows.push(CvRow {
            across: *c,
            within: w.clone(),
            wall_s: t0.elapsed().as_secs_f64(),
            heldout_loglik_per_trial: total / nt as f64,
        });
    }
    let best = (0..rows.len())
        .max_by(|&a, &b| {
            rows[a]
                .heldout_loglik_per_trial
                .total_cmp(&rows[b].heldout_loglik_per_trial)
        })
        .expect("at least one candidate");
    Ok((rows, best))
}
