//! Kuramoto phase oscillator.
//!
//! ```text
//! dθ/dt = omega + c
//! ```
//! `θ` is the phase (rad), `omega` the natural angular frequency. The phase is not wrapped: only
//! `sin` and `cos` of it are meaningful, and leaving it unwrapped keeps it continuous for delays
//! and gradients (take `θ mod 2π` when reading it).
//!
//! | parameter | default       | unit   | meaning                     |
//! |-----------|---------------|--------|-----------------------------|
//! | `omega`   | 2π × 0.040    | rad/ms | natural angular frequency   |
//!
//! Time is in ms. The default is the 40 Hz (gamma-band) natural frequency of Cabral et al.
//! (2011)'s whole-brain Kuramoto network; TVB's `Kuramoto` defaults to `omega = 1 rad/ms`
//! (about 159 Hz).
//!
//! **Coupling.** One input `c` formed from the other nodes' `θ`, normally with Kuramoto coupling
//! `c_i = G Σ_j W_ij sin(θ_j - θ_i)` (in rad/ms).
//!
//! Kuramoto (1975), in *International Symposium on Mathematical Problems in Theoretical Physics*,
//! Lecture Notes in Physics 39:420; Cabral, Hugues, Sporns & Deco (2011), *Role of local network
//! oscillations in resting-state functional connectivity*, NeuroImage 57(1):130–139.

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{Model, Real};

crate::params! {
    /// Kuramoto parameters.
    pub struct Params, const PARAMS {
        /// natural angular frequency
        omega = 0.251_327_412_287_183_46, "rad/ms", [-10.0, 10.0];
    }
}

/// The Kuramoto phase oscillator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kuramoto;

/// Static description of [`Kuramoto`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "kuramoto",
    title: "Kuramoto phase oscillator",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.1,
    sample_period: None,
    state: &[VarSpec::new(
        "theta",
        "rad",
        0.0,
        (0.0, std::f64::consts::TAU),
        "phase, unwrapped (read it as θ mod 2π)",
    )],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' phases (normally G Σ W sin(θj - θi))",
    }],
    coupling_function: CouplingFunction::Kuramoto,
    coupling_strength: 0.05,
    citation:
        "Kuramoto (1975) Lect. Notes Phys. 39:420; Cabral et al. (2011) NeuroImage 57:130-139",
};

impl Model for Kuramoto {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, _x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        dx[0] = Params::from_slice(p).omega + c[0];
    }
}
