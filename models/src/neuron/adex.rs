//! Adaptive exponential integrate-and-fire neuron (AdEx; Brette & Gerstner 2005): a leaky
//! membrane with an exponential spike-initiation current and a spike-triggered, subthreshold-
//! coupled adaptation current `w`.
//!
//! ```text
//! C dV/dt   = −g_L (V − E_L) + g_L Δ_T exp((V − V_T) / Δ_T) − w + I
//! τ_w dw/dt = a (V − E_L) − w
//! spike when V crosses V_peak upwards:  V ← V_reset,  w ← w + b,  refractory for t_ref
//! ```
//! (Brette & Gerstner 2005: the two equations and the reset rule of their model.) Units: nS · mV = pA and
//! pA / pF = mV/ms, so with `C` in pF, conductances in nS and currents in pA the drift is in
//! mV/ms and w in pA.
//!
//! | parameter | default | unit | meaning                                          |
//! |-----------|---------|------|--------------------------------------------------|
//! | `C`       | 281     | pF   | membrane capacitance                             |
//! | `g_L`     | 30      | nS   | leak conductance                                 |
//! | `E_L`     | −70.6   | mV   | leak reversal (resting) potential                |
//! | `V_T`     | −50.4   | mV   | threshold of the exponential term                |
//! | `Delta_T` | 2       | mV   | slope factor (sharpness of spike initiation)     |
//! | `tau_w`   | 144     | ms   | adaptation time constant                         |
//! | `a`       | 4       | nS   | subthreshold adaptation                          |
//! | `b`       | 80.5    | pA   | spike-triggered adaptation increment             |
//! | `V_reset` | −70.6   | mV   | reset potential                                  |
//! | `V_peak`  | 0       | mV   | spike cut-off: a spike is an upward crossing     |
//! | `t_ref`   | 0       | ms   | absolute refractory period (V held at V_reset)   |
//!
//! `C` … `b` and `V_reset = E_L` are Brette & Gerstner's fit to a regular-spiking pyramidal
//! cell (2005, the regular-spiking parameters, also those of Brian2's `Brette_Gerstner_2005`
//! example). `V_peak` is a numerical cut-off: `V` diverges in finite time
//! once the exponential dominates (Touboul & Brette 2008), so spike times hardly depend on it;
//! 0 mV is the cut-off of the Brian2 reproduction of Naud et al. 2008's firing patterns
//! (`examples/frompapers/Naud_et_al_2008_adex_firing_patterns.py`). The original model has no
//! refractory period (`t_ref = 0`); `t_ref` is the usual extension (e.g. NEST `aeif_cond_exp`).
//! Naud et al. 2008 (Table 1) give the parameter sets for tonic, adapting, bursting and other
//! patterns.
//!
//! **State.** `V` (mV), `w` (pA) and the refractory countdown `r` (ms left, see
//! [`crate::neuron`]). While `r > 0`, `dV/dt = 0`; `w` evolves throughout.
//!
//! **Overshoot.** Above `V_peak` the neuron has spiked and its reset is due; the drift reads
//! `V` as `min(V, V_peak)` there, so that a step or an integration stage that overshoots (the
//! exponential term makes `V` leave to infinity) gives a finite `dV/dt` and cannot carry a
//! huge `V` into `w`. The exponential itself is [`Real::exp_safe`], finite in `f32`.
//!
//! **Linear part.** `w` is linear with `a = −1/τ_w` (exact under exponential Euler); `V` is
//! stepped by Euler (its exponential term is not linear in `V`).
//!
//! Brette & Gerstner (2005), *Adaptive exponential integrate-and-fire model as an effective
//! description of neuronal activity*, J. Neurophysiol. 94:3637–3642; Naud, Marcille, Clopath
//! & Gerstner (2008), *Firing patterns in the adaptive exponential integrate-and-fire model*,
//! Biol. Cybern. 99:335–347; Touboul & Brette (2008), Biol. Cybern. 99:319–334.

use crate::neuron::{refractory, InputSpec, Neuron, NeuronError, NeuronSpec};
use crate::spec::{TimeUnit, VarSpec};
use crate::{k, Real};

crate::params! {
    /// AdEx parameters.
    pub struct Params, const PARAMS {
        /// membrane capacitance
        C = 281.0, "pF", [1.0, 100_000.0];
        /// leak conductance
        g_L = 30.0, "nS", [0.01, 10_000.0];
        /// leak reversal (resting) potential
        E_L = -70.6, "mV", [-120.0, 0.0];
        /// threshold of the exponential term
        V_T = -50.4, "mV", [-100.0, 0.0];
        /// slope factor of spike initiation
        Delta_T = 2.0, "mV", [0.1, 20.0];
        /// adaptation time constant
        tau_w = 144.0, "ms", [0.1, 100_000.0];
        /// subthreshold adaptation
        a = 4.0, "nS", [-100.0, 1000.0];
        /// spike-triggered adaptation increment
        b = 80.5, "pA", [-1000.0, 10_000.0];
        /// reset potential
        V_reset = -70.6, "mV", [-120.0, 0.0];
        /// spike cut-off (upward crossing = spike)
        V_peak = 0.0, "mV", [-60.0, 60.0];
        /// absolute refractory period
        t_ref = 0.0, "ms", [0.0, 100.0];
    }
}

/// The adaptive exponential integrate-and-fire neuron.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdEx;

/// Static description of [`AdEx`].
pub const SPEC: NeuronSpec = NeuronSpec {
    name: "adex",
    title: "Adaptive exponential integrate-and-fire (Brette & Gerstner 2005)",
    time_unit: TimeUnit::Ms,
    default_dt: 0.025,
    state: &[
        VarSpec::new("V", "mV", -70.6, (-90.0, 0.0), "membrane potential"),
        VarSpec::new("w", "pA", 0.0, (-200.0, 1000.0), "adaptation current"),
        VarSpec::new(
            "r",
            "ms",
            0.0,
            (0.0, 5.0),
            "refractory time left (refractory while > 0)",
        ),
    ],
    params: PARAMS,
    input: InputSpec {
        name: "I",
        unit: "pA",
        doc: "injected current",
    },
    threshold: "V_peak",
    surrogate_slope: 1.0,
    citation: "Brette & Gerstner (2005) J. Neurophysiol. 94:3637-3642; \
               Naud et al. (2008) Biol. Cybern. 99:335-347",
};

impl Neuron for AdEx {
    const SPEC: &'static NeuronSpec = &SPEC;

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], i_ext: R, p: &[R], dx: &mut [R]) {
        let Params {
            C,
            g_L,
            E_L,
            V_T,
            Delta_T,
            tau_w,
            a,
            V_peak,
            ..
        } = Params::from_slice(p);
        let v = x[0].min(V_peak);
        let (w, r) = (x[1], x[2]);
        let (refr, dr) = refractory(r);
        let spike_current = g_L * Delta_T * ((v - V_T) / Delta_T).exp_safe();
        let dv = (-g_L * (v - E_L) + spike_current - w + i_ext) / C;
        dx[0] = R::select(refr, k(0.0), dv);
        dx[1] = (a * (v - E_L) - w) / tau_w;
        dx[2] = dr;
    }

    const LINEAR: bool = true;

    /// `w` with `a = −1/τ_w`; `V` and `r` by Euler.
    #[inline(always)]
    fn linear<R: Real>(&self, _x: &[R], _i_ext: R, p: &[R], a: &mut [R]) {
        let Params { tau_w, .. } = Params::from_slice(p);
        a[1] = -tau_w.recip();
    }

    /// `V = E_L`, `w = 0`, not refractory.
    fn rest<R: Real>(&self, p: &[R], x: &mut [R]) {
        let Params { E_L, .. } = Params::from_slice(p);
        x[0] = E_L;
        x[1] = k(0.0);
        x[2] = k(0.0);
    }

    fn threshold<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).V_peak
    }

    const RESETS: bool = true;

    /// `V ← V − s (V − V_reset)`, `w ← w + s b`, `r ← r − s (r − t_ref)`.
    #[inline(always)]
    fn reset<R: Real>(&self, x: &mut [R], s: R, p: &[R]) {
        let Params {
            b, V_reset, t_ref, ..
        } = Params::from_slice(p);
        x[0] = x[0] - s * (x[0] - V_reset);
        x[1] = x[1] + s * b;
        x[2] = x[2] - s * (x[2] - t_ref);
    }

    /// Bounds, and `V_reset < V_peak`, `V_T < V_peak` (a reset at or above the cut-off would
    /// fire at every step; a cut-off below `V_T` cuts the spike's upswing).
    fn validate(&self, p: &[f64]) -> Result<(), NeuronError> {
        SPEC.check_bounds(p)?;
        let q = Params::from_slice(p);
        let bad = |what: String| {
            Err(NeuronError::Inconsistent {
                neuron: SPEC.name,
                what,
            })
        };
        if q.V_reset >= q.V_peak {
            return bad(format!(
                "V_reset = {} mV must lie below V_peak = {} mV",
                q.V_reset, q.V_peak
            ));
        }
        if q.V_T >= q.V_peak {
            return bad(format!(
                "V_T = {} mV must lie below V_peak = {} mV",
                q.V_T, q.V_peak
            ));
        }
        Ok(())
    }
}
