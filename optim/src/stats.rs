//! Windowed summary statistics of traces (mean and standard deviation per window), the
//! normalised mean absolute error between the statistics of simulation and data, and MSE between
//! traces as Burn tensors; host-slice versions with analytic gradients, tensor versions
//! differentiable under Burn autodiff (and tested against the host ones).
//!
//! # Windows
//! With window length `W ≥ 1` and stride `S ≥ 1` (both in samples), a trace of `N ≥ W` samples
//! has `K = ⌊(N − W)/S⌋ + 1` windows; window `k` covers samples `kS, …, kS + W − 1` (0-based;
//! trailing samples that do not fill a window are not used). Per window
//!
//! ```text
//! μ_k = (1/W) Σ_t x_t,       σ_k = sqrt( (1/W) Σ_t (x_t − μ_k)² + SD_EPS )
//! ```
//!
//! (population variance, as `jnp.std`; [`SD_EPS`] keeps `σ` and its gradient finite on a
//! constant window). The statistics vector is `s = [μ_0, …, μ_{K−1}, σ_0, …, σ_{K−1}]` (`2K`
//! values, trace unit, e.g. mV).
//!
//! # Normalised MAE
//! ```text
//! L = (1 / 2K) Σ_q |s_q(x) − s_q(y)| / a_q
//! ```
//!
//! with one positive scale `a_q` per statistic (trace unit), or all `a_q = 1` (plain MAE of the
//! statistics, trace unit). Dividing by a scale makes means and spreads of different sizes
//! comparable; a natural choice (the one of Jaxley's fitting examples) is the spread of each
//! statistic over simulations from the prior or over repeated recordings. The gradient uses the
//! subgradient `sign(0) = 0` where `s_q(x) = s_q(y)` exactly.
//!
//! Source: Deistler et al., "Jaxley: differentiable simulation enables large-scale training of
//! detailed biophysical models of neural dynamics", Nature Methods (2025), which fits voltage
//! traces through the mean and standard deviation of the voltage in time windows and a mean
//! absolute error between them. The `jaxley` 0.14.0 package itself ships no loss function (its
//! `optimize` module holds only parameter transforms and an optimiser wrapper; read from the
//! wheel): the losses live in user code, so the definition above is the one used here, stated
//! in full rather than imported.

use burn::prelude::{Backend, Int, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::sign0;
use crate::traces::{pair_rows, LossGrad, Traces};

/// Added to each window's variance before the square root (trace unit squared, e.g. mV²):
/// far below the variance of any recorded or simulated voltage window (≥ 1e-6 mV² for noise
/// at the µV level), it only matters for an exactly constant window, where it makes `σ_k =
/// 1e-6` with a zero (not NaN) gradient.
pub const SD_EPS: f64 = 1e-12;

/// Window length and stride (samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    window: usize,
    stride: usize,
}

impl Windows {
    /// Checked: `window ≥ 1` and `stride ≥ 1` samples.
    pub fn new(window: usize, stride: usize) -> Result<Self> {
        if window == 0 {
            return Err(Error::setting(
                "window",
                "the window length must be at least 1 sample",
            ));
        }
        if stride == 0 {
            return Err(Error::setting(
                "stride",
                "the stride must be at least 1 sample",
            ));
        }
        Ok(Self { window, stride })
    }

    /// `K` equal windows without overlap covering a trace of `len` samples: window `⌊len/K⌋`,
    /// stride the same (Jaxley's tutorials split the trace into a few equal parts).
    pub fn split(len: usize, parts: usize) -> Result<Self> {
        if parts == 0 || parts > len {
            return Err(Error::setting(
                "windows",
                format!("cannot split {len} samples into {parts} windows"),
            ));
        }
        Self::new(len / parts, len / parts)
    }

    /// Window length `W` (samples).
    pub fn window(&self) -> usize {
        self.window
    }

    /// Stride `S` (samples).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The number of windows `K` in a trace of `len` samples; an error if `len < W`.
    pub fn count(&self, len: usize) -> Result<usize> {
        if len < self.window {
            return Err(Error::shape(
                "windowed statistics",
                format!(
                    "traces of {len} samples are shorter than the window ({} samples)",
                    self.window
                ),
            ));
        }
        Ok((len - self.window) / self.stride + 1)
    }

    /// The statistics `[μ_0..μ_{K−1}, σ_0..σ_{K−1}]` of one trace (no checks; `x.len() ≥ W`).
    fn stats_of(&self, x: &[f64], k: usize, out: &mut Vec<f64>) {
        let w = self.window as f64;
        let start = out.len();
        out.resize(start + 2 * k, 0.0);
        for q in 0..k {
            let win = &x[q * self.stride..q * self.stride + self.window];
            let mu = win.iter().sum::<f64>() / w;
            let var = win.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / w;
            out[start + q] = mu;
            out[start + k + q] = (var + SD_EPS).sqrt();
        }
    }

    /// The statistics of every trace of a batch: row-major `[B, 2K]`.
    pub fn stats(&self, traces: &Traces) -> Result<Vec<f64>> {
        let k = self.count(traces.len())?;
        let mut out = Vec::with_capacity(traces.rows() * 2 * k);
        for b in 0..traces.rows() {
            self.stats_of(traces.row(b), k, &mut out);
        }
        Ok(out)
    }

    /// Checks `scale` (one positive finite value per statistic) and returns `1/a_q`.
    fn inv_scale(k: usize, scale: Option<&[f64]>) -> Result<Vec<f64>> {
        match scale {
            None => Ok(vec![1.0; 2 * k]),
            Some(a) => {
                if a.len() != 2 * k {
                    return Err(Error::shape(
                        "normalised MAE",
                        format!(
                            "{} scales given for {} statistics ({k} windows × mean, s.d.)",
                            a.len(),
                            2 * k
                        ),
                    ));
                }
                if let Some((q, v)) = a
                    .iter()
                    .enumerate()
                    .find(|(_, v)| !(v.is_finite() && **v > 0.0))
                {
                    return Err(Error::setting(
                        "scale",
                        format!(
                            "statistic {q}: the scale must be a positive finite number, got {v}"
                        ),
                    ));
                }
                Ok(a.iter().map(|v| 1.0 / v).collect())
            }
        }
    }

    /// The normalised MAE between the windowed statistics of each simulated trace and of its
    /// target, with the gradient with respect to the simulated traces.
    ///
    /// # Shapes
    /// `sim`: `[B, N]`, `target`: `[1, N]` or `[B, N]` (same length, so the windows match),
    /// `scale`: `None` (all 1) or `2K` values ordered like the statistics.
    pub fn nmae(&self, sim: &Traces, target: &Traces, scale: Option<&[f64]>) -> Result<LossGrad> {
        pair_rows("normalised MAE", sim, target, true)?;
        let k = self.count(sim.len())?;
        let inv = Self::inv_scale(k, scale)?;
        let n = sim.len();
        let w = self.window as f64;
        let norm = 1.0 / (2 * k) as f64;
        let target_stats: Vec<Vec<f64>> = (0..target.rows())
            .map(|r| {
                let mut s = Vec::new();
                self.stats_of(target.row(r), k, &mut s);
                s
            })
            .collect();
        let mut loss = Vec::with_capacity(sim.rows());
        let mut grad = vec![0.0; sim.rows() * n];
        let mut s = Vec::with_capacity(2 * k);
        for b in 0..sim.rows() {
            let x = sim.row(b);
            s.clear();
            self.stats_of(x, k, &mut s);
            let d = &target_stats[if target.rows() == 1 { 0 } else { b }];
            let mut l = 0.0;
            let g = &mut grad[b * n..(b + 1) * n];
            for q in 0..k {
                let (mu, sd) = (s[q], s[k + q]);
                let dmu = s[q] - d[q];
                let dsd = s[k + q] - d[k + q];
                l += dmu.abs() * inv[q] + dsd.abs() * inv[k + q];
                // ∂L/∂μ_k and ∂L/∂σ_k.
                let gm = norm * inv[q] * sign0(dmu);
                let gs = norm * inv[k + q] * sign0(dsd);
                let start = q * self.stride;
                for (t, xv) in x[start..start + self.window].iter().enumerate() {
                    // ∂μ/∂x_t = 1/W, ∂σ/∂x_t = (x_t − μ)/(W σ).
                    g[start + t] += gm / w + gs * (xv - mu) / (w * sd);
                }
            }
            loss.push(l * norm);
        }
        Ok(LossGrad { loss, grad })
    }

    /// The flat indices selecting all windows one after another: `[K·W]`.
    fn window_index<B: Backend>(&self, k: usize, device: &B::Device) -> Tensor<B, 1, Int> {
        let idx: Vec<i64> = (0..k)
            .flat_map(|q| (q * self.stride..q * self.stride + self.window).map(|t| t as i64))
            .collect();
        let len = idx.len();
        Tensor::from_data(TensorData::new(idx, [len]), device)
    }

    /// [`Windows::stats`] on tensors, differentiable: `[B, N]` → `[B, 2K]`.
    pub fn stats_tensor<B: Backend>(&self, x: Tensor<B, 2>) -> Result<Tensor<B, 2>> {
        let [b, n] = x.dims();
        let k = self.count(n)?;
        let idx = self.window_index::<B>(k, &x.device());
        let win = x.select(1, idx).reshape([b, k, self.window]);
        let mu = win.clone().mean_dim(2);
        let var = (win - mu.clone()).square().mean_dim(2);
        let sd = var.add_scalar(SD_EPS).sqrt();
        Ok(Tensor::cat(vec![mu.reshape([b, k]), sd.reshape([b, k])], 1))
    }

    /// [`Windows::nmae`] on tensors, differentiable with respect to `sim` (and `target`):
    /// `sim` `[B, N]`, `target` `[1, N]` or `[B, N]` → `[B]`.
    pub fn nmae_tensor<B: Backend>(
        &self,
        sim: Tensor<B, 2>,
        target: Tensor<B, 2>,
        scale: Option<&[f64]>,
    ) -> Result<Tensor<B, 1>> {
        let [b, n] = check_tensor_pair("normalised MAE", &sim, &target)?;
        let k = self.count(n)?;
        let inv = Self::inv_scale(k, scale)?;
        let inv =
            Tensor::<B, 1>::from_data(TensorData::new(inv, [2 * k]), (&sim.device(), sim.dtype()))
                .reshape([1, 2 * k]);
        let d = self.stats_tensor(sim)? - self.stats_tensor(target)?;
        Ok((d.abs() * inv).mean_dim(1).reshape([b]))
    }
}

/// Checks `sim` `[B, N]` against `target` `[1, N]` or `[B, N]`; returns `[B, N]`.
fn check_tensor_pair<B: Backend>(
    context: &'static str,
    sim: &Tensor<B, 2>,
    target: &Tensor<B, 2>,
) -> Result<[usize; 2]> {
    let [b, n] = sim.dims();
    let [tb, tn] = target.dims();
    if b == 0 || n == 0 {
        return Err(Error::shape(
            context,
            format!("empty simulated batch [{b}, {n}]"),
        ));
    }
    if (tb != 1 && tb != b) || tn != n {
        return Err(Error::shape(
            context,
            format!("simulated traces are [{b}, {n}]; the target must be [1, {n}] or [{b}, {n}], got [{tb}, {tn}]"),
        ));
    }
    Ok([b, n])
}

/// [`crate::traces::mse`] on tensors, differentiable: `sim` `[B, N]`, `target` `[1, N]` or
/// `[B, N]` → `[B]` (trace unit squared).
pub fn mse_tensor<B: Backend>(sim: Tensor<B, 2>, target: Tensor<B, 2>) -> Result<Tensor<B, 1>> {
    let [b, _] = check_tensor_pair("mse", &sim, &target)?;
    Ok((sim - target).square().mean_dim(1).reshape([b]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::rand_vec;
    use crate::traces::mse;
    use burn::backend::{Autodiff, NdArray};

    type AD = Autodiff<NdArray<f64>>;

    fn host<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
    }

    fn tensor(v: &[f64], b: usize, n: usize) -> Tensor<AD, 2> {
        let dev = Default::default();
        Tensor::from_data(
            TensorData::new(v.to_vec(), [b, n]),
            crate::test_opts::<AD>(&dev),
        )
    }

    #[test]
    fn window_statistics_match_direct_formulas() {
        let x = rand_vec(1, 23);
        let w = Windows::new(5, 3).unwrap();
        assert_eq!(w.count(23).unwrap(), 7); // starts 0, 3, …, 18
        let s = w.stats(&Traces::one(&x).unwrap()).unwrap();
        for q in 0..7 {
            let win = &x[3 * q..3 * q + 5];
            // Independent: E[x²] − E[x]².
            let m = win.iter().sum::<f64>() / 5.0;
            let m2 = win.iter().map(|v| v * v).sum::<f64>() / 5.0;
            assert!((s[q] - m).abs() < 1e-14);
            assert!((s[7 + q] - (m2 - m * m + SD_EPS).sqrt()).abs() < 1e-12);
        }
        let sp = Windows::split(23, 4).unwrap();
        assert_eq!((sp.window(), sp.stride(), sp.count(23).unwrap()), (5, 5, 4));
    }

    #[test]
    fn nmae_value_and_gradient_match_finite_differences() {
        let (b, n) = (2, 20);
        let sim = rand_vec(2, b * n);
        let tgt: Vec<f64> = rand_vec(3, n).iter().map(|v| 0.5 * v + 0.1).collect();
        let w = Windows::new(6, 4).unwrap(); // K = 4, overlapping windows
        let scale: Vec<f64> = (0..8).map(|q| 0.5 + 0.25 * q as f64).collect();
        let st = Traces::new(&sim, b, n).unwrap();
        let tt = Traces::one(&tgt).unwrap();
        let lg = w.nmae(&st, &tt, Some(&scale)).unwrap();
        // Value from the statistics, computed independently of the gradient code.
        let ds = w.stats(&tt).unwrap();
        let ss = w.stats(&st).unwrap();
        for r in 0..b {
            let want: f64 = (0..8)
                .map(|q| (ss[r * 8 + q] - ds[q]).abs() / scale[q])
                .sum::<f64>()
                / 8.0;
            assert!(
                (lg.loss[r] - want).abs() < 1e-14,
                "{} vs {want}",
                lg.loss[r]
            );
        }
        let h = 1e-6;
        for k in 0..b * n {
            let (mut p, mut m) = (sim.clone(), sim.clone());
            p[k] += h;
            m[k] -= h;
            let lp = w
                .nmae(&Traces::new(&p, b, n).unwrap(), &tt, Some(&scale))
                .unwrap();
            let lm = w
                .nmae(&Traces::new(&m, b, n).unwrap(), &tt, Some(&scale))
                .unwrap();
            let r = k / n;
            let fd = (lp.loss[r] - lm.loss[r]) / (2.0 * h);
            assert!(
                (lg.grad[k] - fd).abs() < 1e-8,
                "entry {k}: {} vs fd {fd}",
                lg.grad[k]
            );
            // Other rows do not depend on this sample.
            assert_eq!(lp.loss[1 - r], lg.loss[1 - r]);
        }
        // Samples after the last window (t = 18, 19) have zero gradient.
        assert_eq!(lg.grad[18], 0.0);
        assert_eq!(lg.grad[n + 19], 0.0);
    }

    #[test]
    fn mse_gradient_matches_finite_differences() {
        let (b, n) = (3, 5);
        let sim = rand_vec(4, b * n);
        let tgt = rand_vec(5, b * n);
        let tt = Traces::new(&tgt, b, n).unwrap();
        let lg = mse(&Traces::new(&sim, b, n).unwrap(), &tt).unwrap();
        let h = 1e-6;
        for k in 0..b * n {
            let (mut p, mut m) = (sim.clone(), sim.clone());
            p[k] += h;
            m[k] -= h;
            let r = k / n;
            let fd = (mse(&Traces::new(&p, b, n).unwrap(), &tt).unwrap().loss[r]
                - mse(&Traces::new(&m, b, n).unwrap(), &tt).unwrap().loss[r])
                / (2.0 * h);
            assert!((lg.grad[k] - fd).abs() < 1e-9, "{} vs {fd}", lg.grad[k]);
        }
        let want: f64 = (0..n).map(|t| (sim[t] - tgt[t]).powi(2)).sum::<f64>() / n as f64;
        assert!((lg.loss[0] - want).abs() < 1e-15);
    }

    #[test]
    fn tensor_versions_match_host_values_and_gradients() {
        let (b, n) = (3, 17);
        let sim = rand_vec(6, b * n);
        let tgt = rand_vec(7, n);
        let w = Windows::new(4, 3).unwrap(); // K = 5
        let scale: Vec<f64> = (0..10).map(|q| 1.0 + 0.1 * q as f64).collect();
        let st = Traces::new(&sim, b, n).unwrap();
        let tt = Traces::one(&tgt).unwrap();
        let x = tensor(&sim, b, n).require_grad();
        let y = tensor(&tgt, 1, n);
        // Statistics.
        let s_host = w.stats(&st).unwrap();
        let s_t = host(w.stats_tensor(x.clone()).unwrap());
        for (a, c) in s_host.iter().zip(&s_t) {
            assert!((a - c).abs() < 1e-13, "{a} vs {c}");
        }
        // Weighted sum of nMAE and MSE over the batch, one backward.
        let wts = [1.0, 0.3, -2.0];
        let wt = Tensor::<AD, 1>::from_data(
            TensorData::new(wts.to_vec(), [b]),
            crate::test_opts::<AD>(&Default::default()),
        );
        let l_n = w.nmae_tensor(x.clone(), y.clone(), Some(&scale)).unwrap();
        let l_m = mse_tensor(x.clone(), y.clone()).unwrap();
        let (vn, vm) = (host(l_n.clone()), host(l_m.clone()));
        let grads = ((l_n + l_m * 0.7) * wt).sum().backward();
        let g = host(x.grad(&grads).unwrap());
        let hn = w.nmae(&st, &tt, Some(&scale)).unwrap();
        let hm = mse(&st, &tt).unwrap();
        for r in 0..b {
            assert!((vn[r] - hn.loss[r]).abs() < 1e-13);
            assert!((vm[r] - hm.loss[r]).abs() < 1e-13);
            for t in 0..n {
                let k = r * n + t;
                let want = wts[r] * (hn.grad[k] + 0.7 * hm.grad[k]);
                assert!((g[k] - want).abs() < 1e-12, "{k}: {} vs {want}", g[k]);
            }
        }
    }

    #[test]
    fn constant_window_gives_finite_gradient() {
        let x = vec![-65.0; 12];
        let y: Vec<f64> = (0..12).map(|t| -65.0 + t as f64).collect();
        let w = Windows::new(4, 4).unwrap();
        let lg = w
            .nmae(&Traces::one(&x).unwrap(), &Traces::one(&y).unwrap(), None)
            .unwrap();
        assert!(lg.loss[0].is_finite() && lg.grad.iter().all(|v| v.is_finite()));
        let xt = tensor(&x, 1, 12).require_grad();
        let l = w.nmae_tensor(xt.clone(), tensor(&y, 1, 12), None).unwrap();
        let g = host(xt.grad(&l.backward()).unwrap());
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    }

    #[test]
    fn bad_settings_and_shapes_are_errors() {
        assert!(Windows::new(0, 1)
            .unwrap_err()
            .to_string()
            .contains("window"));
        assert!(Windows::new(3, 0)
            .unwrap_err()
            .to_string()
            .contains("stride"));
        let w = Windows::new(5, 5).unwrap();
        let x = [0.0; 4];
        let e = w.stats(&Traces::one(&x).unwrap()).unwrap_err().to_string();
        assert!(e.contains("shorter than the window"), "{e}");
        let x = [0.0; 10];
        let t = Traces::one(&x).unwrap();
        let e = w
            .nmae(&t, &t, Some(&[1.0, 1.0, 1.0]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 scales given for 4 statistics"), "{e}");
        let e = w
            .nmae(&t, &t, Some(&[1.0, 0.0, 1.0, 1.0]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("statistic 1"), "{e}");
        let y = [0.0; 9];
        let e = mse(&t, &Traces::one(&y).unwrap()).unwrap_err().to_string();
        assert!(e.contains("10 samples but target traces have 9"), "{e}");
        let e = mse_tensor(tensor(&[0.0; 6], 2, 3), tensor(&[0.0; 8], 2, 4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2, 4]"), "{e}");
        let e = Traces::new(&[0.0, f64::NAN, 0.0, 0.0], 2, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("trace 0 sample 1"), "{e}");
    }
}
