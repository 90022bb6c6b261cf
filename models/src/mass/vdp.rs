//! Van der Pol oscillator: a self-sustained oscillator with nonlinear damping, the prototype of
//! relaxation oscillations, written in the Liénard plane as brainmass's `VanDerPolStep`.
//!
//! ```text
//! dx/dt = mu (x - x³/3 - y) + c_x
//! dy/dt = x / mu + c_y
//! ```
//! Eliminating `y` gives van der Pol's equation `x'' - mu (1 - x²) x' + x = 0` in the same time
//! (the other common planar form, `dx/dt = y`, `dy/dt = mu (1 - x²) y - x`, is the same `x(t)`
//! with another second variable). The origin is the only fixed point; its Jacobian
//! `[[mu, -mu], [1/mu, 0]]` has trace `mu` and determinant 1, so for every `mu > 0` it is
//! unstable (eigenvalues `(mu ± √(mu² - 4)) / 2`: a focus for `mu < 2`, a node above) and every
//! other orbit winds onto a unique stable limit cycle. For small `mu` the cycle is nearly
//! harmonic, `x ≈ 2 cos t` (amplitude 2, period `2π (1 + mu²/16 + …)`); for large `mu` it is a
//! relaxation oscillation: `x` creeps along the branches of the cubic `y = x - x³/3` on the slow
//! time scale `mu` and jumps between them on the fast one `1/mu`, with period
//! `(3 - 2 ln 2) mu + 3 α mu^(-1/3) + …` (`α ≈ 2.338`, the first zero of `Ai(-z)`; Dorodnitsyn
//! 1947). The model is dimensionless; like TVB and brainmass we read its time as ms.
//!
//! | parameter | default | unit | meaning                                   |
//! |-----------|---------|------|-------------------------------------------|
//! | `mu`      | 1       | 1    | nonlinearity / damping strength (`> 0`)   |
//!
//! Name and default follow brainmass (`VanDerPolStep`, formerly `VanDerPolOscillator`, whose
//! equations these are, with its inputs `I_x`, `I_y` as the coupling inputs). `mu` must be
//! positive (`dy/dt` divides by it); stiff for large `mu` (fast rate `~ mu`), so scale `dt` as
//! `1/mu` there.
//!
//! **Coupling.** Two inputs, normally with difference (diffusive) coupling
//! `c_i = G Σ_j W_ij (x_j - x_i)`: `c_x` from the other nodes' `x`, added to `dx/dt` (on), and
//! `c_y` from their `y`, added to `dy/dt` (off by default).
//!
//! van der Pol (1926), *On "relaxation-oscillations"*, Phil. Mag. (7) 2:978–992; Dorodnitsyn
//! (1947), Prikl. Mat. Mekh. 11:313–328 (the asymptotic period); brainmass (chaobrain),
//! `VanDerPolStep`.

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{k, Model, Real};

crate::params! {
    /// Van der Pol's parameters.
    pub struct Params, const PARAMS {
        /// nonlinearity / damping strength
        mu = 1.0, "1", [1e-3, 100.0];
    }
}

/// The Van der Pol oscillator, Liénard form.
#[derive(Debug, Clone, Copy, Default)]
pub struct VanDerPol;

/// Static description of [`VanDerPol`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "vdp",
    title: "Van der Pol oscillator (Liénard form)",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.05,
    sample_period: None,
    state: &[
        VarSpec::new(
            "x",
            "a.u.",
            0.1,
            (-2.5, 2.5),
            "position-like variable (the oscillating signal)",
        ),
        VarSpec::new(
            "y",
            "a.u.",
            0.0,
            (-3.0, 3.0),
            "Liénard variable (x - x³/3 - x'/mu)",
        ),
    ],
    params: PARAMS,
    coupling: &[
        CouplingSpec {
            name: "c_x",
            var: 0,
            sends: None,
            default_on: true,
            doc: "network input from the other nodes' x, added to dx/dt",
        },
        CouplingSpec {
            name: "c_y",
            var: 1,
            sends: None,
            default_on: false,
            doc: "network input from the other nodes' y, added to dy/dt",
        },
    ],
    coupling_function: CouplingFunction::Difference,
    coupling_strength: 0.1,
    citation: "van der Pol (1926) Phil. Mag. 2:978-992; brainmass VanDerPolStep",
};

impl Model for VanDerPol {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let Params { mu } = Params::from_slice(p);
        let (xs, ys) = (x[0], x[1]);
        dx[0] = mu * (xs - xs * xs * xs * k(1.0 / 3.0) - ys) + c[0];
        dx[1] = xs / mu + c[1];
    }
}
