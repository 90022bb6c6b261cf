//! mDLAG's variational automatic relevance determination over the loadings (Gokcen et al.
//! 2023, "Uncovering motifs of concurrent signaling across multiple neuronal populations",
//! NeurIPS; the updates of fast-mDLAG's `em_mdlag.m`, as mbrila's `ARDObservation` also
//! transcribes them).
//!
//! Every latent may load on any subset of the regions. Row `i` of region `r`'s loadings has
//! the prior `c_i ~ N(0, diag(α_r)⁻¹)` with one precision per region and latent,
//! `α_{r,k} ~ Gamma(a₀, b₀)` (shape, rate). The posterior is mean-field,
//! `q(X) q(C) q(α)`: `q(c_i) = N(μ_i, Σ_i)` per row, `q(α_{r,k}) = Gamma(a_r, b_{r,k})`; the
//! offsets `d` and the private variances `R` are point estimates (maximum of the bound, as
//! DLAG's; mDLAG's own Gamma/Gaussian posteriors on them under its vague priors differ from
//! these by terms of order `1/(trials·T)`), and so are the GP timescales and delays.
//!
//! With `φ_i = 1/R_i` and the sufficient statistics of `q(X)` over all trials and bins
//! (`S_xx = Σ E[x xᵀ]`, `s_x = Σ E[x]`, `s_{xy,i} = Σ E[x] y_i`):
//!
//! ```text
//! d_i   = (Σ y_i − μ_iᵀ s_x) / (KT)
//! Σ_i   = (diag ᾱ_r + φ_i S_xx)⁻¹,   μ_i = φ_i Σ_i (s_{xy,i} − s_x d_i)
//! a_r   = a₀ + N_r/2,                 b_{r,k} = b₀ + ½ Σ_i E[c_{ik}²],   ᾱ = a/b
//! R_i   = (Σ(y_i − d_i)² − 2 μ_iᵀ(s_{xy,i} − s_x d_i) + tr(E[c_i c_iᵀ] S_xx)) / (KT)
//! ```
//!
//! each the maximum of the evidence lower bound in its block given the others (so the bound
//! never decreases). A column whose `ᾱ_{r,k}` grows large is pruned: latent `k` does not load
//! on region `r`. The bound is
//!
//! ```text
//! ELBO = log Z + Σ_{r,i} [½ Σ_k E ln α_{r,k} − ½ Σ_k ᾱ_{r,k} E[c_{ik}²] + ½ ln|Σ_i| + q/2]
//!              − Σ_{r,k} KL(q(α_{r,k}) ‖ p(α_{r,k}))
//! ```
//!
//! where `log Z` is the log normaliser of `p(X) exp(E_C[log p(Y | X, C)])`: the Kalman
//! filter's likelihood of the reduced observations ([`super::model::reduce_with`], with the
//! expected precision `E[Cᵀ R⁻¹ C]`) plus the reduction's constant.

// Regions, neurons and latents index several parallel arrays at once.
#![allow(clippy::needless_range_loop)]

use neurodiff_models::latent::linalg::{chol_logdet, chol_solve, cholesky, Mat};
use serde::Serialize;

use super::model::ObsParams;
use super::LatentError;

/// `ψ(x)`, the digamma function, for `x > 0`: the recurrence `ψ(x) = ψ(x+1) − 1/x` up to
/// `x ≥ 10`, then the asymptotic series (error below 1e-13 there).
pub fn digamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let x2 = 1.0 / (x * x);
    acc + x.ln()
        - 0.5 / x
        - x2 * (1.0 / 12.0 - x2 * (1.0 / 120.0 - x2 * (1.0 / 252.0 - x2 / 240.0)))
}

/// `ln Γ(x)` for `x > 0`: the recurrence `ln Γ(x) = ln Γ(x+1) − ln x` up to `x ≥ 10`, then
/// Stirling's series.
pub fn ln_gamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= x.ln();
        x += 1.0;
    }
    let x2 = 1.0 / (x * x);
    acc + (x - 0.5) * x.ln() - x
        + 0.5 * (2.0 * std::f64::consts::PI).ln()
        + (1.0 / 12.0 - x2 * (1.0 / 360.0 - x2 * (1.0 / 1260.0 - x2 / 1680.0))) / x
}

/// The variational state of the loadings' ARD (the means `μ_i` are `ObsParams::c`).
#[derive(Debug, Clone)]
pub struct Ard {
    /// Prior shape `a₀` of the precisions.
    pub a0: f64,
    /// Prior rate `b₀`.
    pub b0: f64,
    /// Posterior shape per region, `a₀ + N_r/2`.
    pub shape: Vec<f64>,
    /// Posterior rate `[region][latent]`.
    pub rate: Vec<Vec<f64>>,
    /// Posterior covariance of each loading row, `[region][neuron]`, `q_r × q_r`.
    pub cov: Vec<Vec<Mat>>,
}

/// Per region, the latents' sufficient statistics over all trials and bins.
pub struct RegionStats<'a> {
    /// `Σ E[x̃ x̃ᵀ]` with `x̃ = [x; 1]`: `(q+1) × (q+1)` (its last row and column are `s_x`
    /// and the count).
    pub sxx: &'a Mat,
    /// `Σ y x̃ᵀ`: `N × (q+1)` (its last column is `Σ y`).
    pub syx: &'a Mat,
    /// `Σ y²` per neuron.
    pub syy: &'a [f64],
}

impl Ard {
    /// The state for initial loadings `obs.c` (taken as the posterior means, with covariance
    /// `init_cov · I`), the precisions primed from them.
    pub fn new(obs: &ObsParams, a0: f64, b0: f64, init_cov: f64) -> Self {
        let nr = obs.c.len();
        let shape = (0..nr).map(|r| a0 + 0.5 * obs.c[r].rows as f64).collect();
        let cov = obs
            .c
            .iter()
            .map(|c| {
                (0..c.rows)
                    .map(|_| Mat::eye(c.cols).scale(init_cov))
                    .collect()
            })
            .collect();
        let mut a = Self {
            a0,
            b0,
            shape,
            rate: vec![],
            cov,
        };
        a.rate = (0..nr).map(|r| a.rates_of(obs, r)).collect();
        a
    }

    fn rates_of(&self, obs: &ObsParams, r: usize) -> Vec<f64> {
        let c = &obs.c[r];
        (0..c.cols)
            .map(|k| {
                self.b0
                    + 0.5
                        * (0..c.rows)
                            .map(|i| self.cov[r][i][(k, k)] + c[(i, k)] * c[(i, k)])
                            .sum::<f64>()
            })
            .collect()
    }

    /// Posterior means `ᾱ[region][latent]`.
    pub fn alpha_mean(&self) -> Vec<Vec<f64>> {
        self.rate
            .iter()
            .zip(&self.shape)
            .map(|(b, a)| b.iter().map(|b| a / b).collect())
            .collect()
    }

    /// `Σ_i Σ_i / R_i` per region: what the loadings' uncertainty adds to `C̄ᵀ R⁻¹ C̄`.
    pub fn extra_j(&self, obs: &ObsParams) -> Vec<Mat> {
        (0..obs.c.len())
            .map(|r| {
                let q = obs.c[r].cols;
                let mut m = Mat::zeros(q, q);
                for (i, s) in self.cov[r].iter().enumerate() {
                    m = m.add(&s.scale(1.0 / obs.r[r][i]));
                }
                m
            })
            .collect()
    }

    /// Per region and latent, `Σ_i E[c_{ik}²]` as a fraction of the region's total variance
    /// `Σ_i (Σ_k E[c_{ik}²] + R_i)` (the latents have unit variance): the share of the
    /// region's variance the latent explains.
    pub fn variance_fraction(&self, obs: &ObsParams) -> Vec<Vec<f64>> {
        (0..obs.c.len())
            .map(|r| {
                let c = &obs.c[r];
                let pow: Vec<f64> = (0..c.cols)
                    .map(|k| {
                        (0..c.rows)
                            .map(|i| self.cov[r][i][(k, k)] + c[(i, k)] * c[(i, k)])
                            .sum()
                    })
                    .collect();
                let total = pow.iter().sum::<f64>() + obs.r[r].iter().sum::<f64>();
                pow.iter().map(|p| p / total).collect()
            })
            .collect()
    }

    /// The block updates of region `r` in the order `d → C → α → R` (see the module
    /// documentation); `floor` the private variances' lower bounds.
    pub fn update_region(
        &mut self,
        obs: &mut ObsParams,
        r: usize,
        st: &RegionStats,
        floor: &[f64],
    ) -> Result<(), LatentError> {
        let q = obs.c[r].cols;
        let n = obs.c[r].rows;
        let cnt = st.sxx[(q, q)];
        let sx: Vec<f64> = (0..q).map(|a| st.sxx[(a, q)]).collect();
        let sxx = st.sxx.block(0, 0, q, q);
        let alpha: Vec<f64> = self.rate[r].iter().map(|b| self.shape[r] / b).collect();
        for i in 0..n {
            // d_i given the current loadings.
            let cmx: f64 = (0..q).map(|a| obs.c[r][(i, a)] * sx[a]).sum();
            let d = (st.syx[(i, q)] - cmx) / cnt;
            obs.d[r][i] = d;
            // q(c_i).
            let phi = 1.0 / obs.r[r][i];
            let xy0: Vec<f64> = (0..q).map(|a| st.syx[(i, a)] - sx[a] * d).collect();
            let prec = Mat::from_fn(q, q, |a, b| {
                phi * sxx[(a, b)] + if a == b { alpha[a] } else { 0.0 }
            })
            .sym();
            let l = cholesky(&prec).map_err(|e| LatentError::NotPositiveDefinite {
                what: "posterior precision of a loading row (ARD)",
                step: 0,
                iteration: None,
                value: e.value,
            })?;
            let sig = chol_solve(&l, &Mat::eye(q)).sym();
            let mu: Vec<f64> = sig.mv(&xy0).into_iter().map(|v| v * phi).collect();
            for a in 0..q {
                obs.c[r][(i, a)] = mu[a];
            }
            self.cov[r][i] = sig;
        }
        // q(α_r).
        self.rate[r] = self.rates_of(obs, r);
        // R_i.
        for i in 0..n {
            let d = obs.d[r][i];
            let (sy, syy) = (st.syx[(i, q)], st.syy[i]);
            let mu: Vec<f64> = (0..q).map(|a| obs.c[r][(i, a)]).collect();
            let xy0: Vec<f64> = (0..q).map(|a| st.syx[(i, a)] - sx[a] * d).collect();
            let lin: f64 = mu.iter().zip(&xy0).map(|(m, x)| m * x).sum();
            let mut quad = 0.0;
            for a in 0..q {
                for b in 0..q {
                    quad += (self.cov[r][i][(a, b)] + mu[a] * mu[b]) * sxx[(b, a)];
                }
            }
            let v = (syy - 2.0 * d * sy + cnt * d * d - 2.0 * lin + quad) / cnt;
            obs.r[r][i] = v.max(floor[i]);
        }
        Ok(())
    }

    /// The bound's terms in `q(C)` and `q(α)` (see the module documentation).
    pub fn elbo_terms(&self, obs: &ObsParams) -> f64 {
        let mut total = 0.0;
        for r in 0..obs.c.len() {
            let c = &obs.c[r];
            let q = c.cols;
            let a = self.shape[r];
            let elog: Vec<f64> = self.rate[r].iter().map(|b| digamma(a) - b.ln()).collect();
            let mean: Vec<f64> = self.rate[r].iter().map(|b| a / b).collect();
            for i in 0..c.rows {
                let s = &self.cov[r][i];
                let logdet = cholesky(s).map_or(f64::NEG_INFINITY, |l| chol_logdet(&l));
                let mut t = 0.5 * logdet + 0.5 * q as f64;
                for k in 0..q {
                    t += 0.5 * elog[k] - 0.5 * mean[k] * (s[(k, k)] + c[(i, k)] * c[(i, k)]);
                }
                total += t;
            }
            // −KL(q(α) ‖ p(α)) = E[ln p(α)] − E[ln q(α)].
            for k in 0..q {
                let b = self.rate[r][k];
                total += self.a0 * self.b0.ln() - ln_gamma(self.a0) + (self.a0 - 1.0) * elog[k]
                    - self.b0 * mean[k]
                    - a * b.ln()
                    + ln_gamma(a)
                    - (a - 1.0) * elog[k]
                    + a;
            }
        }
        total
    }
}

/// What a fit reports of the ARD (`latent.json`, key `ard`).
#[derive(Debug, Clone, Serialize)]
pub struct ArdOut {
    /// Posterior mean precision `ᾱ[region][latent]` of each loading column.
    pub alpha: Vec<Vec<f64>>,
    /// Share of each region's variance explained by each latent.
    pub variance_fraction: Vec<Vec<f64>>,
    /// Whether each latent loads on each region (`variance_fraction ≥ prune_frac`).
    pub loads: Vec<Vec<bool>>,
    /// The threshold.
    pub prune_frac: f64,
}

impl Ard {
    /// The report, with `loads[region][latent]` from `prune_frac`.
    pub fn report(&self, obs: &ObsParams, prune_frac: f64) -> ArdOut {
        let vf = self.variance_fraction(obs);
        ArdOut {
            alpha: self.alpha_mean(),
            loads: vf
                .iter()
                .map(|v| v.iter().map(|&f| f >= prune_frac).collect())
                .collect(),
            variance_fraction: vf,
            prune_frac,
        }
    }
}
