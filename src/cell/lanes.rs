//! The cable solver's per-element work, batch elements in lanes: the exponential-Euler gate
//! update and the channel conductances of one placement, with the channel dispatched once per
//! placement ([`ChannelKind::visit`]) and, for `f64` and `f32`, several batch elements at a time
//! (the channel's equations, written once over [`Real`], evaluated on every lane). On x86-64
//! processors with AVX2 and FMA (chosen at run time) the lanes are AVX registers, two at a time
//! ([`Pair`] of [`F64x4`] / [`F32x8`]: 8 `f64` or 16 `f32` batch elements), then one register,
//! then one lane at a time on [`FmaLanes`] / [`FmaLanes32`]; elsewhere they are the portable
//! [`Lanes`] / [`Lanes32`] arrays ([`LANES_F64`] / [`LANES_F32`] elements), then one lane of
//! them.
//!
//! Within each kind of processor every lane computes what every other lane computes, bit for
//! bit, so a batch element's trajectory does not depend on the group it fell in nor on the
//! batch size. On AVX2 + FMA, `exp` uses fused multiply-adds (registers and `Fma` lanes alike;
//! within 1 ulp, `real::simd`); the portable lanes give the scalar code's bits.
//!
//! Dual numbers (the adjoint's local Jacobians) take the scalar path.

use std::any::TypeId;

use neurodiff_models::channel::{Channel, ChannelKind, ChannelVisitor};
#[cfg(target_arch = "x86_64")]
use neurodiff_models::real::simd::{F32x8, F64x4, Pair};
#[cfg(target_arch = "x86_64")]
use neurodiff_models::real::{FmaLanes, FmaLanes32};
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

/// Whether this processor runs the AVX2 + FMA kernels (register lanes, [`F64x4`] /
/// [`F32x8`]).
#[inline(always)]
pub(crate) fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The exponential-Euler update of every gate of one placement over one step, at the new
/// voltages: `x ← x∞ + (x − x∞) e^{−dt φ/τ}` with `x∞`, `τ` at `v` (and `cai` for a channel that
/// reads calcium). With `next`, the placement's conductance at the new gates is then added into
/// the next step's system, as [`Conduct`] would add it there (the same operations, so the same
/// bits): one pass over the gates instead of two.
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
    /// The same, transposed: `[param][batch]` (contiguous loads for the lanes).
    pub(crate) params_t: &'s [T],
    /// Gates `[(j * batch + b) * n_gates + g]`.
    pub(crate) gates: &'s mut [T],
    /// Where the new gates' conductances go, if anywhere.
    pub(crate) next: Option<Next<'s, T>>,
}

/// The next step's system, for [`GateStep::next`]: the parts of [`Conduct`] that the gates do
/// not give.
pub(crate) struct Next<'s, T> {
    /// Membrane area per node, cm².
    pub(crate) area: &'s [T],
    /// Diagonal `[node][batch]`, mS.
    pub(crate) d: &'s mut [T],
    /// Right-hand side `[node][batch]`, µA.
    pub(crate) rhs: &'s mut [T],
}

/// The conductances of one placement added to the backward-Euler system: `d += g A`,
/// `rhs += (g E) A` per element, `(g, g E)` the channel's [`Channel::drive`] at the step's
/// gates.
pub(crate) struct Conduct<'s, T> {
    pub(crate) np: usize,
    pub(crate) ng: usize,
    pub(crate) nb: usize,
    pub(crate) nodes: &'s [usize],
    /// Membrane area per node, cm².
    pub(crate) area: &'s [T],
    pub(crate) params: &'s [T],
    /// The same, transposed: `[param][batch]`.
    pub(crate) params_t: &'s [T],
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
    let mut rate = [T::zero(); MAX_VARS];
    let cai = s.cai.map(|ca| ca[idx]);
    c.gates_rate(vv, cai, p, &mut inf[..ng], &mut rate[..ng]);
    let x = &mut s.gates[(j * nb + b) * ng..(j * nb + b + 1) * ng];
    gate_update(s.dt, s.phi, &inf[..ng], &rate[..ng], x);
    if let Some(nx) = &mut s.next {
        // As `conduct_scalar`.
        let (g, ge) = c.drive(x, p);
        add_scalar(nx.d, nx.rhs, idx, g, ge, nx.area[s.nodes[j]]);
    }
}

/// `x ← x∞ + (x − x∞) e^{−dt φ · rate}` for one row of gates, `rate = 1/τ` (`exp` is
/// [`Real::exp`]; the lanes kernels compute the same expression).
#[inline(always)]
pub(crate) fn gate_update<R: Float + 'static>(dt: R, phi: R, inf: &[R], rate: &[R], x: &mut [R]) {
    for g in 0..x.len() {
        let e = Real::exp(-dt * phi * rate[g]);
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
    let (g, ge) = c.drive(x, &s.params[b * np..(b + 1) * np]);
    add_scalar(s.d, s.rhs, node * nb + b, g, ge, s.area[node]);
}

/// `d += g A`, `rhs += (g E) A` at `idx` (`A` the compartment's area).
#[inline(always)]
fn add_scalar<T: Float>(d: &mut [T], rhs: &mut [T], idx: usize, g: T, ge: T, area: T) {
    d[idx] = d[idx] + g * area;
    rhs[idx] = rhs[idx] + ge * area;
}

/// A register of lanes (or a pair of registers, or a portable array of lanes) the kernels
/// load, compute on and store: `N` batch elements of element type `E` at a time.
trait Group: Real {
    type E: Float + 'static;
    const N: usize;
    /// Lanes from `x[0..N]`.
    fn load(x: &[Self::E]) -> Self;
    /// Stores the lanes into `x[0..N]`.
    fn store(self, x: &mut [Self::E]);
    /// Lane `l` from `f(l)` (a strided row).
    fn gather(f: impl Fn(usize) -> Self::E) -> Self;
    /// Writes lane `l` by `f(l, value)`.
    fn scatter(self, f: impl FnMut(usize, Self::E));
    fn splat(x: Self::E) -> Self;
}

macro_rules! group {
    ($t:ty, $e:ty, $n:expr, $new:path, $arr:expr) => {
        impl Group for $t {
            type E = $e;
            const N: usize = $n;
            #[inline(always)]
            fn load(x: &[$e]) -> Self {
                $new(x[..$n].try_into().unwrap())
            }
            #[inline(always)]
            fn store(self, x: &mut [$e]) {
                let a: [$e; $n] = $arr(self);
                x[..$n].copy_from_slice(&a);
            }
            #[inline(always)]
            fn gather(f: impl Fn(usize) -> $e) -> Self {
                $new(std::array::from_fn(f))
            }
            #[inline(always)]
            fn scatter(self, mut f: impl FnMut(usize, $e)) {
                let a: [$e; $n] = $arr(self);
                for (l, x) in a.into_iter().enumerate() {
                    f(l, x);
                }
            }
            #[inline(always)]
            fn splat(x: $e) -> Self {
                <$t>::splat(x)
            }
        }
    };
}

group!(Lanes<LANES_F64>, f64, LANES_F64, Lanes::new, |x: Lanes<
    LANES_F64,
>| x.0);
group!(
    Lanes32<LANES_F32>,
    f32,
    LANES_F32,
    Lanes32::new,
    |x: Lanes32<LANES_F32>| x.0
);
#[cfg(target_arch = "x86_64")]
group!(F64x4, f64, 4, F64x4::new, F64x4::to_array);
#[cfg(target_arch = "x86_64")]
group!(F32x8, f32, 8, F32x8::new, F32x8::to_array);

// One lane: a batch's last elements.
group!(Lanes<1>, f64, 1, Lanes::new, |x: Lanes<1>| x.0);
group!(Lanes32<1>, f32, 1, Lanes32::new, |x: Lanes32<1>| x.0);
#[cfg(target_arch = "x86_64")]
group!(FmaLanes<1>, f64, 1, FmaLanes::new, |x: FmaLanes<1>| x.0);
#[cfg(target_arch = "x86_64")]
group!(FmaLanes32<1>, f32, 1, FmaLanes32::new, |x: FmaLanes32<
    1,
>| x.0);

/// Two registers as one group of `2 N` lanes ([`Pair`]: their dependency chains interleave).
#[cfg(target_arch = "x86_64")]
impl<R: Group> Group for Pair<R> {
    type E = R::E;
    const N: usize = 2 * R::N;
    #[inline(always)]
    fn load(x: &[R::E]) -> Self {
        Pair(R::load(x), R::load(&x[R::N..]))
    }
    #[inline(always)]
    fn store(self, x: &mut [R::E]) {
        self.0.store(x);
        self.1.store(&mut x[R::N..]);
    }
    #[inline(always)]
    fn gather(f: impl Fn(usize) -> R::E) -> Self {
        Pair(R::gather(&f), R::gather(|l| f(R::N + l)))
    }
    #[inline(always)]
    fn scatter(self, mut f: impl FnMut(usize, R::E)) {
        self.0.scatter(&mut f);
        self.1.scatter(|l, x| f(R::N + l, x));
    }
    #[inline(always)]
    fn splat(x: R::E) -> Self {
        Pair(R::splat(x), R::splat(x))
    }
}

/// The gate update of batch elements `b .. b + L::N` at placement node `j` (as
/// [`gate_scalar`] on each, in the same operations; `exp` is `L`'s).
#[inline(always)]
fn gates_group<C: Channel, L: Group>(c: &C, s: &mut GateStep<'_, L::E>, j: usize, b: usize) {
    let (nb, np, ng) = (s.nb, C::SPEC.params.len(), C::SPEC.gates.len());
    let base = s.nodes[j] * nb + b;
    let v = L::load(&s.v[base..]);
    let mut p = [L::cst(0.0); MAX_VARS];
    for (q, pq) in p[..np].iter_mut().enumerate() {
        *pq = L::load(&s.params_t[q * nb + b..]);
    }
    let mut inf = [L::cst(0.0); MAX_VARS];
    let mut rate = [L::cst(0.0); MAX_VARS];
    let cai = s.cai.map(|ca| L::load(&ca[base..]));
    c.gates_rate(v, cai, &p[..np], &mut inf[..ng], &mut rate[..ng]);
    let (dt, phi) = (L::splat(s.dt), L::splat(s.phi));
    let row = (j * nb + b) * ng;
    let mut x = [L::cst(0.0); MAX_VARS];
    for g in 0..ng {
        let xo = L::gather(|l| s.gates[row + l * ng + g]);
        let e = (-dt * phi * rate[g]).exp();
        x[g] = inf[g] + (xo - inf[g]) * e;
        x[g].scatter(|l, y| s.gates[row + l * ng + g] = y);
    }
    if let Some(nx) = &mut s.next {
        // As `cond_group`.
        let (g, ge) = c.drive(&x[..ng], &p[..np]);
        add_system(nx.d, nx.rhs, base, g, ge, L::splat(nx.area[s.nodes[j]]));
    }
}

/// `d += g A`, `rhs += (g E) A` for the lanes of the group at `base`.
#[inline(always)]
fn add_system<L: Group>(d: &mut [L::E], rhs: &mut [L::E], base: usize, g: L, ge: L, area: L) {
    (L::load(&d[base..]) + g * area).store(&mut d[base..]);
    (L::load(&rhs[base..]) + ge * area).store(&mut rhs[base..]);
}

/// The conductances of batch elements `b .. b + L::N` at placement node `j` (as
/// [`conduct_scalar`] on each).
#[inline(always)]
fn cond_group<C: Channel, L: Group>(c: &C, s: &mut Conduct<'_, L::E>, j: usize, b: usize) {
    let (nb, np, ng) = (s.nb, C::SPEC.params.len(), C::SPEC.gates.len());
    let node = s.nodes[j];
    let base = node * nb + b;
    let row = (j * nb + b) * ng;
    let mut x = [L::cst(0.0); MAX_VARS];
    for (g, xg) in x[..ng].iter_mut().enumerate() {
        *xg = L::gather(|l| s.gates[row + l * ng + g]);
    }
    let mut p = [L::cst(0.0); MAX_VARS];
    for (q, pq) in p[..np].iter_mut().enumerate() {
        *pq = L::load(&s.params_t[q * nb + b..]);
    }
    let (g, ge) = c.drive(&x[..ng], &p[..np]);
    add_system(s.d, s.rhs, base, g, ge, L::splat(s.area[node]));
}

/// One placement's per-element work: the gate update ([`GateStep`]) or the conductances
/// ([`Conduct`]), in numbers `T`.
trait Work {
    type T: Float + 'static;
    /// The same work in numbers `U`: the struct with `T` replaced by `U` (so `Self` itself when
    /// `U` is `T`, which [`recast`] relies on).
    type As<U: Float + 'static>: Work<T = U>;
    /// The placement's nodes, the batch size, and whether the channel fits the lanes path.
    fn shape(&self) -> (usize, usize, bool);
    /// Batch elements `b .. b + L::N` at placement node `j`.
    fn group<C: Channel, L: Group<E = Self::T>>(&mut self, c: &C, j: usize, b: usize);
    /// Batch element `b` at placement node `j` on `T` itself (any `Float`, dual numbers too).
    fn scalar<C: Channel>(&mut self, c: &C, j: usize, b: usize);
}

impl<'s, T: Float + 'static> Work for GateStep<'s, T> {
    type T = T;
    type As<U: Float + 'static> = GateStep<'s, U>;
    #[inline(always)]
    fn shape(&self) -> (usize, usize, bool) {
        let fits = self.np <= MAX_VARS && self.ng <= MAX_VARS;
        (self.nodes.len(), self.nb, fits)
    }
    #[inline(always)]
    fn group<C: Channel, L: Group<E = T>>(&mut self, c: &C, j: usize, b: usize) {
        gates_group::<C, L>(c, self, j, b)
    }
    #[inline(always)]
    fn scalar<C: Channel>(&mut self, c: &C, j: usize, b: usize) {
        gate_scalar(c, self, j, b)
    }
}

impl<'s, T: Float + 'static> Work for Conduct<'s, T> {
    type T = T;
    type As<U: Float + 'static> = Conduct<'s, U>;
    #[inline(always)]
    fn shape(&self) -> (usize, usize, bool) {
        let fits = self.np <= MAX_VARS && self.ng <= MAX_VARS;
        (self.nodes.len(), self.nb, fits)
    }
    #[inline(always)]
    fn group<C: Channel, L: Group<E = T>>(&mut self, c: &C, j: usize, b: usize) {
        cond_group::<C, L>(c, self, j, b)
    }
    #[inline(always)]
    fn scalar<C: Channel>(&mut self, c: &C, j: usize, b: usize) {
        conduct_scalar(c, self, j, b)
    }
}

/// Every node's work: groups of `P::N` batch elements, then of `S::N`, then one by one as `O`
/// (one lane that gives what a lane of `P` and `S` gives).
#[inline(always)]
fn run<C: Channel, P: Group, S: Group<E = P::E>, O: Group<E = P::E>, W: Work<T = P::E>>(
    c: &C,
    w: &mut W,
) {
    let (nodes, nb, _) = w.shape();
    if nodes == 1 && nb == 1 {
        // One element (a point cell at batch 1): the call with constant indices. The loops
        // below, run once, made the same work take half as long again (a prototype of the
        // batch-1 point-cell step: 165 against 110 ns).
        return w.group::<C, O>(c, 0, 0);
    }
    for j in 0..nodes {
        let mut b = 0;
        while b + P::N <= nb {
            w.group::<C, P>(c, j, b);
            b += P::N;
        }
        while b + S::N <= nb {
            w.group::<C, S>(c, j, b);
            b += S::N;
        }
        for b in b..nb {
            w.group::<C, O>(c, j, b);
        }
    }
}

macro_rules! kernels {
    ($e:ty, $reg:ty, $fma:ident, $lanes:ident, $n:expr, $plain:ident, $simd:ident) => {
        /// The portable work in this element type (lanes in an array, the scalar bits).
        fn $plain<C: Channel, W: Work<T = $e>>(c: &C, w: &mut W) {
            run::<C, $lanes<$n>, $lanes<$n>, $lanes<1>, W>(c, w)
        }

        /// The work on AVX2 registers, two at a time, then one, then one lane at a time.
        ///
        /// # Safety
        /// The processor must support AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn $simd<C: Channel, W: Work<T = $e>>(c: &C, w: &mut W) {
            run::<C, Pair<$reg>, $reg, $fma<1>, W>(c, w)
        }
    };
}

kernels!(
    f64,
    F64x4,
    FmaLanes,
    Lanes,
    LANES_F64,
    run_f64,
    run_f64_simd
);
kernels!(
    f32,
    F32x8,
    FmaLanes32,
    Lanes32,
    LANES_F32,
    run_f32,
    run_f32_simd
);

/// `w` in numbers `U`, when its numbers are `U` (the same struct: a cast, no copy).
#[inline(always)]
fn recast<W: Work, U: Float + 'static>(w: &mut W) -> Option<&mut W::As<U>> {
    // SAFETY: `W::T` is `U`, and `W::As<U>` is `W` with `W::T` replaced by `U` (the `Work`
    // impls above), so the two are the same type.
    (TypeId::of::<W::T>() == TypeId::of::<U>())
        .then(|| unsafe { &mut *(w as *mut W).cast::<W::As<U>>() })
}

/// Runs `w` with channel `c`: in `f64`/`f32` on the AVX2 + FMA kernels where the processor has
/// them, else on the portable lanes; in any other number type (dual numbers) element by element.
#[inline(always)]
fn run_work<C: Channel, W: Work>(c: C, w: &mut W) {
    let (nodes, nb, fits) = w.shape();
    if fits {
        if let Some(w) = recast::<W, f64>(w) {
            #[cfg(target_arch = "x86_64")]
            if simd() {
                // SAFETY: the processor has AVX2 and FMA.
                return unsafe { run_f64_simd(&c, w) };
            }
            return run_f64(&c, w);
        }
        if let Some(w) = recast::<W, f32>(w) {
            #[cfg(target_arch = "x86_64")]
            if simd() {
                // SAFETY: the processor has AVX2 and FMA.
                return unsafe { run_f32_simd(&c, w) };
            }
            return run_f32(&c, w);
        }
    }
    for j in 0..nodes {
        for b in 0..nb {
            w.scalar(&c, j, b);
        }
    }
}

// The visitors are references: a `GateStep` moved by value into the kernel was copied with
// wide loads from the narrower stores that built it, a stalled store forwarding per field
// (with the loop below, 45 ns of a 200 ns batch-1 point-cell step).
impl<T: Float + 'static> ChannelVisitor for &mut GateStep<'_, T> {
    type Out = ();

    #[inline(always)]
    fn visit<C: Channel>(self, c: C) {
        run_work(c, self)
    }
}

impl<T: Float + 'static> ChannelVisitor for &mut Conduct<'_, T> {
    type Out = ();

    #[inline(always)]
    fn visit<C: Channel>(self, c: C) {
        run_work(c, self)
    }
}

/// Runs [`GateStep`] on placement kind `kind`.
#[inline]
pub(crate) fn step_gates<T: Float + 'static>(kind: ChannelKind, s: &mut GateStep<'_, T>) {
    kind.visit(s)
}

/// Runs [`Conduct`] on placement kind `kind`.
#[inline]
pub(crate) fn add_conductances<T: Float + 'static>(kind: ChannelKind, s: &mut Conduct<'_, T>) {
    kind.visit(s)
}
