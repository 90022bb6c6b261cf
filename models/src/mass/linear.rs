//! Linear model: one leaky (or, with `gamma > 0`, unstable) variable per node.
//!
//! ```text
//! dx/dt = gamma x + c
//! ```
//! An uncoupled node relaxes as `x(t) = x(0) e^{gamma t}`. Its linear part is `gamma`
//! ([`Model::linear`]), so exponential Euler follows that solution exactly at any step. A network is stable when `gamma` is
//! more negative than the largest real part of the eigenvalues of the coupling matrix `G W`
//! (for non-negative weights, at most `G` times the largest in-strength).
//!
//! | parameter | default | unit  | meaning                                 |
//! |-----------|---------|-------|-----------------------------------------|
//! | `gamma`   | -10     | 1/ms  | damping coefficient (negative: stable)  |
//!
//! Defaults and bounds follow TVB's `Linear` (`gamma ∈ [-100, 0]`); time is in ms.
//!
//! **Coupling.** One input `c` formed from the other nodes' `x`, normally linear coupling
//! `c_i = G Σ_j W_ij x_j`.
//!
//! Sanz-Leon, Knock, Spiegler & Jirsa (2015), NeuroImage 111:385–430 (TVB `Linear`).

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{Model, Real};

crate::params! {
    /// The linear node's parameters.
    pub struct Params, const PARAMS {
        /// damping coefficient
        gamma = -10.0, "1/ms", [-100.0, 0.0];
    }
}

/// The linear model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Linear;

/// Static description of [`Linear`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "linear",
    title: "Linear (leaky) node",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.01,
    sample_period: None,
    state: &[VarSpec::new("x", "a.u.", 0.0, (-1.0, 1.0), "activity")],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' x",
    }],
    coupling_function: CouplingFunction::Linear,
    coupling_strength: 0.5,
    citation: "Sanz-Leon et al. (2015) NeuroImage 111:385-430 (TVB Linear)",
};

impl Model for Linear {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }
    const LINEAR: bool = true;

    #[inline(always)]
    fn linear<R: Real>(&self, _x: &[R], _c: &[R], p: &[R], a: &mut [R]) {
        a[0] = Params::from_slice(p).gamma;
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let Params { gamma } = Params::from_slice(p);
        dx[0] = gamma * x[0] + c[0];
    }
}
