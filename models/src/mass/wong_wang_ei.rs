//! Wong–Wang excitatory–inhibitory model (Deco et al. 2014): the reduced Wong–Wang mean field with
//! an explicit inhibitory population, so that local inhibition (`J_i`) can balance each region.
//!
//! ```text
//! I_e     = W_e I_o + w_p J_N S_e - J_i S_i + I_ext + J_N c
//! I_i     = W_i I_o + J_N S_e - S_i + lamda J_N c
//! H_e     = (a_e I_e - b_e) / (1 - exp(-d_e (a_e I_e - b_e)))
//! H_i     = (a_i I_i - b_i) / (1 - exp(-d_i (a_i I_i - b_i)))
//! dS_e/dt = -S_e / tau_e + (1 - S_e) gamma_e H_e
//! dS_i/dt = -S_i / tau_i + gamma_i H_i
//! ```
//! `S_e`, `S_i` are the excitatory (NMDA) and inhibitory (GABA) gating variables, `I_e`, `I_i`
//! the input currents (nA) and `H_e`, `H_i` the population rates. Units follow the paper (and
//! TVB): time in ms, rates in Hz, `d` in s, and `gamma_e = 0.641/1000`, `gamma_i = 1/1000`
//! carry the conversion from Hz to ms⁻¹. The removable singularity of `H` at `a I = b` is
//! handled as in [`crate::wong_wang`].
//!
//! | parameter | default    | unit | meaning                                          |
//! |-----------|------------|------|--------------------------------------------------|
//! | `a_e`     | 310        | n/C  | excitatory gain                                  |
//! | `b_e`     | 125        | Hz   | excitatory threshold                             |
//! | `d_e`     | 0.16       | s    | excitatory curvature                             |
//! | `gamma_e` | 0.641/1000 | 1    | excitatory kinetic parameter                     |
//! | `tau_e`   | 100        | ms   | NMDA decay time constant                         |
//! | `w_p`     | 1.4        | 1    | excitatory recurrence                            |
//! | `J_N`     | 0.15       | nA   | NMDA coupling                                    |
//! | `W_e`     | 1          | 1    | scaling of the external input to E               |
//! | `a_i`     | 615        | n/C  | inhibitory gain                                  |
//! | `b_i`     | 177        | Hz   | inhibitory threshold                             |
//! | `d_i`     | 0.087      | s    | inhibitory curvature                             |
//! | `gamma_i` | 1/1000     | 1    | inhibitory kinetic parameter                     |
//! | `tau_i`   | 10         | ms   | GABA decay time constant                         |
//! | `J_i`     | 1          | nA   | local inhibitory coupling (feedback inhibition)  |
//! | `W_i`     | 0.7        | 1    | scaling of the external input to I               |
//! | `I_o`     | 0.382      | nA   | effective external input                         |
//! | `I_ext`   | 0          | nA   | external stimulus to E                           |
//! | `lamda`   | 0          | 1    | fraction of the network input that reaches I     |
//!
//! Defaults follow TVB's `ReducedWongWangExcInh` (the paper's values). TVB's model also has its
//! own global coupling `G` (default 2), multiplying the network input; here that role is played
//! by the coupling's `G`, so the model has no `G` parameter. `S_e` and `S_i` are kept in `[0, 1]`
//! by the projection, as TVB's state boundaries do.
//!
//! **Coupling.** One input `c` formed from the other nodes' `S_e`; it enters `I_e` as `J_N c`
//! and `I_i` as `lamda J_N c`. Normally linear coupling `c_i = G Σ_j W_ij S_e,j`.
//!
//! Deco, Ponce-Alvarez, Hagmann, Romani, Mantini & Corbetta (2014), *How local
//! excitation–inhibition ratio impacts the whole brain dynamics*, J. Neurosci. 34(23):7886–7898.

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::util::ww_rate;
use crate::{k, Model, Real};

crate::params! {
    /// Wong–Wang E–I parameters.
    pub struct Params, const PARAMS {
        /// excitatory gain
        a_e = 310.0, "n/C", [1.0, 2000.0];
        /// excitatory threshold
        b_e = 125.0, "Hz", [0.0, 1000.0];
        /// excitatory curvature
        d_e = 0.16, "s", [1e-4, 10.0];
        /// excitatory kinetic parameter
        gamma_e = 0.641e-3, "1", [0.0, 0.1];
        /// NMDA decay time constant
        tau_e = 100.0, "ms", [1e-2, 1000.0];
        /// excitatory recurrence
        w_p = 1.4, "1", [0.0, 10.0];
        /// NMDA coupling
        J_N = 0.15, "nA", [0.0, 10.0];
        /// scaling of the external input to E
        W_e = 1.0, "1", [0.0, 10.0];
        /// inhibitory gain
        a_i = 615.0, "n/C", [1.0, 2000.0];
        /// inhibitory threshold
        b_i = 177.0, "Hz", [0.0, 1000.0];
        /// inhibitory curvature
        d_i = 0.087, "s", [1e-4, 10.0];
        /// inhibitory kinetic parameter
        gamma_i = 1e-3, "1", [0.0, 0.1];
        /// GABA decay time constant
        tau_i = 10.0, "ms", [1e-2, 1000.0];
        /// local inhibitory coupling
        J_i = 1.0, "nA", [0.0, 10.0];
        /// scaling of the external input to I
        W_i = 0.7, "1", [0.0, 10.0];
        /// effective external input
        I_o = 0.382, "nA", [-10.0, 10.0];
        /// external stimulus to E
        I_ext = 0.0, "nA", [-10.0, 10.0];
        /// fraction of the network input reaching I
        lamda = 0.0, "1", [0.0, 1.0];
    }
}

/// The Wong–Wang excitatory–inhibitory model.
#[derive(Debug, Clone, Copy, Default)]
pub struct WongWangEi;

/// Static description of [`WongWangEi`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "wong_wang_ei",
    title: "Wong–Wang excitatory–inhibitory (Deco 2014)",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.1,
    sample_period: None,
    state: &[
        VarSpec::new(
            "S_e",
            "1",
            0.1,
            (0.0, 1.0),
            "excitatory (NMDA) gating variable",
        ),
        VarSpec::new(
            "S_i",
            "1",
            0.05,
            (0.0, 1.0),
            "inhibitory (GABA) gating variable",
        ),
    ],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' S_e (J_N c into E, lamda J_N c into I)",
    }],
    coupling_function: CouplingFunction::Linear,
    coupling_strength: 1.0,
    citation: "Deco et al. (2014) J. Neurosci. 34(23):7886-7898",
};

impl Model for WongWangEi {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }
    const PROJECTS: bool = true;

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let (s_e, s_i) = (x[0], x[1]);
        let Params {
            a_e,
            b_e,
            d_e,
            gamma_e,
            tau_e,
            w_p,
            J_N: j_n,
            W_e: w_e,
            a_i,
            b_i,
            d_i,
            gamma_i,
            tau_i,
            J_i: j_i,
            W_i: w_i,
            I_o: i_o,
            I_ext: i_ext,
            lamda,
        } = Params::from_slice(p);

        let cc = j_n * c[0];
        let jn_se = j_n * s_e;
        let cur_e = w_e * i_o + w_p * jn_se - j_i * s_i + i_ext + cc;
        let cur_i = w_i * i_o + jn_se - s_i + lamda * cc;
        let h_e = ww_rate(a_e * cur_e - b_e, d_e);
        let h_i = ww_rate(a_i * cur_i - b_i, d_i);
        dx[0] = -s_e / tau_e + (k::<R>(1.0) - s_e) * gamma_e * h_e;
        dx[1] = -s_i / tau_i + gamma_i * h_i;
    }

    #[inline(always)]
    fn project<R: Real>(&self, x: &mut [R]) {
        x[0] = x[0].max(k::<R>(0.0)).min(k::<R>(1.0));
        x[1] = x[1].max(k::<R>(0.0)).min(k::<R>(1.0));
    }
}
