//! Membrane channels for multi-compartment cells: one channel per file, its equations, parameter
//! table and citation in the file's documentation. Equations only: nothing here integrates; the
//! cable solver (`neurodiff::cell`) drives a channel through [`Channel`].
//!
//! | name    | channel                                   | gates   | ion  |
//! |---------|-------------------------------------------|---------|------|
//! | `hh_na` | NEURON `hh`: Hodgkin–Huxley sodium        | `m, h`  | Na⁺  |
//! | `hh_k`  | NEURON `hh`: Hodgkin–Huxley potassium     | `n`     | K⁺   |
//! | `leak`  | passive leak (NEURON `hh`'s `il`, `pas`)  | —       | —    |
//! | `ih`    | Hay et al. 2011 `Ih` (Kole et al. 2006)   | `m`     | HCN  |
//!
//! ## Units
//! Membrane potential `V` in mV, time in ms, conductances in mS/cm² (NEURON's S/cm² × 1000), so
//! a current density `g (V − E)` is in µA/cm² (NEURON's mA/cm² × 1000).
//!
//! ## How a solver uses a channel
//! Every gate `x` obeys `dx/dt = (x∞(V) − x) / τ(V)` ([`Channel::gates`] gives `x∞` and `τ` at
//! the reference temperature). With the channel's temperature factor
//! `φ = q10^((celsius − T_ref)/10)` ([`ChannelSpec::temperature_factor`]) the time constant is
//! `τ / φ`. For `V` frozen over a step the gate update is exact (exponential Euler,
//! Rush–Larsen): `x ← x∞ + (x − x∞) e^{−dt φ/τ}`. The channel's current density is
//! `i = g(x, p) (V − E(p))` with [`Channel::conductance`] and [`Channel::reversal`]; it is
//! linear in `V` for frozen gates, which is what the backward-Euler cable step uses.
//!
//! ## Guarded exponentials
//! Every exponential goes through [`Real::exp_safe`], whose argument is clamped at
//! [`crate::real::EXP_MAX`] = 80 (`e^80 ≈ 5.5e34`, finite in `f32`), so no rate overflows in
//! `f32` at any voltage; the removable singularities `y / (1 − e^{−y/c})` are evaluated by their
//! Taylor series near `y = 0` ([`vtrap`]), so rates are finite (and differentiable) everywhere.
//!
//! ## Adding a channel
//! One file `channel/<name>.rs` (doc comment with equations, parameter table with units and
//! sources; `params!` block; `SPEC: ChannelSpec`; `impl Channel`) and one line in the
//! `channels!` list below.

use crate::spec::{ParamSpec, VarSpec};
use crate::{k, Real};

pub mod hh_k;
pub mod hh_na;
pub mod ih;
pub mod leak;

/// Static description of a channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelSpec {
    /// Short name, used in cell configurations (e.g. `hh_na`).
    pub name: &'static str,
    /// One-line title.
    pub title: &'static str,
    /// The gates (dimensionless, in `[0, 1]`); `initial` is the steady state at −65 mV.
    pub gates: &'static [VarSpec],
    /// The parameters (the maximal conductance first, then the reversal potential).
    pub params: &'static [ParamSpec],
    /// The rates' `Q10` (1 when the channel has no temperature dependence).
    pub q10: f64,
    /// The temperature at which [`Channel::gates`] gives the time constants, °C.
    pub q10_celsius: f64,
    /// Where the equations and values come from.
    pub citation: &'static str,
}

impl ChannelSpec {
    /// `φ = q10^((celsius − q10_celsius)/10)`: the factor the rates are multiplied by (the time
    /// constants divided by) at temperature `celsius` (°C). NEURON's `hh` uses `q10 = 3` at
    /// 6.3 °C, so its rates are Hodgkin & Huxley's at NEURON's default `celsius = 6.3`.
    pub fn temperature_factor(&self, celsius: f64) -> f64 {
        self.q10.powf((celsius - self.q10_celsius) / 10.0)
    }

    /// The default parameter values, in table order.
    pub fn defaults(&self) -> Vec<f64> {
        self.params.iter().map(|p| p.default).collect()
    }

    /// The position of parameter `name`.
    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }
}

/// A channel: its static description and its equations, written once over [`Real`].
pub trait Channel: Send + Sync + 'static {
    /// The static description.
    const SPEC: &'static ChannelSpec;

    /// Writes each gate's steady state `inf[g]` (1) and time constant `tau[g]` (ms, at
    /// [`ChannelSpec::q10_celsius`]) at membrane potential `v` (mV) and parameters `p`.
    fn gates<R: Real>(&self, v: R, p: &[R], inf: &mut [R], tau: &mut [R]);

    /// The conductance density `g` (mS/cm²) at gate values `x`.
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R;

    /// The reversal potential `E` (mV).
    fn reversal<R: Real>(&self, p: &[R]) -> R;
}

/// `y / (1 − e^{−y/c})`, finite everywhere: its limit `c` at `y = 0` is reached by the series
/// `c (1 + z/2 + z²/12 − z⁴/720)` with `z = y/c` for `|z| < 1e-2` (first omitted term below 4e-17
/// relative), the direct form elsewhere with a guarded exponential. Both branches are finite
/// where they are not chosen (the "double where"), so gradients on tensors are finite too.
/// NEURON's `vtrap(x, y) = x / (e^{x/y} − 1)` is `vtrap(−x, y)` here.
#[inline(always)]
pub fn vtrap<R: Real>(y: R, c: f64) -> R {
    let z = y * k(1.0 / c);
    let small = z.abs().lt(k(1e-2));
    let z_safe = R::select(small, k(1.0), z);
    let y_safe = R::select(small, k(c), y);
    let direct = y_safe / (k::<R>(1.0) - (-z_safe).exp_safe());
    let z2 = z * z;
    let series = (k::<R>(1.0) + z * k(0.5) + z2 * k(1.0 / 12.0) - z2 * z2 * k(1.0 / 720.0)) * k(c);
    R::select(small, series, direct)
}

/// `1 / (1 + e^{x})` written as `(1 − tanh(x/2))/2`: it cannot overflow.
#[inline(always)]
pub fn logistic_neg<R: Real>(x: R) -> R {
    let half = k::<R>(0.5);
    half - half * (half * x).tanh()
}

macro_rules! channels {
    ($($variant:ident => $module:ident :: $ty:ident,)*) => {
        /// The channels by name: a `Copy` handle the cable solver dispatches on (a `match`,
        /// inlined per channel), so a cell holds a list of kinds rather than trait objects.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ChannelKind {
            $(
                #[doc = concat!("[`", stringify!($module), "::", stringify!($ty), "`]")]
                $variant,
            )*
        }

        impl ChannelKind {
            /// Every channel, in table order.
            pub const ALL: &'static [ChannelKind] = &[$(ChannelKind::$variant),*];

            /// The channel's static description.
            pub fn spec(self) -> &'static ChannelSpec {
                match self {
                    $(ChannelKind::$variant => <$module::$ty as Channel>::SPEC,)*
                }
            }

            /// See [`Channel::gates`].
            #[inline(always)]
            pub fn gates<R: Real>(self, v: R, p: &[R], inf: &mut [R], tau: &mut [R]) {
                match self {
                    $(ChannelKind::$variant => $module::$ty.gates(v, p, inf, tau),)*
                }
            }

            /// See [`Channel::conductance`].
            #[inline(always)]
            pub fn conductance<R: Real>(self, x: &[R], p: &[R]) -> R {
                match self {
                    $(ChannelKind::$variant => $module::$ty.conductance(x, p),)*
                }
            }

            /// See [`Channel::reversal`].
            #[inline(always)]
            pub fn reversal<R: Real>(self, p: &[R]) -> R {
                match self {
                    $(ChannelKind::$variant => $module::$ty.reversal(p),)*
                }
            }
        }
    };
}

channels! {
    HhNa => hh_na::HhNa,
    HhK => hh_k::HhK,
    Leak => leak::Leak,
    Ih => ih::Ih,
}

impl ChannelKind {
    /// The channel called `name`.
    pub fn find(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.spec().name == name)
    }

    /// The names of all channels, comma-separated (for error messages).
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|c| c.spec().name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The number of gates.
    pub fn n_gates(self) -> usize {
        self.spec().gates.len()
    }
}

/// The steady state of every gate of `kind` at `v` (mV), in `f64` (initialisation).
pub fn steady_state(kind: ChannelKind, v: f64, p: &[f64]) -> Vec<f64> {
    let n = kind.n_gates();
    let (mut inf, mut tau) = (vec![0.0; n], vec![0.0; n]);
    kind.gates(v, p, &mut inf, &mut tau);
    inf
}
