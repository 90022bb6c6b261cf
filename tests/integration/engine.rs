//! The simulation engine against independent facts: convergence orders of the integrators on a
//! linear ODE with a known solution, the analytic MPR fixed point, batch = separate runs,
//! seeded noise, agreement between backends, and divergence reports.

use crate::common::*;
use burn::prelude::{Backend, Tensor};
use neurodiff::integrate::{Integrator, VectorField};
use neurodiff::params::ParamValue;
use neurodiff::sim::{simulate_collect, Run};
use neurodiff::Error;

/// The harmonic oscillator x' = y, y' = -x: exact solution x = cos t, y = -sin t from (1, 0).
struct Harmonic;

impl<B: Backend> VectorField<B> for Harmonic {
    fn eval(&self, x: &[Tensor<B, 2>]) -> Vec<Tensor<B, 2>> {
        vec![x[1].clone(), x[0].clone().neg()]
    }
    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
        x
    }
}

fn harmonic_error(integrator: Integrator, dt: f64) -> f64 {
    let d = Default::default();
    let t_end = 2.0;
    let n = (t_end / dt).round() as usize;
    let mut x: Vec<Tensor<Nd64, 2>> = vec![
        Tensor::ones([1, 1], neurodiff::float_opts::<Nd64>(&d)),
        Tensor::zeros([1, 1], neurodiff::float_opts::<Nd64>(&d)),
    ];
    for _ in 0..n {
        x = integrator.step(&Harmonic, x, dt, &[]);
    }
    let xs: f64 = x[0].clone().into_scalar();
    let ys: f64 = x[1].clone().into_scalar();
    ((xs - t_end.cos()).powi(2) + (ys + t_end.sin()).powi(2)).sqrt()
}

#[test]
fn integrators_converge_at_their_order() {
    for integrator in Integrator::ALL {
        // Steps where the error is well above f64 round-off and in the asymptotic regime.
        let (h1, h2) = match integrator {
            Integrator::Rk4 => (0.1, 0.05),
            _ => (0.01, 0.005),
        };
        let (e1, e2) = (
            harmonic_error(integrator, h1),
            harmonic_error(integrator, h2),
        );
        let order = (e1 / e2).log2();
        let expect = integrator.order() as f64;
        assert!(
            (order - expect).abs() < 0.15,
            "{}: measured order {order:.3}, expected {expect} (errors {e1:e}, {e2:e})",
            integrator.name()
        );
    }
}

/// The fixed point of one uncoupled MPR node (tau = 1, I = 0): dr = 0 gives r = -Delta/(2 pi V),
/// and substituting into dV = 0 gives g(V) = V^2 + eta + J r - pi^2 r^2 = 0, solved here by
/// bisection on V < 0.
fn mpr_fixed_point(eta: f64, delta: f64, j: f64) -> (f64, f64) {
    let pi = std::f64::consts::PI;
    let r_of = |v: f64| -delta / (2.0 * pi * v);
    let g = |v: f64| {
        let r = r_of(v);
        v * v + eta + j * r - pi * pi * r * r
    };
    // The low-activity branch: bracket the root nearest the resting potential.
    let (mut lo, mut hi) = (-10.0, -0.05);
    // Walk from very negative V up until g changes sign.
    let mut prev = lo;
    let mut v = lo;
    while v < hi {
        v += 0.001;
        if g(prev).signum() != g(v).signum() {
            lo = prev;
            hi = v;
            break;
        }
        prev = v;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if g(lo).signum() == g(mid).signum() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let v = 0.5 * (lo + hi);
    (r_of(v), v)
}

#[test]
fn uncoupled_mpr_relaxes_to_the_analytic_fixed_point() {
    let d = Default::default();
    let (net, _) = mpr_net::<Nd64>(&d);
    for eta in [-5.0, -6.5] {
        let (p, batch) = params(
            &net,
            &[
                ("G", ParamValue::Scalar(0.0)),
                ("eta", ParamValue::Scalar(eta)),
            ],
            &d,
        );
        let r = run(50_000, Integrator::Heun, 0.0, 0, 50_000);
        let (out, _) = sim(&net, &p, batch, &r, &d);
        let (r_star, v_star) = mpr_fixed_point(eta, 1.0, 15.0);
        for node in [0, 37, 79] {
            let (rs, vs) = (out[node] as f64, out[80 + node] as f64);
            assert!(
                (rs - r_star).abs() < 1e-5 && (vs - v_star).abs() < 1e-4,
                "eta {eta}, node {node}: simulated (r, V) = ({rs}, {vs}), analytic ({r_star}, \
                 {v_star})"
            );
        }
    }
}

fn batch_equals_separate_runs<B: Backend>() {
    let d = Default::default();
    let (net, _) = mpr_net::<B>(&d);
    let gs = [0.2, 0.55, 0.9];
    let etas = [-5.0, -4.6, -4.8];
    let r = run(3000, Integrator::Heun, 0.0, 0, 10);
    let (p, batch) = params(
        &net,
        &[
            ("G", ParamValue::Batch(gs.to_vec())),
            ("eta", ParamValue::Batch(etas.to_vec())),
        ],
        &d,
    );
    assert_eq!(batch, 3);
    let (all, shape) = sim(&net, &p, batch, &r, &d);
    let [samples, _, vars, nodes] = shape;
    for b in 0..3 {
        let (p1, _) = params(
            &net,
            &[
                ("G", ParamValue::Scalar(gs[b])),
                ("eta", ParamValue::Scalar(etas[b])),
            ],
            &d,
        );
        let (one, _) = sim(&net, &p1, 1, &r, &d);
        let mut from_batch = Vec::new();
        for s in 0..samples {
            let base = (s * 3 + b) * vars * nodes;
            from_batch.extend_from_slice(&all[base..base + vars * nodes]);
        }
        let diff = rel_diff(&one, &from_batch);
        assert!(diff < 1e-5, "batch element {b}: relative difference {diff}");
    }
}

fn noise_is_seeded_and_per_batch_element<B: Backend>() {
    let d = Default::default();
    let (net, _) = mpr_net::<B>(&d);
    let (p2, _) = params(&net, &[("G", ParamValue::Batch(vec![0.5, 0.5]))], &d);
    let (p3, _) = params(&net, &[("G", ParamValue::Batch(vec![0.5, 0.5, 0.5]))], &d);
    let r = run(500, Integrator::Heun, 0.05, 7, 50);
    let (a, _) = sim(&net, &p2, 2, &r, &d);
    let (b, _) = sim(&net, &p2, 2, &r, &d);
    assert_eq!(a, b, "same seed must give the same result");
    let (c, _) = sim(&net, &p2, 2, &run(500, Integrator::Heun, 0.05, 8, 50), &d);
    assert!(
        rel_diff(&a, &c) > 1e-3,
        "a different seed must give a different result"
    );
    // Two batch elements with equal parameters still get independent noise...
    let per = 2 * 80;
    assert!(rel_diff(&a[..per], &a[per..2 * per]) > 1e-3);
    // ...and batch element k's noise does not depend on the batch size.
    let (e, _) = sim(&net, &p3, 3, &r, &d);
    for s in 0..10 {
        for k in 0..2 {
            let x = &a[(s * 2 + k) * per..(s * 2 + k + 1) * per];
            let y = &e[(s * 3 + k) * per..(s * 3 + k + 1) * per];
            assert!(rel_diff(x, y) < 1e-6, "sample {s}, element {k}");
        }
    }
    // The result does not depend on the chunk length.
    let mut r2 = r.clone();
    r2.chunk = 37;
    let (f, _) = sim(&net, &p2, 2, &r2, &d);
    assert!(rel_diff(&a, &f) < 1e-6);
}

fn noise_increments_have_the_right_variance<B: Backend>() {
    // With f = 0 (an uncoupled node held at a fixed point would still have drift), use the
    // Euler step on a zero field: x_{n+1} = x_n + sigma sqrt(dt) xi.
    struct Zero;
    impl<B: Backend> VectorField<B> for Zero {
        fn eval(&self, x: &[Tensor<B, 2>]) -> Vec<Tensor<B, 2>> {
            x.iter().map(|t| t.zeros_like()).collect()
        }
        fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
            x
        }
    }
    let d = Default::default();
    let r: Run = run(1, Integrator::Euler, 0.3, 11, 1);
    let noise = r.noise.chunk::<B>(0, 200, 4, 80, 0.04, &d);
    let mut incs = Vec::new();
    for s in 0..200 {
        let x0 = vec![Tensor::<B, 2>::zeros([4, 80], neurodiff::float_opts::<B>(&d)); 2];
        let x1 = Integrator::Euler.step(&Zero, x0, 0.04, noise.step(s));
        incs.extend(neurodiff::sim::to_host(x1[1].clone()));
    }
    let n = incs.len() as f64;
    let mean = incs.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = incs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let expect = 0.3f64.powi(2) * 0.04; // sigma^2 dt
                                        // 64,000 samples: relative standard error of the variance ~ sqrt(2/n) = 0.6 %.
    assert!(mean.abs() < 4.0 * (expect / n).sqrt(), "mean {mean}");
    assert!(
        (var / expect - 1.0).abs() < 0.03,
        "variance {var}, expected {expect}"
    );
}

backend_tests!(
    batch_equals_separate_runs,
    noise_is_seeded_and_per_batch_element,
    noise_increments_have_the_right_variance
);

#[test]
fn ndarray_and_flex_agree() {
    let r = run(2000, Integrator::Heun, 0.02, 3, 20);
    let go = |backend: &str| -> Vec<f32> {
        match backend {
            "ndarray" => {
                let d = Default::default();
                let (net, _) = mpr_net::<Nd>(&d);
                let (p, b) = params(&net, &[("G", ParamValue::Batch(vec![0.3, 0.8]))], &d);
                sim(&net, &p, b, &r, &d).0
            }
            _ => {
                let d = Default::default();
                let (net, _) = mpr_net::<Flex>(&d);
                let (p, b) = params(&net, &[("G", ParamValue::Batch(vec![0.3, 0.8]))], &d);
                sim(&net, &p, b, &r, &d).0
            }
        }
    };
    let diff = rel_diff(&go("ndarray"), &go("flex"));
    assert!(diff < 1e-4, "ndarray vs flex: relative difference {diff}");
}

#[test]
fn f32_agrees_with_f64() {
    let r = run(2000, Integrator::Heun, 0.02, 3, 20);
    let d = Default::default();
    let (n32, _) = mpr_net::<Nd>(&d);
    let (p, b) = params(&n32, &[("G", ParamValue::Scalar(0.7))], &d);
    let a = sim(&n32, &p, b, &r, &d).0;
    let (n64, _) = mpr_net::<Nd64>(&d);
    let (p, b) = params(&n64, &[("G", ParamValue::Scalar(0.7))], &d);
    let c = sim(&n64, &p, b, &r, &d).0;
    let diff = rel_diff(&c, &a);
    assert!(diff < 1e-4, "f32 vs f64: relative difference {diff}");
}

#[test]
fn divergence_names_step_node_and_variable() {
    let d = Default::default();
    let (net, _) = mpr_net::<Nd>(&d);
    // Strong excitation with a far too large step blows up within a few steps.
    let (p, batch) = params(
        &net,
        &[
            ("eta", ParamValue::Scalar(50.0)),
            ("G", ParamValue::Batch(vec![0.0, 5.0])),
        ],
        &d,
    );
    let mut r = run(5000, Integrator::Euler, 0.0, 0, 1);
    r.dt = 0.5;
    let err = simulate_collect(&net, &p, net.initial_state(batch, &d), &r).unwrap_err();
    match &err {
        Error::Diverged {
            step,
            var,
            node,
            batch,
            ..
        } => {
            assert!(*step >= 1 && *step < 100, "step {step}");
            assert!(var == "r" || var == "V");
            assert!(*node < 80 && *batch < 2);
            // Re-run to the step before: everything must still be finite there.
            let mut r2 = r.clone();
            r2.steps = step - 1;
            if r2.steps > 0 {
                let ok = simulate_collect(&net, &p, net.initial_state(2, &d), &r2);
                assert!(
                    ok.is_ok(),
                    "state was already non-finite before step {step}"
                );
            }
        }
        e => panic!("expected a divergence error, got {e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("step") && msg.contains("node") && msg.contains("variable"),
        "{msg}"
    );
}

/// Exponential Euler follows the linear model's exact solution `x(t) = x(0) e^{γt}` at any step
/// (here `γ dt = −5`, where Euler's factor `1 + γ dt = −4` would blow up), and the façade runs
/// it on the tensor engine: the fused engine refuses it with a typed reason.
#[test]
fn exponential_euler_is_exact_on_the_linear_model() {
    use neurodiff::backend::BackendKind;
    use neurodiff::problem::{simulate_collect, Engine, Problem, RunSpec};
    let conn = neurodiff::connectome::Connectome::load("hcp80", None)
        .unwrap()
        .subset(&[0, 1, 2]);
    let (gamma, dt, steps) = (-10.0, 0.5, 4usize);
    let x0 = [1.0, -0.5, 2.0];
    for (scheme, exact) in [(Integrator::ExpEuler, true), (Integrator::Euler, false)] {
        let p = Problem::builder("linear", conn.clone())
            .param("gamma", gamma)
            .param("G", 0.0)
            .run(RunSpec {
                dt: Some(dt),
                duration: dt * steps as f64,
                integrator: scheme,
                sample_every: 1,
                ..RunSpec::default()
            })
            .build()
            .unwrap()
            .with_initial_state(1, x0.to_vec())
            .unwrap();
        let caps = p.capabilities();
        assert_eq!(caps.fused.is_err(), scheme == Integrator::ExpEuler);
        let (y, shape, done) = simulate_collect(&p, BackendKind::Ndarray64, Engine::Auto).unwrap();
        assert_eq!(shape, [steps, 1, 1, 3]);
        if scheme == Integrator::ExpEuler {
            assert_eq!(done.engine, Engine::Tensor);
        }
        let worst = (0..steps)
            .flat_map(|k| (0..3).map(move |i| (k, i)))
            .map(|(k, i)| {
                let want = x0[i] * (gamma * dt * (k + 1) as f64).exp();
                (y[k * 3 + i] - want).abs() / x0[i].abs()
            })
            .fold(0.0, f64::max);
        if exact {
            // f32 output: relative error at f32 rounding.
            assert!(worst < 1e-6, "exp_euler: worst relative error {worst:e}");
        } else {
            assert!(
                worst > 1.0,
                "euler at γdt = −5 should be far off: {worst:e}"
            );
        }
    }
}
