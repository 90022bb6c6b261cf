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

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{Model, Real};

crate::params! {
    /// Generic 2D oscillator parameters.
    pub struct Params, const PARAMS {
        /// time-scale ratio between V and W
        tau = 1.0, "1", [1e-3, 100.0];
        /// baseline shift of the cubic nullcline
        I = 0.0, "1", [-100.0, 100.0];
        /// vertical shift of the W nullcline
        a = -2.0, "1", [-100.0, 100.0];
        /// linear slope of the W nullcline
        b = -10.0, "1", [-100.0, 100.0];
        /// parabolic term of the W nullcline
        c = 0.0, "1", [-100.0, 100.0];
        /// temporal scale factor
        d = 0.02, "1/ms", [1e-6, 10.0];
        /// quadratic term of the V nullcline
        e = 3.0, "1", [-100.0, 100.0];
        /// cubic term of the V nullcline
        f = 1.0, "1", [-100.0, 100.0];
        /// linear term of the V nullcline
        g = 0.0, "1", [-100.0, 100.0];
        /// feedback from W to V
        alpha = 1.0, "1", [-100.0, 100.0];
        /// feedback from W to itself
        beta = 1.0, "1", [-100.0, 100.0];
        /// scaling of the (network) input
        gamma = 1.0, "1", [-10.0, 10.0];
    }
}

/// TVB's generic 2D oscillator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generic2d;

/// Static description of [`Generic2d`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "generic2d",
    title: "Generic 2D oscillator (TVB)",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.1,
    sample_period: None,
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
    params: PARAMS,
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
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let (v, w) = (x[0], x[1]);
        let Params {
            tau,
            I: i_ext,
            a,
            b,
            c: cq,
            d,
            e,
            f,
            g,
            alpha,
            beta,
            gamma,
        } = Params::from_slice(p);

        let v2 = v * v;
        dx[0] = d * tau * (alpha * w - f * v2 * v + e * v2 + g * v + gamma * (i_ext + c[0]));
        dx[1] = d * (a + b * v + cq * v2 - beta * w) / tau;
    }
}
