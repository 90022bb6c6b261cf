//! Coombes–Byrne next-generation neural mass: the exact (Ott–Antonsen) mean field of a population
//! of quadratic integrate-and-fire neurons with Lorentzian-distributed excitability and
//! conductance-based synapses whose conductance follows an alpha-function (second-order)
//! response to the population's firing rate.
//!
//! ```text
//! dr/dt = Delta/pi + 2 V r - g r
//! dV/dt = V² - pi² r² + eta + (v_syn - V) g + c
//! dg/dt = alpha q
//! dq/dt = alpha (k pi r - g - 2 q)
//! ```
//! `r` is the firing rate, `V` the mean membrane potential, `g` the synaptic conductance and `q`
//! its (scaled) derivative. Dimensionless; like TVB we read time as ms.
//!
//! The `- g r` term in `dr/dt` is what the Lorentzian ansatz gives for the conductance term
//! `g (v_syn - v)` of each neuron (it is linear in `v`, so `W = pi r + i V` picks up
//! `-g W`); TVB's code has `- g r` too, although its docstring writes `- g r²`.
//!
//! | parameter | default | meaning                                                   |
//! |-----------|---------|-----------------------------------------------------------|
//! | `Delta`   | 0.5     | half-width of the Lorentzian distribution of excitability |
//! | `alpha`   | 0.95    | rate of the alpha-function synapse                        |
//! | `v_syn`   | -10     | synaptic reversal potential                               |
//! | `k`       | 1       | local coupling strength (κ)                               |
//! | `eta`     | 20      | centre of the excitability distribution                   |
//!
//! Defaults follow TVB's `CoombesByrne` (vbjax has no such model); TVB's slider domain for `eta`
//! (`[-10, 10]`) excludes its own default, the admissible bounds here do not. As in TVB, `r` is
//! kept non-negative by the projection.
//!
//! At the defaults the population oscillates fast (about 470 Hz reading time as ms: a period of
//! about 2 ms): `simulate` samples it every 0.1 ms by default (`sample_period`), not every 1 ms,
//! which would alias it.
//!
//! **Coupling.** One input `c` formed from the other nodes' `r` and added to `dV/dt`, as in TVB;
//! normally linear coupling `c_i = G Σ_j W_ij r_j`.
//!
//! Coombes & Byrne (2019), *Next generation neural mass models*, in *Nonlinear Dynamics in
//! Computational Neuroscience*, Springer, pp. 1–16; Montbrió, Pazó & Roxin (2015).

use std::f64::consts::PI;

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{k, Model, Real};

crate::params! {
    /// Coombes–Byrne parameters.
    pub struct Params, const PARAMS {
        /// half-width of the excitability distribution
        Delta = 0.5, "1", [0.0, 100.0];
        /// rate of the alpha-function synapse
        alpha = 0.95, "1/ms", [1e-3, 100.0];
        /// synaptic reversal potential
        v_syn = -10.0, "1", [-100.0, 100.0];
        /// local coupling strength
        k = 1.0, "1", [0.0, 100.0];
        /// centre of the excitability distribution
        eta = 20.0, "1", [-100.0, 100.0];
    }
}

/// The Coombes–Byrne model.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoombesByrne;

/// Static description of [`CoombesByrne`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "coombes_byrne",
    title: "Coombes–Byrne next-generation neural mass",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.005,
    sample_period: Some(0.1),
    state: &[
        VarSpec::new("r", "a.u.", 0.5, (0.0, 6.0), "population firing rate"),
        VarSpec::new("V", "a.u.", 0.0, (-10.0, 10.0), "mean membrane potential"),
        VarSpec::new("g", "a.u.", 1.5, (1.0, 2.0), "synaptic conductance"),
        VarSpec::new("q", "a.u.", 0.0, (-0.5, 0.7), "scaled rate of change of g"),
    ],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' r, added to dV/dt",
    }],
    coupling_function: CouplingFunction::Linear,
    coupling_strength: 0.5,
    citation: "Coombes & Byrne (2019) Next generation neural mass models, Springer, pp. 1-16",
};

impl Model for CoombesByrne {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }
    const PROJECTS: bool = true;

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let (r, v, g, q) = (x[0], x[1], x[2], x[3]);
        let Params {
            Delta: delta,
            alpha,
            v_syn,
            k: kk,
            eta,
        } = Params::from_slice(p);
        let pi = k::<R>(PI);
        let two = k::<R>(2.0);
        dx[0] = delta / pi + two * v * r - g * r;
        dx[1] = v * v - pi * pi * r * r + eta + (v_syn - v) * g + c[0];
        dx[2] = alpha * q;
        dx[3] = alpha * (kk * pi * r - g - two * q);
    }

    #[inline(always)]
    fn project<R: Real>(&self, x: &mut [R]) {
        x[0] = x[0].max(k::<R>(0.0));
    }
}
