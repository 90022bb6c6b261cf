//! The pieces of a multi-region latent-variable model: data, latent processes (their GP
//! priors and how regions see them), the block-diagonal state-space lift of the prior, and
//! the linear-Gaussian observation model with its reduction to the latent space.

use neurodiff_models::latent::ar::{ar_lift, sde_lift, Lift};
use neurodiff_models::latent::linalg::{chol_logdet, chol_solve_vec, cholesky, Mat};
use neurodiff_models::latent::Kernel;

use super::LatentError;

/// Multi-region data: per region, per trial a `T × neurons` matrix (rows are time bins).
#[derive(Debug, Clone)]
pub struct Data {
    /// Region names (for messages and outputs).
    pub names: Vec<String>,
    /// `regions[r][trial]`: `T × N_r`.
    pub regions: Vec<Vec<Mat>>,
}

impl Data {
    /// Checks the shapes and values: at least one region, every region with the same trial
    /// count and length, at least one neuron, finite values.
    pub fn new(names: Vec<String>, regions: Vec<Vec<Mat>>) -> Result<Self, LatentError> {
        if regions.is_empty() {
            return Err(LatentError::Data("no regions given".into()));
        }
        assert_eq!(names.len(), regions.len(), "Data::new: one name per region");
        let (n0, t0) = (regions[0].len(), regions[0].first().map_or(0, |m| m.rows));
        if n0 == 0 || t0 == 0 {
            return Err(LatentError::Data(format!(
                "region `{}` has no trials or no time bins",
                names[0]
            )));
        }
        for (r, reg) in regions.iter().enumerate() {
            if reg.len() != n0 {
                return Err(LatentError::Data(format!(
                    "region `{}` has {} trials but region `{}` has {n0}: every region must \
                     have the same trials",
                    names[r],
                    reg.len(),
                    names[0]
                )));
            }
            let nr = reg[0].cols;
            if nr == 0 {
                return Err(LatentError::Data(format!(
                    "region `{}` has no neurons",
                    names[r]
                )));
            }
            for (k, m) in reg.iter().enumerate() {
                if m.rows != t0 {
                    return Err(LatentError::Data(format!(
                        "region `{}` trial {k} has {} time bins but region `{}` has {t0}: \
                         every trial must have the same length",
                        names[r], m.rows, names[0]
                    )));
                }
                assert_eq!(m.cols, nr, "Data::new: ragged neurons");
                if let Some(i) = m.data.iter().position(|v| !v.is_finite()) {
                    return Err(LatentError::Data(format!(
                        "region `{}` trial {k}, time bin {}, neuron {}: value {} is not finite \
                         (NaN or infinite values are not allowed)",
                        names[r],
                        i / nr,
                        i % nr,
                        m.data[i]
                    )));
                }
            }
        }
        Ok(Self { names, regions })
    }
    /// Number of regions.
    pub fn n_regions(&self) -> usize {
        self.regions.len()
    }
    /// Number of trials.
    pub fn n_trials(&self) -> usize {
        self.regions[0].len()
    }
    /// Trial length in bins.
    pub fn n_bins(&self) -> usize {
        self.regions[0][0].rows
    }
    /// The trials `idx` of every region.
    pub fn subset(&self, idx: &[usize]) -> Self {
        Self {
            names: self.names.clone(),
            regions: self
                .regions
                .iter()
                .map(|r| idx.iter().map(|&k| r[k].clone()).collect())
                .collect(),
        }
    }
    /// Neurons per region.
    pub fn neurons(&self) -> Vec<usize> {
        self.regions.iter().map(|r| r[0].cols).collect()
    }
}

/// What kind of latent a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Shared by every region without delay (GPFA).
    Shared,
    /// Shared by every region, delayed per region (DLAG across-region).
    Across,
    /// Private to one region.
    Within,
}

/// One latent GP and who sees it: `outputs` delayed copies (`delays[o]` bins each), region `r`
/// seeing copy `observers[..] = (r, o)`.
#[derive(Debug, Clone)]
pub struct Process {
    /// The kind.
    pub kind: Kind,
    /// The kernel (its timescale is a parameter).
    pub kernel: Box<dyn Kernel>,
    /// Delay of each output copy, bins (the first is 0).
    pub delays: Vec<f64>,
    /// `(region, output)` pairs.
    pub observers: Vec<(usize, usize)>,
}

/// The prior of all latents and its lift.
#[derive(Debug, Clone)]
pub struct Prior {
    /// The processes.
    pub processes: Vec<Process>,
    /// AR order `P` for kernels without an exact SDE (or with delays).
    pub ar_order: usize,
    /// White-noise jitter on AR-lifted outputs (variance, relative to 1).
    pub jitter: f64,
    /// Number of regions.
    pub n_regions: usize,
    /// A free linear-Gaussian latent dynamics instead of GP processes (the `lds` preset;
    /// `processes` is then empty).
    pub lds: Option<Lds>,
    /// Time-varying delays of the across latents (the `adm` preset): when set, the delay of
    /// output `o` of process `p` at bin `t` is `delays[o] + tv.offset(p, o, t)` (see
    /// [`super::adm`]), and the lift is time-varying.
    pub tv: Option<super::adm::TvDelay>,
}

/// Free linear-Gaussian latent dynamics (the `lds` preset): `x_1 ~ N(m0, P0)`,
/// `x_{t+1} = A x_t + N(0, Q)`, every region seeing all of `x` through its own loadings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Lds {
    /// Transition `A` (`q × q`).
    #[serde(with = "mat_rows")]
    pub a: Mat,
    /// Process noise `Q`.
    #[serde(with = "mat_rows")]
    pub q: Mat,
    /// Initial mean.
    pub m0: Vec<f64>,
    /// Initial covariance.
    #[serde(with = "mat_rows")]
    pub p0: Mat,
}

/// A matrix as nested row vectors in JSON.
pub mod mat_rows {
    use neurodiff_models::latent::linalg::Mat;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Rows as nested vectors.
    pub fn serialize<S: Serializer>(m: &Mat, s: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<&[f64]> = (0..m.rows)
            .map(|i| &m.data[i * m.cols..(i + 1) * m.cols])
            .collect();
        rows.serialize(s)
    }
    /// From nested row vectors (all of one length).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mat, D::Error> {
        let rows: Vec<Vec<f64>> = Vec::deserialize(d)?;
        of_rows(rows).map_err(serde::de::Error::custom)
    }
    /// A matrix from rows, or why not.
    pub fn of_rows(rows: Vec<Vec<f64>>) -> Result<Mat, String> {
        let cols = rows.first().map_or(0, |r| r.len());
        if rows.iter().any(|r| r.len() != cols) {
            return Err("ragged matrix rows".into());
        }
        let n = rows.len();
        Ok(Mat::from_vec(n, cols, rows.into_iter().flatten().collect()))
    }
}

/// The lifted prior: `(A, Q, P0)` block-diagonal over processes, and `H` mapping the state to
/// the latents seen by the regions, listed region by region.
#[derive(Debug, Clone)]
pub struct Lifted {
    /// Transition.
    pub a: Mat,
    /// Process noise.
    pub q: Mat,
    /// Initial (stationary) covariance.
    pub p0: Mat,
    /// `q × n`: row `k` selects latent `k`.
    pub h: Mat,
    /// Per region, the range of rows of `h` that are its latents.
    pub region_rows: Vec<std::ops::Range<usize>>,
    /// Initial mean (zero for the GP priors).
    pub m0: Vec<f64>,
    /// Time-varying transitions (the `adm` preset), `(A_t, Q_t)` from bin `t` to `t + 1`
    /// (`T − 1` of them; empty for a time-invariant prior): see [`super::kalman::Ssm::tv`].
    pub tv: Vec<(Mat, Mat)>,
}

fn block_diag(blocks: &[&Mat]) -> Mat {
    let n: usize = blocks.iter().map(|b| b.rows).sum();
    let mut m = Mat::zeros(n, n);
    let mut o = 0;
    for b in blocks {
        m.set_block(o, o, b);
        o += b.rows;
    }
    m
}

impl Prior {
    /// The latents region `r` sees, in order: `(process, output)`.
    /// For the `lds` preset, every region sees every state: `(state, 0)`.
    pub fn region_latents(&self, r: usize) -> Vec<(usize, usize)> {
        if let Some(l) = &self.lds {
            return if r < self.n_regions {
                (0..l.a.rows).map(|j| (j, 0)).collect()
            } else {
                vec![]
            };
        }
        let mut v = Vec::new();
        for (p, proc_) in self.processes.iter().enumerate() {
            for &(reg, o) in &proc_.observers {
                if reg == r {
                    v.push((p, o));
                }
            }
        }
        v
    }
    /// Latents per region.
    pub fn q_dims(&self) -> Vec<usize> {
        (0..self.n_regions)
            .map(|r| self.region_latents(r).len())
            .collect()
    }
    /// The lift of one process: the exact SDE for a one-output Matérn kernel, else AR(P).
    fn lift_one(&self, p: &Process) -> Result<Lift, LatentError> {
        if p.delays.len() == 1 {
            if let Some(sde) = p.kernel.sde() {
                return Ok(sde_lift(&sde));
            }
        }
        ar_lift(p.kernel.as_ref(), &p.delays, self.ar_order, self.jitter).map_err(|e| {
            LatentError::NotPositiveDefinite {
                what: "lagged kernel covariance of the AR lift",
                step: 0,
                iteration: None,
                value: e.value,
            }
        })
    }
    /// The block-diagonal state-space form of the whole prior.
    pub fn lift(&self) -> Result<Lifted, LatentError> {
        if let Some(l) = &self.lds {
            let n = l.a.rows;
            let h = Mat::from_fn(
                n * self.n_regions,
                n,
                |i, j| if i % n == j { 1.0 } else { 0.0 },
            );
            return Ok(Lifted {
                a: l.a.clone(),
                q: l.q.clone(),
                p0: l.p0.clone(),
                h,
                region_rows: (0..self.n_regions).map(|r| r * n..(r + 1) * n).collect(),
                m0: l.m0.clone(),
                tv: vec![],
            });
        }
        let lifts: Vec<Lift> = self
            .processes
            .iter()
            .enumerate()
            .map(|(i, p)| match &self.tv {
                // A time-varying process starts from its stationary law at bin 0's delays.
                Some(tv) if tv.varies(i) => self.lift_one(&tv.process_at(i, p, 0)),
                _ => self.lift_one(p),
            })
            .collect::<Result<_, _>>()?;
        let a = block_diag(&lifts.iter().map(|l| &l.a).collect::<Vec<_>>());
        let q = block_diag(&lifts.iter().map(|l| &l.q).collect::<Vec<_>>());
        let p0 = block_diag(&lifts.iter().map(|l| &l.pinf).collect::<Vec<_>>());
        // Time-varying transitions: into bin t + 1 the AR lift at the delays of bin t + 1.
        let mut tvs = Vec::new();
        if let Some(tv) = self.tv.as_ref().filter(|tv| tv.any_varies()) {
            for t in 0..tv.bins.saturating_sub(1) {
                let mut la = Vec::with_capacity(lifts.len());
                for (i, p) in self.processes.iter().enumerate() {
                    la.push(if tv.varies(i) {
                        self.lift_one(&tv.process_at(i, p, t + 1))
                            .map_err(|e| e.at_step(t + 1))?
                    } else {
                        lifts[i].clone()
                    });
                }
                tvs.push((
                    block_diag(&la.iter().map(|l| &l.a).collect::<Vec<_>>()),
                    block_diag(&la.iter().map(|l| &l.q).collect::<Vec<_>>()),
                ));
            }
        }
        let mut offsets = Vec::with_capacity(lifts.len());
        let mut o = 0;
        for l in &lifts {
            offsets.push(o);
            o += l.a.rows;
        }
        let n = o;
        let mut rows = Vec::new();
        let mut region_rows = Vec::new();
        for r in 0..self.n_regions {
            let start = rows.len();
            for (p, out) in self.region_latents(r) {
                // The state index of output `out` of process `p`: H of its lift picks it.
                let lh = &lifts[p].h;
                let col = (0..lh.cols).find(|&c| lh[(out, c)] != 0.0).unwrap_or(0);
                rows.push(offsets[p] + col);
            }
            region_rows.push(start..rows.len());
        }
        let h = Mat::from_fn(rows.len(), n, |i, j| if rows[i] == j { 1.0 } else { 0.0 });
        Ok(Lifted {
            a,
            q,
            p0,
            h,
            region_rows,
            m0: vec![0.0; n],
            tv: tvs,
        })
    }
}

/// The observation model of every region: `y_r = C_r x_r + d_r + N(0, diag R_r)`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ObsParams {
    /// Loadings `C_r` (`N_r × q_r`), row-major as nested vectors in JSON.
    #[serde(serialize_with = "ser_mats", deserialize_with = "de_mats")]
    pub c: Vec<Mat>,
    /// Offsets `d_r`.
    pub d: Vec<Vec<f64>>,
    /// Private noise variances `R_r` (diagonal).
    pub r: Vec<Vec<f64>>,
}

fn de_mats<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Mat>, D::Error> {
    use serde::Deserialize;
    let ms: Vec<Vec<Vec<f64>>> = Vec::deserialize(d)?;
    ms.into_iter()
        .map(|rows| mat_rows::of_rows(rows).map_err(serde::de::Error::custom))
        .collect()
}

fn ser_mats<S: serde::Serializer>(m: &[Mat], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(m.len()))?;
    for x in m {
        let rows: Vec<&[f64]> = (0..x.rows)
            .map(|i| &x.data[i * x.cols..(i + 1) * x.cols])
            .collect();
        seq.serialize_element(&rows)?;
    }
    seq.end()
}

/// The observations reduced to the latent space: per trial `T × q` pseudo-observations `ỹ`
/// with noise covariance `R̃` (block-diagonal over regions), and the constant that restores
/// the full log-likelihood.
///
/// With `W_r = C_rᵀ R_r⁻¹` and `J_r = W_r C_r` (positive definite when `C_r` has full column
/// rank): `ỹ_r = J_r⁻¹ W_r (y_r − d_r)`, `R̃_r = J_r⁻¹`, and
/// `log N(y; Cx + d, R) = log N(ỹ; x, J⁻¹) + c(y)` for every `x`, with
/// `c = −½[(N − q) ln 2π + Σ ln R + ln|J| + (y−d)ᵀR⁻¹(y−d) − ỹᵀ J ỹ]`. The filter then works
/// in `q` dimensions instead of `N`.
pub struct Reduced {
    /// Per trial, `T × q`.
    pub ys: Vec<Mat>,
    /// `q × q` noise covariance.
    pub r: Mat,
    /// The constant of the log-likelihood, summed over trials and bins.
    pub constant: f64,
}

/// Reduces `data` under `obs` (see [`Reduced`]).
pub fn reduce(data: &Data, obs: &ObsParams, names: &[String]) -> Result<Reduced, LatentError> {
    reduce_with(data, obs, None, names)
}

/// [`reduce`] with, per region, a `q_r × q_r` term added to `J_r = C_rᵀ R_r⁻¹ C_r`: the
/// variational (mDLAG) form, where the loadings are uncertain and the latents' expected
/// observation precision is `E[C_rᵀ R_r⁻¹ C_r] = C̄_rᵀ R_r⁻¹ C̄_r + Σ_i Σ_{C,i} / R_i`
/// (`C̄` the posterior mean in `obs.c`, `Σ_{C,i}` row `i`'s posterior covariance). The
/// constant then makes `log N(ỹ; x, J⁻¹) + c = E_C[log N(y; Cx + d, R)]` for every `x`.
pub fn reduce_with(
    data: &Data,
    obs: &ObsParams,
    extra_j: Option<&[Mat]>,
    names: &[String],
) -> Result<Reduced, LatentError> {
    let (nt, tn) = (data.n_trials(), data.n_bins());
    let qs: Vec<usize> = obs.c.iter().map(|c| c.cols).collect();
    let q: usize = qs.iter().sum();
    let mut ys: Vec<Mat> = (0..nt).map(|_| Mat::zeros(tn, q)).collect();
    let mut rmat = Mat::zeros(q, q);
    let mut constant = 0.0;
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let mut off = 0;
    for (r, reg) in data.regions.iter().enumerate() {
        let c = &obs.c[r];
        let (nr, qr) = (c.rows, c.cols);
        let rinv: Vec<f64> = obs.r[r].iter().map(|v| 1.0 / v).collect();
        let w = Mat::from_fn(qr, nr, |i, j| c[(j, i)] * rinv[j]);
        let sum_ln_r: f64 = obs.r[r].iter().map(|v| v.ln()).sum();
        let (lj, logdet_j) = if qr > 0 {
            let mut j = w.mul(c);
            if let Some(x) = extra_j {
                j = j.add(&x[r]);
            }
            let j = j.sym();
            let lj = cholesky(&j).map_err(|_| {
                LatentError::Data(format!(
                    "the loadings of region `{}` are rank-deficient ({qr} latents): fewer \
                     latents, or more neurons, are needed",
                    names[r]
                ))
            })?;
            let ld = chol_logdet(&lj);
            let jinv = neurodiff_models::latent::linalg::chol_solve(&lj, &Mat::eye(qr)).sym();
            rmat.set_block(off, off, &jinv);
            (Some(lj), ld)
        } else {
            (None, 0.0)
        };
        for (k, y) in reg.iter().enumerate() {
            for t in 0..tn {
                let yc: Vec<f64> = (0..nr).map(|i| y[(t, i)] - obs.d[r][i]).collect();
                let quad: f64 = yc.iter().zip(&rinv).map(|(a, b)| a * a * b).sum();
                let mut cst = (nr - qr) as f64 * ln2pi + sum_ln_r + logdet_j + quad;
                if let Some(lj) = &lj {
                    let wy = w.mv(&yc);
                    let yt = chol_solve_vec(lj, &wy);
                    cst -= yt.iter().zip(&wy).map(|(a, b)| a * b).sum::<f64>();
                    for (i, v) in yt.iter().enumerate() {
                        ys[k][(t, off + i)] = *v;
                    }
                }
                constant -= 0.5 * cst;
            }
        }
        off += qr;
    }
    Ok(Reduced {
        ys,
        r: rmat,
        constant,
    })
}
