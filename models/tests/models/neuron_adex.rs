//! AdEx: rest, the reset rule and refractory period, and three firing patterns of Naud et al.
//! (2008, Biol. Cybern. 99:335, Table 1: tonic spiking, adaptation, initial burst) by their
//! published qualitative features, with the test-local integrator (step, detect, reset).

use neurodiff_models::neuron::{adex::AdEx, Neuron, REFRACTORY_EPS};

use crate::neuron::{isis, params, run, step, Scheme};

const M: AdEx = AdEx;

/// Naud et al. (2008) Table 1 (`C` pF, `g_L` nS, `E_L` mV, `V_T` mV, `Delta_T` mV, `a` nS,
/// `tau_w` ms, `b` pA, `V_reset` mV) and the step current `I` (pA), with the cut-off
/// `V_peak = 0 mV` and no refractory period.
fn naud(pattern: &str) -> (Vec<f64>, f64) {
    let (c, g_l, e_l, a, tau_w, b, v_r, i) = match pattern {
        "tonic" => (200.0, 10.0, -70.0, 2.0, 30.0, 0.0, -58.0, 500.0),
        "adapting" => (200.0, 12.0, -70.0, 2.0, 300.0, 60.0, -58.0, 500.0),
        "initial_burst" => (130.0, 18.0, -58.0, 4.0, 150.0, 120.0, -50.0, 400.0),
        _ => unreachable!(),
    };
    let p = params::<AdEx>(&[
        ("C", c),
        ("g_L", g_l),
        ("E_L", e_l),
        ("V_T", -50.0),
        ("Delta_T", 2.0),
        ("a", a),
        ("tau_w", tau_w),
        ("b", b),
        ("V_reset", v_r),
        ("V_peak", 0.0),
        ("t_ref", 0.0),
    ]);
    M.validate(&p).unwrap();
    (p, i)
}

/// ISIs (ms) of a pattern over 600 ms of step current from rest, RK4 at 0.005 ms.
fn pattern_isis(pattern: &str) -> Vec<f64> {
    let (p, i) = naud(pattern);
    let r = run(&M, &p, |_| i, 0.005, 600.0, Scheme::Rk4);
    let d = isis(&r.spikes);
    println!(
        "adex {pattern}: {} spikes, first at {:.2} ms, ISIs {:?}",
        r.spikes.len(),
        r.spikes.first().copied().unwrap_or(f64::NAN),
        d.iter()
            .map(|x| (x * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    assert!(d.len() >= 5, "{pattern}: only {} spikes", r.spikes.len());
    d
}

/// Largest ratio of consecutive ISIs among the first `n`.
fn max_step_ratio(d: &[f64], n: usize) -> f64 {
    d.windows(2)
        .take(n)
        .map(|w| w[1] / w[0])
        .fold(0.0, f64::max)
}

/// Relative spread `(max − min) / mean` of a set of ISIs.
fn spread(d: &[f64]) -> f64 {
    let max = d.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = d.iter().cloned().fold(f64::INFINITY, f64::min);
    (max - min) / (d.iter().sum::<f64>() / d.len() as f64)
}

/// Tonic spiking: regular firing with no spike-frequency adaptation to speak of (`b = 0`; the
/// subthreshold coupling `a` lengthens the ISI by less than 10 % while `w` settles), constant
/// ISIs once settled.
#[test]
fn adex_tonic_spiking_has_constant_isis() {
    let d = pattern_isis("tonic");
    let n = d.len();
    assert!(d[n - 1] < 1.1 * d[0], "adapting: {d:?}");
    assert!(spread(&d[n / 2..]) < 0.01, "not constant: {d:?}");
}

/// Adaptation: ISIs lengthen gradually (each at least as long as the one before, no jump) to a
/// steady value at least twice the first.
#[test]
fn adex_adapting_isis_increase() {
    let d = pattern_isis("adapting");
    for w in d.windows(2) {
        assert!(w[1] >= w[0] - 1e-9, "ISIs not increasing: {d:?}");
    }
    let n = d.len();
    assert!(d[n - 1] > 2.0 * d[0], "{d:?}");
    assert!(max_step_ratio(&d, n) < 1.8, "a jump, not gradual: {d:?}");
    assert!(spread(&d[n - 3..]) < 0.02, "not steady at the end: {d:?}");
}

/// Initial burst: a few short ISIs, then a jump to much longer, regular ones.
#[test]
fn adex_initial_burst_then_regular() {
    let d = pattern_isis("initial_burst");
    let n = d.len();
    let late = d[n - 1];
    assert!(d[0] < 0.25 * late, "first ISI {} vs late {late}", d[0]);
    assert!(
        max_step_ratio(&d, 4) > 2.5,
        "no jump after the burst: {d:?}"
    );
    assert!(spread(&d[n - 3..]) < 0.02, "not regular at the end: {d:?}");
}

/// At rest (`V = E_L`, `w = 0`) the drift vanishes and without input nothing happens for
/// 500 ms; at the Brette–Gerstner defaults a 1 nA step makes it fire.
#[test]
fn adex_rest_and_firing() {
    let p = AdEx::SPEC.defaults();
    let mut x = [f64::NAN; 3];
    M.rest(&p, &mut x);
    let mut dx = [f64::NAN; 3];
    M.drift(&x, 0.0, &p, &mut dx);
    // Only the exponential term, g_L Δ_T e^{(E_L − V_T)/Δ_T} / C ≈ 5e-6 mV/ms, is left.
    assert!(dx[0].abs() < 1e-5 && dx[1] == 0.0 && dx[2] == 0.0, "{dx:?}");
    let r = run(&M, &p, |_| 0.0, 0.025, 500.0, Scheme::ExpEuler);
    assert!(r.spikes.is_empty());
    assert!((r.x[0] - x[0]).abs() < 0.01, "{:?}", r.x);
    let r = run(&M, &p, |_| 1000.0, 0.025, 200.0, Scheme::ExpEuler);
    assert!(r.spikes.len() >= 3, "{:?}", r.spikes);
}

/// The reset after a spike: `V = V_reset` exactly, `w` up by `b` exactly, `r = t_ref`; `V`
/// stays at `V_reset` for `⌈t_ref / dt⌉` steps while `w` keeps relaxing, then moves.
#[test]
fn adex_reset_and_refractory_period() {
    let p = params::<AdEx>(&[("t_ref", 2.0)]);
    let (dt, t_ref) = (0.025, 2.0);
    let mut x = vec![0.0; 3];
    M.rest(&p, &mut x);
    let mut steps = 0;
    loop {
        let vb = x[0];
        let w_before = x[1];
        step(&M, &mut x, 1000.0, &p, dt, Scheme::ExpEuler);
        let s = M.spike(vb, x[0], &p);
        let w_after_step = x[1];
        M.reset(&mut x, s, &p);
        steps += 1;
        assert!(steps < 100_000, "no spike");
        if s == 1.0 {
            assert_eq!(x[0], -70.6);
            assert_eq!(x[1], w_after_step + 80.5);
            assert_eq!(x[2], t_ref);
            assert!(w_after_step != w_before);
            break;
        }
    }
    let held = (t_ref / dt).ceil() as usize;
    for k in 0..held {
        let w = x[1];
        step(&M, &mut x, 1000.0, &p, dt, Scheme::ExpEuler);
        assert_eq!(x[0], -70.6, "step {k} of the refractory period");
        assert!(x[1] < w, "w relaxes during refractoriness");
    }
    assert!(x[2] <= REFRACTORY_EPS, "countdown left {}", x[2]);
    step(&M, &mut x, 1000.0, &p, dt, Scheme::ExpEuler);
    assert!(x[0] > -70.6, "V integrates again after t_ref");
}
