//! The [`Real`] trait and its implementation for every `num_traits::Float`.

use std::any::{Any, TypeId};
use std::ops::{Add, Div, Mul, Neg, Sub};

use num_traits::Float;

/// The largest argument [`Real::exp_safe`] passes to `exp`: `exp(80) ≈ 5.5e34` is finite in
/// `f32` (whose `exp` overflows above 88.7), and squares of it stay finite in `f64`.
pub const EXP_MAX: f64 = 80.0;

/// A number an equation is written over, once, for every engine:
/// - `f32` and `f64` (the fused CPU engine's inner loop; `f64` also the test oracle),
/// - the engine's forward-mode dual numbers (local Jacobians for the hand-written adjoint),
/// - [`Tx`](crate::real::Tx), a Burn tensor expression (the tensor engine on every backend,
///   differentiable under `Autodiff<B>`).
///
/// Every `num_traits::Float` is a `Real` (a blanket implementation); the tensor expression
/// implements it directly. It is `Copy`, so model code reads like scalar code:
/// `let g = a - x * x - y * y;`. Constants come from [`k`] (`k(0.5)`), and the tensor side folds
/// them into scalar operations (and a product with an exact constant zero, such as a switched-off
/// coupling input, into zero).
///
/// Branches are written with [`Real::select`] on a [`Real::Mask`] from a comparison, never
/// with `if`: the tensor side evaluates both branches (so each must be finite where it is not
/// chosen, the "double where" pattern, if gradients are to stay finite), the scalar side returns
/// the one chosen.
///
/// `max`/`min` pass the derivative of the first argument on ties (`clamp_min`'s convention).
pub trait Real:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// The result of a comparison: `bool` for numbers, a boolean tensor for tensors.
    type Mask: Copy;

    /// A constant.
    fn cst(v: f64) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `1 / self`.
    fn recip(self) -> Self;
    /// Integer power.
    fn powi(self, n: i32) -> Self;
    /// The larger of the two (ties: `self`'s derivative).
    fn max(self, other: Self) -> Self;
    /// The smaller of the two (ties: `self`'s derivative).
    fn min(self, other: Self) -> Self;
    /// `self < other`.
    fn lt(self, other: Self) -> Self::Mask;
    /// `self > other`.
    fn gt(self, other: Self) -> Self::Mask;
    /// `a` where `mask` holds, `b` elsewhere. Both are evaluated on tensors.
    fn select(mask: Self::Mask, a: Self, b: Self) -> Self;

    /// A spike: the Heaviside step `H(self)` (1 where `self > 0`, else 0) in value, with the
    /// derivative of a fast sigmoid as its surrogate gradient (Zenke & Ganguli 2018, SuperSpike):
    /// `dH/dx ≈ slope / (2 (1 + slope |x|)²)`, which integrates to 1 like the step's own
    /// derivative, `δ(x)`. `slope` is in units of 1/`self` (e.g. 1/mV for `V − V_th`); larger is
    /// sharper.
    ///
    /// The value is exactly 0 or 1; the surrogate is the derivative of
    /// `s(x) = 1/2 + slope x / (2 (1 + slope |x|))`, carried as `H + (s − s̄)` where `s̄` is `s`
    /// with its derivative cut (a detached copy on tensors, a round trip through `f64` on dual
    /// numbers), so that `s − s̄` is exactly zero in value.
    fn spike(self, slope: f64) -> Self;

    /// `exp` with its argument clamped at [`EXP_MAX`] so that it cannot overflow (in `f32`
    /// either): `exp(min(x, 80))`. The derivative above the clamp is zero.
    #[inline(always)]
    fn exp_safe(self) -> Self {
        self.min(Self::cst(EXP_MAX)).exp()
    }

    /// The logistic function `1 / (1 + e^{−x})`. The default is `(1 + tanh(x/2)) / 2` (one op
    /// on tensors; it cannot overflow and its gradient is finite everywhere). Plain numbers
    /// (and dual numbers) use `1 / (1 + exp_safe(−x))` instead: `exp` costs less than half of
    /// `tanh` (glibc's `tanh` calls `expm1`; the two were 30 % of the spiking circuit's
    /// instructions), it is as accurate (better in relative terms for `x ≪ 0`, where the tanh
    /// form cancels), and the clamp keeps it finite: below `x = −80` it returns
    /// `1/(1 + e^{80}) ≈ 1.8e−35` instead of `e^x`, with derivative 0.
    #[inline(always)]
    fn logistic(self) -> Self {
        let half = Self::cst(0.5);
        half + half * (half * self).tanh()
    }
}

/// A constant of any [`Real`] type: `k(0.5)`.
#[inline(always)]
pub fn k<R: Real>(v: f64) -> R {
    R::cst(v)
}

/// `x` as an `f64` when `F` is `f64` (a type check the compiler resolves).
#[inline(always)]
fn as_f64<F: 'static>(x: &F) -> Option<f64> {
    (x as &dyn Any).downcast_ref::<f64>().copied()
}

/// `x` as an `f32` when `F` is `f32`.
#[inline(always)]
fn as_f32<F: 'static>(x: &F) -> Option<f32> {
    (x as &dyn Any).downcast_ref::<f32>().copied()
}

/// Whether `F` is a plain float (`f32` or `f64`), which carries no derivative.
#[inline(always)]
fn is_plain<F: 'static>() -> bool {
    TypeId::of::<F>() == TypeId::of::<f64>() || TypeId::of::<F>() == TypeId::of::<f32>()
}

/// For `f64`, `exp` is [`super::exp::exp`] (inlined, about 1 ulp), not the system's; the engine's
/// dual numbers use it for their value too, so a gradient run sees the values a plain run sees.
/// For `f32` it is [`super::exp::exp_f32`] (inlined, table-free, at most 1 ulp), so that the
/// lanes of [`super::Lanes32`] give what `f32` gives, bit for bit.
impl<F: Float + 'static> Real for F {
    type Mask = bool;

    #[inline(always)]
    fn cst(v: f64) -> Self {
        F::from(v).expect("constant representable in the float type")
    }
    #[inline(always)]
    fn exp(self) -> Self {
        if let Some(x) = as_f64(&self) {
            return F::from(super::exp::exp(x)).unwrap_or_else(F::nan);
        }
        match as_f32(&self) {
            Some(x) => F::from(super::exp::exp_f32(x)).unwrap_or_else(F::nan),
            None => Float::exp(self),
        }
    }
    #[inline(always)]
    fn ln(self) -> Self {
        Float::ln(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Float::sqrt(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        Float::tanh(self)
    }
    #[inline(always)]
    fn sin(self) -> Self {
        Float::sin(self)
    }
    #[inline(always)]
    fn cos(self) -> Self {
        Float::cos(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Float::abs(self)
    }
    #[inline(always)]
    fn recip(self) -> Self {
        Float::recip(self)
    }
    #[inline(always)]
    fn powi(self, n: i32) -> Self {
        Float::powi(self, n)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        Float::max(self, other)
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        Float::min(self, other)
    }
    #[inline(always)]
    fn lt(self, other: Self) -> bool {
        self < other
    }
    #[inline(always)]
    fn gt(self, other: Self) -> bool {
        self > other
    }
    #[inline(always)]
    fn select(mask: bool, a: Self, b: Self) -> Self {
        if mask {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn logistic(self) -> Self {
        F::one() / (F::one() + Real::exp_safe(-self))
    }
    #[inline(always)]
    fn spike(self, slope: f64) -> Self {
        let h = if self > F::zero() {
            F::one()
        } else {
            F::zero()
        };
        if is_plain::<F>() {
            // No derivative to carry: the surrogate term is exactly zero in value.
            return h;
        }
        let slope: F = Real::cst(slope);
        let half: F = Real::cst(0.5);
        let s = half + half * slope * self / (F::one() + slope * Float::abs(self));
        // `s` with its derivative parts dropped (NumCast from a plain f64 makes a constant).
        let s_bar = F::from(s.to_f64().unwrap_or(f64::NAN)).unwrap_or_else(F::nan);
        h + (s - s_bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spike_is_an_exact_step() {
        for &x in &[-3.0f64, -1e-9, 0.0, 1e-9, 0.7, 40.0] {
            let h = x.spike(2.0);
            assert_eq!(h, if x > 0.0 { 1.0 } else { 0.0 }, "at {x}");
            let h32 = (x as f32).spike(2.0);
            assert_eq!(h32, if x > 0.0 { 1.0 } else { 0.0 }, "f32 at {x}");
        }
    }

    #[test]
    fn logistic_forms_agree() {
        // The exp form of numbers against the tanh form (the default, which tensors use).
        let tanh_form = |x: f64| 0.5 + 0.5 * (0.5 * x).tanh();
        for i in -400..=400 {
            let x = i as f64 * 0.1;
            let (a, b) = (x.logistic(), tanh_form(x));
            assert!((a - b).abs() <= 4.5e-16, "logistic({x}): {a} vs {b}"); // 4 ulp of 1
            if x < -1.0 {
                // Relative accuracy where the tanh form cancels: against e^x / (1 + e^x).
                let exact = x.exp() / (1.0 + x.exp());
                assert!((a / exact - 1.0).abs() < 1e-15, "logistic({x}) relative");
            }
        }
        assert!((-200f32).logistic().is_finite() && (-200f32).logistic() < 1e-30);
        assert_eq!(200f32.logistic(), 1.0);
        assert!((-1e4f64).logistic() >= 0.0);
    }

    #[test]
    fn exp_safe_does_not_overflow_f32() {
        assert!(100f32.exp().is_infinite());
        assert!(100f32.exp_safe().is_finite());
        assert_eq!(2f64.exp_safe(), Real::exp(2f64));
        assert!((Real::exp(2f64) - 2f64.exp()).abs() <= 2f64.exp() * f64::EPSILON);
    }
}
