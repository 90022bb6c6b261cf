//! Kernels and state-space priors of `neurodiff_models::latent`: the Matérn SDEs reproduce
//! their kernels exactly, the AR(P) lift reproduces the lagged covariances it conditions on,
//! kernels are positive definite on a grid, delays enter as `k(τ + δ_b − δ_a)`.

use neurodiff_models::latent::linalg::{cholesky, sym_eigen, Mat};
use neurodiff_models::latent::{
    ar, delayed_cov, kernel_by_name, Kernel, Matern12, Matern32, Matern52, RationalQuadratic, Rbf,
    KERNEL_NAMES,
};

fn matern_kernels(ell: f64) -> Vec<Box<dyn Kernel>> {
    vec![
        Box::new(Matern12::new(ell)),
        Box::new(Matern32::new(ell)),
        Box::new(Matern52::new(ell)),
    ]
}

/// Independent closed forms (Rasmussen & Williams 2006, eq. 4.14–4.17, 4.9, 4.19).
#[test]
fn kernels_match_closed_forms() {
    let ell = 3.0;
    for tau in [-7.5, -1.0, 0.0, 0.4, 2.0, 9.0] {
        let r: f64 = f64::abs(tau);
        let want = [
            (-r / ell).exp(),
            (1.0 + 3f64.sqrt() * r / ell) * (-(3f64.sqrt()) * r / ell).exp(),
            (1.0 + 5f64.sqrt() * r / ell + 5.0 * r * r / (3.0 * ell * ell))
                * (-(5f64.sqrt()) * r / ell).exp(),
        ];
        for (k, w) in matern_kernels(ell).iter().zip(want) {
            assert!((k.cov(tau) - w).abs() < 1e-15, "{} at {tau}", k.name());
        }
        let rbf = (-tau * tau / (2.0 * ell * ell)).exp();
        assert!((Rbf::new(ell).cov(tau) - rbf).abs() < 1e-15);
        let rq = (1.0 + tau * tau / (2.0 * 2.0 * ell * ell)).powf(-2.0);
        assert!((RationalQuadratic::new(ell, 2.0).cov(tau) - rq).abs() < 1e-15);
    }
    // The RQ kernel tends to the RBF as α → ∞.
    let big = RationalQuadratic::new(ell, 1e7);
    assert!((big.cov(2.5) - Rbf::new(ell).cov(2.5)).abs() < 1e-6);
}

/// Every kernel's Gram matrix on a grid of 40 bins (and of delayed outputs) is positive
/// definite: its smallest eigenvalue is positive and Cholesky succeeds.
#[test]
fn kernels_positive_definite_on_a_grid() {
    for name in KERNEL_NAMES {
        for ell in [1.5, 4.0] {
            let k = kernel_by_name(name, ell).unwrap();
            let n = 40;
            let g = Mat::from_fn(n, n, |i, j| k.cov(i as f64 - j as f64));
            let (vals, _) = sym_eigen(&g);
            // The RBF Gram matrix is numerically near-singular for long timescales; it must
            // stay non-negative to rounding, the others strictly positive.
            let tol = if *name == "rbf" || *name == "rq" {
                -1e-10
            } else {
                1e-8
            };
            assert!(
                vals[n - 1] > tol,
                "{name} ell {ell}: min eigenvalue {}",
                vals[n - 1]
            );
            let jit = Mat::from_fn(n, n, |i, j| g[(i, j)] + if i == j { 1e-6 } else { 0.0 });
            assert!(cholesky(&jit).is_ok(), "{name}");
            // Two outputs delayed by 0 and 1.7 bins: a valid multi-output covariance.
            let lc = ar::lagged_cov(k.as_ref(), &[0.0, 1.7], 20, 1e-6);
            assert!(cholesky(&lc).is_ok(), "{name} delayed");
        }
    }
}

#[test]
fn delays_shift_the_lag() {
    let k = Matern32::new(2.0);
    // x_a(t) = z(t − δ_a): Cov(x_a(s), x_b(t)) = k(s − t + δ_b − δ_a).
    let (da, db) = (0.0, 1.5);
    assert_eq!(delayed_cov(&k, 0.5, da, db), k.cov(2.0));
    // Symmetry: Cov(x_a(s), x_b(t)) = Cov(x_b(t), x_a(s)).
    assert!((delayed_cov(&k, 0.5, da, db) - delayed_cov(&k, -0.5, db, da)).abs() < 1e-15);
}

/// The Matérn SDE: `P∞` solves the Lyapunov equation, and the discretised model reproduces
/// the kernel at every lag exactly, `H P∞ (Aᵀ)^k Hᵀ = k(kΔ)`, for several steps Δ.
#[test]
fn matern_sde_reproduces_the_kernel_exactly() {
    for ell in [0.7, 2.5, 10.0] {
        for k in matern_kernels(ell) {
            let sde = k.sde().expect("Matérn kernels have an SDE");
            assert!(
                sde.lyapunov_residual().max_abs() < 1e-12 * sde.pinf.max_abs().max(1.0),
                "{} Lyapunov",
                k.name()
            );
            for dt in [0.25, 1.0, 3.0] {
                let (a, q) = sde.discretise(dt);
                assert!(cholesky(&q.add(&Mat::eye(q.rows).scale(1e-13))).is_ok());
                let h = sde.h();
                let mut at_k = Mat::eye(a.rows);
                for step in 0..30 {
                    let got = h.mul(&sde.pinf).mul(&at_k).mul_t(&h)[(0, 0)];
                    let want = k.cov(step as f64 * dt);
                    assert!(
                        (got - want).abs() < 1e-12,
                        "{} ell {ell} dt {dt} lag {step}: {got} vs {want}",
                        k.name()
                    );
                    at_k = at_k.mul(&a.t());
                }
                // Stationarity: A P∞ Aᵀ + Q = P∞.
                let back = a.mul(&sde.pinf).mul_t(&a).add(&q);
                assert!(back.sub(&sde.pinf).max_abs() < 1e-12);
            }
        }
    }
}

/// The AR(P) lift: `P∞` is stationary under `(A, Q)`, and the lifted model reproduces the
/// (delayed) lagged covariances exactly up to lag `P` (the values it conditions on); for a
/// Matérn-1/2 kernel (a Markov process) with one output, AR(1) is exact at every lag.
#[test]
fn ar_lift_reproduces_lagged_covariances() {
    let k = Matern52::new(3.0);
    let delays = [0.0, 1.3, -0.6];
    let p = 4;
    let lift = ar::ar_lift(&k, &delays, p, 1e-6).unwrap();
    let back = lift.a.mul(&lift.pinf).mul_t(&lift.a).add(&lift.q);
    assert!(back.sub(&lift.pinf).max_abs() < 1e-10);
    let d = delays.len();
    for lag in 0..=p {
        // Cov(x(t + lag), x(t)) = H A^lag P∞ Hᵀ.
        let c = lift.h.mul(&lift.a.pow(lag)).mul(&lift.pinf).mul_t(&lift.h);
        for a in 0..d {
            for b in 0..d {
                let want = delayed_cov(&k, lag as f64, delays[a], delays[b])
                    + if lag == 0 && a == b { 1e-6 } else { 0.0 };
                assert!(
                    (c[(a, b)] - want).abs() < 1e-8,
                    "lag {lag} ({a},{b}): {} vs {want}",
                    c[(a, b)]
                );
            }
        }
    }
    let ou = Matern12::new(2.0);
    let lift = ar::ar_lift(&ou, &[0.0], 1, 0.0).unwrap();
    for lag in 0..20 {
        let c = lift.h.mul(&lift.a.pow(lag)).mul(&lift.pinf).mul_t(&lift.h)[(0, 0)];
        assert!((c - ou.cov(lag as f64)).abs() < 1e-12);
    }
}
