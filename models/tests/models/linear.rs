//! Linear: exponential relaxation at rate `gamma`, to `-c / gamma` under a constant input.

use neurodiff_models::{Linear, Model};

use crate::common::{params, rk4};

const M: Linear = Linear;

#[test]
fn relaxes_exponentially() {
    for (gamma, c) in [(-10.0, 0.0), (-0.5, 0.0), (-3.0, 1.5)] {
        let p = params(Linear.spec(), &[("gamma", gamma)]);
        let x0 = 0.7;
        let dt = 0.001;
        let mut max_err: f64 = 0.0;
        // x(t) = x* + (x0 - x*) e^{gamma t}, x* = -c / gamma.
        let xs = -c / gamma;
        rk4(&M, &[x0], &[c], &p, dt, 5_000, |t, x| {
            let want = xs + (x0 - xs) * (gamma * t).exp();
            max_err = max_err.max((x[0] - want).abs());
        });
        assert!(max_err < 1e-10, "gamma = {gamma}: error {max_err}");
    }
}
