//! The muscarinic potassium M current current of the layer-5 pyramidal cell model of Hay et al.
//! (2011),
//! `Im.mod` (K⁺).
//!
//! ```text
//! i = g m (V − E_K)
//! α = 3.3e-3 e^{0.1 (V+35)}      β = 3.3e-3 e^{−0.1 (V+35)}
//! m∞ = α / (α + β)               τ_m = 1 / ((α + β) q_t)
//! ```
//! `V` in mV, rates in 1/ms, time constants in ms, as in `Im.mod` (ModelDB 139653).
//! `q_t = 2.3^((34 − 21)/10) ≈ 2.953` is the .mod file's fixed temperature factor (it does
//! not follow NEURON's `celsius`: the rates are those of 34 °C at any temperature), so
//! [`SPEC`] has `q10 = 1`.
//!
//! | parameter | default | unit   | Hay et al. name                        |
//! |-----------|---------|--------|----------------------------------------|
//! | `gbar`    | 0.01    | mS/cm² | `gImbar` = 0.00001 S/cm² (the .mod default) |
//! | `e`       | −85     | mV     | `ek` (Hay et al.'s value) |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB 139653);
//! Adams, Brown & Constanti (1982), J. Physiol. 330:537–572.

use super::{Calcium, Channel, ChannelSpec, HAY_QT};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`Im`].
    pub struct Params, const PARAMS {
        /// maximal M conductance
        gbar = 0.01, "mS/cm²", [0.0, 10000.0];
        /// potassium reversal potential
        e = -85.0, "mV", [-150.0, 0.0];
    }
}

/// Hay et al.'s `Im`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Im;

/// Static description of [`Im`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "im",
    title: "muscarinic potassium M current (Hay et al. 2011 Im, Adams et al. 1982)",
    gates: &[VarSpec::new(
        "m",
        "1",
        0.002472623,
        (0.0, 1.0),
        "activation",
    )],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::None,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (Im.mod, ModelDB 139653)",
};

impl Channel for Im {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let x = (v + k(35.0)) * k(0.1);
        let a = x.exp_safe() * k(3.3e-3);
        let b = (-x).exp_safe() * k(3.3e-3);
        let s = a + b;
        inf[0] = a / s;
        tau[0] = (s * k(HAY_QT)).recip();
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
