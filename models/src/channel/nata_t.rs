//! The transient sodium current of the layer-5 pyramidal cell model of Hay et al. (2011),
//! `NaTa_t.mod` (Na⁺).
//!
//! ```text
//! i = g m³ h (V − E_Na)
//! α_m = 0.182 (V + 38) / (1 − e^{−(V+38)/6})      β_m = 0.124 (−V − 38) / (1 − e^{(V+38)/6})
//! α_h = −0.015 (V + 66) / (1 − e^{(V+66)/6})      β_h = −0.015 (−V − 66) / (1 − e^{−(V+66)/6})
//! m∞ = α_m / (α_m + β_m)    τ_m = 1 / ((α_m + β_m) q_t)      (h likewise)
//! ```
//! `V` in mV, rates in 1/ms, time constants in ms, as in `NaTa_t.mod` (ModelDB 139653).
//! `q_t = 2.3^((34 − 21)/10) ≈ 2.953` is the .mod file's fixed temperature factor (it does
//! not follow NEURON's `celsius`: the rates are those of 34 °C at any temperature), so
//! [`SPEC`] has `q10 = 1`.
//! `α_m, β_m` are 0/0 at −38 mV and `α_h, β_h` at −66 mV, where `NaTa_t.mod` shifts `V` by 1e-4 mV;
//! here they are [`vtrap`] (finite limits by series).
//!
//! | parameter | default | unit   | Hay et al. name                        |
//! |-----------|---------|--------|----------------------------------------|
//! | `gbar`    | 0.01    | mS/cm² | `gNaTa_tbar` = 0.00001 S/cm² (the .mod default) |
//! | `e`       | 50      | mV     | `ena` (Hay et al.'s value) |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB 139653);
//! Colbert & Pan (2002), Nat. Neurosci. 5:533–538.

use super::{vtrap, Calcium, Channel, ChannelSpec, HAY_QT};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`NaTaT`].
    pub struct Params, const PARAMS {
        /// maximal transient sodium conductance
        gbar = 0.01, "mS/cm²", [0.0, 10000.0];
        /// sodium reversal potential
        e = 50.0, "mV", [-100.0, 150.0];
    }
}

/// Hay et al.'s `NaTa_t`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NaTaT;

/// Static description of [`NaTaT`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "nata_t",
    title: "transient sodium (Hay et al. 2011 NaTa_t, Colbert & Pan 2002)",
    gates: &[
        VarSpec::new("m", "1", 0.01604355, (0.0, 1.0), "activation"),
        VarSpec::new("h", "1", 0.4584295, (0.0, 1.0), "inactivation"),
    ],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::None,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (NaTa_t.mod, ModelDB 139653)",
};

impl Channel for NaTaT {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let qt = k::<R>(HAY_QT);
        let am = vtrap(v + k(38.0), 6.0) * k(0.182);
        let bm = vtrap(-(v + k(38.0)), 6.0) * k(0.124);
        let ah = vtrap(-(v + k(66.0)), 6.0) * k(0.015);
        let bh = vtrap(v + k(66.0), 6.0) * k(0.015);
        let (sm, sh) = (am + bm, ah + bh);
        inf[0] = am / sm;
        tau[0] = (sm * qt).recip();
        inf[1] = ah / sh;
        tau[1] = (sh * qt).recip();
    }

    #[inline(always)]
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R {
        let p = Params::from_slice(p);
        p.gbar * x[0] * x[0] * x[0] * x[1]
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).e
    }
}
