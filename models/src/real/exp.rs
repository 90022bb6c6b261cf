//! `e^x` for `f64`, inlined into the equations' loops: glibc's `exp` (behind a call and its
//! symbol-version wrapper) was 28 % of the spiking circuit's time (`perf`, BENCHMARKS.md).
//!
//! The method is the classic table-driven one (Tang 1989; the scheme of glibc's and ARM's
//! `exp`): `x = (64 e + j) ln2/64 + r` with `|r| ≤ ln2/128`, so
//! `e^x = 2^e · 2^{j/64} · e^r`, with `2^{j/64}` from a table of 64 correctly rounded values
//! and `e^r − 1` from its Taylor series to `r⁶/720` (the first term left out, `r⁷/5040`, is below
//! `3e−20`). `ln2/64` is split in two (Cody–Waite: the high part has 20 significant bits, so
//! `n · hi` is exact) so that `r` is accurate. Error: at most about 1 ulp (tested against the
//! system `exp` over the whole range, where both are finite and normal).
//!
//! Arguments whose magnitude is 700 or more (and NaN) go to the system `exp`, which handles
//! overflow, subnormal results and NaN; the branch is never taken in a healthy simulation.

/// `2^{j/64}` for `j` = 0…63, correctly rounded (from 60-digit decimal arithmetic).
pub(crate) const TABLE: [u64; 64] = [
    0x3ff0000000000000,
    0x3ff02c9a3e778061,
    0x3ff059b0d3158574,
    0x3ff0874518759bc8,
    0x3ff0b5586cf9890f,
    0x3ff0e3ec32d3d1a2,
    0x3ff11301d0125b51,
    0x3ff1429aaea92de0,
    0x3ff172b83c7d517b,
    0x3ff1a35beb6fcb75,
    0x3ff1d4873168b9aa,
    0x3ff2063b88628cd6,
    0x3ff2387a6e756238,
    0x3ff26b4565e27cdd,
    0x3ff29e9df51fdee1,
    0x3ff2d285a6e4030b,
    0x3ff306fe0a31b715,
    0x3ff33c08b26416ff,
    0x3ff371a7373aa9cb,
    0x3ff3a7db34e59ff7,
    0x3ff3dea64c123422,
    0x3ff4160a21f72e2a,
    0x3ff44e086061892d,
    0x3ff486a2b5c13cd0,
    0x3ff4bfdad5362a27,
    0x3ff4f9b2769d2ca7,
    0x3ff5342b569d4f82,
    0x3ff56f4736b527da,
    0x3ff5ab07dd485429,
    0x3ff5e76f15ad2148,
    0x3ff6247eb03a5585,
    0x3ff6623882552225,
    0x3ff6a09e667f3bcd,
    0x3ff6dfb23c651a2f,
    0x3ff71f75e8ec5f74,
    0x3ff75feb564267c9,
    0x3ff7a11473eb0187,
    0x3ff7e2f336cf4e62,
    0x3ff82589994cce13,
    0x3ff868d99b4492ed,
    0x3ff8ace5422aa0db,
    0x3ff8f1ae99157736,
    0x3ff93737b0cdc5e5,
    0x3ff97d829fde4e50,
    0x3ff9c49182a3f090,
    0x3ffa0c667b5de565,
    0x3ffa5503b23e255d,
    0x3ffa9e6b5579fdbf,
    0x3ffae89f995ad3ad,
    0x3ffb33a2b84f15fb,
    0x3ffb7f76f2fb5e47,
    0x3ffbcc1e904bc1d2,
    0x3ffc199bdd85529c,
    0x3ffc67f12e57d14b,
    0x3ffcb720dcef9069,
    0x3ffd072d4a07897c,
    0x3ffd5818dcfba487,
    0x3ffda9e603db3285,
    0x3ffdfc97337b9b5f,
    0x3ffe502ee78b3ff6,
    0x3ffea4afa2a490da,
    0x3ffefa1bee615a27,
    0x3fff50765b6e4540,
    0x3fffa7c1819e90d8,
];

/// `e^x` (see the module documentation).
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    if tame(x) {
        core(x)
    } else {
        system(x)
    }
}

/// The system `exp`, for the rare argument outside the table's range. Cold and never inlined,
/// so that the compiler cannot turn `if tame(x) { core(x) } else { system(x) }` into both
/// computed and one selected: `f64::exp` is an intrinsic it may speculate, and it did, calling
/// the C library's `exp` on every lane of the cell solver's one-lane kernels (`perf`: a fifth
/// of a batch-1 step).
#[cold]
#[inline(never)]
pub(crate) fn system(x: f64) -> f64 {
    x.exp()
}

/// [`system`] in `f32`.
#[cold]
#[inline(never)]
pub(crate) fn system_f32(x: f32) -> f32 {
    x.exp()
}

/// `|x| < 700` (false for NaN).
#[inline(always)]
pub(crate) fn tame(x: f64) -> bool {
    x.abs() < LIMIT
}

/// [`exp`] of every lane, bit for bit, written without a branch per lane so that the compiler
/// can vectorise it (one check for the rare lane outside ±700, which the system `exp` redoes).
#[inline(always)]
pub fn exp_lanes<const N: usize>(x: [f64; N]) -> [f64; N] {
    on_lanes(x, tame, |x| core(x.clamp(-LIMIT, LIMIT)), system)
}

/// `core` on every lane without a branch per lane (its argument clamped to its range by the
/// caller's `core`), then the lanes where `tame` fails redone by `system`: the lanes form of an
/// `exp` whose scalar form is `if tame(x) { core(x) } else { system(x) }`.
#[inline(always)]
pub(crate) fn on_lanes<E: Copy + Default, const N: usize>(
    x: [E; N],
    tame: impl Fn(E) -> bool,
    core: impl Fn(E) -> E,
    system: impl Fn(E) -> E,
) -> [E; N] {
    let mut out = [E::default(); N];
    let mut wild = false;
    for l in 0..N {
        wild |= !tame(x[l]);
        out[l] = core(x[l]);
    }
    if wild {
        for l in 0..N {
            if !tame(x[l]) {
                out[l] = system(x[l]);
            }
        }
    }
    out
}

/// Arguments at or beyond this magnitude go to the system `exp`.
pub(crate) const LIMIT: f64 = 700.0;

/// The constants of [`core`] (shared with the AVX2 copy in `simd.rs`).
pub(crate) struct F64Consts {
    /// 1.5 · 2^52: adding it rounds to an integer held in the low bits of the mantissa.
    pub shift: f64,
    /// 64 / ln 2.
    pub inv_l: f64,
    /// (ln 2)'s first 20 bits / 64.
    pub l_hi: f64,
    /// The rest of ln 2 / 64.
    pub l_lo: f64,
    /// The Taylor coefficients of `(e^r − 1 − r)/r²` from the highest: 1/720 … 1/2.
    pub p: [f64; 5],
}

pub(crate) const F64_CONSTS: F64Consts = F64Consts {
    shift: 6_755_399_441_055_744.0,
    inv_l: 92.332_482_616_893_66,
    l_hi: 0.010_830_417_275_428_772,
    l_lo: 7.420_820_373_486_988e-9,
    p: [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5],
};

/// The table-driven `e^x` for `|x| ≤ 700`.
#[inline(always)]
fn core(x: f64) -> f64 {
    let c = F64_CONSTS;
    let k = x * c.inv_l + c.shift;
    let n = k - c.shift;
    let ki = k.to_bits().wrapping_sub(c.shift.to_bits()) as i64;
    let j = (ki & 63) as usize;
    let e = ki >> 6;
    let r = (x - n * c.l_hi) - n * c.l_lo;
    // r + r²(1/2 + r(1/6 + r(1/24 + r(1/120 + r/720)))).
    let mut q = c.p[0];
    for &a in &c.p[1..] {
        q = a + r * q;
    }
    let p = r + r * r * q;
    let t = f64::from_bits(TABLE[j]);
    let scale = f64::from_bits(((e + 1023) as u64) << 52);
    (t + t * p) * scale
}

/// `e^x` for `f32`, inlined and table-free, so that a loop over lanes vectorises: the
/// Cephes `expf` scheme (Moshier 1992). `x = n ln2 + r` with `n` the nearest integer to
/// `x / ln 2` (by the `1.5 · 2^23` shift), `ln 2` split in two (Cody–Waite: the high part
/// `0.693359375` has 9 bits, so `n · hi` is exact), and `e^r` from Cephes' degree-7 polynomial
/// on `|r| ≤ ln2/2`; the result scaled by `2^n` through its exponent bits. Error: at most 1 ulp
/// against the correctly rounded value (tested over the whole range against the `f64` `exp`).
///
/// Arguments whose magnitude is 87 or more (and NaN) go to the system `expf`, which handles
/// overflow, subnormal results and NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    if tame_f32(x) {
        core_f32(x)
    } else {
        system_f32(x)
    }
}

/// [`exp_f32`] of every lane, bit for bit, without a branch per lane (as [`exp_lanes`]).
#[inline(always)]
pub fn exp_lanes_f32<const N: usize>(x: [f32; N]) -> [f32; N] {
    on_lanes(
        x,
        tame_f32,
        |x| core_f32(x.clamp(-LIMIT_F32, LIMIT_F32)),
        system_f32,
    )
}

/// Arguments at or beyond this magnitude go to the system `expf` (`e^87` is below `f32::MAX`,
/// `e^−87` above the smallest normal).
pub(crate) const LIMIT_F32: f32 = 87.0;

/// `|x| < 87` (false for NaN).
#[inline(always)]
pub(crate) fn tame_f32(x: f32) -> bool {
    x.abs() < LIMIT_F32
}

/// The constants of [`core_f32`] (shared with the AVX2 copy in `simd.rs`).
pub(crate) struct F32Consts {
    /// 1.5 · 2^23.
    pub shift: f32,
    pub log2e: f32,
    /// 355/512, exact in f32.
    pub l_hi: f32,
    pub l_lo: f32,
    /// Cephes' polynomial from its highest coefficient; the last is Cephes' 5.0000001e-1,
    /// which rounds to 0.5 in f32.
    pub p: [f32; 6],
}

#[allow(clippy::excessive_precision)]
pub(crate) const F32_CONSTS: F32Consts = F32Consts {
    shift: 12_582_912.0,
    log2e: std::f32::consts::LOG2_E,
    l_hi: 0.693_359_375,
    l_lo: -2.121_944_4e-4,
    p: [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ],
};

/// The polynomial `e^x` of [`exp_f32`] for `|x| ≤ 87`.
#[inline(always)]
fn core_f32(x: f32) -> f32 {
    let c = F32_CONSTS;
    let k = x * c.log2e + c.shift;
    let n = k - c.shift;
    let ni = (k.to_bits() as i32).wrapping_sub(c.shift.to_bits() as i32);
    let r = (x - n * c.l_hi) - n * c.l_lo;
    let z = r * r;
    let mut p = c.p[0];
    for &q in &c.p[1..] {
        p = p * r + q;
    }
    let y = p * z + r + 1.0;
    y * f32::from_bits(((ni + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    fn ulps32(a: f32, b: f32) -> u32 {
        (a.to_bits() as i32 - b.to_bits() as i32).unsigned_abs()
    }

    #[test]
    fn f32_within_one_ulp_of_the_rounded_f64_exp() {
        let mut x = -87.0f32;
        while x < 87.0 {
            let want = (x as f64).exp() as f32;
            assert!(
                ulps32(exp_f32(x), want) <= 1,
                "exp_f32({x:e}): {} against {want}",
                exp_f32(x)
            );
            x += 0.0017;
        }
        let mut x = -1.0f32;
        while x < 1.0 {
            let want = (x as f64).exp() as f32;
            assert!(ulps32(exp_f32(x), want) <= 1, "exp_f32({x:e})");
            x += 3.1e-5;
        }
        for x in [
            0.0f32,
            -0.0,
            1e-30,
            -1e-30,
            1e-7,
            0.5 * std::f32::consts::LN_2,
        ] {
            assert!(
                ulps32(exp_f32(x), (x as f64).exp() as f32) <= 1,
                "exp_f32({x:e})"
            );
        }
    }

    #[test]
    fn f32_lanes_and_edges() {
        let x = [
            -100.0f32,
            -86.99,
            -3.25,
            0.0,
            1e-12,
            2.0,
            86.9,
            89.0,
            f32::NAN,
        ];
        let lanes = exp_lanes_f32(x);
        for (a, b) in lanes.iter().zip(x.map(exp_f32)) {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{a} vs {b}"
            );
        }
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(-110.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn table_is_two_to_the_j_over_64() {
        for (j, &bits) in TABLE.iter().enumerate() {
            let t = f64::from_bits(bits);
            assert!(ulps(t, (j as f64 / 64.0).exp2()) <= 1, "entry {j}");
        }
    }

    #[test]
    fn within_one_ulp_of_the_system_exp_over_the_range() {
        // A dense sweep of [-700, 700) plus the region around 0 where most gates live.
        let mut worst = 0;
        let mut x = -700.0;
        while x < 700.0 {
            let d = ulps(exp(x), x.exp());
            worst = worst.max(d);
            assert!(d <= 1, "exp({x:e}): {:e} against {:e}", exp(x), x.exp());
            x += 0.013_7;
        }
        let mut x = -1.0;
        while x < 1.0 {
            assert!(ulps(exp(x), x.exp()) <= 1, "exp({x:e})");
            x += 1.1e-5;
        }
        for x in [
            0.0,
            -0.0,
            1e-300,
            -1e-300,
            1e-17,
            0.5 * std::f64::consts::LN_2,
        ] {
            assert!(ulps(exp(x), x.exp()) <= 1, "exp({x:e})");
        }
        assert!(worst <= 1);
    }

    #[test]
    fn lanes_are_exp_bit_for_bit() {
        let x = [
            -800.0,
            -699.99,
            -3.25,
            0.0,
            1e-12,
            2.0,
            699.9,
            701.0,
            f64::NAN,
        ];
        let mut lanes = [0.0; 9];
        lanes.copy_from_slice(&exp_lanes(x));
        for (a, b) in lanes.iter().zip(x.map(exp)) {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn edges_go_to_the_system_exp() {
        assert_eq!(exp(800.0), f64::INFINITY);
        assert_eq!(exp(-800.0), 0.0);
        assert!(exp(f64::NAN).is_nan());
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert!(ulps(exp(699.9), 699.9f64.exp()) <= 1);
        assert!(ulps(exp(-699.9), (-699.9f64).exp()) <= 1);
    }
}
