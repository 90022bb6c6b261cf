//! Channels of multi-compartment cells (`neurodiff_models::channel`): steady states and time
//! constants, finiteness at the rate functions' removable singularities and at extreme voltages
//! in `f32`, agreement with the `hh` point neuron where the equations coincide, and NEURON's own
//! `hh.mod` / Hay et al.'s `.mod` formulas typed in again here (with NEURON's `vtrap`; the Hay
//! set's rates as written in ModelDB 139653's files, away from their 0/0 points).

use neurodiff_models::channel::{hh_k, hh_na, ih, steady_state, ChannelKind};
use neurodiff_models::neuron::hh;

/// NEURON's `vtrap(x, y)` from `hh.mod`: `x / (e^{x/y} − 1)`, or `y (1 − x/y/2)` when
/// `|x/y| < 1e-6`.
fn nrn_vtrap(x: f64, y: f64) -> f64 {
    if (x / y).abs() < 1e-6 {
        y * (1.0 - x / y / 2.0)
    } else {
        x / ((x / y).exp() - 1.0)
    }
}

/// NEURON `hh.mod`'s `rates(v)` at 6.3 °C: `[minf, mtau, hinf, htau, ninf, ntau]`.
fn nrn_hh(v: f64) -> [f64; 6] {
    let am = 0.1 * nrn_vtrap(-(v + 40.0), 10.0);
    let bm = 4.0 * (-(v + 65.0) / 18.0).exp();
    let ah = 0.07 * (-(v + 65.0) / 20.0).exp();
    let bh = 1.0 / ((-(v + 35.0) / 10.0).exp() + 1.0);
    let an = 0.01 * nrn_vtrap(-(v + 55.0), 10.0);
    let bn = 0.125 * (-(v + 65.0) / 80.0).exp();
    [
        am / (am + bm),
        1.0 / (am + bm),
        ah / (ah + bh),
        1.0 / (ah + bh),
        an / (an + bn),
        1.0 / (an + bn),
    ]
}

/// Hay et al.'s `Ih.mod` `rates()`: `[mInf, mTau]`.
fn hay_ih(v: f64) -> [f64; 2] {
    let v = if v == -154.9 { v + 0.0001 } else { v };
    let a = 0.001 * 6.43 * (v + 154.9) / (((v + 154.9) / 11.9).exp() - 1.0);
    let b = 0.001 * 193.0 * (v / 33.1).exp();
    [a / (a + b), 1.0 / (a + b)]
}

fn gates(kind: ChannelKind, v: f64) -> (Vec<f64>, Vec<f64>) {
    let n = kind.n_gates();
    let p = kind.spec().defaults();
    let (mut inf, mut tau) = (vec![0.0; n], vec![0.0; n]);
    kind.gates(v, &p, &mut inf, &mut tau);
    (inf, tau)
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

fn voltages() -> impl Iterator<Item = f64> {
    (0..=400).map(|i| -120.0 + 0.4 * i as f64 + 0.013)
}

#[test]
fn hh_channels_match_neuron_hh_mod() {
    for v in voltages() {
        let r = nrn_hh(v);
        let (na_inf, na_tau) = gates(ChannelKind::HhNa, v);
        let (k_inf, k_tau) = gates(ChannelKind::HhK, v);
        let ours = [
            na_inf[0], na_tau[0], na_inf[1], na_tau[1], k_inf[0], k_tau[0],
        ];
        for (j, (a, b)) in ours.iter().zip(r).enumerate() {
            assert!(rel(*a, b) < 1e-9, "v = {v}: entry {j}: {a} vs NEURON {b}");
        }
    }
}

#[test]
fn ih_matches_hay_ih_mod() {
    for v in voltages() {
        let [inf, tau] = hay_ih(v);
        let (i, t) = gates(ChannelKind::Ih, v);
        assert!(rel(i[0], inf) < 1e-9, "v = {v}: mInf {} vs {inf}", i[0]);
        assert!(rel(t[0], tau) < 1e-9, "v = {v}: mTau {} vs {tau}", t[0]);
    }
    // Kole et al. 2006: Ih is mostly closed at rest and opens with hyperpolarisation, slowly
    // (tens of ms).
    let (lo, tlo) = gates(ChannelKind::Ih, -100.0);
    let (hi, _) = gates(ChannelKind::Ih, -40.0);
    assert!(
        lo[0] > 0.2 && hi[0] < 0.01,
        "m∞(−100) = {}, m∞(−40) = {}",
        lo[0],
        hi[0]
    );
    assert!(tlo[0] > 10.0 && tlo[0] < 200.0, "τ(−100) = {} ms", tlo[0]);
}

/// Hay et al.'s (2011) `.mod` files' `rates()`, typed in again as written (the `.mod` `v`
/// shifts included), `[inf, tau]` per gate.
fn hay_mod(kind: ChannelKind, v: f64) -> Vec<f64> {
    let qt = 2.3f64.powf((34.0 - 21.0) / 10.0);
    let ex = f64::exp;
    match kind {
        ChannelKind::NaTaT => {
            let ma = (0.182 * (v - -38.0)) / (1.0 - ex(-(v - -38.0) / 6.0));
            let mb = (0.124 * (-v - 38.0)) / (1.0 - ex(-(-v - 38.0) / 6.0));
            let ha = (-0.015 * (v - -66.0)) / (1.0 - ex((v - -66.0) / 6.0));
            let hb = (-0.015 * (-v - 66.0)) / (1.0 - ex((-v - 66.0) / 6.0));
            vec![
                ma / (ma + mb),
                1.0 / (ma + mb) / qt,
                ha / (ha + hb),
                1.0 / (ha + hb) / qt,
            ]
        }
        ChannelKind::NapEt2 => {
            let minf = 1.0 / (1.0 + ex((v - -52.6) / -4.6));
            let ma = (0.182 * (v - -38.0)) / (1.0 - ex(-(v - -38.0) / 6.0));
            let mb = (0.124 * (-v - 38.0)) / (1.0 - ex(-(-v - 38.0) / 6.0));
            let hinf = 1.0 / (1.0 + ex((v - -48.8) / 10.0));
            let ha = -2.88e-6 * (v + 17.0) / (1.0 - ex((v + 17.0) / 4.63));
            let hb = 6.94e-6 * (v + 64.4) / (1.0 - ex(-(v + 64.4) / 2.63));
            vec![
                minf,
                6.0 * (1.0 / (ma + mb)) / qt,
                hinf,
                (1.0 / (ha + hb)) / qt,
            ]
        }
        ChannelKind::KTst => {
            let v = v + 10.0;
            vec![
                1.0 / (1.0 + ex(-(v + 0.0) / 19.0)),
                (0.34 + 0.92 * ex(-((v + 71.0) / 59.0).powi(2))) / qt,
                1.0 / (1.0 + ex(-(v + 66.0) / -10.0)),
                (8.0 + 49.0 * ex(-((v + 73.0) / 23.0).powi(2))) / qt,
            ]
        }
        ChannelKind::KPst => {
            let v = v + 10.0;
            let mtau = if v < -50.0 {
                (1.25 + 175.03 * ex(-v * -0.026)) / qt
            } else {
                (1.25 + 13.0 * ex(-v * 0.026)) / qt
            };
            vec![
                1.0 / (1.0 + ex(-(v + 1.0) / 12.0)),
                mtau,
                1.0 / (1.0 + ex(-(v + 54.0) / -11.0)),
                (360.0 + (1010.0 + 24.0 * (v + 55.0)) * ex(-((v + 75.0) / 48.0).powi(2))) / qt,
            ]
        }
        ChannelKind::Skv31 => vec![
            1.0 / (1.0 + ex((v - 18.7) / -9.7)),
            0.2 * 20.0 / (1.0 + ex((v - -46.56) / -44.14)),
        ],
        ChannelKind::Im => {
            let a = 3.3e-3 * ex(2.5 * 0.04 * (v - -35.0));
            let b = 3.3e-3 * ex(-2.5 * 0.04 * (v - -35.0));
            vec![a / (a + b), (1.0 / (a + b)) / qt]
        }
        ChannelKind::CaHva => {
            let ma = (0.055 * (-27.0 - v)) / (ex((-27.0 - v) / 3.8) - 1.0);
            let mb = 0.94 * ex((-75.0 - v) / 17.0);
            let ha = 0.000457 * ex((-13.0 - v) / 50.0);
            let hb = 0.0065 / (ex((-v - 15.0) / 28.0) + 1.0);
            vec![
                ma / (ma + mb),
                1.0 / (ma + mb),
                ha / (ha + hb),
                1.0 / (ha + hb),
            ]
        }
        ChannelKind::CaLva => {
            let v = v + 10.0;
            vec![
                1.0 / (1.0 + ex((v - -30.0) / -6.0)),
                (5.0 + 20.0 / (1.0 + ex((v - -25.0) / 5.0))) / qt,
                1.0 / (1.0 + ex((v - -80.0) / 6.4)),
                (20.0 + 50.0 / (1.0 + ex((v - -40.0) / 7.0))) / qt,
            ]
        }
        _ => unreachable!(),
    }
}

#[test]
fn hay_channels_match_their_mod_files() {
    use neurodiff_models::channel::HAY_QT;
    assert!((HAY_QT - 2.3f64.powf(1.3)).abs() < 1e-15);
    let kinds = [
        ChannelKind::NaTaT,
        ChannelKind::NapEt2,
        ChannelKind::KTst,
        ChannelKind::KPst,
        ChannelKind::Skv31,
        ChannelKind::Im,
        ChannelKind::CaHva,
        ChannelKind::CaLva,
    ];
    for kind in kinds {
        for v in voltages() {
            let r = hay_mod(kind, v);
            let (inf, tau) = gates(kind, v);
            let ours: Vec<f64> = inf.iter().zip(&tau).flat_map(|(a, b)| [*a, *b]).collect();
            for (j, (a, b)) in ours.iter().zip(&r).enumerate() {
                assert!(
                    rel(*a, *b) < 1e-9,
                    "{} at {v} mV: entry {j}: {a} vs .mod {b}",
                    kind.spec().name
                );
            }
        }
    }
    // SK_E2: z∞ = 1 / (1 + (0.00043 / cai)^4.8), τ = zTau, whatever V; cai + 1e-7 below 1e-7.
    let sk = ChannelKind::SkE2;
    let p = sk.spec().defaults();
    for cai in [1e-9, 5e-5, 1e-4, 4.3e-4, 1e-3, 1e-2] {
        let ca: f64 = if cai < 1e-7 { cai + 1e-7 } else { cai };
        let want = 1.0 / (1.0 + (0.00043 / ca).powf(4.8));
        let (mut inf, mut tau) = ([0.0], [0.0]);
        sk.gates_ca(-60.0, cai, &p, &mut inf, &mut tau);
        assert!(rel(inf[0], want) < 1e-12, "cai {cai}: {} vs {want}", inf[0]);
        assert_eq!(tau[0], 1.0);
    }
    // A channel that does not read calcium ignores it.
    let (a, _) = gates(ChannelKind::NaTaT, -50.0);
    let (mut b, mut t) = (vec![0.0; 2], vec![0.0; 2]);
    ChannelKind::NaTaT.gates_ca(
        -50.0,
        1e-2,
        &ChannelKind::NaTaT.spec().defaults(),
        &mut b,
        &mut t,
    );
    assert_eq!(a, b);
}

#[test]
fn calcium_pool_steady_state_and_nernst() {
    use neurodiff_models::channel::ca_dynamics::{self, nernst, steady, PARAMS};
    let p: Vec<f64> = PARAMS.iter().map(|q| q.default).collect();
    // cai' = −10⁴ γ ica / (2 F d) − (cai − min)/decay with ica in mA/cm² (µA/cm² × 1e-3): at
    // cai∞ the right-hand side vanishes.
    let f = 96485.33212331001;
    for ica in [-5.0, -0.1, 0.0, 2.0] {
        let c = steady(ica, &p);
        let rhs = -1e4 * (ica * 1e-3) * p[0] / (2.0 * f * p[2]) - (c - p[3]) / p[1];
        assert!(rhs.abs() < 1e-15, "ica {ica}: residual {rhs}");
    }
    assert_eq!(ca_dynamics::tau(&p), 80.0);
    // NEURON 9's `nernst(cai, cao, 2)` (h.nernst, cao = 2 mM) at 6.3 and 34 °C.
    for (cai, celsius, want) in [
        (5e-5, 6.3, 127.58951061761749),
        (5e-5, 34.0, 140.23660113151266),
        (1e-4, 34.0, 131.0634431305086),
    ] {
        let e: f64 = nernst(cai, celsius);
        assert!(
            (e - want).abs() < 1e-9,
            "{cai} mM at {celsius} °C: {e} vs NEURON {want}"
        );
    }
}

#[test]
fn hh_channels_agree_with_the_hh_point_neuron() {
    for v in voltages() {
        let [am, bm, ah, bh, an, bn] = hh::rates(v);
        let [am2, bm2, ah2, bh2] = hh_na::rates(v);
        let [an2, bn2] = hh_k::rates(v);
        for (a, b) in [
            (am, am2),
            (bm, bm2),
            (ah, ah2),
            (bh, bh2),
            (an, an2),
            (bn, bn2),
        ] {
            assert!(rel(b, a) < 1e-9, "v = {v}: {b} vs hh {a}");
        }
    }
    // The currents: g_Na m³ h (V − E_Na) + g_K n⁴ (V − E_K) is the point neuron's, whose drift
    // with its own leak removed is −(i_Na + i_K)/C_m.
    let (v, m, h, n) = (-50.0, 0.2, 0.4, 0.5);
    let na = ChannelKind::HhNa;
    let kk = ChannelKind::HhK;
    let i_na =
        na.conductance(&[m, h], &na.spec().defaults()) * (v - na.reversal(&na.spec().defaults()));
    let i_k =
        kk.conductance(&[n], &kk.spec().defaults()) * (v - kk.reversal(&kk.spec().defaults()));
    let mut p = hh::SPEC.defaults();
    p[2] = 0.0; // g_L
    let mut dx = [0.0; 4];
    use neurodiff_models::neuron::Neuron;
    hh::HodgkinHuxley.drift(&[v, m, h, n], 0.0, &p, &mut dx);
    assert!(
        rel(-(i_na + i_k), dx[0]) < 1e-12,
        "{} vs {}",
        -(i_na + i_k),
        dx[0]
    );
}

#[test]
fn steady_states_and_time_constants() {
    for &kind in ChannelKind::ALL {
        let spec = kind.spec();
        for v in voltages() {
            let (inf, tau) = gates(kind, v);
            for g in 0..kind.n_gates() {
                assert!(
                    (0.0..=1.0).contains(&inf[g]) && tau[g] > 0.0 && tau[g].is_finite(),
                    "{} gate {} at {v} mV: inf {} tau {}",
                    spec.name,
                    spec.gates[g].name,
                    inf[g],
                    tau[g]
                );
            }
        }
        // The spec's initial gate values are the steady states at −65 mV.
        let ss = steady_state(kind, -65.0, &spec.defaults());
        for (g, x) in spec.gates.iter().zip(ss) {
            assert!(
                (g.initial - x).abs() < 1e-6,
                "{}.{}: spec initial {} vs steady state {x}",
                spec.name,
                g.name,
                g.initial
            );
        }
        assert_eq!(
            spec.params[0].name.chars().next(),
            Some('g'),
            "{}",
            spec.name
        );
        // One ion: the conductance, then the reversal potential (`hh` has three of each).
        if kind != ChannelKind::Hh {
            assert_eq!(spec.params[1].name, "e", "{}", spec.name);
        }
        assert!(!spec.citation.is_empty());
        assert_eq!(ChannelKind::find(spec.name), Some(kind));
    }
    // The hh gates at rest are the point neuron's rest state.
    let na = steady_state(ChannelKind::HhNa, -65.0, &[120.0, 50.0]);
    let kk = steady_state(ChannelKind::HhK, -65.0, &[36.0, -77.0]);
    let s = hh::SPEC.state;
    assert!((na[0] - s[1].initial).abs() < 1e-6 && (na[1] - s[2].initial).abs() < 1e-6);
    assert!((kk[0] - s[3].initial).abs() < 1e-6);
}

#[test]
fn temperature_factor_is_neurons_q10() {
    let s = ChannelKind::HhNa.spec();
    assert!((s.temperature_factor(6.3) - 1.0).abs() < 1e-15);
    assert!((s.temperature_factor(16.3) - 3.0).abs() < 1e-12);
    assert!((s.temperature_factor(36.3) - 27.0).abs() < 1e-10);
    assert_eq!(ChannelKind::Ih.spec().temperature_factor(37.0), 1.0);
}

/// At the removable singularities (−40, −55 mV for hh; −154.9 mV for Ih) the rates are finite
/// and continuous: the value there lies on the line through its neighbours at ±1e-3 mV.
#[test]
fn rate_singularities_are_finite_and_continuous() {
    let check = |name: &str, f: &dyn Fn(f64) -> f64, v0: f64| {
        let (a, b, c) = (f(v0 - 1e-3), f(v0), f(v0 + 1e-3));
        assert!(
            a.is_finite() && b.is_finite() && c.is_finite(),
            "{name} at {v0}"
        );
        assert!(
            rel(b, 0.5 * (a + c)) < 1e-6,
            "{name} at {v0}: {b} vs neighbours' mean {}",
            0.5 * (a + c)
        );
        for dv in [1e-12, 1e-9, 1e-6, 1e-4, 1e-2] {
            for s in [-1.0, 1.0] {
                let x = f(v0 + s * dv);
                assert!(rel(x, b) < 1e-2, "{name} at {v0} + {}: {x} vs {b}", s * dv);
            }
        }
    };
    check("alpha_m", &|v| hh_na::rates(v)[0], -40.0);
    check("alpha_n", &|v| hh_k::rates(v)[0], -55.0);
    check("alpha_ih", &|v| ih::rates(v)[0], -154.9);
    assert!((hh_na::rates(-40.0f64)[0] - 1.0).abs() < 1e-12);
    assert!((hh_k::rates(-55.0f64)[0] - 0.1).abs() < 1e-12);
    assert!((ih::rates(-154.9f64)[0] - 0.001 * 6.43 * 11.9).abs() < 1e-14);
    // And in f32, the same points and its own rounding neighbourhood.
    for v in [-40.0f32, -40.000_004, -39.999_996, -55.0, -154.9] {
        let r = hh_na::rates(v);
        let q = hh_k::rates(v);
        let h = ih::rates(v);
        assert!(r.iter().chain(&q).chain(&h).all(|x| x.is_finite()), "{v}");
    }
}

/// No rate, steady state, time constant or conductance overflows in `f32`, however far the
/// voltage runs away (the guarded exponentials).
#[test]
fn f32_is_finite_at_extreme_voltages() {
    for &kind in ChannelKind::ALL {
        let p: Vec<f32> = kind.spec().defaults().iter().map(|&x| x as f32).collect();
        let n = kind.n_gates();
        for v in [
            -1e4f32, -3000.0, -1000.0, -500.0, 500.0, 1000.0, 3000.0, 1e4,
        ] {
            let (mut inf, mut tau) = (vec![0f32; n], vec![0f32; n]);
            kind.gates(v, &p, &mut inf, &mut tau);
            let g = kind.conductance(&inf, &p);
            assert!(
                inf.iter().all(|x| x.is_finite()) && g.is_finite(),
                "{} at {v} mV: inf {inf:?} g {g}",
                kind.spec().name
            );
            assert!(
                tau.iter().all(|x| !x.is_nan() && *x > 0.0),
                "{} at {v} mV: tau {tau:?}",
                kind.spec().name
            );
        }
    }
}

/// NEURON's `hh` whole (`hh`) is `hh_na` + `hh_k` + `leak`: its gates are NEURON `hh.mod`'s
/// typed-in `rates(v)`, and its drive `(Σ g, Σ g E)` gives the current of the three channels
/// placed apart, at any gates and parameters.
#[test]
fn whole_hh_is_its_three_currents() {
    use neurodiff_models::channel::Channel;
    let whole = ChannelKind::Hh;
    assert_eq!(whole.spec().name, "hh");
    assert_eq!(ChannelKind::find("hh"), Some(whole));
    for v in voltages() {
        let (inf, tau) = gates(whole, v);
        let [minf, mtau, hinf, htau, ninf, ntau] = nrn_hh(v);
        for (a, b) in [
            (inf[0], minf),
            (tau[0], mtau),
            (inf[1], hinf),
            (tau[1], htau),
            (inf[2], ninf),
            (tau[2], ntau),
        ] {
            assert!(rel(a, b) < 1e-9, "v = {v}: {a} vs NEURON {b}");
        }
        // The rate form is the reciprocal of τ.
        let p = whole.spec().defaults();
        let (mut inf2, mut rate) = ([0.0; 3], [0.0; 3]);
        whole.gates_rate(v, None, &p, &mut inf2, &mut rate);
        for g in 0..3 {
            assert_eq!(inf2[g], inf[g]);
            assert!(rel(rate[g], 1.0 / tau[g]) < 1e-12);
        }
    }
    // Parameters away from the defaults: gnabar, gkbar, gl, ena, ek, el.
    let p = [97.0, 41.0, 0.7, 55.0, -81.0, -60.0];
    let (na, kk, leak) = (ChannelKind::HhNa, ChannelKind::HhK, ChannelKind::Leak);
    for (m, h, n) in [(0.05, 0.6, 0.32), (0.9, 0.1, 0.7), (0.0, 0.0, 0.0)] {
        let (g, ge) = whole.drive(&[m, h, n], &p);
        let parts = [
            (na, vec![m, h], [p[0], p[3]]),
            (kk, vec![n], [p[1], p[4]]),
            (leak, vec![], [p[2], p[5]]),
        ];
        let g_sum: f64 = parts.iter().map(|(c, x, q)| c.conductance(x, q)).sum();
        let ge_sum: f64 = parts
            .iter()
            .map(|(c, x, q)| c.conductance(x, q) * c.reversal(q))
            .sum();
        assert!(rel(g, g_sum) < 1e-14, "{g} vs {g_sum}");
        assert!(rel(ge, ge_sum) < 1e-14, "{ge} vs {ge_sum}");
        assert_eq!(whole.conductance(&[m, h, n], &p), g);
        // A one-ion channel's drive is its conductance and that times its reversal.
        let (g1, ge1) = na.drive(&[m, h], &[p[0], p[3]]);
        assert_eq!(g1, na.conductance(&[m, h], &[p[0], p[3]]));
        assert_eq!(ge1, g1 * p[3]);
    }
    // With the sodium and potassium gates shut the current reverses at the leak's `el`.
    let (g, ge) = neurodiff_models::channel::hh::Hh.drive(&[0.0, 0.0, 0.0], &p);
    assert!(rel(ge / g, whole.reversal(&p)) < 1e-14 && whole.reversal(&p) == p[5]);
}
