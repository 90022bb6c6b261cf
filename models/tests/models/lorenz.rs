//! Lorenz system: its fixed points and their stability, the bounded chaotic attractor, the
//! constant divergence of the flow, and synchronisation of two diffusively coupled nodes.

use neurodiff_models::mass::lorenz::Lorenz;
use neurodiff_models::{CouplingFunction, Model};

use crate::common::{drift_at, heun, jacobian, params, rk4, Rng};

const M: Lorenz = Lorenz;

fn lorenz(sigma: f64, rho: f64, beta: f64) -> Vec<f64> {
    params(
        Lorenz.spec(),
        &[("sigma", sigma), ("rho", rho), ("beta", beta)],
    )
}

/// The coefficients `(a2, a1, a0)` of the characteristic polynomial `λ³ + a2 λ² + a1 λ + a0` of
/// a 3 × 3 matrix: `a2 = -tr J`, `a1` the sum of its principal 2 × 2 minors, `a0 = -det J`.
fn char_poly(j: &[Vec<f64>]) -> (f64, f64, f64) {
    let tr = j[0][0] + j[1][1] + j[2][2];
    let minors = j[0][0] * j[1][1] - j[0][1] * j[1][0] + j[0][0] * j[2][2] - j[0][2] * j[2][0]
        + j[1][1] * j[2][2]
        - j[1][2] * j[2][1];
    let det = j[0][0] * (j[1][1] * j[2][2] - j[1][2] * j[2][1])
        - j[0][1] * (j[1][0] * j[2][2] - j[1][2] * j[2][0])
        + j[0][2] * (j[1][0] * j[2][1] - j[1][1] * j[2][0]);
    (-tr, minors, -det)
}

/// Routh–Hurwitz for a cubic: every root has a negative real part iff `a2 > 0`, `a0 > 0` and
/// `a2 a1 > a0`.
fn hurwitz_stable((a2, a1, a0): (f64, f64, f64)) -> bool {
    a2 > 0.0 && a0 > 0.0 && a2 * a1 > a0
}

/// The origin, and for `rho > 1` the pair `C± = (±q, ±q, rho - 1)` with `q = √(beta (rho - 1))`.
#[test]
fn fixed_points_make_the_drift_vanish() {
    for (sigma, rho, beta) in [
        (10.0, 28.0, 8.0 / 3.0),
        (10.0, 0.5, 8.0 / 3.0),
        (16.0, 45.92, 4.0),
        (10.0, 1.5, 1.0),
        (3.0, 99.96, 0.5),
    ] {
        let p = lorenz(sigma, rho, beta);
        assert_eq!(drift_at(&M, &[0.0; 3], &p), vec![0.0; 3]);
        if rho > 1.0 {
            let q = (beta * (rho - 1.0)).sqrt();
            for s in [1.0, -1.0] {
                let d = drift_at(&M, &[s * q, s * q, rho - 1.0], &p);
                let scale = q * rho;
                assert!(
                    d.iter().all(|v| v.abs() < 1e-13 * scale),
                    "rho = {rho}: drift {d:?} at C{s}"
                );
            }
        }
    }
}

/// At the origin the eigenvalues are `-beta` and the roots of `λ² + (sigma + 1) λ + sigma (1 - rho)`:
/// all negative for `rho < 1`, where every orbit falls into the origin; one positive for
/// `rho > 1`.
#[test]
fn origin_attracts_below_rho_one() {
    for rho in [0.2, 0.5, 0.9] {
        let p = lorenz(10.0, rho, 8.0 / 3.0);
        let cp = char_poly(&jacobian(&M, &[0.0; 3], &[0.0], &p));
        assert!(hurwitz_stable(cp), "rho = {rho}: {cp:?}");
        // The polynomial is (λ + beta)(λ² + (sigma + 1) λ + sigma (1 - rho)).
        let b = 8.0 / 3.0;
        let want = (
            b + 11.0,
            11.0 * b + 10.0 * (1.0 - rho),
            10.0 * (1.0 - rho) * b,
        );
        assert!(
            (cp.0 - want.0).abs() < 1e-7 && (cp.1 - want.1).abs() < 1e-6,
            "rho = {rho}: {cp:?} vs {want:?}"
        );
        assert!(
            (cp.2 - want.2).abs() < 1e-6,
            "rho = {rho}: {cp:?} vs {want:?}"
        );

        let mut rng = Rng::new(7);
        for _ in 0..5 {
            let x0: Vec<f64> = Lorenz
                .spec()
                .state
                .iter()
                .map(|v| rng.uniform(v.range.0, v.range.1))
                .collect();
            let x = rk4(&M, &x0, &[0.0], &p, 0.01, 40_000, |_, _| {});
            assert!(
                x.iter().all(|v| v.abs() < 1e-8),
                "rho = {rho}: {x0:?} -> {x:?}"
            );
        }
    }
    let p = lorenz(10.0, 1.5, 8.0 / 3.0);
    let cp = char_poly(&jacobian(&M, &[0.0; 3], &[0.0], &p));
    assert!(
        cp.2 < 0.0,
        "rho = 1.5: the origin should be a saddle ({cp:?})"
    );
}

/// `C±` lose stability at `rho_H = sigma (sigma + beta + 3) / (sigma - beta - 1)` (≈ 24.74 at the
/// defaults), where `a2 a1 - a0` changes sign.
#[test]
fn c_pm_lose_stability_at_rho_h() {
    let (sigma, beta): (f64, f64) = (10.0, 8.0 / 3.0);
    let rho_h = sigma * (sigma + beta + 3.0) / (sigma - beta - 1.0);
    assert!((rho_h - 24.7368).abs() < 1e-4, "{rho_h}");
    for (rho, stable) in [
        (1.5, true),
        (rho_h - 0.3, true),
        (rho_h + 0.3, false),
        (28.0, false),
    ] {
        let p = lorenz(sigma, rho, beta);
        let q = (beta * (rho - 1.0)).sqrt();
        for s in [1.0, -1.0] {
            let cp = char_poly(&jacobian(&M, &[s * q, s * q, rho - 1.0], &[0.0], &p));
            assert_eq!(hurwitz_stable(cp), stable, "rho = {rho}, C{s}: {cp:?}");
        }
    }
}

/// At the defaults the flow settles on the chaotic attractor: bounded (`|z| < 60`,
/// `|x| < 30`, `|y| < 40` over a long run), visiting both wings without settling, and sensitive
/// to a 1e-9 change of the initial state.
#[test]
fn chaotic_attractor_is_bounded() {
    let p = Lorenz.spec().defaults();
    let dt = 0.005;
    let (mut zmax, mut xmax, mut ymax) = (0f64, 0f64, 0f64);
    let mut sign_changes = 0;
    let mut last_x = 1.0;
    let mut late_z = (f64::INFINITY, f64::NEG_INFINITY);
    let steps = 200_000; // 1000 time units
    let a = rk4(
        &M,
        &Lorenz.spec().initial(),
        &[0.0],
        &p,
        dt,
        steps,
        |t, x| {
            zmax = zmax.max(x[2].abs());
            xmax = xmax.max(x[0].abs());
            ymax = ymax.max(x[1].abs());
            if t > 500.0 {
                if x[0] * last_x < 0.0 {
                    sign_changes += 1;
                }
                late_z = (late_z.0.min(x[2]), late_z.1.max(x[2]));
            }
            last_x = x[0];
        },
    );
    assert!(a.iter().all(|v| v.is_finite()));
    assert!(
        zmax < 60.0 && xmax < 30.0 && ymax < 40.0,
        "{xmax} {ymax} {zmax}"
    );
    assert!(sign_changes > 100, "{sign_changes} wing switches");
    assert!(late_z.1 - late_z.0 > 25.0, "z range {late_z:?}");

    // Sensitive dependence: 1e-9 apart at t = 0, macroscopically apart by t = 50.
    let x0 = Lorenz.spec().initial();
    let mut x1 = x0.clone();
    x1[0] += 1e-9;
    let steps = 10_000;
    let a = rk4(&M, &x0, &[0.0], &p, dt, steps, |_, _| {});
    let b = rk4(&M, &x1, &[0.0], &p, dt, steps, |_, _| {});
    assert!(
        (a[0] - b[0]).abs().max((a[2] - b[2]).abs()) > 1.0,
        "{a:?} vs {b:?}"
    );
}

/// The divergence of the flow, `∂ẋ/∂x + ∂ẏ/∂y + ∂ż/∂z`, is `-(sigma + 1 + beta)` everywhere: the
/// trace of the numerical Jacobian at random points and parameters.
#[test]
fn divergence_is_constant() {
    let mut rng = Rng::new(11);
    for _ in 0..50 {
        let (sigma, rho, beta) = (
            rng.uniform(1.0, 20.0),
            rng.uniform(0.0, 60.0),
            rng.uniform(0.5, 5.0),
        );
        let p = lorenz(sigma, rho, beta);
        let x: Vec<f64> = Lorenz
            .spec()
            .state
            .iter()
            .map(|v| rng.uniform(v.range.0, v.range.1))
            .collect();
        let c = [rng.uniform(-5.0, 5.0)];
        let j = jacobian(&M, &x, &c, &p);
        let div = j[0][0] + j[1][1] + j[2][2];
        let want = -(sigma + 1.0 + beta);
        assert!(
            (div - want).abs() < 1e-7 * want.abs(),
            "div {div} vs {want} at {x:?}"
        );
    }
}

/// Two nodes with diffusive coupling on `x` both ways (`c_1 = G (x_2 - x_1)`,
/// `c_2 = G (x_1 - x_2)`): at the typical strength they synchronise completely; uncoupled or
/// weakly coupled (below the threshold, about 3.9, where the transverse Lyapunov exponent changes
/// sign) they stay apart.
#[test]
fn diffusive_coupling_synchronises_two_nodes() {
    let s = Lorenz.spec();
    assert_eq!(s.coupling_function, CouplingFunction::Difference);
    let p = s.defaults();
    let run = |g: f64| -> (f64, f64) {
        let dt = 0.005;
        let mut a = vec![1.0, 1.0, 1.0];
        let mut b = vec![1.01, 1.0, 1.0];
        let mut late_max = 0f64;
        let f = |a: &[f64], b: &[f64], da: &mut [f64], db: &mut [f64]| {
            M.drift(a, &[g * (b[0] - a[0])], &p, da);
            M.drift(b, &[g * (a[0] - b[0])], &p, db);
        };
        for step in 0..40_000 {
            // RK4 on the six-dimensional pair.
            let (mut ka, mut kb) = ([[0.0; 3]; 4], [[0.0; 3]; 4]);
            let mut ta = a.clone();
            let mut tb = b.clone();
            for st in 0..4 {
                if st > 0 {
                    let h = if st == 3 { dt } else { 0.5 * dt };
                    for i in 0..3 {
                        ta[i] = a[i] + h * ka[st - 1][i];
                        tb[i] = b[i] + h * kb[st - 1][i];
                    }
                }
                f(&ta, &tb, &mut ka[st], &mut kb[st]);
            }
            for i in 0..3 {
                a[i] += dt / 6.0 * (ka[0][i] + 2.0 * ka[1][i] + 2.0 * ka[2][i] + ka[3][i]);
                b[i] += dt / 6.0 * (kb[0][i] + 2.0 * kb[1][i] + 2.0 * kb[2][i] + kb[3][i]);
            }
            if step >= 30_000 {
                let d = (0..3).map(|i| (a[i] - b[i]).abs()).fold(0.0, f64::max);
                late_max = late_max.max(d);
            }
        }
        let end = (0..3).map(|i| (a[i] - b[i]).abs()).fold(0.0, f64::max);
        (end, late_max)
    };
    let (end, late) = run(s.coupling_strength);
    assert!(
        end < 1e-9 && late < 1e-9,
        "G = {}: {end} {late}",
        s.coupling_strength
    );
    for g in [0.0, 2.0] {
        let (_, late) = run(g);
        assert!(late > 1.0, "G = {g}: synchronised ({late})");
    }
}

/// Heun at the default step is in its second-order regime over one time unit (before chaos
/// separates trajectories): halving the step quarters the error against an RK4 reference, and
/// the error is below 1 % of the attractor's size (≈ 50).
#[test]
fn heun_at_the_default_step_is_accurate() {
    let s = Lorenz.spec();
    let p = s.defaults();
    let x0 = [-4.0, -6.0, 20.0];
    let dt = s.default_dt;
    let want = rk4(&M, &x0, &[0.0], &p, dt / 20.0, 2_000, |_, _| {});
    let err = |h: f64| {
        let got = heun(&M, &x0, &p, h, (1.0 / h).round() as usize);
        (0..3).map(|i| (got[i] - want[i]).abs()).fold(0.0, f64::max)
    };
    let (e1, e2) = (err(dt), err(dt / 2.0));
    println!("lorenz Heun error: {e1:e} at dt, {e2:e} at dt/2");
    assert!(e1 < 0.5, "{e1}");
    assert!((3.0..5.0).contains(&(e1 / e2)), "{e1} / {e2}");
}
