//! Two-dimensional Epileptor of the Bayesian Virtual Epileptic Patient (BVEP): the fast
//! subsystem of the Epileptor reduced to one variable `x` plus the slow permittivity variable
//! `z`, keeping the seizure onset/offset dynamics.
//!
//! ```text
//! dx/dt = 1 - x³ - 2 x² - z + I1
//! dz/dt = ( 4 (x - x0) - z - c ) / tau0
//! ```
//! Dimensionless; like TVB we read time as ms. For an uncoupled node the fixed point is stable
//! (healthy) when the excitability `x0` is below a critical value (about -2.05, Proix et al.
//! 2014) and the node seizes periodically above it.
//!
//! | parameter | default | meaning                               |
//! |-----------|---------|---------------------------------------|
//! | `tau0`    | 10      | time scale of the slow variable z     |
//! | `I1`      | 3.1     | input current of the fast subsystem   |
//! | `x0`      | -3.5    | excitability (healthy default)        |
//!
//! Equations and defaults follow vbjax (`bvep_dfun`, `bvep_default_theta`), as in Hashemi et
//! al. (2020). TVB's `Epileptor2D` is the same system for `x < 0`, written with the 6D
//! Epileptor's parameters (`r = 1/tau0` with default `r = 0.00035`, `x0 = -1.6`, permittivity
//! coupling `+Ks c` with `Ks ≤ 0`), but for `x ≥ 0` it switches to the 6D model's other branch
//! of `f1`, `(d x - slope - 0.6 (z - 4)²) x`, where vbjax keeps the cubic.
//!
//! **Coupling.** One input `c` formed from the other nodes' `x` and *subtracted* in `dz/dt`
//! (permittivity coupling); normally difference coupling `c_i = G Σ_j W_ij (x_j - x_i)`, so that
//! `G` is the BVEP's global coupling `K`.
//!
//! Hashemi, Vattikonda, Sip, Guye, Bartolomei, Woodman & Jirsa (2020), *The Bayesian Virtual
//! Epileptic Patient: a probabilistic framework designed to infer the spatial map of
//! epileptogenicity in a personalized large-scale brain model of epilepsy spread*, NeuroImage
//! 217:116839; Proix et al. (2014), J. Neurosci. 34:15009–15021.

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{k, Model, Real};

crate::params! {
    /// BVEP's parameters.
    pub struct Params, const PARAMS {
        /// time scale of the slow variable
        tau0 = 10.0, "ms", [1e-2, 1e5];
        /// input current of the fast subsystem
        I1 = 3.1, "1", [-10.0, 10.0];
        /// excitability
        x0 = -3.5, "1", [-10.0, 5.0];
    }
}

/// The 2D Epileptor (BVEP).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bvep;

/// Static description of [`Bvep`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "bvep",
    title: "2D Epileptor (BVEP)",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.05,
    sample_period: None,
    state: &[
        VarSpec::new(
            "x",
            "a.u.",
            -2.5,
            (-2.5, 1.0),
            "fast variable (seizure activity)",
        ),
        VarSpec::new("z", "a.u.", 3.5, (2.0, 6.0), "slow permittivity variable"),
    ],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' x, subtracted in dz/dt",
    }],
    coupling_function: CouplingFunction::Difference,
    coupling_strength: 1.0,
    citation: "Hashemi et al. (2020) NeuroImage 217:116839",
};

impl Model for Bvep {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let (xs, z) = (x[0], x[1]);
        let Params { tau0, I1: i1, x0 } = Params::from_slice(p);
        let x2 = xs * xs;
        dx[0] = k::<R>(1.0) - xs * x2 - k::<R>(2.0) * x2 - z + i1;
        dx[1] = (k::<R>(4.0) * (xs - x0) - z - c[0]) / tau0;
    }
}
