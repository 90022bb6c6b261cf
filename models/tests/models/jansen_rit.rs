//! Jansen–Rit: the fixed points, the alpha rhythm at the paper's parameters, and rest outside the
//! oscillatory input range.

use neurodiff_models::{JansenRit, Model};

use crate::common::{bisect, drift_at, frequency, params, peak_to_peak, rk4, trace};

const M: JansenRit = JansenRit;

fn p_of(set: &[(&str, f64)]) -> Vec<f64> {
    params(JansenRit.spec(), set)
}

/// Fixed points of one uncoupled node. With the derivatives `y3 = y4 = y5 = 0`, the second-order
/// equations give `y0 = (A/a) S(y1 - y2)`, `y1 = (A/a) (mu + a_2 J S(a_1 J y0))` and
/// `y2 = (B/b) a_4 J S(a_3 J y0)`: a scalar equation in `y0`, whose roots lie in
/// `[0, 2 nu_max A / a]` since `0 < S < 2 nu_max`. (Written here from the paper's equations,
/// independently of the model code.)
fn fixed_points(p: &[f64]) -> Vec<[f64; 6]> {
    let (a_big, b_big, a, b, v0, nu_max, r, j) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
    let (a_1, a_2, a_3, a_4, mu) = (p[8], p[9], p[10], p[11], p[12]);
    let s = |v: f64| 2.0 * nu_max / (1.0 + (r * (v0 - v)).exp());
    let state = |y0: f64| {
        let y1 = a_big / a * (mu + a_2 * j * s(a_1 * j * y0));
        let y2 = b_big / b * a_4 * j * s(a_3 * j * y0);
        [y0, y1, y2, 0.0, 0.0, 0.0]
    };
    let f = |y0: f64| {
        let x = state(y0);
        a_big / a * s(x[1] - x[2]) - y0
    };
    let hi = 2.0 * nu_max * a_big / a;
    let n = 2000;
    let mut roots = Vec::new();
    for i in 0..n {
        let (l, h) = (hi * i as f64 / n as f64, hi * (i + 1) as f64 / n as f64);
        if f(l) * f(h) <= 0.0 {
            roots.push(state(bisect(f, l, h)));
        }
    }
    roots
}

#[test]
fn drift_vanishes_at_the_fixed_points() {
    for (v0, mu) in [(6.0, 0.05), (6.0, 0.22), (6.0, 0.4), (5.52, 0.22)] {
        let p = p_of(&[("v0", v0), ("mu", mu)]);
        let fps = fixed_points(&p);
        assert!(!fps.is_empty(), "mu = {mu}: no fixed point found");
        for x in fps {
            let dx = drift_at(&M, &x, &p);
            // Compared with the size of the terms that cancel, e.g. a² y1 (mV/ms²).
            let scale = p[2] * p[2] * x[1].abs().max(x[2].abs()).max(1.0);
            for (i, d) in dx.iter().enumerate() {
                assert!(
                    d.abs() < 1e-12 * scale,
                    "mu = {mu}: d y{i}/dt = {d} at {x:?}"
                );
            }
        }
    }
}

/// Jansen & Rit (1995): with their parameters and a mean input of 220 pulses/s (`mu = 0.22`),
/// the column produces the alpha rhythm, 8–12 Hz, in the pyramidal potential `y1 - y2`.
#[test]
fn default_parameters_give_the_alpha_rhythm() {
    let p = JansenRit.spec().defaults();
    let dt = 0.1; // ms
    let c = [0.0];
    let (mut t, mut v) = (Vec::new(), Vec::new());
    // 2 s of transient, then 2 s recorded.
    rk4(
        &M,
        &JansenRit.spec().initial(),
        &c,
        &p,
        dt,
        40_000,
        |tt, x| {
            if tt > 2000.0 {
                t.push(tt);
                v.push(x[1] - x[2]);
            }
        },
    );
    let f_hz = frequency(&t, &v).expect("an oscillation") * 1000.0;
    assert!(
        (8.0..=12.0).contains(&f_hz),
        "frequency {f_hz} Hz is not alpha"
    );
    assert!(peak_to_peak(&v) > 1.0, "amplitude {} mV", peak_to_peak(&v));
}

/// Grimbert & Faugeras (2006) (bifurcation analysis of the model with the paper's parameters):
/// the column has limit cycles only for inputs between about 90 and 315 pulses/s; for 50 or
/// 400 pulses/s it comes to rest at a fixed point.
#[test]
fn no_rhythm_outside_the_oscillatory_input_range() {
    for mu in [0.05, 0.4] {
        let p = p_of(&[("mu", mu)]);
        let (_, y1) = trace(&M, &JansenRit.spec().initial(), &p, 0.1, 100_000, 10_000, 1);
        assert!(
            peak_to_peak(&y1) < 1e-6,
            "mu = {mu}: still oscillating ({})",
            peak_to_peak(&y1)
        );
        let last = *y1.last().unwrap();
        assert!(
            fixed_points(&p).iter().any(|x| (x[1] - last).abs() < 1e-6),
            "mu = {mu}: rest at y1 = {last} is not one of the fixed points"
        );
    }
}
