//! The transient potassium current of the layer-5 pyramidal cell model of Hay et al. (2011),
//! `K_Tst.mod` (K⁺).
//!
//! ```text
//! i = g m⁴ h (V − E_K),     u = V + 10 (the .mod file's 10 mV shift)
//! m∞ = 1 / (1 + e^{−u/19})             τ_m = (0.34 + 0.92 e^{−((u+71)/59)²}) / q_t
//! h∞ = 1 / (1 + e^{(u+66)/10})         τ_h = (8 + 49 e^{−((u+73)/23)²}) / q_t
//! ```
//! `V` in mV, rates in 1/ms, time constants in ms, as in `K_Tst.mod` (ModelDB 139653).
//! `q_t = 2.3^((34 − 21)/10) ≈ 2.953` is the .mod file's fixed temperature factor (it does
//! not follow NEURON's `celsius`: the rates are those of 34 °C at any temperature), so
//! [`SPEC`] has `q10 = 1`.
//!
//! | parameter | default | unit   | Hay et al. name                        |
//! |-----------|---------|--------|----------------------------------------|
//! | `gbar`    | 0.01    | mS/cm² | `gK_Tstbar` = 0.00001 S/cm² (the .mod default) |
//! | `e`       | −85     | mV     | `ek` (Hay et al.'s value) |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB 139653);
//! Korngreen & Sakmann (2000), J. Physiol. 525:621–639.

use super::{logistic_neg, Calcium, Channel, ChannelSpec, HAY_QT};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`KTst`].
    pub struct Params, const PARAMS {
        /// maximal transient potassium conductance
        gbar = 0.01, "mS/cm²", [0.0, 10000.0];
        /// potassium reversal potential
        e = -85.0, "mV", [-150.0, 0.0];
    }
}

/// Hay et al.'s `K_Tst`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KTst;

/// Static description of [`KTst`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "k_tst",
    title: "transient potassium (Hay et al. 2011 K_Tst, Korngreen & Sakmann 2000)",
    gates: &[
        VarSpec::new("m", "1", 0.05241435, (0.0, 1.0), "activation"),
        VarSpec::new("h", "1", 0.2497399, (0.0, 1.0), "inactivation"),
    ],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::None,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (K_Tst.mod, ModelDB 139653)",
};

impl Channel for KTst {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let qt = k::<R>(HAY_QT);
        let u = v + k(10.0);
        let gm = (u + k(71.0)) * k(1.0 / 59.0);
        let gh = (u + k(73.0)) * k(1.0 / 23.0);
        inf[0] = logistic_neg(-u * k(1.0 / 19.0));
        tau[0] = (k::<R>(0.34) + (-(gm * gm)).exp_safe() * k(0.92)) / qt;
        inf[1] = logistic_neg((u + k(66.0)) * k(0.1));
        tau[1] = (k::<R>(8.0) + (-(gh * gh)).exp_safe() * k(49.0)) / qt;
    }

    #[inline(always)]
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R {
        let p = Params::from_slice(p);
        {
            let m2 = x[0] * x[0];
            p.gbar * m2 * m2 * x[1]
        }
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).e
    }
}
