//! Membrane channels for multi-compartment cells: one channel per file, its equations, parameter
//! table and citation in the file's documentation. Equations only: nothing here integrates; the
//! cable solver (`neurodiff::cell`) drives a channel through [`Channel`].
//!
//! | name    | channel                                   | gates   | ion  |
//! |---------|-------------------------------------------|---------|------|
//! | `hh`    | NEURON `hh` whole: `hh_na` + `hh_k` + leak| `m,h,n` | Na⁺, K⁺, — |
//! | `hh_na` | NEURON `hh`: Hodgkin–Huxley sodium        | `m, h`  | Na⁺  |
//! | `hh_k`  | NEURON `hh`: Hodgkin–Huxley potassium     | `n`     | K⁺   |
//! | `leak`  | passive leak (NEURON `hh`'s `il`, `pas`)  | —       | —    |
//! | `ih`    | Hay et al. 2011 `Ih` (Kole et al. 2006)   | `m`     | HCN  |
//! | `nata_t`| Hay et al. 2011 `NaTa_t`: transient Na    | `m, h`  | Na⁺  |
//! | `nap_et2`| Hay et al. 2011 `Nap_Et2`: persistent Na | `m, h`  | Na⁺  |
//! | `k_tst` | Hay et al. 2011 `K_Tst`: transient K      | `m, h`  | K⁺   |
//! | `k_pst` | Hay et al. 2011 `K_Pst`: persistent K     | `m, h`  | K⁺   |
//! | `skv3_1`| Hay et al. 2011 `SKv3_1`: Kv3.1           | `m`     | K⁺   |
//! | `im`    | Hay et al. 2011 `Im`: M current           | `m`     | K⁺   |
//! | `ca_hva`| Hay et al. 2011 `Ca_HVA`: high-voltage Ca | `m, h`  | Ca²⁺ |
//! | `ca_lva`| Hay et al. 2011 `Ca_LVAst`: low-voltage Ca| `m, h`  | Ca²⁺ |
//! | `sk_e2` | Hay et al. 2011 `SK_E2`: Ca-activated K   | `z`     | K⁺   |
//!
//! The Hay et al. (2011) set (ModelDB 139653) follows its `.mod` files equation for equation.
//! Its calcium pool `CaDynamics_E2` is not a channel (it carries no current): [`ca_dynamics`]
//! holds its equations, and a channel's [`ChannelSpec::calcium`] says how it meets the pool —
//! the calcium currents fill it (and take its Nernst potential as their reversal where there is
//! one; a fixed `e` elsewhere), `sk_e2`'s gate reads it ([`Channel::gates_ca`]).
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
//! linear in `V` for frozen gates, which is what the backward-Euler cable step uses. The step
//! takes it as [`Channel::drive`], `(g, g E)`, so that a channel of several ions (`hh`) gives
//! `(Σ g, Σ g E)`: `i = g V − g E` all the same.
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

pub mod ca_dynamics;
pub mod ca_hva;
pub mod ca_lva;
pub mod hh;
pub mod hh_k;
pub mod hh_na;
pub mod ih;
pub mod im;
pub mod k_pst;
pub mod k_tst;
pub mod leak;
pub mod nap_et2;
pub mod nata_t;
pub mod sk_e2;
pub mod skv3_1;

/// `q_t = 2.3^((34 − 21)/10)`: the fixed temperature factor of Hay et al.'s (2011) `.mod`
/// files (`NaTa_t`, `Nap_Et2`, `K_Tst`, `K_Pst`, `Im`, `Ca_LVAst`), by which their time
/// constants are divided whatever NEURON's `celsius`.
pub const HAY_QT: f64 = 2.952_882_641_412_121;

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
    /// How the channel meets a compartment's calcium pool ([`ca_dynamics`]).
    pub calcium: Calcium,
    /// Where the equations and values come from.
    pub citation: &'static str,
}

/// A channel's part in its compartment's calcium ([`ca_dynamics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calcium {
    /// None.
    None,
    /// A calcium current: where the compartment has a calcium pool, the current fills it and
    /// the channel's reversal potential is the pool's Nernst potential
    /// ([`ca_dynamics::nernst`]) instead of its parameter `e` (NEURON computes `eca` from `cai`
    /// when a mechanism writes `cai`).
    Current,
    /// Its gates read the calcium concentration ([`Channel::gates_ca`]).
    Reads,
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

    /// [`Channel::gates`] with the compartment's intracellular calcium concentration `cai`
    /// (mM), which a [`Calcium::Reads`] channel's gates depend on; other channels ignore it.
    #[inline(always)]
    fn gates_ca<R: Real>(&self, v: R, cai: R, p: &[R], inf: &mut [R], tau: &mut [R]) {
        let _ = cai;
        self.gates(v, p, inf, tau)
    }

    /// [`Channel::gates_ca`] (or [`Channel::gates`] without `cai`) with each gate's rate
    /// `1/τ` (1/ms, at [`ChannelSpec::q10_celsius`]) in place of `τ`: what the solver's
    /// exponential-Euler update uses, `x ← x∞ + (x − x∞) e^{−dt φ · rate}`. The default takes
    /// the reciprocal of `τ`; a channel whose time constant is itself a reciprocal (the rate
    /// form `τ = 1/(α + β)`) gives `α + β` directly, two divisions fewer per gate.
    #[inline(always)]
    fn gates_rate<R: Real>(&self, v: R, cai: Option<R>, p: &[R], inf: &mut [R], rate: &mut [R]) {
        match cai {
            Some(c) => self.gates_ca(v, c, p, inf, rate),
            None => self.gates(v, p, inf, rate),
        }
        for r in rate.iter_mut() {
            *r = r.recip();
        }
    }

    /// The conductance density `g` (mS/cm²) at gate values `x`.
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R;

    /// The reversal potential `E` (mV).
    fn reversal<R: Real>(&self, p: &[R]) -> R;

    /// The conductance density and its drive, `(g, g E)` (mS/cm², µA/cm²) at gate values `x`:
    /// the current density is `g V − g E`, linear in `V`, which is how the cable step takes
    /// it. The default is [`Channel::conductance`] and its product with
    /// [`Channel::reversal`]; a channel that carries several ions, each with its own reversal
    /// potential (NEURON's `hh`), gives the sums `Σ g` and `Σ g E` instead.
    #[inline(always)]
    fn drive<R: Real>(&self, x: &[R], p: &[R]) -> (R, R) {
        let g = self.conductance(x, p);
        (g, g * self.reversal(p))
    }
}

/// A computation generic over the channel's type, run on a [`ChannelKind`]'s channel by
/// [`ChannelKind::visit`].
pub trait ChannelVisitor {
    /// What the computation returns.
    type Out;
    /// Runs the computation with channel `c`.
    fn visit<C: Channel>(self, c: C) -> Self::Out;
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

/// `1 / (1 + e^{x})`, as [`Real::logistic`]`(−x)`: on numbers and dual numbers
/// `1 / (1 + exp_safe(x))` (one `exp`, about half the cost of `tanh`; finite everywhere), on
/// tensors the `tanh` form.
#[inline(always)]
pub fn logistic_neg<R: Real>(x: R) -> R {
    (-x).logistic()
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

            /// Runs `v` with this kind's channel type: one dispatch, then code monomorphised
            /// for the channel (a solver's loop over compartments and batch elements inside
            /// [`ChannelVisitor::visit`] pays for the `match` once, not per element).
            #[inline(always)]
            pub fn visit<V: ChannelVisitor>(self, v: V) -> V::Out {
                match self {
                    $(ChannelKind::$variant => v.visit($module::$ty),)*
                }
            }

            /// See [`Channel::gates`].
            #[inline(always)]
            pub fn gates<R: Real>(self, v: R, p: &[R], inf: &mut [R], tau: &mut [R]) {
                match self {
                    $(ChannelKind::$variant => $module::$ty.gates(v, p, inf, tau),)*
                }
            }

            /// See [`Channel::gates_ca`].
            #[inline(always)]
            pub fn gates_ca<R: Real>(self, v: R, cai: R, p: &[R], inf: &mut [R], tau: &mut [R]) {
                match self {
                    $(ChannelKind::$variant => $module::$ty.gates_ca(v, cai, p, inf, tau),)*
                }
            }

            /// See [`Channel::gates_rate`].
            #[inline(always)]
            pub fn gates_rate<R: Real>(
                self,
                v: R,
                cai: Option<R>,
                p: &[R],
                inf: &mut [R],
                rate: &mut [R],
            ) {
                match self {
                    $(ChannelKind::$variant => $module::$ty.gates_rate(v, cai, p, inf, rate),)*
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

            /// See [`Channel::drive`].
            #[inline(always)]
            pub fn drive<R: Real>(self, x: &[R], p: &[R]) -> (R, R) {
                match self {
                    $(ChannelKind::$variant => $module::$ty.drive(x, p),)*
                }
            }
        }
    };
}

channels! {
    Hh => hh::Hh,
    HhNa => hh_na::HhNa,
    HhK => hh_k::HhK,
    Leak => leak::Leak,
    Ih => ih::Ih,
    NaTaT => nata_t::NaTaT,
    NapEt2 => nap_et2::NapEt2,
    KTst => k_tst::KTst,
    KPst => k_pst::KPst,
    Skv31 => skv3_1::Skv31,
    Im => im::Im,
    CaHva => ca_hva::CaHva,
    CaLva => ca_lva::CaLva,
    SkE2 => sk_e2::SkE2,
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
