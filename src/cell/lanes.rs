//! The cable solver's per-element work, batch elements in lanes: the exponential-Euler gate
//! update and the channel conductances of one placement, with the channel dispatched once per
//! placement ([`ChannelKind::visit`]) and, for `f64` and `f32`, [`LANES_F64`] / [`LANES_F32`]
//! batch elements at a time on [`Lanes`] / [`Lanes32`] (the channel's equations, written once
//! over [`Real`], evaluated on every lane).
//!
//! Every lane computes what the scalar code computes, bit for bit (the same operations in the
//! same order, `exp` the same inlined function on both), so a batch element's trajectory does
//! not depend on whether it fell in a full group of lanes or in the scalar tail, nor on the
//! batch size. On x86-64 processors with AVX2 the loops are compiled a second time for AVX2
//! and chosen at run time (the same instructions' results; no fused multiply-add is formed, so
//! the bits do not change).
//!
//! Dual numbers (the adjoint's local Jacobians) take the scalar path.

use std::any::TypeId;

use neurodiff_models::channel::{Channel, ChannelKind, ChannelVisitor};
use neurodiff_models::real::{Lanes, Lanes32};
use neurodiff_models::Real;
use num_traits::Float;

/// Batch elements per group of lanes in `f64` (four: one AVX2 register).
pub(crate) const LANES_F64: usize = 4;
/// Batch elements per group of lanes in `f32` (eight: one AVX2 register).
pub(crate) const LANES_F32: usize = 8;
/// The most gates or parameters a channel may have for the lanes path (more take the scalar
/// path).
const MAX_VARS: usize = 8;

/// `x` as a slice of `U` when `T` is `U`.
#[inline(always)]
fn cast<T: 'static, U: 'static>(x: &[T]) -> Option<&[U]> {
    // SAFETY: `T` and `U` are the same type.
    (TypeId::of::<T>() == TypeId::of::<U>())
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<U>(), x.len()) })
}

/// `x` as a mutable slice of `U` when `T` is `U`.
#[inline(always)]
fn cast_mut<T: 'static, U: 'static>(x: &mut [T]) -> Option<&mut [U]> {
    // SAFETY: `T` and `U` are the same type.
    (TypeId::of::<T>() == TypeId::of::<U>())
        .then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<U>(), x.len()) })
}

/// `x` as a `U` when `T` is `U`.
#[inline(always)]
fn cast_val<T: Copy + 'static, U: Copy + 'static>(x: T) -> Option<U> {
    cast::<T, U>(std::slice::from_ref(&x)).map(|s| s[0])
}

/// Column `k` of `N` rows of `width` numbers laid end to end: `rows[l * width + k]` for each
/// lane `l` (a group's parameters or gates, stored per batch element).
#[inline(always)]
fn column<E: Copy, const N: usize>(rows: &[E], width: usize, k: usize) -> [E; N] {
    std::array::from_fn(|l| rows[l * width + k])
}

/// Whether this processor runs the AVX2 copies of the loops.
#[inline(always)]
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The exponential-Euler update of every gate of one placement over one step, at the new
/// voltages: `x ← x∞ + (x − x∞) e^{−dt φ/τ}` with `x∞`, `τ` at `v` (and `cai` for a channel that
/// reads calcium).
pub(crate) struct GateStep<'s, T> {
    pub(crate) dt: T,
    pub(crate) phi: T,
    pub(crate) np: usize,
    pub(crate) ng: usize,
    pub(crate) nb: usize,
    /// The placement's nodes.
    pub(crate) nodes: &'s [usize],
    /// Voltages `[node][batch]`, mV.
    pub(crate) v: &'s [T],
    /// Calcium `[node][batch]`, mM, for a channel that reads it.
    pub(crate) cai: Option<&'s [T]>,
    /// Parameters `[batch][param]`.
    pub(crate) params: &'s [T],
    /// Gates `[(j * batch + b) * n_gates + g]`.
    pub(crate) gates: &'s mut [T],
}

/// The conductances of one placement added to the backward-Euler system: `d += g A`,
/// `rhs += g A E` per element, `g` the channel's conductance density at the step's gates.
pub(crate) struct Conduct<'s, T> {
    pub(crate) np: usize,
    pub(crate) ng: usize,
    pub(crate) nb: usize,
    pub(crate) nodes: &'s [usize],
    /// Membrane area per node, cm².
    pub(crate) area: &'s [T],
    pub(crate) params: &'s [T],
    /// The reversal potential per batch element, mV.
    pub(crate) rev: &'s [T],
    pub(crate) gates: &'s [T],
    pub(crate) d: &'s mut [T],
    pub(crate) rhs: &'s mut [T],
}

/// The scalar gate update of batch element `b` at placement node `j`.
#[inline(always)]
fn gate_scalar<C: Channel, T: Float + 'static>(c: &C, s: &mut GateStep<'_, T>, j: usize, b: usize) {
    let (nb, np, ng) = (s.nb, C::SPEC.params.len(), C::SPEC.gates.len());
    let idx = s.nodes[j] * nb + b;
    let vv = s.v[idx];
    let p = &s.params[b * np..(b + 1) * np];
    let mut inf = [T::zero(); MAX_VARS];
    let mut tau = [T::zero(); MAX_VARS];
    match s.cai {
        Some(ca) => c.gates_ca(vv, ca[idx], p, &mut inf[..ng], &mut tau[..ng]),
        None => c.gates(vv, p, &mut inf[..ng], &mut tau[..ng]),
    }
    let x = &mut s.gates[(j * nb + b) * ng..(j * nb + b + 1) * ng];
    gate_update(s.dt, s.phi, &inf[..ng], &tau[..ng], x);
}

/// `x ← x∞ + (x − x∞) e^{−dt φ/τ}` for one row of gates (`exp` is [`Real::exp`]: the inlined
/// function for `f32` and `f64`, the same in every lane).
#[inline(always)]
pub(crate) fn gate_update<R: Float + 'static>(dt: R, phi: R, inf: &[R], tau: &[R], x: &mut [R]) {
    for g in 0..x.len() {
        let e = Real::exp(-dt * phi / tau[g]);
        x[g] = inf[g] + (x[g] - inf[g]) * e;
    }
}

/// The scalar conductance of batch element `b` at placement node `j`.
#[inline(always)]
fn conduct_scalar<C: Channel, T: Float + 'static>(
    c: &C,
    s: &mut Conduct<'_, T>,
    j: usize,
    b: usize,
) {
    let (nb, np, ng) = (s.nb, s.np, s.ng);
    let node = s.nodes[j];
    let x = &s.gates[(j * nb + b) * ng..(j * nb + b + 1) * ng];
    let g = c.conductance(x, &s.params[b * np..(b + 1) * np]) * s.area[node];
    let idx = node * nb + b;
    s.d[idx] = s.d[idx] + g;
    s.rhs[idx] = s.rhs[idx] + g * s.rev[b];
}

macro_rules! lane_kernels {
    ($e:ty, $l:ident, $n:expr, $gates:ident, $gates_avx2:ident, $cond:ident, $cond_avx2:ident) => {
        /// The lanes gate update (see [`GateStep`]) in this element type. The channel's
        /// gate and parameter counts are constants here (`C::SPEC`), so the loops over them
        /// unroll and each group's rows load as one slice.
        #[inline(always)]
        fn $gates<C: Channel>(c: &C, s: &mut GateStep<'_, $e>) {
            const N: usize = $n;
            type L = $l<N>;
            let ng = C::SPEC.gates.len();
            let np = C::SPEC.params.len();
            debug_assert!(ng == s.ng && np == s.np);
            let nb = s.nb;
            let mut p = [L::splat(0.0); MAX_VARS];
            let mut inf = [L::splat(0.0); MAX_VARS];
            let mut tau = [L::splat(0.0); MAX_VARS];
            let (dt, phi) = (L::splat(s.dt), L::splat(s.phi));
            for j in 0..s.nodes.len() {
                let base = s.nodes[j] * nb;
                let mut b = 0;
                while b + N <= nb {
                    let v = L::new(s.v[base + b..base + b + N].try_into().unwrap());
                    let pc = &s.params[b * np..(b + N) * np];
                    for (q, pq) in p[..np].iter_mut().enumerate() {
                        *pq = L::new(column(pc, np, q));
                    }
                    match s.cai {
                        Some(ca) => {
                            let cai = L::new(ca[base + b..base + b + N].try_into().unwrap());
                            c.gates_ca(v, cai, &p[..np], &mut inf[..ng], &mut tau[..ng])
                        }
                        None => c.gates(v, &p[..np], &mut inf[..ng], &mut tau[..ng]),
                    }
                    let row = (j * nb + b) * ng;
                    let gc = &mut s.gates[row..row + N * ng];
                    for g in 0..ng {
                        let x = L::new(column(gc, ng, g));
                        let e = (-dt * phi / tau[g]).exp();
                        let xn = inf[g] + (x - inf[g]) * e;
                        for l in 0..N {
                            gc[l * ng + g] = xn.0[l];
                        }
                    }
                    b += N;
                }
                for b in b..nb {
                    gate_scalar(c, s, j, b);
                }
            }
        }

        /// [`$gates`] compiled for AVX2.
        ///
        /// # Safety
        /// The processor must support AVX2.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $gates_avx2<C: Channel>(c: &C, s: &mut GateStep<'_, $e>) {
            $gates(c, s)
        }

        /// The lanes conductances (see [`Conduct`]) in this element type.
        #[inline(always)]
        fn $cond<C: Channel>(c: &C, s: &mut Conduct<'_, $e>) {
            const N: usize = $n;
            type L = $l<N>;
            let ng = C::SPEC.gates.len();
            let np = C::SPEC.params.len();
            debug_assert!(ng == s.ng && np == s.np);
            let nb = s.nb;
            let mut p = [L::splat(0.0); MAX_VARS];
            let mut x = [L::splat(0.0); MAX_VARS];
            for j in 0..s.nodes.len() {
                let node = s.nodes[j];
                let base = node * nb;
                let area = L::splat(s.area[node]);
                let mut b = 0;
                while b + N <= nb {
                    let row = (j * nb + b) * ng;
                    let gc = &s.gates[row..row + N * ng];
                    for (g, xg) in x[..ng].iter_mut().enumerate() {
                        *xg = L::new(column(gc, ng, g));
                    }
                    let pc = &s.params[b * np..(b + N) * np];
                    for (q, pq) in p[..np].iter_mut().enumerate() {
                        *pq = L::new(column(pc, np, q));
                    }
                    let g = c.conductance(&x[..ng], &p[..np]) * area;
                    let rev = L::new(s.rev[b..b + N].try_into().unwrap());
                    let d: &mut [$e; N] = (&mut s.d[base + b..base + b + N]).try_into().unwrap();
                    *d = (L::new(*d) + g).0;
                    let r: &mut [$e; N] =
                        (&mut s.rhs[base + b..base + b + N]).try_into().unwrap();
                    *r = (L::new(*r) + g * rev).0;
                    b += N;
                }
                for b in b..nb {
                    conduct_scalar(c, s, j, b);
                }
            }
        }

        /// [`$cond`] compiled for AVX2.
        ///
        /// # Safety
        /// The processor must support AVX2.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $cond_avx2<C: Channel>(c: &C, s: &mut Conduct<'_, $e>) {
            $cond(c, s)
        }
    };
}

lane_kernels!(
    f64,
    Lanes,
    LANES_F64,
    gates_f64,
    gates_f64_avx2,
    cond_f64,
    cond_f64_avx2
);
lane_kernels!(
    f32,
    Lanes32,
    LANES_F32,
    gates_f32,
    gates_f32_avx2,
    cond_f32,
    cond_f32_avx2
);

/// Runs an `f64`/`f32` kernel (its AVX2 copy where the processor has AVX2) on `$s` recast from
/// `T`, or returns `None` when `T` is neither.
macro_rules! dispatch {
    ($c:expr, $s:expr, $plain:ident, $avx2:ident) => {{
        let s = $s;
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: the processor has AVX2.
            unsafe { $avx2(&$c, s) };
            return;
        }
        $plain(&$c, s);
        return;
    }};
}

impl<T: Float + 'static> ChannelVisitor for GateStep<'_, T> {
    type Out = ();

    #[inline(always)]
    fn visit<C: Channel>(mut self, c: C) {
        if self.np <= MAX_VARS && self.ng <= MAX_VARS && self.nb >= LANES_F32.min(LANES_F64) {
            if let Some(mut s) = recast_gates::<T, f64>(&mut self) {
                dispatch!(c, &mut s, gates_f64, gates_f64_avx2);
            }
            if let Some(mut s) = recast_gates::<T, f32>(&mut self) {
                dispatch!(c, &mut s, gates_f32, gates_f32_avx2);
            }
        }
        for j in 0..self.nodes.len() {
            for b in 0..self.nb {
                gate_scalar(&c, &mut self, j, b);
            }
        }
    }
}

impl<T: Float + 'static> ChannelVisitor for Conduct<'_, T> {
    type Out = ();

    #[inline(always)]
    fn visit<C: Channel>(mut self, c: C) {
        if self.np <= MAX_VARS && self.ng <= MAX_VARS && self.nb >= LANES_F32.min(LANES_F64) {
            if let Some(mut s) = recast_conduct::<T, f64>(&mut self) {
                dispatch!(c, &mut s, cond_f64, cond_f64_avx2);
            }
            if let Some(mut s) = recast_conduct::<T, f32>(&mut self) {
                dispatch!(c, &mut s, cond_f32, cond_f32_avx2);
            }
        }
        for j in 0..self.nodes.len() {
            for b in 0..self.nb {
                conduct_scalar(&c, &mut self, j, b);
            }
        }
    }
}

/// `s` with its numbers as `U`, when `T` is `U`.
#[inline(always)]
fn recast_gates<'a, T: Float + 'static, U: Float + 'static>(
    s: &'a mut GateStep<'_, T>,
) -> Option<GateStep<'a, U>> {
    Some(GateStep {
        dt: cast_val(s.dt)?,
        phi: cast_val(s.phi)?,
        np: s.np,
        ng: s.ng,
        nb: s.nb,
        nodes: s.nodes,
        v: cast(s.v)?,
        cai: match s.cai {
            Some(ca) => Some(cast(ca)?),
            None => None,
        },
        params: cast(s.params)?,
        gates: cast_mut(s.gates)?,
    })
}

/// `s` with its numbers as `U`, when `T` is `U`.
#[inline(always)]
fn recast_conduct<'a, T: Float + 'static, U: Float + 'static>(
    s: &'a mut Conduct<'_, T>,
) -> Option<Conduct<'a, U>> {
    Some(Conduct {
        np: s.np,
        ng: s.ng,
        nb: s.nb,
        nodes: s.nodes,
        area: cast(s.area)?,
        params: cast(s.params)?,
        rev: cast(s.rev)?,
        gates: cast(s.gates)?,
        d: cast_mut(s.d)?,
        rhs: cast_mut(s.rhs)?,
    })
}

/// Runs [`GateStep`] on placement kind `kind`.
#[inline]
pub(crate) fn step_gates<T: Float + 'static>(kind: ChannelKind, s: GateStep<'_, T>) {
    kind.visit(s)
}

/// Runs [`Conduct`] on placement kind `kind`.
#[inline]
pub(crate) fn add_conductances<T: Float + 'static>(kind: ChannelKind, s: Conduct<'_, T>) {
    kind.visit(s)
}
