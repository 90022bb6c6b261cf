//! Soft dynamic time warping (soft-DTW) with a warping penalty, its analytic gradient, and the
//! debiased soft-DTW divergence, on host `f64` traces.
//!
//! # Definition
//! For a simulated trace `x` (length `N`) and a target `y` (length `M`), both in the same unit
//! (e.g. mV), the cost of aligning sample `i` with sample `j` (1-based) is
//!
//! ```text
//! c(i, j) = |x_i − y_j| + λ |i − j|            (λ ≥ 0, in trace unit per sample of lag)
//! ```
//!
//! (the issue's form is `λ = 1`: the penalty discourages alignments far off the diagonal, i.e.
//! large time shifts). An alignment is a monotone path from `(1, 1)` to `(N, M)` with steps
//! `(1, 0)`, `(0, 1)`, `(1, 1)`; its cost `C_p` is the sum of `c` along it. Soft-DTW with
//! smoothing `γ > 0` (trace unit) replaces the minimum over paths by the soft minimum
//!
//! ```text
//! sdtw_γ(x, y) = −γ log Σ_paths exp(−C_p / γ)
//! ```
//!
//! computed by the forward recursion `R_{i,j} = c(i,j) + min_γ(R_{i−1,j−1}, R_{i−1,j}, R_{i,j−1})`
//! with `R_{0,0} = 0`, `R_{i,0} = R_{0,j} = +∞`, `min_γ(a) = −γ log Σ_k exp(−a_k/γ)` evaluated as
//! a log-sum-exp shifted by the minimum, and `sdtw = R_{N,M}`. It tends to classic DTW as
//! `γ → 0` (`DTW − γ log |paths| ≤ sdtw_γ ≤ DTW`).
//!
//! The gradient follows from the expected alignment `E_{i,j} = ∂R_{N,M}/∂c(i,j)` (the
//! probability of cell `(i,j)` under the Gibbs distribution over paths), computed by the backward
//! recursion of Cuturi & Blondel (2017), Algorithm 2, in `O(NM)` time and `O(M)` extra memory
//! for `E` (the `R` table is kept: `(N+2)(M+2)` values). Then
//!
//! ```text
//! ∂sdtw/∂x_i = Σ_j E_{i,j} sign(x_i − y_j),     ∂sdtw/∂y_j = −Σ_i E_{i,j} sign(x_i − y_j).
//! ```
//!
//! `|·|` is not differentiable at 0; at an exact tie `x_i = y_j` the subgradient
//! `sign(0) = 0` (the midpoint of `[−1, 1]`) is used. This also makes the gradient of
//! `sdtw(x, x)` exact on its diagonal, where `|x_i − x_i| ≡ 0`.
//!
//! # Divergence
//! `sdtw(x, x) ≠ 0` in general (it is negative for `γ > 0`), so soft-DTW is not minimised at
//! `x = y`. The debiased divergence of Blondel, Mensch & Vert (2021),
//!
//! ```text
//! D_γ(x, y) = sdtw_γ(x, y) − ½ (sdtw_γ(x, x) + sdtw_γ(y, y)),
//! ```
//!
//! is 0 at `x = y`; select it with [`SoftDtw::divergence`]. (Its non-negativity is proven for
//! costs from positive-definite kernels; the `|·|` cost here is not one, so treat `D ≥ 0` as
//! typical, not guaranteed.)
//!
//! # References
//! - M. Cuturi & M. Blondel, "Soft-DTW: a differentiable loss function for time-series",
//!   ICML 2017 (forward recursion, Algorithm 1; gradient, Algorithm 2).
//! - M. Blondel, A. Mensch & J.-P. Vert, "Differentiable divergences between time series",
//!   AISTATS 2021 (the debiased divergence).
//!
//! # Chaining into Burn autodiff
//! [`sdtw_surrogate`] turns the host loss and gradient into a tensor whose value is the loss and
//! whose gradient with respect to the simulated tensor is this module's analytic gradient, so a
//! simulated trace can be differentiated through soft-DTW without a custom backward op.

use burn::prelude::{Backend, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::sign0;
use crate::traces::{pair_rows, target_row, LossGrad, Traces};

/// Soft-DTW settings: smoothing `γ`, warping penalty `λ`, plain or debiased.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftDtw {
    gamma: f64,
    lambda: f64,
    divergence: bool,
}

/// `min_γ(a, b, c) = −γ log(e^{−a/γ} + e^{−b/γ} + e^{−c/γ})`, shifted by the minimum so that no
/// exponent is positive; `+∞` entries contribute nothing (at least one entry is finite here).
#[inline]
fn softmin3(a: f64, b: f64, c: f64, gamma: f64) -> f64 {
    // The minimum's own term is exp(0) = 1: two exponentials per cell.
    let (m, o1, o2) = if a <= b && a <= c {
        (a, b, c)
    } else if b <= c {
        (b, a, c)
    } else {
        (c, a, b)
    };
    m - gamma * ((-(o1 - m) / gamma).exp() + (-(o2 - m) / gamma).exp()).ln_1p()
}

/// The gradients of one soft-DTW value with respect to both of its traces.
struct Grads {
    value: f64,
    gx: Vec<f64>,
    gy: Vec<f64>,
}

impl SoftDtw {
    /// Checked settings: `gamma` finite and positive (trace unit), `lambda` finite and
    /// non-negative (trace unit per sample). Plain soft-DTW; see [`SoftDtw::divergence`].
    pub fn new(gamma: f64, lambda: f64) -> Result<Self> {
        if !(gamma.is_finite() && gamma > 0.0) {
            return Err(Error::setting(
                "gamma",
                format!("the soft-DTW smoothing must be a positive finite number, got {gamma}"),
            ));
        }
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(Error::setting(
                "lambda",
                format!("the warping penalty must be a non-negative finite number, got {lambda}"),
            ));
        }
        Ok(Self {
            gamma,
            lambda,
            divergence: false,
        })
    }

    /// The same settings, with the debiased divergence `D_γ` instead of plain soft-DTW if `on`.
    pub fn divergence(mut self, on: bool) -> Self {
        self.divergence = on;
        self
    }

    /// The smoothing `γ`.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The warping penalty `λ`.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Whether the debiased divergence is used.
    pub fn is_divergence(&self) -> bool {
        self.divergence
    }

    #[inline]
    fn cost(&self, x: &[f64], y: &[f64], i: usize, j: usize) -> f64 {
        (x[i - 1] - y[j - 1]).abs() + self.lambda * (i as f64 - j as f64).abs()
    }

    /// The forward table `R`, `(N+2) × (M+2)` row-major, interior filled; returns `R_{N,M}`.
    fn forward(&self, x: &[f64], y: &[f64], r: &mut Vec<f64>) -> f64 {
        let (n, m) = (x.len(), y.len());
        let w = m + 2;
        r.clear();
        r.resize((n + 2) * w, f64::INFINITY);
        r[0] = 0.0;
        for i in 1..=n {
            for j in 1..=m {
                let k = i * w + j;
                r[k] =
                    self.cost(x, y, i, j) + softmin3(r[k - w - 1], r[k - w], r[k - 1], self.gamma);
            }
        }
        r[n * w + m]
    }

    /// Plain soft-DTW of two non-empty traces with the gradients with respect to both.
    fn value_grads(&self, x: &[f64], y: &[f64]) -> Grads {
        let (n, m) = (x.len(), y.len());
        let w = m + 2;
        let mut r = Vec::new();
        let value = self.forward(x, y, &mut r);
        // Boundary of the backward pass (Cuturi & Blondel 2017, Algorithm 2).
        for i in 1..=n {
            r[i * w + m + 1] = f64::NEG_INFINITY;
        }
        for j in 1..=m {
            r[(n + 1) * w + j] = f64::NEG_INFINITY;
        }
        r[(n + 1) * w + m + 1] = value;
        // c(i, j) with zero cost on the padding row and column.
        let c = |i: usize, j: usize| {
            if i > n || j > m {
                0.0
            } else {
                self.cost(x, y, i, j)
            }
        };
        let mut e_next = vec![0.0; w];
        e_next[m + 1] = 1.0;
        let mut e_cur = vec![0.0; w];
        let mut gx = vec![0.0; n];
        let mut gy = vec![0.0; m];
        let inv_g = 1.0 / self.gamma;
        for i in (1..=n).rev() {
            e_cur[m + 1] = 0.0;
            for j in (1..=m).rev() {
                let rij = r[i * w + j];
                // Each exponent is ≤ 0: R_{i+1,j} ≤ c(i+1,j) + R_{i,j} etc.
                let a = ((r[(i + 1) * w + j] - rij - c(i + 1, j)) * inv_g).exp();
                let b = ((r[i * w + j + 1] - rij - c(i, j + 1)) * inv_g).exp();
                let d = ((r[(i + 1) * w + j + 1] - rij - c(i + 1, j + 1)) * inv_g).exp();
                let e = e_next[j] * a + e_cur[j + 1] * b + e_next[j + 1] * d;
                e_cur[j] = e;
                let s = e * sign0(x[i - 1] - y[j - 1]);
                gx[i - 1] += s;
                gy[j - 1] -= s;
            }
            std::mem::swap(&mut e_cur, &mut e_next);
        }
        Grads { value, gx, gy }
    }

    fn check_pair(x: &[f64], y: &[f64]) -> Result<()> {
        Traces::one(x).map_err(|e| Error::shape("soft-DTW", format!("simulated trace: {e}")))?;
        Traces::one(y).map_err(|e| Error::shape("soft-DTW", format!("target trace: {e}")))?;
        Ok(())
    }

    /// The loss (plain soft-DTW, or `D_γ` if [`SoftDtw::divergence`] is on) of `x` against `y`
    /// (trace unit). Both traces non-empty and finite; lengths may differ.
    pub fn value(&self, x: &[f64], y: &[f64]) -> Result<f64> {
        Self::check_pair(x, y)?;
        let mut r = Vec::new();
        let v = self.forward(x, y, &mut r);
        Ok(if self.divergence {
            v - 0.5 * (self.forward(x, x, &mut r) + self.forward(y, y, &mut r))
        } else {
            v
        })
    }

    /// The loss of `x` against `y` and its gradient with respect to `x` (dimensionless, length
    /// `N`).
    pub fn value_and_grad(&self, x: &[f64], y: &[f64]) -> Result<(f64, Vec<f64>)> {
        Self::check_pair(x, y)?;
        let yy = if self.divergence {
            let mut r = Vec::new();
            self.forward(y, y, &mut r)
        } else {
            0.0
        };
        Ok(self.value_and_grad_unchecked(x, y, yy))
    }

    /// `yy = sdtw(y, y)` (used only for the divergence).
    fn value_and_grad_unchecked(&self, x: &[f64], y: &[f64], yy: f64) -> (f64, Vec<f64>) {
        let g = self.value_grads(x, y);
        if !self.divergence {
            return (g.value, g.gx);
        }
        // x appears in both arguments of sdtw(x, x).
        let s = self.value_grads(x, x);
        let grad =
            g.gx.iter()
                .zip(s.gx.iter().zip(&s.gy))
                .map(|(a, (b, c))| a - 0.5 * (b + c))
                .collect();
        (g.value - 0.5 * (s.value + yy), grad)
    }

    /// Losses of a batch of simulated traces `[B, N]` against one target `[1, M]` or one target
    /// per trace `[B, M]`, with the gradient with respect to the simulated batch, `[B, N]`.
    /// With the divergence, `sdtw(y, y)` is computed once per distinct target row.
    pub fn batch(&self, sim: &Traces, target: &Traces) -> Result<LossGrad> {
        pair_rows("soft-DTW", sim, target, false)?;
        let yy: Vec<f64> = if self.divergence {
            let mut r = Vec::new();
            (0..target.rows())
                .map(|k| {
                    let y = target.row(k);
                    self.forward(y, y, &mut r)
                })
                .collect()
        } else {
            vec![0.0; target.rows()]
        };
        let mut loss = Vec::with_capacity(sim.rows());
        let mut grad = Vec::with_capacity(sim.rows() * sim.len());
        for b in 0..sim.rows() {
            let yyb = yy[if target.rows() == 1 { 0 } else { b }];
            let (l, g) = self.value_and_grad_unchecked(sim.row(b), target_row(target, b), yyb);
            loss.push(l);
            grad.extend(g);
        }
        Ok(LossGrad { loss, grad })
    }
}

/// Soft-DTW of a batch of simulated tensor traces `[B, N]` against host targets, as a tensor
/// `[B]` whose value is the loss and whose gradient with respect to `sim` is the analytic one.
///
/// The values of `sim` are read back to the host, the losses `L_b` and gradients `g_b` computed
/// there by [`SoftDtw::batch`], and the result built as
///
/// ```text
/// out_b = Σ_t sim_{b,t} g_{b,t} + (L_b − Σ_t sim_{b,t} g_{b,t})        (g and the bracket constant)
/// ```
///
/// so `out_b = L_b` (up to rounding) and `∂out_b/∂sim = g_b` under autodiff: soft-DTW acts as a
/// node with a hand-written vector-Jacobian product. First derivatives only: a second
/// differentiation through `out` sees `g` as a constant (its Hessian part is missing).
///
/// # Shapes
/// `sim`: `[B, N]` (any float backend; under `Autodiff` the gradient flows to `sim`), `target`:
/// `[1, M]` or `[B, M]` on the host.
pub fn sdtw_surrogate<B: Backend>(
    sdtw: &SoftDtw,
    sim: Tensor<B, 2>,
    target: &Traces,
) -> Result<Tensor<B, 1>> {
    let [b, n] = sim.dims();
    let host: Vec<f64> = sim
        .to_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .map_err(|e| Error::shape("sdtw_surrogate", format!("reading the traces: {e:?}")))?;
    let traces = Traces::new(&host, b, n)?;
    let lg = sdtw.batch(&traces, target)?;
    let offset: Vec<f64> = (0..b)
        .map(|r| {
            let dot: f64 = traces
                .row(r)
                .iter()
                .zip(&lg.grad[r * n..(r + 1) * n])
                .map(|(x, g)| x * g)
                .sum();
            lg.loss[r] - dot
        })
        .collect();
    let device = sim.device();
    let dtype = sim.dtype();
    let g = Tensor::<B, 2>::from_data(TensorData::new(lg.grad, [b, n]), (&device, dtype));
    let c = Tensor::<B, 1>::from_data(TensorData::new(offset, [b]), (&device, dtype));
    Ok((sim * g).sum_dim(1).reshape([b]) + c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::rand_vec;

    /// Values on a grid of spacing 0.1 shifted by `offset`, so that every `|x_i − y_j|` between
    /// two such traces with offsets differing by 0.05 is at least 0.05 (no ties for FD).
    fn gridded(seed: u64, n: usize, offset: f64) -> Vec<f64> {
        rand_vec(seed, n)
            .into_iter()
            .map(|v| (v * 20.0).round() / 10.0 + offset)
            .collect()
    }

    /// All monotone alignment paths from (1,1) to (n,m), as their costs.
    fn path_costs(cost: &dyn Fn(usize, usize) -> f64, n: usize, m: usize) -> Vec<f64> {
        fn walk(
            cost: &dyn Fn(usize, usize) -> f64,
            i: usize,
            j: usize,
            n: usize,
            m: usize,
            acc: f64,
            out: &mut Vec<f64>,
        ) {
            let acc = acc + cost(i, j);
            if i == n && j == m {
                out.push(acc);
                return;
            }
            if i < n {
                walk(cost, i + 1, j, n, m, acc, out);
            }
            if j < m {
                walk(cost, i, j + 1, n, m, acc, out);
            }
            if i < n && j < m {
                walk(cost, i + 1, j + 1, n, m, acc, out);
            }
        }
        let mut out = Vec::new();
        walk(cost, 1, 1, n, m, 0.0, &mut out);
        out
    }

    /// Brute force: −γ log Σ_paths exp(−C_p/γ), by an independent log-sum-exp over the paths.
    fn brute(x: &[f64], y: &[f64], gamma: f64, lambda: f64) -> (f64, usize) {
        let cost =
            |i: usize, j: usize| (x[i - 1] - y[j - 1]).abs() + lambda * (i as f64 - j as f64).abs();
        let costs = path_costs(&cost, x.len(), y.len());
        let min = costs.iter().cloned().fold(f64::INFINITY, f64::min);
        let s: f64 = costs.iter().map(|c| (-(c - min) / gamma).exp()).sum();
        (min - gamma * s.ln(), costs.len())
    }

    /// Classic DTW with the same cost (hard minimum).
    fn dtw(x: &[f64], y: &[f64], lambda: f64) -> f64 {
        let (n, m) = (x.len(), y.len());
        let mut d = vec![vec![f64::INFINITY; m + 1]; n + 1];
        d[0][0] = 0.0;
        for i in 1..=n {
            for j in 1..=m {
                let c = (x[i - 1] - y[j - 1]).abs() + lambda * (i as f64 - j as f64).abs();
                d[i][j] = c + d[i - 1][j - 1].min(d[i - 1][j]).min(d[i][j - 1]);
            }
        }
        d[n][m]
    }

    #[test]
    fn matches_brute_force_over_all_paths() {
        for (n, m) in [(1, 1), (1, 4), (3, 3), (4, 5), (6, 4)] {
            for (gamma, lambda) in [(1.0, 0.0), (0.3, 1.0), (0.05, 0.5), (4.0, 2.0)] {
                let x = rand_vec(n as u64 * 7 + 1, n);
                let y = rand_vec(m as u64 * 13 + 2, m);
                let s = SoftDtw::new(gamma, lambda).unwrap();
                let got = s.value(&x, &y).unwrap();
                let (want, _) = brute(&x, &y, gamma, lambda);
                assert!(
                    (got - want).abs() < 1e-12 * (1.0 + want.abs()),
                    "n={n} m={m} γ={gamma} λ={lambda}: {got} vs {want}"
                );
                // Divergence from the same brute force.
                let d = s.divergence(true).value(&x, &y).unwrap();
                let want_d =
                    want - 0.5 * (brute(&x, &x, gamma, lambda).0 + brute(&y, &y, gamma, lambda).0);
                assert!(
                    (d - want_d).abs() < 1e-12 * (1.0 + want_d.abs()),
                    "{d} vs {want_d}"
                );
            }
        }
    }

    #[test]
    fn tends_to_classic_dtw_as_gamma_vanishes() {
        let x = rand_vec(3, 30);
        let y = rand_vec(4, 25);
        for lambda in [0.0, 1.0] {
            let want = dtw(&x, &y, lambda);
            let mut prev = f64::INFINITY;
            for gamma in [1e-1, 1e-2, 1e-3, 1e-4] {
                let v = SoftDtw::new(gamma, lambda).unwrap().value(&x, &y).unwrap();
                // DTW − γ log|paths| ≤ sdtw ≤ DTW; |paths| ≤ 3^(N+M).
                let slack = gamma * (55.0 * 3f64.ln());
                assert!(
                    v <= want + 1e-12 && v >= want - slack,
                    "γ={gamma}: {v} vs DTW {want}"
                );
                let gap = want - v;
                // Non-increasing (exactly 0 once the runner-up paths underflow next to the best).
                assert!(
                    gap <= prev,
                    "the gap must shrink with γ: {gap} after {prev}"
                );
                if gamma == 1e-1 {
                    assert!(gap > 1e-6, "γ = 0.1 must smooth visibly: {gap}");
                }
                prev = gap;
            }
            assert!(prev < 1e-2, "{prev}");
        }
    }

    #[test]
    fn warping_penalty_is_the_issue_form() {
        // Two one-sample shifts of a step: with λ = 1 each off-diagonal cell costs |i − j|.
        let x = [0.0, 0.0, 1.0, 1.0];
        let y = [0.0, 1.0, 1.0, 1.0];
        // Hard DTW: the diagonal costs 1 (sample 2); leaving it costs at least 1 + 1.
        assert!((dtw(&x, &y, 1.0) - 1.0).abs() < 1e-15);
        assert!(dtw(&x, &y, 0.0).abs() < 1e-15);
        let v = SoftDtw::new(1e-3, 1.0).unwrap().value(&x, &y).unwrap();
        assert!((v - 1.0).abs() < 1e-2, "{v}");
    }

    fn fd_check(s: &SoftDtw, x: &[f64], y: &[f64]) {
        let (_, g) = s.value_and_grad(x, y).unwrap();
        let h = 1e-6;
        for k in 0..x.len() {
            let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
            xp[k] += h;
            xm[k] -= h;
            let fd = (s.value(&xp, y).unwrap() - s.value(&xm, y).unwrap()) / (2.0 * h);
            assert!(
                (g[k] - fd).abs() < 1e-7 * (1.0 + fd.abs()),
                "{s:?} entry {k}: {} vs fd {fd}",
                g[k]
            );
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // Grid offsets 0.05 apart keep every |x_i − y_j| ≥ 0.05 (and every |x_i − x_k| is 0 or
        // ≥ 0.1, ties only where the subgradient is exact: see the divergence below).
        let x = gridded(21, 9, 0.05);
        let y = gridded(22, 7, 0.0);
        for (gamma, lambda) in [(1.0, 0.0), (0.2, 1.0), (0.05, 0.3)] {
            let s = SoftDtw::new(gamma, lambda).unwrap();
            fd_check(&s, &x, &y);
        }
        // The divergence has |x_i − x_k| terms; keep the simulated samples distinct.
        let x: Vec<f64> = (0..8)
            .map(|i| 0.13 * i as f64 - 0.4 + 0.011 * (i * i) as f64)
            .collect();
        for (gamma, lambda) in [(1.0, 0.0), (0.2, 1.0)] {
            fd_check(
                &SoftDtw::new(gamma, lambda).unwrap().divergence(true),
                &x,
                &y,
            );
        }
    }

    #[test]
    fn divergence_vanishes_at_equality_and_is_positive_nearby() {
        let y = rand_vec(5, 12);
        let s = SoftDtw::new(0.5, 1.0).unwrap().divergence(true);
        let (v, g) = s.value_and_grad(&y, &y).unwrap();
        assert!(v.abs() < 1e-12, "{v}");
        // Plain soft-DTW is not minimised at x = y: it is negative there.
        assert!(SoftDtw::new(0.5, 1.0).unwrap().value(&y, &y).unwrap() < 0.0);
        assert!(g.iter().all(|v| v.is_finite()));
        let x: Vec<f64> = y.iter().map(|v| v + 0.3).collect();
        assert!(s.value(&x, &y).unwrap() > 0.0);
    }

    #[test]
    fn batch_equals_separate_calls() {
        let (b, n, m) = (3, 10, 8);
        let sim = rand_vec(31, b * n);
        let one = rand_vec(32, m);
        let many = rand_vec(33, b * m);
        for s in [
            SoftDtw::new(0.3, 1.0).unwrap(),
            SoftDtw::new(0.3, 1.0).unwrap().divergence(true),
        ] {
            let st = Traces::new(&sim, b, n).unwrap();
            let lg1 = s.batch(&st, &Traces::new(&one, 1, m).unwrap()).unwrap();
            let lgb = s.batch(&st, &Traces::new(&many, b, m).unwrap()).unwrap();
            for r in 0..b {
                let x = &sim[r * n..(r + 1) * n];
                let (l, g) = s.value_and_grad(x, &one).unwrap();
                assert_eq!(lg1.loss[r], l);
                assert_eq!(&lg1.grad[r * n..(r + 1) * n], &g[..]);
                let (l, g) = s.value_and_grad(x, &many[r * m..(r + 1) * m]).unwrap();
                assert_eq!(lgb.loss[r], l);
                assert_eq!(&lgb.grad[r * n..(r + 1) * n], &g[..]);
            }
        }
    }

    #[test]
    fn surrogate_tensor_has_loss_value_and_analytic_gradient() {
        use burn::backend::{Autodiff, NdArray};
        type AD = Autodiff<NdArray<f64>>;
        let dev = Default::default();
        let (b, n, m) = (2, 6, 5);
        let sim = rand_vec(41, b * n);
        let y = rand_vec(42, m);
        let s = SoftDtw::new(0.2, 1.0).unwrap();
        let t = Tensor::<AD, 2>::from_data(
            TensorData::new(sim.clone(), [b, n]),
            crate::test_opts::<AD>(&dev),
        )
        .require_grad();
        let target = Traces::one(&y).unwrap();
        let out = sdtw_surrogate(&s, t.clone(), &target).unwrap();
        let vals = out.to_data().convert::<f64>().into_vec::<f64>().unwrap();
        // Weighted sum: each row's gradient scales by its weight.
        let w = Tensor::<AD, 1>::from_data(
            TensorData::new(vec![1.0, -2.5], [2]),
            crate::test_opts::<AD>(&dev),
        );
        let grads = (out * w).sum().backward();
        let g = t
            .grad(&grads)
            .unwrap()
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .unwrap();
        let want = s.batch(&Traces::new(&sim, b, n).unwrap(), &target).unwrap();
        for r in 0..b {
            assert!((vals[r] - want.loss[r]).abs() < 1e-12 * (1.0 + want.loss[r].abs()));
            let wr = [1.0, -2.5][r];
            for t in 0..n {
                let (gv, gw) = (g[r * n + t], wr * want.grad[r * n + t]);
                assert!((gv - gw).abs() < 1e-12, "{gv} vs {gw}");
            }
        }
    }

    #[test]
    fn bad_settings_and_inputs_are_errors() {
        for g in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = SoftDtw::new(g, 1.0).unwrap_err().to_string();
            assert!(e.contains("gamma"), "{e}");
        }
        for l in [-0.1, f64::NAN] {
            let e = SoftDtw::new(1.0, l).unwrap_err().to_string();
            assert!(e.contains("lambda"), "{e}");
        }
        let s = SoftDtw::new(1.0, 1.0).unwrap();
        assert!(s.value(&[], &[1.0]).is_err());
        let e = s.value(&[1.0, f64::NAN], &[1.0]).unwrap_err().to_string();
        assert!(e.contains("simulated") && e.contains("sample 1"), "{e}");
        let sim = [0.0; 6];
        let tgt = [0.0; 4];
        let e = s
            .batch(
                &Traces::new(&sim, 3, 2).unwrap(),
                &Traces::new(&tgt, 2, 2).unwrap(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1 row or one per simulated trace (3), got 2"),
            "{e}"
        );
    }

    /// Timing of a 1000 × 1000 value and gradient (run with `--ignored --nocapture`, release).
    #[test]
    #[ignore]
    fn time_1000_by_1000() {
        let x = rand_vec(51, 1000);
        let y = rand_vec(52, 1000);
        let s = SoftDtw::new(0.1, 1.0).unwrap();
        let t0 = std::time::Instant::now();
        let v = s.value(&x, &y).unwrap();
        let t1 = t0.elapsed();
        let t0 = std::time::Instant::now();
        let (v2, g) = s.value_and_grad(&x, &y).unwrap();
        let t2 = t0.elapsed();
        assert_eq!(v, v2);
        assert!(g.iter().all(|v| v.is_finite()));
        println!("soft-DTW 1000x1000: value {t1:?}, value+gradient {t2:?}");
    }
}
