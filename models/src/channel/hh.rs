//! NEURON's `hh` mechanism whole: the Hodgkin–Huxley sodium, potassium and leak currents as one
//! channel with three gates, as NEURON inserts it (`insert hh`) and as Jaxley's `HH` channel
//! holds it. The same equations as [`super::hh_na`], [`super::hh_k`] and [`super::leak`]
//! placed together (their gates and conductances are called, not copied); one placement instead of
//! three lets the solver update all three gates and add all three currents in one pass.
//!
//! ```text
//! i = g_Na m³ h (V − E_Na) + g_K n⁴ (V − E_K) + g_l (V − E_l)
//! ```
//! with `m`, `h` as in [`super::hh_na`] and `n` as in [`super::hh_k`] (`q10 = 3` at 6.3 °C).
//! The current has three reversal potentials, so the solver takes [`Channel::drive`]
//! (`Σ g`, `Σ g E`) rather than one `E`.
//!
//! | parameter | default | unit   | NEURON name                |
//! |-----------|---------|--------|----------------------------|
//! | `gnabar`  | 120     | mS/cm² | `gnabar_hh` = 0.12 S/cm²   |
//! | `gkbar`   | 36      | mS/cm² | `gkbar_hh` = 0.036 S/cm²   |
//! | `gl`      | 0.3     | mS/cm² | `gl_hh` = 0.0003 S/cm²     |
//! | `ena`     | 50      | mV     | `ena` (NEURON's default)   |
//! | `ek`      | −77     | mV     | `ek` (NEURON's default)    |
//! | `el`      | −54.3   | mV     | `el_hh`                    |
//!
//! Hodgkin & Huxley (1952), J. Physiol. 117:500–544; NEURON's `src/nrnoc/hh.mod`.

use super::hh_k::{self, HhK};
use super::hh_na::{self, HhNa};
use super::{Calcium, Channel, ChannelSpec};
use crate::Real;

crate::params! {
    /// Parameters of [`Hh`].
    pub struct Params, const PARAMS {
        /// maximal sodium conductance
        gnabar = 120.0, "mS/cm²", [0.0, 10000.0];
        /// maximal potassium conductance
        gkbar = 36.0, "mS/cm²", [0.0, 10000.0];
        /// leak conductance
        gl = 0.3, "mS/cm²", [0.0, 1000.0];
        /// sodium reversal potential
        ena = 50.0, "mV", [-100.0, 150.0];
        /// potassium reversal potential
        ek = -77.0, "mV", [-150.0, 0.0];
        /// leak reversal potential
        el = -54.3, "mV", [-150.0, 100.0];
    }
}

/// NEURON's `hh`: sodium, potassium and leak in one channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hh;

/// Static description of [`Hh`].
pub const SPEC: ChannelSpec = ChannelSpec {
    name: "hh",
    title: "Hodgkin-Huxley Na + K + leak in one (NEURON hh, Jaxley HH)",
    gates: &[
        hh_na::SPEC.gates[0],
        hh_na::SPEC.gates[1],
        hh_k::SPEC.gates[0],
    ],
    params: PARAMS,
    q10: 3.0,
    q10_celsius: 6.3,
    calcium: Calcium::None,
    citation: "Hodgkin & Huxley (1952) J. Physiol. 117:500-544; NEURON hh.mod",
};

impl Channel for Hh {
    const SPEC: &'static ChannelSpec = &SPEC;

    /// [`Channel::gates_rate`] with the reciprocal of each rate.
    #[inline(always)]
    fn gates<R: Real>(&self, v: R, p: &[R], inf: &mut [R], tau: &mut [R]) {
        self.gates_rate(v, None, p, inf, tau);
        for t in &mut tau[..3] {
            *t = t.recip();
        }
    }

    /// `hh_na`'s `m`, `h` and `hh_k`'s `n`, as those channels give them (their rates do not
    /// depend on parameters).
    #[inline(always)]
    fn gates_rate<R: Real>(&self, v: R, _cai: Option<R>, _p: &[R], inf: &mut [R], rate: &mut [R]) {
        HhNa.gates_rate(v, None, &[], &mut inf[..2], &mut rate[..2]);
        HhK.gates_rate(v, None, &[], &mut inf[2..3], &mut rate[2..3]);
    }

    /// The total conductance density `g_Na m³ h + g_K n⁴ + g_l`.
    #[inline(always)]
    fn conductance<R: Real>(&self, x: &[R], p: &[R]) -> R {
        self.drive(x, p).0
    }

    /// The leak's `el`: the reversal potential of the whole current when the sodium and
    /// potassium gates are shut. With them open the current reverses elsewhere, so the solver
    /// takes [`Channel::drive`], not this.
    #[inline(always)]
    fn reversal<R: Real>(&self, p: &[R]) -> R {
        Params::from_slice(p).el
    }

    /// `hh_na`'s, `hh_k`'s and the leak's conductances, and each times its reversal potential.
    #[inline(always)]
    fn drive<R: Real>(&self, x: &[R], p: &[R]) -> (R, R) {
        let p = Params::from_slice(p);
        let gna = HhNa.conductance(&x[..2], &[p.gnabar, p.ena]);
        let gk = HhK.conductance(&x[2..3], &[p.gkbar, p.ek]);
        (gna + gk + p.gl, gna * p.ena + gk * p.ek + p.gl * p.el)
    }
}
