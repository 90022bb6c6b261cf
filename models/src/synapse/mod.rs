//! Synapses between compartments of cells: one synapse per file, its equations, parameter table
//! and citation in the file's documentation. Equations only: the network engine
//! (`neurodiff::cell::network`) drives a synapse through [`Synapse`].
//!
//! | name         | synapse                                               | states | kind        |
//! |--------------|-------------------------------------------------------|--------|-------------|
//! | `ionotropic` | Jaxley's `IonotropicSynapse` (Abbott & Marder 1998)   | `s`    | conductance |
//! | `tanh_rate`  | Jaxley's `TanhRateSynapse`                            | —      | current     |
//!
//! ## Units
//! Presynaptic and postsynaptic potentials in mV, time in ms, synaptic conductances in µS and
//! currents in nA (µS · mV = nA), as in Jaxley (a point process: not per area).
//!
//! ## How the engine uses a synapse
//! During a step of length `dt` the synapse sees the presynaptic voltage `u` of its delay ago
//! (the engine's ring buffer). Every state `s` obeys `ds/dt = r(u) (s∞(u) − s)`
//! ([`Synapse::kinetics`] gives `s∞` and the rate `r` in 1/ms; a rate rather than a time
//! constant, so a vanishing time constant stays finite on dual numbers); with `u` frozen over
//! the step the update is exact: `s ← s∞ + (s − s∞) e^{−dt r}` (exponential Euler). The
//! postsynaptic membrane current is `g(s, p) (V_post − E(p)) − I(u, p)`
//! ([`Synapse::conductance`], [`Synapse::reversal`], [`Synapse::current`]): a conductance part,
//! linear in `V_post`, which a backward-Euler step takes implicitly, and a current injected
//! independent of `V_post`.

use crate::spec::{ParamSpec, VarSpec};
use crate::Real;

pub mod ionotropic;
pub mod tanh_rate;

/// Static description of a synapse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynapseSpec {
    /// Short name, used in network descriptions (e.g. `ionotropic`).
    pub name: &'static str,
    /// One-line title.
    pub title: &'static str,
    /// The states (`initial`: the steady state at a presynaptic −65 mV with the defaults).
    pub states: &'static [VarSpec],
    /// The parameters; the first is the synapse's weight (its maximal conductance, µS, or
    /// its maximal current, nA).
    pub params: &'static [ParamSpec],
    /// Where the equations and values come from.
    pub citation: &'static str,
}

impl SynapseSpec {
    /// The default parameter values, in table order.
    pub fn defaults(&self) -> Vec<f64> {
        self.params.iter().map(|p| p.default).collect()
    }

    /// The position of parameter `name`.
    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }
}

/// A synapse: its static description and its equations, written once over [`Real`].
pub trait Synapse: Send + Sync + 'static {
    /// The static description.
    const SPEC: &'static SynapseSpec;

    /// Writes each state's steady state `inf[i]` and rate `rate[i]` (1/ms) at presynaptic
    /// potential `v_pre` (mV) and parameters `p`.
    fn kinetics<R: Real>(&self, v_pre: R, p: &[R], inf: &mut [R], rate: &mut [R]);

    /// The conductance (µS) at states `s`; zero for a current synapse.
    fn conductance<R: Real>(&self, s: &[R], p: &[R]) -> R;

    /// The reversal potential of the conductance (mV).
    fn reversal<R: Real>(&self, p: &[R]) -> R;

    /// The current injected into the postsynaptic compartment independent of its voltage (nA,
    /// positive depolarises) at presynaptic potential `v_pre`; zero for a conductance synapse.
    fn current<R: Real>(&self, v_pre: R, p: &[R]) -> R;
}

macro_rules! synapses {
    ($($variant:ident => $module:ident :: $ty:ident,)*) => {
        /// The synapses by name: a `Copy` handle the network engine dispatches on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SynapseKind {
            $(
                #[doc = concat!("[`", stringify!($module), "::", stringify!($ty), "`]")]
                $variant,
            )*
        }

        impl SynapseKind {
            /// Every synapse, in table order.
            pub const ALL: &'static [SynapseKind] = &[$(SynapseKind::$variant),*];

            /// The synapse's static description.
            pub fn spec(self) -> &'static SynapseSpec {
                match self {
                    $(SynapseKind::$variant => <$module::$ty as Synapse>::SPEC,)*
                }
            }

            /// See [`Synapse::kinetics`].
            #[inline(always)]
            pub fn kinetics<R: Real>(self, v_pre: R, p: &[R], inf: &mut [R], rate: &mut [R]) {
                match self {
                    $(SynapseKind::$variant => $module::$ty.kinetics(v_pre, p, inf, rate),)*
                }
            }

            /// See [`Synapse::conductance`].
            #[inline(always)]
            pub fn conductance<R: Real>(self, s: &[R], p: &[R]) -> R {
                match self {
                    $(SynapseKind::$variant => $module::$ty.conductance(s, p),)*
                }
            }

            /// See [`Synapse::reversal`].
            #[inline(always)]
            pub fn reversal<R: Real>(self, p: &[R]) -> R {
                match self {
                    $(SynapseKind::$variant => $module::$ty.reversal(p),)*
                }
            }

            /// See [`Synapse::current`].
            #[inline(always)]
            pub fn current<R: Real>(self, v_pre: R, p: &[R]) -> R {
                match self {
                    $(SynapseKind::$variant => $module::$ty.current(v_pre, p),)*
                }
            }
        }
    };
}

synapses! {
    Ionotropic => ionotropic::Ionotropic,
    TanhRate => tanh_rate::TanhRate,
}

impl SynapseKind {
    /// The synapse called `name`.
    pub fn find(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.spec().name == name)
    }

    /// The names of all synapses, comma-separated (for error messages).
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|c| c.spec().name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The number of states.
    pub fn n_states(self) -> usize {
        self.spec().states.len()
    }
}
