//! A passive leak: `i = g (V − e)`, no gates. With its defaults it is the leak of NEURON's `hh`
//! (`gl_hh = 0.0003 S/cm²`, `el_hh = −54.3 mV`); NEURON's `pas` is the same current with
//! `g_pas = 0.001 S/cm²` (1 mS/cm²) and `e_pas = −70 mV`, which a cell sets as parameters.
//!
//! | parameter | default | unit   | NEURON name                           |
//! |-----------|---------|--------|---------------------------------------|
//! | `g`       | 0.3     | mS/cm² | `gl_hh` = 0.0003 S/cm² (`g_pas`)      |
//! | `e`       | −54.3   | mV     | `el_hh` (`e_pas`)                     |
//!
//! NEURON's `src/nrnoc/hh.mod` and `passive.mod`.

use super::{Calcium, Channel, ChannelSpec};
use crate::Real;

crate::params! {
    /// Parameters of [`Leak`].
    pub struct Params, const PARAMS {
        /// leak conductance
        g = 0.3, "mS/cm²", [0.0, 1000.0];
        /// leak reversal potential
        e = -54.3, "mV", [-150.0, 100.0];
    }
}

/// The passive leak.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leak;

/// Static description of [`Leak`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "leak",
    title: "passive leak (NEURON hh il / pas)",
    gates: &[],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 6.3,
    calcium: Calcium::None,
    citation: "NEURON hh.mod (il) and passive.mod (pas)",
};

impl Channel for Leak {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, _v: R, _p: &[R], _inf: &mut [R], _tau: &mut [R]) {}

    #[inline(always)]
    fn conductance<R: Real>(&self, _x: &[R], p: &[R]) -> R {
        Params::from_slice(p).g
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).e
    }
}
