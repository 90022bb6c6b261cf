//! Coombes–Byrne: the fixed point, and the reduction to the Montbrió–Pazó–Roxin model without
//! synapses.

use neurodiff_models::{CoombesByrne, Model, Mpr};

use crate::common::{bisect, drift_at, params, Rng};

const M: CoombesByrne = CoombesByrne;
use std::f64::consts::PI;

/// At a fixed point `q = 0` and `g = k π r`; `dr/dt = 0` gives `V = k π r / 2 - Δ / (2π r)`,
/// and `dV/dt = 0` is then a scalar equation in `r > 0`, solved by scanning.
fn fixed_points(p: &[f64]) -> Vec<[f64; 4]> {
    let (delta, _alpha, v_syn, k, eta) = (p[0], p[1], p[2], p[3], p[4]);
    let state = |r: f64| {
        let v = k * PI * r / 2.0 - delta / (2.0 * PI * r);
        [r, v, k * PI * r, 0.0]
    };
    let f = |r: f64| {
        let [r, v, g, _] = state(r);
        v * v - PI * PI * r * r + eta + (v_syn - v) * g
    };
    let mut out = Vec::new();
    let n = 20_000;
    for i in 0..n {
        let (l, h) = (
            1e-4 + 10.0 * i as f64 / n as f64,
            1e-4 + 10.0 * (i + 1) as f64 / n as f64,
        );
        if f(l) * f(h) <= 0.0 {
            out.push(state(bisect(f, l, h)));
        }
    }
    out
}

#[test]
fn drift_vanishes_at_the_fixed_points() {
    for set in [
        vec![],
        vec![("eta", -5.0)],
        vec![("k", 3.0), ("v_syn", -4.0)],
    ] {
        let p = params(CoombesByrne.spec(), &set);
        let fps = fixed_points(&p);
        assert!(!fps.is_empty(), "{set:?}");
        for x in fps {
            let dx = drift_at(&M, &x, &p);
            let scale = x[1].abs().max(PI * x[0]).powi(2).max(1.0);
            assert!(
                dx.iter().all(|d| d.abs() < 1e-12 * scale),
                "{set:?}: {dx:?} at {x:?}"
            );
        }
    }
}

/// Without synaptic conductance (`g = 0`) the `(r, V)` equations are the Montbrió–Pazó–Roxin
/// mean field with `tau = 1`, `J = 0`, `I = 0`, `cr = 1` (both are the Ott–Antonsen reduction of
/// the same QIF population): compare with the `mpr` model's right-hand side.
#[test]
fn without_synapses_it_is_mpr() {
    let mut rng = Rng::new(11);
    for _ in 0..50 {
        let (r, v, c) = (
            rng.uniform(0.0, 3.0),
            rng.uniform(-5.0, 5.0),
            rng.uniform(-1.0, 1.0),
        );
        let (delta, eta) = (rng.uniform(0.1, 3.0), rng.uniform(-10.0, 10.0));
        let p = params(CoombesByrne.spec(), &[("Delta", delta), ("eta", eta)]);
        let mut d_cb = [0.0; 4];
        M.drift(&[r, v, 0.0, 0.0], &[c], &p, &mut d_cb);
        let p_mpr = params(
            Mpr.spec(),
            &[
                ("tau", 1.0),
                ("I", 0.0),
                ("Delta", delta),
                ("J", 0.0),
                ("eta", eta),
                ("cr", 1.0),
            ],
        );
        let mut d_mpr = [0.0; 2];
        Mpr.drift(&[r, v], &[c, 0.0], &p_mpr, &mut d_mpr);
        for i in 0..2 {
            assert!(
                (d_cb[i] - d_mpr[i]).abs() < 1e-12 * (1.0 + d_mpr[i].abs()),
                "{d_cb:?} {d_mpr:?}"
            );
        }
    }
}
