//! Larter–Breakspear: the fixed point, and the onset of oscillations in `d_V`.

use neurodiff_models::{LarterBreakspear, Model};

use crate::common::{bisect, drift_at, params, peak_to_peak, trace};

const M: LarterBreakspear = LarterBreakspear;

fn act(v: f64, t: f64, d: f64) -> f64 {
    0.5 * (1.0 + ((v - t) / d).tanh())
}

/// Fixed point of an uncoupled node (`c = 0`), from the paper's equations. `dZ/dt = 0` does not
/// involve `Z`: `aei V Q_V(V) = -ani Iext`, negative, so `V < 0`, where `V Q_V(V)` goes from 0
/// down to its minimum as `V` decreases from 0 (found by bisection between 0 and the minimum).
/// Then `W = m_K(V)` from `dW/dt = 0`, and `dV/dt = 0` gives `aie Z Q_Z(Z) = R(V, W)` (the other
/// terms), solved for `Z` by scanning.
fn fixed_points(p: &[f64]) -> Vec<[f64; 3]> {
    let (g_ca, g_k, g_l, _phi, g_na, t_k, t_ca, t_na) =
        (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
    let (v_ca, v_k, v_l, v_na, d_k, _tau_k, d_na, d_ca) =
        (p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]);
    let (aei, aie, _b, cc, ane, ani, aee, iext) =
        (p[16], p[17], p[18], p[19], p[20], p[21], p[22], p[23]);
    let (r_nmda, vt, d_v, zt, d_z, qv_max, qz_max) =
        (p[24], p[25], p[26], p[27], p[28], p[29], p[30]);
    let qv = |v: f64| qv_max * act(v, vt, d_v);
    let target = -ani * iext / aei;
    // Minimum of V Q_V(V) on [-3, 0] by a fine scan.
    let vmin = (0..=30_000)
        .map(|i| -3.0 * i as f64 / 30_000.0)
        .min_by(|a, b| (a * qv(*a)).partial_cmp(&(b * qv(*b))).unwrap())
        .unwrap();
    assert!(vmin * qv(vmin) < target, "no V with V Q_V(V) = {target}");
    let v = bisect(|v| v * qv(v) - target, vmin, 0.0);
    let w = act(v, t_k, d_k);
    let drive = (1.0 - cc) * qv(v);
    let rest = -(g_ca + r_nmda * aee * drive) * act(v, t_ca, d_ca) * (v - v_ca)
        - g_k * w * (v - v_k)
        - g_l * (v - v_l)
        - (g_na * act(v, t_na, d_na) + aee * drive) * (v - v_na)
        + ane * iext;
    let f = |z: f64| aie * z * qz_max * act(z, zt, d_z) - rest;
    let mut out = Vec::new();
    let n = 4000;
    for i in 0..n {
        let (l, h) = (
            -4.0 + 8.0 * i as f64 / n as f64,
            -4.0 + 8.0 * (i + 1) as f64 / n as f64,
        );
        if f(l) * f(h) <= 0.0 {
            out.push([v, w, bisect(f, l, h)]);
        }
    }
    out
}

#[test]
fn drift_vanishes_at_the_fixed_point() {
    for set in [vec![], vec![("C", 0.0), ("d_V", 0.5)], vec![("Iext", 0.2)]] {
        let p = params(LarterBreakspear.spec(), &set);
        let fps = fixed_points(&p);
        assert!(!fps.is_empty(), "{set:?}");
        for x in fps {
            let dx = drift_at(&M, &x, &p);
            assert!(
                dx.iter().all(|d| d.abs() < 1e-13),
                "{set:?}: {dx:?} at {x:?}"
            );
        }
    }
}

/// Breakspear et al. (2003), as summarised in TVB's documentation: an uncoupled node (`C = 0`)
/// settles on a fixed point for `d_V < 0.55` and oscillates (limit cycles, then chaos) above.
#[test]
fn oscillations_appear_as_d_v_grows() {
    let rest = params(LarterBreakspear.spec(), &[("C", 0.0), ("d_V", 0.5)]);
    let (_, v) = trace(
        &M,
        &LarterBreakspear.spec().initial(),
        &rest,
        0.05,
        100_000,
        20_000,
        0,
    );
    assert!(peak_to_peak(&v) < 1e-8, "d_V = 0.5: {}", peak_to_peak(&v));
    assert!(fixed_points(&rest)
        .iter()
        .any(|x| (x[0] - v[0]).abs() < 1e-7));
    for d_v in [0.6, 0.65] {
        let p = params(LarterBreakspear.spec(), &[("C", 0.0), ("d_V", d_v)]);
        let (_, v) = trace(
            &M,
            &LarterBreakspear.spec().initial(),
            &p,
            0.05,
            100_000,
            20_000,
            0,
        );
        assert!(peak_to_peak(&v) > 0.3, "d_V = {d_v}: {}", peak_to_peak(&v));
    }
}
