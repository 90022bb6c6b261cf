//! Generic 2D oscillator: the configurations documented by TVB.

use neurodiff_models::{Generic2d, Model};

use crate::common::{bisect, drift_at, jacobian, params, peak_to_peak, trace};

const M: Generic2d = Generic2d;

/// Fixed point for `c = g = 0`, `alpha = beta = f = 1`, `e = 3`: `dW/dt = 0` gives
/// `W = a + b V`, and `dV/dt = 0` gives `W = V³ - 3V² - I`, so `V³ - 3V² - b V - a - I = 0`.
/// For `b = -10` the cubic's slope `3V² - 6V + 10` is positive, so the root is unique.
fn fixed_point(p: &[f64]) -> [f64; 2] {
    let (i, a, b) = (p[1], p[2], p[3]);
    let v = bisect(|v| v * v * v - 3.0 * v * v - b * v - a - i, -10.0, 10.0);
    [v, a + b * v]
}

/// TVB's "excitable configuration" (the defaults) rests at a stable fixed point; with `a = 2`
/// the same configuration has a limit cycle.
#[test]
fn excitable_configuration_and_its_limit_cycle() {
    let p = Generic2d.spec().defaults();
    let x = fixed_point(&p);
    assert!(
        drift_at(&M, &x, &p).iter().all(|d| d.abs() < 1e-15),
        "{x:?}"
    );
    let (_, v) = trace(&M, &[1.0, 0.0], &p, 0.1, 100_000, 10_000, 0);
    assert!(peak_to_peak(&v) < 1e-9 && (v[0] - x[0]).abs() < 1e-8);

    let p = params(Generic2d.spec(), &[("a", 2.0)]);
    let x = fixed_point(&p);
    let j = jacobian(&M, &x, &[0.0], &p);
    assert!(
        j[0][0] + j[1][1] > 0.0,
        "the fixed point should be unstable"
    );
    let (_, v) = trace(&M, &[1.0, 0.0], &p, 0.1, 100_000, 10_000, 0);
    assert!(peak_to_peak(&v) > 0.5, "{}", peak_to_peak(&v));
}

/// Sanz-Leon et al. (2013) (TVB's documentation, table 5): with `a = -0.5` the node is a stable
/// focus whose damped oscillations, which noise sustains, are at about 10 Hz: the imaginary
/// part of the Jacobian's eigenvalues, `√(det - tr²/4)`, over 2π, with time in ms.
#[test]
fn sanz_leon_configuration_rings_at_10_hz() {
    let p = params(Generic2d.spec(), &[("a", -0.5)]);
    let x = fixed_point(&p);
    assert!(drift_at(&M, &x, &p).iter().all(|d| d.abs() < 1e-15));
    let j = jacobian(&M, &x, &[0.0], &p);
    let tr = j[0][0] + j[1][1];
    let det = j[0][0] * j[1][1] - j[0][1] * j[1][0];
    assert!(tr < 0.0 && det - tr * tr / 4.0 > 0.0, "not a stable focus");
    let f_hz = (det - tr * tr / 4.0).sqrt() / std::f64::consts::TAU * 1000.0;
    assert!((9.0..=11.0).contains(&f_hz), "{f_hz} Hz");
}
