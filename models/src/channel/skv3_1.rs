//! The Kv3.1 potassium current of the layer-5 pyramidal cell model of Hay et al. (2011),
//! `SKv3_1.mod` (K⁺).
//!
//! ```text
//! i = g m (V − E_K)
//! m∞ = 1 / (1 + e^{−(V−18.7)/9.7})      τ_m = 4 / (1 + e^{−(V+46.56)/44.14})
//! ```
//! `V` in mV, rates in 1/ms, time constants in ms, as in `SKv3_1.mod` (ModelDB 139653).
//! The .mod file has no temperature factor, so [`SPEC`] has `q10 = 1`.
//!
//! | parameter | default | unit   | Hay et al. name                        |
//! |-----------|---------|--------|----------------------------------------|
//! | `gbar`    | 0.01    | mS/cm² | `gSKv3_1bar` = 0.00001 S/cm² (the .mod default) |
//! | `e`       | −85     | mV     | `ek` (Hay et al.'s value) |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB 139653);
//! Rettig et al. (1992), EMBO J. 11:2473–2486.

use super::{logistic_neg, Calcium, Channel, ChannelSpec};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`Skv31`].
    pub struct Params, const PARAMS {
        /// maximal Kv3.1 conductance
        gbar = 0.01, "mS/cm²", [0.0, 10000.0];
        /// potassium reversal potential
        e = -85.0, "mV", [-150.0, 0.0];
    }
}

/// Hay et al.'s `SKv3_1`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Skv31;

/// Static description of [`Skv31`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "skv3_1",
    title: "Kv3.1 potassium (Hay et al. 2011 SKv3_1, Rettig et al. 1992)",
    gates: &[VarSpec::new(
        "m",
        "1",
        0.0001788354,
        (0.0, 1.0),
        "activation",
    )],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::None,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (SKv3_1.mod, ModelDB 139653)",
};

impl Channel for Skv31 {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        inf[0] = logistic_neg(-(v - k(18.7)) * k(1.0 / 9.7));
        tau[0] = logistic_neg(-(v + k(46.56)) * k(1.0 / 44.14)) * k(4.0);
    }

    #[inline(always)]
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R {
        let p = Params::from_slice(p);
        p.gbar * x[0]
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).e
    }
}
