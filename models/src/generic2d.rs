//! TVB's generic two-dimensional oscillator: a cubic fast nullcline and a configurable (up to
//! quadratic) slow nullcline, which covers FitzHugh–Nagumo-like excitable, bistable and
//! oscillatory regimes.
//!
//! ```text
//! dV/dt = d tau (alpha W - f V³ + e V² + g V + gamma I + gamma c)
//! dW/dt = d (a + b V + c V² - beta W) / tau
//! ```
//! `V` is a function of the population's membrane potential (or its firing rate), `W` a recovery
//! variable; both are dimensionless. Time is in ms (`d` sets the overall time scale).
//!
//! | parameter | default | meaning                                                  |
//! |-----------|---------|----------------------------------------------------------|
//! | `tau`     | 1       | time-scale ratio between V and W                         |
//! | `I`       | 0       | baseline shift of the cubic nullcline (external input)   |
//! | `a`       | -2      | vertical shift of the configurable nullcline             |
//! | `b`       | -10     | linear slope of the configurable nullcline               |
//! | `c`       | 0       | parabolic term of the configurable nullcline             |
//! | `d`       | 0.02    | temporal scale factor (ms⁻¹)                             |
//! | `e`       | 3       | quadratic coefficient of the cubic nullcline             |
//! | `f`       | 1       | cubic coefficient of the cubic nullcline                 |
//! | `g`       | 0       | linear coefficient of the cubic nullcline                |
//! | `alpha`   | 1       | feedback from W to V                                     |
//! | `beta`    | 1       | feedback from W to itself                                |
//! | `gamma`   | 1       | scaling of the input and of the network input            |
//!
//! Defaults are TVB's `Generic2dOscillator` (its "excitable configuration": a stable fixed
//! point; with `a = 2` a limit cycle). TVB's documentation lists other configurations, e.g.
//! Sanz-Leon et al. (2013): `a = -0.5`, others as default, a stable focus whose damped
//! oscillations are at about 10 Hz, the usual choice for noise-driven alpha-band networks.
//! Admissible bounds are physically meaningful ranges, wider than TVB's slider domains.
//!
//! **Coupling.** One input `c_V` formed from the other nodes' `V`, added with `I` (both scaled
//! by `gamma`); normally linear coupling `c_i = G Σ_j W_ij V_j`, as in TVB.
//!
//! Sanz-Leon, Knock, Spiegler & Jirsa (2015), *Mathematical framework for large-scale brain
//! network modeling in The Virtual Brain*, NeuroImage 111:385–430; FitzHugh (1961).

use burn::prelude::{Backend, Tensor};
use num_traits::Float;

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, ParamSpec, VarSpec};
use crate::Model;

/// TVB's generic 2D oscillator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generic2d;

/// Static description of [`Generic2d`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "generic2d",
    title: "Generic 2D oscillator (TVB)",
    time_unit: "ms",
    default_dt: 0.1,
    state: &[
        VarSpec::new(
            "V",
            "a.u.",
            0.0,
            (-2.0, 4.0),
            "fast variable (membrane potential)",
        ),
        VarSpec::new("W", "a.u.", 0.0, (-6.0, 6.0), "slow recovery variable"),
    ],
    params: &[
        ParamSpec::new(
            "tau",
            1.0,
            "1",
            1e-3,
            100.0,
            "time-scale ratio between V and W",
        ),
        ParamSpec::new(
            "I",
            0.0,
            "1",
            -100.0,
            100.0,
            "baseline shift of the cubic nullcline",
        ),
        ParamSpec::new(
            "a",
            -2.0,
            "1",
            -100.0,
            100.0,
            "vertical shift of the W nullcline",
        ),
        ParamSpec::new(
            "b",
            -10.0,
            "1",
            -100.0,
            100.0,
            "linear slope of the W nullcline",
        ),
        ParamSpec::new(
            "c",
            0.0,
            "1",
            -100.0,
            100.0,
            "parabolic term of the W nullcline",
        ),
        ParamSpec::new("d", 0.02, "1/ms", 1e-6, 10.0, "temporal scale factor"),
        ParamSpec::new(
            "e",
            3.0,
            "1",
            -100.0,
            100.0,
            "quadratic term of the V nullcline",
        ),
        ParamSpec::new(
            "f",
            1.0,
            "1",
            -100.0,
            100.0,
            "cubic term of the V nullcline",
        ),
        ParamSpec::new(
            "g",
            0.0,
            "1",
            -100.0,
            100.0,
            "linear term of the V nullcline",
        ),
        ParamSpec::new("alpha", 1.0, "1", -100.0, 100.0, "feedback from W to V"),
        ParamSpec::new("beta", 1.0, "1", -100.0, 100.0, "feedback from W to itself"),
        ParamSpec::new(
            "gamma",
            1.0,
            "1",
            -10.0,
            10.0,
            "scaling of the (network) input",
        ),
    ],
    coupling: &[CouplingSpec {
        name: "c_V",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' V, added with I",
    }],
    coupling_function: CouplingFunction::Linear,
    coupling_strength: 0.1,
    citation: "Sanz-Leon et al. (2015) NeuroImage 111:385-430 (TVB Generic2dOscillator)",
};

impl Model for Generic2d {
    const SPEC: &'static ModelSpec = &SPEC;

    fn drift<B: Backend>(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>> {
        let [v, w] = x else {
            panic!("generic2d: expected 2 state variables")
        };
        let [tau, i_ext, a, b, cq, d, e, f, g, alpha, beta, gamma] = p else {
            panic!("generic2d: expected 12 parameters")
        };
        let [c] = c else {
            panic!("generic2d: expected 1 coupling input")
        };
        let v2 = v.clone() * v.clone();
        let mut input = i_ext.clone();
        if let Some(c) = c {
            input = input + c.clone();
        }
        let dv = d.clone()
            * tau.clone()
            * (alpha.clone() * w.clone() - f.clone() * v2.clone() * v.clone()
                + e.clone() * v2.clone()
                + g.clone() * v.clone()
                + gamma.clone() * input);
        let dw = d.clone()
            * (a.clone() + b.clone() * v.clone() + cq.clone() * v2 - beta.clone() * w.clone())
            / tau.clone();
        vec![dv, dw]
    }

    #[inline(always)]
    fn drift_point<T: Float>(&self, x: &[T], c: &[T], p: &[T], dx: &mut [T]) {
        let (v, w) = (x[0], x[1]);
        let (tau, i_ext, a, b, cq, d, e, f) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
        let (g, alpha, beta, gamma) = (p[8], p[9], p[10], p[11]);
        let v2 = v * v;
        dx[0] = d * tau * (alpha * w - f * v2 * v + e * v2 + g * v + gamma * (i_ext + c[0]));
        dx[1] = d * (a + b * v + cq * v2 - beta * w) / tau;
    }
}
