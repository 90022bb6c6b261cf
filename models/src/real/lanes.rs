//! [`Lanes`]: `N` independent `f64` values stepped side by side, a [`Real`] whose every operation
//! is the `f64` operation on each lane. An engine evaluates an equation written once over
//! [`Real`] on `N` neurons (or batch elements) at a time with it: the lanes' dependency chains
//! (`exp`, divisions) overlap in the processor, and the loops over lanes are open to the
//! compiler's vectoriser.
//!
//! Every lane gives, bit for bit, what `f64` gives for the same inputs: the operations are the
//! same `f64` operations in the same order (`exp` is [`super::exp::exp`], as for `f64`;
//! `logistic` and `exp_safe` are written as the `f64` versions are), and a spike carries no
//! surrogate, as on plain floats. Tested against `f64` in this module and by the engines.

use std::ops::{Add, Div, Mul, Neg, Sub};

use super::Real;

/// `N` lanes of `f64` (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lanes<const N: usize>(pub [f64; N]);

impl<const N: usize> Lanes<N> {
    /// The lanes `v`.
    #[inline(always)]
    pub fn new(v: [f64; N]) -> Self {
        Self(v)
    }

    /// Every lane `v`.
    #[inline(always)]
    pub fn splat(v: f64) -> Self {
        Self([v; N])
    }

    #[inline(always)]
    fn map(self, f: impl Fn(f64) -> f64) -> Self {
        let mut o = self.0;
        for x in &mut o {
            *x = f(*x);
        }
        Self(o)
    }

    #[inline(always)]
    fn zip(self, other: Self, f: impl Fn(f64, f64) -> f64) -> Self {
        let mut o = self.0;
        for (x, y) in o.iter_mut().zip(other.0) {
            *x = f(*x, y);
        }
        Self(o)
    }
}

macro_rules! lane_op {
    ($tr:ident, $m:ident, $op:tt) => {
        impl<const N: usize> $tr for Lanes<N> {
            type Output = Self;
            #[inline(always)]
            fn $m(self, o: Self) -> Self {
                self.zip(o, |a, b| a $op b)
            }
        }
    };
}
lane_op!(Add, add, +);
lane_op!(Sub, sub, -);
lane_op!(Mul, mul, *);
lane_op!(Div, div, /);

impl<const N: usize> Neg for Lanes<N> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        self.map(|a| -a)
    }
}

impl<const N: usize> Real for Lanes<N> {
    type Mask = [bool; N];

    #[inline(always)]
    fn cst(v: f64) -> Self {
        Self::splat(v)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        Self(super::exp::exp_lanes(self.0))
    }
    #[inline(always)]
    fn ln(self) -> Self {
        self.map(f64::ln)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        self.map(f64::sqrt)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        self.map(f64::tanh)
    }
    #[inline(always)]
    fn sin(self) -> Self {
        self.map(f64::sin)
    }
    #[inline(always)]
    fn cos(self) -> Self {
        self.map(f64::cos)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        self.map(f64::abs)
    }
    #[inline(always)]
    fn recip(self) -> Self {
        self.map(f64::recip)
    }
    #[inline(always)]
    fn powi(self, n: i32) -> Self {
        self.map(|a| a.powi(n))
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        self.zip(other, f64::max)
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        self.zip(other, f64::min)
    }
    #[inline(always)]
    fn lt(self, other: Self) -> [bool; N] {
        std::array::from_fn(|l| self.0[l] < other.0[l])
    }
    #[inline(always)]
    fn gt(self, other: Self) -> [bool; N] {
        std::array::from_fn(|l| self.0[l] > other.0[l])
    }
    #[inline(always)]
    fn select(mask: [bool; N], a: Self, b: Self) -> Self {
        Self(std::array::from_fn(
            |l| if mask[l] { a.0[l] } else { b.0[l] },
        ))
    }
    /// As on `f64`: `1 / (1 + exp_safe(−x))`.
    #[inline(always)]
    fn logistic(self) -> Self {
        let one = Self::splat(1.0);
        one / (one + (-self).exp_safe())
    }
    /// The step only: lanes carry no derivative.
    #[inline(always)]
    fn spike(self, _slope: f64) -> Self {
        self.map(|a| if a > 0.0 { 1.0 } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An expression touching every operation, written once over `Real`.
    fn f<R: Real>(x: R, y: R) -> R {
        let a = (x * y - x / (y.abs() + R::cst(1.0))).exp_safe() + (-x).logistic();
        let b = (x.abs() + R::cst(0.5)).ln() + (y * y + R::cst(1.0)).sqrt() + x.tanh();
        let c = x.sin() * y.cos() + (y + R::cst(3.0)).recip() + x.powi(3);
        let d = R::select(x.lt(y), x.max(y), x.min(y)) + R::select(x.gt(y), x, -y);
        a + b - c * d + (x - y).spike(4.0)
    }

    #[test]
    fn every_lane_is_the_f64_result_bit_for_bit() {
        let xs = [-3.7, -0.2, 0.0, 0.9, 2.5, 10.0, -81.0, 0.33];
        let ys = [1.1, -0.2, 4.0, 0.9, -2.5, 0.01, 3.0, -7.0];
        let l = f(Lanes::<8>(xs), Lanes::<8>(ys));
        for i in 0..8 {
            let s = f(xs[i], ys[i]);
            assert_eq!(
                l.0[i].to_bits(),
                s.to_bits(),
                "lane {i}: {} vs {}",
                l.0[i],
                s
            );
        }
    }
}
