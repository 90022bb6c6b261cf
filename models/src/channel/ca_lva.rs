//! The low-voltage-activated calcium current of the layer-5 pyramidal cell model of Hay et al.
//! (2011),
//! `Ca_LVAst.mod` (Ca²⁺).
//!
//! ```text
//! i = g m² h (V − E_Ca),     u = V + 10 (the .mod file's 10 mV shift)
//! m∞ = 1 / (1 + e^{−(u+30)/6})         τ_m = (5 + 20 / (1 + e^{(u+25)/5})) / q_t
//! h∞ = 1 / (1 + e^{(u+80)/6.4})        τ_h = (20 + 50 / (1 + e^{(u+40)/7})) / q_t
//! ```
//! `V` in mV, rates in 1/ms, time constants in ms, as in `Ca_LVAst.mod` (ModelDB 139653).
//! `q_t = 2.3^((34 − 21)/10) ≈ 2.953` is the .mod file's fixed temperature factor (it does
//! not follow NEURON's `celsius`: the rates are those of 34 °C at any temperature), so
//! [`SPEC`] has `q10 = 1`.
//!
//! | parameter | default | unit   | Hay et al. name                        |
//! |-----------|---------|--------|----------------------------------------|
//! | `gbar`    | 0.01    | mS/cm² | `gCa_LVAstbar` = 0.00001 S/cm² (the .mod default) |
//! | `e`       | 132.458 | mV     | `eca`, fixed: NEURON's default `eca` |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB 139653);
//! Avery & Johnston (1996), J. Neurosci. 16:5567–5582; Randall & Tsien (1997), Neuropharmacology
//! 36:879–893.

use super::{logistic_neg, Calcium, Channel, ChannelSpec, HAY_QT};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`CaLva`].
    pub struct Params, const PARAMS {
        /// maximal LVA calcium conductance
        gbar = 0.01, "mS/cm²", [0.0, 10000.0];
        /// calcium reversal potential
        e = 132.458, "mV", [-100.0, 250.0];
    }
}

/// Hay et al.'s `Ca_LVAst`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaLva;

/// Static description of [`CaLva`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "ca_lva",
    title: "low-voltage-activated calcium (Hay et al. 2011 Ca_LVAst, Avery & Johnston 1996)",
    gates: &[
        VarSpec::new("m", "1", 0.01526715, (0.0, 1.0), "activation"),
        VarSpec::new("h", "1", 0.01971913, (0.0, 1.0), "inactivation"),
    ],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::Current,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (Ca_LVAst.mod, ModelDB 139653)",
};

impl Channel for CaLva {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let qt = k::<R>(HAY_QT);
        let u = v + k(10.0);
        inf[0] = logistic_neg(-(u + k(30.0)) * k(1.0 / 6.0));
        tau[0] = (k::<R>(5.0) + logistic_neg((u + k(25.0)) * k(0.2)) * k(20.0)) / qt;
        inf[1] = logistic_neg((u + k(80.0)) * k(1.0 / 6.4));
        tau[1] = (k::<R>(20.0) + logistic_neg((u + k(40.0)) * k(1.0 / 7.0)) * k(50.0)) / qt;
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
