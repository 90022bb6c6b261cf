//! Reduced Wong–Wang: the fixed point, and the removable singularity of the transfer function.

use burn::prelude::Tensor;
use neurodiff_models::{Dynamics, Model, WongWang};

use crate::common::{bisect, drift_at, params, tensor, trace, values, Ad, B};

const M: WongWang = WongWang;

/// Deco et al. (2013)'s transfer function, written out here.
fn h(y: f64, d: f64) -> f64 {
    y / (1.0 - (-d * y).exp())
}

/// An uncoupled node rests where `S / tau_s = (1 - S) gamma H(a (w J_N S + I_o) - b)`: solved
/// by bisection on `[0, 1]` (the left side minus the right is negative at `S = 0`, since
/// `H > 0`, and positive at `S = 1`).
#[test]
fn drift_vanishes_at_the_fixed_point_which_attracts() {
    for i_o in [0.2, 0.33, 0.4] {
        let p = params(Model::spec(&WongWang), &[("I_o", i_o)]);
        let (a, b, d, gamma, tau_s, w, j_n) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
        let f = |s: f64| s / tau_s - (1.0 - s) * gamma * h(a * (w * j_n * s + i_o) - b, d);
        let s_star = bisect(f, 0.0, 1.0);
        let dx = drift_at(&M, &[s_star], &p);
        assert!(
            dx[0].abs() < 1e-14,
            "I_o = {i_o}: dS/dt = {} at S = {s_star}",
            dx[0]
        );
        // Monostable at these inputs: the node relaxes to it from both ends.
        for s0 in [0.01, 0.95] {
            let (_, s) = trace(&M, &[s0], &p, 0.1, 50_000, 1, 0);
            assert!(
                (s[0] - s_star).abs() < 1e-8,
                "I_o = {i_o}: from {s0} to {}",
                s[0]
            );
        }
    }
}

/// `H(y) = y / (1 - exp(-d y))` tends to `1/d` at `y = 0`. With `I_o = b / a` and `S = 0` the
/// node sits exactly there, so `dS/dt = gamma / d`; just around it the value must be continuous
/// (across the switch to the series) and, in `f32`, free of the cancellation in `1 - exp(-d y)`.
#[test]
fn transfer_function_is_smooth_through_its_singularity() {
    let spec = Model::spec(&WongWang);
    let (a, b, d, gamma) = (0.27, 0.108, 154.0, 0.641);
    let base = params(spec, &[("I_o", b / a)]);
    let dx = drift_at(&M, &[0.0], &base);
    assert!(
        (dx[0] - gamma / d).abs() < 1e-15,
        "{} vs {}",
        dx[0],
        gamma / d
    );

    // Points either side of the series/direct switch (|d y| = 1e-2) and near zero; the
    // reference is the direct formula, accurate to ~1e-14 for |d y| >= 1e-3.
    for dy in [
        -2e-2, -1.0001e-2, -0.9999e-2, -5e-3, -1e-3, 1e-3, 5e-3, 0.9999e-2, 1.0001e-2, 2e-2,
    ] {
        let y = dy / d;
        let p = params(spec, &[("I_o", (b + y) / a)]);
        let got = drift_at(&M, &[0.0], &p)[0];
        // y is recomputed from the parameters, as the model does.
        let y_model = a * p[7] - b;
        let want = gamma * h(y_model, d);
        assert!(
            (got - want).abs() < 1e-13 * want,
            "d y = {dy}: {got} vs {want}"
        );
        // f32: relative error well below the 1e-4 that 1 - exp(-d y) alone would cost here.
        let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
        let mut d32 = [0f32];
        Model::drift(&M, &[0f32], &[0f32], &p32, &mut d32);
        assert!(
            ((d32[0] as f64) - want).abs() < 2e-5 * want,
            "f32 at d y = {dy}: {} vs {want}",
            d32[0]
        );
    }

    // Gradient through the singular point: d(dS/dt)/dI_o = gamma a H'(0) = gamma a / 2 at S = 0
    // (from H(y) = (1/d)(1 + d y / 2 + ...)), by autodiff on the tensor drift.
    let mut ps: Vec<Tensor<Ad, 2>> = base.iter().map(|&v| tensor::<Ad>(&[v], [1, 1])).collect();
    ps[7] = ps[7].clone().require_grad();
    let x = [tensor::<Ad>(&[0.0], [1, 1])];
    let dx = Dynamics::<Ad>::drift(&M, &x, &[None], &ps);
    let grads = dx[0].clone().sum().backward();
    let g = values::<B>(ps[7].grad(&grads).unwrap())[0];
    assert!(
        (g - gamma * a / 2.0).abs() < 1e-12,
        "{g} vs {}",
        gamma * a / 2.0
    );
}
