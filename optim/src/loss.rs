//! Differentiable losses between a batch of simulated functional-connectivity (FC) matrices and
//! one empirical FC matrix.
//!
//! Only the strict upper triangle (above the diagonal, `k = 1`) is compared: FC matrices are
//! symmetric and their diagonal is 1 by construction. Entries are taken row by row, `(0,1),
//! (0,2), …, (0,N−1), (1,2), …`, so an `N × N` matrix gives `M = N(N−1)/2` values.
//!
//! FC entries are correlations, so the losses are dimensionless.

use burn::prelude::{Backend, Int, Tensor, TensorData};

use crate::error::{Error, Result};

/// Added under the square root of the Pearson denominator, `sqrt(Σ s̃² Σ ẽ² + PEARSON_EPS)`, so
/// that a constant triangle (e.g. a simulation sitting at a fixed point, whose FC off-diagonal is
/// all zero) gives a correlation of 0 and a finite gradient instead of `0/0`. Far below the
/// product of two sums of squares of correlation values for any non-degenerate FC.
pub const PEARSON_EPS: f64 = 1e-24;

/// Flat indices `i·N + j` of the strict upper triangle (`i < j`) of an `N × N` matrix, row by
/// row.
pub fn upper_triangle_indices(n: usize) -> Vec<usize> {
    (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| i * n + j))
        .collect()
}

/// The strict upper triangles (`k = 1`) of a batch of square matrices, row by row
/// (differentiable: a `select` of precomputed indices).
///
/// # Shapes
/// `m`: `[R, N, N]` → `[R, N(N−1)/2]`. For a single matrix, `unsqueeze` it to `[1, N, N]`.
///
/// # Panics
/// If the last two dimensions differ (callers check user input first; see [`fc_corr_loss`]).
pub fn upper_triangle<B: Backend>(m: Tensor<B, 3>) -> Tensor<B, 2> {
    let [r, n, n2] = m.dims();
    assert_eq!(
        n, n2,
        "upper_triangle: matrices must be square, got [{r}, {n}, {n2}]"
    );
    let idx: Vec<i64> = upper_triangle_indices(n)
        .into_iter()
        .map(|i| i as i64)
        .collect();
    let len = idx.len();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [len]), &m.device());
    m.reshape([r, n * n]).select(1, idx)
}

/// Checks that `fc_sim` is `[R, N, N]` and `fc_emp` is `[N, N]` with `N >= min_n`.
fn check_fc<B: Backend>(
    context: &'static str,
    fc_sim: &Tensor<B, 3>,
    fc_emp: &Tensor<B, 2>,
    min_n: usize,
) -> Result<()> {
    let [r, n, n2] = fc_sim.dims();
    let [e1, e2] = fc_emp.dims();
    if n != n2 {
        return Err(Error::shape(
            context,
            format!("simulated FC must be [R, N, N], got [{r}, {n}, {n2}]"),
        ));
    }
    if e1 != e2 {
        return Err(Error::shape(
            context,
            format!("empirical FC must be square, got [{e1}, {e2}]"),
        ));
    }
    if e1 != n {
        return Err(Error::shape(
            context,
            format!("simulated FC is {n} x {n} but empirical FC is {e1} x {e2}"),
        ));
    }
    if n < min_n {
        return Err(Error::shape(
            context,
            format!("needs at least {min_n} regions, got {n}"),
        ));
    }
    if r == 0 {
        return Err(Error::shape(context, "the batch is empty"));
    }
    Ok(())
}

/// `1 − r` per batch element, `r` the Pearson correlation between the strict upper triangles of
/// the simulated and the empirical FC (range `[0, 2]`, 0 for a perfect linear match). A constant
/// simulated triangle gives `r = 0` (see [`PEARSON_EPS`]).
///
/// # Shapes
/// `fc_sim`: `[R, N, N]`, `fc_emp`: `[N, N]` with `N >= 3` (two entries at least to correlate)
/// → `[R]`.
pub fn fc_corr_loss<B: Backend>(
    fc_sim: Tensor<B, 3>,
    fc_emp: Tensor<B, 2>,
) -> Result<Tensor<B, 1>> {
    check_fc("fc_corr_loss", &fc_sim, &fc_emp, 3)?;
    let r = fc_sim.dims()[0];
    let s = upper_triangle(fc_sim);
    let e = upper_triangle(fc_emp.unsqueeze::<3>());
    let s = s.clone() - s.mean_dim(1);
    let e = e.clone() - e.mean_dim(1);
    let cov = (s.clone() * e.clone()).sum_dim(1);
    let ss = s.square().sum_dim(1);
    let se = e.square().sum_dim(1);
    let corr = cov / (ss * se).add_scalar(PEARSON_EPS).sqrt();
    Ok(corr.neg().add_scalar(1.0).reshape([r]))
}

/// Mean squared difference between the strict upper triangles of the simulated and the
/// empirical FC, per batch element.
///
/// # Shapes
/// `fc_sim`: `[R, N, N]`, `fc_emp`: `[N, N]` with `N >= 2` → `[R]`.
pub fn fc_mse<B: Backend>(fc_sim: Tensor<B, 3>, fc_emp: Tensor<B, 2>) -> Result<Tensor<B, 1>> {
    check_fc("fc_mse", &fc_sim, &fc_emp, 2)?;
    let r = fc_sim.dims()[0];
    let s = upper_triangle(fc_sim);
    let e = upper_triangle(fc_emp.unsqueeze::<3>());
    Ok((s - e).square().mean_dim(1).reshape([r]))
}

/// `Σ_k w_k L_k`: a weighted combination of per-batch losses (e.g. `fc_corr_loss` and `fc_mse`).
/// Weights must be finite; zero weights are allowed (the term then contributes nothing but is
/// still evaluated).
///
/// # Shapes
/// Every `L_k`: `[R]` (the same `R`) → `[R]`.
pub fn weighted<B: Backend>(terms: Vec<(f64, Tensor<B, 1>)>) -> Result<Tensor<B, 1>> {
    let Some(r) = terms.first().map(|(_, l)| l.dims()[0]) else {
        return Err(Error::shape("weighted", "no loss terms given"));
    };
    for (k, (w, l)) in terms.iter().enumerate() {
        if !w.is_finite() {
            return Err(Error::setting(
                "loss weight",
                format!("term {k}: the weight must be finite, got {w}"),
            ));
        }
        let [rk] = l.dims();
        if rk != r {
            return Err(Error::shape(
                "weighted",
                format!("term {k} has shape [{rk}] but term 0 has shape [{r}]"),
            ));
        }
    }
    Ok(terms
        .into_iter()
        .map(|(w, l)| l * w)
        .reduce(|a, b| a + b)
        .expect("at least one term (checked above)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::rand_vec;
    use burn::backend::{Autodiff, NdArray};

    type B = NdArray<f64>;
    type AD = Autodiff<NdArray<f64>>;

    fn host<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
    }

    /// Symmetric matrices with unit diagonal, `r` of them, row-major.
    fn sym_batch(seed: u64, r: usize, n: usize) -> Vec<f64> {
        let raw = rand_vec(seed, r * n * n);
        let mut out = vec![0.0; r * n * n];
        for b in 0..r {
            for i in 0..n {
                for j in 0..n {
                    let (a, c) = (i.min(j), i.max(j));
                    out[b * n * n + i * n + j] = if i == j {
                        1.0
                    } else {
                        raw[b * n * n + a * n + c]
                    };
                }
            }
        }
        out
    }

    /// Upper triangle by loops.
    fn triu(m: &[f64], n: usize) -> Vec<f64> {
        let mut v = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                v.push(m[i * n + j]);
            }
        }
        v
    }

    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let mut sab = 0.0;
        let mut saa = 0.0;
        let mut sbb = 0.0;
        for (x, y) in a.iter().zip(b) {
            sab += (x - ma) * (y - mb);
            saa += (x - ma) * (x - ma);
            sbb += (y - mb) * (y - mb);
        }
        sab / (saa * sbb).sqrt()
    }

    fn loss_host(sim: &[f64], emp: &[f64], n: usize, r: usize) -> (Vec<f64>, Vec<f64>) {
        let te = triu(emp, n);
        let mut corr = Vec::new();
        let mut mse = Vec::new();
        for b in 0..r {
            let ts = triu(&sim[b * n * n..(b + 1) * n * n], n);
            corr.push(1.0 - pearson(&ts, &te));
            mse.push(
                ts.iter()
                    .zip(&te)
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f64>()
                    / ts.len() as f64,
            );
        }
        (corr, mse)
    }

    #[test]
    fn upper_triangle_order_and_values() {
        let dev = Default::default();
        let n = 4;
        let vals: Vec<f64> = (0..2 * n * n).map(|v| v as f64).collect();
        let m = Tensor::<B, 3>::from_data(
            TensorData::new(vals.clone(), [2, n, n]),
            crate::test_opts::<B>(&dev),
        );
        let u = upper_triangle(m);
        assert_eq!(u.dims(), [2, 6]);
        let got = host(u);
        let mut want = triu(&vals[..16], n);
        want.extend(triu(&vals[16..], n));
        assert_eq!(got, want);
        assert_eq!(upper_triangle_indices(3), vec![1, 2, 5]);
    }

    #[test]
    fn losses_match_direct_computation() {
        let dev = Default::default();
        let (r, n) = (3, 7);
        let sim = sym_batch(1, r, n);
        let emp = sym_batch(2, 1, n);
        let (corr_want, mse_want) = loss_host(&sim, &emp, n, r);
        let ts =
            Tensor::<B, 3>::from_data(TensorData::new(sim, [r, n, n]), crate::test_opts::<B>(&dev));
        let te =
            Tensor::<B, 2>::from_data(TensorData::new(emp, [n, n]), crate::test_opts::<B>(&dev));
        let corr = host(fc_corr_loss(ts.clone(), te.clone()).unwrap());
        let mse = host(fc_mse(ts.clone(), te.clone()).unwrap());
        for b in 0..r {
            assert!(
                (corr[b] - corr_want[b]).abs() < 1e-12,
                "{} vs {}",
                corr[b],
                corr_want[b]
            );
            assert!(
                (mse[b] - mse_want[b]).abs() < 1e-12,
                "{} vs {}",
                mse[b],
                mse_want[b]
            );
        }
        // Identical FC: correlation loss 0, mse 0.
        let same = fc_corr_loss(te.clone().unsqueeze::<3>(), te.clone()).unwrap();
        assert!(host(same)[0].abs() < 1e-12);
        // Combination.
        let w = weighted(vec![
            (0.7, fc_corr_loss(ts.clone(), te.clone()).unwrap()),
            (2.0, fc_mse(ts, te).unwrap()),
        ])
        .unwrap();
        for (b, wv) in host(w).iter().enumerate() {
            let want = 0.7 * corr_want[b] + 2.0 * mse_want[b];
            assert!((wv - want).abs() < 1e-12);
        }
    }

    #[test]
    fn constant_simulated_triangle_gives_finite_loss() {
        let dev = Default::default();
        let n = 4;
        let sim = Tensor::<B, 2>::eye(n, &dev)
            .cast(crate::test_opts::<B>(&dev).dtype.unwrap())
            .unsqueeze::<3>();
        let te = Tensor::<B, 2>::from_data(
            TensorData::new(sym_batch(5, 1, n), [n, n]),
            crate::test_opts::<B>(&dev),
        );
        let l = host(fc_corr_loss(sim, te).unwrap());
        assert!((l[0] - 1.0).abs() < 1e-12, "{l:?}");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev = Default::default();
        let (r, n) = (2, 5);
        let sim = sym_batch(11, r, n);
        let emp = sym_batch(12, 1, n);
        let ts = Tensor::<AD, 3>::from_data(
            TensorData::new(sim.clone(), [r, n, n]),
            crate::test_opts::<AD>(&dev),
        )
        .require_grad();
        let te = Tensor::<AD, 2>::from_data(
            TensorData::new(emp.clone(), [n, n]),
            crate::test_opts::<AD>(&dev),
        );
        // One scalar mixing both losses and both batch elements with distinct weights.
        let total = |c: Tensor<AD, 1>, m: Tensor<AD, 1>| {
            let w = Tensor::<AD, 1>::from_data(
                TensorData::new(vec![1.0, 0.6], [2]),
                crate::test_opts::<AD>(&dev),
            );
            ((c + m * 3.0) * w).sum()
        };
        let loss = total(
            fc_corr_loss(ts.clone(), te.clone()).unwrap(),
            fc_mse(ts.clone(), te.clone()).unwrap(),
        );
        let g = host(ts.grad(&loss.backward()).unwrap());
        let f = |x: &[f64]| {
            let (c, m) = loss_host(x, &emp, n, r);
            (c[0] + 3.0 * m[0]) + 0.6 * (c[1] + 3.0 * m[1])
        };
        let h = 1e-6;
        for k in 0..r * n * n {
            let (mut xp, mut xm) = (sim.clone(), sim.clone());
            xp[k] += h;
            xm[k] -= h;
            let fd = (f(&xp) - f(&xm)) / (2.0 * h);
            // Off-triangle entries have zero gradient, exactly.
            let (i, j) = ((k % (n * n)) / n, k % n);
            if i >= j {
                assert_eq!(g[k], 0.0, "entry {k}");
            }
            assert!((g[k] - fd).abs() < 1e-7, "entry {k}: {} vs fd {fd}", g[k]);
        }
    }

    #[test]
    fn shape_errors() {
        let dev = Default::default();
        let s = Tensor::<B, 3>::zeros([2, 4, 4], crate::test_opts::<B>(&dev));
        let e = fc_corr_loss(s.clone(), Tensor::zeros([5, 5], &dev)).unwrap_err();
        assert!(
            e.to_string().contains("4 x 4 but empirical FC is 5 x 5"),
            "{e}"
        );
        let e = fc_mse(
            Tensor::<B, 3>::zeros([2, 4, 3], crate::test_opts::<B>(&dev)),
            Tensor::zeros([4, 4], &dev),
        )
        .unwrap_err();
        assert!(e.to_string().contains("[2, 4, 3]"), "{e}");
        let e = fc_corr_loss(
            Tensor::<B, 3>::zeros([1, 2, 2], crate::test_opts::<B>(&dev)),
            Tensor::zeros([2, 2], &dev),
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least 3 regions"), "{e}");
        assert!(weighted::<B>(vec![]).is_err());
        let a = Tensor::<B, 1>::zeros([2], crate::test_opts::<B>(&dev));
        let b = Tensor::<B, 1>::zeros([3], crate::test_opts::<B>(&dev));
        assert!(weighted(vec![(1.0, a.clone()), (1.0, b)]).is_err());
        assert!(weighted(vec![(f64::NAN, a)]).is_err());
    }
}
