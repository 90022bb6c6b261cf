//! The small-conductance calcium-activated potassium current of the layer-5 pyramidal cell
//! model of Hay et al. (2011), `SK_E2.mod` (K⁺), after Köhler et al. (1996).
//!
//! ```text
//! i = g z (V − E_K)
//! z∞ = 1 / (1 + (0.00043 / cai)^4.8)      τ_z = 1 ms      (cai in mM; cai + 1e-7 below 1e-7)
//! ```
//! The gate does not depend on `V` but on the intracellular calcium concentration `cai` of its
//! compartment ([`Calcium::Reads`]): the solver passes the compartment's calcium pool
//! ([`super::ca_dynamics`]) or, where there is none, NEURON's default `cai0_ca_ion` = 5e-5 mM
//! ([`super::ca_dynamics::CAI_DEFAULT`]). No temperature factor (`q10 = 1`).
//!
//! | parameter | default | unit   | Hay et al. name                                   |
//! |-----------|---------|--------|---------------------------------------------------|
//! | `gbar`    | 0.001   | mS/cm² | `gSK_E2bar` = 0.000001 S/cm² (the .mod default)   |
//! | `e`       | −85     | mV     | `ek` (Hay et al.'s value)                         |
//! | `ztau`    | 1       | ms     | `zTau`                                            |
//!
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB
//! 139653); Köhler et al. (1996), Science 273:1709–1714.

use super::{ca_dynamics::CAI_DEFAULT, logistic_neg, Calcium, Channel, ChannelSpec};
use crate::spec::VarSpec;
use crate::{k, Real};

crate::params! {
    /// Parameters of [`SkE2`].
    pub struct Params, const PARAMS {
        /// maximal SK conductance
        gbar = 0.001, "mS/cm²", [0.0, 10000.0];
        /// potassium reversal potential
        e = -85.0, "mV", [-150.0, 0.0];
        /// time constant of the gate
        ztau = 1.0, "ms", [1e-3, 1000.0];
    }
}

/// Hay et al.'s `SK_E2`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SkE2;

/// Static description of [`SkE2`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "sk_e2",
    title: "small-conductance Ca-activated potassium (Hay et al. 2011 SK_E2, Kohler et al. 1996)",
    gates: &[VarSpec::new(
        "z",
        "1",
        0.000_032_688_4,
        (0.0, 1.0),
        "activation by calcium (initial: at cai = 5e-5 mM)",
    )],
    params: PARAMS,
    q10: 1.0,
    q10_celsius: 34.0,
    calcium: Calcium::Reads,
    citation: "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (SK_E2.mod, ModelDB 139653); \
               Kohler et al. (1996) Science 273:1709",
};

impl Channel for SkE2 {
    const SPEC: &'static ChannelSpec = &SPEC;

    /// The gate at NEURON's default `cai` (a compartment without a calcium pool).
    #[inline(always)]
    fn gates<R: Real>(&self, v: R, p: &[R], inf: &mut [R], tau: &mut [R]) {
        self.gates_ca(v, k(CAI_DEFAULT), p, inf, tau)
    }

    #[inline(always)]
    fn gates_ca<R: Real>(&self, _v: R, cai: R, p: &[R], inf: &mut [R], tau: &mut [R]) {
        let ca = R::select(cai.lt(k(1e-7)), cai + k(1e-7), cai);
        // (0.00043 / ca)^4.8 = e^{4.8 ln(0.00043 / ca)}
        inf[0] = logistic_neg((k::<R>(0.00043) / ca).ln() * k(4.8));
        tau[0] = Params::from_slice(p).ztau;
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
