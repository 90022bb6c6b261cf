//! Reduced Wong–Wang model (Deco et al. 2013): one NMDA gating variable per region, the mean field
//! reduction of a spiking network of excitatory neurons with slow NMDA recurrence.
//!
//! ```text
//! x     = w J_N S + I_o + J_N c
//! H(x)  = (a x - b) / (1 - exp(-d (a x - b)))
//! dS/dt = -S / tau_s + (1 - S) gamma H(x)
//! ```
//! `S` is the fraction of open NMDA channels (in `[0, 1]`), `x` the total input current (nA),
//! `H` the population firing rate (kHz, since time is in ms). `H` has a removable singularity at
//! `a x = b`, where it equals `1/d`; it is evaluated there by its Taylor series (see
//! `util::ww_rate`), so neither the value nor the gradient is ever NaN.
//!
//! | parameter | default | unit   | meaning                                   |
//! |-----------|---------|--------|-------------------------------------------|
//! | `a`       | 0.27    | kHz/nA | gain of the input–rate function (270 n/C) |
//! | `b`       | 0.108   | kHz    | threshold of the input–rate function      |
//! | `d`       | 154     | ms     | curvature of the input–rate function      |
//! | `gamma`   | 0.641   | 1      | kinetic parameter                         |
//! | `tau_s`   | 100     | ms     | NMDA decay time constant                  |
//! | `w`       | 0.6     | 1      | local excitatory recurrence               |
//! | `J_N`     | 0.2609  | nA     | NMDA synaptic coupling                    |
//! | `I_o`     | 0.33    | nA     | effective external input                  |
//!
//! Defaults follow TVB's `ReducedWongWang` (Deco et al. 2013's values in ms/kHz units; vbjax has
//! no Wong–Wang model). As in TVB, `S` is kept in `[0, 1]` by the projection after each stage.
//!
//! **Coupling.** One input `c` formed from the other nodes' `S` and added to the input current
//! as `J_N c`; normally linear coupling `c_i = G Σ_j W_ij S_j`.
//!
//! Deco, Ponce-Alvarez, Mantini, Romani, Hagmann & Corbetta (2013), *Resting-state functional
//! connectivity emerges from structurally and dynamically shaped slow linear fluctuations*,
//! J. Neurosci. 33(27):11239–11252; Wong & Wang (2006), J. Neurosci. 26(4):1314–1328.

use burn::prelude::{Backend, Tensor};
use num_traits::Float;

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, ParamSpec, VarSpec};
use crate::util::{ww_rate, ww_rate_point};
use crate::Model;

/// The reduced Wong–Wang model.
#[derive(Debug, Clone, Copy, Default)]
pub struct WongWang;

/// Static description of [`WongWang`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "wong_wang",
    title: "Reduced Wong–Wang (Deco 2013)",
    time_unit: "ms",
    default_dt: 0.1,
    state: &[VarSpec::new(
        "S",
        "1",
        0.1,
        (0.0, 1.0),
        "NMDA gating variable",
    )],
    params: &[
        ParamSpec::new(
            "a",
            0.27,
            "kHz/nA",
            1e-3,
            10.0,
            "gain of the input-rate function",
        ),
        ParamSpec::new(
            "b",
            0.108,
            "kHz",
            0.0,
            10.0,
            "threshold of the input-rate function",
        ),
        ParamSpec::new(
            "d",
            154.0,
            "ms",
            1e-3,
            1000.0,
            "curvature of the input-rate function",
        ),
        ParamSpec::new("gamma", 0.641, "1", 0.0, 10.0, "kinetic parameter"),
        ParamSpec::new(
            "tau_s",
            100.0,
            "ms",
            1e-3,
            1000.0,
            "NMDA decay time constant",
        ),
        ParamSpec::new("w", 0.6, "1", 0.0, 10.0, "local excitatory recurrence"),
        ParamSpec::new("J_N", 0.2609, "nA", 0.0, 10.0, "NMDA synaptic coupling"),
        ParamSpec::new("I_o", 0.33, "nA", -10.0, 10.0, "effective external input"),
    ],
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' S (enters the current as J_N c)",
    }],
    coupling_function: CouplingFunction::Linear,
    coupling_strength: 0.5,
    citation: "Deco et al. (2013) J. Neurosci. 33(27):11239-11252",
};

impl Model for WongWang {
    const SPEC: &'static ModelSpec = &SPEC;
    const PROJECTS: bool = true;

    fn drift<B: Backend>(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>> {
        let [s] = x else {
            panic!("wong_wang: expected 1 state variable")
        };
        let [a, b, d, gamma, tau_s, w, j_n, i_o] = p else {
            panic!("wong_wang: expected 8 parameters")
        };
        let [c] = c else {
            panic!("wong_wang: expected 1 coupling input")
        };
        let mut current = w.clone() * j_n.clone() * s.clone() + i_o.clone();
        if let Some(c) = c {
            current = current + j_n.clone() * c.clone();
        }
        let h = ww_rate(a.clone() * current - b.clone(), d.clone());
        let ds = (s.clone().neg() + 1.0) * gamma.clone() * h - s.clone() / tau_s.clone();
        vec![ds]
    }

    fn project<B: Backend>(&self, mut x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
        x[0] = x[0].clone().clamp(0.0, 1.0);
        x
    }

    #[inline(always)]
    fn drift_point<T: Float>(&self, x: &[T], c: &[T], p: &[T], dx: &mut [T]) {
        let s = x[0];
        let (a, b, d, gamma, tau_s, w, j_n, i_o) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
        let current = w * j_n * s + i_o + j_n * c[0];
        let h = ww_rate_point(a * current - b, d);
        dx[0] = -s / tau_s + (T::one() - s) * gamma * h;
    }

    #[inline(always)]
    fn project_point<T: Float>(&self, x: &mut [T]) {
        x[0] = x[0].max(T::zero()).min(T::one());
    }
}
