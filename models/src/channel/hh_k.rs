//! The potassium current of NEURON's `hh` mechanism (Hodgkin & Huxley 1952).
//!
//! ```text
//! i_K = g_K n⁴ (V − E_K)
//! α_n = 0.01 (V + 55) / (1 − e^{−(V+55)/10})      β_n = 0.125 e^{−(V+65)/80}
//! n∞ = α / (α + β)        τ_n = 1 / (α + β)          (ms, at 6.3 °C)
//! ```
//! `V` in mV, rates in 1/ms, as in NEURON's `hh.mod`; temperature as for
//! [`hh_na`](super::hh_na): `q10 = 3` at 6.3 °C.
//!
//! | parameter | default | unit   | NEURON name              |
//! |-----------|---------|--------|--------------------------|
//! | `gbar`    | 36      | mS/cm² | `gkbar_hh` = 0.036 S/cm² |
//! | `e`       | −77     | mV     | `ek` (NEURON's default)  |
//!
//! Hodgkin & Huxley (1952), J. Physiol. 117:500–544; NEURON's `src/nrnoc/hh.mod`.

use super::{vtrap, Calcium, Channel, ChannelSpec};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`HhK`].
    pub struct Params, const PARAMS {
        /// maximal potassium conductance
        gbar = 36.0, "mS/cm²", [0.0, 10000.0];
        /// potassium reversal potential
        e = -77.0, "mV", [-150.0, 0.0];
    }
}

/// The `hh` potassium channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct HhK;

/// Static description of [`HhK`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "hh_k",
    title: "Hodgkin-Huxley potassium (NEURON hh)",
    gates: &[VarSpec::new(
        "n",
        "1",
        0.317_676_8,
        (0.0, 1.0),
        "activation",
    )],
    params: PARAMS,
    q10: 3.0,
    q10_celsius: 6.3,
    calcium: Calcium::None,
    citation: "Hodgkin & Huxley (1952) J. Physiol. 117:500-544; NEURON hh.mod",
};

/// `[α_n, β_n]` at `v` (mV), 1/ms.
#[inline(always)]
pub fn rates<R: Real>(v: R) -> [R; 2] {
    [
        vtrap(v + k(55.0), 10.0) * k(0.01),
        (-(v + k(65.0)) * k(1.0 / 80.0)).exp_safe() * k(0.125),
    ]
}

impl Channel for HhK {
    const SPEC: &'static ChannelSpec = &SPEC;

    #[inline(always)]
    fn gates<R: Real>(&self, v: R, _p: &[R], inf: &mut [R], tau: &mut [R]) {
        let [an, bn] = rates(v);
        let s = an + bn;
        inf[0] = an / s;
        tau[0] = s.recip();
    }

    /// The rate `α + β` itself (no reciprocal of a reciprocal).
    #[inline(always)]
    fn gates_rate<R: Real>(&self, v: R, _cai: Option<R>, _p: &[R], inf: &mut [R], rate: &mut [R]) {
        let [an, bn] = rates(v);
        let s = an + bn;
        inf[0] = an / s;
        rate[0] = s;
    }

    #[inline(always)]
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R {
        let n2 = x[0] * x[0];
        Params::from_slice(p).gbar * n2 * n2
    }

    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).e
    }
}
