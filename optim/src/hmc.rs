//! Hamiltonian Monte Carlo (HMC) over a log density with its gradient, with bounded parameters
//! sampled through the inverse-sigmoid transform of [`crate::transform`].
//!
//! # Target
//! The caller supplies `θ ↦ (log p(θ), ∇_θ log p(θ))` (an unnormalised log posterior, e.g. a
//! log-likelihood of recorded traces under the simulator plus a log prior, with the simulator's
//! gradient). A parameter with [`Bounds`] `(l, u)` is sampled as an unbounded `z` with
//! `θ = l + (u − l) σ(z)`; the density of `z` includes the log-Jacobian,
//!
//! ```text
//! log p_z(z) = log p(θ(z)) + Σ_bounded log|dθ_i/dz_i|,
//! log|dθ/dz| = log(u − l) + log σ(z) + log(1 − σ(z)) = log(u − l) − softplus(z) − softplus(−z),
//! ∂/∂z log p_z = (∂ log p/∂θ) (u − l) σ(z)(1 − σ(z)) + 1 − 2σ(z),
//! ```
//!
//! so the θ-samples follow `p(θ)` itself. Unbounded parameters are sampled directly.
//!
//! # Sampler
//! Each iteration draws a momentum `ρ ~ N(0, M)` (diagonal mass `M`, identity by default), runs
//! `L` leapfrog steps of size `ε` on `H(z, ρ) = −log p_z(z) + ½ Σ ρ_i²/M_i`, and accepts the end
//! point with probability `α = min(1, exp(H_start − H_end))` (Neal 2011). A trajectory
//! *diverges* when the density or gradient becomes non-finite on the way (e.g. the simulator
//! blowing up, or `θ` rounding onto a bound), or when its energy error `H_end − H_start` exceeds
//! [`MAX_ENERGY_ERROR`] (= 1000, Stan's threshold: the step is far too large for the local
//! curvature). A divergent proposal is rejected (with `α = 0` for a non-finite one) and the
//! chain stays put; divergences are counted, never a panic.
//!
//! The closure is fallible: an `Err` from it (a simulator refusing its input, say) ends the run
//! and is returned as is. A non-finite value is not an error but a divergence, as above. The
//! sampler's own errors (bad settings, shapes, initial point) reach the caller through
//! `E: From<`[`Error`]`>`; with an infallible density use `E = `[`Error`] and wrap the value in
//! `Ok`.
//!
//! The trajectory length `εL` matters: near a full oscillation period of the posterior
//! (`2π` times its s.d. along a direction, in sampler coordinates, for unit mass) a trajectory
//! returns to its start and the chain mixes badly; about a quarter to half a period is good.
//!
//! By default the step size is tuned during warm-up by dual averaging towards a target mean
//! acceptance probability (Hoffman & Gelman 2014, Algorithm 5 and §3.2.1, with their constants
//! `γ = 0.05`, `t₀ = 10`, `κ = 0.75`, `μ = log(10 ε₀)`); sampling then uses the averaged step
//! `ε̄`. Warm-up draws are discarded either way. The warm-up's mean acceptance meets the target;
//! `ε̄` (a geometric mean of fluctuating iterates) usually accepts somewhat more (0.86 for 0.8
//! on a 20-dimensional Gaussian in the tests). In few dimensions the acceptance need not fall
//! monotonically with `ε` at a fixed `L` (the leapfrog's energy error on a Gaussian oscillates
//! with the trajectory length), so it may end well above the target.
//!
//! The diagonal mass can be adapted during warm-up too ([`HmcConfig::adapt_mass`], off by
//! default), by Stan's windowed scheme: a first buffer that tunes only the step size (75
//! iterations), slow windows of 25, 50, 100, … iterations (the last stretched to the final
//! buffer) at the end of each of which `1/M_i` becomes the regularised variance of the window's
//! draws of `z_i`, `n/(n + 5) · Var + 10⁻³ · 5/(n + 5)`, and dual averaging restarts from
//! `μ = log(10 ε)`; then a final buffer of 50 that tunes the step size for that mass (Stan
//! Reference Manual, "HMC algorithm parameters"; with fewer than 150 warm-up iterations the
//! three parts take 15 %, 75 % and 10 %). For posteriors whose scales differ by orders of
//! magnitude this is what lets one step size serve every direction. Correlations are not
//! adapted: for those, sample whitened coordinates `z = μ + L w` (a dense mass in effect), as
//! `examples/cell_hmc.rs` does.
//!
//! References: R. M. Neal, "MCMC using Hamiltonian dynamics", Handbook of Markov Chain Monte
//! Carlo (2011); M. D. Hoffman & A. Gelman, "The No-U-Turn Sampler", JMLR 15 (2014).
//!
//! Units: `θ` in each parameter's unit; `z`, `ε`, `ρ` and `M` live in the sampler's coordinates
//! (`z` for bounded parameters, `θ` for unbounded ones).

use rand_distr::{Distribution, Open01, StandardNormal};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::error::{Error, Result};
use crate::transform::Bounds;

/// Dual-averaging step-size adaptation (Hoffman & Gelman 2014, §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DualAveraging {
    /// Target mean acceptance probability `δ` in `(0, 1)` (0.65–0.8 is usual for HMC).
    pub target_accept: f64,
    /// Shrinkage `γ > 0` towards `μ = log(10 ε₀)`.
    pub gamma: f64,
    /// Iteration offset `t₀ ≥ 0` damping the first iterations.
    pub t0: f64,
    /// Decay exponent `κ ∈ (0.5, 1]` of the iterate averaging.
    pub kappa: f64,
}

/// Windowed adaptation of the diagonal mass during warm-up (Stan's scheme; see the module
/// documentation). Needs the step-size adaptation ([`HmcConfig::adapt`]) and at least
/// [`MIN_MASS_WARMUP`] warm-up iterations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MassAdaptation {
    /// Warm-up iterations at the start that tune only the step size (Stan: 75).
    pub init_buffer: usize,
    /// The first slow window's length, `≥ 1`; each next one is twice as long (Stan: 25).
    pub base_window: usize,
    /// Warm-up iterations at the end that tune only the step size (Stan: 50).
    pub term_buffer: usize,
}

/// The fewest warm-up iterations a mass adaptation accepts.
pub const MIN_MASS_WARMUP: usize = 20;

impl Default for MassAdaptation {
    fn default() -> Self {
        Self {
            init_buffer: 75,
            base_window: 25,
            term_buffer: 50,
        }
    }
}

impl MassAdaptation {
    /// For `n_warmup` warm-up iterations: the first slow window's first iteration, and the
    /// iteration each slow window ends before.
    fn windows(&self, n_warmup: usize) -> (usize, Vec<usize>) {
        let (mut init, mut base, mut term) = (self.init_buffer, self.base_window, self.term_buffer);
        if init + base + term > n_warmup {
            // Stan's split of a short warm-up: 15 % / 75 % / 10 %.
            init = n_warmup * 15 / 100;
            term = n_warmup / 10;
            base = n_warmup - init - term;
        }
        let (last, mut start, mut w) = (n_warmup - term, init, base.max(1));
        let mut ends = Vec::new();
        while start < last {
            // A window that would leave less than the next one's length before the final
            // buffer is stretched to it.
            let mut end = (start + w).min(last);
            if end + 2 * w > last {
                end = last;
            }
            ends.push(end);
            start = end;
            w *= 2;
        }
        (init, ends)
    }
}

impl Default for DualAveraging {
    fn default() -> Self {
        Self {
            target_accept: 0.8,
            gamma: 0.05,
            t0: 10.0,
            kappa: 0.75,
        }
    }
}

/// An energy error `H_end − H_start` above this marks a trajectory as divergent (Stan's value).
pub const MAX_ENERGY_ERROR: f64 = 1000.0;

/// HMC settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HmcConfig {
    /// Leapfrog step size `ε > 0` (the initial one `ε₀` when adapting).
    pub step_size: f64,
    /// Leapfrog steps per iteration `L ≥ 1`.
    pub n_leapfrog: usize,
    /// Warm-up iterations (discarded; the step size is adapted during them if `adapt` is set).
    pub n_warmup: usize,
    /// Iterations kept, `≥ 1`.
    pub n_samples: usize,
    /// Diagonal mass `M_i > 0` per parameter (`None`: all 1).
    pub mass: Option<Vec<f64>>,
    /// Seed of the random number generator (xoshiro256++): equal seeds give equal chains.
    pub seed: u64,
    /// Step-size adaptation during warm-up (default: dual averaging towards a mean acceptance
    /// probability of 0.8; `None` keeps `step_size` throughout).
    pub adapt: Option<DualAveraging>,
    /// Diagonal mass adaptation during warm-up (default `None`: the mass stays `mass`, or 1);
    /// it starts from `mass` when both are given.
    pub adapt_mass: Option<MassAdaptation>,
}

impl Default for HmcConfig {
    fn default() -> Self {
        Self {
            step_size: 0.1,
            n_leapfrog: 10,
            n_warmup: 500,
            n_samples: 1000,
            mass: None,
            seed: 0,
            adapt: Some(DualAveraging::default()),
            adapt_mass: None,
        }
    }
}

/// The chain and its diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct HmcResult {
    /// Kept draws of `θ` (bounded parameters in their own units), row-major
    /// `[n_samples, dim]`.
    pub samples: Vec<f64>,
    /// `log p(θ)` (as returned by the closure, without the Jacobian) of each kept draw.
    pub log_density: Vec<f64>,
    /// The number of parameters.
    pub dim: usize,
    /// Fraction of sampling iterations whose proposal was accepted.
    pub accept_rate: f64,
    /// Mean acceptance probability `α` over the sampling iterations (what dual averaging
    /// targets).
    pub mean_accept_prob: f64,
    /// Mean acceptance probability over the warm-up iterations (NaN without warm-up).
    pub warmup_accept_prob: f64,
    /// Step size used for sampling (`ε̄` after adaptation, else the given one).
    pub step_size: f64,
    /// The diagonal mass used for sampling (adapted, given, or 1), in sampler coordinates.
    pub mass: Vec<f64>,
    /// Divergent sampling iterations (non-finite density or gradient, or an energy error above
    /// [`MAX_ENERGY_ERROR`]); their proposals were rejected.
    pub divergences: usize,
    /// Divergent warm-up iterations (usually a few while the step size is still too large).
    pub warmup_divergences: usize,
    /// Evaluations of the closure (gradient evaluations), warm-up included.
    pub evaluations: usize,
}

impl HmcResult {
    /// Draw `s` (`θ`, length `dim`).
    pub fn sample(&self, s: usize) -> &[f64] {
        &self.samples[s * self.dim..(s + 1) * self.dim]
    }

    /// Column `i` of the draws (parameter `i` over the chain).
    pub fn column(&self, i: usize) -> Vec<f64> {
        self.samples
            .iter()
            .skip(i)
            .step_by(self.dim)
            .copied()
            .collect()
    }
}

/// `log(1 + e^a)` without overflow.
fn softplus(a: f64) -> f64 {
    a.max(0.0) + (-a.abs()).exp().ln_1p()
}

/// `σ(z)` without overflow.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The density in sampler coordinates at one point.
struct Point {
    z: Vec<f64>,
    /// `log p_z(z)` (log-Jacobian included).
    lp: f64,
    /// `∇_z log p_z`.
    grad: Vec<f64>,
    /// `θ(z)`.
    theta: Vec<f64>,
    /// `log p(θ)` as returned by the closure.
    lp_theta: f64,
}

struct Target<'a, F> {
    f: F,
    bounds: &'a [Option<Bounds>],
    evaluations: usize,
}

impl<F, E> Target<'_, F>
where
    F: FnMut(&[f64]) -> Result<(f64, Vec<f64>), E>,
    E: From<Error>,
{
    /// `Ok(None)` for a non-finite density or gradient (a divergence); `Err` for an error of the
    /// closure, or a gradient of the wrong length (a bug in the closure).
    fn eval(&mut self, z: Vec<f64>) -> Result<Option<Point>, E> {
        let theta: Vec<f64> = z
            .iter()
            .zip(self.bounds)
            .map(|(&zi, b)| match b {
                Some(b) => b.lower() + b.width() * sigmoid(zi),
                None => zi,
            })
            .collect();
        self.evaluations += 1;
        let (lp_theta, g) = (self.f)(&theta)?;
        if g.len() != z.len() {
            return Err(E::from(Error::shape(
                "hmc",
                format!(
                    "the log-density closure returned a gradient of length {} for {} parameters",
                    g.len(),
                    z.len()
                ),
            )));
        }
        let mut lp = lp_theta;
        let mut grad = g;
        for (i, b) in self.bounds.iter().enumerate() {
            if let Some(b) = b {
                let s = sigmoid(z[i]);
                lp += b.width().ln() - softplus(z[i]) - softplus(-z[i]);
                grad[i] = grad[i] * b.width() * s * (1.0 - s) + 1.0 - 2.0 * s;
            }
        }
        if !lp.is_finite() || grad.iter().any(|v| !v.is_finite()) {
            return Ok(None);
        }
        Ok(Some(Point {
            z,
            lp,
            grad,
            theta,
            lp_theta,
        }))
    }
}

/// Samples `log_density` (`θ ↦ Ok((log p(θ), ∇_θ log p(θ)))`) by HMC from `init` (in `θ`,
/// strictly inside any bounds), with `bounds[i]` the bounds of parameter `i` (`None`:
/// unbounded).
///
/// Errors (before sampling) on: mismatched lengths (a gradient whose length is not
/// `init.len()` at any evaluation, too), an initial value outside its bounds or not finite
/// (naming parameter `i`), a non-finite initial density or gradient, and bad settings (step
/// size ≤ 0, no leapfrog step, no sample, bad masses or adaptation constants). An error of the
/// closure is returned as is.
///
/// ```
/// use neurodiff_optim::{hmc, Error, HmcConfig};
/// // A standard normal.
/// let r = hmc(
///     |x: &[f64]| Ok::<_, Error>((-0.5 * x[0] * x[0], vec![-x[0]])),
///     &[0.0],
///     &[None],
///     &HmcConfig { n_warmup: 100, n_samples: 200, ..Default::default() },
/// )
/// .unwrap();
/// assert_eq!(r.samples.len(), 200);
/// ```
pub fn hmc<F, E>(
    log_density: F,
    init: &[f64],
    bounds: &[Option<Bounds>],
    cfg: &HmcConfig,
) -> Result<HmcResult, E>
where
    F: FnMut(&[f64]) -> Result<(f64, Vec<f64>), E>,
    E: From<Error>,
{
    let dim = init.len();
    check_config(dim, bounds, cfg)?;
    let mut z0 = Vec::with_capacity(dim);
    for (i, (&v, b)) in init.iter().zip(bounds).enumerate() {
        match b {
            Some(b) => {
                b.check(&format!("{i}"), v)?;
                z0.push(b.to_unbounded_f64(v));
            }
            None => {
                if !v.is_finite() {
                    return Err(Error::setting(
                        "init",
                        format!("parameter {i}: the initial value must be finite, got {v}"),
                    )
                    .into());
                }
                z0.push(v);
            }
        }
    }
    let mut mass = cfg.mass.clone().unwrap_or_else(|| vec![1.0; dim]);
    let mut sqrt_mass: Vec<f64> = mass.iter().map(|m| m.sqrt()).collect();
    // Mass adaptation: the slow windows, and the current one's draws (count, running mean,
    // sum of squared deviations: Welford).
    let (first_slow, window_ends) = cfg
        .adapt_mass
        .map(|a| a.windows(cfg.n_warmup))
        .unwrap_or_default();
    let last_slow = window_ends.last().copied().unwrap_or(0);
    let (mut w_n, mut w_mean, mut w_m2) = (0usize, vec![0.0; dim], vec![0.0; dim]);
    let mut target = Target {
        f: log_density,
        bounds,
        evaluations: 0,
    };
    let mut cur = target.eval(z0)?.ok_or_else(|| {
        Error::setting(
            "init",
            "the log density or its gradient is not finite at the initial point",
        )
    })?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);

    // Dual averaging state.
    let mut eps = cfg.step_size;
    let mut mu = (10.0 * cfg.step_size).ln();
    let mut h_bar = 0.0f64;
    let mut log_eps_bar = 0.0f64;
    // Iterations since dual averaging (re)started.
    let mut t_da = 0usize;

    let total = cfg.n_warmup + cfg.n_samples;
    let mut samples = Vec::with_capacity(cfg.n_samples * dim);
    let mut log_density = Vec::with_capacity(cfg.n_samples);
    let (mut accepted, mut sum_alpha, mut sum_alpha_warm) = (0usize, 0.0, 0.0);
    let (mut divergences, mut warmup_divergences) = (0usize, 0usize);
    for it in 0..total {
        let warm = it < cfg.n_warmup;
        if it == cfg.n_warmup && cfg.adapt.is_some() && cfg.n_warmup > 0 {
            eps = log_eps_bar.exp();
        }
        let rho0: Vec<f64> = sqrt_mass
            .iter()
            .map(|s| s * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng))
            .collect();
        let mass_now = &mass;
        let kinetic = |p: &[f64]| -> f64 {
            0.5 * p.iter().zip(mass_now).map(|(p, m)| p * p / m).sum::<f64>()
        };
        let h0 = -cur.lp + kinetic(&rho0);
        // Leapfrog.
        let mut rho = rho0;
        let mut prop: Option<Point> = None;
        {
            let mut z = cur.z.clone();
            let mut grad = cur.grad.clone();
            for (p, g) in rho.iter_mut().zip(&grad) {
                *p += 0.5 * eps * g;
            }
            for l in 0..cfg.n_leapfrog {
                for ((zi, p), m) in z.iter_mut().zip(&rho).zip(&mass) {
                    *zi += eps * p / m;
                }
                match target.eval(z.clone())? {
                    None => {
                        prop = None;
                        break;
                    }
                    Some(pt) => {
                        grad.clone_from(&pt.grad);
                        let f = if l + 1 == cfg.n_leapfrog { 0.5 } else { 1.0 };
                        for (p, g) in rho.iter_mut().zip(&grad) {
                            *p += f * eps * g;
                        }
                        prop = Some(pt);
                    }
                }
            }
        }
        // The energy error `H_end − H_start` (+∞ for a non-finite trajectory).
        let energy_error = match &prop {
            Some(pt) => -pt.lp + kinetic(&rho) - h0,
            None => f64::INFINITY,
        };
        let alpha = {
            let a = (-energy_error).exp().min(1.0);
            if a.is_nan() {
                0.0
            } else {
                a
            }
        };
        let u: f64 = Open01.sample(&mut rng);
        // A NaN energy error diverges too.
        let diverged = energy_error.is_nan() || energy_error > MAX_ENERGY_ERROR;
        let accept = !diverged && u < alpha;
        if accept {
            cur = prop.expect("checked");
        }
        if warm {
            sum_alpha_warm += alpha;
            warmup_divergences += diverged as usize;
            if let Some(da) = &cfg.adapt {
                t_da += 1;
                let m = t_da as f64;
                let w = 1.0 / (m + da.t0);
                h_bar = (1.0 - w) * h_bar + w * (da.target_accept - alpha);
                let log_eps = mu - m.sqrt() / da.gamma * h_bar;
                let eta = m.powf(-da.kappa);
                log_eps_bar = eta * log_eps + (1.0 - eta) * log_eps_bar;
                eps = log_eps.exp();
            }
            if (first_slow..last_slow).contains(&it) {
                w_n += 1;
                for ((z, mean), m2) in cur.z.iter().zip(&mut w_mean).zip(&mut w_m2) {
                    let d = z - *mean;
                    *mean += d / w_n as f64;
                    *m2 += d * (z - *mean);
                }
                if window_ends.contains(&(it + 1)) {
                    // The window's regularised variance becomes 1/M; dual averaging restarts
                    // for the new mass.
                    let n = w_n as f64;
                    for ((m, s), m2) in mass.iter_mut().zip(&mut sqrt_mass).zip(&w_m2) {
                        let var = m2 / (n - 1.0).max(1.0);
                        *m = 1.0 / ((n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0)));
                        *s = m.sqrt();
                    }
                    (w_n, w_mean, w_m2) = (0, vec![0.0; dim], vec![0.0; dim]);
                    mu = (10.0 * eps).ln();
                    (h_bar, log_eps_bar, t_da) = (0.0, 0.0, 0);
                }
            }
        } else {
            sum_alpha += alpha;
            accepted += accept as usize;
            divergences += diverged as usize;
            samples.extend_from_slice(&cur.theta);
            log_density.push(cur.lp_theta);
        }
    }
    let ns = cfg.n_samples as f64;
    Ok(HmcResult {
        samples,
        log_density,
        dim,
        accept_rate: accepted as f64 / ns,
        mean_accept_prob: sum_alpha / ns,
        warmup_accept_prob: if cfg.n_warmup > 0 {
            sum_alpha_warm / cfg.n_warmup as f64
        } else {
            f64::NAN
        },
        step_size: eps,
        mass,
        divergences,
        warmup_divergences,
        evaluations: target.evaluations,
    })
}

fn check_config(dim: usize, bounds: &[Option<Bounds>], cfg: &HmcConfig) -> Result<()> {
    if dim == 0 {
        return Err(Error::shape("hmc", "no parameters to sample"));
    }
    if bounds.len() != dim {
        return Err(Error::shape(
            "hmc",
            format!("{dim} initial values but {} bounds", bounds.len()),
        ));
    }
    if !(cfg.step_size.is_finite() && cfg.step_size > 0.0) {
        return Err(Error::setting(
            "step_size",
            format!(
                "the leapfrog step must be a positive finite number, got {}",
                cfg.step_size
            ),
        ));
    }
    if cfg.n_leapfrog == 0 {
        return Err(Error::setting(
            "n_leapfrog",
            "at least one leapfrog step is needed",
        ));
    }
    if cfg.n_samples == 0 {
        return Err(Error::setting("n_samples", "at least one sample is needed"));
    }
    if let Some(m) = &cfg.mass {
        if m.len() != dim {
            return Err(Error::shape(
                "hmc",
                format!("{} mass entries for {dim} parameters", m.len()),
            ));
        }
        if let Some((i, v)) = m
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v > 0.0))
        {
            return Err(Error::setting(
                "mass",
                format!("parameter {i}: the mass must be a positive finite number, got {v}"),
            ));
        }
    }
    if let Some(a) = &cfg.adapt_mass {
        if cfg.adapt.is_none() {
            return Err(Error::setting(
                "adapt_mass",
                "the mass adaptation needs the step-size adaptation (`adapt`) too",
            ));
        }
        if cfg.n_warmup < MIN_MASS_WARMUP {
            return Err(Error::setting(
                "n_warmup",
                format!(
                    "{} warm-up iterations are too few to adapt the mass: give at least \
                     {MIN_MASS_WARMUP}",
                    cfg.n_warmup
                ),
            ));
        }
        if a.base_window == 0 {
            return Err(Error::setting(
                "base_window",
                "the first slow window needs at least 1 iteration",
            ));
        }
    }
    if let Some(da) = &cfg.adapt {
        if !(da.target_accept > 0.0 && da.target_accept < 1.0) {
            return Err(Error::setting(
                "target_accept",
                format!("must lie in (0, 1), got {}", da.target_accept),
            ));
        }
        if !(da.gamma.is_finite() && da.gamma > 0.0) {
            return Err(Error::setting(
                "gamma",
                format!("must be positive, got {}", da.gamma),
            ));
        }
        if !(da.t0.is_finite() && da.t0 >= 0.0) {
            return Err(Error::setting("t0", format!("must be ≥ 0, got {}", da.t0)));
        }
        if !(da.kappa > 0.5 && da.kappa <= 1.0) {
            return Err(Error::setting(
                "kappa",
                format!("must lie in (0.5, 1], got {}", da.kappa),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch-means estimate of the integrated autocorrelation time of `f` along the chain:
    /// `τ̂ = b · Var(batch means) / Var(f)` with `b` the batch length.
    fn tau_batch_means(f: &[f64], batches: usize) -> f64 {
        let n = f.len();
        let len = n / batches;
        let mean = f.iter().sum::<f64>() / n as f64;
        let var = f.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let bm: Vec<f64> = (0..batches)
            .map(|k| f[k * len..(k + 1) * len].iter().sum::<f64>() / len as f64)
            .collect();
        let mbm = bm.iter().sum::<f64>() / batches as f64;
        let vbm = bm.iter().map(|v| (v - mbm).powi(2)).sum::<f64>() / (batches - 1) as f64;
        len as f64 * vbm / var
    }

    /// Checks `E f` within 4 Monte-Carlo standard errors. The error is `sd_f √(τ/n)`, with
    /// `sd_f` the exact standard deviation of `f` under the target (not the chain's, so a chain
    /// with the wrong spread cannot widen its own tolerance) and `τ` the chain's autocorrelation
    /// time by batch means (at least 1, and checked to be below `TAU_MAX`: a stuck chain fails).
    fn check_moment(name: &str, f: &[f64], want: f64, sd_f: f64) {
        const TAU_MAX: f64 = 5.0;
        let n = f.len() as f64;
        let tau = tau_batch_means(f, 20);
        assert!(
            tau < TAU_MAX,
            "{name}: autocorrelation time {tau} ≥ {TAU_MAX}"
        );
        let mean = f.iter().sum::<f64>() / n;
        let se = sd_f * (tau.max(1.0) / n).sqrt();
        assert!(
            (mean - want).abs() < 4.0 * se,
            "{name}: {mean} vs {want} ({:.1} standard errors of {se})",
            (mean - want).abs() / se
        );
    }

    /// A log density with its gradient, as the sampler takes it.
    type Density = fn(&[f64]) -> Result<(f64, Vec<f64>)>;

    /// An infallible density as the sampler's closure.
    fn ok(
        mut f: impl FnMut(&[f64]) -> (f64, Vec<f64>),
    ) -> impl FnMut(&[f64]) -> Result<(f64, Vec<f64>)> {
        move |x| Ok(f(x))
    }

    /// Correlated 2-D Gaussian: μ = (1, −2), σ = (1, 2), ρ = 0.8.
    fn gaussian() -> impl FnMut(&[f64]) -> Result<(f64, Vec<f64>)> {
        let (m1, m2, s1, s2, rho) = (1.0, -2.0, 1.0, 2.0, 0.8);
        // Σ⁻¹ = 1/(1−ρ²) [[1/s1², −ρ/(s1 s2)], [−ρ/(s1 s2), 1/s2²]].
        let k = 1.0 / (1.0 - rho * rho);
        let (a, b, c) = (k / (s1 * s1), -k * rho / (s1 * s2), k / (s2 * s2));
        ok(move |x: &[f64]| {
            let (d1, d2) = (x[0] - m1, x[1] - m2);
            let lp = -0.5 * (a * d1 * d1 + 2.0 * b * d1 * d2 + c * d2 * d2);
            (lp, vec![-(a * d1 + b * d2), -(b * d1 + c * d2)])
        })
    }

    #[test]
    fn correlated_gaussian_mean_and_covariance() {
        // A fixed step: Σ's eigenvalues are 0.31 and 4.69, so the narrow axis has s.d. 0.55 and
        // ε = 0.3 is well inside the leapfrog's stability limit (2 × 0.55).
        let cfg = HmcConfig {
            step_size: 0.3,
            n_leapfrog: 8,
            n_warmup: 200,
            n_samples: 4000,
            seed: 7,
            adapt: None,
            ..Default::default()
        };
        let r = hmc(gaussian(), &[0.0, 0.0], &[None, None], &cfg).unwrap();
        assert!(r.accept_rate > 0.7, "{}", r.accept_rate);
        assert_eq!(r.divergences + r.warmup_divergences, 0);
        assert_eq!(r.step_size, 0.3);
        assert_eq!(r.evaluations, 1 + 4200 * 8);
        let (x, y) = (r.column(0), r.column(1));
        let (s1, s2, s12) = (1.0f64, 2.0f64, 0.8 * 2.0);
        check_moment("mean x", &x, 1.0, s1);
        check_moment("mean y", &y, -2.0, s2);
        // Second moments about the true mean, with their exact s.d. under the Gaussian
        // (Isserlis): sd of (x−μ)² is √2 σ², of (x−μx)(y−μy) is √(σx² σy² + σxy²). So the
        // covariance tolerance is 4 standard errors of these products: ±0.09 (var x), ±0.36
        // (var y), ±0.15 (cov) for τ ≈ 1 and 4000 draws.
        let xx: Vec<f64> = x.iter().map(|v| (v - 1.0).powi(2)).collect();
        let yy: Vec<f64> = y.iter().map(|v| (v + 2.0).powi(2)).collect();
        let xy: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - 1.0) * (b + 2.0))
            .collect();
        check_moment("var x", &xx, s1 * s1, 2f64.sqrt() * s1 * s1);
        check_moment("var y", &yy, s2 * s2, 2f64.sqrt() * s2 * s2);
        check_moment("cov xy", &xy, s12, (s1 * s1 * s2 * s2 + s12 * s12).sqrt());
    }

    /// Gaussian prior `N(m0, s0²)` times `n` Gaussian observations `y_i ~ N(θ, σ²)`: the
    /// posterior is `N(m, v)` with `1/v = 1/s0² + n/σ²`, `m = v (m0/s0² + Σy/σ²)`.
    #[allow(clippy::type_complexity)]
    fn conjugate() -> (impl FnMut(&[f64]) -> Result<(f64, Vec<f64>)>, f64, f64) {
        let (m0, s0, sigma) = (2.0, 3.0, 0.5);
        let y: Vec<f64> = crate::test_util::rand_vec(4, 10)
            .iter()
            .map(|e| 1.2 + sigma * 1.7 * e)
            .collect();
        let n = y.len() as f64;
        let v = 1.0 / (1.0 / (s0 * s0) + n / (sigma * sigma));
        let m = v * (m0 / (s0 * s0) + y.iter().sum::<f64>() / (sigma * sigma));
        let f = ok(move |t: &[f64]| {
            let th = t[0];
            let lp = -0.5 * (th - m0).powi(2) / (s0 * s0)
                - 0.5 * y.iter().map(|yi| (yi - th).powi(2)).sum::<f64>() / (sigma * sigma);
            let g =
                -(th - m0) / (s0 * s0) + y.iter().map(|yi| yi - th).sum::<f64>() / (sigma * sigma);
            (lp, vec![g])
        });
        (f, m, v)
    }

    #[test]
    fn conjugate_gaussian_posterior_in_closed_form() {
        let (_, m, v) = conjugate();
        let sd = v.sqrt();
        // (1) A deliberately coarse fixed step, 1.5 posterior s.d.: the leapfrog's energy error
        // is large (acceptance well below 1) and only the Metropolis correction makes the draws
        // exact; without it the variance would be 1/(1 − ε²/4σ²) ≈ 2.3 times too large.
        // (2) The default adaptation from a poor start far in the tail.
        for (start, cfg) in [
            (
                m,
                HmcConfig {
                    step_size: 1.5 * sd,
                    n_leapfrog: 3,
                    n_warmup: 100,
                    n_samples: 5000,
                    seed: 21,
                    adapt: None,
                    ..Default::default()
                },
            ),
            (
                m + 30.0 * sd,
                HmcConfig {
                    step_size: 1.0,
                    n_leapfrog: 3,
                    n_warmup: 500,
                    n_samples: 5000,
                    seed: 22,
                    ..Default::default()
                },
            ),
        ] {
            let (f, _, _) = conjugate();
            let r = hmc(f, &[start], &[None], &cfg).unwrap();
            assert!(r.mean_accept_prob < 0.97, "{}", r.mean_accept_prob);
            let x = r.column(0);
            check_moment("posterior mean", &x, m, sd);
            let x2: Vec<f64> = x.iter().map(|t| (t - m).powi(2)).collect();
            check_moment("posterior variance", &x2, v, 2f64.sqrt() * v);
        }
    }

    #[test]
    fn dual_averaging_reaches_the_target_acceptance() {
        // 20 independent Gaussians with s.d. from 0.5 to 2: the acceptance falls smoothly with
        // the step. (In one or two dimensions it does not: the leapfrog's energy error on a
        // Gaussian oscillates with the trajectory length εL, so a fixed L can make a larger
        // step accept more often than a smaller one.)
        // (The moments are checked by the other tests: with one fixed L some coordinates here
        // mix slowly, a trajectory spanning nearly whole periods of them.)
        let d = 20;
        let s2: Vec<f64> = (0..d)
            .map(|i| 0.5 + 1.5 * i as f64 / (d - 1) as f64)
            .collect();
        let lp = move |x: &[f64]| -> Result<(f64, Vec<f64>)> {
            let lp = -0.5 * x.iter().zip(&s2).map(|(x, s)| (x / s).powi(2)).sum::<f64>();
            Ok((lp, x.iter().zip(&s2).map(|(x, s)| -x / (s * s)).collect()))
        };
        let mut steps = vec![];
        for target in [0.6, 0.8, 0.95] {
            let cfg = HmcConfig {
                step_size: 3.0, // far too large at first: adaptation must bring it down
                n_leapfrog: 10,
                n_warmup: 500,
                n_samples: 2000,
                seed: 11,
                adapt: Some(DualAveraging {
                    target_accept: target,
                    ..Default::default()
                }),
                ..Default::default()
            };
            let r = hmc(lp.clone(), &vec![1.0; d], &vec![None; d], &cfg).unwrap();
            // Dual averaging drives the warm-up mean of `α` to the target (its `h̄ → 0`); the
            // averaged step `ε̄` used afterwards is a geometric mean of fluctuating iterates,
            // smaller than the last ones, and accepts somewhat more (Stan shows the same).
            assert!(
                (r.warmup_accept_prob - target).abs() < 0.03,
                "warm-up mean acceptance {} for a target of {target}",
                r.warmup_accept_prob
            );
            assert!(
                r.mean_accept_prob > target - 0.03 && r.mean_accept_prob < target + 0.1,
                "mean acceptance {} for a target of {target}",
                r.mean_accept_prob
            );
            steps.push(r.step_size);
        }
        assert!(
            steps[0] > steps[1] && steps[1] > steps[2],
            "a higher target needs a smaller step: {steps:?}"
        );
    }

    #[test]
    fn mass_windows_follow_stan() {
        // Stan's default 1,000 warm-up iterations: buffers 75 and 50, windows 25, 50, 100, 200,
        // then the last stretched to 950 (a 400 would leave less than 800 before it).
        let a = MassAdaptation::default();
        assert_eq!(a.windows(1000), (75, vec![100, 150, 250, 450, 950]));
        // Below 150: 15 %, 75 %, 10 % (one window).
        assert_eq!(a.windows(100), (15, vec![90]));
        assert_eq!(a.windows(20), (3, vec![18]));
    }

    /// Independent Gaussians with standard deviations 0.01, 1 and 100: with unit mass one step
    /// size cannot serve all three; the adapted mass comes out near `1/σ²` (the inverse of each
    /// coordinate's variance) and the draws have the right spread.
    #[test]
    fn mass_adaptation_finds_scales_a_unit_mass_cannot_serve() {
        const SD: [f64; 3] = [0.01, 1.0, 100.0];
        let f = || {
            ok(|x: &[f64]| {
                let lp = -0.5 * x.iter().zip(SD).map(|(x, s)| (x / s).powi(2)).sum::<f64>();
                (lp, x.iter().zip(SD).map(|(x, s)| -x / (s * s)).collect())
            })
        };
        let cfg = HmcConfig {
            n_leapfrog: 3,
            n_warmup: 1000,
            n_samples: 4000,
            seed: 11,
            adapt_mass: Some(MassAdaptation::default()),
            ..Default::default()
        };
        let r = hmc(f(), &[0.0; 3], &[None; 3], &cfg).unwrap();
        for (i, s) in SD.iter().enumerate() {
            let ratio = r.mass[i] * s * s;
            assert!(
                (0.5..2.0).contains(&ratio),
                "coordinate {i}: mass {} vs 1/σ² = {}",
                r.mass[i],
                1.0 / (s * s)
            );
            let x = r.column(i);
            check_moment(&format!("mean {i}"), &x, 0.0, *s);
            let x2: Vec<f64> = x.iter().map(|v| v * v).collect();
            check_moment(&format!("variance {i}"), &x2, s * s, 2f64.sqrt() * s * s);
        }
        assert_eq!(r.divergences, 0);
        // The same chain with unit mass: the step size shrinks to the narrowest coordinate and
        // the widest one barely moves from its start (its s.d. should be 100).
        let unit = hmc(
            f(),
            &[0.0; 3],
            &[None; 3],
            &HmcConfig {
                adapt_mass: None,
                ..cfg
            },
        )
        .unwrap();
        assert_eq!(unit.mass, vec![1.0; 3]);
        let x = unit.column(2);
        let sd = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt();
        assert!(sd < 10.0, "unit mass: s.d. {sd} of the widest coordinate");
    }

    #[test]
    fn bounded_beta_posterior_moments() {
        // θ ∈ (2, 6), θ = 2 + 4u with u ~ Beta(2.5, 4): log p = 1.5 log(θ−2) + 3 log(6−θ).
        let (a, b) = (2.5, 4.0);
        let lp = ok(move |t: &[f64]| {
            let (p, q) = (t[0] - 2.0, 6.0 - t[0]);
            (
                (a - 1.0) * p.ln() + (b - 1.0) * q.ln(),
                vec![(a - 1.0) / p - (b - 1.0) / q],
            )
        });
        let cfg = HmcConfig {
            step_size: 0.5,
            // z = logit(u) has s.d. ≈ 0.88 here; the adapted ε ≈ 0.9 times 6 steps made one
            // full oscillation period (2π · 0.88) and an autocorrelation time ≈ 9: 3 steps make
            // about half a period.
            n_leapfrog: 3,
            n_warmup: 300,
            n_samples: 4000,
            seed: 3,
            ..Default::default()
        };
        let bounds = [Some(Bounds::new(2.0, 6.0).unwrap())];
        let r = hmc(lp, &[5.5], &bounds, &cfg).unwrap();
        let u: Vec<f64> = r.column(0).iter().map(|t| (t - 2.0) / 4.0).collect();
        assert!(u.iter().all(|v| *v > 0.0 && *v < 1.0));
        let mean = a / (a + b);
        let var = a * b / ((a + b).powi(2) * (a + b + 1.0));
        check_moment("beta mean", &u, mean, var.sqrt());
        // E[u²] = var + mean²; sd of u² from E[u⁴] − E[u²]², Beta raw moments.
        let raw = |k: i32| {
            (0..k)
                .map(|j| (a + j as f64) / (a + b + j as f64))
                .product::<f64>()
        };
        let u2: Vec<f64> = u.iter().map(|v| v * v).collect();
        check_moment(
            "beta second moment",
            &u2,
            raw(2),
            (raw(4) - raw(2).powi(2)).sqrt(),
        );
        assert!((raw(2) - (var + mean * mean)).abs() < 1e-15);
        // The recorded log density is the closure's (no Jacobian).
        let t0 = r.sample(0)[0];
        assert!((r.log_density[0] - (1.5 * (t0 - 2.0).ln() + 3.0 * (6.0 - t0).ln())).abs() < 1e-12);
    }

    #[test]
    fn seeded_chains_repeat() {
        let cfg = HmcConfig {
            n_warmup: 10,
            n_samples: 50,
            seed: 5,
            ..Default::default()
        };
        let r1 = hmc(gaussian(), &[0.0, 0.0], &[None, None], &cfg).unwrap();
        let r2 = hmc(gaussian(), &[0.0, 0.0], &[None, None], &cfg).unwrap();
        assert_eq!(r1, r2);
        let r3 = hmc(
            gaussian(),
            &[0.0, 0.0],
            &[None, None],
            &HmcConfig { seed: 6, ..cfg },
        )
        .unwrap();
        assert_ne!(r1.samples, r3.samples);
        assert_eq!(r1.evaluations, 1 + 60 * 10);
    }

    #[test]
    fn divergences_are_rejected_not_propagated() {
        // A density that is −∞ beyond x = 0.5 (an unbounded parameter stepping into a region
        // where the simulator fails): proposals there are rejected, the chain stays finite.
        let lp = ok(|x: &[f64]| {
            if x[0] > 0.5 {
                (f64::NEG_INFINITY, vec![f64::NAN])
            } else {
                (-0.5 * x[0] * x[0], vec![-x[0]])
            }
        });
        let cfg = HmcConfig {
            step_size: 0.4,
            n_warmup: 0,
            n_samples: 300,
            ..Default::default()
        };
        let r = hmc(lp, &[0.0], &[None], &cfg).unwrap();
        assert!(r.divergences > 0);
        assert!(r.samples.iter().all(|v| v.is_finite() && *v <= 0.5));
        assert!(r.warmup_accept_prob.is_nan());

        // A finite but violent trajectory: s.d. 0.01 with ε = 1 makes the leapfrog unstable
        // (energy errors far above 1000, still finite): every proposal diverges and is
        // rejected, so the chain never leaves its start.
        let stiff = ok(|x: &[f64]| (-0.5e4 * x[0] * x[0], vec![-1e4 * x[0]]));
        let cfg = HmcConfig {
            step_size: 1.0,
            n_leapfrog: 4,
            n_warmup: 5,
            n_samples: 50,
            adapt: None,
            ..Default::default()
        };
        let r = hmc(stiff, &[0.001], &[None], &cfg).unwrap();
        assert_eq!((r.divergences, r.warmup_divergences), (50, 5));
        assert!(r.samples.iter().all(|v| *v == 0.001));
        assert_eq!(r.accept_rate, 0.0);
    }

    #[derive(Debug, PartialEq)]
    enum SimError {
        Failed(usize),
        Hmc(Error),
    }

    impl From<Error> for SimError {
        fn from(e: Error) -> Self {
            SimError::Hmc(e)
        }
    }

    #[test]
    fn closure_errors_end_the_run() {
        let mut calls = 0;
        let f = |x: &[f64]| {
            calls += 1;
            if calls == 7 {
                Err(SimError::Failed(calls))
            } else {
                Ok((-0.5 * x[0] * x[0], vec![-x[0]]))
            }
        };
        let e = hmc(f, &[0.0], &[None], &HmcConfig::default()).unwrap_err();
        assert_eq!(e, SimError::Failed(7));
        // The sampler's own errors in the caller's type.
        let e = hmc(
            |_: &[f64]| Ok::<_, SimError>((0.0, vec![0.0])),
            &[0.0],
            &[None],
            &HmcConfig {
                n_samples: 0,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(
            e,
            SimError::Hmc(Error::Setting {
                name: "n_samples",
                ..
            })
        ));
    }

    #[test]
    fn bad_input_is_an_error() {
        let b = [Some(Bounds::new(0.0, 1.0).unwrap())];
        let flat = |_: &[f64]| Ok((0.0, vec![0.0]));
        let cfg = HmcConfig::default();
        let err = |f, x0: &[f64], bounds: &[Option<Bounds>], c: &HmcConfig| -> String {
            let f: Density = f;
            hmc(f, x0, bounds, c).unwrap_err().to_string()
        };
        let e = err(flat, &[1.5], &b, &cfg);
        assert!(
            e.contains("parameter `0`") && e.contains("above its upper bound 1"),
            "{e}"
        );
        let e = err(flat, &[f64::NAN], &b, &cfg);
        assert!(e.contains("is not a finite number"), "{e}");
        let e = err(flat, &[f64::INFINITY], &[None], &cfg);
        assert!(
            e.contains("parameter 0: the initial value must be finite"),
            "{e}"
        );
        let e = err(flat, &[0.5, 0.5], &b, &cfg);
        assert!(e.contains("2 initial values but 1 bounds"), "{e}");
        let e = err(flat, &[], &[], &cfg);
        assert!(e.contains("no parameters"), "{e}");
        let e = err(|_| Ok((0.0, vec![0.0, 1.0])), &[0.5], &b, &cfg);
        assert!(e.contains("gradient of length 2 for 1 parameters"), "{e}");
        let e = err(|_| Ok((f64::NAN, vec![0.0])), &[0.5], &b, &cfg);
        assert!(e.contains("initial point"), "{e}");
        let e = err(|_| Ok((0.0, vec![f64::INFINITY])), &[0.5], &b, &cfg);
        assert!(e.contains("initial point"), "{e}");
        for (c, want) in [
            (
                HmcConfig {
                    step_size: 0.0,
                    ..Default::default()
                },
                "step_size",
            ),
            (
                HmcConfig {
                    step_size: -0.1,
                    ..Default::default()
                },
                "step_size",
            ),
            (
                HmcConfig {
                    step_size: f64::NAN,
                    ..Default::default()
                },
                "step_size",
            ),
            (
                HmcConfig {
                    n_leapfrog: 0,
                    ..Default::default()
                },
                "n_leapfrog",
            ),
            (
                HmcConfig {
                    n_samples: 0,
                    ..Default::default()
                },
                "n_samples",
            ),
            (
                HmcConfig {
                    mass: Some(vec![1.0, 1.0]),
                    ..Default::default()
                },
                "2 mass entries",
            ),
            (
                HmcConfig {
                    mass: Some(vec![-1.0]),
                    ..Default::default()
                },
                "parameter 0: the mass",
            ),
            (
                HmcConfig {
                    adapt: Some(DualAveraging {
                        target_accept: 1.0,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "target_accept",
            ),
            (
                HmcConfig {
                    adapt: Some(DualAveraging {
                        kappa: 0.5,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "kappa",
            ),
            (
                HmcConfig {
                    adapt: None,
                    adapt_mass: Some(MassAdaptation::default()),
                    ..Default::default()
                },
                "needs the step-size adaptation",
            ),
            (
                HmcConfig {
                    n_warmup: 19,
                    adapt_mass: Some(MassAdaptation::default()),
                    ..Default::default()
                },
                "19 warm-up iterations are too few",
            ),
            (
                HmcConfig {
                    adapt_mass: Some(MassAdaptation {
                        base_window: 0,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "base_window",
            ),
        ] {
            let e = err(flat, &[0.5], &b, &c);
            assert!(e.contains(want), "{e} should contain {want}");
        }
    }
}
