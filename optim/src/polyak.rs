//! Polyak-style normalised gradient descent for `R` independent restarts run as one batch.
//!
//! Parameters are a list of tensors whose leading dimension is the restart index `r`
//! (`[R, 1]` for a global parameter, `[R, N]` for a per-region one, any rank `D >= 1`). For
//! restart `r` the global gradient norm is taken over all parameter tensors together,
//!
//! ```text
//! ‖∇L_r‖ = sqrt( Σ_tensors Σ_{entries of row r} g² )
//! ```
//!
//! and the step is
//!
//! ```text
//! θ_r ← θ_r − γ ∇L_r / ‖∇L_r‖^β_r                 (plain)
//! θ_r ← θ_r − γ L_r ∇L_r / ‖∇L_r‖^β_r             (annealed)
//! ```
//!
//! so the step length is `γ ‖∇L_r‖^(1−β_r)` (times `L_r` when annealed): nearly normalised for
//! `β` close to 1, with a weak dependence on the gradient's size that lets steps shrink near a
//! minimum. Each restart has its own `β_r` in `[0.8, 0.99]` (spread them with
//! [`Polyak::spread_betas`] to diversify the restarts). A restart whose gradient is exactly zero
//! takes no step (rather than producing `0/0`).
//!
//! Units: `γ` carries the parameters' unit times the gradient's unit to the power `β − 1`, so
//! the optimiser is normally run on the dimensionless unbounded variables of
//! [`crate::transform`].
//!
//! Under autodiff, pass the inner (detached) tensors, e.g. `theta.inner()` and
//! `theta.grad(&grads)`, and re-attach the result with `Tensor::from_inner(..).require_grad()`.

use burn::prelude::{Backend, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::tensors::{check_pairs, per_restart, row_sq_sum};

/// Smallest admissible exponent `β`.
pub const BETA_MIN: f64 = 0.8;
/// Largest admissible exponent `β`.
pub const BETA_MAX: f64 = 0.99;

/// The normalised gradient-descent optimiser: a step size and one exponent per restart.
#[derive(Debug, Clone, PartialEq)]
pub struct Polyak {
    gamma: f64,
    beta: Vec<f64>,
}

impl Polyak {
    /// A checked optimiser: `gamma` finite and positive, one `beta` per restart (at least one),
    /// each in `[BETA_MIN, BETA_MAX]`.
    pub fn new(gamma: f64, beta: Vec<f64>) -> Result<Self> {
        if !(gamma.is_finite() && gamma > 0.0) {
            return Err(Error::setting(
                "gamma",
                format!("the step size must be a positive finite number, got {gamma}"),
            ));
        }
        if beta.is_empty() {
            return Err(Error::setting(
                "beta",
                "one exponent per restart is needed, got none",
            ));
        }
        if let Some((r, b)) = beta
            .iter()
            .enumerate()
            .find(|(_, b)| !(BETA_MIN..=BETA_MAX).contains(*b))
        {
            return Err(Error::setting(
                "beta",
                format!("restart {r}: exponent {b} is outside [{BETA_MIN}, {BETA_MAX}]"),
            ));
        }
        Ok(Self { gamma, beta })
    }

    /// `restarts` exponents evenly spaced over `[BETA_MIN, BETA_MAX]` (the midpoint for one).
    pub fn spread_betas(restarts: usize) -> Vec<f64> {
        match restarts {
            0 => Vec::new(),
            1 => vec![0.5 * (BETA_MIN + BETA_MAX)],
            n => (0..n)
                .map(|r| {
                    let b = BETA_MIN + (BETA_MAX - BETA_MIN) * r as f64 / (n - 1) as f64;
                    b.clamp(BETA_MIN, BETA_MAX) // no rounding past the ends
                })
                .collect(),
        }
    }

    /// The step size `γ`.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The exponents `β_r`, one per restart.
    pub fn betas(&self) -> &[f64] {
        &self.beta
    }

    /// The number of restarts `R`.
    pub fn restarts(&self) -> usize {
        self.beta.len()
    }

    /// One plain step. Returns the new parameters.
    ///
    /// # Shapes
    /// `params[k]` and `grads[k]`: the same shape `[R, ...]` for every `k`, with `R` =
    /// [`Polyak::restarts`]. The output has the shapes of `params`.
    pub fn step<B: Backend, const D: usize>(
        &self,
        params: &[Tensor<B, D>],
        grads: &[Tensor<B, D>],
    ) -> Result<Vec<Tensor<B, D>>> {
        let factor = self.factor("Polyak::step", params, grads)?;
        Ok(apply(params, grads, factor))
    }

    /// One annealed step: the step of restart `r` is scaled by its current loss `L_r`, so steps
    /// shrink as the fit improves. Meant for non-negative losses (a negative `L_r` would reverse
    /// the step).
    ///
    /// # Shapes
    /// As [`Polyak::step`], and `loss`: `[R]`.
    pub fn step_annealed<B: Backend, const D: usize>(
        &self,
        params: &[Tensor<B, D>],
        grads: &[Tensor<B, D>],
        loss: &Tensor<B, 1>,
    ) -> Result<Vec<Tensor<B, D>>> {
        let factor = self.factor("Polyak::step_annealed", params, grads)?;
        let [lr] = loss.dims();
        if lr != self.restarts() {
            return Err(Error::shape(
                "Polyak::step_annealed",
                format!(
                    "the loss has shape [{lr}] but the optimiser has {} restarts",
                    self.restarts()
                ),
            ));
        }
        Ok(apply(params, grads, factor * loss.clone()))
    }

    /// `γ / ‖∇L_r‖^β_r` per restart (`[R]`), zero where the gradient is zero.
    fn factor<B: Backend, const D: usize>(
        &self,
        context: &'static str,
        params: &[Tensor<B, D>],
        grads: &[Tensor<B, D>],
    ) -> Result<Tensor<B, 1>> {
        let r = check_pairs(context, params, grads)?;
        if r != self.restarts() {
            return Err(Error::shape(
                context,
                format!(
                    "the parameters have {r} restarts (leading dimension) but the optimiser has \
                     {} exponents",
                    self.restarts()
                ),
            ));
        }
        let device = grads[0].device();
        let sq = row_sq_sum(grads);
        let zero = sq.clone().equal_elem(0.0);
        let safe = sq.mask_fill(zero.clone(), 1.0);
        // In the gradients' dtype (Burn 0.21 keys default dtypes by device type, so a bare
        // `&device` can give f32 on an f64 backend when both are used in one process).
        let beta = Tensor::<B, 1>::from_data(
            TensorData::new(self.beta.clone(), [r]),
            (&device, grads[0].dtype()),
        );
        // ‖g‖^−β = exp(−β/2 · ln ‖g‖²)
        let factor = (beta * safe.log() * (-0.5)).exp() * self.gamma;
        Ok(factor.mask_fill(zero, 0.0))
    }
}

/// Global gradient norms `‖∇L_r‖` per restart.
///
/// # Shapes
/// `grads[k]`: `[R, ...]`, all with the same `R`. Output: `[R]`.
pub fn grad_norms<B: Backend, const D: usize>(grads: &[Tensor<B, D>]) -> Result<Tensor<B, 1>> {
    check_pairs("grad_norms", grads, grads)?;
    Ok(row_sq_sum(grads).sqrt())
}

fn apply<B: Backend, const D: usize>(
    params: &[Tensor<B, D>],
    grads: &[Tensor<B, D>],
    factor: Tensor<B, 1>,
) -> Vec<Tensor<B, D>> {
    let factor: Tensor<B, D> = per_restart(factor);
    params
        .iter()
        .zip(grads)
        .map(|(p, g)| p.clone() - g.clone() * factor.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f64>;

    fn t2(v: Vec<f64>, shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(v, shape),
            crate::test_opts::<B>(&Default::default()),
        )
    }

    fn host<const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
    }

    /// Two restarts, a global `[2, 1]` and a per-region `[2, 3]` parameter.
    fn setup() -> (Vec<Tensor<B, 2>>, Vec<f64>, Vec<f64>) {
        let p = vec![
            t2(vec![1.0, -2.0], [2, 1]),
            t2(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [2, 3]),
        ];
        let g_glob = vec![3.0, 0.5];
        let g_reg = vec![-1.0, 2.0, 0.5, 0.25, -0.75, 1.5];
        (p, g_glob, g_reg)
    }

    /// The step of each restart, computed in plain f64: returns (step length, step vector).
    fn host_step(g: &[f64], gamma: f64, beta: f64) -> (f64, Vec<f64>) {
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let d: Vec<f64> = g.iter().map(|x| -gamma * x / norm.powf(beta)).collect();
        (d.iter().map(|x| x * x).sum::<f64>().sqrt(), d)
    }

    #[test]
    fn step_size_and_direction() {
        let (p, gg, gr) = setup();
        let g = vec![t2(gg.clone(), [2, 1]), t2(gr.clone(), [2, 3])];
        let opt = Polyak::new(0.1, vec![0.8, 0.95]).unwrap();
        let new = opt.step(&p, &g).unwrap();
        let (p0, p1) = (host(p[0].clone()), host(p[1].clone()));
        let (n0, n1) = (host(new[0].clone()), host(new[1].clone()));
        for r in 0..2 {
            // Row r of the concatenated parameter vector, before and after.
            let grow = [vec![gg[r]], gr[3 * r..3 * r + 3].to_vec()].concat();
            let before = [vec![p0[r]], p1[3 * r..3 * r + 3].to_vec()].concat();
            let after = [vec![n0[r]], n1[3 * r..3 * r + 3].to_vec()].concat();
            let d: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
            let len = d.iter().map(|x| x * x).sum::<f64>().sqrt();
            let gnorm = grow.iter().map(|x| x * x).sum::<f64>().sqrt();
            let beta = opt.betas()[r];
            // |Δθ| = γ ‖g‖^(1−β)
            let want = 0.1 * gnorm.powf(1.0 - beta);
            assert!((len - want).abs() < 1e-12, "restart {r}: {len} vs {want}");
            // Δθ is parallel to −g: Δθ = −(|Δθ|/‖g‖) g entry by entry.
            for (di, gi) in d.iter().zip(&grow) {
                assert!((di + len / gnorm * gi).abs() < 1e-12, "{di} vs {gi}");
            }
            // And the same as the direct f64 formula.
            let (hl, hd) = host_step(&grow, 0.1, beta);
            assert!((hl - len).abs() < 1e-12);
            for (a, b) in hd.iter().zip(&d) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn restarts_are_independent() {
        let (p, gg, gr) = setup();
        let opt = Polyak::new(0.3, vec![0.9, 0.9]).unwrap();
        let g = vec![t2(gg.clone(), [2, 1]), t2(gr.clone(), [2, 3])];
        let a = opt.step(&p, &g).unwrap();
        // Change only restart 1's gradient (row 1 of both tensors).
        let mut gg2 = gg.clone();
        gg2[1] = 40.0;
        let mut gr2 = gr.clone();
        gr2[3..].copy_from_slice(&[7.0, -8.0, 9.0]);
        let g2 = vec![t2(gg2, [2, 1]), t2(gr2, [2, 3])];
        let b = opt.step(&p, &g2).unwrap();
        let (a0, a1, b0, b1) = (
            host(a[0].clone()),
            host(a[1].clone()),
            host(b[0].clone()),
            host(b[1].clone()),
        );
        assert_eq!(a0[0], b0[0]);
        assert_eq!(a1[..3], b1[..3]);
        assert_ne!(a0[1], b0[1]);
        assert_ne!(a1[3..], b1[3..]);
    }

    #[test]
    fn annealed_step_is_scaled_by_loss() {
        let (p, gg, gr) = setup();
        let g = vec![t2(gg, [2, 1]), t2(gr, [2, 3])];
        let opt = Polyak::new(0.2, vec![0.85, 0.99]).unwrap();
        let plain = opt.step(&p, &g).unwrap();
        let losses = [0.37, 2.5];
        let loss = Tensor::<B, 1>::from_data(
            TensorData::new(losses.to_vec(), [2]),
            crate::test_opts::<B>(&p[0].device()),
        );
        let ann = opt.step_annealed(&p, &g, &loss).unwrap();
        for k in 0..2 {
            let before = host(p[k].clone());
            let (dp, da) = (host(plain[k].clone()), host(ann[k].clone()));
            let width = before.len() / 2;
            for i in 0..before.len() {
                let l = losses[i / width];
                let (sp, sa) = (dp[i] - before[i], da[i] - before[i]);
                assert!((sa - l * sp).abs() < 1e-12, "{sa} vs {l} * {sp}");
            }
        }
    }

    #[test]
    fn zero_gradient_takes_no_step() {
        let (p, gg, _) = setup();
        let g = vec![
            t2(vec![0.0, gg[1]], [2, 1]),
            t2(vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0], [2, 3]),
        ];
        let opt = Polyak::new(0.5, vec![0.8, 0.8]).unwrap();
        let new = opt.step(&p, &g).unwrap();
        let (n0, n1) = (host(new[0].clone()), host(new[1].clone()));
        assert!(n0.iter().chain(&n1).all(|x| x.is_finite()));
        assert_eq!(n0[0], 1.0);
        assert_eq!(n1[..3], [0.1, 0.2, 0.3]);
        assert_ne!(n0[1], -2.0);
    }

    #[test]
    fn grad_norms_per_restart() {
        let (_, gg, gr) = setup();
        let g = vec![t2(gg.clone(), [2, 1]), t2(gr.clone(), [2, 3])];
        let n = host(grad_norms(&g).unwrap());
        for r in 0..2 {
            let want =
                (gg[r].powi(2) + gr[3 * r..3 * r + 3].iter().map(|x| x * x).sum::<f64>()).sqrt();
            assert!((n[r] - want).abs() < 1e-12);
        }
    }

    #[test]
    fn rejects_bad_settings_and_shapes() {
        assert!(matches!(
            Polyak::new(0.0, vec![0.9]),
            Err(Error::Setting { name: "gamma", .. })
        ));
        assert!(Polyak::new(f64::NAN, vec![0.9]).is_err());
        assert!(Polyak::new(0.1, vec![]).is_err());
        let e = Polyak::new(0.1, vec![0.9, 0.5]).unwrap_err().to_string();
        assert!(e.contains("restart 1") && e.contains("0.5"), "{e}");
        assert!(Polyak::new(0.1, vec![1.0]).is_err());

        let (p, gg, gr) = setup();
        let opt = Polyak::new(0.1, vec![0.9, 0.9, 0.9]).unwrap();
        let g = vec![t2(gg.clone(), [2, 1]), t2(gr.clone(), [2, 3])];
        let e = opt.step(&p, &g).unwrap_err().to_string();
        assert!(e.contains("2 restarts") && e.contains("3 exponents"), "{e}");
        let opt = Polyak::new(0.1, vec![0.9, 0.9]).unwrap();
        let e = opt.step(&p, &g[..1]).unwrap_err().to_string();
        assert!(e.contains("2 parameter tensors but 1 gradient"), "{e}");
        let bad = vec![t2(gg, [2, 1]), t2(gr, [3, 2])];
        let e = opt.step(&p, &bad).unwrap_err().to_string();
        assert!(e.contains("[2, 3]") && e.contains("[3, 2]"), "{e}");
        let loss = Tensor::<B, 1>::zeros([3], crate::test_opts::<B>(&Default::default()));
        assert!(opt.step_annealed(&p, &g, &loss).is_err());
    }

    #[test]
    fn spread_betas_cover_the_range() {
        assert_eq!(Polyak::spread_betas(0), Vec::<f64>::new());
        let one = Polyak::spread_betas(1);
        assert!((one[0] - 0.895).abs() < 1e-15);
        let b = Polyak::spread_betas(5);
        assert_eq!(b.len(), 5);
        assert!((b[0] - BETA_MIN).abs() < 1e-15 && (b[4] - BETA_MAX).abs() < 1e-15);
        assert!(Polyak::new(1.0, b).is_ok());
    }
}
