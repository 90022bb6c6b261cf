//! [`F32x8`] and [`F64x4`]: eight `f32` (four `f64`) lanes in one AVX register, a [`Real`]
//! whose every operation is one AVX2 instruction on the register (x86-64 only).
//!
//! [`super::Lanes32`] and [`super::Lanes`] hold their lanes in an array and leave the vectorising
//! to the compiler, which does it partly: in the cable solver's gate kernels `perf` showed half of
//! the operations on 128-bit halves and shuffles between them, and a loop of [`Real::exp`] over
//! `Lanes32<8>` cost 3.8 ns per element against 0.62 ns for the same polynomial written on the
//! register (measured on this project's 2-core EPYC VM). These types write each operation on the
//! register itself.
//!
//! **Every operation but `exp` gives, bit for bit, what the scalar type gives** for the same
//! inputs: addition, subtraction, multiplication, division and square root are the IEEE
//! operations of the scalar code (no multiply-add is fused in them); `ln`, `tanh`, `sin`, `cos`
//! and `powi` are the scalar functions lane by lane. `exp` is the scalar method
//! ([`super::exp::exp_f32`]'s polynomial, [`super::exp::exp`]'s table) written on the register
//! with fused multiply-adds (a third fewer instructions and a shorter dependency chain), within
//! 1 ulp of the correctly rounded value as the scalar function is, but not always the same ulp;
//! lanes whose argument is outside its range (or NaN) are redone by the system function, as in
//! the scalar code. An engine that wants a batch element's result not to depend on the batch
//! must therefore run every element on these types, or on [`super::FmaLanes`] /
//! [`super::FmaLanes32`], whose lanes give a register lane's bits (the cable solver finishes a
//! batch on them). Tested below.
//!
//! # Safety
//!
//! Every operation executes AVX, AVX2 or FMA instructions. The types must only be used on a
//! processor with AVX2 and FMA (`is_x86_feature_detected!`), in code compiled for them
//! (`#[target_feature(enable = "avx2,fma")]`, where the operations inline into single
//! instructions). The cable solver's lanes kernels are the only users and check both.

#![allow(unsafe_code)]

use std::arch::x86_64::*;
use std::ops::{Add, Div, Mul, Neg, Sub};

use super::exp;
use super::Real;

/// Eight `f32` lanes in an AVX register (see the module documentation, including its safety
/// section).
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub struct F32x8(pub __m256);

/// Four `f64` lanes in an AVX register (see the module documentation, including its safety
/// section).
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub struct F64x4(pub __m256d);

/// An arithmetic operator of a register type as one intrinsic.
macro_rules! simd_op {
    ($t:ident, $tr:ident, $m:ident, $intr:ident) => {
        impl $tr for $t {
            type Output = Self;
            #[inline(always)]
            fn $m(self, o: Self) -> Self {
                // SAFETY: AVX (module documentation).
                Self(unsafe { $intr(self.0, o.0) })
            }
        }
    };
}

macro_rules! simd_type {
    ($t:ident, $e:ty, $n:expr, $reg:ty, $ps:ident,
     add: $add:ident, sub: $sub:ident, mul: $mul:ident, div: $div:ident,
     set1: $set1:ident, loadu: $loadu:ident, storeu: $storeu:ident, xor: $xor:ident,
     and: $and:ident, andnot: $andnot:ident, min: $min:ident, max: $max:ident,
     cmp: $cmp:ident, blendv: $blendv:ident, movemask: $movemask:ident, sqrt: $sqrt:ident,
     exp_reg: $exp_reg:ident, exp_scalar: $exp_scalar:path) => {
        impl $t {
            /// The lanes `v`.
            #[inline(always)]
            pub fn new(v: [$e; $n]) -> Self {
                // SAFETY: AVX (module documentation); `v` holds `$n` numbers.
                Self(unsafe { $loadu(v.as_ptr()) })
            }

            /// The lanes loaded from `v[0..N]`.
            #[inline(always)]
            pub fn load(v: &[$e; $n]) -> Self {
                // SAFETY: AVX (module documentation); `v` holds `$n` numbers.
                Self(unsafe { $loadu(v.as_ptr()) })
            }

            /// Stores the lanes into `v`.
            #[inline(always)]
            pub fn store(self, v: &mut [$e; $n]) {
                // SAFETY: AVX (module documentation); `v` holds `$n` numbers.
                unsafe { $storeu(v.as_mut_ptr(), self.0) }
            }

            /// Every lane `v`.
            #[inline(always)]
            pub fn splat(v: $e) -> Self {
                // SAFETY: AVX (module documentation).
                Self(unsafe { $set1(v) })
            }

            /// The lanes as an array.
            #[inline(always)]
            pub fn to_array(self) -> [$e; $n] {
                let mut a = [0.0; $n];
                self.store(&mut a);
                a
            }

            /// The scalar function `f` on every lane.
            #[inline(always)]
            fn map(self, f: impl Fn($e) -> $e) -> Self {
                let mut a = self.to_array();
                for x in &mut a {
                    *x = f(*x);
                }
                Self::new(a)
            }

            /// A comparison `$pred` as a lane mask (all bits set where it holds).
            #[inline(always)]
            fn compare<const P: i32>(self, o: Self) -> Self {
                // SAFETY: AVX (module documentation).
                Self(unsafe { $cmp::<P>(self.0, o.0) })
            }
        }

        simd_op!($t, Add, add, $add);
        simd_op!($t, Sub, sub, $sub);
        simd_op!($t, Mul, mul, $mul);
        simd_op!($t, Div, div, $div);
        impl Neg for $t {
            type Output = Self;
            /// The sign bit flipped, as the scalar `-x`.
            #[inline(always)]
            fn neg(self) -> Self {
                // SAFETY: AVX (module documentation).
                Self(unsafe { $xor(self.0, $set1(-0.0)) })
            }
        }

        impl Real for $t {
            type Mask = $t;

            #[inline(always)]
            fn cst(v: f64) -> Self {
                Self::splat(v as $e)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                // SAFETY: AVX2 (module documentation).
                let (tame, y) = unsafe { $exp_reg(self.0) };
                if tame == (1 << $n) - 1 {
                    return Self(y);
                }
                // A lane outside the polynomial's range, or NaN: the system function, as the
                // scalar `exp` does.
                let (x, mut y) = (self.to_array(), Self(y).to_array());
                for l in 0..$n {
                    if tame & (1 << l) == 0 {
                        y[l] = $exp_scalar(x[l]);
                    }
                }
                Self::new(y)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                self.map(<$e>::ln)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                // SAFETY: AVX (module documentation). IEEE square root, as the scalar one.
                Self(unsafe { $sqrt(self.0) })
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
                // SAFETY: AVX (module documentation). The sign bit cleared, as the scalar
                // `abs`.
                Self(unsafe { $andnot($set1(-0.0), self.0) })
            }
            #[inline(always)]
            fn recip(self) -> Self {
                Self::splat(1.0) / self
            }
            #[inline(always)]
            fn powi(self, n: i32) -> Self {
                self.map(|a| a.powi(n))
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                // Rust's `max`: the other operand where one is NaN. `vmaxps(a, b)` returns `b`
                // where either is NaN (so `self` where `other` is), and a NaN `self` is fixed
                // below: LLVM's own lowering of the scalar `max` on x86-64.
                // SAFETY: AVX (module documentation).
                unsafe {
                    let m = $max(other.0, self.0);
                    let nan = $cmp::<_CMP_UNORD_Q>(self.0, self.0);
                    Self($blendv(m, other.0, nan))
                }
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                // As `max`.
                // SAFETY: AVX (module documentation).
                unsafe {
                    let m = $min(other.0, self.0);
                    let nan = $cmp::<_CMP_UNORD_Q>(self.0, self.0);
                    Self($blendv(m, other.0, nan))
                }
            }
            #[inline(always)]
            fn lt(self, other: Self) -> Self {
                self.compare::<_CMP_LT_OQ>(other)
            }
            #[inline(always)]
            fn gt(self, other: Self) -> Self {
                self.compare::<_CMP_GT_OQ>(other)
            }
            #[inline(always)]
            fn select(mask: Self, a: Self, b: Self) -> Self {
                // SAFETY: AVX (module documentation).
                Self(unsafe { $blendv(b.0, a.0, mask.0) })
            }
            #[inline(always)]
            fn logistic(self) -> Self {
                let one = Self::splat(1.0);
                one / (one + (-self).exp_safe())
            }
            /// The step only: lanes carry no derivative.
            #[inline(always)]
            fn spike(self, _slope: f64) -> Self {
                // SAFETY: AVX (module documentation).
                let pos = self.gt(Self::splat(0.0));
                Self(unsafe { $and(pos.0, $set1(1.0)) })
            }
        }

        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.to_array() == other.to_array()
            }
        }
    };
}

simd_type!(F32x8, f32, 8, __m256, ps,
    add: _mm256_add_ps, sub: _mm256_sub_ps, mul: _mm256_mul_ps, div: _mm256_div_ps,
    set1: _mm256_set1_ps, loadu: _mm256_loadu_ps, storeu: _mm256_storeu_ps, xor: _mm256_xor_ps,
    and: _mm256_and_ps, andnot: _mm256_andnot_ps, min: _mm256_min_ps, max: _mm256_max_ps,
    cmp: _mm256_cmp_ps, blendv: _mm256_blendv_ps, movemask: _mm256_movemask_ps,
    sqrt: _mm256_sqrt_ps, exp_reg: exp_f32x8, exp_scalar: exp::system_f32);

simd_type!(F64x4, f64, 4, __m256d, pd,
    add: _mm256_add_pd, sub: _mm256_sub_pd, mul: _mm256_mul_pd, div: _mm256_div_pd,
    set1: _mm256_set1_pd, loadu: _mm256_loadu_pd, storeu: _mm256_storeu_pd, xor: _mm256_xor_pd,
    and: _mm256_and_pd, andnot: _mm256_andnot_pd, min: _mm256_min_pd, max: _mm256_max_pd,
    cmp: _mm256_cmp_pd, blendv: _mm256_blendv_pd, movemask: _mm256_movemask_pd,
    sqrt: _mm256_sqrt_pd, exp_reg: exp_f64x4, exp_scalar: exp::system);

/// [`exp::exp_f32`]'s method on eight lanes, with fused multiply-adds: the bit mask of the
/// lanes it holds for (`|x| < 87`), and the result there (the other lanes' values are those of
/// the clamped argument, to be redone). Within 1 ulp of the correctly rounded value, as the
/// scalar function (tested below); the two may differ by that ulp.
///
/// # Safety
/// AVX2 and FMA.
#[inline(always)]
unsafe fn exp_f32x8(x: __m256) -> (i32, __m256) {
    let c = exp::F32_CONSTS;
    let s = _mm256_set1_ps;
    let lim = s(exp::LIMIT_F32);
    let abs = _mm256_andnot_ps(s(-0.0), x);
    let tame = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(abs, lim));
    let x = _mm256_min_ps(_mm256_max_ps(x, s(-exp::LIMIT_F32)), lim);
    let fma = _mm256_fmadd_ps;
    let k = fma(x, s(c.log2e), s(c.shift));
    let n = _mm256_sub_ps(k, s(c.shift));
    let ni = _mm256_sub_epi32(_mm256_castps_si256(k), _mm256_castps_si256(s(c.shift)));
    let r = fma(n, s(-c.l_hi), x);
    let r = fma(n, s(-c.l_lo), r);
    let z = _mm256_mul_ps(r, r);
    let mut p = s(c.p[0]);
    for &q in &c.p[1..] {
        p = fma(p, r, s(q));
    }
    let y = _mm256_add_ps(fma(p, z, r), s(1.0));
    let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(ni, _mm256_set1_epi32(127)));
    (tame, _mm256_mul_ps(y, _mm256_castsi256_ps(scale)))
}

/// [`exp::exp`]'s table method on four lanes (the table read by one gather), with fused
/// multiply-adds, as [`exp_f32x8`].
///
/// # Safety
/// AVX2 and FMA.
#[inline(always)]
unsafe fn exp_f64x4(x: __m256d) -> (i32, __m256d) {
    let c = exp::F64_CONSTS;
    let s = _mm256_set1_pd;
    let lim = s(exp::LIMIT);
    let abs = _mm256_andnot_pd(s(-0.0), x);
    let tame = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(abs, lim));
    let x = _mm256_min_pd(_mm256_max_pd(x, s(-exp::LIMIT)), lim);
    let fma = _mm256_fmadd_pd;
    let k = fma(x, s(c.inv_l), s(c.shift));
    let n = _mm256_sub_pd(k, s(c.shift));
    let ki = _mm256_sub_epi64(_mm256_castpd_si256(k), _mm256_castpd_si256(s(c.shift)));
    let j = _mm256_and_si256(ki, _mm256_set1_epi64x(63));
    // `(e + 1023) << 52` with `e = ki >> 6`: only bits 6–17 of `ki` reach the result, which a
    // logical shift (AVX2 has no arithmetic one on 64-bit lanes) gives as the scalar code's
    // arithmetic one does.
    let e = _mm256_srli_epi64::<6>(ki);
    let scale = _mm256_slli_epi64::<52>(_mm256_add_epi64(e, _mm256_set1_epi64x(1023)));
    let r = fma(n, s(-c.l_hi), x);
    let r = fma(n, s(-c.l_lo), r);
    // p = r + r²(1/2 + r(1/6 + r(1/24 + r(1/120 + r/720)))).
    let mut q = s(c.p[0]);
    for &a in &c.p[1..] {
        q = fma(r, q, s(a));
    }
    let p = fma(_mm256_mul_pd(r, r), q, r);
    let t = _mm256_i64gather_pd::<8>(exp::TABLE.as_ptr().cast::<f64>(), j);
    (
        tame,
        _mm256_mul_pd(fma(t, p, t), _mm256_castsi256_pd(scale)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An expression touching every operation but `exp`, written once over `Real`.
    fn f<R: Real>(x: R, y: R) -> R {
        let b = (x.abs() + R::cst(0.5)).ln() + (y * y + R::cst(1.0)).sqrt() + x.tanh();
        let c = x.sin() * y.cos() + (y + R::cst(3.0)).recip() + x.powi(3) - x / (y - R::cst(9.0));
        let d = R::select(x.lt(y), x.max(y), x.min(y)) + R::select(x.gt(y), x, -y);
        b - c * d + (x - y).spike(4.0)
    }

    fn supported() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn every_lane_is_the_scalar_result_bit_for_bit() {
        if !supported() {
            return;
        }
        let xs = [-3.7, -0.2, 0.0, 0.9, 2.5, 10.0, -81.0, 0.33];
        let ys = [1.1, -0.2, 4.0, 0.9, -2.5, 0.01, 3.0, -7.0];
        for h in [0, 4] {
            let x4: [f64; 4] = xs[h..h + 4].try_into().unwrap();
            let y4: [f64; 4] = ys[h..h + 4].try_into().unwrap();
            let l = f(F64x4::new(x4), F64x4::new(y4)).to_array();
            for i in 0..4 {
                assert_eq!(l[i].to_bits(), f(x4[i], y4[i]).to_bits(), "f64 lane {i}");
            }
        }
        let x8 = xs.map(|x| x as f32);
        let y8 = ys.map(|y| y as f32);
        let l = f(F32x8::new(x8), F32x8::new(y8)).to_array();
        for i in 0..8 {
            assert_eq!(l[i].to_bits(), f(x8[i], y8[i]).to_bits(), "f32 lane {i}");
        }
    }

    #[test]
    fn exp_within_one_ulp_everywhere_and_the_system_exp_beyond() {
        if !supported() {
            return;
        }
        // f32 against the correctly rounded value (the f64 `exp` rounded), f64 against the
        // system `exp` (as the scalar function is tested), across the whole range; lanes beyond
        // ±87 / ±700 mixed with tame ones in one register.
        let mut x = -760.0f64;
        while x < 760.0 {
            let xs = [x, x * 0.1, -x * 0.013, x + 0.37];
            let l = Real::exp(F64x4::new(xs)).to_array();
            for i in 0..4 {
                let want = xs[i].exp();
                if xs[i].abs() < 700.0 && want.is_normal() {
                    assert!(ulps(l[i], want) <= 1, "exp({}): {} vs {want}", xs[i], l[i]);
                } else {
                    assert_eq!(l[i].to_bits(), Real::exp(xs[i]).to_bits(), "exp({})", xs[i]);
                }
            }
            let x32 = [
                x as f32,
                (x * 0.1) as f32,
                (-x * 0.013) as f32,
                (x + 0.37) as f32,
            ];
            let x8 = [
                x32[0],
                x32[1],
                x32[2],
                x32[3],
                -x32[0],
                -x32[1],
                1e-3 * x32[0],
                0.0,
            ];
            let l = Real::exp(F32x8::new(x8)).to_array();
            for i in 0..8 {
                let want = (x8[i] as f64).exp() as f32;
                if x8[i].abs() < 87.0 {
                    let d = (l[i].to_bits() as i64 - want.to_bits() as i64).unsigned_abs();
                    assert!(d <= 1, "expf({}): {} vs {want}", x8[i], l[i]);
                } else {
                    assert_eq!(
                        l[i].to_bits(),
                        Real::exp(x8[i]).to_bits(),
                        "expf({})",
                        x8[i]
                    );
                }
            }
            x += 0.0731;
        }
        // Dense near zero, where the gate equations live.
        let mut x = -2.0f32;
        while x < 2.0 {
            let l = Real::exp(F32x8::splat(x)).to_array()[0];
            let want = (x as f64).exp() as f32;
            assert!(
                (l.to_bits() as i64 - want.to_bits() as i64).abs() <= 1,
                "expf({x})"
            );
            x += 1.3e-4;
        }
        for v in [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            700.0,
            -700.0,
            709.7,
        ] {
            let l = Real::exp(F64x4::new([v, 1.0, v, -1.0])).to_array();
            assert_eq!(l[0].to_bits(), Real::exp(v).to_bits(), "exp({v})");
            assert!(ulps(l[1], 1f64.exp()) <= 1);
            let w = v as f32;
            let l = Real::exp(F32x8::new([w, 1.0, w, -1.0, w, 2.0, 87.0, -87.0])).to_array();
            assert_eq!(l[0].to_bits(), Real::exp(w).to_bits(), "expf({w})");
            assert_eq!(l[6].to_bits(), Real::exp(87.0f32).to_bits());
            assert_eq!(l[7].to_bits(), Real::exp(-87.0f32).to_bits());
        }
    }

    #[test]
    fn min_max_follow_rust_on_nan() {
        if !supported() {
            return;
        }
        let a = F64x4::new([f64::NAN, 1.0, 2.0, -0.5]);
        let b = F64x4::new([3.0, f64::NAN, 1.0, 0.5]);
        let (mx, mn) = (a.max(b).to_array(), a.min(b).to_array());
        let (aa, bb) = (a.to_array(), b.to_array());
        for i in 0..4 {
            assert_eq!(mx[i].to_bits(), aa[i].max(bb[i]).to_bits(), "max lane {i}");
            assert_eq!(mn[i].to_bits(), aa[i].min(bb[i]).to_bits(), "min lane {i}");
        }
    }
}

/// Two registers' worth of lanes stepped together, `(a, b)`: each operation is the operation on
/// `a` and on `b`. The lanes' dependency chains (an `exp` is ~15 dependent instructions, and the
/// gate equations chain several `exp`s and divisions) then interleave in the processor, which a
/// loop over one register at a time leaves to the out-of-order window (too small for a whole gate
/// update: on this machine the gate kernel ran at ~1.3 instructions per cycle on one register).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair<R>(pub R, pub R);

macro_rules! pair_op {
    ($tr:ident, $m:ident) => {
        impl<R: Real> $tr for Pair<R> {
            type Output = Self;
            #[inline(always)]
            fn $m(self, o: Self) -> Self {
                Pair(self.0.$m(o.0), self.1.$m(o.1))
            }
        }
    };
}
pair_op!(Add, add);
pair_op!(Sub, sub);
pair_op!(Mul, mul);
pair_op!(Div, div);

impl<R: Real> Neg for Pair<R> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Pair(-self.0, -self.1)
    }
}

impl<R: Real> Real for Pair<R> {
    type Mask = (R::Mask, R::Mask);

    #[inline(always)]
    fn cst(v: f64) -> Self {
        let c = R::cst(v);
        Pair(c, c)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        Pair(self.0.exp(), self.1.exp())
    }
    #[inline(always)]
    fn ln(self) -> Self {
        Pair(self.0.ln(), self.1.ln())
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Pair(self.0.sqrt(), self.1.sqrt())
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        Pair(self.0.tanh(), self.1.tanh())
    }
    #[inline(always)]
    fn sin(self) -> Self {
        Pair(self.0.sin(), self.1.sin())
    }
    #[inline(always)]
    fn cos(self) -> Self {
        Pair(self.0.cos(), self.1.cos())
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Pair(self.0.abs(), self.1.abs())
    }
    #[inline(always)]
    fn recip(self) -> Self {
        Pair(self.0.recip(), self.1.recip())
    }
    #[inline(always)]
    fn powi(self, n: i32) -> Self {
        Pair(self.0.powi(n), self.1.powi(n))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Pair(self.0.max(o.0), self.1.max(o.1))
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        Pair(self.0.min(o.0), self.1.min(o.1))
    }
    #[inline(always)]
    fn lt(self, o: Self) -> Self::Mask {
        (self.0.lt(o.0), self.1.lt(o.1))
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Self::Mask {
        (self.0.gt(o.0), self.1.gt(o.1))
    }
    #[inline(always)]
    fn select(m: Self::Mask, a: Self, b: Self) -> Self {
        Pair(R::select(m.0, a.0, b.0), R::select(m.1, a.1, b.1))
    }
    #[inline(always)]
    fn logistic(self) -> Self {
        Pair(self.0.logistic(), self.1.logistic())
    }
    #[inline(always)]
    fn exp_safe(self) -> Self {
        Pair(self.0.exp_safe(), self.1.exp_safe())
    }
    #[inline(always)]
    fn spike(self, slope: f64) -> Self {
        Pair(self.0.spike(slope), self.1.spike(slope))
    }
}

/// [`exp_f32x8`] on every lane of an array (the lanes of [`super::FmaLanes32`]), bit for bit:
/// the same fused multiply-adds (`mul_add`), and the system `expf` beyond ±87. Fast only in
/// code compiled with FMA (`#[target_feature(enable = "fma")]`), where `mul_add` is one
/// instruction; elsewhere it is a call to the C library's exact `fma`, with the same result.
#[inline(always)]
pub(crate) fn exp_lanes_f32_fma<const N: usize>(x: [f32; N]) -> [f32; N] {
    exp::on_lanes(x, exp::tame_f32, core_f32_fma, exp::system_f32)
}

/// [`exp_f64x4`] on every lane of an array (the lanes of [`super::FmaLanes`]), as
/// [`exp_lanes_f32_fma`].
#[inline(always)]
pub(crate) fn exp_lanes_fma<const N: usize>(x: [f64; N]) -> [f64; N] {
    exp::on_lanes(x, exp::tame, core_f64_fma, exp::system)
}

/// [`exp_f32x8`]'s polynomial on one number (clamped to ±87, as there).
#[inline(always)]
fn core_f32_fma(x: f32) -> f32 {
    let x = x.clamp(-exp::LIMIT_F32, exp::LIMIT_F32);
    let c = exp::F32_CONSTS;
    let k = x.mul_add(c.log2e, c.shift);
    let n = k - c.shift;
    let ni = (k.to_bits() as i32).wrapping_sub(c.shift.to_bits() as i32);
    let r = n.mul_add(-c.l_hi, x);
    let r = n.mul_add(-c.l_lo, r);
    let z = r * r;
    let mut p = c.p[0];
    for &q in &c.p[1..] {
        p = p.mul_add(r, q);
    }
    let y = p.mul_add(z, r) + 1.0;
    y * f32::from_bits(((ni + 127) as u32) << 23)
}

/// [`exp_f64x4`]'s table method on one number (clamped to ±700, as there).
#[inline(always)]
fn core_f64_fma(x: f64) -> f64 {
    let x = x.clamp(-exp::LIMIT, exp::LIMIT);
    let c = exp::F64_CONSTS;
    let k = x.mul_add(c.inv_l, c.shift);
    let n = k - c.shift;
    let ki = k.to_bits().wrapping_sub(c.shift.to_bits()) as i64;
    let j = (ki & 63) as usize;
    let e = ki >> 6;
    let r = n.mul_add(-c.l_hi, x);
    let r = n.mul_add(-c.l_lo, r);
    let mut q = c.p[0];
    for &a in &c.p[1..] {
        q = r.mul_add(q, a);
    }
    let p = (r * r).mul_add(q, r);
    let t = f64::from_bits(exp::TABLE[j]);
    t.mul_add(p, t) * f64::from_bits(((e + 1023) as u64) << 52)
}

#[cfg(test)]
mod fma_tests {
    use super::super::{FmaLanes, FmaLanes32};
    use super::*;

    /// An expression touching every operation, written once over `Real`.
    fn f<R: Real>(x: R, y: R) -> R {
        let a = (x * y - x / (y.abs() + R::cst(1.0))).exp_safe() + (-x).logistic();
        let b = (x.abs() + R::cst(0.5)).ln() + (y * y + R::cst(1.0)).sqrt() + x.tanh();
        let c = x.sin() * y.cos() + (y + R::cst(3.0)).recip() + x.powi(3);
        let d = R::select(x.lt(y), x.max(y), x.min(y)) + R::select(x.gt(y), x, -y);
        a + b - c * d + (x - y).spike(4.0) + (x * R::cst(30.0)).exp()
    }

    #[test]
    fn one_lane_is_a_register_lane_bit_for_bit() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        let xs = [
            -3.7,
            -0.2,
            0.0,
            0.9,
            2.5,
            10.0,
            -81.0,
            0.33,
            31.0,
            -25.0,
            f64::NAN,
            1e-3,
        ];
        let ys = [
            1.1, -0.2, 4.0, 0.9, -2.5, 0.01, 3.0, -7.0, 2.0, 0.5, 1.0, -1e-3,
        ];
        for h in [0, 4, 8] {
            let x4: [f64; 4] = xs[h..h + 4].try_into().unwrap();
            let y4: [f64; 4] = ys[h..h + 4].try_into().unwrap();
            let l = f(F64x4::new(x4), F64x4::new(y4)).to_array();
            for i in 0..4 {
                let one = f(FmaLanes::<1>([x4[i]]), FmaLanes::<1>([y4[i]])).0[0];
                assert_eq!(
                    l[i].to_bits(),
                    one.to_bits(),
                    "f64 lane {i}: {} vs {one}",
                    l[i]
                );
            }
        }
        for h in [0, 4] {
            let x8: [f32; 8] = std::array::from_fn(|i| xs[h + i] as f32);
            let y8: [f32; 8] = std::array::from_fn(|i| ys[h + i] as f32);
            let l = f(F32x8::new(x8), F32x8::new(y8)).to_array();
            for i in 0..8 {
                let one = f(FmaLanes32::<1>([x8[i]]), FmaLanes32::<1>([y8[i]])).0[0];
                assert_eq!(
                    l[i].to_bits(),
                    one.to_bits(),
                    "f32 lane {i}: {} vs {one}",
                    l[i]
                );
            }
        }
        // exp over the range, one lane against the register.
        let mut x = -750.0f64;
        while x < 750.0 {
            let l = Real::exp(F64x4::splat(x)).to_array()[0];
            let one = Real::exp(FmaLanes::<1>([x])).0[0];
            assert_eq!(l.to_bits(), one.to_bits(), "exp({x})");
            let w = (x * 0.13) as f32;
            let l = Real::exp(F32x8::splat(w)).to_array()[0];
            let one = Real::exp(FmaLanes32::<1>([w])).0[0];
            assert_eq!(l.to_bits(), one.to_bits(), "expf({w})");
            x += 0.0917;
        }
    }
}
