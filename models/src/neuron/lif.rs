//! Leaky integrate-and-fire neuron (Lapicque 1907; in this form e.g. Tuckwell 1988, Gerstner
//! et al. 2014 ch. 1): a passive membrane that spikes and resets when it reaches a threshold.
//!
//! ```text
//! dV/dt = −(V − E_L) / τ_m + I / C
//! spike when V crosses V_th upwards:  V ← V_reset,  refractory for t_ref (V held at V_reset)
//! ```
//! With `C` in pF and `I` in pA, `I / C` is in mV/ms; the membrane resistance is
//! `R = τ_m / C` (10 ms / 250 pF = 40 MΩ). For a constant `I` with `R I > V_th − E_L`, the
//! neuron fires periodically with rate
//! `1 / (t_ref + τ_m ln((E_L + R I − V_reset) / (E_L + R I − V_th)))`.
//!
//! | parameter | default | unit | meaning                                     |
//! |-----------|---------|------|---------------------------------------------|
//! | `tau_m`   | 10      | ms   | membrane time constant                      |
//! | `C`       | 250     | pF   | membrane capacitance                        |
//! | `E_L`     | −70     | mV   | resting potential                           |
//! | `V_th`    | −55     | mV   | spike threshold (upward crossing = spike)   |
//! | `V_reset` | −70     | mV   | reset potential                             |
//! | `t_ref`   | 2       | ms   | absolute refractory period                  |
//!
//! The defaults are NEST's `iaf_psc_delta` / `iaf_psc_alpha` defaults (Gewaltig & Diesmann
//! 2007, NEST model documentation), a generic cortical cell; the rheobase is
//! `C (V_th − E_L) / τ_m = 375 pA`.
//!
//! **State.** `V` (mV) and the refractory countdown `r` (ms left, see [`crate::neuron`]).
//!
//! **Linear part.** `V` is linear with `a = −1/τ_m` outside the refractory period (0 inside),
//! so exponential Euler integrates the subthreshold membrane exactly.
//!
//! Lapicque (1907), J. Physiol. Pathol. Gen. 9:620–635; Tuckwell (1988), *Introduction to
//! theoretical neurobiology*, vol. 1, Cambridge UP; Gerstner, Kistler, Naud & Paninski (2014),
//! *Neuronal Dynamics*, Cambridge UP, ch. 1.3; Gewaltig & Diesmann (2007), NEST, Scholarpedia
//! 2(4):1430.

use crate::neuron::{refractory, InputSpec, Neuron, NeuronError, NeuronSpec};
use crate::spec::{TimeUnit, VarSpec};
use crate::{k, Real};

crate::params! {
    /// Leaky integrate-and-fire parameters.
    pub struct Params, const PARAMS {
        /// membrane time constant
        tau_m = 10.0, "ms", [0.1, 1000.0];
        /// membrane capacitance
        C = 250.0, "pF", [1.0, 100_000.0];
        /// resting potential
        E_L = -70.0, "mV", [-120.0, 0.0];
        /// spike threshold
        V_th = -55.0, "mV", [-100.0, 20.0];
        /// reset potential
        V_reset = -70.0, "mV", [-120.0, 0.0];
        /// absolute refractory period
        t_ref = 2.0, "ms", [0.0, 100.0];
    }
}

/// The leaky integrate-and-fire neuron.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lif;

/// Static description of [`Lif`].
pub const SPEC: NeuronSpec = NeuronSpec {
    name: "lif",
    title: "Leaky integrate-and-fire",
    time_unit: TimeUnit::Ms,
    default_dt: 0.025,
    state: &[
        VarSpec::new("V", "mV", -70.0, (-80.0, -55.0), "membrane potential"),
        VarSpec::new(
            "r",
            "ms",
            0.0,
            (0.0, 2.0),
            "refractory time left (refractory while > 0)",
        ),
    ],
    params: PARAMS,
    input: InputSpec {
        name: "I",
        unit: "pA",
        doc: "injected current",
    },
    threshold: "V_th",
    surrogate_slope: 1.0,
    citation: "Lapicque (1907); Tuckwell (1988); NEST iaf_psc_delta defaults",
};

impl Neuron for Lif {
    const SPEC: &'static NeuronSpec = &SPEC;

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], i_ext: R, p: &[R], dx: &mut [R]) {
        let Params { tau_m, C, E_L, .. } = Params::from_slice(p);
        let (v, r) = (x[0], x[1]);
        let (refr, dr) = refractory(r);
        dx[0] = R::select(refr, k(0.0), (E_L - v) / tau_m + i_ext / C);
        dx[1] = dr;
    }

    const LINEAR: bool = true;

    /// `V` with `a = −1/τ_m` outside the refractory period, 0 inside; `r` by Euler.
    #[inline(always)]
    fn linear<R: Real>(&self, x: &[R], _i_ext: R, p: &[R], a: &mut [R]) {
        let Params { tau_m, .. } = Params::from_slice(p);
        let (refr, _) = refractory(x[1]);
        a[0] = R::select(refr, k(0.0), -tau_m.recip());
    }

    /// `V = E_L`, not refractory.
    fn rest<R: Real>(&self, p: &[R], x: &mut [R]) {
        x[0] = Params::from_slice(p).E_L;
        x[1] = k(0.0);
    }

    fn threshold<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).V_th
    }

    const RESETS: bool = true;

    /// `V ← V − s (V − V_reset)`, `r ← r − s (r − t_ref)`.
    #[inline(always)]
    fn reset<R: Real>(&self, x: &mut [R], s: R, p: &[R]) {
        let Params { V_reset, t_ref, .. } = Params::from_slice(p);
        x[0] = x[0] - s * (x[0] - V_reset);
        x[1] = x[1] - s * (x[1] - t_ref);
    }

    /// Bounds, and `V_reset < V_th`.
    fn validate(&self, p: &[f64]) -> Result<(), NeuronError> {
        SPEC.check_bounds(p)?;
        let q = Params::from_slice(p);
        if q.V_reset >= q.V_th {
            return Err(NeuronError::Inconsistent {
                neuron: SPEC.name,
                what: format!(
                    "V_reset = {} mV must lie below V_th = {} mV",
                    q.V_reset, q.V_th
                ),
            });
        }
        Ok(())
    }
}
