//! Hopf normal form: the exact amplitude and phase of an uncoupled node, the bifurcation at
//! `a = 0`, and the BOLD-time-scale defaults.

use neurodiff_models::{Hopf, Model};

use crate::common::{drift_at, frequency, params, rk4, trace};

const M: Hopf = Hopf;

/// In polar form `dρ/dt = (a - ρ²) ρ`, `dφ/dt = omega`. With `u = ρ²`, `du/dt = 2 u (a - u)`
/// (logistic), so `u(t) = a u0 e^{2at} / (a + u0 (e^{2at} - 1))`, and `φ(t) = φ0 + omega t`.
/// RK4 on the Cartesian equations must follow this closed form.
#[test]
fn uncoupled_node_follows_the_closed_form() {
    for (a, omega, rho0) in [
        (-0.5, 0.314, 0.8),
        (0.3, 2.0, 0.05),
        (0.3, 2.0, 1.5),
        (-2.0, 6.0, 0.2),
    ] {
        let p = params(Hopf.spec(), &[("a", a), ("omega", omega)]);
        let dt = 0.001;
        let steps = 10_000; // 10 s
        let mut max_err: f64 = 0.0;
        rk4(&M, &[rho0, 0.0], &[0.0, 0.0], &p, dt, steps, |t, x| {
            let e = (2.0 * a * t).exp();
            let u = a * rho0 * rho0 * e / (a + rho0 * rho0 * (e - 1.0));
            let rho = u.sqrt();
            let (xe, ye) = (rho * (omega * t).cos(), rho * (omega * t).sin());
            max_err = max_err.max((x[0] - xe).abs()).max((x[1] - ye).abs());
        });
        assert!(max_err < 1e-9, "a = {a}, omega = {omega}: error {max_err}");
    }
}

/// The origin is a fixed point for every `a`; the node decays to it for `a < 0` and circles at
/// radius `√a`, `omega / 2π` turns per second, for `a > 0`.
#[test]
fn bifurcation_at_zero() {
    for a in [-0.05, -0.01, 0.01, 0.05, 0.5] {
        let p = params(Hopf.spec(), &[("a", a)]);
        assert_eq!(drift_at(&M, &[0.0, 0.0], &p), vec![0.0, 0.0]);
        let (t, x) = trace(&M, &[0.3, 0.0], &p, 0.01, 200_000, 20_000, 0);
        let (_, y) = trace(&M, &[0.3, 0.0], &p, 0.01, 200_000, 20_000, 1);
        let rho = (x.last().unwrap().powi(2) + y.last().unwrap().powi(2)).sqrt();
        if a < 0.0 {
            assert!(rho < 1e-3, "a = {a}: radius {rho}");
        } else {
            assert!((rho - a.sqrt()).abs() < 1e-6, "a = {a}: radius {rho}");
            let f = frequency(&t, &x).unwrap();
            assert!(
                (f - p[1] / std::f64::consts::TAU).abs() < 1e-4,
                "a = {a}: {f} Hz"
            );
        }
    }
}

/// The defaults serve Deco et al. (2017): seconds, 0.05 Hz, just below the bifurcation, and
/// difference coupling on both variables.
#[test]
fn defaults_are_the_bold_time_scale_working_point() {
    let s = Hopf.spec();
    assert_eq!(s.time_unit, "s");
    let p = s.defaults();
    assert!(p[0] < 0.0 && p[0] > -0.1, "a = {}", p[0]);
    assert!((p[1] / std::f64::consts::TAU - 0.05).abs() < 1e-15);
    assert_eq!(
        s.coupling_function,
        neurodiff_models::CouplingFunction::Difference
    );
    assert!(s.coupling.iter().all(|c| c.default_on));
}
