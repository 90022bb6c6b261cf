//! FitzHugh–Nagumo: FitzHugh's resting point and the Hopf bifurcation in the input current.

use neurodiff_models::{FitzHughNagumo, Model};

use crate::common::{bisect, drift_at, jacobian, params, peak_to_peak, trace};

const M: FitzHughNagumo = FitzHughNagumo;

/// The fixed point: `w = (v + a) / b` from `dw/dt = 0`, and then
/// `v - v³/3 - (v + a)/b + I = 0`, whose left side decreases in `v` when `b < 1` (slope
/// `1 - v² - 1/b < 0`), so the root is unique.
fn fixed_point(p: &[f64]) -> [f64; 2] {
    let (a, b, i) = (p[0], p[1], p[3]);
    let v = bisect(|v| v - v * v * v / 3.0 - (v + a) / b + i, -3.0, 3.0);
    [v, (v + a) / b]
}

/// FitzHugh (1961): at the standard parameters and no input the resting state is
/// `v ≈ -1.20`, `w ≈ -0.62`, and it is stable.
#[test]
fn resting_state() {
    let p = FitzHughNagumo.spec().defaults();
    let x = fixed_point(&p);
    assert!(drift_at(&M, &x, &p).iter().all(|d| d.abs() < 1e-14));
    assert!(
        (x[0] + 1.20).abs() < 0.01 && (x[1] + 0.62).abs() < 0.01,
        "{x:?}"
    );
    let (_, v) = trace(&M, &[0.0, 0.0], &p, 0.05, 100_000, 1, 0);
    assert!((v[0] - x[0]).abs() < 1e-8);
}

/// The Jacobian at the fixed point has trace `1 - v*² - b/tau`, which vanishes at
/// `v_H = -√(1 - b/tau)`; the input that puts the fixed point there is
/// `I_H = v_H³/3 - v_H + (v_H + a)/b` (≈ 0.33 at the standard parameters). Below it the node
/// rests, above it it fires periodically.
#[test]
fn hopf_bifurcation_in_the_input() {
    let p0 = FitzHughNagumo.spec().defaults();
    let (a, b, tau) = (p0[0], p0[1], p0[2]);
    let v_h = -(1.0 - b / tau).sqrt();
    let i_h = v_h.powi(3) / 3.0 - v_h + (v_h + a) / b;
    assert!((0.32..=0.34).contains(&i_h), "I_H = {i_h}");
    for (di, stable) in [(-0.01, true), (0.01, false)] {
        let p = params(FitzHughNagumo.spec(), &[("I", i_h + di)]);
        let x = fixed_point(&p);
        let j = jacobian(&M, &x, &[0.0], &p);
        let trace_j = j[0][0] + j[1][1];
        assert_eq!(trace_j < 0.0, stable, "I = {}: trace {trace_j}", i_h + di);
    }
    // Well below and above: rest, and large periodic spikes.
    let rest = params(FitzHughNagumo.spec(), &[("I", 0.0)]);
    let (_, v) = trace(&M, &[0.0, 0.0], &rest, 0.05, 100_000, 10_000, 0);
    assert!(peak_to_peak(&v) < 1e-9);
    let firing = params(FitzHughNagumo.spec(), &[("I", 0.5)]);
    let (_, v) = trace(&M, &[0.0, 0.0], &firing, 0.05, 100_000, 10_000, 0);
    assert!(peak_to_peak(&v) > 3.0, "{}", peak_to_peak(&v));
}
