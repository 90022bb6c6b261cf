//! Wong–Wang E/I: the uncoupled node's steady state fires at Deco et al. (2014)'s 3 Hz.

use neurodiff_models::{Model, WongWangEi};

use crate::common::{drift_at, trace};

const M: WongWangEi = WongWangEi;

/// Deco et al. (2014) set the local inhibition `J_i` of every region so that its excitatory
/// population fires at about 3 Hz; for an isolated region (`G = 0`) that value is `J_i = 1`,
/// the default. At a steady state `dS_e/dt = 0` gives the rate directly:
/// `H_e = S_e / (tau_e (1 - S_e) gamma_e)`.
#[test]
fn isolated_node_settles_at_about_3_hz() {
    let spec = WongWangEi.spec();
    let p = spec.defaults();
    let (tau_e, gamma_e) = (p[4], p[3]);
    let (_, se) = trace(&M, &spec.initial(), &p, 0.1, 100_000, 1, 0);
    let (_, si) = trace(&M, &spec.initial(), &p, 0.1, 100_000, 1, 1);
    let x = [se[0], si[0]];
    let dx = drift_at(&M, &x, &p);
    // Converged: the drift vanishes (relative to the decay terms S / tau).
    assert!(
        dx[0].abs() < 1e-12 * x[0] / tau_e && dx[1].abs() < 1e-12 * x[1] / p[12],
        "{dx:?}"
    );
    let rate_hz = x[0] / (tau_e * (1.0 - x[0]) * gamma_e);
    assert!(
        (2.5..=3.5).contains(&rate_hz),
        "excitatory rate {rate_hz} Hz"
    );
}

/// Raising the local inhibition lowers the excitatory rate (the feedback inhibition control of
/// Deco et al. 2014), and raising the external input raises it.
#[test]
fn inhibition_lowers_and_input_raises_the_rate() {
    let spec = WongWangEi.spec();
    let rate = |set: &[(&str, f64)]| {
        let p = crate::common::params(spec, set);
        let (_, se) = trace(&M, &spec.initial(), &p, 0.1, 100_000, 1, 0);
        se[0] / (p[4] * (1.0 - se[0]) * p[3])
    };
    let r0 = rate(&[]);
    assert!(rate(&[("J_i", 1.5)]) < r0);
    assert!(rate(&[("I_o", 0.4)]) > r0);
}
