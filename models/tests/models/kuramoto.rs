//! Kuramoto: a single node turns at its natural frequency (plus any constant input).

use neurodiff_models::{Kuramoto, Model};

use crate::common::{params, rk4};

const M: Kuramoto = Kuramoto;

#[test]
fn single_node_turns_at_omega() {
    for (omega, c) in [(0.25, 0.0), (1.0, 0.0), (0.5, -0.2)] {
        let p = params(Kuramoto.spec(), &[("omega", omega)]);
        let (dt, steps) = (0.1, 10_000);
        let end = rk4(&M, &[0.3], &[c], &p, dt, steps, |_, _| {});
        let t = dt * steps as f64;
        assert!(
            (end[0] - (0.3 + (omega + c) * t)).abs() < 1e-9 * t,
            "{end:?}"
        );
    }
    // The default is a 40 Hz oscillator (time in ms).
    let f_hz = Kuramoto.spec().defaults()[0] / std::f64::consts::TAU * 1000.0;
    assert!((f_hz - 40.0).abs() < 1e-12);
}
