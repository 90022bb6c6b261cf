//! Threshold-linear E–I model: the fixed point of the linear regime and its stability, the
//! inhibition-stabilised defaults, the rest state without drive, and the rectification.

use neurodiff_models::mass::threshold_linear::{Params, ThresholdLinear};
use neurodiff_models::Model;

use crate::common::{drift_at, heun, jacobian, params, rk4, Rng};

const M: ThresholdLinear = ThresholdLinear;

/// The fixed point of the linear regime (both currents positive) for a uniform network input
/// `c = g E` (`g = 0`: an uncoupled node), by Cramer's rule on
/// `(1 - bE wEE') E + bE wEI I = bE I_E`, `-bI wIE' E + (1 + bI wII) I = bI I_I`, with
/// `wEE' = wEE + muEE g` and `wIE' = wIE + muIE g`. Also returns the determinant.
fn linear_fixed_point(p: &[f64], g: f64) -> ([f64; 2], f64) {
    let q = Params::from_slice(p);
    let w_ee = q.w_EE + q.mu_EE * g;
    let w_ie = q.w_IE + q.mu_IE * g;
    let (a11, a12) = (1.0 - q.beta_E * w_ee, q.beta_E * q.w_EI);
    let (a21, a22) = (-q.beta_I * w_ie, 1.0 + q.beta_I * q.w_II);
    let (b1, b2) = (q.beta_E * q.I_E, q.beta_I * q.I_I);
    let det = a11 * a22 - a12 * a21;
    (
        [(b1 * a22 - a12 * b2) / det, (a11 * b2 - a21 * b1) / det],
        det,
    )
}

/// The Jacobian of the linear regime (uniform network input `c = g E`), by hand.
fn linear_jacobian(p: &[f64], g: f64) -> [[f64; 2]; 2] {
    let q = Params::from_slice(p);
    [
        [
            (q.beta_E * (q.w_EE + q.mu_EE * g) - 1.0) / q.tau_E,
            -q.beta_E * q.w_EI / q.tau_E,
        ],
        [
            q.beta_I * (q.w_IE + q.mu_IE * g) / q.tau_I,
            -(1.0 + q.beta_I * q.w_II) / q.tau_I,
        ],
    ]
}

/// The numerical Jacobian of `x ↦ drift(x, c = g x_E)`.
fn network_jacobian(x: &[f64], p: &[f64], g: f64) -> Vec<Vec<f64>> {
    let mut j = vec![vec![0.0; 2]; 2];
    for col in 0..2 {
        let h = 1e-6 * x[col].abs().max(1e-2);
        let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
        xp[col] += h;
        xm[col] -= h;
        let (mut fp, mut fm) = ([0.0; 2], [0.0; 2]);
        M.drift(&xp, &[g * xp[0]], p, &mut fp);
        M.drift(&xm, &[g * xm[0]], p, &mut fm);
        for row in 0..2 {
            j[row][col] = (fp[row] - fm[row]) / (2.0 * h);
        }
    }
    j
}

/// Eigenvalues `(re1, re2, im)` of a 2 × 2 matrix (the real parts, and the imaginary part of a
/// complex pair, else 0).
fn eig2(j: &[[f64; 2]; 2]) -> (f64, f64, f64) {
    let (tr, det) = (j[0][0] + j[1][1], j[0][0] * j[1][1] - j[0][1] * j[1][0]);
    let disc = tr * tr - 4.0 * det;
    if disc >= 0.0 {
        ((tr - disc.sqrt()) / 2.0, (tr + disc.sqrt()) / 2.0, 0.0)
    } else {
        (tr / 2.0, tr / 2.0, (-disc).sqrt() / 2.0)
    }
}

fn currents(x: &[f64], p: &[f64], c: f64) -> (f64, f64) {
    let q = Params::from_slice(p);
    (
        q.w_EE * x[0] - q.w_EI * x[1] + q.I_E + q.mu_EE * c,
        q.w_IE * x[0] - q.w_II * x[1] + q.I_I + q.mu_IE * c,
    )
}

/// At the defaults the uncoupled fixed point is Chaudhuri et al.'s baseline `E = 10 Hz`,
/// `I = 35 Hz`; for other drives the hand-solved fixed point of the linear regime makes the
/// drift vanish (and lies in that regime).
#[test]
fn fixed_point_of_the_linear_regime() {
    let p0 = ThresholdLinear.spec().defaults();
    let (x, _) = linear_fixed_point(&p0, 0.0);
    assert!(
        (x[0] - 10.0).abs() < 1e-9 && (x[1] - 35.0).abs() < 1e-9,
        "{x:?}"
    );
    assert_eq!(ThresholdLinear.spec().initial(), vec![10.0, 35.0]);
    let mut rng = Rng::new(5);
    let mut checked = 0;
    while checked < 20 {
        let p = params(
            ThresholdLinear.spec(),
            &[
                ("I_E", rng.uniform(0.0, 1200.0)),
                ("I_I", rng.uniform(0.0, 800.0)),
            ],
        );
        let (x, _) = linear_fixed_point(&p, 0.0);
        if x[0] <= 0.0 || x[1] <= 0.0 {
            continue; // outside the linear regime: not this fixed point's business
        }
        let (ce, ci) = currents(&x, &p, 0.0);
        assert!(ce > 0.0 && ci > 0.0);
        let d = drift_at(&M, &x, &p);
        assert!(
            d.iter().all(|v| v.abs() < 1e-12 * x[1].max(1.0)),
            "{x:?}: drift {d:?}"
        );
        checked += 1;
    }
}

/// The numerical Jacobian at the fixed point is the matrix of the linear regime; at the defaults
/// its eigenvalues are real and negative (≈ -0.024 and -0.485 per ms), although the excitatory
/// loop alone is unstable (`beta_E w_EE > 1`: inhibition-stabilised). Slow inhibition destroys
/// that: the trace vanishes at `tau_I* = tau_E (1 + beta_I w_II) / (beta_E w_EE - 1)`
/// (≈ 178 ms), beyond which the fixed point is an unstable focus; RK4 agrees on both sides.
#[test]
fn stability_from_the_jacobian() {
    let p = ThresholdLinear.spec().defaults();
    let q = Params::from_slice(&p[..]);
    assert!(q.beta_E * q.w_EE > 1.0);
    let (x, _) = linear_fixed_point(&p, 0.0);
    let jn = jacobian(&M, &x, &[0.0], &p);
    let ja = linear_jacobian(&p, 0.0);
    for r in 0..2 {
        for c in 0..2 {
            assert!(
                (jn[r][c] - ja[r][c]).abs() < 1e-8,
                "J[{r}][{c}]: {} vs {}",
                jn[r][c],
                ja[r][c]
            );
        }
    }
    let (l1, l2, im) = eig2(&ja);
    assert_eq!(im, 0.0);
    assert!(
        (l1 + 0.4848).abs() < 1e-3 && (l2 + 0.0239).abs() < 1e-3,
        "{l1} {l2}"
    );
    let end = rk4(&M, &[20.0, 40.0], &[0.0], &p, 0.1, 10_000, |_, _| {});
    assert!(
        (end[0] - x[0]).abs() < 1e-6 && (end[1] - x[1]).abs() < 1e-6,
        "{end:?}"
    );

    let tau_i_star = q.tau_E * (1.0 + q.beta_I * q.w_II) / (q.beta_E * q.w_EE - 1.0);
    assert!((170.0..190.0).contains(&tau_i_star), "{tau_i_star}");
    for (tau_i, stable, simulate) in [
        (120.0, true, true),
        (tau_i_star - 5.0, true, false),
        (tau_i_star + 5.0, false, false),
        (250.0, false, true),
    ] {
        let p = params(ThresholdLinear.spec(), &[("tau_I", tau_i)]);
        let (x2, _) = linear_fixed_point(&p, 0.0);
        assert_eq!(x2, x, "the fixed point does not depend on tau_I");
        let (re, _, im) = eig2(&linear_jacobian(&p, 0.0));
        assert!(im > 0.0, "tau_I = {tau_i}: a focus");
        assert_eq!(re < 0.0, stable, "tau_I = {tau_i}: Re λ = {re}");
        if simulate {
            let start = [x[0] + 0.5, x[1]];
            let end = rk4(&M, &start, &[0.0], &p, 0.1, 10_000, |_, _| {});
            let dist = (end[0] - x[0]).hypot(end[1] - x[1]);
            if stable {
                assert!(dist < 0.01, "tau_I = {tau_i}: {dist}");
            } else {
                assert!(dist > 5.0, "tau_I = {tau_i}: {dist}");
            }
        }
    }
}

/// A uniform network input `c = g E` (every node at the same rate, `g = G` times the leading
/// eigenvalue of the connectome) adds `mu_EE g` to `w_EE` and `mu_IE g` to `w_IE`. The trace of
/// the Jacobian then vanishes at
/// `g_c = ((1 + tau_E (1 + beta_I w_II) / tau_I) / beta_E - w_EE) / mu_EE` (≈ 4.6) with a
/// positive determinant: a Hopf bifurcation, checked on the numerical Jacobian of the coupled
/// drift.
#[test]
fn network_input_destabilises_at_the_analytic_gain() {
    let p = ThresholdLinear.spec().defaults();
    let q = Params::from_slice(&p[..]);
    let g_c = ((1.0 + q.tau_E * (1.0 + q.beta_I * q.w_II) / q.tau_I) / q.beta_E - q.w_EE) / q.mu_EE;
    assert!((4.4..4.8).contains(&g_c), "{g_c}");
    for (g, stable) in [(0.0, true), (g_c - 0.05, true), (g_c + 0.05, false)] {
        let (x, det) = linear_fixed_point(&p, g);
        assert!(det > 0.0 && x[0] > 0.0 && x[1] > 0.0, "g = {g}: {x:?}");
        let mut dx = [0.0; 2];
        M.drift(&x, &[g * x[0]], &p, &mut dx);
        assert!(dx.iter().all(|v| v.abs() < 1e-10 * x[1]), "g = {g}: {dx:?}");
        let jn = network_jacobian(&x, &p, g);
        let tr = jn[0][0] + jn[1][1];
        let det_n = jn[0][0] * jn[1][1] - jn[0][1] * jn[1][0];
        assert!(det_n > 0.0, "g = {g}");
        assert_eq!(tr < 0.0, stable, "g = {g}: trace {tr}");
    }
}

/// Without drive (`I_E = I_I = 0`) the rest state is `E = I = 0`, and it attracts.
#[test]
fn zero_drive_gives_the_zero_fixed_point() {
    let p = params(ThresholdLinear.spec(), &[("I_E", 0.0), ("I_I", 0.0)]);
    assert_eq!(drift_at(&M, &[0.0, 0.0], &p), vec![0.0, 0.0]);
    let (x, _) = linear_fixed_point(&p, 0.0);
    assert!(x[0].abs() < 1e-12 && x[1].abs() < 1e-12);
    for x0 in [[5.0, 5.0], [20.0, 3.0], [1.0, 40.0], [50.0, 0.0]] {
        let end = rk4(&M, &x0, &[0.0], &p, 0.1, 20_000, |_, _| {});
        assert!(end.iter().all(|v| v.abs() < 1e-6), "{x0:?} -> {end:?}");
    }
}

/// Where a current is negative its rate just decays, `dE/dt = -E / tau_E`: with strongly negative
/// drives the rates follow `E0 e^{-t/tau_E}`, `I0 e^{-t/tau_I}`, and they never go negative.
#[test]
fn rectified_currents_leave_pure_decay() {
    let p = params(
        ThresholdLinear.spec(),
        &[("I_E", -2000.0), ("I_I", -2000.0)],
    );
    let q = Params::from_slice(&p[..]);
    let d = drift_at(&M, &[5.0, 80.0], &p);
    assert_eq!(d, vec![-5.0 / q.tau_E, -80.0 / q.tau_I]);
    let x0 = [40.0, 90.0];
    let mut max_err: f64 = 0.0;
    rk4(&M, &x0, &[0.0], &p, 0.1, 2_000, |t, x| {
        let want = [x0[0] * (-t / q.tau_E).exp(), x0[1] * (-t / q.tau_I).exp()];
        max_err = max_err
            .max((x[0] - want[0]).abs())
            .max((x[1] - want[1]).abs());
        assert!(x[0] >= 0.0 && x[1] >= 0.0);
    });
    assert!(max_err < 1e-7, "{max_err}");
    // The projection clips negative rates (noise can push them there).
    let mut x = [-1.0, 3.0];
    M.project(&mut x);
    assert_eq!(x, [0.0, 3.0]);
}

/// The network input enters the excitatory current scaled by `mu_EE` and the inhibitory one by
/// `mu_IE`.
#[test]
fn network_input_gains() {
    let p = ThresholdLinear.spec().defaults();
    let q = Params::from_slice(&p[..]);
    let x = [12.0, 30.0];
    let (mut d0, mut d1) = ([0.0; 2], [0.0; 2]);
    M.drift(&x, &[0.0], &p, &mut d0);
    M.drift(&x, &[2.0], &p, &mut d1);
    let want = [
        q.beta_E * q.mu_EE * 2.0 / q.tau_E,
        q.beta_I * q.mu_IE * 2.0 / q.tau_I,
    ];
    for v in 0..2 {
        assert!(
            (d1[v] - d0[v] - want[v]).abs() < 1e-12,
            "{v}: {d0:?} {d1:?}"
        );
    }
}

/// Heun at the default step is in its second-order regime over 200 ms: halving the step
/// quarters the error against an RK4 reference, and the error is below 1e-5 Hz.
#[test]
fn heun_at_the_default_step_is_accurate() {
    let s = ThresholdLinear.spec();
    let p = s.defaults();
    let x0 = [25.0, 20.0];
    let dt = s.default_dt;
    let want = rk4(&M, &x0, &[0.0], &p, dt / 20.0, 40_000, |_, _| {});
    let err = |h: f64| {
        let got = heun(&M, &x0, &p, h, (200.0 / h).round() as usize);
        (got[0] - want[0]).abs().max((got[1] - want[1]).abs())
    };
    let (e1, e2) = (err(dt), err(dt / 2.0));
    println!("threshold_linear Heun error: {e1:e} at dt, {e2:e} at dt/2");
    assert!(e1 < 1e-5, "{e1}");
    assert!((3.0..5.0).contains(&(e1 / e2)), "{e1} / {e2}");
}
