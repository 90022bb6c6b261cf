//! Functional connectivity (FC) and its dynamics (FCD), differentiable, for a batch of time
//! series.
//!
//! - [`fc`]: the Pearson correlation matrix between regions over time.
//! - [`fcd`]: sliding-window FCs, then the correlation matrix between the windows' FCs.
//!
//! Correlations are dimensionless, so the signals' unit does not matter (FC is invariant to a
//! positive scale and an offset of each region's signal).

use burn::prelude::{Backend, Tensor};
use neurodiff_optim::upper_triangle;

use crate::error::{Error, Result};

/// Added to each signal's variance before the square root, `x̃ / sqrt(var + FC_EPS)` (signal
/// unit squared), so that a constant signal gives correlations of 0 with every other region,
/// with a finite gradient, instead of `0/0`. Negligible for any signal with a standard
/// deviation well above `1e-10` signal units; rescale signals that are smaller than that.
pub const FC_EPS: f64 = 1e-20;

/// Pearson correlation matrices between the regions of each batch element, over time.
///
/// Each region's signal is centred over time and divided by its standard deviation (population
/// form, `1/T`; the choice cancels in a correlation); the FC is then `zᵀ z / T`. The diagonal is
/// set to exactly 1 (a constant signal included, whose off-diagonal entries are 0, see
/// [`FC_EPS`]). Differentiable; the diagonal carries no gradient.
///
/// # Shapes
/// `x`: `[R, T, N]` (batch, time, regions) with `T >= 2` → `[R, N, N]`, symmetric.
///
/// # Panics
/// If `T < 2` (there is no correlation over a single frame).
pub fn fc<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [_, t, n] = x.dims();
    assert!(t >= 2, "fc: need at least 2 time frames, got {t}");
    let xc = x.clone() - x.mean_dim(1);
    let var = xc.clone().square().mean_dim(1); // [R, 1, N]
    let z = xc / var.add_scalar(FC_EPS).sqrt();
    let c = z.clone().swap_dims(1, 2).matmul(z) / t as f64;
    // Cast: `eye` uses the device's default dtype, which Burn 0.21 shares between f32 and f64 backends.
    let eye = Tensor::<B, 2>::eye(n, &c.device())
        .cast(c.dtype())
        .unsqueeze::<3>();
    c * (eye.clone().neg().add_scalar(1.0)) + eye
}

/// The number of sliding windows of `window` frames taken every `step` frames from `frames`
/// frames, checking that an FCD can be formed: `window >= 2`, `step >= 1`, `frames >= window`
/// and `nodes >= 3` (each window's FC upper triangle needs at least two entries to be
/// correlated). Windows that would run past the end are dropped.
pub fn fcd_windows(frames: usize, nodes: usize, window: usize, step: usize) -> Result<usize> {
    if window < 2 {
        return Err(Error::setting(
            "fcd window",
            format!("a window needs at least 2 frames, got {window}"),
        ));
    }
    if step == 0 {
        return Err(Error::setting(
            "fcd step",
            "the step must be at least 1 frame",
        ));
    }
    if frames < window {
        return Err(Error::setting(
            "fcd window",
            format!(
                "the window ({window} frames) is longer than the time series ({frames} frames)"
            ),
        ));
    }
    if nodes < 3 {
        return Err(Error::setting(
            "fcd",
            format!("needs at least 3 regions, got {nodes}"),
        ));
    }
    Ok((frames - window) / step + 1)
}

/// Functional connectivity dynamics: for windows `w = 0, 1, …, W−1` covering frames
/// `[w·step, w·step + window)`, the FC of each window ([`fc`]); then the Pearson correlation
/// between the strict upper triangles (`k = 1`) of every pair of windows' FCs. Differentiable.
///
/// # Shapes
/// `x`: `[R, T, N]` → `[R, W, W]` with `W = (T − window) / step + 1` (see [`fcd_windows`]).
///
/// # Panics
/// If [`fcd_windows`] rejects the sizes; validate user settings with it first.
pub fn fcd<B: Backend>(x: Tensor<B, 3>, window: usize, step: usize) -> Tensor<B, 3> {
    let [r, t, n] = x.dims();
    let w = fcd_windows(t, n, window, step).unwrap_or_else(|e| panic!("fcd: {e}"));
    let windows: Vec<Tensor<B, 3>> = (0..w)
        .map(|k| x.clone().narrow(1, k * step, window))
        .collect();
    let stacked: Tensor<B, 4> = Tensor::stack(windows, 1); // [R, W, window, N]
    let fcs = fc(stacked.reshape([r * w, window, n])); // [R·W, N, N]
    let tri = upper_triangle(fcs); // [R·W, M]
    let m = n * (n - 1) / 2;
    // The triangle entries play the role of time: correlate windows over them.
    fc(tri.reshape([r, w, m]).swap_dims(1, 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::prelude::TensorData;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;
    use rand_xoshiro::Xoshiro256PlusPlus;

    type B = NdArray<f64>;
    type AD = Autodiff<NdArray<f64>>;

    fn host<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
    }

    /// Correlated random signals `[r, t, n]`: a common component plus noise, row-major.
    fn signals(seed: u64, r: usize, t: usize, n: usize) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut out = Vec::with_capacity(r * t * n);
        for _ in 0..r * t {
            let common: f64 = rng.sample(StandardNormal);
            for j in 0..n {
                let e: f64 = rng.sample(StandardNormal);
                out.push(common * (j as f64 / n as f64) + e + j as f64);
            }
        }
        out
    }

    /// Pearson correlation of two sequences, by loops.
    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (x, y) in a.iter().zip(b) {
            sab += (x - ma) * (y - mb);
            saa += (x - ma) * (x - ma);
            sbb += (y - mb) * (y - mb);
        }
        sab / (saa * sbb).sqrt()
    }

    /// FC of one `[t, n]` block, by loops.
    fn fc_host(x: &[f64], t: usize, n: usize) -> Vec<f64> {
        let col = |j: usize| (0..t).map(|k| x[k * n + j]).collect::<Vec<_>>();
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                out[i * n + j] = pearson(&col(i), &col(j));
            }
        }
        out
    }

    fn triu(m: &[f64], n: usize) -> Vec<f64> {
        (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j])
            .collect()
    }

    fn tensor<Bk: Backend>(v: Vec<f64>, shape: [usize; 3]) -> Tensor<Bk, 3> {
        Tensor::from_data(
            TensorData::new(v, shape),
            crate::float_opts::<Bk>(&Default::default()),
        )
    }

    #[test]
    fn fc_matches_loops_and_is_a_correlation_matrix() {
        let (r, t, n) = (2, 40, 6);
        let x = signals(1, r, t, n);
        let got = host(fc(tensor::<B>(x.clone(), [r, t, n])));
        for b in 0..r {
            let want = fc_host(&x[b * t * n..(b + 1) * t * n], t, n);
            for i in 0..n {
                assert_eq!(got[b * n * n + i * n + i], 1.0, "diagonal");
                for j in 0..n {
                    let g = got[b * n * n + i * n + j];
                    assert!(
                        (g - want[i * n + j]).abs() < 1e-12,
                        "{g} vs {}",
                        want[i * n + j]
                    );
                    assert!((g - got[b * n * n + j * n + i]).abs() < 1e-14, "symmetry");
                    assert!(g.abs() <= 1.0 + 1e-12);
                }
            }
        }
    }

    #[test]
    fn fc_invariant_to_offset_and_positive_scale() {
        let (r, t, n) = (2, 30, 5);
        let x = signals(2, r, t, n);
        let scales = [0.5, 3.0, 1e-3, 7.0, 100.0];
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(k, v)| scales[k % n] * v - 40.0 + (k % n) as f64)
            .collect();
        let a = host(fc(tensor::<B>(x, [r, t, n])));
        let b = host(fc(tensor::<B>(y, [r, t, n])));
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-10, "{p} vs {q}");
        }
    }

    #[test]
    fn fc_of_a_constant_signal_is_finite() {
        let (t, n) = (20, 3);
        let mut x = signals(3, 1, t, n);
        for k in 0..t {
            x[k * n + 1] = 2.5; // region 1 constant
        }
        let xt = tensor::<AD>(x, [1, t, n]).require_grad();
        let c = fc(xt.clone());
        let vals = host(c.clone());
        assert_eq!(vals[n + 1], 1.0);
        assert_eq!((vals[1], vals[n], vals[n + 2]), (0.0, 0.0, 0.0));
        let g = host(xt.grad(&c.sum().backward()).unwrap());
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    }

    #[test]
    fn fc_gradient_matches_finite_differences() {
        let (r, t, n) = (2, 12, 4);
        let x = signals(4, r, t, n);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let w: Vec<f64> = (0..r * n * n).map(|_| rng.sample(StandardNormal)).collect();
        let xt = tensor::<AD>(x.clone(), [r, t, n]).require_grad();
        let loss = (fc(xt.clone()) * tensor::<AD>(w.clone(), [r, n, n])).sum();
        let g = host(xt.grad(&loss.backward()).unwrap());
        let f = |x: &[f64]| -> f64 {
            (0..r)
                .map(|b| {
                    let c = fc_host(&x[b * t * n..(b + 1) * t * n], t, n);
                    c.iter()
                        .zip(&w[b * n * n..])
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
                })
                .sum()
        };
        let h = 1e-6;
        for k in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += h;
            xm[k] -= h;
            let fd = (f(&xp) - f(&xm)) / (2.0 * h);
            // Central differences: error ~ h² f''' + 1e-16 |f| / h, about 1e-9 here.
            assert!((g[k] - fd).abs() < 1e-7, "entry {k}: {} vs fd {fd}", g[k]);
        }
    }

    #[test]
    fn fcd_matches_loops() {
        let (r, t, n, window, step) = (2, 50, 5, 12, 7);
        let x = signals(6, r, t, n);
        let w = fcd_windows(t, n, window, step).unwrap();
        assert_eq!(w, 6); // starts 0, 7, …, 35; 42 + 12 > 50
        let got = fcd(tensor::<B>(x.clone(), [r, t, n]), window, step);
        assert_eq!(got.dims(), [r, w, w]);
        let got = host(got);
        for b in 0..r {
            let tris: Vec<Vec<f64>> = (0..w)
                .map(|k| {
                    let start = (b * t + k * step) * n;
                    triu(&fc_host(&x[start..start + window * n], window, n), n)
                })
                .collect();
            for i in 0..w {
                for j in 0..w {
                    let want = pearson(&tris[i], &tris[j]);
                    let g = got[(b * w + i) * w + j];
                    assert!((g - want).abs() < 1e-12, "({b},{i},{j}): {g} vs {want}");
                }
            }
        }
    }

    #[test]
    fn fcd_is_differentiable() {
        let (t, n) = (30, 4);
        let xt = tensor::<AD>(signals(7, 1, t, n), [1, t, n]).require_grad();
        let d = fcd(xt.clone(), 10, 5);
        let g = host(xt.grad(&d.sum().backward()).unwrap());
        assert!(g.iter().all(|v| v.is_finite()));
        assert!(g.iter().any(|v| v.abs() > 1e-6));
    }

    #[test]
    fn f32_backend_agrees_with_f64() {
        // The engine's default backends run in f32: same results to f32 precision.
        let (r, t, n) = (2, 40, 5);
        let x = signals(8, r, t, n);
        let a = host(fc(tensor::<B>(x.clone(), [r, t, n])));
        let b = host(fc(tensor::<NdArray<f32>>(x.clone(), [r, t, n])));
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
        let a = host(fcd(tensor::<B>(x.clone(), [r, t, n]), 10, 5));
        let b = host(fcd(tensor::<NdArray<f32>>(x, [r, t, n]), 10, 5));
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-4));
    }

    #[test]
    fn fcd_window_errors() {
        for (frames, nodes, window, step, want) in [
            (10, 4, 1, 1, "at least 2 frames"),
            (10, 4, 5, 0, "at least 1 frame"),
            (10, 4, 11, 1, "longer than the time series"),
            (10, 2, 5, 1, "at least 3 regions"),
        ] {
            let e = fcd_windows(frames, nodes, window, step)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
        assert_eq!(fcd_windows(10, 3, 10, 3).unwrap(), 1);
    }
}
