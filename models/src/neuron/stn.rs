//! Subthalamic nucleus (STN) neuron of Terman, Rubin, Yew & Wilson (2002) with the parameters
//! of Rubin & Terman (2004), plus a hyperpolarisation-activated cation current `I_H`:
//! a single compartment with fast sodium, delayed-rectifier potassium, leak, low-threshold
//! (T-type) calcium, high-threshold calcium and calcium-activated potassium (AHP) currents and
//! the intracellular calcium they drive. It fires spontaneously and answers release from
//! hyperpolarisation with a rebound burst (through the T current's de-inactivation `r`).
//!
//! ```text
//! C_m dV/dt = I − I_L − I_K − I_Na − I_T − I_Ca − I_AHP − I_H
//! I_L   = g_L (V − E_L)                     I_K   = g_K n⁴ (V − E_K)
//! I_Na  = g_Na m∞(V)³ h (V − E_Na)          I_T   = g_T a∞(V)³ b∞(r)² (V − E_Ca)
//! I_Ca  = g_Ca s∞(V)² (V − E_Ca)            I_AHP = g_AHP (V − E_K) Ca / (Ca + k1)
//! I_H   = g_H q (V − E_H)
//! dX/dt = φ_X (X∞(V) − X) / τ_X(V)          for X = h, n, r
//! dCa/dt = ε (−I_Ca − I_T − k_Ca Ca)
//! dq/dt = α_q(V) (1 − q) − β_q(V) q
//!
//! X∞(V) = 1 / (1 + exp(−(V − θ_X) / σ_X))                  for X = m, h, n, r, a, s
//! τ_X(V) = τ⁰_X + τ¹_X / (1 + exp(−(V − θ^τ_X) / σ^τ_X))     for X = h, n, r
//! b∞(r) = 1 / (1 + exp((r − θ_b) / σ_b)) − 1 / (1 + exp(−θ_b / σ_b))
//! ```
//! All of this except `I_H` is Terman et al. (2002, Methods); the constants of
//! the gating functions are theirs (unchanged in Rubin & Terman 2004):
//!
//! | gate | θ (mV) | σ (mV) | τ⁰ (ms) | τ¹ (ms) | θ^τ (mV) | σ^τ (mV) | φ    |
//! |------|--------|--------|---------|---------|----------|----------|------|
//! | `m`  | −30    | 15     |         |         |          |          |      |
//! | `h`  | −39    | −3.1   | 1       | 500     | −57      | −3       | 0.75 |
//! | `n`  | −32    | 8      | 1       | 100     | −80      | −26      | 0.75 |
//! | `r`  | −67    | −2     | `tau_r0`| 17.5    | 68       | −2.2     | `phi_r` |
//! | `a`  | −63    | 7.8    |         |         |          |          |      |
//! | `s`  | −39    | 8      |         |         |          |          |      |
//!
//! (`θ^τ_r = +68 mV` as published, which makes `τ_r` practically constant, `τ⁰_r + τ¹_r`.)
//!
//! | parameter | default  | unit   | meaning (source)                                          |
//! |-----------|----------|--------|-----------------------------------------------------------|
//! | `g_L`     | 2.25     | mS/cm² | leak conductance (T02)                                    |
//! | `g_K`     | 45       | mS/cm² | delayed-rectifier K⁺ conductance (T02)                    |
//! | `g_Na`    | 37.5     | mS/cm² | Na⁺ conductance (T02)                                     |
//! | `g_T`     | 0.5      | mS/cm² | T-type Ca²⁺ conductance (T02)                             |
//! | `g_Ca`    | 0.5      | mS/cm² | high-threshold Ca²⁺ conductance (T02)                     |
//! | `g_AHP`   | 9        | mS/cm² | Ca²⁺-activated K⁺ conductance (T02)                       |
//! | `g_H`     | 0        | mS/cm² | H conductance (off by default, see below)                 |
//! | `E_L`     | −60      | mV     | leak reversal (T02)                                       |
//! | `E_K`     | −80      | mV     | K⁺ reversal (T02)                                         |
//! | `E_Na`    | 55       | mV     | Na⁺ reversal (T02)                                        |
//! | `E_Ca`    | 140      | mV     | Ca²⁺ reversal (T02)                                       |
//! | `E_H`     | −45      | mV     | H-current reversal (Kole et al. 2006)                     |
//! | `C_m`     | 1        | µF/cm² | membrane capacitance (T02)                                |
//! | `tau_r0`  | 7.1      | ms     | minimal `τ_r` (RT04; 40 in T02)                           |
//! | `phi_r`   | 0.5      | 1      | rate factor of `r` (RT04; 0.2 in T02)                     |
//! | `theta_b` | 0.25     | 1      | half-point of `b∞(r)` (RT04; 0.4 in T02)                  |
//! | `sigma_b` | 0.07     | 1      | slope of `b∞(r)` (RT04; −0.1 in T02)                      |
//! | `epsilon` | 5e-5     | 1/ms   | Ca²⁺ rate factor (RT04; 3.75e-5 in T02)                   |
//! | `k_Ca`    | 22.5     | 1      | Ca²⁺ removal rate (T02)                                   |
//! | `k1`      | 15       | a.u.   | AHP half-activation Ca²⁺ level (T02)                      |
//!
//! T02: Terman et al. 2002; RT04: Rubin & Terman 2004 (the values of its STN cells, kept by
//! Guo et al. 2008, and those of the NEURON `stnRT` and NESTML `terub_stn` re-implementations;
//! `sigma_b = 0.07` and T02's `−0.1` only flip the sign of `b∞`, which enters squared). Terman et al. state conductances, capacitance and currents per µm²
//! (nS/µm², pF/µm², pA/µm²); only the ratios `g / C` (1/ms) and `I / C` (mV/ms) enter the
//! equations, so the same numbers read as mS/cm², µF/cm² and µA/cm² give the same dynamics,
//! and the input `I` is in µA/cm² like Hodgkin–Huxley's. `Ca` is in Terman et al.'s nominal
//! units (those of `k1`).
//!
//! **`I_H`.** Terman et al.'s cell has no H current. This one has the kinetics of Kole,
//! Hallermann & Stuart (2006; HCN channels of layer-5 pyramidal neurons, 34 °C):
//! `α_q = 0.00643 (V + 154.9) / (e^{(V+154.9)/11.9} − 1)`, `β_q = 0.193 e^{V/33.1}` (1/ms),
//! `E_H = −45 mV`. Its conductance in STN cells is not part of Terman et al.'s fit, so it is
//! off by default (`g_H = 0`: the published cell exactly); a positive `g_H` adds the sag and
//! depolarising drive of an H current. The singular point of `α_q` (`V = −154.9`) is written
//! safely like Hodgkin–Huxley's `α_m`.
//!
//! **Spikes.** No reset: a spike is an upward crossing of −20 mV (a detection level, not a
//! parameter of the dynamics).
//!
//! **Initial state.** The cell fires spontaneously, so it has no rest: the initial state is
//! `V = −60 mV` (`E_L` at the defaults), `h`, `n`, `r`, `q` at their steady state there and
//! `Ca` at the level where its inflow balances its removal there.
//!
//! **Linear part.** `h`, `n`, `r` with `a = −φ/τ(V)`, `q` with `a = −(α_q + β_q)`, `Ca` with
//! `a = −ε k_Ca`; `V` by Euler (its currents depend on `V` through `m∞`, `a∞`, `s∞`).
//!
//! Terman, Rubin, Yew & Wilson (2002), *Activity patterns in a model for the subthalamopallidal
//! network of the basal ganglia*, J. Neurosci. 22:2963–2976; Rubin & Terman (2004), *High
//! frequency stimulation of the subthalamic nucleus eliminates pathological thalamic
//! rhythmicity in a computational model*, J. Comput. Neurosci. 16:211–235; Guo, Rubin,
//! McIntyre, Vitek & Terman (2008), J. Neurophysiol. 99:1477–1492; Kole, Hallermann & Stuart
//! (2006), *Single Ih channels in pyramidal neuron dendrites*, J. Neurosci. 26:1677–1687.

use crate::neuron::{InputSpec, Neuron, NeuronError, NeuronSpec};
use crate::spec::{TimeUnit, VarSpec};
use crate::util::{logistic, ww_rate};
use crate::{k, Real};

crate::params! {
    /// STN parameters.
    pub struct Params, const PARAMS {
        /// leak conductance
        g_L = 2.25, "mS/cm²", [0.0, 100.0];
        /// delayed-rectifier potassium conductance
        g_K = 45.0, "mS/cm²", [0.0, 1000.0];
        /// sodium conductance
        g_Na = 37.5, "mS/cm²", [0.0, 1000.0];
        /// T-type (low-threshold) calcium conductance
        g_T = 0.5, "mS/cm²", [0.0, 100.0];
        /// high-threshold calcium conductance
        g_Ca = 0.5, "mS/cm²", [0.0, 100.0];
        /// calcium-activated potassium (AHP) conductance
        g_AHP = 9.0, "mS/cm²", [0.0, 1000.0];
        /// H (HCN) conductance
        g_H = 0.0, "mS/cm²", [0.0, 100.0];
        /// leak reversal potential
        E_L = -60.0, "mV", [-120.0, 50.0];
        /// potassium reversal potential
        E_K = -80.0, "mV", [-150.0, 0.0];
        /// sodium reversal potential
        E_Na = 55.0, "mV", [0.0, 150.0];
        /// calcium reversal potential
        E_Ca = 140.0, "mV", [0.0, 250.0];
        /// H-current reversal potential
        E_H = -45.0, "mV", [-100.0, 0.0];
        /// membrane capacitance
        C_m = 1.0, "µF/cm²", [0.01, 100.0];
        /// minimal time constant of the T-current inactivation r
        tau_r0 = 7.1, "ms", [0.1, 1000.0];
        /// rate factor of r
        phi_r = 0.5, "1", [0.001, 10.0];
        /// half-point of b∞(r)
        theta_b = 0.25, "1", [0.01, 1.0];
        /// slope of b∞(r) (its sign only flips b∞, which enters squared)
        sigma_b = 0.07, "1", [-1.0, 1.0];
        /// calcium rate factor
        epsilon = 5e-5, "1/ms", [0.0, 0.01];
        /// calcium removal rate
        k_Ca = 22.5, "1", [0.0, 1000.0];
        /// AHP half-activation calcium level
        k1 = 15.0, "a.u.", [0.01, 1000.0];
    }
}

/// The initial membrane potential, mV.
pub const V_INIT: f64 = -60.0;

/// The spike detection level, mV.
pub const V_DETECT: f64 = -20.0;

/// The STN neuron of Terman et al. (2002) / Rubin & Terman (2004) with an H current.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stn;

/// Static description of [`Stn`].
pub const SPEC: NeuronSpec = NeuronSpec {
    name: "stn",
    title: "Subthalamic nucleus neuron (Terman et al. 2002, Rubin & Terman 2004) with I_H",
    time_unit: TimeUnit::Ms,
    default_dt: 0.025,
    state: &[
        VarSpec::new("V", "mV", V_INIT, (-80.0, 40.0), "membrane potential"),
        VarSpec::new("h", "1", 0.998_858_4, (0.0, 1.0), "Na⁺ inactivation gate"),
        VarSpec::new("n", "1", 0.029_312_23, (0.0, 1.0), "K⁺ activation gate"),
        VarSpec::new(
            "r",
            "1",
            0.029_312_23,
            (0.0, 1.0),
            "T-current inactivation gate (de-inactivated at 1)",
        ),
        VarSpec::new(
            "Ca",
            "a.u.",
            0.020_452_16,
            (0.0, 1.0),
            "intracellular Ca²⁺ (Terman et al.'s nominal units)",
        ),
        VarSpec::new("q", "1", 0.006_622_43, (0.0, 1.0), "H-current activation gate"),
    ],
    params: PARAMS,
    input: InputSpec {
        name: "I",
        unit: "µA/cm²",
        doc: "injected current density",
    },
    threshold: "-20 mV (detection level)",
    surrogate_slope: 0.2,
    citation: "Terman et al. (2002) J. Neurosci. 22:2963-2976; Rubin & Terman (2004) \
               J. Comput. Neurosci. 16:211-235; I_H: Kole et al. (2006) J. Neurosci. 26:1677",
};

/// `1 / (1 + exp(−(v − θ)/σ))`.
#[inline(always)]
fn sig<R: Real>(v: R, theta: f64, sigma: f64) -> R {
    logistic((v - k(theta)) * k(1.0 / sigma))
}

/// `τ⁰ + τ¹ / (1 + exp(−(v − θ)/σ))`.
#[inline(always)]
fn tau<R: Real>(v: R, t0: R, t1: f64, theta: f64, sigma: f64) -> R {
    t0 + sig(v, theta, sigma) * k(t1)
}

/// The voltage-dependent functions at `v` for parameters `p`.
struct Gates<R> {
    m_inf: R,
    h_inf: R,
    n_inf: R,
    r_inf: R,
    a_inf: R,
    s_inf: R,
    /// `φ / τ` of h, n, r (1/ms).
    h_rate: R,
    n_rate: R,
    r_rate: R,
    /// `α_q`, `β_q` (1/ms).
    alpha_q: R,
    beta_q: R,
}

#[inline(always)]
fn gates<R: Real>(v: R, p: &Params<R>) -> Gates<R> {
    Gates {
        m_inf: sig(v, -30.0, 15.0),
        h_inf: sig(v, -39.0, -3.1),
        n_inf: sig(v, -32.0, 8.0),
        r_inf: sig(v, -67.0, -2.0),
        a_inf: sig(v, -63.0, 7.8),
        s_inf: sig(v, -39.0, 8.0),
        h_rate: k::<R>(0.75) / tau(v, k(1.0), 500.0, -57.0, -3.0),
        n_rate: k::<R>(0.75) / tau(v, k(1.0), 100.0, -80.0, -26.0),
        r_rate: p.phi_r / tau(v, p.tau_r0, 17.5, 68.0, -2.2),
        // 0.00643 (V + 154.9) / (e^{(V+154.9)/11.9} − 1) = 0.00643 y / (1 − e^{−y/11.9}),
        // y = −(V + 154.9).
        alpha_q: ww_rate(-(v + k(154.9)), k(1.0 / 11.9)) * k(0.00643),
        beta_q: (v * k(1.0 / 33.1)).exp_safe() * k(0.193),
    }
}

/// `b∞(r)`.
#[inline(always)]
fn b_inf<R: Real>(r: R, p: &Params<R>) -> R {
    // 1/(1 + e^{x}) = logistic(−x).
    logistic(-(r - p.theta_b) / p.sigma_b) - logistic(p.theta_b / p.sigma_b)
}

/// The calcium currents `(I_T, I_Ca)` (µA/cm²).
#[inline(always)]
fn calcium_currents<R: Real>(v: R, r: R, g: &Gates<R>, p: &Params<R>) -> (R, R) {
    let b = b_inf(r, p);
    let i_t = p.g_T * g.a_inf * g.a_inf * g.a_inf * b * b * (v - p.E_Ca);
    let i_ca = p.g_Ca * g.s_inf * g.s_inf * (v - p.E_Ca);
    (i_t, i_ca)
}

/// The linear part for gate values `g`.
#[inline(always)]
fn linear_at<R: Real>(q: &Params<R>, g: &Gates<R>, a: &mut [R]) {
    a[1] = -g.h_rate;
    a[2] = -g.n_rate;
    a[3] = -g.r_rate;
    a[4] = -(q.epsilon * q.k_Ca);
    a[5] = -(g.alpha_q + g.beta_q);
}

/// The drift for gate values `g` already computed at `x[0]`.
#[inline(always)]
fn drift_at<R: Real>(x: &[R], i_ext: R, q: &Params<R>, g: &Gates<R>, dx: &mut [R]) {
    let (v, h, n, r, ca, qh) = (x[0], x[1], x[2], x[3], x[4], x[5]);
    let n2 = n * n;
    let i_l = q.g_L * (v - q.E_L);
    let i_k = q.g_K * n2 * n2 * (v - q.E_K);
    let i_na = q.g_Na * g.m_inf * g.m_inf * g.m_inf * h * (v - q.E_Na);
    let (i_t, i_ca) = calcium_currents(v, r, g, q);
    let i_ahp = q.g_AHP * (v - q.E_K) * ca / (ca + q.k1);
    let i_h = q.g_H * qh * (v - q.E_H);
    dx[0] = (i_ext - i_l - i_k - i_na - i_t - i_ca - i_ahp - i_h) / q.C_m;
    dx[1] = (g.h_inf - h) * g.h_rate;
    dx[2] = (g.n_inf - n) * g.n_rate;
    dx[3] = (g.r_inf - r) * g.r_rate;
    dx[4] = q.epsilon * (-i_ca - i_t - q.k_Ca * ca);
    dx[5] = g.alpha_q * (k::<R>(1.0) - qh) - g.beta_q * qh;
    }

impl Neuron for Stn {
    const SPEC: &'static NeuronSpec = &SPEC;

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], i_ext: R, p: &[R], dx: &mut [R]) {
        let q = Params::from_slice(p);
        let g = gates(x[0], &q);
        drift_at(x, i_ext, &q, &g, dx);
    }

    const LINEAR: bool = true;

    /// `h`, `n`, `r`: `−φ/τ(V)`; `Ca`: `−ε k_Ca`; `q`: `−(α_q + β_q)`; `V` by Euler.
    #[inline(always)]
    fn linear<R: Real>(&self, x: &[R], _i_ext: R, p: &[R], a: &mut [R]) {
        let q = Params::from_slice(p);
        let g = gates(x[0], &q);
        linear_at(&q, &g, a);
    }

    /// Gates computed once for both.
    #[inline(always)]
    fn drift_linear<R: Real>(&self, x: &[R], i_ext: R, p: &[R], dx: &mut [R], a: &mut [R]) {
        let q = Params::from_slice(p);
        let g = gates(x[0], &q);
        drift_at(x, i_ext, &q, &g, dx);
        linear_at(&q, &g, a);
    }

    /// `V = −60 mV`, the gates at their steady state there, `Ca` where its inflow balances
    /// its removal: `Ca = −(I_Ca + I_T) / k_Ca`.
    fn rest<R: Real>(&self, p: &[R], x: &mut [R]) {
        let q = Params::from_slice(p);
        let v = k::<R>(V_INIT);
        let g = gates(v, &q);
        let (i_t, i_ca) = calcium_currents(v, g.r_inf, &g, &q);
        x[0] = v;
        x[1] = g.h_inf;
        x[2] = g.n_inf;
        x[3] = g.r_inf;
        x[4] = -(i_ca + i_t) / q.k_Ca;
        x[5] = g.alpha_q / (g.alpha_q + g.beta_q);
    }

    fn threshold<R: Real>(&self, _p: &[R]) -> R {
        k(V_DETECT)
    }

    /// Bounds, `sigma_b ≠ 0`, `k_Ca > 0` when `epsilon > 0` (calcium must decay).
    fn validate(&self, p: &[f64]) -> Result<(), NeuronError> {
        SPEC.check_bounds(p)?;
        let q = Params::from_slice(p);
        let bad = |what: String| {
            Err(NeuronError::Inconsistent {
                neuron: SPEC.name,
                what,
            })
        };
        if q.sigma_b.abs() < 1e-3 {
            return bad(format!("sigma_b = {} must not be 0", q.sigma_b));
        }
        if q.epsilon > 0.0 && q.k_Ca <= 0.0 {
            return bad(format!(
                "k_Ca = {} must be positive when epsilon = {} > 0 (calcium must decay)",
                q.k_Ca, q.epsilon
            ));
        }
        Ok(())
    }
}
