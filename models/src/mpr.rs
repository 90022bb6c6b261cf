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

use burn::prelude::{Backend, Tensor};
use num_traits::Float;
use std::f64::consts::PI;

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, ParamSpec, VarSpec};
use crate::{k, Model};

/// The MPR model (unit struct: all its numbers are parameters).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mpr;

/// Static description of [`Mpr`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "mpr",
    title: "Montbrió–Pazó–Roxin QIF mean field",
    time_unit: "ms",
    default_dt: 0.01,
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
    params: &[
        ParamSpec {
            name: "tau",
            default: 1.0,
            unit: "ms",
            lower: 1e-3,
            upper: 100.0,
            doc: "membrane time constant",
        },
        ParamSpec {
            name: "I",
            default: 0.0,
            unit: "mV",
            lower: -100.0,
            upper: 100.0,
            doc: "external input current",
        },
        ParamSpec {
            name: "Delta",
            default: 1.0,
            unit: "mV",
            lower: 1e-6,
            upper: 100.0,
            doc: "half-width of the Lorentzian distribution of excitabilities",
        },
        ParamSpec {
            name: "J",
            default: 15.0,
            unit: "mV ms",
            lower: -100.0,
            upper: 100.0,
            doc: "recurrent synaptic weight",
        },
        ParamSpec {
            name: "eta",
            default: -5.0,
            unit: "mV",
            lower: -100.0,
            upper: 100.0,
            doc: "mean excitability",
        },
        ParamSpec {
            name: "cr",
            default: 1.0,
            unit: "1",
            lower: -100.0,
            upper: 100.0,
            doc: "gain of the network input formed from r",
        },
        ParamSpec {
            name: "cv",
            default: 0.0,
            unit: "1",
            lower: -100.0,
            upper: 100.0,
            doc: "gain of the network input formed from V",
        },
    ],
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
    const SPEC: &'static ModelSpec = &SPEC;
    const PROJECTS: bool = true;

    fn drift<B: Backend>(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>> {
        let [r, v] = x else {
            panic!("mpr: expected 2 state variables")
        };
        let [tau, i_ext, delta, j, eta, cr, cv] = p else {
            panic!("mpr: expected 7 parameters")
        };
        let [c_r, c_v] = c else {
            panic!("mpr: expected 2 coupling inputs")
        };
        let r = r.clone().clamp_min(0.0);
        let inv_tau = tau.clone().recip();
        let dr = (delta.clone() * inv_tau.clone() * (1.0 / PI) + r.clone() * v.clone() * 2.0)
            * inv_tau.clone();
        let pi_tau_r = tau.clone() * r.clone() * PI;
        let mut input = v.clone() * v.clone() + eta.clone() + i_ext.clone()
            - pi_tau_r.clone() * pi_tau_r
            + j.clone() * tau.clone() * r;
        if let Some(c_r) = c_r {
            input = input + cr.clone() * c_r.clone();
        }
        if let Some(c_v) = c_v {
            input = input + cv.clone() * c_v.clone();
        }
        vec![dr, input * inv_tau]
    }

    fn project<B: Backend>(&self, mut x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
        x[0] = x[0].clone().clamp_min(0.0);
        x
    }

    #[inline(always)]
    fn drift_point<T: Float>(&self, x: &[T], c: &[T], p: &[T], dx: &mut [T]) {
        let (r, v) = (x[0].max(T::zero()), x[1]);
        let (tau, i_ext, delta, j, eta, cr, cv) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
        let inv_tau = tau.recip();
        dx[0] = (delta * inv_tau * k::<T>(1.0 / PI) + k::<T>(2.0) * r * v) * inv_tau;
        let pi_tau_r = k::<T>(PI) * tau * r;
        dx[1] = (v * v + eta + j * tau * r + i_ext + cr * c[0] + cv * c[1] - pi_tau_r * pi_tau_r)
            * inv_tau;
    }

    #[inline(always)]
    fn project_point<T: Float>(&self, x: &mut [T]) {
        x[0] = x[0].max(T::zero());
    }

    const HAND_VJP: bool = true;

    #[inline(always)]
    fn drift_vjp_point<T: Float>(
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
        let (tau, i_ext, delta, j, eta, cr, cv) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
        let (a, b) = (ld[0], ld[1]);
        let inv_tau = tau.recip();
        let two = k::<T>(2.0);
        let pi = k::<T>(PI);
        let pi_tau_r = pi * tau * r;
        // dx0 = δ/(π τ²) + 2 r v / τ;  dx1 = q / τ with q the bracket of drift_point.
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
        lp[0] = lp[0] + a * d0_tau + b * d1_tau;
        lp[1] = lp[1] + b_inv;
        lp[2] = lp[2] + a * inv2 * k::<T>(1.0 / PI);
        lp[3] = lp[3] + b * r;
        lp[4] = lp[4] + b_inv;
        lp[5] = lp[5] + c[0] * b_inv;
        lp[6] = lp[6] + c[1] * b_inv;
    }

    #[inline(always)]
    fn project_vjp_point<T: Float>(&self, u: &[T], lam: &mut [T]) {
        if u[0] < T::zero() || u[0].is_nan() {
            lam[0] = T::zero();
        }
    }
}
