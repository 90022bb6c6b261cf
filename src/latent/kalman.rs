//! Kalman filter and Rauch–Tung–Striebel smoother for a linear-Gaussian state-space model,
//! batched over trials, sequential and as a parallel associative scan.
//!
//! ```text
//! s_1 ~ N(m0, P0),   s_{t+1} = A s_t + N(0, Q),   y_t = H s_t + N(0, R)
//! ```
//!
//! The model is the same for every trial and no value is missing, so the covariance recursion
//! (gains, filtered and smoothed covariances) is computed once and shared by all trials; only
//! the means are per trial.
//!
//! The parallel form is Särkkä & García-Fernández (2021), *Temporal parallelization of Bayesian
//! smoothers*, IEEE TAC 66(1):299, §IV: each time step becomes an element
//! `(A, b, C, η, J)` (filtering) or `(E, g, L)` (smoothing) of an associative operation whose
//! prefix (suffix) products are the filtered (smoothed) moments. [`scan`] evaluates the prefix
//! products by a tree reduction — `O(log T)` levels, each of independent combinations — here
//! run on one thread (the combinations of one level could go to threads or a device unchanged).
//! Updates use the Joseph form; a covariance that stops being positive definite is an error
//! naming the quantity and the time bin (the covariances are shared by all trials).

use neurodiff_models::latent::linalg::{
    chol_logdet, chol_solve, chol_solve_vec, cholesky, lu_solve, Mat,
};

use super::LatentError;

/// A linear-Gaussian state-space model (see the module documentation).
#[derive(Debug, Clone)]
pub struct Ssm {
    /// Transition `A` (n × n).
    pub a: Mat,
    /// Process noise `Q` (n × n, may be singular).
    pub q: Mat,
    /// Observation `H` (p × n).
    pub h: Mat,
    /// Observation noise `R` (p × p, positive definite).
    pub r: Mat,
    /// Initial mean (n).
    pub m0: Vec<f64>,
    /// Initial covariance (n × n).
    pub p0: Mat,
    /// A time-varying model (the `adm` preset's time-varying delays): when not empty,
    /// `tv[t] = (A_t, Q_t)` is the transition from bin `t` to bin `t + 1` (`T − 1` of them) and
    /// replaces `a`, `q`.
    pub tv: Vec<(Mat, Mat)>,
}

impl Ssm {
    /// The transition `(A, Q)` from bin `t` to bin `t + 1`.
    pub fn trans(&self, t: usize) -> (&Mat, &Mat) {
        match self.tv.get(t) {
            Some((a, q)) => (a, q),
            None => {
                assert!(self.tv.is_empty(), "kalman: no transition out of bin {t}");
                (&self.a, &self.q)
            }
        }
    }
}

/// Filtered moments: per trial the means (`T × n`), shared covariances (one per bin), and
/// per-trial log-likelihoods `log p(y_1:T)`.
#[derive(Debug, Clone)]
pub struct Filtered {
    /// Per trial, `T × n` filtered means.
    pub means: Vec<Mat>,
    /// Per bin, the filtered covariance.
    pub covs: Vec<Mat>,
    /// Per trial, the marginal log-likelihood.
    pub loglik: Vec<f64>,
}

/// Smoothed moments: per trial the means (`T × n`), shared covariances and the smoother gains
/// `G_t` (`Cov(s_{t+1}, s_t | y) = P^s_{t+1} G_tᵀ`), `T − 1` of them.
#[derive(Debug, Clone)]
pub struct Smoothed {
    /// Per trial, `T × n` smoothed means.
    pub means: Vec<Mat>,
    /// Per bin, the smoothed covariance.
    pub covs: Vec<Mat>,
    /// Per bin `t < T`, the smoother gain.
    pub gains: Vec<Mat>,
}

fn chol(a: &Mat, what: &'static str, step: usize) -> Result<Mat, LatentError> {
    cholesky(&a.sym()).map_err(|e| LatentError::NotPositiveDefinite {
        what,
        step,
        iteration: None,
        value: e.value,
    })
}

fn ln2pi() -> f64 {
    (2.0 * std::f64::consts::PI).ln()
}

fn check_shapes(ssm: &Ssm, ys: &[Mat]) -> usize {
    let t = ys.first().map_or(0, |y| y.rows);
    for y in ys {
        assert_eq!(y.rows, t, "kalman: every trial must have the same length");
        assert_eq!(y.cols, ssm.h.rows, "kalman: observation dimension");
    }
    t
}

/// Joseph-form update of `P⁻` with gain `K`: `(I − K H) P⁻ (I − K H)ᵀ + K R Kᵀ`.
fn joseph(p: &Mat, k: &Mat, h: &Mat, r: &Mat) -> Mat {
    let ikh = Mat::eye(p.rows).sub(&k.mul(h));
    ikh.mul(p).mul_t(&ikh).add(&k.mul(r).mul_t(k)).sym()
}

/// The gain `K = P Hᵀ S⁻¹` with `S = H P Hᵀ + R`; returns `(K, chol(S))`.
fn gain(p: &Mat, h: &Mat, r: &Mat, step: usize) -> Result<(Mat, Mat), LatentError> {
    let s = h.mul(p).mul_t(h).add(r);
    let ls = chol(&s, "innovation covariance H P Hᵀ + R", step)?;
    let k = chol_solve(&ls, &h.mul(p)).t();
    Ok((k, ls))
}

/// The log density of innovation `v` under `N(0, S)`, `S = L Lᵀ`.
fn log_normal(v: &[f64], ls: &Mat) -> f64 {
    let w = chol_solve_vec(ls, v);
    let quad: f64 = v.iter().zip(&w).map(|(a, b)| a * b).sum();
    -0.5 * (v.len() as f64 * ln2pi() + chol_logdet(ls) + quad)
}

fn row(m: &Mat, t: usize) -> &[f64] {
    &m.data[t * m.cols..(t + 1) * m.cols]
}

fn set_row(m: &mut Mat, t: usize, v: &[f64]) {
    m.data[t * m.cols..(t + 1) * m.cols].copy_from_slice(v);
}

/// The sequential Kalman filter over trials `ys` (each `T × p`).
pub fn filter(ssm: &Ssm, ys: &[Mat]) -> Result<Filtered, LatentError> {
    let tn = check_shapes(ssm, ys);
    let n = ssm.a.rows;
    let mut means: Vec<Mat> = ys.iter().map(|_| Mat::zeros(tn, n)).collect();
    let mut covs = Vec::with_capacity(tn);
    let mut loglik = vec![0.0; ys.len()];
    let mut p_prev = ssm.p0.clone();
    for t in 0..tn {
        let p_pred = if t == 0 {
            ssm.p0.clone()
        } else {
            let (a, q) = ssm.trans(t - 1);
            a.mul(&p_prev).mul_t(a).add(q).sym()
        };
        let (k, ls) = gain(&p_pred, &ssm.h, &ssm.r, t)?;
        for (i, y) in ys.iter().enumerate() {
            let m_pred = if t == 0 {
                ssm.m0.clone()
            } else {
                ssm.trans(t - 1).0.mv(row(&means[i], t - 1))
            };
            let hm = ssm.h.mv(&m_pred);
            let v: Vec<f64> = row(y, t).iter().zip(&hm).map(|(a, b)| a - b).collect();
            loglik[i] += log_normal(&v, &ls);
            let kv = k.mv(&v);
            let m: Vec<f64> = m_pred.iter().zip(&kv).map(|(a, b)| a + b).collect();
            set_row(&mut means[i], t, &m);
        }
        p_prev = joseph(&p_pred, &k, &ssm.h, &ssm.r);
        covs.push(p_prev.clone());
    }
    Ok(Filtered {
        means,
        covs,
        loglik,
    })
}

/// The smoother gain at `t`: `G = P_t Aᵀ (A P_t Aᵀ + Q)⁻¹` and the predicted covariance.
fn smoother_gain(ssm: &Ssm, p: &Mat, t: usize) -> Result<(Mat, Mat), LatentError> {
    let (a, q) = ssm.trans(t);
    let p_pred = a.mul(p).mul_t(a).add(q).sym();
    let lp = chol(&p_pred, "predicted covariance A P Aᵀ + Q", t + 1)?;
    let g = chol_solve(&lp, &a.mul(p)).t();
    Ok((g, p_pred))
}

/// The sequential Rauch–Tung–Striebel smoother from filtered moments.
pub fn smooth(ssm: &Ssm, f: &Filtered) -> Result<Smoothed, LatentError> {
    let tn = f.covs.len();
    let mut means = f.means.clone();
    let mut covs = f.covs.clone();
    let mut gains = vec![Mat::zeros(0, 0); tn.saturating_sub(1)];
    for t in (0..tn.saturating_sub(1)).rev() {
        let (g, p_pred) = smoother_gain(ssm, &f.covs[t], t)?;
        covs[t] = f.covs[t]
            .add(&g.mul(&covs[t + 1].sub(&p_pred)).mul_t(&g))
            .sym();
        for (i, m) in means.iter_mut().enumerate() {
            let mf = row(&f.means[i], t);
            let pred = ssm.trans(t).0.mv(mf);
            let d: Vec<f64> = row(m, t + 1)
                .iter()
                .zip(&pred)
                .map(|(a, b)| a - b)
                .collect();
            let gd = g.mv(&d);
            let ms: Vec<f64> = mf.iter().zip(&gd).map(|(a, b)| a + b).collect();
            set_row(m, t, &ms);
        }
        gains[t] = g;
    }
    Ok(Smoothed { means, covs, gains })
}

/// The inclusive prefix products `e_0, e_0 ⊗ e_1, …` of an associative operation by a tree
/// reduction: combine neighbours pairwise, scan the half-length sequence recursively, then
/// fill in the even positions — `2⌈log₂ T⌉` levels, each a set of independent combinations.
pub fn scan<E: Clone>(elems: Vec<E>, op: &impl Fn(&E, &E) -> E) -> Vec<E> {
    let n = elems.len();
    if n <= 1 {
        return elems;
    }
    let pairs: Vec<E> = (0..n / 2)
        .map(|i| op(&elems[2 * i], &elems[2 * i + 1]))
        .collect();
    let ps = scan(pairs, op);
    (0..n)
        .map(|i| {
            if i == 0 {
                elems[0].clone()
            } else if i % 2 == 1 {
                ps[(i - 1) / 2].clone()
            } else {
                op(&ps[i / 2 - 1], &elems[i])
            }
        })
        .collect()
}

/// A filtering element (Särkkä & García-Fernández 2021, eq. 10–14): the covariance part shared,
/// `b` and `η` per trial.
#[derive(Debug, Clone)]
struct FilterElem {
    a: Mat,
    c: Mat,
    j: Mat,
    b: Vec<Vec<f64>>,
    eta: Vec<Vec<f64>>,
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}
fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// `e_i ⊗ e_j` for filtering elements, `i` before `j` (ibid., Lemma 8).
fn combine_filter(ei: &FilterElem, ej: &FilterElem) -> FilterElem {
    let n = ei.a.rows;
    let x = Mat::eye(n).add(&ei.c.mul(&ej.j));
    // (I + C_i J_j) is invertible for the positive semi-definite C, J of a filter.
    let xinv = lu_solve(&x, &Mat::eye(n)).unwrap_or_else(|_| Mat::eye(n).scale(f64::NAN));
    let yinv = xinv.t(); // (I + J_j C_i)⁻¹ = ((I + C_i J_j)⁻¹)ᵀ for symmetric C, J
    let ajx = ej.a.mul(&xinv);
    let aiy = ei.a.t().mul(&yinv);
    let a = ajx.mul(&ei.a);
    let c = ajx.mul(&ei.c).mul_t(&ej.a).add(&ej.c).sym();
    let j = aiy.mul(&ej.j).mul(&ei.a).add(&ei.j).sym();
    let b = (0..ei.b.len())
        .map(|k| add(&ajx.mv(&add(&ei.b[k], &ei.c.mv(&ej.eta[k]))), &ej.b[k]))
        .collect();
    let eta = (0..ei.b.len())
        .map(|k| add(&aiy.mv(&sub(&ej.eta[k], &ej.j.mv(&ei.b[k]))), &ei.eta[k]))
        .collect();
    FilterElem { a, c, j, b, eta }
}

/// The parallel-scan Kalman filter: the same moments and log-likelihood as [`filter`], to
/// rounding.
pub fn filter_parallel(ssm: &Ssm, ys: &[Mat]) -> Result<Filtered, LatentError> {
    let tn = check_shapes(ssm, ys);
    let n = ssm.a.rows;
    let nb = ys.len();
    let mut elems = Vec::with_capacity(tn);
    // Step 0: the prior N(m0, P0) updated with y_0.
    if tn > 0 {
        let (k, _) = gain(&ssm.p0, &ssm.h, &ssm.r, 0)?;
        let hm = ssm.h.mv(&ssm.m0);
        let b = ys
            .iter()
            .map(|y| add(&ssm.m0, &k.mv(&sub(row(y, 0), &hm))))
            .collect();
        elems.push(FilterElem {
            a: Mat::zeros(n, n),
            c: joseph(&ssm.p0, &k, &ssm.h, &ssm.r),
            j: Mat::zeros(n, n),
            b,
            eta: vec![vec![0.0; n]; nb],
        });
    }
    if tn > 1 {
        // Steps t ≥ 1: the covariance part is the same for every t (unless the model is
        // time-varying).
        let parts = |t: usize| -> Result<(Mat, Mat, Mat, Mat, Mat), LatentError> {
            let (am, qm) = ssm.trans(t - 1);
            let (k, ls) = gain(qm, &ssm.h, &ssm.r, t)?;
            let a = Mat::eye(n).sub(&k.mul(&ssm.h)).mul(am);
            let c = joseph(qm, &k, &ssm.h, &ssm.r);
            let ha = ssm.h.mul(am);
            let sinv_ha = chol_solve(&ls, &ha);
            let j = ha.t().mul(&sinv_ha).sym();
            Ok((k, a, c, j, sinv_ha))
        };
        let mut shared = parts(1)?;
        for t in 1..tn {
            if !ssm.tv.is_empty() && t > 1 {
                shared = parts(t)?;
            }
            let (k, a, c, j, sinv_ha) = &shared;
            let b = ys.iter().map(|y| k.mv(row(y, t))).collect();
            let eta = ys.iter().map(|y| sinv_ha.t().mv(row(y, t))).collect();
            elems.push(FilterElem {
                a: a.clone(),
                c: c.clone(),
                j: j.clone(),
                b,
                eta,
            });
        }
    }
    let pre = scan(elems, &combine_filter);
    let mut means: Vec<Mat> = (0..nb).map(|_| Mat::zeros(tn, n)).collect();
    let mut covs = Vec::with_capacity(tn);
    for (t, e) in pre.into_iter().enumerate() {
        for (k, m) in means.iter_mut().enumerate() {
            set_row(m, t, &e.b[k]);
        }
        if e.c.data.iter().any(|v| !v.is_finite()) {
            return Err(LatentError::NotPositiveDefinite {
                what: "parallel-scan filtered covariance",
                step: t,
                iteration: None,
                value: f64::NAN,
            });
        }
        covs.push(e.c);
    }
    let loglik = loglik_from_filtered(ssm, ys, &means, &covs)?;
    Ok(Filtered {
        means,
        covs,
        loglik,
    })
}

/// The per-trial log-likelihood from filtered moments: the one-step predictions and their
/// innovations at every bin, independent of each other (a parallel map).
pub fn loglik_from_filtered(
    ssm: &Ssm,
    ys: &[Mat],
    means: &[Mat],
    covs: &[Mat],
) -> Result<Vec<f64>, LatentError> {
    let tn = covs.len();
    let mut ll = vec![0.0; ys.len()];
    for t in 0..tn {
        let p_pred = if t == 0 {
            ssm.p0.clone()
        } else {
            let (a, q) = ssm.trans(t - 1);
            a.mul(&covs[t - 1]).mul_t(a).add(q)
        };
        let s = ssm.h.mul(&p_pred).mul_t(&ssm.h).add(&ssm.r);
        let ls = chol(&s, "innovation covariance H P Hᵀ + R", t)?;
        for (i, y) in ys.iter().enumerate() {
            let m_pred = if t == 0 {
                ssm.m0.clone()
            } else {
                ssm.trans(t - 1).0.mv(row(&means[i], t - 1))
            };
            ll[i] += log_normal(&sub(row(y, t), &ssm.h.mv(&m_pred)), &ls);
        }
    }
    Ok(ll)
}

/// A smoothing element `(E, g, L)` (ibid., eq. 19–21).
#[derive(Debug, Clone)]
struct SmoothElem {
    e: Mat,
    l: Mat,
    g: Vec<Vec<f64>>,
}

/// `e_i ⊗ e_j` for smoothing elements, `i` before `j` (ibid., Lemma 10).
fn combine_smooth(ei: &SmoothElem, ej: &SmoothElem) -> SmoothElem {
    SmoothElem {
        e: ei.e.mul(&ej.e),
        l: ei.e.mul(&ej.l).mul_t(&ei.e).add(&ei.l).sym(),
        g: (0..ei.g.len())
            .map(|k| add(&ei.e.mv(&ej.g[k]), &ei.g[k]))
            .collect(),
    }
}

/// The parallel-scan RTS smoother: the same moments as [`smooth`], to rounding. The elements
/// are formed independently from the filtered moments, then a suffix scan (a prefix scan of
/// the reversed sequence) combines them.
pub fn smooth_parallel(ssm: &Ssm, f: &Filtered) -> Result<Smoothed, LatentError> {
    let tn = f.covs.len();
    let n = ssm.a.rows;
    let nb = f.means.len();
    let mut elems = Vec::with_capacity(tn);
    let mut gains = Vec::with_capacity(tn.saturating_sub(1));
    for t in 0..tn {
        if t + 1 == tn {
            elems.push(SmoothElem {
                e: Mat::zeros(n, n),
                l: f.covs[t].clone(),
                g: (0..nb).map(|k| row(&f.means[k], t).to_vec()).collect(),
            });
        } else {
            let (g, _) = smoother_gain(ssm, &f.covs[t], t)?;
            let ga = g.mul(ssm.trans(t).0);
            let l = f.covs[t].sub(&ga.mul(&f.covs[t])).sym();
            let gv = (0..nb)
                .map(|k| {
                    let m = row(&f.means[k], t);
                    sub(m, &ga.mv(m))
                })
                .collect();
            gains.push(g.clone());
            elems.push(SmoothElem { e: g, l, g: gv });
        }
    }
    elems.reverse();
    let mut suf = scan(elems, &|later: &SmoothElem, earlier: &SmoothElem| {
        combine_smooth(earlier, later)
    });
    suf.reverse();
    let mut means: Vec<Mat> = (0..nb).map(|_| Mat::zeros(tn, n)).collect();
    let mut covs = Vec::with_capacity(tn);
    for (t, e) in suf.into_iter().enumerate() {
        for (k, m) in means.iter_mut().enumerate() {
            set_row(m, t, &e.g[k]);
        }
        covs.push(e.l);
    }
    Ok(Smoothed { means, covs, gains })
}
