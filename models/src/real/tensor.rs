//! [`Tx`]: a [`Real`] over Burn tensors, so that one generic equation also runs on every
//! backend and differentiates under `Autodiff<B>`.
//!
//! A `Tx<B>` is either a constant (`f64`, folded into scalar operations) or a `Copy` handle to a
//! `[batch, nodes]`-broadcastable tensor kept in an arena that lives for one [`scope`] on the
//! current thread. Handles from another scope (or thread) are detected and refused with a panic
//! naming the mistake: an expression never outlives the call that built it.
//!
//! Folding: `c ∘ c` is computed on the host; `t + 0`, `t − 0`, `t · 1`, `t / 1` are `t`;
//! `t · 0` and `0 · t` are the constant 0 (so a switched-off coupling input, passed as the
//! constant 0, removes its whole term, as the hand-written tensor code did); other mixed
//! operations are Burn's scalar operations (`add_scalar`, `mul_scalar`, …).

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::ops::{Add, Div, Mul, Neg, Sub};
use std::sync::atomic::{AtomicU64, Ordering};

use burn::prelude::{Backend, Bool, Tensor};
use burn::tensor::{Element, ElementConversion, TensorCreationOptions};

use super::scalar::Real;

/// A value in a scope's arena: a float or a boolean tensor, or nothing once its last read has
/// moved it out.
enum Slot<B: Backend> {
    Empty,
    Float(T2<B>),
    Mask(Tensor<B, 2, Bool>),
}

/// What an arena slot can hold; lets one `get` serve both kinds.
trait Stored<B: Backend>: Sized + Clone {
    fn wrap(self) -> Slot<B>;
    fn unwrap(slot: Slot<B>) -> Self;
    fn peek(slot: &Slot<B>) -> &Self;
}

impl<B: Backend> Stored<B> for T2<B> {
    fn wrap(self) -> Slot<B> {
        Slot::Float(self)
    }
    fn unwrap(slot: Slot<B>) -> Self {
        match slot {
            Slot::Float(t) => t,
            _ => panic!("{}", MISREAD),
        }
    }
    fn peek(slot: &Slot<B>) -> &Self {
        match slot {
            Slot::Float(t) => t,
            _ => panic!("{}", MISREAD),
        }
    }
}

impl<B: Backend> Stored<B> for Tensor<B, 2, Bool> {
    fn wrap(self) -> Slot<B> {
        Slot::Mask(self)
    }
    fn unwrap(slot: Slot<B>) -> Self {
        match slot {
            Slot::Mask(t) => t,
            _ => panic!("{}", MISREAD),
        }
    }
    fn peek(slot: &Slot<B>) -> &Self {
        match slot {
            Slot::Mask(t) => t,
            _ => panic!("{}", MISREAD),
        }
    }
}

const MISREAD: &str = "a keyed tensor scope read a value more often than the first time";

/// One scope's tensors on this thread.
///
/// The slots are one typed `Vec<Slot<B>>` per scope (boxed once, as `dyn Any`, because the
/// thread-local cannot be generic), taken from and returned to [`SPARE`], so that an operation
/// costs a `Vec` push and no allocation: at batch 1 the tensor engine runs a few hundred small
/// operations per step and a box per operation was measurable.
struct Arena {
    id: u64,
    /// `Vec<Slot<B>>` for the backend of the first tensor pushed in this scope.
    slots: Option<SlotVec>,
    /// Reads per slot: counted in a recording scope, counted down in a replaying one.
    reads: Vec<u32>,
    /// Whether `reads` holds the remaining reads of a replay (from an earlier scope with the
    /// same key), so that a last read moves the tensor instead of cloning it.
    replay: bool,
}

/// Emptied slot vectors and read counters of finished scopes, reused by the next ones.
#[derive(Default)]
struct Spare {
    slots: Vec<SlotVec>,
    reads: Vec<Vec<u32>>,
}

static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static ARENA: RefCell<Arena> = const {
        RefCell::new(Arena { id: 0, slots: None, reads: Vec::new(), replay: false })
    };
    static SPARE: RefCell<Spare> = RefCell::new(Spare::default());
    /// Per key of [`scope_keyed`]: the reads per slot that its first scope recorded.
    static READS: RefCell<HashMap<u64, Vec<u32>, BuildHasherDefault<KeyHasher>>> =
        RefCell::new(HashMap::default());
}

/// A hasher for keys that are already hashes ([`scope_keyed`]'s), and a cheap one (FNV-1a) for
/// building them: a keyed scope is entered a few times per step, where SipHash showed.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x0100_0000_01b3).rotate_left(29) ^ v;
    }
}

/// Runs `f` with a fresh arena for tensor expressions ([`Tx`]); the arena and every tensor in it
/// are dropped when `f` returns. Scopes nest (the outer arena is restored afterwards). Take the
/// tensors out with [`Tx::tensor`] inside `f`.
pub fn scope<T>(f: impl FnOnce() -> T) -> T {
    scope_with(None, f)
}

/// [`scope`] for a computation that runs the same operations every time it is called with the
/// same `key` (a model's drift for one pattern of present coupling inputs, on one backend): the
/// first scope counts how often each intermediate tensor is read, and later ones move each
/// tensor out of the arena at its last read instead of cloning it, so that the backend can
/// reuse a uniquely held buffer in place (as hand-written tensor code does).
///
/// The operations may depend only on which inputs are constants (that is what folding looks
/// at), never on tensor values; the key must tell apart every such pattern.
pub fn scope_keyed<T>(key: u64, f: impl FnOnce() -> T) -> T {
    scope_with(Some(key), f)
}

fn scope_with<T>(key: Option<u64>, f: impl FnOnce() -> T) -> T {
    let id = NEXT_SCOPE.fetch_add(1, Ordering::Relaxed);
    let mut reads = SPARE
        .with(|s| s.borrow_mut().reads.pop())
        .unwrap_or_default();
    reads.clear();
    let replay = key.is_some_and(|k| {
        READS.with(|r| match r.borrow().get(&k) {
            Some(known) => {
                reads.extend_from_slice(known);
                true
            }
            None => false,
        })
    });
    let outer = ARENA.with(|a| {
        std::mem::replace(
            &mut *a.borrow_mut(),
            Arena {
                id,
                slots: None,
                reads,
                replay,
            },
        )
    });
    struct Restore(Option<Arena>, Option<u64>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                let inner = ARENA.with(|a| std::mem::replace(&mut *a.borrow_mut(), outer));
                let Arena {
                    slots, mut reads, ..
                } = inner;
                if let (Some(k), false) = (self.1, self.2) {
                    if !std::thread::panicking() {
                        // The first scope with this key: its counts are kept, not reused.
                        let counted = std::mem::take(&mut reads);
                        READS.with(|r| r.borrow_mut().insert(k, counted));
                    }
                }
                // The tensors are dropped here (outside any borrow of SPARE, since dropping a
                // tensor runs backend code); the emptied vectors go back for the next scope.
                let slots = slots.map(|mut v| {
                    (v.clear)(&mut *v.slots);
                    v
                });
                SPARE.with(|s| {
                    let mut s = s.borrow_mut();
                    s.slots.extend(slots);
                    s.reads.push(reads);
                });
            }
        }
    }
    let _restore = Restore(Some(outer), key, replay);
    f()
}

/// A typed slot vector (`Vec<Slot<B>>`) behind `dyn Any`, with the function that empties it
/// (dropping its tensors) whatever its backend.
struct SlotVec {
    slots: Box<dyn Any>,
    clear: fn(&mut dyn Any),
}

fn clear_typed<B: Backend>(v: &mut dyn Any) {
    if let Some(v) = v.downcast_mut::<Vec<Slot<B>>>() {
        v.clear();
    }
}

/// Runs `f` on this scope's typed slots (taking a spare vector for `B`, or a new one, at the
/// first push).
#[inline]
fn with_slots<B: Backend, R>(a: &mut Arena, f: impl FnOnce(&mut Vec<Slot<B>>) -> R) -> R {
    if a.slots.is_none() {
        let spare = SPARE.with(|s| {
            let mut s = s.borrow_mut();
            let i = s.slots.iter().position(|v| v.slots.is::<Vec<Slot<B>>>())?;
            Some(s.slots.swap_remove(i))
        });
        a.slots = Some(spare.unwrap_or_else(|| SlotVec {
            slots: Box::new(Vec::<Slot<B>>::new()),
            clear: clear_typed::<B>,
        }));
    }
    let v = a
        .slots
        .as_mut()
        .and_then(|v| v.slots.downcast_mut::<Vec<Slot<B>>>())
        .expect("tensor expressions of two backends in one `real::scope`");
    f(v)
}

#[inline]
fn push<B: Backend, T: Stored<B>>(value: T) -> Handle {
    ARENA.with(|a| {
        let mut a = a.borrow_mut();
        assert!(
            a.id != 0,
            "a tensor expression (Tx) was built outside `real::scope`"
        );
        let slot = with_slots::<B, _>(&mut a, |v| {
            v.push(value.wrap());
            v.len() - 1
        });
        if !a.replay {
            a.reads.push(0);
        }
        assert!(
            slot < a.reads.len(),
            "a keyed tensor scope ran other operations than the first time with its key"
        );
        Handle {
            scope: a.id,
            slot: slot as u32,
        }
    })
}

#[inline]
fn get<B: Backend, T: Stored<B>>(h: Handle) -> T {
    ARENA.with(|a| {
        let mut a = a.borrow_mut();
        assert!(
            a.id == h.scope,
            "a tensor expression (Tx) was used outside the `real::scope` that built it"
        );
        let s = h.slot as usize;
        let last = if a.replay {
            let r = &mut a.reads[s];
            *r = r.saturating_sub(1);
            *r == 0
        } else {
            a.reads[s] += 1;
            false
        };
        with_slots::<B, _>(&mut a, |v| {
            let slot = &mut v[s];
            if last {
                T::unwrap(std::mem::replace(slot, Slot::Empty))
            } else {
                T::peek(slot).clone()
            }
        })
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Handle {
    scope: u64,
    slot: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Repr {
    Const(f64),
    Tensor(Handle),
}

/// A tensor expression: a constant or a handle to a `[batch, nodes]`-broadcastable tensor in the
/// current [`scope`]. See the module documentation.
pub struct Tx<B: Backend> {
    repr: Repr,
    _b: PhantomData<fn() -> B>,
}

impl<B: Backend> Clone for Tx<B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Tx<B> {}

impl<B: Backend> std::fmt::Debug for Tx<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.repr {
            Repr::Const(c) => write!(f, "Tx::Const({c})"),
            Repr::Tensor(h) => write!(f, "Tx::Tensor(#{})", h.slot),
        }
    }
}

/// The result of comparing [`Tx`]s: a constant or a handle to a boolean tensor.
pub struct TxMask<B: Backend> {
    repr: MaskRepr,
    _b: PhantomData<fn() -> B>,
}

#[derive(Clone, Copy)]
enum MaskRepr {
    Const(bool),
    Tensor(Handle),
}

impl<B: Backend> Clone for TxMask<B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for TxMask<B> {}

type T2<B> = Tensor<B, 2>;

fn opts<B: Backend>(device: &B::Device) -> TensorCreationOptions<B> {
    (device, <B::FloatElem as Element>::dtype()).into()
}

impl<B: Backend> Tx<B> {
    /// A tensor into the current scope.
    pub fn new(t: T2<B>) -> Self {
        Self::wrap(Repr::Tensor(push::<B, _>(t)))
    }

    /// A constant, rounded to the backend's float type (as a scalar operation would use it), so
    /// that operations between constants, computed on the host, give what the same operations
    /// on tensors of that type give (exactly for `+ − × ÷ √`).
    pub fn constant(v: f64) -> Self {
        let e: B::FloatElem = v.elem();
        Self::wrap(Repr::Const(e.elem()))
    }

    fn wrap(repr: Repr) -> Self {
        Self {
            repr,
            _b: PhantomData,
        }
    }

    /// The constant, if this is one.
    pub fn as_const(self) -> Option<f64> {
        match self.repr {
            Repr::Const(c) => Some(c),
            Repr::Tensor(_) => None,
        }
    }

    /// The tensor, expanded to `shape` if it is smaller (broadcast) or a constant.
    pub fn tensor(self, shape: [usize; 2], device: &B::Device) -> T2<B> {
        match self.repr {
            Repr::Const(c) => Tensor::full(shape, c, opts::<B>(device)),
            Repr::Tensor(h) => {
                let t: T2<B> = get::<B, _>(h);
                if t.dims() == shape {
                    t
                } else {
                    t.expand(shape)
                }
            }
        }
    }

    fn t(h: Handle) -> T2<B> {
        get::<B, _>(h)
    }

    fn unary(self, c: impl FnOnce(f64) -> f64, t: impl FnOnce(T2<B>) -> T2<B>) -> Self {
        match self.repr {
            Repr::Const(v) => Self::constant(c(v)),
            Repr::Tensor(h) => Self::new(t(Self::t(h))),
        }
    }
}

impl<B: Backend> TxMask<B> {
    fn wrap(repr: MaskRepr) -> Self {
        Self {
            repr,
            _b: PhantomData,
        }
    }
}

impl<B: Backend> Add for Tx<B> {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        match (self.repr, o.repr) {
            (Repr::Const(a), Repr::Const(b)) => Self::constant(a + b),
            (Repr::Tensor(_), Repr::Const(0.0)) | (Repr::Const(0.0), Repr::Tensor(_)) => {
                if self.as_const().is_some() {
                    o
                } else {
                    self
                }
            }
            (Repr::Tensor(a), Repr::Const(c)) => Self::new(Self::t(a).add_scalar(c)),
            (Repr::Const(c), Repr::Tensor(b)) => Self::new(Self::t(b).add_scalar(c)),
            (Repr::Tensor(a), Repr::Tensor(b)) => Self::new(Self::t(a) + Self::t(b)),
        }
    }
}

impl<B: Backend> Sub for Tx<B> {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        match (self.repr, o.repr) {
            (Repr::Const(a), Repr::Const(b)) => Self::constant(a - b),
            (Repr::Tensor(_), Repr::Const(0.0)) => self,
            (Repr::Tensor(a), Repr::Const(c)) => Self::new(Self::t(a).sub_scalar(c)),
            (Repr::Const(0.0), Repr::Tensor(b)) => Self::new(Self::t(b).neg()),
            (Repr::Const(c), Repr::Tensor(b)) => Self::new(Self::t(b).neg().add_scalar(c)),
            (Repr::Tensor(a), Repr::Tensor(b)) => Self::new(Self::t(a) - Self::t(b)),
        }
    }
}

impl<B: Backend> Mul for Tx<B> {
    type Output = Self;
    fn mul(self, o: Self) -> Self {
        match (self.repr, o.repr) {
            (Repr::Const(a), Repr::Const(b)) => Self::constant(a * b),
            (Repr::Tensor(_), Repr::Const(0.0)) | (Repr::Const(0.0), Repr::Tensor(_)) => {
                Self::constant(0.0)
            }
            (Repr::Tensor(_), Repr::Const(1.0)) | (Repr::Const(1.0), Repr::Tensor(_)) => {
                if self.as_const().is_some() {
                    o
                } else {
                    self
                }
            }
            (Repr::Tensor(a), Repr::Const(c)) | (Repr::Const(c), Repr::Tensor(a)) => {
                Self::new(Self::t(a).mul_scalar(c))
            }
            (Repr::Tensor(a), Repr::Tensor(b)) => Self::new(Self::t(a) * Self::t(b)),
        }
    }
}

impl<B: Backend> Div for Tx<B> {
    type Output = Self;
    fn div(self, o: Self) -> Self {
        match (self.repr, o.repr) {
            (Repr::Const(a), Repr::Const(b)) => Self::constant(a / b),
            (Repr::Tensor(_), Repr::Const(1.0)) => self,
            (Repr::Tensor(a), Repr::Const(c)) => Self::new(Self::t(a).div_scalar(c)),
            (Repr::Const(0.0), Repr::Tensor(_)) => Self::constant(0.0),
            (Repr::Const(1.0), Repr::Tensor(b)) => Self::new(Self::t(b).recip()),
            (Repr::Const(c), Repr::Tensor(b)) => Self::new(Self::t(b).recip().mul_scalar(c)),
            (Repr::Tensor(a), Repr::Tensor(b)) => Self::new(Self::t(a) / Self::t(b)),
        }
    }
}

impl<B: Backend> Neg for Tx<B> {
    type Output = Self;
    fn neg(self) -> Self {
        self.unary(|v| -v, |t| t.neg())
    }
}

impl<B: Backend> Tx<B> {
    fn cmp(
        self,
        o: Self,
        cc: impl FnOnce(f64, f64) -> bool,
        tc: impl FnOnce(T2<B>, f64) -> Tensor<B, 2, Bool>,
        ct: impl FnOnce(f64, T2<B>) -> Tensor<B, 2, Bool>,
        tt: impl FnOnce(T2<B>, T2<B>) -> Tensor<B, 2, Bool>,
    ) -> TxMask<B> {
        let m = match (self.repr, o.repr) {
            (Repr::Const(a), Repr::Const(b)) => return TxMask::wrap(MaskRepr::Const(cc(a, b))),
            (Repr::Tensor(a), Repr::Const(c)) => tc(Self::t(a), c),
            (Repr::Const(c), Repr::Tensor(b)) => ct(c, Self::t(b)),
            (Repr::Tensor(a), Repr::Tensor(b)) => tt(Self::t(a), Self::t(b)),
        };
        TxMask::wrap(MaskRepr::Tensor(push::<B, _>(m)))
    }
}

impl<B: Backend> Real for Tx<B> {
    type Mask = TxMask<B>;

    fn cst(v: f64) -> Self {
        Self::constant(v)
    }
    fn exp(self) -> Self {
        self.unary(f64::exp, |t| t.exp())
    }
    fn ln(self) -> Self {
        self.unary(f64::ln, |t| t.log())
    }
    fn sqrt(self) -> Self {
        self.unary(f64::sqrt, |t| t.sqrt())
    }
    fn tanh(self) -> Self {
        self.unary(f64::tanh, |t| t.tanh())
    }
    fn sin(self) -> Self {
        self.unary(f64::sin, |t| t.sin())
    }
    fn cos(self) -> Self {
        self.unary(f64::cos, |t| t.cos())
    }
    fn abs(self) -> Self {
        self.unary(f64::abs, |t| t.abs())
    }
    fn recip(self) -> Self {
        self.unary(f64::recip, |t| t.recip())
    }
    fn powi(self, n: i32) -> Self {
        match n {
            1 => self,
            2 => self * self,
            _ => self.unary(|v| v.powi(n), |t| t.powi_scalar(n)),
        }
    }
    fn max(self, o: Self) -> Self {
        match (self.repr, o.repr) {
            (Repr::Const(a), Repr::Const(b)) => Self::constant(a.max(b)),
            (Repr::Tensor(a), Repr::Const(c)) | (Repr::Const(c), Repr::Tensor(a)) => {
                Self::new(Self::t(a).clamp_min(c))
            }
            (Repr::Tensor(a), Repr::Tensor(b)) => Self::new(Self::t(a).max_pair(Self::t(b))),
        }
    }
    fn min(self, o: Self) -> Self {
        match (self.repr, o.repr) {
            (Repr::Const(a), Repr::Const(b)) => Self::constant(a.min(b)),
            (Repr::Tensor(a), Repr::Const(c)) | (Repr::Const(c), Repr::Tensor(a)) => {
                Self::new(Self::t(a).clamp_max(c))
            }
            (Repr::Tensor(a), Repr::Tensor(b)) => Self::new(Self::t(a).min_pair(Self::t(b))),
        }
    }
    fn lt(self, o: Self) -> TxMask<B> {
        self.cmp(
            o,
            |a, b| a < b,
            |t, c| t.lower_elem(c),
            |c, t| t.greater_elem(c),
            |a, b| a.lower(b),
        )
    }
    fn gt(self, o: Self) -> TxMask<B> {
        self.cmp(
            o,
            |a, b| a > b,
            |t, c| t.greater_elem(c),
            |c, t| t.lower_elem(c),
            |a, b| a.greater(b),
        )
    }
    fn select(mask: TxMask<B>, a: Self, b: Self) -> Self {
        let m = match mask.repr {
            MaskRepr::Const(true) => return a,
            MaskRepr::Const(false) => return b,
            MaskRepr::Tensor(h) => get::<B, Tensor<B, 2, Bool>>(h),
        };
        let shape = m.dims();
        let device = m.device();
        let out = match (a.repr, b.repr) {
            (_, Repr::Tensor(_)) => {
                let bt = b.tensor(shape, &device);
                match a.repr {
                    Repr::Const(c) => bt.mask_fill(m, c),
                    Repr::Tensor(_) => bt.mask_where(m, a.tensor(shape, &device)),
                }
            }
            (Repr::Tensor(_), Repr::Const(c)) => {
                a.tensor(shape, &device).mask_fill(m.bool_not(), c)
            }
            (Repr::Const(ca), Repr::Const(cb)) => {
                Tensor::full(shape, cb, opts::<B>(&device)).mask_fill(m, ca)
            }
        };
        Self::new(out)
    }
    fn spike(self, slope: f64) -> Self {
        match self.repr {
            Repr::Const(v) => Self::constant(if v > 0.0 { 1.0 } else { 0.0 }),
            Repr::Tensor(h) => {
                let x = Self::t(h);
                let h = x.clone().greater_elem(0.0).float();
                let s = (x.clone() * slope) / (x.abs() * slope + 1.0) * 0.5 + 0.5;
                Self::new(h + (s.clone() - s.detach()))
            }
        }
    }
}
