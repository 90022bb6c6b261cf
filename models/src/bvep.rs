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

use burn::prelude::{Backend, Tensor};
use num_traits::Float;

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, ParamSpec, VarSpec};
use crate::{k, Model};

/// The 2D Epileptor (BVEP).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bvep;

/// Static description of [`Bvep`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "bvep",
    title: "2D Epileptor (BVEP)",
    time_unit: "ms",
    default_dt: 0.05,
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
    params: &[
        ParamSpec::new(
            "tau0",
            10.0,
            "ms",
            1e-2,
            1e5,
            "time scale of the slow variable",
        ),
        ParamSpec::new(
            "I1",
            3.1,
            "1",
            -10.0,
            10.0,
            "input current of the fast subsystem",
        ),
        ParamSpec::new("x0", -3.5, "1", -10.0, 5.0, "excitability"),
    ],
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
    const SPEC: &'static ModelSpec = &SPEC;

    fn drift<B: Backend>(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>> {
        let [xs, z] = x else {
            panic!("bvep: expected 2 state variables")
        };
        let [tau0, i1, x0] = p else {
            panic!("bvep: expected 3 parameters")
        };
        let [c] = c else {
            panic!("bvep: expected 1 coupling input")
        };
        let x2 = xs.clone() * xs.clone();
        let dx = i1.clone() - x2.clone() * xs.clone() - x2 * 2.0 - z.clone() + 1.0;
        let mut hz = (xs.clone() - x0.clone()) * 4.0 - z.clone();
        if let Some(c) = c {
            hz = hz - c.clone();
        }
        vec![dx, hz / tau0.clone()]
    }

    #[inline(always)]
    fn drift_point<T: Float>(&self, x: &[T], c: &[T], p: &[T], dx: &mut [T]) {
        let (xs, z) = (x[0], x[1]);
        let (tau0, i1, x0) = (p[0], p[1], p[2]);
        let x2 = xs * xs;
        dx[0] = T::one() - xs * x2 - k::<T>(2.0) * x2 - z + i1;
        dx[1] = (k::<T>(4.0) * (xs - x0) - z - c[0]) / tau0;
    }
}
