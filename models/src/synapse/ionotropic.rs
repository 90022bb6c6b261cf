//! Jaxley's `IonotropicSynapse`: a transmitter-gated conductance whose open fraction `s` relaxes
//! to a sigmoid of the presynaptic potential (Abbott & Marder 1998).
//!
//! ```text
//! s∞(u) = 1 / (1 + e^{(v_th − u)/δ})        τ_s = (1 − s∞) / k₋      (ms)
//! ds/dt = (s∞ − s) / τ_s                   i_post = gs · s · (V_post − e_syn)   (nA)
//! ```
//! As a rate, `1/τ_s = k₋ (1 + e^{(u − v_th)/δ})`: finite at every `u` (the exponential is
//! guarded), where Jaxley divides by `1 − s∞`. One step of exponential Euler with `u` frozen is
//! Jaxley's `update_states` exactly (`s ← s e^{−dt/τ} + s∞ (1 − e^{−dt/τ})`). Jaxley starts
//! `s` at 0.2; the engine here starts it at its steady state for the presynaptic `v_init`
//! (as NEURON's `finitialize` does gates), so a network at rest stays at rest.
//!
//! | parameter | default | unit | Jaxley name              |
//! |-----------|---------|------|--------------------------|
//! | `gs`      | 1e-4    | µS   | `IonotropicSynapse_gS`   |
//! | `e_syn`   | 0       | mV   | `IonotropicSynapse_e_syn`|
//! | `k_minus` | 0.025   | 1/ms | `IonotropicSynapse_k_minus` |
//! | `v_th`    | −35     | mV   | `IonotropicSynapse_v_th` |
//! | `delta`   | 10      | mV   | `IonotropicSynapse_delta`|
//!
//! Jaxley `jaxley/synapses/ionotropic.py` (Deistler et al. 2025); L. F. Abbott and E. Marder,
//! "Modeling small networks", in Methods in Neuronal Modeling (Koch & Segev, eds.), MIT Press
//! 1998.

use super::{Synapse, SynapseSpec};
use crate::channel::logistic_neg;
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`Ionotropic`].
    pub struct Params, const PARAMS {
        /// maximal conductance (the weight)
        gs = 1e-4, "µS", [0.0, 1000.0];
        /// reversal potential
        e_syn = 0.0, "mV", [-150.0, 100.0];
        /// unbinding rate
        k_minus = 0.025, "1/ms", [1e-6, 1000.0];
        /// half-activation presynaptic potential
        v_th = -35.0, "mV", [-150.0, 100.0];
        /// steepness of the activation
        delta = 10.0, "mV", [1e-3, 1000.0];
    }
}

/// The ionotropic synapse.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ionotropic;

/// Static description of [`Ionotropic`].
pub const SPEC: SynapseSpec = SynapseSpec {
    name: "ionotropic",
    title: "ionotropic conductance synapse (Jaxley IonotropicSynapse)",
    states: &[VarSpec::new(
        "s",
        "1",
        0.047_425_873,
        (0.0, 1.0),
        "open fraction of the postsynaptic receptors",
    )],
    params: PARAMS,
    citation: "Jaxley IonotropicSynapse (Deistler et al. 2025, Nat. Methods); Abbott & Marder \
               (1998) Modeling small networks, in Methods in Neuronal Modeling, MIT Press",
};

impl Synapse for Ionotropic {
    const SPEC: &'static SynapseSpec = &SPEC;

    #[inline(always)]
    fn kinetics<R: Real>(&self, v_pre: R, p: &[R], inf: &mut [R], rate: &mut [R]) {
        let q = Params::from_slice(p);
        let x = (v_pre - q.v_th) / q.delta;
        // s∞ = 1/(1 + e^{−x}), written without overflow.
        inf[0] = logistic_neg(-x);
        rate[0] = q.k_minus * (k::<R>(1.0) + x.exp_safe());
    }

    #[inline(always)]
    fn conductance<R: Real>(&self, s: &[R], p: &[R]) -> R {
        Params::from_slice(p).gs * s[0]
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).e_syn
    }

    #[inline(always)]
    fn current<R: Real>(&self, _v_pre: R, _p: &[R]) -> R {
        k(0.0)
    }
}
