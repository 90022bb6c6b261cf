//! Bounded parameters through the inverse-sigmoid (logit) transform.
//!
//! An optimiser works on an unbounded variable `z`; the model sees `θ = l + (u − l) σ(z)`, which
//! always lies strictly inside `(l, u)`. The inverse is
//!
//! ```text
//! T(θ) = −log( 1 / ((θ − l)/(u − l)) − 1 ) = log(θ − l) − log(u − θ)
//! ```
//!
//! (the logit of the scaled value; the second form is the one computed). `T` is infinite on the
//! bounds themselves, so initial values must lie strictly inside them: [`Bounds::check`] says
//! which parameter and which bound when one does not.
//!
//! Units: `θ`, `l` and `u` share the parameter's unit; `z` is dimensionless.

use burn::prelude::{Backend, Tensor};

use crate::error::{Error, Result};

/// The open interval `(lower, upper)` of a parameter, in the parameter's unit.
///
/// Built only through [`Bounds::new`], so `lower < upper` and both are finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    lower: f64,
    upper: f64,
}

impl Bounds {
    /// Checked constructor: both bounds finite and `lower < upper`.
    pub fn new(lower: f64, upper: f64) -> Result<Self> {
        let reason = if !lower.is_finite() || !upper.is_finite() {
            Some("both bounds must be finite numbers")
        } else if lower >= upper {
            Some("the lower bound must be smaller than the upper bound")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidBounds {
                lower,
                upper,
                reason,
            }),
            None => Ok(Self { lower, upper }),
        }
    }

    /// The lower bound `l`.
    pub fn lower(&self) -> f64 {
        self.lower
    }

    /// The upper bound `u`.
    pub fn upper(&self) -> f64 {
        self.upper
    }

    /// The width `u − l` (positive).
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }

    /// Whether `value` lies strictly inside the bounds (false for NaN).
    pub fn contains(&self, value: f64) -> bool {
        value > self.lower && value < self.upper
    }

    /// Checks that the initial value of parameter `name` lies strictly inside the bounds, with an
    /// error that names the parameter, the value and the violated bound.
    pub fn check(&self, name: &str, value: f64) -> Result<()> {
        let problem = if value.is_nan() || value.is_infinite() {
            "is not a finite number".to_string()
        } else if value < self.lower {
            format!("lies below its lower bound {}", self.lower)
        } else if value == self.lower {
            format!("lies on its lower bound {}", self.lower)
        } else if value > self.upper {
            format!("lies above its upper bound {}", self.upper)
        } else if value == self.upper {
            format!("lies on its upper bound {}", self.upper)
        } else {
            return Ok(());
        };
        Err(Error::OutOfBounds {
            name: name.to_string(),
            value,
            lower: self.lower,
            upper: self.upper,
            problem,
        })
    }

    /// `T(θ)` on the host: the unbounded value of `theta`. Infinite on the bounds, NaN outside;
    /// use [`Bounds::check`] first for user input.
    pub fn to_unbounded_f64(&self, theta: f64) -> f64 {
        (theta - self.lower).ln() - (self.upper - theta).ln()
    }

    /// `l + (u − l) σ(z)` on the host: the bounded value of `z`.
    pub fn to_bounded_f64(&self, z: f64) -> f64 {
        self.lower + self.width() / (1.0 + (-z).exp())
    }

    /// `T(θ)` element-wise, differentiable.
    ///
    /// # Shapes
    /// Any shape; the output has the shape of `theta` (parameter unit in, dimensionless out).
    /// Entries on the bounds give ±inf, entries outside give NaN.
    pub fn to_unbounded<B: Backend, const D: usize>(&self, theta: Tensor<B, D>) -> Tensor<B, D> {
        let above = theta.clone().sub_scalar(self.lower).log();
        let below = theta.neg().add_scalar(self.upper).log();
        above - below
    }

    /// `l + (u − l) σ(z)` element-wise, differentiable (derivative `(u − l) σ(z) (1 − σ(z))`).
    ///
    /// `σ(z)` is computed as `(1 + tanh(z/2)) / 2`: bounded, with a finite gradient for every
    /// `z`, in the backend's own precision. (Burn 0.21's `activation::sigmoid` evaluates in f32
    /// even on f64 backends, and `1 / (1 + exp(−z))` has a NaN gradient once `exp(−z)`
    /// overflows.)
    ///
    /// # Shapes
    /// Any shape; the output has the shape of `z` (dimensionless in, parameter unit out).
    /// In floating point the result reaches a bound exactly once `|z|` exceeds about 37 (f64)
    /// or 17 (f32).
    pub fn to_bounded<B: Backend, const D: usize>(&self, z: Tensor<B, D>) -> Tensor<B, D> {
        let half_width = 0.5 * self.width();
        (z * 0.5)
            .tanh()
            .mul_scalar(half_width)
            .add_scalar(self.lower + half_width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::prelude::TensorData;

    type B = NdArray<f64>;
    type AD = Autodiff<NdArray<f64>>;

    fn host<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
    }

    /// The transform exactly as written in the specification.
    fn t_spec(theta: f64, l: f64, u: f64) -> f64 {
        -(1.0 / ((theta - l) / (u - l)) - 1.0).ln()
    }

    fn sigma(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    #[test]
    fn constructor_rejects_bad_bounds() {
        for (l, u) in [
            (1.0, 1.0),
            (2.0, 1.0),
            (f64::NAN, 1.0),
            (0.0, f64::INFINITY),
        ] {
            let e = Bounds::new(l, u).unwrap_err();
            assert!(matches!(e, Error::InvalidBounds { .. }), "{e}");
        }
        let msg = Bounds::new(3.0, -1.0).unwrap_err().to_string();
        assert!(msg.contains("[3, -1]") && msg.contains("smaller"), "{msg}");
        assert!(Bounds::new(-1.0, 3.0).is_ok());
    }

    #[test]
    fn host_transform_matches_specification_and_round_trips() {
        let b = Bounds::new(-2.0, 5.0).unwrap();
        for theta in [-1.999, -1.0, 0.0, 1.5, 4.9, 4.999] {
            let z = b.to_unbounded_f64(theta);
            let spec = t_spec(theta, -2.0, 5.0);
            assert!(
                (z - spec).abs() < 1e-12 * (1.0 + spec.abs()),
                "{z} vs {spec}"
            );
            let back = b.to_bounded_f64(z);
            assert!((back - theta).abs() < 1e-12, "{theta} -> {z} -> {back}");
        }
        // The midpoint maps to zero.
        assert!(b.to_unbounded_f64(1.5).abs() < 1e-15);
    }

    #[test]
    fn tensor_transform_matches_host_and_round_trips() {
        let dev = Default::default();
        let b = Bounds::new(0.5, 3.0).unwrap();
        let vals = vec![0.51, 1.0, 1.75, 2.2, 2.99, 0.7];
        let theta = Tensor::<B, 2>::from_data(
            TensorData::new(vals.clone(), [2, 3]),
            crate::test_opts::<B>(&dev),
        );
        let z = b.to_unbounded(theta);
        let zh = host(z.clone());
        for (v, zv) in vals.iter().zip(&zh) {
            let spec = t_spec(*v, 0.5, 3.0);
            assert!(
                (zv - spec).abs() < 1e-12 * (1.0 + spec.abs()),
                "{zv} vs {spec}"
            );
        }
        let back = host(b.to_bounded(z));
        for (v, bv) in vals.iter().zip(&back) {
            assert!((v - bv).abs() < 1e-12, "{v} vs {bv}");
        }
        // Unbounded values far out stay inside the bounds (rank 1 this time).
        let z = Tensor::<B, 1>::from_data(
            TensorData::new(vec![-30.0, 0.0, 30.0], [3]),
            crate::test_opts::<B>(&dev),
        );
        let th = host(b.to_bounded(z));
        assert!(th.iter().all(|&t| t > 0.5 && t < 3.0), "{th:?}");
        assert!((th[1] - 1.75).abs() < 1e-15);
    }

    #[test]
    fn to_bounded_gradient_matches_analytic_and_finite_differences() {
        let dev = Default::default();
        let b = Bounds::new(-1.0, 4.0).unwrap();
        let zs = vec![-3.0, -0.7, 0.0, 0.4, 2.5];
        let z = Tensor::<AD, 1>::from_data(
            TensorData::new(zs.clone(), [5]),
            crate::test_opts::<AD>(&dev),
        )
        .require_grad();
        // Weighted sum so that every entry has a distinct, known weight.
        let w: Vec<f64> = (1..=5).map(|i| i as f64).collect();
        let wt = Tensor::<AD, 1>::from_data(
            TensorData::new(w.clone(), [5]),
            crate::test_opts::<AD>(&dev),
        );
        let loss = (b.to_bounded(z.clone()) * wt).sum();
        let grads = loss.backward();
        let g = host(z.grad(&grads).unwrap());
        let h = 1e-5;
        for i in 0..5 {
            let analytic = w[i] * 5.0 * sigma(zs[i]) * (1.0 - sigma(zs[i]));
            let fd = w[i] * (b.to_bounded_f64(zs[i] + h) - b.to_bounded_f64(zs[i] - h)) / (2.0 * h);
            assert!(
                (g[i] - analytic).abs() < 1e-12,
                "{i}: {} vs {analytic}",
                g[i]
            );
            // Central differences: truncation error ~ h^2 f'''/6, rounding ~ 1e-16/h.
            assert!((g[i] - fd).abs() < 1e-8, "{i}: {} vs fd {fd}", g[i]);
        }
    }

    #[test]
    fn to_bounded_is_finite_for_extreme_inputs() {
        let dev = Default::default();
        let b = Bounds::new(2.0, 3.0).unwrap();
        let z = Tensor::<AD, 1>::from_data(
            TensorData::new(vec![-1e4, -800.0, 800.0, 1e4], [4]),
            crate::test_opts::<AD>(&dev),
        )
        .require_grad();
        let th = b.to_bounded(z.clone());
        let vals = host(th.clone());
        assert_eq!(vals, vec![2.0, 2.0, 3.0, 3.0]);
        let g = host(z.grad(&th.sum().backward()).unwrap());
        assert!(
            g.iter().all(|v| v.is_finite() && *v >= 0.0 && *v < 1e-300),
            "{g:?}"
        );
    }

    #[test]
    fn to_unbounded_gradient_is_inverse_of_to_bounded_gradient() {
        // dT/dθ = (u − l) / ((θ − l)(u − θ)), computed independently.
        let dev = Default::default();
        let b = Bounds::new(0.0, 2.0).unwrap();
        let th = vec![0.1, 1.0, 1.7];
        let t = Tensor::<AD, 1>::from_data(
            TensorData::new(th.clone(), [3]),
            crate::test_opts::<AD>(&dev),
        )
        .require_grad();
        let grads = b.to_unbounded(t.clone()).sum().backward();
        let g = host(t.grad(&grads).unwrap());
        for (i, &x) in th.iter().enumerate() {
            let want = 2.0 / (x * (2.0 - x));
            assert!((g[i] - want).abs() < 1e-12, "{} vs {want}", g[i]);
        }
    }

    #[test]
    fn check_names_parameter_and_bound() {
        let b = Bounds::new(0.0, 1.0).unwrap();
        assert!(b.check("G", 0.5).is_ok());
        let cases = [
            (-0.1, "below its lower bound 0"),
            (0.0, "on its lower bound 0"),
            (1.0, "on its upper bound 1"),
            (2.5, "above its upper bound 1"),
            (f64::NAN, "not a finite number"),
        ];
        for (v, want) in cases {
            let e = b.check("G", v).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("parameter `G`: initial value"), "{msg}");
            assert!(msg.contains(want), "{msg} should contain {want}");
            assert!(msg.contains("(0, 1)"), "{msg}");
        }
        assert!(!b.contains(0.0) && !b.contains(1.0) && b.contains(1e-9));
    }
}
