//! Wilson–Cowan excitatory/inhibitory population model.
//!
//! ```text
//! x_e   = alpha_e (c_ee E - c_ei I + P - theta_e + c)
//! x_i   = alpha_i (c_ie E - c_ii I + Q - theta_i)
//! S_e   = c_e [ σ(a_e (x_e - b_e)) - shift σ(-a_e b_e) ]
//! S_i   = c_i [ σ(a_i (x_i - b_i)) - shift σ(-a_i b_i) ]
//! dE/dt = ( -E + (k_e - r_e E) S_e ) / tau_e
//! dI/dt = ( -I + (k_i - r_i I) S_i ) / tau_i
//! ```
//! with the logistic `σ(u) = 1 / (1 + exp(-u))`. `E` and `I` are the fractions of excitatory and
//! inhibitory cells firing per unit time (dimensionless); time is in ms.
//!
//! `shift` generalises TVB's boolean `shift_sigmoid` to a number: 1 (TVB's default) translates
//! each sigmoid down so that `S(0) = 0`, which makes `E = I = 0` the resting state without input
//! as in Wilson & Cowan (1972); 0 uses the plain logistic.
//!
//! | parameter            | default | meaning                                              |
//! |----------------------|---------|------------------------------------------------------|
//! | `c_ee`, `c_ei`       | 12, 4   | E→E and I→E coupling coefficients                    |
//! | `c_ie`, `c_ii`       | 13, 11  | E→I and I→I coupling coefficients                    |
//! | `tau_e`, `tau_i`     | 10, 10  | membrane time constants (ms)                         |
//! | `a_e`, `b_e`, `c_e`  | 1.2, 2.8, 1 | slope, position and amplitude of the E sigmoid   |
//! | `theta_e`            | 0       | E threshold                                          |
//! | `a_i`, `b_i`, `c_i`  | 1, 4, 1 | slope, position and amplitude of the I sigmoid       |
//! | `theta_i`            | 0       | I threshold                                          |
//! | `r_e`, `r_i`         | 1, 1    | refractory periods                                   |
//! | `k_e`, `k_i`         | 1, 1    | maxima of the response functions                     |
//! | `P`, `Q`             | 0, 0    | constant external inputs to E and I                  |
//! | `alpha_e`, `alpha_i` | 1, 1    | input gains                                          |
//! | `shift`              | 1       | sigmoid shift (TVB `shift_sigmoid`)                  |
//!
//! Defaults follow TVB's `WilsonCowan` (vbjax has no Wilson–Cowan model). Admissible bounds are
//! physically meaningful ranges, wider than TVB's slider domains.
//!
//! **Coupling.** One input `c` formed from the other nodes' `E`, added inside the excitatory
//! population's input (and so scaled by `alpha_e`), as in TVB; normally linear coupling
//! `c_i = G Σ_j W_ij E_j`.
//!
//! Wilson & Cowan (1972), *Excitatory and inhibitory interactions in localized populations of
//! model neurons*, Biophys. J. 12:1–24.

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::util::logistic;
use crate::{Model, Real};

crate::params! {
    /// Wilson–Cowan parameters.
    pub struct Params, const PARAMS {
        /// excitatory to excitatory coupling
        c_ee = 12.0, "1", [0.0, 100.0];
        /// inhibitory to excitatory coupling
        c_ei = 4.0, "1", [0.0, 100.0];
        /// excitatory to inhibitory coupling
        c_ie = 13.0, "1", [0.0, 100.0];
        /// inhibitory to inhibitory coupling
        c_ii = 11.0, "1", [0.0, 100.0];
        /// excitatory time constant
        tau_e = 10.0, "ms", [1e-3, 1000.0];
        /// inhibitory time constant
        tau_i = 10.0, "ms", [1e-3, 1000.0];
        /// slope of the excitatory sigmoid
        a_e = 1.2, "1", [0.0, 100.0];
        /// position of the excitatory sigmoid
        b_e = 2.8, "1", [-100.0, 100.0];
        /// amplitude of the excitatory sigmoid
        c_e = 1.0, "1", [0.0, 100.0];
        /// excitatory threshold
        theta_e = 0.0, "1", [-100.0, 100.0];
        /// slope of the inhibitory sigmoid
        a_i = 1.0, "1", [0.0, 100.0];
        /// position of the inhibitory sigmoid
        b_i = 4.0, "1", [-100.0, 100.0];
        /// inhibitory threshold
        theta_i = 0.0, "1", [-100.0, 100.0];
        /// amplitude of the inhibitory sigmoid
        c_i = 1.0, "1", [0.0, 100.0];
        /// excitatory refractory period
        r_e = 1.0, "1", [0.0, 10.0];
        /// inhibitory refractory period
        r_i = 1.0, "1", [0.0, 10.0];
        /// maximum of the excitatory response
        k_e = 1.0, "1", [0.0, 10.0];
        /// maximum of the inhibitory response
        k_i = 1.0, "1", [0.0, 10.0];
        /// external input to the excitatory population
        P = 0.0, "1", [-100.0, 100.0];
        /// external input to the inhibitory population
        Q = 0.0, "1", [-100.0, 100.0];
        /// gain of the excitatory input
        alpha_e = 1.0, "1", [0.0, 100.0];
        /// gain of the inhibitory input
        alpha_i = 1.0, "1", [0.0, 100.0];
        /// sigmoid shift (1: S(0) = 0, 0: plain logistic)
        shift = 1.0, "1", [0.0, 1.0];
    }
}

/// The Wilson–Cowan model.
#[derive(Debug, Clone, Copy, Default)]
pub struct WilsonCowan;

/// Static description of [`WilsonCowan`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "wilson_cowan",
    title: "Wilson–Cowan E/I populations",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.1,
    sample_period: None,
    state: &[
        VarSpec::new("E", "1", 0.1, (0.0, 1.0), "excitatory population activity"),
        VarSpec::new("I", "1", 0.1, (0.0, 1.0), "inhibitory population activity"),
    ],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' E, added to the excitatory input",
    }],
    coupling_function: CouplingFunction::Linear,
    coupling_strength: 0.5,
    citation: "Wilson & Cowan (1972) Biophys. J. 12:1-24",
};

impl Model for WilsonCowan {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let (e, i) = (x[0], x[1]);
        let Params {
            c_ee,
            c_ei,
            c_ie,
            c_ii,
            tau_e,
            tau_i,
            a_e,
            b_e,
            c_e,
            theta_e,
            a_i,
            b_i,
            theta_i,
            c_i,
            r_e,
            r_i,
            k_e,
            k_i,
            P: p_e,
            Q: q_i,
            alpha_e,
            alpha_i,
            shift,
        } = Params::from_slice(p);

        let x_e = alpha_e * (c_ee * e - c_ei * i + p_e - theta_e + c[0]);
        let x_i = alpha_i * (c_ie * e - c_ii * i + q_i - theta_i);
        let s_e = c_e * (logistic(a_e * (x_e - b_e)) - shift * logistic(-a_e * b_e));
        let s_i = c_i * (logistic(a_i * (x_i - b_i)) - shift * logistic(-a_i * b_i));
        dx[0] = (-e + (k_e - r_e * e) * s_e) / tau_e;
        dx[1] = (-i + (k_i - r_i * i) * s_i) / tau_i;
    }
}
