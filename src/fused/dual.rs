//! Forward-mode dual numbers with `N` derivative directions, implementing
//! [`num_traits::Float`] so that every model's generic
//! [`Model::drift`](neurodiff_models::Model::drift) (and the point couplings) can be
//! evaluated on them: one evaluation gives the value and `N` directional derivatives.
//!
//! The adjoint engine ([`super::adjoint`]) uses them for the local Jacobians of each node's
//! drift, sent quantity, projection and coupling. Only the value decides comparisons, `max`,
//! `min` and rounding; `max(a, b)` keeps `a`'s derivative on ties (`clamp_min`'s convention in
//! Burn: the gradient passes where `x >= min`).

use std::cmp::Ordering;
use std::num::FpCategory;
use std::ops::{Add, Div, Mul, Neg, Rem, Sub};

use num_traits::{Float, Num, NumCast, One, ToPrimitive, Zero};

/// A value and its derivatives along `N` directions.
#[derive(Clone, Copy, Debug)]
pub struct Dual<T, const N: usize> {
    /// The value.
    pub re: T,
    /// The derivatives.
    pub eps: [T; N],
}

impl<T: Float, const N: usize> Dual<T, N> {
    /// A constant (all derivatives zero).
    #[inline(always)]
    pub fn cst(re: T) -> Self {
        Self {
            re,
            eps: [T::zero(); N],
        }
    }

    /// An independent variable: derivative 1 along direction `d`.
    #[inline(always)]
    pub fn var(re: T, d: usize) -> Self {
        let mut eps = [T::zero(); N];
        eps[d] = T::one();
        Self { re, eps }
    }

    /// `f(self)` with `f'(self) = df`.
    #[inline(always)]
    fn chain(self, f: T, df: T) -> Self {
        let mut eps = self.eps;
        eps.iter_mut().for_each(|e| *e = *e * df);
        Self { re: f, eps }
    }
}

impl<T: Float, const N: usize> PartialEq for Dual<T, N> {
    fn eq(&self, o: &Self) -> bool {
        self.re == o.re
    }
}

impl<T: Float, const N: usize> PartialOrd for Dual<T, N> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        self.re.partial_cmp(&o.re)
    }
}

impl<T: Float, const N: usize> Add for Dual<T, N> {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        let mut eps = self.eps;
        eps.iter_mut().zip(&o.eps).for_each(|(a, &b)| *a = *a + b);
        Self {
            re: self.re + o.re,
            eps,
        }
    }
}

impl<T: Float, const N: usize> Sub for Dual<T, N> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        let mut eps = self.eps;
        eps.iter_mut().zip(&o.eps).for_each(|(a, &b)| *a = *a - b);
        Self {
            re: self.re - o.re,
            eps,
        }
    }
}

impl<T: Float, const N: usize> Mul for Dual<T, N> {
    type Output = Self;
    #[inline(always)]
    #[allow(clippy::suspicious_arithmetic_impl)] // the product rule
    fn mul(self, o: Self) -> Self {
        let mut eps = self.eps;
        eps.iter_mut()
            .zip(&o.eps)
            .for_each(|(a, &b)| *a = *a * o.re + self.re * b);
        Self {
            re: self.re * o.re,
            eps,
        }
    }
}

impl<T: Float, const N: usize> Div for Dual<T, N> {
    type Output = Self;
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        let inv = T::one() / o.re;
        let re = self.re * inv;
        let mut eps = self.eps;
        eps.iter_mut()
            .zip(&o.eps)
            .for_each(|(a, &b)| *a = (*a - re * b) * inv);
        Self { re, eps }
    }
}

impl<T: Float, const N: usize> Rem for Dual<T, N> {
    type Output = Self;
    fn rem(self, o: Self) -> Self {
        // a % b = a - trunc(a / b) b.
        let q = (self.re / o.re).trunc();
        let mut eps = self.eps;
        eps.iter_mut()
            .zip(&o.eps)
            .for_each(|(a, &b)| *a = *a - q * b);
        Self {
            re: self.re % o.re,
            eps,
        }
    }
}

impl<T: Float, const N: usize> Neg for Dual<T, N> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        let mut eps = self.eps;
        eps.iter_mut().for_each(|e| *e = -*e);
        Self { re: -self.re, eps }
    }
}

impl<T: Float, const N: usize> Zero for Dual<T, N> {
    fn zero() -> Self {
        Self::cst(T::zero())
    }
    fn is_zero(&self) -> bool {
        self.re.is_zero()
    }
}

impl<T: Float, const N: usize> One for Dual<T, N> {
    fn one() -> Self {
        Self::cst(T::one())
    }
}

impl<T: Float, const N: usize> Num for Dual<T, N> {
    type FromStrRadixErr = T::FromStrRadixErr;
    fn from_str_radix(s: &str, radix: u32) -> Result<Self, Self::FromStrRadixErr> {
        T::from_str_radix(s, radix).map(Self::cst)
    }
}

impl<T: Float, const N: usize> ToPrimitive for Dual<T, N> {
    fn to_i64(&self) -> Option<i64> {
        self.re.to_i64()
    }
    fn to_u64(&self) -> Option<u64> {
        self.re.to_u64()
    }
    fn to_f64(&self) -> Option<f64> {
        self.re.to_f64()
    }
    fn to_f32(&self) -> Option<f32> {
        self.re.to_f32()
    }
}

impl<T: Float, const N: usize> NumCast for Dual<T, N> {
    fn from<P: ToPrimitive>(n: P) -> Option<Self> {
        T::from(n).map(Self::cst)
    }
}

impl<T: Float + 'static, const N: usize> Float for Dual<T, N> {
    fn nan() -> Self {
        Self::cst(T::nan())
    }
    fn infinity() -> Self {
        Self::cst(T::infinity())
    }
    fn neg_infinity() -> Self {
        Self::cst(T::neg_infinity())
    }
    fn neg_zero() -> Self {
        Self::cst(T::neg_zero())
    }
    fn min_value() -> Self {
        Self::cst(T::min_value())
    }
    fn min_positive_value() -> Self {
        Self::cst(T::min_positive_value())
    }
    fn epsilon() -> Self {
        Self::cst(T::epsilon())
    }
    fn max_value() -> Self {
        Self::cst(T::max_value())
    }
    fn is_nan(self) -> bool {
        self.re.is_nan()
    }
    fn is_infinite(self) -> bool {
        self.re.is_infinite()
    }
    fn is_finite(self) -> bool {
        self.re.is_finite()
    }
    fn is_normal(self) -> bool {
        self.re.is_normal()
    }
    fn classify(self) -> FpCategory {
        self.re.classify()
    }
    fn floor(self) -> Self {
        Self::cst(self.re.floor())
    }
    fn ceil(self) -> Self {
        Self::cst(self.re.ceil())
    }
    fn round(self) -> Self {
        Self::cst(self.re.round())
    }
    fn trunc(self) -> Self {
        Self::cst(self.re.trunc())
    }
    fn fract(self) -> Self {
        Self {
            re: self.re.fract(),
            eps: self.eps,
        }
    }
    fn abs(self) -> Self {
        if self.re < T::zero() {
            -self
        } else {
            self
        }
    }
    fn signum(self) -> Self {
        Self::cst(self.re.signum())
    }
    fn is_sign_positive(self) -> bool {
        self.re.is_sign_positive()
    }
    fn is_sign_negative(self) -> bool {
        self.re.is_sign_negative()
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        self * a + b
    }
    #[inline(always)]
    fn recip(self) -> Self {
        let r = self.re.recip();
        self.chain(r, -r * r)
    }
    fn powi(self, n: i32) -> Self {
        if n == 0 {
            return Self::one();
        }
        let d = T::from(n).expect("i32 in float") * self.re.powi(n - 1);
        self.chain(self.re.powi(n), d)
    }
    fn powf(self, n: Self) -> Self {
        // d(a^b) = b a^(b-1) da + a^b ln(a) db.
        let v = self.re.powf(n.re);
        let da = n.re * self.re.powf(n.re - T::one());
        let db = if self.re > T::zero() {
            v * self.re.ln()
        } else {
            T::zero()
        };
        let mut eps = self.eps;
        eps.iter_mut()
            .zip(&n.eps)
            .for_each(|(a, &b)| *a = *a * da + b * db);
        Self { re: v, eps }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        let s = self.re.sqrt();
        self.chain(s, T::one() / (s + s))
    }
    #[inline(always)]
    fn exp(self) -> Self {
        // The value as `Real::exp` gives it for `T` (the inlined exp for `f64`), so that a dual
        // run's values are a plain run's.
        let e = neurodiff_models::Real::exp(self.re);
        self.chain(e, e)
    }
    fn exp2(self) -> Self {
        let e = self.re.exp2();
        self.chain(e, e * T::from(std::f64::consts::LN_2).expect("ln 2"))
    }
    fn ln(self) -> Self {
        self.chain(self.re.ln(), self.re.recip())
    }
    fn log(self, base: Self) -> Self {
        self.ln() / base.ln()
    }
    fn log2(self) -> Self {
        self.chain(
            self.re.log2(),
            (self.re * T::from(std::f64::consts::LN_2).expect("ln 2")).recip(),
        )
    }
    fn log10(self) -> Self {
        self.chain(
            self.re.log10(),
            (self.re * T::from(std::f64::consts::LN_10).expect("ln 10")).recip(),
        )
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        if self.re < o.re || self.re.is_nan() {
            o
        } else {
            self
        }
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        if self.re > o.re || self.re.is_nan() {
            o
        } else {
            self
        }
    }
    fn abs_sub(self, o: Self) -> Self {
        if self.re > o.re {
            self - o
        } else {
            Self::zero()
        }
    }
    fn cbrt(self) -> Self {
        let c = self.re.cbrt();
        self.chain(c, (T::from(3.0).expect("3") * c * c).recip())
    }
    fn hypot(self, o: Self) -> Self {
        (self * self + o * o).sqrt()
    }
    #[inline(always)]
    fn sin(self) -> Self {
        let (s, c) = self.re.sin_cos();
        self.chain(s, c)
    }
    #[inline(always)]
    fn cos(self) -> Self {
        let (s, c) = self.re.sin_cos();
        self.chain(c, -s)
    }
    fn tan(self) -> Self {
        let t = self.re.tan();
        self.chain(t, T::one() + t * t)
    }
    fn asin(self) -> Self {
        self.chain(
            self.re.asin(),
            (T::one() - self.re * self.re).sqrt().recip(),
        )
    }
    fn acos(self) -> Self {
        self.chain(
            self.re.acos(),
            -(T::one() - self.re * self.re).sqrt().recip(),
        )
    }
    fn atan(self) -> Self {
        self.chain(self.re.atan(), (T::one() + self.re * self.re).recip())
    }
    fn atan2(self, o: Self) -> Self {
        // d atan2(y, x) = (x dy - y dx) / (x² + y²).
        let r2 = (self.re * self.re + o.re * o.re).recip();
        let mut eps = self.eps;
        eps.iter_mut()
            .zip(&o.eps)
            .for_each(|(a, &b)| *a = (o.re * *a - self.re * b) * r2);
        Self {
            re: self.re.atan2(o.re),
            eps,
        }
    }
    fn sin_cos(self) -> (Self, Self) {
        let (s, c) = self.re.sin_cos();
        (self.chain(s, c), self.chain(c, -s))
    }
    fn exp_m1(self) -> Self {
        self.chain(self.re.exp_m1(), self.re.exp())
    }
    fn ln_1p(self) -> Self {
        self.chain(self.re.ln_1p(), (T::one() + self.re).recip())
    }
    fn sinh(self) -> Self {
        self.chain(self.re.sinh(), self.re.cosh())
    }
    fn cosh(self) -> Self {
        self.chain(self.re.cosh(), self.re.sinh())
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        let t = self.re.tanh();
        self.chain(t, T::one() - t * t)
    }
    fn asinh(self) -> Self {
        self.chain(
            self.re.asinh(),
            (self.re * self.re + T::one()).sqrt().recip(),
        )
    }
    fn acosh(self) -> Self {
        self.chain(
            self.re.acosh(),
            (self.re * self.re - T::one()).sqrt().recip(),
        )
    }
    fn atanh(self) -> Self {
        self.chain(self.re.atanh(), (T::one() - self.re * self.re).recip())
    }
    fn integer_decode(self) -> (u64, i16, i8) {
        self.re.integer_decode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type D = Dual<f64, 2>;

    /// Derivatives of a few functions against central differences.
    #[test]
    #[allow(clippy::type_complexity)]
    fn derivatives_match_finite_differences() {
        let fs: Vec<(&str, fn(D, D) -> D)> = vec![
            ("mul-div", |a, b| a * b / (a + b)),
            ("exp-tanh", |a, b| (a * b).exp() + (a - b).tanh()),
            ("sin-cos", |a, b| a.sin() * b.cos() - a.cos()),
            ("sqrt-recip", |a, b| (a * a + b).sqrt() + b.recip()),
            ("powi-powf", |a, b| a.powi(3) + a.powf(b)),
            ("max-min", |a, b| a.max(b) * a.min(b * b)),
            ("ln-atan2", |a, b| a.ln() + a.atan2(b) + b.abs()),
        ];
        let (x, y) = (0.7, 1.3);
        let h = 1e-6;
        for (name, f) in fs {
            let d = f(D::var(x, 0), D::var(y, 1));
            let v = |a: f64, b: f64| f(D::cst(a), D::cst(b)).re;
            let fx = (v(x + h, y) - v(x - h, y)) / (2.0 * h);
            let fy = (v(x, y + h) - v(x, y - h)) / (2.0 * h);
            assert!((d.re - v(x, y)).abs() < 1e-15, "{name}: value");
            assert!(
                (d.eps[0] - fx).abs() < 1e-7,
                "{name}: d/dx {} vs {fx}",
                d.eps[0]
            );
            assert!(
                (d.eps[1] - fy).abs() < 1e-7,
                "{name}: d/dy {} vs {fy}",
                d.eps[1]
            );
        }
    }
}
