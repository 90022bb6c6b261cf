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

use burn::prelude::{Backend, Tensor};
use num_traits::Float;

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, ParamSpec, VarSpec};
use crate::util::{logistic, logistic_point};
use crate::Model;

/// The Wilson–Cowan model.
#[derive(Debug, Clone, Copy, Default)]
pub struct WilsonCowan;

/// Static description of [`WilsonCowan`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "wilson_cowan",
    title: "Wilson–Cowan E/I populations",
    time_unit: "ms",
    default_dt: 0.1,
    state: &[
        VarSpec::new("E", "1", 0.1, (0.0, 1.0), "excitatory population activity"),
        VarSpec::new("I", "1", 0.1, (0.0, 1.0), "inhibitory population activity"),
    ],
    params: &[
        ParamSpec::new(
            "c_ee",
            12.0,
            "1",
            0.0,
            100.0,
            "excitatory to excitatory coupling",
        ),
        ParamSpec::new(
            "c_ei",
            4.0,
            "1",
            0.0,
            100.0,
            "inhibitory to excitatory coupling",
        ),
        ParamSpec::new(
            "c_ie",
            13.0,
            "1",
            0.0,
            100.0,
            "excitatory to inhibitory coupling",
        ),
        ParamSpec::new(
            "c_ii",
            11.0,
            "1",
            0.0,
            100.0,
            "inhibitory to inhibitory coupling",
        ),
        ParamSpec::new(
            "tau_e",
            10.0,
            "ms",
            1e-3,
            1000.0,
            "excitatory time constant",
        ),
        ParamSpec::new(
            "tau_i",
            10.0,
            "ms",
            1e-3,
            1000.0,
            "inhibitory time constant",
        ),
        ParamSpec::new(
            "a_e",
            1.2,
            "1",
            0.0,
            100.0,
            "slope of the excitatory sigmoid",
        ),
        ParamSpec::new(
            "b_e",
            2.8,
            "1",
            -100.0,
            100.0,
            "position of the excitatory sigmoid",
        ),
        ParamSpec::new(
            "c_e",
            1.0,
            "1",
            0.0,
            100.0,
            "amplitude of the excitatory sigmoid",
        ),
        ParamSpec::new("theta_e", 0.0, "1", -100.0, 100.0, "excitatory threshold"),
        ParamSpec::new(
            "a_i",
            1.0,
            "1",
            0.0,
            100.0,
            "slope of the inhibitory sigmoid",
        ),
        ParamSpec::new(
            "b_i",
            4.0,
            "1",
            -100.0,
            100.0,
            "position of the inhibitory sigmoid",
        ),
        ParamSpec::new("theta_i", 0.0, "1", -100.0, 100.0, "inhibitory threshold"),
        ParamSpec::new(
            "c_i",
            1.0,
            "1",
            0.0,
            100.0,
            "amplitude of the inhibitory sigmoid",
        ),
        ParamSpec::new("r_e", 1.0, "1", 0.0, 10.0, "excitatory refractory period"),
        ParamSpec::new("r_i", 1.0, "1", 0.0, 10.0, "inhibitory refractory period"),
        ParamSpec::new(
            "k_e",
            1.0,
            "1",
            0.0,
            10.0,
            "maximum of the excitatory response",
        ),
        ParamSpec::new(
            "k_i",
            1.0,
            "1",
            0.0,
            10.0,
            "maximum of the inhibitory response",
        ),
        ParamSpec::new(
            "P",
            0.0,
            "1",
            -100.0,
            100.0,
            "external input to the excitatory population",
        ),
        ParamSpec::new(
            "Q",
            0.0,
            "1",
            -100.0,
            100.0,
            "external input to the inhibitory population",
        ),
        ParamSpec::new(
            "alpha_e",
            1.0,
            "1",
            0.0,
            100.0,
            "gain of the excitatory input",
        ),
        ParamSpec::new(
            "alpha_i",
            1.0,
            "1",
            0.0,
            100.0,
            "gain of the inhibitory input",
        ),
        ParamSpec::new(
            "shift",
            1.0,
            "1",
            0.0,
            1.0,
            "sigmoid shift (1: S(0) = 0, 0: plain logistic)",
        ),
    ],
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
    const SPEC: &'static ModelSpec = &SPEC;

    fn drift<B: Backend>(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>> {
        let [e, i] = x else {
            panic!("wilson_cowan: expected 2 state variables")
        };
        let [c_ee, c_ei, c_ie, c_ii, tau_e, tau_i, a_e, b_e, c_e, theta_e, a_i, b_i, theta_i, c_i, r_e, r_i, k_e, k_i, p_e, q_i, alpha_e, alpha_i, shift] =
            p
        else {
            panic!("wilson_cowan: expected 23 parameters")
        };
        let [c] = c else {
            panic!("wilson_cowan: expected 1 coupling input")
        };
        let mut in_e =
            c_ee.clone() * e.clone() - c_ei.clone() * i.clone() + p_e.clone() - theta_e.clone();
        if let Some(c) = c {
            in_e = in_e + c.clone();
        }
        let in_i =
            c_ie.clone() * e.clone() - c_ii.clone() * i.clone() + q_i.clone() - theta_i.clone();
        let x_e = alpha_e.clone() * in_e;
        let x_i = alpha_i.clone() * in_i;
        let s_e = c_e.clone()
            * (logistic(a_e.clone() * (x_e - b_e.clone()))
                - shift.clone() * logistic(a_e.clone() * b_e.clone() * -1.0));
        let s_i = c_i.clone()
            * (logistic(a_i.clone() * (x_i - b_i.clone()))
                - shift.clone() * logistic(a_i.clone() * b_i.clone() * -1.0));
        let de = ((k_e.clone() - r_e.clone() * e.clone()) * s_e - e.clone()) / tau_e.clone();
        let di = ((k_i.clone() - r_i.clone() * i.clone()) * s_i - i.clone()) / tau_i.clone();
        vec![de, di]
    }

    #[inline(always)]
    fn drift_point<T: Float>(&self, x: &[T], c: &[T], p: &[T], dx: &mut [T]) {
        let (e, i) = (x[0], x[1]);
        let (c_ee, c_ei, c_ie, c_ii, tau_e, tau_i) = (p[0], p[1], p[2], p[3], p[4], p[5]);
        let (a_e, b_e, c_e, theta_e, a_i, b_i, theta_i, c_i) =
            (p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13]);
        let (r_e, r_i, k_e, k_i, p_e, q_i, alpha_e, alpha_i, shift) = (
            p[14], p[15], p[16], p[17], p[18], p[19], p[20], p[21], p[22],
        );
        let x_e = alpha_e * (c_ee * e - c_ei * i + p_e - theta_e + c[0]);
        let x_i = alpha_i * (c_ie * e - c_ii * i + q_i - theta_i);
        let s_e = c_e * (logistic_point(a_e * (x_e - b_e)) - shift * logistic_point(-a_e * b_e));
        let s_i = c_i * (logistic_point(a_i * (x_i - b_i)) - shift * logistic_point(-a_i * b_i));
        dx[0] = (-e + (k_e - r_e * e) * s_e) / tau_e;
        dx[1] = (-i + (k_i - r_i * i) * s_i) / tau_i;
    }
}
