//! Epileptor: Jirsa et al.'s (2014) six-dimensional phenomenological model of seizure dynamics. A
//! fast subsystem `(x1, y1)` generates the ictal discharges, a second subsystem `(x2, y2)` the
//! spike-and-wave events, a slow permittivity variable `z` drives the node into and out of
//! seizures, and `g` low-pass filters `x1` into population 2.
//!
//! ```text
//! dx1/dt = tt ( y1 - z + Iext + Kvf c1 + f1(x1, x2, z) x1 )
//! dy1/dt = tt ( c - d x1² - y1 )
//! dz/dt  = tt r ( s (x1 - x0) - 0.1 z⁷ [z < 0] - z + Ks c1 )
//! dx2/dt = tt ( -y2 + x2 - x2³ + Iext2 + bb g - 0.3 (z - 3.5) + Kf c2 )
//! dy2/dt = tt ( -y2 + aa (x2 + 0.25) [x2 ≥ -0.25] ) / tau
//! dg/dt  = tt ( -0.01 (g - 0.1 x1) )
//! f1     = -a x1² + b x1                   if x1 < 0
//!        = slope - x2 + 0.6 (z - 4)²       if x1 ≥ 0
//! ```
//! All quantities are dimensionless; like TVB we read time as ms. The usual output is
//! `x2 - x1` (the LFP-like signal) and `z`.
//!
//! | parameter | default  | meaning                                              |
//! |-----------|----------|------------------------------------------------------|
//! | `a`, `b`  | 1, 3     | cubic and quadratic coefficients of x1               |
//! | `c`, `d`  | 1, 5     | constant and quadratic coefficients of y1 (`y0` in the paper) |
//! | `r`       | 0.00035  | time scale of z (1/τ0)                               |
//! | `s`       | 4        | coupling of x1 into z                                |
//! | `x0`      | -1.6     | epileptogenicity (seizures for x0 > about -2.05)     |
//! | `Iext`    | 3.1      | input to population 1                                |
//! | `slope`   | 0        | linear coefficient in f1 for x1 ≥ 0                  |
//! | `Iext2`   | 0.45     | input to population 2                                |
//! | `tau`     | 10       | time scale of y2                                     |
//! | `aa`      | 6        | slope of y2's nullcline                              |
//! | `bb`      | 2        | coupling of g into x2                                |
//! | `Kvf`     | 0        | network input into x1 (very fast time scale)         |
//! | `Kf`      | 0        | network input into x2 (fast time scale)              |
//! | `Ks`      | 0        | network input into z (permittivity coupling)         |
//! | `tt`      | 1        | time scaling of the whole system                     |
//!
//! Equations and defaults follow TVB's `Epileptor` (Jirsa et al. 2014's values), with two
//! deliberate differences: TVB's code ignores its own `s` parameter and hard-codes 4 (here `s`
//! is used; same result at the default), and TVB's optional `modification` (a sigmoidal
//! `h(x1)` replacing `s (x1 - x0)`, Proix et al. 2014) is not offered. As in TVB's code the
//! `-0.1 z⁷` term acts when `z < 0` (TVB's docstring says `x1 < 0`).
//!
//! **Coupling.** Two inputs, normally with difference coupling: `c1` from the other nodes' `x1`
//! (`c1_i = G Σ_j W_ij (x1_j - x1_i)`) enters `x1` scaled by `Kvf` and `z` scaled by `Ks`, and
//! `c2` from their `x2` (off by default) enters `x2` scaled by `Kf`. With the default `Ks = Kvf
//! = Kf = 0` the nodes are uncoupled; Proix et al. (2014)'s permittivity coupling is `Ks < 0`
//! (e.g. `Ks = -1`, strength set by the coupling's `G`).
//!
//! Jirsa, Stacey, Quilichini, Ivanov & Bernard (2014), *On the nature of seizure dynamics*,
//! Brain 137:2210–2230; Proix, Bartolomei, Chauvel, Bernard & Jirsa (2014), *Permittivity
//! coupling across brain regions determines seizure recruitment in partial epilepsy*,
//! J. Neurosci. 34:15009–15021.

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{k, Model, Real};

crate::params! {
    /// Epileptor parameters.
    pub struct Params, const PARAMS {
        /// cubic coefficient of x1
        a = 1.0, "1", [-10.0, 10.0];
        /// quadratic coefficient of x1
        b = 3.0, "1", [-10.0, 10.0];
        /// constant term of y1
        c = 1.0, "1", [-10.0, 10.0];
        /// quadratic coefficient of y1
        d = 5.0, "1", [-10.0, 20.0];
        /// time scale of z (1/tau0)
        r = 0.00035, "1/ms", [0.0, 1.0];
        /// coupling of x1 into z
        s = 4.0, "1", [0.0, 20.0];
        /// epileptogenicity
        x0 = -1.6, "1", [-5.0, 1.0];
        /// input to population 1
        Iext = 3.1, "1", [-10.0, 10.0];
        /// linear coefficient of f1 for x1 >= 0
        slope = 0.0, "1", [-20.0, 20.0];
        /// input to population 2
        Iext2 = 0.45, "1", [-10.0, 10.0];
        /// time scale of y2
        tau = 10.0, "1", [1e-2, 1000.0];
        /// slope of the y2 nullcline
        aa = 6.0, "1", [-20.0, 20.0];
        /// coupling of g into x2
        bb = 2.0, "1", [-20.0, 20.0];
        /// gain of the network input into x1
        Kvf = 0.0, "1", [-10.0, 10.0];
        /// gain of the network input into x2
        Kf = 0.0, "1", [-10.0, 10.0];
        /// gain of the network input into z
        Ks = 0.0, "1", [-10.0, 10.0];
        /// time scaling of the whole system
        tt = 1.0, "1", [1e-3, 100.0];
    }
}

/// The six-dimensional Epileptor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epileptor;

/// Static description of [`Epileptor`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "epileptor",
    title: "Epileptor (Jirsa 2014)",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.05,
    sample_period: None,
    state: &[
        VarSpec::new(
            "x1",
            "a.u.",
            -1.5,
            (-2.0, 1.0),
            "fast population 1, first variable",
        ),
        VarSpec::new(
            "y1",
            "a.u.",
            -10.0,
            (-20.0, 2.0),
            "fast population 1, second variable",
        ),
        VarSpec::new("z", "a.u.", 3.0, (2.0, 5.0), "slow permittivity variable"),
        VarSpec::new(
            "x2",
            "a.u.",
            -1.0,
            (-2.0, 0.0),
            "population 2, first variable",
        ),
        VarSpec::new(
            "y2",
            "a.u.",
            0.0,
            (0.0, 2.0),
            "population 2, second variable",
        ),
        VarSpec::new("g", "a.u.", 0.0, (-1.0, 1.0), "low-pass filter of x1"),
    ],
    params: PARAMS,
    coupling: &[
        CouplingSpec {
            name: "c1",
            var: 0,
            sends: None,
            default_on: true,
            doc: "network input from the other nodes' x1 (into x1 via Kvf, into z via Ks)",
        },
        CouplingSpec {
            name: "c2",
            var: 3,
            sends: None,
            default_on: false,
            doc: "network input from the other nodes' x2 (into x2 via Kf)",
        },
    ],
    coupling_function: CouplingFunction::Difference,
    coupling_strength: 1.0,
    citation: "Jirsa et al. (2014) Brain 137:2210-2230",
};

impl Model for Epileptor {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let (x1, y1, z, x2, y2, g) = (x[0], x[1], x[2], x[3], x[4], x[5]);
        let Params {
            a,
            b,
            c: cc,
            d,
            r,
            s,
            x0,
            Iext: iext,
            slope,
            Iext2: iext2,
            tau,
            aa,
            bb,
            Kvf: kvf,
            Kf: kf,
            Ks: ks,
            tt,
        } = Params::from_slice(p);

        let zero = k::<R>(0.0);
        let z4 = z - k(4.0);
        let f1 = R::select(
            x1.lt(zero),
            -a * x1 * x1 + b * x1,
            slope - x2 + k::<R>(0.6) * z4 * z4,
        );
        dx[0] = tt * (y1 - z + iext + kvf * c[0] + f1 * x1);
        dx[1] = tt * (cc - d * x1 * x1 - y1);
        // The -0.1 z⁷ term only acts for z < 0.
        let z7 = z.min(zero).powi(7);
        dx[2] = tt * r * (s * (x1 - x0) - k::<R>(0.1) * z7 - z + ks * c[0]);
        dx[3] = tt
            * (-y2 + x2 - x2 * x2 * x2 + iext2 + bb * g - k::<R>(0.3) * (z - k(3.5)) + kf * c[1]);
        let f2 = aa * (x2 + k(0.25)).max(zero);
        dx[4] = tt * (-y2 + f2) / tau;
        dx[5] = tt * (-k::<R>(0.01) * (g - k::<R>(0.1) * x1));
    }
}
