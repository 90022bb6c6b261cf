//! Leaky integrate-and-fire: the analytic firing rate under constant current, silence below
//! rheobase, and the refractory clamp.

use neurodiff_models::neuron::{lif::Lif, Neuron};

use crate::neuron::{isis, params, run, Scheme};

const M: Lif = Lif;

/// The period under constant current `i` (pA) from the closed-form solution
/// `V(t) = E_L + R I + (V_reset − E_L − R I) e^{−t/τ_m}` after the refractory period:
/// `T = t_ref + τ_m ln((E_L + R I − V_reset) / (E_L + R I − V_th))`, `R = τ_m / C`
/// (for `V_reset = E_L`: `t_ref + τ_m ln(R I / (R I − (V_th − E_L)))`).
fn analytic_period(p: &[f64], i: f64) -> f64 {
    let [tau_m, c, e_l, v_th, v_reset, t_ref] = p else {
        unreachable!()
    };
    let ri = tau_m / c * i;
    t_ref + tau_m * ((e_l + ri - v_reset) / (e_l + ri - v_th)).ln()
}

/// Above rheobase the ISI of the simulation (exponential Euler, exact between spikes for
/// this linear membrane, at 0.01 ms) equals the analytic period to within the step
/// quantisation of detection and refractory clamp (≤ 2 dt), for the reset-to-`E_L` defaults
/// and for a reset above `E_L` without refractory period; every ISI is the same.
#[test]
fn lif_rate_matches_the_analytic_rate() {
    let dt = 0.01;
    for set in [
        vec![],
        vec![("V_reset", -65.0), ("t_ref", 0.0)],
        vec![("tau_m", 20.0), ("C", 100.0), ("t_ref", 5.0)],
    ] {
        let p = params::<Lif>(&set);
        M.validate(&p).unwrap();
        for i in [400.0, 500.0, 800.0, 1500.0] {
            let t = analytic_period(&p, i);
            let r = run(&M, &p, |_| i, dt, 20.0 * t + 5.0, Scheme::ExpEuler);
            let d = isis(&r.spikes);
            assert!(d.len() >= 15, "{set:?}, I = {i}: {} spikes", r.spikes.len());
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            println!(
                "lif {set:?} I = {i} pA: analytic {:.3} Hz, simulated {:.3} Hz",
                1000.0 / t,
                1000.0 / mean
            );
            for isi in &d {
                assert!(
                    *isi >= t - 1e-9 && *isi <= t + 2.0 * dt + 1e-9,
                    "{set:?}, I = {i}: ISI {isi} vs analytic {t}"
                );
            }
        }
    }
}

/// Below rheobase (`C (V_th − E_L) / τ_m = 375 pA` at the defaults) it never fires and
/// settles at `E_L + R I`.
#[test]
fn lif_is_silent_below_rheobase() {
    let p = Lif::SPEC.defaults();
    let r = run(&M, &p, |_| 370.0, 0.025, 1000.0, Scheme::ExpEuler);
    assert!(r.spikes.is_empty(), "{:?}", r.spikes);
    let want = -70.0 + 10.0 / 250.0 * 370.0;
    assert!((r.x[0] - want).abs() < 1e-6, "{} vs {want}", r.x[0]);
    // RK4 over the same drift agrees.
    let r = run(&M, &p, |_| 370.0, 0.025, 1000.0, Scheme::Rk4);
    assert!(r.spikes.is_empty() && (r.x[0] - want).abs() < 1e-6);
}

/// After each spike `V` sits at `V_reset` for `⌈t_ref / dt⌉` steps, then rises.
#[test]
fn lif_refractory_clamp() {
    let (dt, t_ref) = (0.025, 2.0);
    let p = params::<Lif>(&[("V_reset", -68.0), ("t_ref", t_ref)]);
    let r = run(&M, &p, |_| 1000.0, dt, 100.0, Scheme::ExpEuler);
    assert!(r.spikes.len() >= 3);
    let held = (t_ref / dt).round() as usize;
    for &ts in &r.spikes {
        let s = (ts / dt).round() as usize - 1; // index of the step that spiked
        if s + held + 1 >= r.v.len() {
            break;
        }
        for k in 1..=held {
            assert_eq!(r.v[s + k], -68.0, "step {k} after the spike at {ts}");
        }
        assert!(r.v[s + held + 1] > -68.0);
    }
}
