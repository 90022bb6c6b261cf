//! Jansen–Rit neural mass: a cortical column of pyramidal cells with excitatory and inhibitory
//! interneuron feedback, each population a second-order linear synapse driven by a sigmoid of
//! its input potential.
//!
//! ```text
//! dy0/dt = y3
//! dy1/dt = y4
//! dy2/dt = y5
//! dy3/dt = A a S(y1 - y2)                         - 2 a y3 - a² y0
//! dy4/dt = A a (mu + a_2 J S(a_1 J y0) + c)       - 2 a y4 - a² y1
//! dy5/dt = B b a_4 J S(a_3 J y0)                  - 2 b y5 - b² y2
//! S(v)   = 2 nu_max / (1 + exp(r (v0 - v)))
//! ```
//! `y0` is the pyramidal cells' output potential, `y1` and `y2` the excitatory and inhibitory
//! post-synaptic potentials on the pyramidal cells, `y3..y5` their time derivatives. The
//! pyramidal membrane potential, the usual EEG-like output, is `y1 - y2`. Time is in ms, rates
//! in ms⁻¹ (`mu = 0.22` is the paper's mean input of 220 pulses/s).
//!
//! | parameter | default | unit  | meaning                                                |
//! |-----------|---------|-------|--------------------------------------------------------|
//! | `A`       | 3.25    | mV    | maximal excitatory post-synaptic potential             |
//! | `B`       | 22      | mV    | maximal inhibitory post-synaptic potential             |
//! | `a`       | 0.1     | ms⁻¹  | excitatory synaptic rate constant (1/10 ms)            |
//! | `b`       | 0.05    | ms⁻¹  | inhibitory synaptic rate constant (1/20 ms)            |
//! | `v0`      | 6       | mV    | potential of half-maximal firing                       |
//! | `nu_max`  | 0.0025  | ms⁻¹  | half the maximal firing rate (`e0` in the paper)       |
//! | `r`       | 0.56    | mV⁻¹  | sigmoid steepness                                      |
//! | `J`       | 135     | 1     | number of synaptic contacts (`C` in the paper)         |
//! | `a_1..4`  | 1, 0.8, 0.25, 0.25 | 1 | fractions of `J` for the four connections     |
//! | `mu`      | 0.22    | ms⁻¹  | mean external input rate `p`                           |
//!
//! Defaults are those of Jansen & Rit (1995), which TVB (`JansenRit`) and vbjax
//! (`jr_default_theta`) share except for `v0`: both use 5.52 mV where the paper has 6 mV. We
//! follow the paper: with `v0 = 6` and `mu = 0.22` an uncoupled column shows the alpha rhythm
//! (about 11 Hz) the model was built for, whereas with 5.52 it settles on a large, slower
//! (about 7 Hz) spike-like cycle. Set `v0 = 5.52` to reproduce TVB/vbjax runs. Admissible bounds are wider,
//! physically meaningful ranges (TVB's `domain`s are slider ranges, e.g. `mu <= 0.22`, which
//! would exclude most of the paper's input range 120–320 pulses/s). vbjax's unused `I` parameter
//! is left out.
//!
//! **Coupling.** One input `c`, added to the input rate `mu` of the excitatory synapse (as in
//! TVB and vbjax). Each node sends its pyramidal membrane potential `y1 - y2`
//! ([`Model::coupled`]), and the network input is normally TVB's `SigmoidalJansenRit` coupling
//! (`c_i = G Σ_j W_ij S(y1_j - y2_j)` with the coupling's own sigmoid; note that TVB's default
//! coupling midpoint is 6 mV, not the model's `v0`), so `c` is a firing rate in ms⁻¹.
//!
//! Jansen & Rit (1995), *Electroencephalogram and visual evoked potential generation in a
//! mathematical model of coupled cortical columns*, Biol. Cybern. 73:357–366.

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{k, Model, Real};

crate::params! {
    /// Jansen–Rit parameters.
    pub struct Params, const PARAMS {
        /// maximal excitatory post-synaptic potential
        A = 3.25, "mV", [0.1, 50.0];
        /// maximal inhibitory post-synaptic potential
        B = 22.0, "mV", [0.1, 200.0];
        /// excitatory synaptic rate constant
        a = 0.1, "1/ms", [1e-3, 1.0];
        /// inhibitory synaptic rate constant
        b = 0.05, "1/ms", [1e-3, 1.0];
        /// potential of half-maximal firing
        v0 = 6.0, "mV", [-20.0, 20.0];
        /// half the maximal firing rate
        nu_max = 0.0025, "1/ms", [1e-5, 0.1];
        /// steepness of the sigmoid
        r = 0.56, "1/mV", [0.01, 5.0];
        /// average number of synaptic contacts
        J = 135.0, "1", [1.0, 2000.0];
        /// fraction of J: pyramidal to excitatory interneurons
        a_1 = 1.0, "1", [0.0, 5.0];
        /// fraction of J: excitatory interneurons to pyramidal
        a_2 = 0.8, "1", [0.0, 5.0];
        /// fraction of J: pyramidal to inhibitory interneurons
        a_3 = 0.25, "1", [0.0, 5.0];
        /// fraction of J: inhibitory interneurons to pyramidal
        a_4 = 0.25, "1", [0.0, 5.0];
        /// mean external input rate (p)
        mu = 0.22, "1/ms", [-1.0, 2.0];
    }
}

/// The Jansen–Rit model.
#[derive(Debug, Clone, Copy, Default)]
pub struct JansenRit;

/// Static description of [`JansenRit`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "jansen_rit",
    title: "Jansen–Rit cortical column",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.1,
    sample_period: None,
    state: &[
        VarSpec {
            name: "y0",
            unit: "mV",
            initial: 0.0,
            range: (0.0, 0.2),
            doc: "pyramidal cells' output potential",
        },
        VarSpec {
            name: "y1",
            unit: "mV",
            initial: 0.0,
            range: (0.0, 40.0),
            doc: "excitatory post-synaptic potential on the pyramidal cells",
        },
        VarSpec {
            name: "y2",
            unit: "mV",
            initial: 0.0,
            range: (0.0, 40.0),
            doc: "inhibitory post-synaptic potential on the pyramidal cells",
        },
        VarSpec {
            name: "y3",
            unit: "mV/ms",
            initial: 0.0,
            range: (-0.05, 0.05),
            doc: "time derivative of y0",
        },
        VarSpec {
            name: "y4",
            unit: "mV/ms",
            initial: 0.0,
            range: (-2.0, 2.0),
            doc: "time derivative of y1",
        },
        VarSpec {
            name: "y5",
            unit: "mV/ms",
            initial: 0.0,
            range: (-1.0, 1.0),
            doc: "time derivative of y2",
        },
    ],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 1,
        sends: Some("y1 - y2"),
        default_on: true,
        doc: "network input rate, added to mu (normally sigmoidal Jansen–Rit coupling of y1 - y2)",
    }],
    coupling_function: CouplingFunction::SigmoidalJansenRit,
    coupling_strength: 1.0,
    citation: "Jansen & Rit (1995) Biol. Cybern. 73:357-366",
};

#[inline(always)]
fn sigm<R: Real>(v: R, nu_max: R, r: R, v0: R) -> R {
    nu_max * (k::<R>(1.0) + (r * (v - v0) * k(0.5)).tanh())
}

impl Model for JansenRit {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let (y0, y1, y2, y3, y4, y5) = (x[0], x[1], x[2], x[3], x[4], x[5]);
        let Params {
            A: a_big,
            B: b_big,
            a,
            b,
            v0,
            nu_max,
            r,
            J: j,
            a_1,
            a_2,
            a_3,
            a_4,
            mu,
        } = Params::from_slice(p);

        let two = k::<R>(2.0);
        let s_pyr = sigm(y1 - y2, nu_max, r, v0);
        let s_exc = sigm(a_1 * j * y0, nu_max, r, v0);
        let s_inh = sigm(a_3 * j * y0, nu_max, r, v0);
        dx[0] = y3;
        dx[1] = y4;
        dx[2] = y5;
        dx[3] = a_big * a * s_pyr - two * a * y3 - a * a * y0;
        dx[4] = a_big * a * (mu + a_2 * j * s_exc + c[0]) - two * a * y4 - a * a * y1;
        dx[5] = b_big * b * a_4 * j * s_inh - two * b * y5 - b * b * y2;
    }

    #[inline(always)]
    fn coupled<R: Real>(&self, _k: usize, x: &[R], _p: &[R]) -> R {
        x[1] - x[2]
    }
}
