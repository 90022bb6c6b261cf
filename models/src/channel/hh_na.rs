//! The sodium current of NEURON's `hh` mechanism (Hodgkin & Huxley 1952), as a channel of its
//! own so that it can be placed on any part of a cell.
//!
//! ```text
//! i_Na = g_Na m³ h (V − E_Na)
//! α_m = 0.1 (V + 40) / (1 − e^{−(V+40)/10})      β_m = 4 e^{−(V+65)/18}
//! α_h = 0.07 e^{−(V+65)/20}                       β_h = 1 / (1 + e^{−(V+35)/10})
//! x∞ = α / (α + β)        τ_x = 1 / (α + β)          (ms, at 6.3 °C)
//! ```
//! `V` in mV, rates in 1/ms. These are the rate functions of NEURON's `hh.mod` (`rates(v)`,
//! with its `vtrap`), which are Hodgkin & Huxley's at 6.3 °C with the resting potential at
//! −65 mV. **Temperature:** NEURON multiplies the rates by `q10 = 3^((celsius − 6.3)/10)`;
//! here that is [`SPEC`]'s `q10 = 3` at `q10_celsius = 6.3`, applied by the solver (so at
//! NEURON's default `celsius = 6.3` the factor is 1).
//!
//! | parameter | default | unit   | NEURON name              |
//! |-----------|---------|--------|--------------------------|
//! | `gbar`    | 120     | mS/cm² | `gnabar_hh` = 0.12 S/cm² |
//! | `e`       | 50      | mV     | `ena` (NEURON's default) |
//!
//! Hodgkin & Huxley (1952), J. Physiol. 117:500–544; NEURON's `src/nrnoc/hh.mod` (Hines &
//! Carnevale, *The NEURON Book*, 2006).

use super::{logistic_neg, vtrap, Calcium, Channel, ChannelSpec};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`HhNa`].
    pub struct Params, const PARAMS {
        /// maximal sodium conductance
        gbar = 120.0, "mS/cm²", [0.0, 10000.0];
        /// sodium reversal potential
        e = 50.0, "mV", [-100.0, 150.0];
    }
}

/// The `hh` sodium channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct HhNa;

/// Static description of [`HhNa`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "hh_na",
    title: "Hodgkin-Huxley sodium (NEURON hh)",
    gates: &[
        VarSpec::new("m", "1", 0.052_932_5, (0.0, 1.0), "activation"),
        VarSpec::new("h", "1", 0.596_120_7, (0.0, 1.0), "inactivation"),
    ],
    params: PARAMS,
    q10: 3.0,
    q10_celsius: 6.3,
    calcium: Calcium::None,
    citation: "Hodgkin & Huxley (1952) J. Physiol. 117:500-544; NEURON hh.mod",
};

/// `[α_m, β_m, α_h, β_h]` at `v` (mV), 1/ms.
#[inline(always)]
pub fn rates<R: Real>(v: R) -> [R; 4] {
    [
        vtrap(v + k(40.0), 10.0) * k(0.1),
        (-(v + k(65.0)) * k(1.0 / 18.0)).exp_safe() * k(4.0),
        (-(v + k(65.0)) * k(1.0 / 20.0)).exp_safe() * k(0.07),
        logistic_neg(-(v + k(35.0)) * k(0.1)),
    ]
}

impl Channel for HhNa {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let [am, bm, ah, bh] = rates(v);
        let (sm, sh) = (am + bm, ah + bh);
        inf[0] = am / sm;
        tau[0] = sm.recip();
        inf[1] = ah / sh;
        tau[1] = sh.recip();
    }

    /// The rates `α + β` themselves (no reciprocal of a reciprocal).
    #[inline(always)]
    fn gates_rate<R: Real>(&self, v: R, _cai: Option<R>, _p: &[R], inf: &mut [R], rate: &mut [R]) {
        let [am, bm, ah, bh] = rates(v);
        let (sm, sh) = (am + bm, ah + bh);
        inf[0] = am / sm;
        rate[0] = sm;
        inf[1] = ah / sh;
        rate[1] = sh;
    }

    #[inline(always)]
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R {
        let (m, h) = (x[0], x[1]);
        Params::from_slice(p).gbar * m * m * m * h
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).e
    }
}
