//! Hodgkin–Huxley 1952 against a reference written here from the published equations (its own
//! rate functions, constants and RK4, not the library's): drift, action potential, rest and the
//! f–I behaviour (no firing at rest, repetitive firing at 10 µA/cm² at 60–70 Hz).

use neurodiff_models::neuron::{hh::HodgkinHuxley, Neuron};

use crate::common::{assert_close, Rng};
use crate::neuron::{run, Scheme};

const M: HodgkinHuxley = HodgkinHuxley;

/// The published constants (mS/cm², mV, µF/cm²), typed in again here.
const G_NA: f64 = 120.0;
const G_K: f64 = 36.0;
const G_L: f64 = 0.3;
const E_NA: f64 = 50.0;
const E_K: f64 = -77.0;
const E_L: f64 = -54.387;
const C_M: f64 = 1.0;

/// `c · y / (1 − e^{−y/10})` directly, and by its two-term expansion `10 c (1 + y/20)` within
/// 1e-4 mV of the singular point (relative error there ~1e-11).
fn vtrap(c: f64, y: f64) -> f64 {
    if y.abs() < 1e-4 {
        10.0 * c * (1.0 + y / 20.0)
    } else {
        c * y / (1.0 - (-y / 10.0).exp())
    }
}

/// `[α_m, β_m, α_h, β_h, α_n, β_n]` (1/ms) at `v` (mV).
fn ref_rates(v: f64) -> [f64; 6] {
    [
        vtrap(0.1, v + 40.0),
        4.0 * (-(v + 65.0) / 18.0).exp(),
        0.07 * (-(v + 65.0) / 20.0).exp(),
        1.0 / (1.0 + (-(v + 35.0) / 10.0).exp()),
        vtrap(0.01, v + 55.0),
        0.125 * (-(v + 65.0) / 80.0).exp(),
    ]
}

/// The ionic current (µA/cm², outward positive).
fn ref_ionic(x: &[f64; 4]) -> f64 {
    let [v, m, h, n] = *x;
    G_NA * m.powi(3) * h * (v - E_NA) + G_K * n.powi(4) * (v - E_K) + G_L * (v - E_L)
}

fn ref_drift(x: &[f64; 4], i: f64) -> [f64; 4] {
    let [v, m, h, n] = *x;
    let [am, bm, ah, bh, an, bn] = ref_rates(v);
    [
        (i - ref_ionic(x)) / C_M,
        am * (1.0 - m) - bm * m,
        ah * (1.0 - h) - bh * h,
        an * (1.0 - n) - bn * n,
    ]
}

/// Gates at their steady state at `v`.
fn ref_steady(v: f64) -> [f64; 4] {
    let [am, bm, ah, bh, an, bn] = ref_rates(v);
    [v, am / (am + bm), ah / (ah + bh), an / (an + bn)]
}

/// RK4 of the reference from rest at −65 mV with current `i`, step `dt`, for `t_end` ms;
/// returns `V` after every step.
fn ref_run(i: f64, dt: f64, t_end: f64) -> Vec<f64> {
    let mut x = ref_steady(-65.0);
    let steps = (t_end / dt).round() as usize;
    let mut out = Vec::with_capacity(steps);
    let add = |x: &[f64; 4], k: &[f64; 4], h: f64| -> [f64; 4] {
        [
            x[0] + h * k[0],
            x[1] + h * k[1],
            x[2] + h * k[2],
            x[3] + h * k[3],
        ]
    };
    for _ in 0..steps {
        let k1 = ref_drift(&x, i);
        let k2 = ref_drift(&add(&x, &k1, dt / 2.0), i);
        let k3 = ref_drift(&add(&x, &k2, dt / 2.0), i);
        let k4 = ref_drift(&add(&x, &k3, dt), i);
        for j in 0..4 {
            x[j] += dt / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
        }
        out.push(x[0]);
    }
    out
}

/// Upward crossings of 0 mV in a voltage trace (times at the end of the step).
fn crossings(v: &[f64], dt: f64) -> Vec<f64> {
    (1..v.len())
        .filter(|&s| v[s - 1] <= 0.0 && v[s] > 0.0)
        .map(|s| (s + 1) as f64 * dt)
        .collect()
}

/// Rate (Hz) from the spikes in `[from, to)` ms: spikes − 1 over the span between the first
/// and last; 0 with fewer than two.
fn rate(spikes: &[f64], from: f64, to: f64) -> f64 {
    let w: Vec<f64> = spikes
        .iter()
        .copied()
        .filter(|&t| t >= from && t < to)
        .collect();
    if w.len() < 2 {
        return 0.0;
    }
    1000.0 * (w.len() - 1) as f64 / (w[w.len() - 1] - w[0])
}

/// The library drift equals the reference at random points, at the removable singularities
/// of `α_m` (−40 mV) and `α_n` (−55 mV) and next to them.
#[test]
fn hh_drift_equals_the_reference() {
    let p = HodgkinHuxley::SPEC.defaults();
    let mut rng = Rng::new(13);
    let mut vs = vec![
        -40.0,
        -55.0,
        -40.0 + 1e-6,
        -55.0 - 1e-6,
        -40.05,
        -54.95,
        -65.0,
    ];
    vs.extend((0..200).map(|_| rng.uniform(-100.0, 60.0)));
    for v in vs {
        let x = [
            v,
            rng.uniform(0.0, 1.0),
            rng.uniform(0.0, 1.0),
            rng.uniform(0.0, 1.0),
        ];
        let i = rng.uniform(-10.0, 50.0);
        let want = ref_drift(&x, i);
        let mut got = [f64::NAN; 4];
        M.drift(&x, i, &p, &mut got);
        for j in 0..4 {
            assert_close(&format!("dx[{j}] at {x:?}"), got[j], want[j], 1e-9, 1.0);
        }
    }
    // The limits themselves: α_m(−40) = 1, α_n(−55) = 0.1 per ms.
    let r = neurodiff_models::neuron::hh::rates(-40.0f64);
    assert_close("α_m(−40)", r[0], 1.0, 1e-12, 1.0);
    let r = neurodiff_models::neuron::hh::rates(-55.0f64);
    assert_close("α_n(−55)", r[4], 0.1, 1e-12, 1.0);
}

/// Under a 10 µA/cm² step from rest, RK4 at 0.01 ms over the library drift follows the
/// reference RK4 to 1e-6 mV for 50 ms (three action potentials, the same spike steps), and
/// the first action potential peaks in the +40 mV region (30–50 mV: an excursion of about
/// 100 mV from rest, as in HH 1952's computed membrane action potentials) followed by an
/// after-hyperpolarisation between −77 (E_K) and −70 mV.
#[test]
fn hh_action_potential_matches_the_reference() {
    let dt = 0.01;
    let p = HodgkinHuxley::SPEC.defaults();
    let lib = run(&M, &p, |_| 10.0, dt, 50.0, Scheme::Rk4);
    let reference = ref_run(10.0, dt, 50.0);
    let max_diff = lib
        .v
        .iter()
        .zip(&reference)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        max_diff < 1e-6,
        "library vs reference: max |ΔV| = {max_diff}"
    );
    let steps = |t: &[f64]| {
        t.iter()
            .map(|t| (t / dt).round() as usize)
            .collect::<Vec<_>>()
    };
    assert_eq!(steps(&lib.spikes), steps(&crossings(&reference, dt)));
    assert!(lib.spikes.len() >= 3, "spikes {:?}", lib.spikes);

    let first_end = (lib.spikes[0] / dt) as usize + 300; // 3 ms after the crossing
    let peak = reference[..first_end]
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    let trough = reference[first_end..((lib.spikes[1] / dt) as usize)]
        .iter()
        .cloned()
        .fold(f64::INFINITY, f64::min);
    println!(
        "hh: first spike {:.3} ms, peak {peak:.2} mV, trough {trough:.2} mV",
        lib.spikes[0]
    );
    assert!((30.0..50.0).contains(&peak), "AP peak {peak} mV");
    assert!(trough < -70.0 && trough > -77.0, "AHP trough {trough} mV");
}

/// The resting potential is −65 mV: the reference's zero of the ionic current with gates at
/// steady state (bisection) lies within 0.01 mV of it, and the library's rest state stays
/// there for 200 ms without input and without spikes.
#[test]
fn hh_rests_at_minus_65() {
    let (mut lo, mut hi) = (-70.0, -60.0);
    assert!(ref_ionic(&ref_steady(lo)) < 0.0 && ref_ionic(&ref_steady(hi)) > 0.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if ref_ionic(&ref_steady(mid)) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    println!("hh: reference rest {lo:.5} mV");
    assert!((lo + 65.0).abs() < 0.01, "rest {lo}");

    let p = HodgkinHuxley::SPEC.defaults();
    let r = run(&M, &p, |_| 0.0, 0.025, 200.0, Scheme::ExpEuler);
    assert!(r.spikes.is_empty(), "{:?}", r.spikes);
    let dev = r.v.iter().fold(0.0f64, |m, v| m.max((v + 65.0).abs()));
    assert!(dev < 0.01, "max |V + 65| = {dev}");
}

/// f–I: the published behaviour of the HH 1952 model (e.g. Rinzel & Miller 1980, Koch 1999
/// §6): no firing without input, no repetitive firing at 5 µA/cm² (below the onset near
/// 6.2), repetitive firing at 10 µA/cm² at 60–70 Hz, faster at 20. The reference RK4 at
/// 0.01 ms gives the rates; the library stepped by exponential Euler (Rush–Larsen) at the
/// default 0.025 ms matches them within 2 %.
#[test]
fn hh_f_i_curve() {
    let p = HodgkinHuxley::SPEC.defaults();
    let mut last = 0.0;
    for (i, lo, hi) in [
        (0.0, 0.0, 0.0),
        (5.0, 0.0, 0.0),
        (10.0, 60.0, 72.0),
        (20.0, 72.0, 110.0),
    ] {
        let reference = crossings(&ref_run(i, 0.01, 500.0), 0.01);
        let f_ref = rate(&reference, 100.0, 500.0);
        let lib = run(&M, &p, |_| i, 0.025, 500.0, Scheme::ExpEuler);
        let f_lib = rate(&lib.spikes, 100.0, 500.0);
        println!(
            "hh f-I: I = {i} µA/cm²: reference {f_ref:.2} Hz, library (exp. Euler) {f_lib:.2} Hz"
        );
        assert!(
            (lo..=hi).contains(&f_ref),
            "I = {i}: reference rate {f_ref} Hz not in [{lo}, {hi}]"
        );
        if f_ref == 0.0 {
            assert_eq!(f_lib, 0.0, "I = {i}");
            // At most the onset spike, all of them before the window.
            assert!(reference.iter().all(|&t| t < 100.0), "{reference:?}");
        } else {
            assert!(
                (f_lib - f_ref).abs() < 0.02 * f_ref,
                "I = {i}: {f_lib} vs {f_ref}"
            );
            assert!(f_ref > last);
        }
        last = f_ref;
    }
}
