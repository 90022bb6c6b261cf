//! Hodgkin–Huxley (1952): the squid giant axon's membrane patch, sodium and potassium currents
//! through voltage-gated conductances, the reference every simulator checks against.
//!
//! ```text
//! C_m dV/dt = I − g_Na m³ h (V − E_Na) − g_K n⁴ (V − E_K) − g_L (V − E_L)
//! dm/dt = α_m(V) (1 − m) − β_m(V) m      (likewise h, n)
//!
//! α_m = 0.1 (V + 40) / (1 − e^{−(V+40)/10})      β_m = 4 e^{−(V+65)/18}
//! α_h = 0.07 e^{−(V+65)/20}                       β_h = 1 / (1 + e^{−(V+35)/10})
//! α_n = 0.01 (V + 55) / (1 − e^{−(V+55)/10})      β_n = 0.125 e^{−(V+65)/80}
//! ```
//! with `V` in mV and rates in 1/ms. These are Hodgkin & Huxley's equations (1952, eqs. 26 for
//! the current, 12–13 for `n`, 20–21 for `m`, 23–24 for `h`, at 6.3 °C) in today's sign
//! convention: HH measured the depolarisation from rest with the opposite sign, so their `v` is
//! `−(V + 65)` here. Their reversal potentials relative to rest (`E_Na = −115`, `E_K = +12`,
//! `E_l = −10.613` mV in their convention) become `50`, `−77` and `−54.387` mV, which puts the
//! resting potential at −65 mV. (The same form is NEURON's `hh` mechanism at 6.3 °C, with
//! `E_L = −54.3`.)
//!
//! | parameter | default  | unit   | meaning                               |
//! |-----------|----------|--------|---------------------------------------|
//! | `g_Na`    | 120      | mS/cm² | maximal sodium conductance            |
//! | `g_K`     | 36       | mS/cm² | maximal potassium conductance         |
//! | `g_L`     | 0.3      | mS/cm² | leak conductance                      |
//! | `E_Na`    | 50       | mV     | sodium reversal potential             |
//! | `E_K`     | −77      | mV     | potassium reversal potential          |
//! | `E_L`     | −54.387  | mV     | leak reversal potential               |
//! | `C_m`     | 1        | µF/cm² | specific membrane capacitance         |
//!
//! All values are Hodgkin & Huxley's (1952, their summary of equations and parameters in
//! Part II), the reversal potentials shifted as above. The input `I` is a
//! current density in µA/cm² (µA/cm² ÷ µF/cm² = mV/ms).
//!
//! **Singularities.** `α_m` and `α_n` are `0/0` at `V = −40` and `V = −55` mV, where they
//! tend to `1` and `0.1` /ms. Both are written as `c · y / (1 − e^{−y/10})`, evaluated by its
//! Taylor series for `|y| < 0.1` mV (the "double where" of [`crate::Real::select`], so that
//! neither value nor gradient is ever NaN on tensors).
//!
//! **Spikes.** There is no reset: a spike is an upward crossing of 0 mV (a detection level,
//! not a parameter of the dynamics; the action potential peaks near +40 mV and the
//! after-hyperpolarisation reaches about −75 mV, so any level in between counts each spike
//! once).
//!
//! **Rest.** `V = −65 mV` with each gate at its steady state `x∞ = α_x / (α_x + β_x)`.
//!
//! Hodgkin & Huxley (1952), *A quantitative description of membrane current and its
//! application to conduction and excitation in nerve*, J. Physiol. 117:500–544.

use crate::neuron::{InputSpec, Neuron, NeuronError, NeuronSpec};
use crate::spec::{TimeUnit, VarSpec};
use crate::util::{logistic, ww_rate};
use crate::{k, Real};

crate::params! {
    /// Hodgkin–Huxley's parameters.
    pub struct Params, const PARAMS {
        /// maximal sodium conductance
        g_Na = 120.0, "mS/cm²", [0.0, 1000.0];
        /// maximal potassium conductance
        g_K = 36.0, "mS/cm²", [0.0, 1000.0];
        /// leak conductance
        g_L = 0.3, "mS/cm²", [0.0, 100.0];
        /// sodium reversal potential
        E_Na = 50.0, "mV", [-100.0, 150.0];
        /// potassium reversal potential
        E_K = -77.0, "mV", [-150.0, 0.0];
        /// leak reversal potential
        E_L = -54.387, "mV", [-150.0, 50.0];
        /// specific membrane capacitance
        C_m = 1.0, "µF/cm²", [0.01, 100.0];
    }
}

/// The resting potential the rest state uses, mV (the fixed point at the default parameters).
pub const V_REST: f64 = -65.0;

/// The spike detection level, mV.
pub const V_DETECT: f64 = 0.0;

/// The Hodgkin–Huxley 1952 squid-axon neuron.
#[derive(Debug, Clone, Copy, Default)]
pub struct HodgkinHuxley;

/// Static description of [`HodgkinHuxley`].
pub const SPEC: NeuronSpec = NeuronSpec {
    name: "hh",
    title: "Hodgkin-Huxley 1952 squid giant axon",
    time_unit: TimeUnit::Ms,
    default_dt: 0.025,
    state: &[
        VarSpec::new("V", "mV", V_REST, (-90.0, 60.0), "membrane potential"),
        VarSpec::new(
            "m",
            "1",
            0.052_932_5,
            (0.0, 1.0),
            "sodium activation gate",
        ),
        VarSpec::new(
            "h",
            "1",
            0.596_120_7,
            (0.0, 1.0),
            "sodium inactivation gate",
        ),
        VarSpec::new(
            "n",
            "1",
            0.317_676_8,
            (0.0, 1.0),
            "potassium activation gate",
        ),
    ],
    params: PARAMS,
    input: InputSpec {
        name: "I",
        unit: "µA/cm²",
        doc: "injected current density",
    },
    threshold: "0 mV (detection level)",
    surrogate_slope: 0.2,
    citation: "Hodgkin & Huxley (1952) J. Physiol. 117:500-544",
};

/// The six rate functions at `V` (mV), 1/ms: `[α_m, β_m, α_h, β_h, α_n, β_n]`.
#[inline(always)]
pub fn rates<R: Real>(v: R) -> [R; 6] {
    let tenth = k::<R>(0.1);
    [
        // 0.1 (V+40) / (1 − e^{−(V+40)/10}); its limit at −40 is 1.
        ww_rate(v + k(40.0), tenth) * k(0.1),
        (-(v + k(65.0)) * k(1.0 / 18.0)).exp_safe() * k(4.0),
        (-(v + k(65.0)) * k(1.0 / 20.0)).exp_safe() * k(0.07),
        logistic((v + k(35.0)) * tenth),
        // 0.01 (V+55) / (1 − e^{−(V+55)/10}); its limit at −55 is 0.1.
        ww_rate(v + k(55.0), tenth) * k(0.01),
        (-(v + k(65.0)) * k(1.0 / 80.0)).exp_safe() * k(0.125),
    ]
}

impl Neuron for HodgkinHuxley {
    const SPEC: &'static NeuronSpec = &SPEC;

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], i_ext: R, p: &[R], dx: &mut [R]) {
        let Params {
            g_Na,
            g_K,
            g_L,
            E_Na,
            E_K,
            E_L,
            C_m,
        } = Params::from_slice(p);
        let (v, m, h, n) = (x[0], x[1], x[2], x[3]);
        let [am, bm, ah, bh, an, bn] = rates(v);
        let n2 = n * n;
        let i_na = g_Na * m * m * m * h * (v - E_Na);
        let i_k = g_K * n2 * n2 * (v - E_K);
        let i_l = g_L * (v - E_L);
        dx[0] = (i_ext - i_na - i_k - i_l) / C_m;
        dx[1] = am * (k::<R>(1.0) - m) - bm * m;
        dx[2] = ah * (k::<R>(1.0) - h) - bh * h;
        dx[3] = an * (k::<R>(1.0) - n) - bn * n;
    }

    const LINEAR: bool = true;

    /// Every variable is linear in itself: the gates with `a = −(α + β)`, and `V` with
    /// `a = −(g_Na m³ h + g_K n⁴ + g_L) / C_m` (its total conductance over the capacitance),
    /// so exponential Euler is Rush–Larsen on the gates and exact-in-`V` for frozen gates.
    #[inline(always)]
    fn linear<R: Real>(&self, x: &[R], _i_ext: R, p: &[R], a: &mut [R]) {
        let Params {
            g_Na, g_K, g_L, C_m, ..
        } = Params::from_slice(p);
        let (v, m, h, n) = (x[0], x[1], x[2], x[3]);
        let [am, bm, ah, bh, an, bn] = rates(v);
        let n2 = n * n;
        a[0] = -(g_Na * m * m * m * h + g_K * n2 * n2 + g_L) / C_m;
        a[1] = -(am + bm);
        a[2] = -(ah + bh);
        a[3] = -(an + bn);
    }

    /// `V = −65 mV`, each gate at `α / (α + β)` there.
    fn rest<R: Real>(&self, _p: &[R], x: &mut [R]) {
        let v = k::<R>(V_REST);
        let [am, bm, ah, bh, an, bn] = rates(v);
        x[0] = v;
        x[1] = am / (am + bm);
        x[2] = ah / (ah + bh);
        x[3] = an / (an + bn);
    }

    fn threshold<R: Real>(&self, _p: &[R]) -> R {
        k(V_DETECT)
    }

    /// Bounds, and `E_K < E_Na` (otherwise there is no action potential to speak of).
    fn validate(&self, p: &[f64]) -> Result<(), NeuronError> {
        SPEC.check_bounds(p)?;
        let q = Params::from_slice(p);
        if q.E_K >= q.E_Na {
            return Err(NeuronError::Inconsistent {
                neuron: SPEC.name,
                what: format!("E_K = {} mV must lie below E_Na = {} mV", q.E_K, q.E_Na),
            });
        }
        Ok(())
    }
}
