//! Epileptor: the interictal fixed point of a healthy node, and recurrent seizures at the
//! default (epileptogenic) excitability.

use neurodiff_models::{Epileptor, Model};

use crate::common::{bisect, drift_at, params, peak_to_peak, rk4, trace};

const M: Epileptor = Epileptor;

/// Fixed points with `x1 < 0` and `z ≥ 0` (and no input). `dy1/dt = 0`: `y1 = c - d x1²`;
/// `dz/dt = 0`: `z = s (x1 - x0)`; `dx1/dt = 0` then reads
/// `-a x1³ + (b - d) x1² - s x1 + c + s x0 + Iext = 0`, whose slope
/// `-3a x1² + 2(b - d) x1 - s` is negative for the default `a, b, d, s`: one root. Then
/// `g = 0.1 x1`, and `x2` solves `x2 - x2³ - y2(x2) + Iext2 + bb g - 0.3 (z - 3.5) = 0` with
/// `y2 = aa max(x2 + 0.25, 0)` (found by scanning, as it need not be monotone).
fn fixed_points(p: &[f64]) -> Vec<[f64; 6]> {
    let (a, b, c, d, _r, s, x0, iext) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
    let (iext2, aa, bb) = (p[9], p[11], p[12]);
    let x1 = bisect(
        |x| -a * x * x * x + (b - d) * x * x - s * x + c + s * x0 + iext,
        -5.0,
        0.0,
    );
    let (y1, z, g) = (c - d * x1 * x1, s * (x1 - x0), 0.1 * x1);
    assert!(z >= 0.0);
    let y2_of = |x2: f64| aa * (x2 + 0.25).max(0.0);
    let f = |x2: f64| x2 - x2 * x2 * x2 - y2_of(x2) + iext2 + bb * g - 0.3 * (z - 3.5);
    let mut out = Vec::new();
    let n = 4000;
    for i in 0..n {
        let (l, h) = (
            -3.0 + 6.0 * i as f64 / n as f64,
            -3.0 + 6.0 * (i + 1) as f64 / n as f64,
        );
        if f(l) * f(h) <= 0.0 {
            let x2 = bisect(f, l, h);
            out.push([x1, y1, z, x2, y2_of(x2), g]);
        }
    }
    out
}

/// A healthy node (`x0 = -2.5`, below the critical value of about -2.05) sits at its interictal
/// fixed point.
#[test]
fn healthy_node_rests_at_the_interictal_fixed_point() {
    let p = params(Epileptor.spec(), &[("x0", -2.5)]);
    let fps = fixed_points(&p);
    assert!(!fps.is_empty());
    for x in &fps {
        let dx = drift_at(&M, x, &p);
        assert!(dx.iter().all(|d| d.abs() < 1e-12), "{dx:?} at {x:?}");
    }
    // 20 000 time units (7 slow time constants 1/r) from the default initial state.
    let end = rk4(
        &M,
        &Epileptor.spec().initial(),
        &[0.0, 0.0],
        &p,
        0.05,
        400_000,
        |_, _| {},
    );
    assert!(
        fps.iter()
            .any(|x| x.iter().zip(&end).all(|(a, b)| (a - b).abs() < 1e-4)),
        "ended at {end:?}, fixed points {fps:?}"
    );
}

/// Jirsa et al. (2014): with `x0 = -1.6` (the default) the node alternates between interictal
/// and ictal periods: the slow variable `z` oscillates and, during seizures, `x1` discharges
/// above 0 (onto the other branch of `f1`).
#[test]
fn default_node_has_recurrent_seizures() {
    let p = Epileptor.spec().defaults();
    let dt = 0.05;
    let (_, x1) = trace(&M, &Epileptor.spec().initial(), &p, dt, 0, 400_000, 0);
    let (_, z) = trace(&M, &Epileptor.spec().initial(), &p, dt, 0, 400_000, 2);
    // Count seizure onsets: upward crossings of x1 = 0 separated by at least 500 time units.
    let mut onsets = Vec::new();
    for i in 1..x1.len() {
        if x1[i - 1] < 0.0 && x1[i] >= 0.0 {
            let t = i as f64 * dt;
            if onsets.last().is_none_or(|&t0: &f64| t - t0 > 500.0) {
                onsets.push(t);
            }
        }
    }
    assert!(onsets.len() >= 3, "seizure onsets at {onsets:?}");
    assert!(
        peak_to_peak(&z[z.len() / 2..]) > 0.3,
        "z does not oscillate"
    );
}
