//! Van der Pol: the unstable origin, the nearly harmonic limit cycle for small `mu` and the
//! relaxation oscillation for large `mu`.

use std::f64::consts::{LN_2, TAU};

use neurodiff_models::mass::vdp::VanDerPol;
use neurodiff_models::{CouplingFunction, Model};

use crate::common::{drift_at, frequency, heun, jacobian, params, rk4, trace};

const M: VanDerPol = VanDerPol;

/// The first zero of `Ai(-z)`, which sets the first correction to the relaxation period.
const AIRY_A1: f64 = 2.338_107_410_459_767;

/// Period (from upward crossings of the mean of `x`) and the largest and smallest `x` over
/// `window` time units after a transient of `transient`, by RK4 at step `dt` from a point near
/// the cycle.
fn cycle(mu: f64, dt: f64, transient: f64, window: f64) -> (f64, f64, f64) {
    let p = params(VanDerPol.spec(), &[("mu", mu)]);
    let (t, x) = trace(
        &M,
        &[2.0, -2.0 / 3.0],
        &p,
        dt,
        (transient / dt) as usize,
        (window / dt) as usize,
        0,
    );
    let period = 1.0 / frequency(&t, &x).expect("an oscillation");
    let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = x.iter().cloned().fold(f64::INFINITY, f64::min);
    (period, max, min)
}

/// `dy/dt = x / mu` vanishes only at `x = 0`, and then `dx/dt = -mu y` only at `y = 0`: the
/// origin is the only fixed point. Its Jacobian is `[[mu, -mu], [1/mu, 0]]` (trace `mu`,
/// determinant 1), with eigenvalues `(mu ± √(mu² - 4)) / 2`: an unstable focus below `mu = 2`,
/// an unstable node above.
#[test]
fn origin_is_the_only_fixed_point_and_is_unstable() {
    for mu in [0.1, 1.0, 1.9, 2.5, 10.0] {
        let p = params(VanDerPol.spec(), &[("mu", mu)]);
        assert_eq!(drift_at(&M, &[0.0, 0.0], &p), vec![0.0, 0.0], "mu = {mu}");
        // Nowhere else on a grid over the state range (spacing 0.05) does the drift vanish.
        for i in -50..=50 {
            for j in -60..=60 {
                if (i, j) == (0, 0) {
                    continue;
                }
                let x = [0.05 * i as f64, 0.05 * j as f64];
                let d = drift_at(&M, &x, &p);
                assert!(
                    d[0].abs().max(d[1].abs()) > 1e-4,
                    "mu = {mu}: drift {d:?} at {x:?}"
                );
            }
        }

        let j = jacobian(&M, &[0.0, 0.0], &[0.0, 0.0], &p);
        let want = [[mu, -mu], [1.0 / mu, 0.0]];
        for r in 0..2 {
            for c in 0..2 {
                assert!(
                    (j[r][c] - want[r][c]).abs() < 1e-8 * want[r][c].abs().max(1.0),
                    "mu = {mu}: J[{r}][{c}] = {} (want {})",
                    j[r][c],
                    want[r][c]
                );
            }
        }
        // Eigenvalues of the numerical Jacobian against the closed form.
        let (tr, det) = (j[0][0] + j[1][1], j[0][0] * j[1][1] - j[0][1] * j[1][0]);
        let disc = tr * tr - 4.0 * det;
        if mu < 2.0 {
            assert!(disc < 0.0, "mu = {mu}: expected a focus");
            let (re, im) = (tr / 2.0, (-disc).sqrt() / 2.0);
            assert!((re - mu / 2.0).abs() < 1e-8, "mu = {mu}: Re λ = {re}");
            assert!(
                (im - (4.0 - mu * mu).sqrt() / 2.0).abs() < 1e-8,
                "mu = {mu}: Im λ = {im}"
            );
        } else {
            assert!(disc > 0.0, "mu = {mu}: expected a node");
            let (l1, l2) = ((tr - disc.sqrt()) / 2.0, (tr + disc.sqrt()) / 2.0);
            let s = (mu * mu - 4.0).sqrt();
            assert!(
                (l1 - (mu - s) / 2.0).abs() < 1e-8 && l1 > 0.0,
                "mu = {mu}: {l1}"
            );
            assert!((l2 - (mu + s) / 2.0).abs() < 1e-8, "mu = {mu}: {l2}");
        }
    }
}

/// For small `mu` the cycle is nearly harmonic: amplitude `2 + O(mu²)` and period
/// `2π (1 + mu²/16 + O(mu⁴))`. A node started next to the (unstable) origin winds out onto it.
/// At `mu = 1` the period is the classical 6.6632869.
#[test]
fn small_mu_limit_cycle_has_amplitude_two_and_period_two_pi() {
    let mu = 0.1;
    let p = params(VanDerPol.spec(), &[("mu", mu)]);
    let (t, x) = trace(&M, &[1e-3, 0.0], &p, 0.01, 40_000, 10_000, 0);
    let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = x.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        (max - 2.0).abs() < 1e-3 && (min + 2.0).abs() < 1e-3,
        "{min}..{max}"
    );
    let period = 1.0 / frequency(&t, &x).unwrap();
    assert!((period - TAU).abs() < 1e-3 * TAU, "period {period}");
    let want = TAU * (1.0 + mu * mu / 16.0);
    assert!(
        (period - want).abs() < 2e-5 * want,
        "period {period} vs {want}"
    );

    let (period, max, min) = cycle(1.0, 0.005, 60.0, 60.0);
    assert!(
        (period - 6.663_286_9).abs() < 1e-5,
        "mu = 1: period {period}"
    );
    assert!((max - 2.008_6).abs() < 1e-3 && (min + 2.008_6).abs() < 1e-3);
}

/// For large `mu` the oscillation relaxes: the period tends to `(3 - 2 ln 2) mu`, with the first
/// correction `3 α mu^(-1/3)` (Dorodnitsyn 1947). The leading term alone is still 18 % short at
/// `mu = 10` (the period there is 19.078), 2.3 % at `mu = 50`; with the correction it is within
/// 2 % from `mu = 10` on. The amplitude stays close to 2.
#[test]
fn relaxation_period_at_large_mu() {
    let mut last_ratio = f64::INFINITY;
    for (mu, transient, window) in [
        (10.0, 60.0, 100.0),
        (20.0, 100.0, 150.0),
        (50.0, 200.0, 300.0),
    ] {
        let (period, max, min) = cycle(mu, 0.002, transient, window);
        let lead = (3.0 - 2.0 * LN_2) * mu;
        let two_terms = lead + 3.0 * AIRY_A1 * mu.powf(-1.0 / 3.0);
        assert!(
            (period - two_terms).abs() < 0.02 * two_terms,
            "mu = {mu}: period {period} vs {two_terms}"
        );
        let ratio = period / lead;
        assert!(
            ratio > 1.0 && ratio < last_ratio,
            "mu = {mu}: T / lead = {ratio}"
        );
        last_ratio = ratio;
        assert!(
            (max - 2.0).abs() < 0.03 && (min + 2.0).abs() < 0.03,
            "{min}..{max}"
        );
        if mu == 10.0 {
            assert!((period - 19.078).abs() < 2e-3, "mu = 10: period {period}");
        }
    }
    assert!(last_ratio < 1.03, "mu = 50: T / lead = {last_ratio}");
}

/// Heun at the default step is in its second-order regime over three periods at the defaults:
/// halving the step quarters the error against an RK4 reference, and the error is below 1 % of
/// the amplitude.
#[test]
fn heun_at_the_default_step_tracks_the_cycle() {
    let s = VanDerPol.spec();
    let p = s.defaults();
    let dt = s.default_dt;
    let steps = (20.0 / dt).round() as usize;
    let want = rk4(
        &M,
        &s.initial(),
        &[0.0, 0.0],
        &p,
        dt / 50.0,
        steps * 50,
        |_, _| {},
    );
    let err = |h: f64| {
        let got = heun(&M, &s.initial(), &p, h, (20.0 / h).round() as usize);
        (got[0] - want[0]).abs().max((got[1] - want[1]).abs())
    };
    let (e1, e2) = (err(dt), err(dt / 2.0));
    println!("vdp Heun error: {e1:e} at dt, {e2:e} at dt/2");
    assert!(e1 < 0.02, "{e1}");
    assert!((3.0..5.0).contains(&(e1 / e2)), "{e1} / {e2}");
}

/// Each input is added to its own equation, unscaled; diffusive coupling on `x` is the
/// documented default.
#[test]
fn inputs_add_to_their_equations() {
    let p = params(VanDerPol.spec(), &[("mu", 3.0)]);
    let x = [0.7, -0.4];
    let mut d0 = [0.0; 2];
    let mut d1 = [0.0; 2];
    M.drift(&x, &[0.0, 0.0], &p, &mut d0);
    M.drift(&x, &[0.25, -0.5], &p, &mut d1);
    assert!((d1[0] - d0[0] - 0.25).abs() < 1e-15 && (d1[1] - d0[1] + 0.5).abs() < 1e-15);
    let s = VanDerPol.spec();
    assert_eq!(s.coupling_function, CouplingFunction::Difference);
    assert!(s.coupling[0].default_on && !s.coupling[1].default_on);
}
