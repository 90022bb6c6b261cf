//! The high-voltage-activated calcium current of the layer-5 pyramidal cell model of Hay et al.
//! (2011),
//! `Ca_HVA.mod` (Ca²⁺).
//!
//! ```text
//! i = g m² h (V − E_Ca)
//! α_m = 0.055 (−27 − V) / (e^{(−27−V)/3.8} − 1)      β_m = 0.94 e^{(−75−V)/17}
//! α_h = 0.000457 e^{(−13−V)/50}                      β_h = 0.0065 / (e^{(−V−15)/28} + 1)
//! x∞ = α / (α + β)        τ_x = 1 / (α + β)          (no temperature factor in the .mod file)
//! ```
//! `V` in mV, rates in 1/ms, time constants in ms, as in `Ca_HVA.mod` (ModelDB 139653).
//! The .mod file has no temperature factor, so [`SPEC`] has `q10 = 1`.
//! `α_m` is 0/0 at −27 mV (shifted by 1e-4 mV in `Ca_HVA.mod`), [`vtrap`] here.
//!
//! | parameter | default | unit   | Hay et al. name                        |
//! |-----------|---------|--------|----------------------------------------|
//! | `gbar`    | 0.01    | mS/cm² | `gCa_HVAbar` = 0.00001 S/cm² (the .mod default) |
//! | `e`       | 132.458 | mV     | `eca`, fixed: NEURON's default `eca` |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB 139653);
//! Reuveni, Friedman, Amitai & Gutnick (1993), J. Neurosci. 13:4609–4621.

use super::{logistic_neg, vtrap, Calcium, Channel, ChannelSpec};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`CaHva`].
    pub struct Params, const PARAMS {
        /// maximal HVA calcium conductance
        gbar = 0.01, "mS/cm²", [0.0, 10000.0];
        /// calcium reversal potential
        e = 132.458, "mV", [-100.0, 250.0];
    }
}

/// Hay et al.'s `Ca_HVA`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaHva;

/// Static description of [`CaHva`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "ca_hva",
    title: "high-voltage-activated calcium (Hay et al. 2011 Ca_HVA, Reuveni et al. 1993)",
    gates: &[
        VarSpec::new("m", "1", 0.0001817531, (0.0, 1.0), "activation"),
        VarSpec::new("h", "1", 0.5807509, (0.0, 1.0), "inactivation"),
    ],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::Current,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (Ca_HVA.mod, ModelDB 139653)",
};

impl Channel for CaHva {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let am = vtrap(v + k(27.0), 3.8) * k(0.055);
        let bm = ((-v - k(75.0)) * k(1.0 / 17.0)).exp_safe() * k(0.94);
        let ah = ((-v - k(13.0)) * k(1.0 / 50.0)).exp_safe() * k(0.000457);
        let bh = logistic_neg(-(v + k(15.0)) * k(1.0 / 28.0)) * k(0.0065);
        let (sm, sh) = (am + bm, ah + bh);
        inf[0] = am / sm;
        tau[0] = sm.recip();
        inf[1] = ah / sh;
        tau[1] = sh.recip();
    }

    #[inline(always)]
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R {
        let p = Params::from_slice(p);
        p.gbar * x[0] * x[0] * x[1]
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).e
    }
}
