//! Montbrió–Pazó–Roxin (MPR) next-generation neural mass: the exact mean field of an infinite
//! population of quadratic integrate-and-fire neurons with Lorentzian-distributed excitability.
//!
//! ```text
//! dr/dt = ( Delta / (pi tau) + 2 r V ) / tau
//! dV/dt = ( V^2 + eta + J tau r + I + cr c_r + cv c_V - (pi tau r)^2 ) / tau
//! ```
//! `r` is the population firing rate (kHz when time is in ms), `V` the mean membrane potential
//! (dimensionless in the QIF normalisation; commonly quoted in mV). `c_r` is the network input
//! formed from the other nodes' `r`, `c_V` from their `V` (off by default, as in vbjax). Both are
//! normally formed by linear coupling, `c_i = G Σ_j W_ij x_j`.
//!
//! As in vbjax, `r` is clipped at zero inside the right-hand side and after every integration
//! stage (TVB instead declares `r >= 0` as a state boundary, which has the same effect at stage
//! points).
//!
//! Montbrió, Pazó & Roxin (2015), *Macroscopic description for networks of spiking neurons*,
//! Phys. Rev. X 5:021028. Parameter names and defaults follow vbjax 0.0.19 (`mpr_default_theta`)
//! and TVB's `MontbrioPazoRoxin`.

use num_traits::Float;
use std::f64::consts::PI;

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{k, Model, Real};

crate::params! {
    /// MPR's parameters.
    pub struct Params, const PARAMS {
        /// membrane time constant
        tau = 1.0, "ms", [1e-3, 100.0];
        /// external input current
        I = 0.0, "mV", [-100.0, 100.0];
        /// half-width of the Lorentzian distribution of excitabilities
        Delta = 1.0, "mV", [1e-6, 100.0];
        /// recurrent synaptic weight
        J = 15.0, "mV ms", [-100.0, 100.0];
        /// mean excitability
        eta = -5.0, "mV", [-100.0, 100.0];
        /// gain of the network input formed from r
        cr = 1.0, "1", [-100.0, 100.0];
        /// gain of the network input formed from V
        cv = 0.0, "1", [-100.0, 100.0];
    }
}

/// The MPR model (unit struct: all its numbers are parameters).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mpr;

/// Static description of [`Mpr`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "mpr",
    title: "Montbrió–Pazó–Roxin QIF mean field",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.01,
    sample_period: None,
    state: &[
        VarSpec {
            name: "r",
            unit: "kHz",
            initial: 0.1,
            range: (0.0, 2.0),
            doc: "population firing rate",
        },
        VarSpec {
            name: "V",
            unit: "mV",
            initial: -2.0,
            range: (-2.0, 1.5),
            doc: "mean membrane potential",
        },
    ],
    params: PARAMS,
    coupling: &[
        CouplingSpec {
            name: "c_r",
            var: 0,
            sends: None,
            default_on: true,
            doc: "network input from the other nodes' firing rates",
        },
        CouplingSpec {
            name: "c_V",
            var: 1,
            sends: None,
            default_on: false,
            doc: "network input from the other nodes' potentials (scaled by cv)",
        },
    ],
    coupling_function: CouplingFunction::Linear,
    coupling_strength: 0.5,
    citation: "Montbrió, Pazó & Roxin (2015) Phys. Rev. X 5:021028",
};

impl Model for Mpr {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }
    const PROJECTS: bool = true;

    #[inline(always)]
    #[allow(non_snake_case)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let Params {
            tau,
            I,
            Delta,
            J,
            eta,
            cr,
            cv,
        } = Params::from_slice(p);
        let (r, v) = (x[0].max(k(0.0)), x[1]);
        let inv_tau = tau.recip();
        dx[0] = (Delta * inv_tau * k(1.0 / PI) + k::<R>(2.0) * r * v) * inv_tau;
        let pi_tau_r = k::<R>(PI) * tau * r;
        dx[1] =
            (v * v + eta + J * tau * r + I + cr * c[0] + cv * c[1] - pi_tau_r * pi_tau_r) * inv_tau;
    }

    #[inline(always)]
    fn project<R: Real>(&self, x: &mut [R]) {
        x[0] = x[0].max(k(0.0));
    }

    const HAND_VJP: bool = true;

    #[inline(always)]
    fn drift_vjp_point<T: Float + 'static>(
        &self,
        x: &[T],
        c: &[T],
        p: &[T],
        ld: &[T],
        lx: &mut [T],
        lc: &mut [T],
        lp: &mut [T],
    ) {
        // r⁺ = max(r, 0) passes the derivative on where r ≥ 0 (ties to r, as `max` does).
        let on = x[0] >= T::zero();
        let (r, v) = (if on { x[0] } else { T::zero() }, x[1]);
        let Params {
            tau,
            I: i_ext,
            Delta: delta,
            J: j,
            eta,
            cr,
            cv,
        } = Params::from_slice(p);
        let ix = Params::index();
        let (a, b) = (ld[0], ld[1]);
        let inv_tau = tau.recip();
        let two = k::<T>(2.0);
        let pi = k::<T>(PI);
        let pi_tau_r = pi * tau * r;
        // dx0 = δ/(π τ²) + 2 r v / τ;  dx1 = q / τ with q the bracket of drift.
        let q = v * v + eta + j * tau * r + i_ext + cr * c[0] + cv * c[1] - pi_tau_r * pi_tau_r;
        let b_inv = b * inv_tau;
        if on {
            lx[0] = lx[0] + two * v * a * inv_tau + (j * tau - two * pi * tau * pi_tau_r) * b_inv;
        }
        lx[1] = lx[1] + two * r * a * inv_tau + two * v * b_inv;
        lc[0] = lc[0] + cr * b_inv;
        lc[1] = lc[1] + cv * b_inv;
        let inv2 = inv_tau * inv_tau;
        // ∂/∂τ: dx0 = (δ/π) τ⁻² + 2 r v τ⁻¹; dx1 = q τ⁻¹ with ∂q/∂τ = j r − 2 π r (π τ r).
        let d0_tau = -two * delta * k::<T>(1.0 / PI) * inv2 * inv_tau - two * r * v * inv2;
        let d1_tau = (j * r - two * pi * r * pi_tau_r) * inv_tau - q * inv2;
        lp[ix.tau] = lp[ix.tau] + a * d0_tau + b * d1_tau;
        lp[ix.I] = lp[ix.I] + b_inv;
        lp[ix.Delta] = lp[ix.Delta] + a * inv2 * k::<T>(1.0 / PI);
        lp[ix.J] = lp[ix.J] + b * r;
        lp[ix.eta] = lp[ix.eta] + b_inv;
        lp[ix.cr] = lp[ix.cr] + c[0] * b_inv;
        lp[ix.cv] = lp[ix.cv] + c[1] * b_inv;
    }

    #[inline(always)]
    fn project_vjp_point<T: Float + 'static>(&self, u: &[T], lam: &mut [T]) {
        if u[0] < T::zero() || u[0].is_nan() {
            lam[0] = T::zero();
        }
    }
}
