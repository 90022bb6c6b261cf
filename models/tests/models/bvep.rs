//! 2D Epileptor (BVEP): the fixed point and the critical excitability.

use neurodiff_models::{Bvep, Model};

use crate::common::{bisect, drift_at, jacobian, params, peak_to_peak, trace};

const M: Bvep = Bvep;

/// `dz/dt = 0`: `z = 4 (x - x0)`; `dx/dt = 0`: `x³ + 2x² + 4x - (1 + I1 + 4 x0) = 0`, whose
/// slope `3x² + 4x + 4` is always positive: a unique fixed point.
fn fixed_point(p: &[f64]) -> [f64; 2] {
    let (i1, x0) = (p[1], p[2]);
    let x = bisect(
        |x| x * x * x + 2.0 * x * x + 4.0 * x - (1.0 + i1 + 4.0 * x0),
        -10.0,
        10.0,
    );
    [x, 4.0 * (x - x0)]
}

#[test]
fn drift_vanishes_at_the_fixed_point() {
    for x0 in [-3.5, -2.5, -1.6] {
        let p = params(Bvep.spec(), &[("x0", x0)]);
        let x = fixed_point(&p);
        let dx = drift_at(&M, &x, &p);
        assert!(dx.iter().all(|d| d.abs() < 1e-13), "x0 = {x0}: {dx:?}");
    }
}

/// The fixed point loses stability where the Jacobian's trace `-3x² - 4x - 1/tau0` vanishes
/// (its determinant `(3x² + 4x + 4)/tau0` stays positive: a Hopf bifurcation), i.e. at
/// `x_c = (-4 - √(16 - 12/tau0)) / 6`, reached for `x0_c = (x_c³ + 2x_c² + 4x_c - 1 - I1)/4`.
/// Proix et al. (2014) give `x0_c ≈ -2.05`. Below it the node rests, above it it seizes.
#[test]
fn critical_excitability() {
    let p0 = Bvep.spec().defaults();
    let (tau0, i1) = (p0[0], p0[1]);
    let xc = (-4.0 - (16.0 - 12.0 / tau0).sqrt()) / 6.0;
    let x0c = (xc.powi(3) + 2.0 * xc * xc + 4.0 * xc - 1.0 - i1) / 4.0;
    assert!((-2.1..=-2.0).contains(&x0c), "x0_c = {x0c}");
    for (dx0, stable) in [(-0.05, true), (0.05, false)] {
        let p = params(Bvep.spec(), &[("x0", x0c + dx0)]);
        let x = fixed_point(&p);
        let j = jacobian(&M, &x, &[0.0], &p);
        assert_eq!(j[0][0] + j[1][1] < 0.0, stable, "x0 = {}", x0c + dx0);
    }
    let rest = params(Bvep.spec(), &[("x0", -2.3)]);
    let (_, x) = trace(&M, &Bvep.spec().initial(), &rest, 0.05, 100_000, 10_000, 0);
    assert!(peak_to_peak(&x) < 1e-9 && (x[0] - fixed_point(&rest)[0]).abs() < 1e-8);
    let seizing = params(Bvep.spec(), &[("x0", -1.8)]);
    let (_, x) = trace(
        &M,
        &Bvep.spec().initial(),
        &seizing,
        0.05,
        100_000,
        10_000,
        0,
    );
    assert!(peak_to_peak(&x) > 1.0, "{}", peak_to_peak(&x));
}
