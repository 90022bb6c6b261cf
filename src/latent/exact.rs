//! The exact (dense) Gaussian-process engine: the `O((Tq)³)` reference the state-space engine
//! approximates (`--engine exact`).
//!
//! All latents of all regions over the `T` bins of a trial form one Gaussian vector, index
//! `t·q + a` (bin-major, the latents region by region as in [`Prior::region_latents`]), with
//! the joint prior covariance
//!
//! ```text
//! Cov(x_a(t), x_b(s)) = k_p(t − s + δ_b − δ_a)   when a and b are copies of the same process p,
//!                       0                          otherwise,
//! ```
//!
//! (`δ` the copies' delays; no jitter, no Markov approximation). With the observations
//! reduced to the latent space ([`super::model::reduce`]: pseudo-observations `ỹ` with noise
//! `R̃`), `ỹ ~ N(0, K + I_T ⊗ R̃)`, so the exact marginal log-likelihood is one dense
//! Gaussian log-density per trial (plus the reduction's constant), and the posterior is
//! `E[x | ỹ] = K S⁻¹ ỹ`, `Cov[x | ỹ] = K − K S⁻¹ K` with `S = K + I_T ⊗ R̃` — one Cholesky
//! factor of `S` shared by all trials.

use neurodiff_models::latent::linalg::{chol_logdet, chol_solve_vec, cholesky, solve_lower, Mat};

use super::model::Prior;
use super::LatentError;

/// The dense prior covariance `K` of all latents over `tn` bins (index `t·q + a`).
pub fn prior_cov(prior: &Prior, tn: usize) -> Result<Mat, LatentError> {
    if prior.tv.is_some() {
        return Err(LatentError::Setting {
            name: "engine",
            message: "the exact engine has no time-varying delays: use --engine ssm for adm".into(),
        });
    }
    if prior.lds.is_some() {
        return Err(LatentError::Setting {
            name: "engine",
            message: "the exact engine is for the GP presets (gpfa, dlag), not lds".into(),
        });
    }
    let lat: Vec<(usize, usize)> = (0..prior.n_regions)
        .flat_map(|r| prior.region_latents(r))
        .collect();
    let q = lat.len();
    Ok(Mat::from_fn(tn * q, tn * q, |i, j| {
        let (t, a) = (i / q, i % q);
        let (s, b) = (j / q, j % q);
        let ((pa, oa), (pb, ob)) = (lat[a], lat[b]);
        if pa != pb {
            return 0.0;
        }
        let p = &prior.processes[pa];
        p.kernel
            .cov(t as f64 - s as f64 + p.delays[ob] - p.delays[oa])
    }))
}

/// `S = K + I_T ⊗ R̃` and its Cholesky factor.
fn factor(k: &Mat, r: &Mat, tn: usize) -> Result<Mat, LatentError> {
    let q = r.rows;
    let mut s = k.clone();
    for t in 0..tn {
        for a in 0..q {
            for b in 0..q {
                s[(t * q + a, t * q + b)] += r[(a, b)];
            }
        }
    }
    cholesky(&s).map_err(|e| LatentError::NotPositiveDefinite {
        what: "dense marginal covariance K + I ⊗ R̃ of the exact GP",
        step: 0,
        iteration: None,
        value: e.value,
    })
}

fn loglik_one(l: &Mat, logdet: f64, y: &Mat) -> f64 {
    let alpha = chol_solve_vec(l, &y.data);
    let quad: f64 = alpha.iter().zip(&y.data).map(|(a, b)| a * b).sum();
    -0.5 * (y.data.len() as f64 * (2.0 * std::f64::consts::PI).ln() + logdet + quad)
}

/// The exact marginal log-likelihood of the pseudo-observations `ys` (per trial `T × q`)
/// with noise `r` (summed over trials; add the reduction's constant for the data's).
pub fn loglik(prior: &Prior, ys: &[Mat], r: &Mat) -> Result<f64, LatentError> {
    let tn = ys.first().map_or(0, |y| y.rows);
    let k = prior_cov(prior, tn)?;
    let l = factor(&k, r, tn)?;
    let logdet = chol_logdet(&l);
    Ok(ys.iter().map(|y| loglik_one(&l, logdet, y)).sum())
}

/// The exact posterior: the log-likelihood (summed over trials, reduced), per trial the
/// `T × q` posterior means, per bin the `q × q` posterior covariance (shared by all trials).
pub fn posterior(
    prior: &Prior,
    ys: &[Mat],
    r: &Mat,
) -> Result<(f64, Vec<Mat>, Vec<Mat>), LatentError> {
    let tn = ys.first().map_or(0, |y| y.rows);
    let q = r.rows;
    let k = prior_cov(prior, tn)?;
    let l = factor(&k, r, tn)?;
    let logdet = chol_logdet(&l);
    let mut ll = 0.0;
    let mut means = Vec::with_capacity(ys.len());
    for y in ys {
        ll += loglik_one(&l, logdet, y);
        let alpha = chol_solve_vec(&l, &y.data);
        means.push(Mat::from_vec(tn, q, k.mv(&alpha)));
    }
    // W = L⁻¹ K column by column; Cov_t = K_tt − W_{:,t}ᵀ W_{:,t}.
    let n = tn * q;
    let mut w = Mat::zeros(n, n); // column j of L⁻¹K stored as row j
    for j in 0..n {
        let mut col: Vec<f64> = (0..n).map(|i| k[(i, j)]).collect();
        solve_lower(&l, &mut col);
        w.data[j * n..(j + 1) * n].copy_from_slice(&col);
    }
    let covs = (0..tn)
        .map(|t| {
            Mat::from_fn(q, q, |a, b| {
                let (i, j) = (t * q + a, t * q + b);
                let dot: f64 = w.data[i * n..(i + 1) * n]
                    .iter()
                    .zip(&w.data[j * n..(j + 1) * n])
                    .map(|(x, y)| x * y)
                    .sum();
                k[(i, j)] - dot
            })
        })
        .collect();
    Ok((ll, means, covs))
}
