//! The hyperpolarisation-activated cation current `Ih` of the layer-5 pyramidal cell model of
//! Hay et al. (2011), from Kole, Hallermann & Stuart (2006).
//!
//! ```text
//! i_h = g_h m (V − E_h)
//! α_m = 0.001 · 6.43 (V + 154.9) / (e^{(V+154.9)/11.9} − 1)      β_m = 0.001 · 193 e^{V/33.1}
//! m∞ = α / (α + β)        τ_m = 1 / (α + β)                         (ms)
//! ```
//! `V` in mV, rates in 1/ms, as in Hay et al.'s `Ih.mod` (ModelDB 139653), which has no
//! temperature factor (`q10 = 1`). `α_m` is singular (0/0) at −154.9 mV, where `Ih.mod` shifts
//! `V` by 1e-4 mV; here it is [`vtrap`] (the limit `0.001 · 6.43 · 11.9`, by its series).
//!
//! | parameter | default | unit   | Hay et al. name                  |
//! |-----------|---------|--------|----------------------------------|
//! | `gbar`    | 0.01    | mS/cm² | `gIhbar` = 0.00001 S/cm²         |
//! | `e`       | −45     | mV     | `ehcn`                           |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107; Kole, Hallermann
//! & Stuart (2006), J. Neurosci. 26:1677–1687.

use super::{vtrap, Calcium, Channel, ChannelSpec};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`Ih`].
    pub struct Params, const PARAMS {
        /// maximal h conductance
        gbar = 0.01, "mS/cm²", [0.0, 1000.0];
        /// h-current reversal potential
        e = -45.0, "mV", [-100.0, 50.0];
    }
}

/// The Hay et al. 2011 `Ih` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ih;

/// Static description of [`Ih`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "ih",
    title: "hyperpolarisation-activated cation current (Hay et al. 2011, Kole et al. 2006)",
    gates: &[VarSpec::new(
        "m",
        "1",
        0.011_059_2,
        (0.0, 1.0),
        "activation",
    )],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::None,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (Ih.mod); Kole et al. (2006) \
               J Neurosci 26:1677",
};

/// `[α_m, β_m]` at `v` (mV), 1/ms.
#[inline(always)]
pub fn rates<R: Real>(v: R) -> [R; 2] {
    // (V+154.9)/(e^{(V+154.9)/11.9} − 1) = y/(1 − e^{−y/11.9}) with y = −(V + 154.9).
    [
        vtrap(-(v + k(154.9)), 11.9) * k(0.001 * 6.43),
        (v * k(1.0 / 33.1)).exp_safe() * k(0.001 * 193.0),
    ]
}

impl Channel for Ih {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let [a, b] = rates(v);
        let s = a + b;
        inf[0] = a / s;
        tau[0] = s.recip();
    }

    #[inline(always)]
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R {
        Params::from_slice(p).gbar * x[0]
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).e
    }
}
