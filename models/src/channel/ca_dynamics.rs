//! Intracellular calcium of the layer-5 pyramidal cell model of Hay et al. (2011),
//! `CaDynamics_E2.mod`: a shell under the membrane that the calcium currents fill and that
//! relaxes to a floor. Not a channel (it carries no current): the cable solver holds one
//! concentration per compartment that has a pool and advances it after the voltage.
//!
//! ```text
//! d cai/dt = −10⁴ γ i_Ca / (2 F d) − (cai − cai_min) / τ_decay
//! ```
//! with `i_Ca` the compartment's calcium current density (mA/cm² in the .mod file; the sum of
//! its [`Calcium::Current`](super::Calcium::Current) channels), `F` Faraday's constant
//! (C/mol), `d` the shell depth (µm), `γ` the free (unbuffered) fraction, `cai` in mM. For
//! `i_Ca` frozen over a step the equation is linear, so its exact update (NEURON's `cnexp`) is
//! `cai ← cai∞ + (cai − cai∞) e^{−dt/τ_decay}` with
//! `cai∞ = cai_min − 10⁴ γ τ_decay i_Ca / (2 F d)` ([`steady`]). Where a compartment has a pool,
//! its calcium channels' reversal potential is the Nernst potential ([`nernst`]) of `cai` against
//! [`CAO`], as NEURON computes `eca` when a mechanism writes `cai`.
//!
//! | parameter | default | unit | Hay et al. name          |
//! |-----------|---------|------|--------------------------|
//! | `gamma`   | 0.05    | 1    | `gamma`                  |
//! | `decay`   | 80      | ms   | `decay`                  |
//! | `depth`   | 0.1     | µm   | `depth`                  |
//! | `min_cai` | 1e-4    | mM   | `minCai`                 |
//!
//! The initial concentration is NEURON's default `cai0_ca_ion` = 5e-5 mM ([`CAI_DEFAULT`]).
//! Hay, Hill, Schürmann, Markram & Segev (2011), PLoS Comput. Biol. 7:e1002107 (ModelDB
//! 139653).

use crate::{k, Real};

crate::params! {
    /// Parameters of the calcium pool.
    pub struct Params, const PARAMS {
        /// fraction of free (unbuffered) calcium
        gamma = 0.05, "1", [1e-6, 1.0];
        /// time constant of removal
        decay = 80.0, "ms", [1e-3, 1e5];
        /// depth of the shell under the membrane
        depth = 0.1, "µm", [1e-4, 100.0];
        /// concentration the pool relaxes to
        min_cai = 1e-4, "mM", [0.0, 1.0];
    }
}

/// The pool's name in cell configurations.
pub const NAME: &str = "ca_dynamics_e2";

/// Citation.
pub const CITATION: &str = "Hay et al. (2011) PLoS Comput Biol 7:e1002107 (CaDynamics_E2.mod, \
                            ModelDB 139653)";

/// NEURON's default intracellular calcium concentration `cai0_ca_ion`, mM.
pub const CAI_DEFAULT: f64 = 5e-5;
/// NEURON's default extracellular calcium concentration `cao0_ca_ion`, mM.
pub const CAO: f64 = 2.0;
/// Faraday's constant, C/mol (NEURON ≥ 8's value, 2019 SI).
pub const FARADAY: f64 = 96_485.332_123_310_01;
/// The gas constant, J/(mol K) (NEURON ≥ 8's value).
pub const GAS_R: f64 = 8.314_462_618_153_24;

/// The steady concentration `cai∞` (mM) for a calcium current density `ica` (µA/cm², the
/// solver's unit; the .mod file's mA/cm² × 1000).
#[inline(always)]
pub fn steady<R: Real>(ica: R, p: &[R]) -> R {
    let Params {
        gamma,
        decay,
        depth,
        min_cai,
    } = Params::from_slice(p);
    // 10⁴ γ (ica · 1e-3) / (2 F d) per ms, times τ_decay.
    min_cai - ica * gamma * decay / depth * k(10.0 / (2.0 * FARADAY))
}

/// The time constant of the pool, ms.
#[inline(always)]
pub fn tau<R: Real>(p: &[R]) -> R {
    Params::from_slice(p).decay
}

/// The Nernst potential of calcium (valence 2), mV, for `cai` and [`CAO`] (mM) at `celsius` °C:
/// `(R T / 2F) ln(cao / cai)` with `T = celsius + 273.15` (NEURON's `nernst`).
#[inline(always)]
pub fn nernst<R: Real>(cai: R, celsius: f64) -> R {
    let ktf = 1000.0 * GAS_R * (celsius + 273.15) / FARADAY;
    (k::<R>(CAO) / cai).ln() * k(ktf / 2.0)
}
