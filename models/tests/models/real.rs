//! The number trait `Real` itself: the tensor expression `Tx` against the scalar implementation
//! (`spike` and its surrogate gradient, `exp_safe`, `select`), `Tx`'s constant folding, and the
//! rule that a `Tx` lives only inside the `real::scope` that built it.

use burn::backend::NdArray;
use neurodiff_models::real::{scope, Tx, EXP_MAX};
use neurodiff_models::{k, Real};

use crate::common::{assert_close, tensor, values, Ad, B};

/// Points on both sides of the step, at it, and next to it.
const XS: [f64; 8] = [-3.0, -0.5, -1e-9, 0.0, 1e-9, 0.25, 0.7, 40.0];
const SHAPE: [usize; 2] = [2, 4];

/// The SuperSpike surrogate derivative of the step.
fn surrogate(x: f64, slope: f64) -> f64 {
    slope / (2.0 * (1.0 + slope * x.abs()).powi(2))
}

/// `x ↦ f(x)` on a `[2, 4]` tensor of `xs`, through `Tx<B>`, back as values.
fn on_tensor(xs: &[f64], f: impl Fn(Tx<B>) -> Tx<B>) -> Vec<f64> {
    values(scope(|| {
        f(Tx::new(tensor::<B>(xs, SHAPE))).tensor(SHAPE, &Default::default())
    }))
}

/// The value of `spike` is exactly the Heaviside step (0 at 0), on tensors, on constants, and on
/// `f64`/`f32`, which agree.
#[test]
fn spike_is_an_exact_step() {
    for slope in [0.5, 2.0, 10.0] {
        let got = on_tensor(&XS, |x| x.spike(slope));
        for (&x, &g) in XS.iter().zip(&got) {
            let want = if x > 0.0 { 1.0 } else { 0.0 };
            assert_eq!(g, want, "tensor spike({x})");
            assert_eq!(Real::spike(x, slope), want, "f64 spike({x})");
            assert_eq!(Real::spike(x as f32, slope), want as f32, "f32 spike({x})");
            assert_eq!(
                Tx::<B>::constant(x).spike(slope).as_const(),
                Some(want),
                "constant spike({x})"
            );
        }
    }
}

/// Under `Autodiff`, the gradient of `spike` is the surrogate `slope / (2 (1 + slope |x|)²)`
/// (the step's own derivative being zero almost everywhere), while the value stays the step.
#[test]
fn spike_has_the_surrogate_gradient() {
    for slope in [0.5, 2.0, 10.0] {
        let x = tensor::<Ad>(&XS, SHAPE).require_grad();
        let y = scope(|| {
            Tx::<Ad>::new(x.clone())
                .spike(slope)
                .tensor(SHAPE, &Default::default())
        });
        let grads = y.clone().sum().backward();
        let g = values(x.grad(&grads).expect("a gradient"));
        for (i, &xv) in XS.iter().enumerate() {
            assert_close(
                &format!("d spike({xv}) / dx, slope {slope}"),
                g[i],
                surrogate(xv, slope),
                1e-12,
                slope,
            );
        }
        let v = values(y);
        assert_eq!(v, on_tensor(&XS, |x| x.spike(slope)));
    }
}

/// `exp_safe` clamps its argument at `EXP_MAX`: finite at 100 in `f32` (where `exp` overflows),
/// on scalars and on `f32` tensors, equal to `exp` below the clamp, with zero gradient above it.
#[test]
fn exp_safe_does_not_overflow() {
    assert!(100f32.exp().is_infinite());
    let v = Real::exp_safe(100f32);
    assert!(v.is_finite() && v == (EXP_MAX as f32).exp(), "{v}");
    // f64's `exp` is the inlined one (`real::exp`, about 1 ulp from the system's).
    assert_eq!(Real::exp_safe(2.0f64), Real::exp(2.0f64));
    assert!((Real::exp_safe(2.0f64) - 2f64.exp()).abs() <= 2f64.exp() * f64::EPSILON);

    type B32 = NdArray<f32>;
    let t = values(scope(|| {
        Tx::<B32>::new(tensor::<B32>(&[100.0, 2.0], [1, 2]))
            .exp_safe()
            .tensor([1, 2], &Default::default())
    }));
    assert!(t[0].is_finite(), "{t:?}");
    assert!((t[0] / EXP_MAX.exp() - 1.0).abs() < 1e-6, "{t:?}");
    assert!((t[1] - 2f64.exp()).abs() < 1e-5, "{t:?}");

    let x = tensor::<Ad>(&[100.0, 2.0], [1, 2]).require_grad();
    let y = scope(|| {
        Tx::<Ad>::new(x.clone())
            .exp_safe()
            .tensor([1, 2], &Default::default())
    });
    let g = values(x.grad(&y.sum().backward()).unwrap());
    assert_eq!(g[0], 0.0);
    assert!((g[1] - 2f64.exp()).abs() < 1e-12);
}

/// Constants fold: a product with an exact 0 is the constant 0 (a switched-off coupling input
/// removes its term), `+ 0`, `- 0`, `* 1`, `/ 1` give back the same tensor handle (no new
/// tensor; the handle's `Debug` names its arena slot), and constant ∘ constant is computed on
/// the host.
#[test]
fn constants_fold() {
    scope(|| {
        let data = [1.0, -2.0, 3.5, 0.25];
        let t = Tx::<B>::new(tensor::<B>(&data, [2, 2]));
        assert_eq!(t.as_const(), None);
        assert_eq!((t * Tx::constant(0.0)).as_const(), Some(0.0));
        assert_eq!((Tx::constant(0.0) * t).as_const(), Some(0.0));
        assert_eq!((t * k(0.0) + k(1.5)).as_const(), Some(1.5));

        let same = |a: Tx<B>| {
            assert_eq!(format!("{a:?}"), format!("{t:?}"), "a new tensor was made");
            assert_eq!(values(a.tensor([2, 2], &Default::default())), data);
        };
        same(t + Tx::constant(0.0));
        same(Tx::constant(0.0) + t);
        same(t - k(0.0));
        same(t * Tx::constant(1.0));
        same(Tx::constant(1.0) * t);
        same(t / k(1.0));
        same(t.powi(1));
        // A real operation makes a new handle.
        assert_ne!(format!("{:?}", t + k(1.0)), format!("{t:?}"));

        let c = Tx::<B>::constant(2.0) * k(3.0) + k(1.0);
        assert_eq!(c.as_const(), Some(7.0));
        assert_eq!(
            Tx::<B>::constant(16.0).sqrt().recip().as_const(),
            Some(0.25)
        );
        assert_eq!(Tx::<B>::constant(-2.0).max(k(1.0)).as_const(), Some(1.0));
        // A constant expands to a full tensor when taken out.
        assert_eq!(values(c.tensor([2, 3], &Default::default())), vec![7.0; 6]);
    });
}

/// `select` on tensor masks (from tensor–constant, constant–tensor and tensor–tensor
/// comparisons) equals the `f64` `select` element by element, for tensor and constant branches.
#[test]
fn select_matches_scalar_select() {
    let xs = [-2.0, -0.5, 0.0, 0.5, 3.0, -1e-3];
    let a = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0];
    let b = [-0.1, 0.2, -0.3, 0.4, -0.5, 0.6];
    let shape = [2, 3];
    type Pick = fn(Tx<B>, Tx<B>) -> <Tx<B> as Real>::Mask;
    type PickF = fn(f64, f64) -> bool;
    let masks: [(&str, Pick, PickF); 3] = [
        ("x < 0", |x, _| x.lt(k(0.0)), |x, _| Real::lt(x, 0.0)),
        (
            "0.2 > x",
            |x, _| Tx::constant(0.2).gt(x),
            |x, _| Real::gt(0.2, x),
        ),
        ("x > b", |x, b| x.gt(b), |x, b| Real::gt(x, b)),
    ];
    for (what, mask, mask_f) in masks {
        for (ca, cb) in [
            (None, None),
            (Some(7.0), None),
            (None, Some(-7.0)),
            (Some(7.0), Some(-7.0)),
        ] {
            let got = values(scope(|| {
                let x = Tx::new(tensor::<B>(&xs, shape));
                let bt = Tx::new(tensor::<B>(&b, shape));
                let ta = ca.map_or_else(|| Tx::new(tensor::<B>(&a, shape)), Tx::constant);
                let tb = cb.map_or(bt, Tx::constant);
                Tx::select(mask(x, bt), ta, tb).tensor(shape, &Default::default())
            }));
            for i in 0..xs.len() {
                let (av, bv) = (ca.unwrap_or(a[i]), cb.unwrap_or(b[i]));
                let want = <f64 as Real>::select(mask_f(xs[i], b[i]), av, bv);
                assert_eq!(got[i], want, "{what}, branches {ca:?}/{cb:?}, element {i}");
            }
        }
    }
}

/// Scopes nest: an inner scope does not disturb the outer one's expressions.
#[test]
fn scopes_nest() {
    let v = values(scope(|| {
        let outer = Tx::<B>::new(tensor::<B>(&[1.0, 2.0], [1, 2]));
        let inner = values(scope(|| {
            (Tx::<B>::new(tensor::<B>(&[5.0, 6.0], [1, 2])) * k(2.0))
                .tensor([1, 2], &Default::default())
        }));
        assert_eq!(inner, vec![10.0, 12.0]);
        (outer + outer).tensor([1, 2], &Default::default())
    }));
    assert_eq!(v, vec![2.0, 4.0]);
}

/// A `Tx` taken out of its scope cannot be used: a panic, not a wrong tensor.
#[test]
#[should_panic(expected = "outside the `real::scope` that built it")]
fn a_tx_used_outside_its_scope_panics() {
    let t = scope(|| Tx::<B>::new(tensor::<B>(&[1.0], [1, 1])));
    let _ = t + t;
}

/// Nor inside another scope.
#[test]
#[should_panic(expected = "outside the `real::scope` that built it")]
fn a_tx_used_in_another_scope_panics() {
    let t = scope(|| Tx::<B>::new(tensor::<B>(&[1.0], [1, 1])));
    scope(|| {
        let _ = t.exp();
    });
}

/// And none can be built outside a scope.
#[test]
#[should_panic(expected = "built outside `real::scope`")]
fn a_tx_built_outside_a_scope_panics() {
    let _ = Tx::<B>::new(tensor::<B>(&[1.0], [1, 1]));
}

/// A keyed scope gives the same values as a plain one on its first (recording) run and on later
/// runs that move each intermediate out at its last read, including one read several times, an
/// input read twice and a value read by `select`; gradients too.
#[test]
fn keyed_scopes_replay_exactly() {
    use neurodiff_models::real::scope_keyed;
    let f = |x: Tx<B>| {
        let a = x * x; // read twice: by `a * x` and by `exp`
        let m = a.gt(k(0.2));
        let b = a * x + a.exp() - x;
        Tx::select(m, b, x * k(3.0))
    };
    let want = on_tensor(&XS, f);
    for _ in 0..3 {
        let got = values(scope_keyed(0xfeed, || {
            f(Tx::new(tensor::<B>(&XS, SHAPE))).tensor(SHAPE, &Default::default())
        }));
        assert_eq!(got, want);
    }
    // Under autodiff: the same gradient from a replayed scope.
    let grad = |key: Option<u64>| {
        let x = tensor::<Ad>(&XS, SHAPE).require_grad();
        let body = || {
            let t = Tx::<Ad>::new(x.clone());
            let a = t * t;
            (a * t + a.exp()).tensor(SHAPE, &Default::default())
        };
        let y = match key {
            Some(k) => scope_keyed(k, body),
            None => scope(body),
        };
        let g = y.sum().backward();
        values(x.grad(&g).expect("a gradient"))
    };
    let plain = grad(None);
    for _ in 0..3 {
        assert_eq!(grad(Some(0xbeef)), plain);
    }
}

/// A keyed scope that runs other operations than the first time with its key fails loudly.
#[test]
#[should_panic(expected = "keyed tensor scope")]
fn keyed_scope_with_other_operations_panics() {
    use neurodiff_models::real::scope_keyed;
    let run = |extra: bool| {
        scope_keyed(0xdead, || {
            let x = Tx::<B>::new(tensor::<B>(&[1.0, 2.0], [1, 2]));
            let y = if extra { x * x + x } else { x * k(2.0) };
            y.tensor([1, 2], &Default::default())
        })
    };
    run(false);
    run(true);
}
