//! The persistent sodium current of the layer-5 pyramidal cell model of Hay et al. (2011),
//! `Nap_Et2.mod` (Na⁺).
//!
//! ```text
//! i = g m³ h (V − E_Na)
//! m∞ = 1 / (1 + e^{−(V+52.6)/4.6})      τ_m = 6 / ((α_m + β_m) q_t)   (α_m, β_m of NaTa_t)
//! h∞ = 1 / (1 + e^{(V+48.8)/10})        τ_h = 1 / ((α_h + β_h) q_t)
//! α_h = −2.88e-6 (V + 17) / (1 − e^{(V+17)/4.63})      β_h = 6.94e-6 (V + 64.4) / (1 −
//! e^{−(V+64.4)/2.63})
//! ```
//! `V` in mV, rates in 1/ms, time constants in ms, as in `Nap_Et2.mod` (ModelDB 139653).
//! `q_t = 2.3^((34 − 21)/10) ≈ 2.953` is the .mod file's fixed temperature factor (it does
//! not follow NEURON's `celsius`: the rates are those of 34 °C at any temperature), so
//! [`SPEC`] has `q10 = 1`.
//! The 0/0 points of the rates (−38, −17, −64.4 mV), which `Nap_Et2.mod` shifts by 1e-4 mV, are
//! [`vtrap`] here.
//!
//! | parameter | default | unit   | Hay et al. name                        |
//! |-----------|---------|--------|----------------------------------------|
//! | `gbar`    | 0.01    | mS/cm² | `gNap_Et2bar` = 0.00001 S/cm² (the .mod default) |
//! | `e`       | 50      | mV     | `ena` (Hay et al.'s value) |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB 139653);
//! Magistretti & Alonso (1999), J. Gen. Physiol. 114:491–509.

use super::{logistic_neg, vtrap, Calcium, Channel, ChannelSpec, HAY_QT};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`NapEt2`].
    pub struct Params, const PARAMS {
        /// maximal persistent sodium conductance
        gbar = 0.01, "mS/cm²", [0.0, 10000.0];
        /// sodium reversal potential
        e = 50.0, "mV", [-100.0, 150.0];
    }
}

/// Hay et al.'s `Nap_Et2`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NapEt2;

/// Static description of [`NapEt2`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "nap_et2",
    title: "persistent sodium (Hay et al. 2011 Nap_Et2, Magistretti & Alonso 1999)",
    gates: &[
        VarSpec::new("m", "1", 0.0632304, (0.0, 1.0), "activation"),
        VarSpec::new("h", "1", 0.8347951, (0.0, 1.0), "inactivation"),
    ],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::None,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (Nap_Et2.mod, ModelDB 139653)",
};

impl Channel for NapEt2 {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let qt = k::<R>(HAY_QT);
        let am = vtrap(v + k(38.0), 6.0) * k(0.182);
        let bm = vtrap(-(v + k(38.0)), 6.0) * k(0.124);
        let ah = vtrap(-(v + k(17.0)), 4.63) * k(2.88e-6);
        let bh = vtrap(v + k(64.4), 2.63) * k(6.94e-6);
        inf[0] = logistic_neg(-(v + k(52.6)) * k(1.0 / 4.6));
        tau[0] = k::<R>(6.0) / ((am + bm) * qt);
        inf[1] = logistic_neg((v + k(48.8)) * k(0.1));
        tau[1] = ((ah + bh) * qt).recip();
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
