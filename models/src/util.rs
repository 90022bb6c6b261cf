//! Small numerical helpers shared by several models, each in a tensor and a point version that
//! compute the same function.

use burn::prelude::{Backend, Tensor};
use num_traits::Float;

use crate::k;

/// Below this `|z|`, `z / (1 - exp(-z))` is evaluated by its Taylor series (whose first omitted
/// term, `z^6 / 30240`, is then below 4e-17), which avoids both the 0/0 at `z = 0` and the
/// cancellation in `1 - exp(-z)` near it (in `f32` that cancellation alone costs about
/// `6e-8 / |z|` relative error, so 1e-2 keeps it near 1e-5).
pub(crate) const SMALL_Z: f64 = 1e-2;

/// The Wong–Wang transfer function `H = y / (1 - exp(-d y))`, which is continuous at `y = 0`
/// with `H(0) = 1/d`. Written with `z = d y` as `H = (1/d) z / (1 - exp(-z))`.
///
/// The masked branches are arranged so that neither the value nor the gradient of the unused
/// branch can be NaN (the "double where" pattern), so the result differentiates cleanly under
/// `Autodiff` everywhere.
pub(crate) fn ww_rate<B: Backend>(y: Tensor<B, 2>, d: Tensor<B, 2>) -> Tensor<B, 2> {
    let z = d.clone() * y.clone();
    let small = z.clone().abs().lower_elem(SMALL_Z);
    // Direct branch, evaluated at a harmless z where the series is used instead.
    let z_safe = z.clone().mask_fill(small.clone(), 1.0);
    let direct = y / ((z_safe.neg()).exp().neg() + 1.0);
    // Series branch: z/(1-e^-z) = 1 + z/2 + z²/12 - z⁴/720 + ...
    let z2 = z.clone() * z.clone();
    let series = (z * 0.5 + z2.clone() * (1.0 / 12.0) - z2.clone() * z2 * (1.0 / 720.0) + 1.0) / d;
    direct.mask_where(small, series)
}

/// Point version of [`ww_rate`].
#[inline(always)]
pub(crate) fn ww_rate_point<T: Float>(y: T, d: T) -> T {
    let z = d * y;
    if z.abs() < k(SMALL_Z) {
        let z2 = z * z;
        (T::one() + z * k(0.5) + z2 * k(1.0 / 12.0) - z2 * z2 * k(1.0 / 720.0)) / d
    } else {
        y / (T::one() - (-z).exp())
    }
}

/// The logistic function `1 / (1 + exp(-x))`, written as `(1 + tanh(x / 2)) / 2`: the same
/// function, but it cannot overflow and its gradient is finite everywhere.
pub(crate) fn logistic<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    (x * 0.5).tanh() * 0.5 + 0.5
}

/// Point version of [`logistic`].
#[inline(always)]
pub(crate) fn logistic_point<T: Float>(x: T) -> T {
    let half = k::<T>(0.5);
    half + half * (half * x).tanh()
}
