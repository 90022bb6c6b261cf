//! Threshold-linear excitatory–inhibitory rate model: the local circuit of Chaudhuri et al.'s
//! (2015) large-scale model of the macaque cortex, with rectified-linear transfer functions.
//!
//! ```text
//! tau_E dE/dt = -E + beta_E [ w_EE E - w_EI I + I_E + mu_EE c ]_+
//! tau_I dI/dt = -I + beta_I [ w_IE E - w_II I + I_I + mu_IE c ]_+
//! ```
//! with `[u]_+ = max(u, 0)`. `E` and `I` are population firing rates (Hz), the brackets hold
//! input currents (pA) and `beta_E`, `beta_I` are the slopes of the f–I curves; time is in ms.
//! While both currents are positive the model is linear, and its fixed point solves
//! ```text
//! (1 - beta_E w_EE) E + beta_E w_EI I = beta_E I_E
//! -beta_I w_IE E + (1 + beta_I w_II) I = beta_I I_I
//! ```
//! (uncoupled). At Chaudhuri et al.'s weights the excitatory loop alone is unstable
//! (`beta_E w_EE ≈ 1.6 > 1`) and the circuit is inhibition-stabilised: the Jacobian
//! `[[(beta_E w_EE - 1)/tau_E, -beta_E w_EI/tau_E], [beta_I w_IE/tau_I, -(1 + beta_I w_II)/tau_I]]`
//! has eigenvalues ≈ -0.024 and -0.485 per ms. Without drive (`I_E = I_I = 0`) the rest state is
//! `E = I = 0`.
//!
//! | parameter | default | unit  | meaning                                         |
//! |-----------|---------|-------|-------------------------------------------------|
//! | `tau_E`   | 20      | ms    | excitatory time constant                        |
//! | `tau_I`   | 10      | ms    | inhibitory time constant                        |
//! | `beta_E`  | 0.066   | Hz/pA | slope of the excitatory f–I curve               |
//! | `beta_I`  | 0.351   | Hz/pA | slope of the inhibitory f–I curve               |
//! | `w_EE`    | 24.3    | pA/Hz | E → E weight                                    |
//! | `w_EI`    | 19.7    | pA/Hz | I → E weight                                    |
//! | `w_IE`    | 12.2    | pA/Hz | E → I weight                                    |
//! | `w_II`    | 12.5    | pA/Hz | I → I weight                                    |
//! | `I_E`     | 598.0   | pA    | background current to E                         |
//! | `I_I`     | 415.2   | pA    | background current to I                         |
//! | `mu_EE`   | 33.7    | pA/Hz | gain of the long-range input onto E             |
//! | `mu_IE`   | 25.3    | pA/Hz | gain of the long-range input onto I             |
//!
//! Names and defaults of `tau_*` and `beta_*` follow brainmass's `ThresholdLinearStep`
//! (formerly `ThresholdLinearModel`; there the time constants are 20 ms and 10 ms written in
//! seconds), which keeps only the gains and leaves the recurrent currents to its inputs; the
//! weights and long-range gains are Chaudhuri et al.'s (2015). The background currents are
//! those that put an uncoupled node at Chaudhuri et al.'s baseline of `E = 10 Hz`, `I = 35 Hz`
//! (`I_E = 10/beta_E + 35 w_EI - 10 w_EE`, `I_I = 35/beta_I + 35 w_II - 10 w_IE`). Their
//! hierarchy scaling `(1 + eta h_i)` of `w_EE`, `w_IE` and of the long-range input is a
//! per-region value of those parameters here. As in brainmass, the rates are clipped at zero
//! after every integration stage (the drift keeps them non-negative anyway; the clip matters
//! only with noise).
//!
//! **Coupling.** One input `c` formed from the other nodes' `E`, normally linear coupling
//! `c_i = G Σ_j W_ij E_j` (Chaudhuri et al. use the fraction of labelled neurons, FLN, as `W`),
//! entering the excitatory current scaled by `mu_EE` and the inhibitory one by `mu_IE`. A
//! uniform network input `g E` (with `g = G` times the connectome's leading eigenvalue) keeps the
//! defaults stable up to `g ≈ 4.6` (a Hopf bifurcation: the trace of the Jacobian vanishes).
//!
//! Chaudhuri, Knoblauch, Gariel, Kennedy & Wang (2015), *A large-scale circuit mechanism for
//! hierarchical dynamical processing in the primate cortex*, Neuron 88:419–431; brainmass
//! (chaobrain), `ThresholdLinearStep`.

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{k, Model, Real};

crate::params! {
    /// Threshold-linear E–I parameters.
    pub struct Params, const PARAMS {
        /// excitatory time constant
        tau_E = 20.0, "ms", [1e-2, 1000.0];
        /// inhibitory time constant
        tau_I = 10.0, "ms", [1e-2, 1000.0];
        /// slope of the excitatory f-I curve
        beta_E = 0.066, "Hz/pA", [0.0, 10.0];
        /// slope of the inhibitory f-I curve
        beta_I = 0.351, "Hz/pA", [0.0, 10.0];
        /// excitatory to excitatory weight
        w_EE = 24.3, "pA/Hz", [0.0, 1000.0];
        /// inhibitory to excitatory weight
        w_EI = 19.7, "pA/Hz", [0.0, 1000.0];
        /// excitatory to inhibitory weight
        w_IE = 12.2, "pA/Hz", [0.0, 1000.0];
        /// inhibitory to inhibitory weight
        w_II = 12.5, "pA/Hz", [0.0, 1000.0];
        /// background current to the excitatory population
        I_E = 10.0 / 0.066 + 35.0 * 19.7 - 10.0 * 24.3, "pA", [-10000.0, 10000.0];
        /// background current to the inhibitory population
        I_I = 35.0 / 0.351 + 35.0 * 12.5 - 10.0 * 12.2, "pA", [-10000.0, 10000.0];
        /// gain of the long-range input onto the excitatory population
        mu_EE = 33.7, "pA/Hz", [0.0, 1000.0];
        /// gain of the long-range input onto the inhibitory population
        mu_IE = 25.3, "pA/Hz", [0.0, 1000.0];
    }
}

/// The threshold-linear E–I rate model.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThresholdLinear;

/// Static description of [`ThresholdLinear`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "threshold_linear",
    title: "Threshold-linear E–I rate model (Chaudhuri et al. 2015)",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.1,
    sample_period: None,
    state: &[
        VarSpec::new(
            "E",
            "Hz",
            10.0,
            (0.0, 50.0),
            "excitatory population rate",
        ),
        VarSpec::new(
            "I",
            "Hz",
            35.0,
            (0.0, 100.0),
            "inhibitory population rate",
        ),
    ],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' E (scaled by mu_EE onto E, mu_IE onto I)",
    }],
    coupling_function: CouplingFunction::Linear,
    coupling_strength: 0.1,
    citation: "Chaudhuri et al. (2015) Neuron 88:419-431; brainmass ThresholdLinearStep",
};

impl Model for ThresholdLinear {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }
    const PROJECTS: bool = true;

    #[inline(always)]
    #[allow(non_snake_case)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let Params {
            tau_E,
            tau_I,
            beta_E,
            beta_I,
            w_EE,
            w_EI,
            w_IE,
            w_II,
            I_E,
            I_I,
            mu_EE,
            mu_IE,
        } = Params::from_slice(p);
        let (e, i) = (x[0], x[1]);
        let zero = k::<R>(0.0);
        let cur_e = w_EE * e - w_EI * i + I_E + mu_EE * c[0];
        let cur_i = w_IE * e - w_II * i + I_I + mu_IE * c[0];
        dx[0] = (-e + beta_E * cur_e.max(zero)) / tau_E;
        dx[1] = (-i + beta_I * cur_i.max(zero)) / tau_I;
    }

    #[inline(always)]
    fn project<R: Real>(&self, x: &mut [R]) {
        let zero = k::<R>(0.0);
        x[0] = x[0].max(zero);
        x[1] = x[1].max(zero);
    }
}
