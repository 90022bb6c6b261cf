//! Small numerical helpers shared by several models, written once over [`Real`].

use crate::{k, Real};

/// Below this `|z|`, `z / (1 - exp(-z))` is evaluated by its Taylor series (whose first omitted
/// term, `z^6 / 30240`, is then below 4e-17), which avoids both the 0/0 at `z = 0` and the
/// cancellation in `1 - exp(-z)` near it (in `f32` that cancellation alone costs about
/// `6e-8 / |z|` relative error, so 1e-2 keeps it near 1e-5).
pub(crate) const SMALL_Z: f64 = 1e-2;

/// The Wong–Wang transfer function `H = y / (1 - exp(-d y))`, which is continuous at `y = 0`
/// with `H(0) = 1/d`. Written with `z = d y` as `H = (1/d) z / (1 - exp(-z))`.
///
/// The direct branch is evaluated at a harmless `z` where the series is used instead (the
/// "double where" pattern), so that on tensors neither the value nor the gradient of the unused
/// branch can be NaN and the result differentiates cleanly everywhere.
#[inline(always)]
pub(crate) fn ww_rate<R: Real>(y: R, d: R) -> R {
    let z = d * y;
    let small = z.abs().lt(k(SMALL_Z));
    let z_safe = R::select(small, k(1.0), z);
    let direct = y / (k::<R>(1.0) - (-z_safe).exp());
    // Series branch: z/(1-e^-z) = 1 + z/2 + z²/12 - z⁴/720 + ...
    let z2 = z * z;
    let series = (k::<R>(1.0) + z * k(0.5) + z2 * k(1.0 / 12.0) - z2 * z2 * k(1.0 / 720.0)) / d;
    R::select(small, series, direct)
}

/// The logistic function `1 / (1 + exp(-x))`: [`Real::logistic`] (a `tanh` on tensors, a
/// clamped `exp` on numbers).
#[inline(always)]
pub(crate) fn logistic<R: Real>(x: R) -> R {
    x.logistic()
}
