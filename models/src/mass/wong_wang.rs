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

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::util::ww_rate;
use crate::{k, Model, Real};

crate::params! {
    /// Wong–Wang parameters.
    pub struct Params, const PARAMS {
        /// gain of the input-rate function
        a = 0.27, "kHz/nA", [1e-3, 10.0];
        /// threshold of the input-rate function
        b = 0.108, "kHz", [0.0, 10.0];
        /// curvature of the input-rate function
        d = 154.0, "ms", [1e-3, 1000.0];
        /// kinetic parameter
        gamma = 0.641, "1", [0.0, 10.0];
        /// NMDA decay time constant
        tau_s = 100.0, "ms", [1e-3, 1000.0];
        /// local excitatory recurrence
        w = 0.6, "1", [0.0, 10.0];
        /// NMDA synaptic coupling
        J_N = 0.2609, "nA", [0.0, 10.0];
        /// effective external input
        I_o = 0.33, "nA", [-10.0, 10.0];
    }
}

/// The reduced Wong–Wang model.
#[derive(Debug, Clone, Copy, Default)]
pub struct WongWang;

/// Static description of [`WongWang`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "wong_wang",
    title: "Reduced Wong–Wang (Deco 2013)",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.1,
    sample_period: None,
    state: &[VarSpec::new(
        "S",
        "1",
        0.1,
        (0.0, 1.0),
        "NMDA gating variable",
    )],
    params: PARAMS,
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
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }
    const PROJECTS: bool = true;

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let s = x[0];
        let Params {
            a,
            b,
            d,
            gamma,
            tau_s,
            w,
            J_N: j_n,
            I_o: i_o,
        } = Params::from_slice(p);
        let current = w * j_n * s + i_o + j_n * c[0];
        let h = ww_rate(a * current - b, d);
        dx[0] = -s / tau_s + (k::<R>(1.0) - s) * gamma * h;
    }

    #[inline(always)]
    fn project<R: Real>(&self, x: &mut [R]) {
        x[0] = x[0].max(k::<R>(0.0)).min(k::<R>(1.0));
    }
}
