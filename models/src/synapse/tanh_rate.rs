//! Jaxley's `TanhRateSynapse`: a stateless current set by the presynaptic potential.
//!
//! ```text
//! I_in = gs · tanh((u − x_offset) · slope)      (nA into the postsynaptic compartment)
//! ```
//! Jaxley returns the membrane (outward) current `−gs tanh(…)`; here the same current is
//! written as injected (inward positive). It does not depend on the postsynaptic potential, so
//! it enters the right-hand side of the voltage step only.
//!
//! | parameter  | default | unit | Jaxley name                |
//! |------------|---------|------|----------------------------|
//! | `gs`       | 1e-4    | nA   | `TanhRateSynapse_gS`       |
//! | `x_offset` | −70     | mV   | `TanhRateSynapse_x_offset` |
//! | `slope`    | 1       | 1/mV | `TanhRateSynapse_slope`    |
//!
//! `gs` may be negative (an inhibitory current). Jaxley `jaxley/synapses/tanh_rate.py`
//! (Deistler et al. 2025).

use super::{Synapse, SynapseSpec};
use crate::{k, Real};

crate::params! {
    /// Parameters of [`TanhRate`].
    pub struct Params, const PARAMS {
        /// maximal current (the weight; negative inhibits)
        gs = 1e-4, "nA", [-1000.0, 1000.0];
        /// presynaptic potential of zero current
        x_offset = -70.0, "mV", [-150.0, 100.0];
        /// gain
        slope = 1.0, "1/mV", [-100.0, 100.0];
    }
}

/// The tanh rate synapse.
#[derive(Debug, Clone, Copy, Default)]
pub struct TanhRate;

/// Static description of [`TanhRate`].
pub const SPEC: SynapseSpec = SynapseSpec {
    name: "tanh_rate",
    title: "tanh rate synapse (Jaxley TanhRateSynapse)",
    states: &[],
    params: PARAMS,
    citation: "Jaxley TanhRateSynapse (Deistler et al. 2025, Nat. Methods)",
};

impl Synapse for TanhRate {
    const SPEC: &'static SynapseSpec = &SPEC;

    #[inline(always)]
    fn kinetics<R: Real>(&self, _v_pre: R, _p: &[R], _inf: &mut [R], _rate: &mut [R]) {}

    #[inline(always)]
    fn conductance<R: Real>(&self, _s: &[R], _p: &[R]) -> R {
        k(0.0)
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, _p: &[R]) -> R {
        k(0.0)
    }

    #[inline(always)]
    fn current<R: Real>(&self, v_pre: R, p: &[R]) -> R {
        let q = Params::from_slice(p);
        q.gs * ((v_pre - q.x_offset) * q.slope).tanh()
    }
}
