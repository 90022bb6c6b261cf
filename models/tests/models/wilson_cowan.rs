//! Wilson–Cowan: the resting state, Wilson & Cowan (1972)'s limit cycle, and the 20 Hz
//! configuration of TVB's documentation.

use neurodiff_models::{Model, WilsonCowan};

use crate::common::{drift_at, frequency, params, peak_to_peak, trace, Rng};

const M: WilsonCowan = WilsonCowan;

/// With the shifted sigmoids (`shift = 1`) `S(0) = 0`, so without inputs or thresholds
/// (`P = Q = theta_e = theta_i = 0`) the origin `E = I = 0` is a fixed point, whatever the
/// other parameters.
#[test]
fn origin_is_a_fixed_point_with_shifted_sigmoids() {
    let spec = WilsonCowan.spec();
    let mut rng = Rng::new(3);
    for _ in 0..20 {
        let mut p: Vec<f64> = spec
            .params
            .iter()
            .map(|q| {
                let w = 0.3 * q.default.abs().max(1.0);
                rng.uniform((q.default - w).max(q.lower), (q.default + w).min(q.upper))
            })
            .collect();
        for (name, v) in [
            ("P", 0.0),
            ("Q", 0.0),
            ("theta_e", 0.0),
            ("theta_i", 0.0),
            ("shift", 1.0),
        ] {
            p[spec.param_index(name).unwrap()] = v;
        }
        let dx = drift_at(&M, &[0.0, 0.0], &p);
        assert!(dx.iter().all(|d| d.abs() < 1e-15), "{dx:?}");
    }
}

/// Wilson & Cowan (1972)'s oscillator: c1..c4 = 16, 12, 15, 3; a_e = 1.3, θ_e = 4; a_i = 2,
/// θ_i = 3.7; r = 1; k_e, k_i the maxima of the shifted sigmoids. Without input (P = 0) the
/// populations return to rest; with P = 1.25 they settle on a limit cycle.
#[test]
fn wilson_cowan_1972_rest_and_limit_cycle() {
    let base = [
        ("c_ee", 16.0),
        ("c_ei", 12.0),
        ("c_ie", 15.0),
        ("c_ii", 3.0),
        ("a_e", 1.3),
        ("b_e", 4.0),
        ("a_i", 2.0),
        ("b_i", 3.7),
        // k = 1 - σ(-a θ): the limit of the shifted sigmoid.
        ("k_e", 1.0 - 1.0 / (1.0 + (1.3f64 * 4.0).exp())),
        ("k_i", 1.0 - 1.0 / (1.0 + (2.0f64 * 3.7).exp())),
    ];
    let run = |p_ext: f64| {
        let mut set = base.to_vec();
        set.push(("P", p_ext));
        let p = params(WilsonCowan.spec(), &set);
        trace(&M, &[0.1, 0.05], &p, 0.1, 50_000, 20_000, 0)
    };
    let (_, e_rest) = run(0.0);
    assert!(e_rest.iter().all(|e| e.abs() < 1e-9), "P = 0 does not rest");
    let (t, e_osc) = run(1.25);
    assert!(peak_to_peak(&e_osc) > 0.05, "P = 1.25: no limit cycle");
    assert!(frequency(&t, &e_osc).is_some());
}

/// TVB's documentation, table 1 (Sanz-Leon et al. 2014, reproducing Daffertshofer & van Wijk
/// 2011 with a sensible time scale): unshifted sigmoids, these parameters, and a limit cycle
/// at about 20 Hz.
#[test]
fn sanz_leon_configuration_oscillates_near_20_hz() {
    let set = [
        ("k_e", 1.0),
        ("k_i", 1.0),
        ("r_e", 0.0),
        ("r_i", 0.0),
        ("tau_e", 10.0),
        ("tau_i", 10.0),
        ("c_ee", 10.0),
        ("c_ei", 6.0),
        ("c_ie", 10.0),
        ("c_ii", 1.0),
        ("a_e", 1.0),
        ("a_i", 1.0),
        ("b_e", 0.0),
        ("b_i", 0.0),
        ("theta_e", 2.0),
        ("theta_i", 3.5),
        ("alpha_e", 1.2),
        ("alpha_i", 2.0),
        ("P", 0.5),
        ("Q", 0.0),
        ("c_e", 1.0),
        ("c_i", 1.0),
        ("shift", 0.0),
    ];
    let p = params(WilsonCowan.spec(), &set);
    let (t, e) = trace(
        &M,
        &WilsonCowan.spec().initial(),
        &p,
        0.05,
        40_000,
        40_000,
        0,
    );
    let f_hz = frequency(&t, &e).expect("an oscillation") * 1000.0;
    assert!((17.0..=24.0).contains(&f_hz), "frequency {f_hz} Hz");
}
