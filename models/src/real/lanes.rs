//! [`Lanes`] and [`Lanes32`]: `N` independent `f64` (`f32`) values stepped side by side, a
//! [`Real`] whose every operation is the scalar operation on each lane. An engine evaluates an
//! equation written once over [`Real`] on `N` neurons (or batch elements) at a time with it: the
//! lanes' dependency chains (`exp`, divisions) overlap in the processor, and the loops over lanes
//! are open to the compiler's vectoriser.
//!
//! Every lane gives, bit for bit, what the scalar type gives for the same inputs: the operations
//! are the same operations in the same order (`exp` is [`super::exp::exp`] /
//! [`super::exp::exp_f32`], as for `f64` / `f32`; `logistic` and `exp_safe` are written as the
//! scalar versions are), and a spike carries no surrogate, as on plain floats. Tested against the
//! scalar types in this module and by the engines.

use std::ops::{Add, Div, Mul, Neg, Sub};

use super::Real;

macro_rules! lanes {
    ($(#[$doc:meta])* $name:ident, $e:ty, $exp:path) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name<const N: usize>(pub [$e; N]);

        impl<const N: usize> $name<N> {
            /// The lanes `v`.
            #[inline(always)]
            pub fn new(v: [$e; N]) -> Self {
                Self(v)
            }

            /// Every lane `v`.
            #[inline(always)]
            pub fn splat(v: $e) -> Self {
                Self([v; N])
            }

            #[inline(always)]
            fn map(self, f: impl Fn($e) -> $e) -> Self {
                let mut o = self.0;
                for x in &mut o {
                    *x = f(*x);
                }
                Self(o)
            }

            #[inline(always)]
            fn zip(self, other: Self, f: impl Fn($e, $e) -> $e) -> Self {
                let mut o = self.0;
                for (x, y) in o.iter_mut().zip(other.0) {
                    *x = f(*x, y);
                }
                Self(o)
            }
        }

        lanes!(@op $name, Add, add, +);
        lanes!(@op $name, Sub, sub, -);
        lanes!(@op $name, Mul, mul, *);
        lanes!(@op $name, Div, div, /);

        impl<const N: usize> Neg for $name<N> {
            type Output = Self;
            #[inline(always)]
            fn neg(self) -> Self {
                self.map(|a| -a)
            }
        }

        impl<const N: usize> Real for $name<N> {
            type Mask = [bool; N];

            #[inline(always)]
            fn cst(v: f64) -> Self {
                Self::splat(v as $e)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                Self($exp(self.0))
            }
            #[inline(always)]
            fn ln(self) -> Self {
                self.map(<$e>::ln)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                self.map(<$e>::sqrt)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                self.map(<$e>::tanh)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                self.map(<$e>::sin)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                self.map(<$e>::cos)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                self.map(<$e>::abs)
            }
            #[inline(always)]
            fn recip(self) -> Self {
                self.map(<$e>::recip)
            }
            #[inline(always)]
            fn powi(self, n: i32) -> Self {
                self.map(|a| a.powi(n))
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                self.zip(other, <$e>::max)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                self.zip(other, <$e>::min)
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
            /// As on the scalar type: `1 / (1 + exp_safe(−x))`.
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
    };
    (@op $name:ident, $tr:ident, $m:ident, $op:tt) => {
        impl<const N: usize> $tr for $name<N> {
            type Output = Self;
            #[inline(always)]
            fn $m(self, o: Self) -> Self {
                self.zip(o, |a, b| a $op b)
            }
        }
    };
}

lanes!(
    /// `N` lanes of `f64` (see the module documentation).
    Lanes,
    f64,
    super::exp::exp_lanes
);
lanes!(
    /// `N` lanes of `f32` (see the module documentation).
    Lanes32,
    f32,
    super::exp::exp_lanes_f32
);
#[cfg(target_arch = "x86_64")]
lanes!(
    /// `N` lanes of `f64` whose `exp` is [`super::F64x4`]'s (fused multiply-adds), the rest as
    /// [`Lanes`]: every lane gives, bit for bit, what a lane of an `F64x4` gives. The cable
    /// solver steps a batch's last elements, fewer than a register, on `FmaLanes<1>`. Fast only
    /// in code compiled with FMA (see [`super::simd`]).
    FmaLanes,
    f64,
    super::simd::exp_lanes_fma
);
#[cfg(target_arch = "x86_64")]
lanes!(
    /// The `f32` counterpart of [`FmaLanes`], a lane of [`super::F32x8`].
    FmaLanes32,
    f32,
    super::simd::exp_lanes_f32_fma
);

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

    #[test]
    fn every_lane_is_the_f32_result_bit_for_bit() {
        let xs = [-3.7f32, -0.2, 0.0, 0.9, 2.5, 10.0, -81.0, 0.33];
        let ys = [1.1f32, -0.2, 4.0, 0.9, -2.5, 0.01, 3.0, -7.0];
        let l = f(Lanes32::<8>(xs), Lanes32::<8>(ys));
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
