//! The persistent potassium current of the layer-5 pyramidal cell model of Hay et al. (2011),
//! `K_Pst.mod` (K⁺).
//!
//! ```text
//! i = g m² h (V − E_K),     u = V + 10 (the .mod file's 10 mV shift)
//! m∞ = 1 / (1 + e^{−(u+1)/12})
//! τ_m = (1.25 + 175.03 e^{0.026 u}) / q_t     for u < −50
//!       (1.25 + 13 e^{−0.026 u}) / q_t         otherwise
//! h∞ = 1 / (1 + e^{(u+54)/11})         τ_h = (360 + (1010 + 24 (u+55)) e^{−((u+75)/48)²}) / q_t
//! ```
//! `V` in mV, rates in 1/ms, time constants in ms, as in `K_Pst.mod` (ModelDB 139653).
//! `q_t = 2.3^((34 − 21)/10) ≈ 2.953` is the .mod file's fixed temperature factor (it does
//! not follow NEURON's `celsius`: the rates are those of 34 °C at any temperature), so
//! [`SPEC`] has `q10 = 1`.
//! `τ_m` jumps at u = −50 mV (as in the .mod file); both branches are finite everywhere, so the
//! choice (a `select`) has finite derivatives.
//!
//! | parameter | default | unit   | Hay et al. name                        |
//! |-----------|---------|--------|----------------------------------------|
//! | `gbar`    | 0.01    | mS/cm² | `gK_Pstbar` = 0.00001 S/cm² (the .mod default) |
//! | `e`       | −85     | mV     | `ek` (Hay et al.'s value) |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB 139653);
//! Korngreen & Sakmann (2000), J. Physiol. 525:621–639.

use super::{logistic_neg, Calcium, Channel, ChannelSpec, HAY_QT};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`KPst`].
    pub struct Params, const PARAMS {
        /// maximal persistent potassium conductance
        gbar = 0.01, "mS/cm²", [0.0, 10000.0];
        /// potassium reversal potential
        e = -85.0, "mV", [-150.0, 0.0];
    }
}

/// Hay et al.'s `K_Pst`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KPst;

/// Static description of [`KPst`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "k_pst",
    title: "persistent potassium (Hay et al. 2011 K_Pst, Korngreen & Sakmann 2000)",
    gates: &[
        VarSpec::new("m", "1", 0.01098694, (0.0, 1.0), "activation"),
        VarSpec::new("h", "1", 0.5227116, (0.0, 1.0), "inactivation"),
    ],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::None,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (K_Pst.mod, ModelDB 139653)",
};

impl Channel for KPst {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let qt = k::<R>(HAY_QT);
        let u = v + k(10.0);
        let low = (u * k(0.026)).exp_safe() * k(175.03) + k(1.25);
        let high = (-u * k(0.026)).exp_safe() * k(13.0) + k(1.25);
        let gh = (u + k(75.0)) * k(1.0 / 48.0);
        inf[0] = logistic_neg(-(u + k(1.0)) * k(1.0 / 12.0));
        tau[0] = R::select(u.lt(k(-50.0)), low, high) / qt;
        inf[1] = logistic_neg((u + k(54.0)) * k(1.0 / 11.0));
        tau[1] = (k::<R>(360.0)
            + (k::<R>(1010.0) + (u + k(55.0)) * k(24.0)) * (-(gh * gh)).exp_safe())
            / qt;
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
