//! STN (Terman et al. 2002 / Rubin & Terman 2004): the published single-cell behaviour —
//! spontaneous firing at about 3 Hz, a rising f–I curve, the post-inhibitory rebound burst
//! that lengthens with the hyperpolarisation — and the added H current's sag.

use neurodiff_models::neuron::{stn::Stn, Neuron};

use crate::neuron::{isis, params, run, Run, Scheme};

const M: Stn = Stn;

/// Terman et al. (2002)'s values where Rubin & Terman (2004) changed them.
fn t02() -> Vec<f64> {
    params::<Stn>(&[
        ("tau_r0", 40.0),
        ("phi_r", 0.2),
        ("theta_b", 0.4),
        ("sigma_b", -0.1),
        ("epsilon", 3.75e-5),
    ])
}

/// Rate (Hz) from the spikes after `from` ms.
fn rate_after(r: &Run, from: f64) -> f64 {
    let s: Vec<f64> = r.spikes.iter().copied().filter(|&t| t >= from).collect();
    if s.len() < 2 {
        return 0.0;
    }
    1000.0 * (s.len() - 1) as f64 / (s[s.len() - 1] - s[0])
}

/// A hyperpolarising step of `amp` µA/cm² from 1000 ms for `dur` ms, from the initial state;
/// returns (spikes during the step after its first 50 ms, delay of the first spike after
/// release, the ISIs after release).
fn rebound(p: &[f64], amp: f64, dur: f64) -> (usize, f64, Vec<f64>) {
    let on = 1000.0;
    let r = run(
        &M,
        p,
        |t| if t >= on && t < on + dur { amp } else { 0.0 },
        0.01,
        on + dur + 800.0,
        Scheme::Rk4,
    );
    let during = r
        .spikes
        .iter()
        .filter(|&&t| t >= on + 50.0 && t < on + dur)
        .count();
    let after: Vec<f64> = r
        .spikes
        .iter()
        .copied()
        .filter(|&t| t >= on + dur)
        .collect();
    let delay = after.first().map_or(f64::INFINITY, |t| t - on - dur);
    (during, delay, isis(&after))
}

/// Spikes in the rebound burst: the first spike and those that follow it at ISIs under
/// 100 ms (a quarter of the spontaneous ISI, ~350 ms).
fn burst_spikes(d: &[f64]) -> usize {
    1 + d.iter().take_while(|&&x| x < 100.0).count()
}

/// Without input the cell fires on its own at about 3 Hz (Terman et al. 2002, Fig. 1), with
/// both parameter sets; exponential Euler at the default 0.025 ms (Rush–Larsen on the gates)
/// gives the RK4 rate within 3 %.
#[test]
fn stn_fires_spontaneously_at_about_3_hz() {
    for (name, p) in [("RT04", Stn::SPEC.defaults()), ("T02", t02())] {
        M.validate(&p).unwrap();
        let r = run(&M, &p, |_| 0.0, 0.01, 4000.0, Scheme::Rk4);
        let f = rate_after(&r, 1000.0);
        let e = run(&M, &p, |_| 0.0, 0.025, 4000.0, Scheme::ExpEuler);
        let fe = rate_after(&e, 1000.0);
        let peak = r.v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        println!("stn {name}: spontaneous {f:.2} Hz (RK4), {fe:.2} Hz (exp. Euler 0.025), peak {peak:.1} mV");
        assert!((2.0..4.0).contains(&f), "{name}: {f} Hz");
        assert!((fe - f).abs() < 0.03 * f, "{name}: {fe} vs {f}");
        assert!(peak > 0.0, "{name}: spikes peak at {peak} mV");
    }
}

/// Depolarising current raises the rate steadily (Terman et al. 2002, Fig. 1): strictly
/// increasing from 0 to 80 µA/cm², past 50 Hz at the top, still spiking (no depolarisation
/// block).
#[test]
fn stn_f_i_curve_rises() {
    let p = Stn::SPEC.defaults();
    let mut last = 0.0;
    for i in [0.0, 10.0, 20.0, 40.0, 80.0] {
        let r = run(&M, &p, |_| i, 0.025, 2000.0, Scheme::ExpEuler);
        let f = rate_after(&r, 500.0);
        println!("stn f-I: I = {i} µA/cm²: {f:.2} Hz");
        assert!(f > last, "I = {i}: {f} Hz after {last}");
        last = f;
    }
    assert!(last > 50.0, "{last}");
}

/// Release from hyperpolarisation gives a rebound burst (Terman et al. 2002, Fig. 1): no
/// spikes during the step, a spike within a few ms of release, then spikes at ISIs far below
/// the spontaneous ISI; the burst grows with the duration (300, 450, 600 ms at
/// −25 µA/cm²) and the amplitude (−20, −30, −40 µA/cm² for 300 ms) of the hyperpolarisation,
/// as the T current de-inactivates further. With Rubin & Terman's values a burst follows as
/// well.
#[test]
fn stn_rebound_burst_after_hyperpolarisation() {
    let p = t02();
    let mut by_duration = Vec::new();
    for dur in [300.0, 450.0, 600.0] {
        let (during, delay, d) = rebound(&p, -25.0, dur);
        println!("stn T02 rebound -25 x {dur} ms: delay {delay:.2} ms, ISIs {d:.1?}");
        assert_eq!(during, 0);
        assert!(delay < 5.0, "delay {delay}");
        by_duration.push(burst_spikes(&d));
    }
    let mut by_amplitude = Vec::new();
    for amp in [-20.0, -30.0, -40.0] {
        let (during, _, d) = rebound(&p, amp, 300.0);
        println!("stn T02 rebound {amp} x 300 ms: ISIs {d:.1?}");
        assert_eq!(during, 0);
        by_amplitude.push(burst_spikes(&d));
    }
    println!("stn T02 burst spikes: by duration {by_duration:?}, by amplitude {by_amplitude:?}");
    assert!(by_duration[0] >= 3, "{by_duration:?}");
    assert!(
        by_duration.windows(2).all(|w| w[1] > w[0]),
        "{by_duration:?}"
    );
    assert!(
        by_amplitude.windows(2).all(|w| w[1] >= w[0]) && by_amplitude[2] > by_amplitude[0],
        "{by_amplitude:?}"
    );

    let (during, delay, d) = rebound(&Stn::SPEC.defaults(), -25.0, 300.0);
    println!("stn RT04 rebound -25 x 300 ms: delay {delay:.2} ms, ISIs {d:.1?}");
    assert_eq!(during, 0);
    assert!(delay < 5.0 && burst_spikes(&d) >= 3, "{d:?}");
}

/// The H current (off by default) activates with hyperpolarisation and depolarises: under a
/// −80 µA/cm² step, `g_H = 5 mS/cm²` holds `V` higher at the end of the step than `g_H = 0`,
/// and `V` sags back from its lowest point while the step is still on, more than without it.
#[test]
fn stn_h_current_sags() {
    let (on, dur) = (500.0, 500.0);
    let trace = |g_h: f64| {
        let p = params::<Stn>(&[("g_H", g_h)]);
        let r = run(
            &M,
            &p,
            |t| if t >= on && t < on + dur { -80.0 } else { 0.0 },
            0.025,
            on + dur,
            Scheme::ExpEuler,
        );
        let step = &r.v[((on + 50.0) / 0.025) as usize..];
        let min = step.iter().cloned().fold(f64::INFINITY, f64::min);
        let end = *step.last().unwrap();
        println!(
            "stn g_H = {g_h}: V min {min:.2} mV, V end {end:.2} mV, q {:.4}",
            r.x[5]
        );
        (min, end, r.x[5])
    };
    let (min0, end0, _) = trace(0.0);
    let (min5, end5, q5) = trace(5.0);
    assert!(end5 > end0 + 1.0, "{end5} vs {end0}");
    assert!(
        end5 - min5 > (end0 - min0) + 0.5,
        "sag {} vs {}",
        end5 - min5,
        end0 - min0
    );
    assert!(q5 > 0.05, "q = {q5}");
}
