//! Lorenz system: the three-variable convection model whose flow is chaotic at Lorenz's
//! parameters. Not a neural model: a low-dimensional deterministic test fixture for integration
//! and network coupling (diffusively coupled Lorenz nodes synchronise for strong enough
//! coupling, and fall apart without it), as in brainmass's `LorenzStep`.
//!
//! ```text
//! dx/dt = sigma (y - x) + c
//! dy/dt = x (rho - z) - y
//! dz/dt = x y - beta z
//! ```
//! Fixed points: the origin, and for `rho > 1` the pair
//! `C± = (±√(beta (rho - 1)), ±√(beta (rho - 1)), rho - 1)`. The origin attracts every orbit for
//! `rho < 1`; `C±` are stable from `rho = 1` up to
//! `rho_H = sigma (sigma + beta + 3) / (sigma - beta - 1)` (≈ 24.74 at `sigma = 10`,
//! `beta = 8/3`), where they lose stability through a subcritical Hopf bifurcation. The
//! divergence of the flow is the constant `-(sigma + 1 + beta)`: volumes contract everywhere,
//! and at the defaults orbits settle on the bounded, chaotic Lorenz attractor (largest Lyapunov
//! exponent ≈ 0.9 per unit time). The equations are dimensionless; like TVB and brainmass we
//! read time as ms.
//!
//! | parameter | default | unit | meaning                          |
//! |-----------|---------|------|----------------------------------|
//! | `sigma`   | 10      | 1    | Prandtl number                   |
//! | `rho`     | 28      | 1    | (reduced) Rayleigh number        |
//! | `beta`    | 8/3     | 1    | geometric factor of the cell     |
//!
//! Defaults are Lorenz's (1963); names, the initial state `(1, 1, 1)` and the input on `x`
//! follow brainmass's `LorenzStep`.
//!
//! **Coupling.** One input `c` formed from the other nodes' `x` and added to `dx/dt`, normally
//! with difference (diffusive) coupling `c_i = G Σ_j W_ij (x_j - x_i)`. Two nodes coupled both
//! ways with weight 1 synchronise completely for `G` above about 3.9 at the defaults (where the
//! transverse Lyapunov exponent of the synchronous orbit, 0.90 without coupling, changes sign);
//! the typical strength given, 5, is above that.
//!
//! Lorenz (1963), *Deterministic nonperiodic flow*, J. Atmos. Sci. 20:130–141; Sparrow (1982),
//! *The Lorenz equations*; Pecora & Carroll (1990), Phys. Rev. Lett. 64:821 (synchronisation).

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{Model, Real};

crate::params! {
    /// Lorenz's parameters.
    pub struct Params, const PARAMS {
        /// Prandtl number
        sigma = 10.0, "1", [0.0, 100.0];
        /// Rayleigh number (relative to the critical one)
        rho = 28.0, "1", [0.0, 500.0];
        /// geometric factor
        beta = 8.0 / 3.0, "1", [0.0, 50.0];
    }
}

/// The Lorenz system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lorenz;

/// Static description of [`Lorenz`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "lorenz",
    title: "Lorenz system (1963), chaotic test fixture",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.01,
    sample_period: None,
    state: &[
        VarSpec::new(
            "x",
            "a.u.",
            1.0,
            (-20.0, 20.0),
            "convective intensity (the coupled variable)",
        ),
        VarSpec::new(
            "y",
            "a.u.",
            1.0,
            (-30.0, 30.0),
            "horizontal temperature difference",
        ),
        VarSpec::new(
            "z",
            "a.u.",
            1.0,
            (0.0, 50.0),
            "deviation of the vertical temperature profile",
        ),
    ],
    params: PARAMS,
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: None,
        default_on: true,
        doc: "network input from the other nodes' x, added to dx/dt",
    }],
    coupling_function: CouplingFunction::Difference,
    coupling_strength: 5.0,
    citation: "Lorenz (1963) J. Atmos. Sci. 20:130-141",
};

impl Model for Lorenz {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let Params { sigma, rho, beta } = Params::from_slice(p);
        let (xs, ys, zs) = (x[0], x[1], x[2]);
        dx[0] = sigma * (ys - xs) + c[0];
        dx[1] = xs * (rho - zs) - ys;
        dx[2] = xs * ys - beta * zs;
    }
}
