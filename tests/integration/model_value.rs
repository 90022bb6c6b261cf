//! A model built from data at run time (its variables and its description made from a table,
//! not written as constants), registered with `neurodiff::model::register` and run through the
//! façade like a catalogue model: both engines, both gradient methods.

use std::sync::Arc;

use neurodiff::backend::BackendKind;
use neurodiff::connectome::Connectome;
use neurodiff::fit::LossKind;
use neurodiff::fused::GradOptions;
use neurodiff::models::{
    k, CouplingFunction, CouplingSpec, Model, ModelSpec, ParamSpec, Real, TimeUnit, VarSpec,
};
use neurodiff::problem::RunSpec;
use neurodiff::problem::{simulate_collect, value_and_grad, Engine, Gradient, Loss, Problem};

/// `dx_v/dt = −g r_v x_v (+ c on x_0)`, one variable per entry of the table `r`; `g` is the one
/// parameter. Its description has as many variables as the table has rows.
#[derive(Clone)]
struct DecayTable {
    rates: Arc<Vec<f64>>,
    spec: &'static ModelSpec,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

impl DecayTable {
    fn new(name: &str, rates: Vec<f64>) -> Self {
        let state: Vec<VarSpec> = (0..rates.len())
            .map(|v| VarSpec::new(leak(format!("x{v}")), "a.u.", 1.0, (-2.0, 2.0), "decaying"))
            .collect();
        let spec = ModelSpec {
            name: leak(name.to_string()),
            title: "decay table (test)",
            time_unit: TimeUnit::Ms,
            default_dt: 0.01,
            sample_period: None,
            state: Box::leak(state.into_boxed_slice()),
            params: Box::leak(Box::new([ParamSpec::new(
                "g",
                1.0,
                "1",
                0.0,
                10.0,
                "rate gain",
            )])),
            coupling: Box::leak(Box::new([CouplingSpec {
                name: "c",
                var: 0,
                sends: None,
                default_on: true,
                doc: "input to x0",
            }])),
            coupling_function: CouplingFunction::Linear,
            coupling_strength: 0.1,
            citation: "test",
        };
        Self {
            rates: Arc::new(rates),
            spec: Box::leak(Box::new(spec)),
        }
    }
}

impl Model for DecayTable {
    fn spec(&self) -> &'static ModelSpec {
        self.spec
    }

    fn tensor_key(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for r in self.rates.iter() {
            r.to_bits().hash(&mut h);
        }
        Some(h.finish())
    }

    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let g = p[0];
        for (v, &r) in self.rates.iter().enumerate() {
            dx[v] = -(g * k::<R>(r)) * x[v];
        }
        dx[0] = dx[0] + c[0];
    }
}

fn conn3() -> Connectome {
    Connectome::load("hcp80", None).unwrap().subset(&[0, 1, 2])
}

/// Uncoupled, without noise, Heun's method on `dx/dt = −a x` multiplies `x` by exactly
/// `1 − a h + (a h)²/2` per step: every sample of both engines must be that power.
#[test]
fn a_registered_data_model_runs_on_both_engines_as_heun_predicts() {
    let rates = vec![0.5, 2.0, 5.0];
    neurodiff::model::register(DecayTable::new("decay_table", rates.clone())).unwrap();
    let (g, h, every) = (1.3, 0.01, 10);
    let p = Problem::builder("decay_table", conn3())
        .param("g", g)
        .param("G", 0.0)
        .run(RunSpec {
            dt: Some(h),
            duration: 1.0,
            sample_every: every,
            record: vec![0, 1, 2],
            ..RunSpec::default()
        })
        .build()
        .unwrap();
    assert_eq!(p.spec().n_vars(), 3);
    for engine in [Engine::Fused, Engine::Tensor] {
        let (y, shape, done) = simulate_collect(&p, BackendKind::Ndarray64, engine).unwrap();
        assert_eq!(done.engine, engine);
        assert_eq!(shape, [10, 1, 3, 3]);
        for s in 0..shape[0] {
            let steps = (s + 1) * every;
            for (v, r) in rates.iter().enumerate() {
                let a = g * r * h;
                let want = (1.0 - a + 0.5 * a * a).powi(steps as i32);
                for node in 0..3 {
                    let got = y[(s * 3 + v) * 3 + node];
                    assert!(
                        (got - want).abs() < 1e-12,
                        "{engine}: sample {s}, x{v}, node {node}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// Coupled and noisy: the adjoint and autodiff give the same FC-loss gradient with respect to
/// `g` and `G`, and it matches central finite differences (f64).
#[test]
fn a_registered_data_model_has_gradients_by_both_methods() {
    neurodiff::model::register(DecayTable::new("decay_table_grad", vec![1.0, 3.0])).unwrap();
    let problem = |g: f64, coupling: f64| {
        Problem::builder("decay_table_grad", conn3())
            .param("g", g)
            .param("G", coupling)
            .run(RunSpec {
                dt: Some(0.01),
                duration: 3.0,
                noise_sigma: vec![0.3, 0.0],
                sample_every: 5,
                record: vec![0],
                chunk: Some(50),
                ..RunSpec::default()
            })
            .build()
            .unwrap()
    };
    let loss = Loss::Fc {
        target: vec![1.0, 0.2, 0.5, 0.2, 1.0, 0.1, 0.5, 0.1, 1.0],
        kind: LossKind::Corr,
    };
    let opts = GradOptions {
        chunk: 60,
        wrt: Some(vec!["g".into(), "G".into()]),
    };
    let (g0, c0) = (1.2, 2.0);
    let p = problem(g0, c0);
    let adj = value_and_grad(&p, &loss, Gradient::Adjoint, &opts, BackendKind::Ndarray64).unwrap();
    let ad = value_and_grad(&p, &loss, Gradient::Autodiff, &opts, BackendKind::Ndarray64).unwrap();
    assert!((adj.loss[0] - ad.loss[0]).abs() < 1e-10);
    let value = |g: f64, c: f64| {
        value_and_grad(
            &problem(g, c),
            &loss,
            Gradient::Adjoint,
            &opts,
            BackendKind::Ndarray64,
        )
        .unwrap()
        .loss[0]
    };
    let e = 1e-5;
    for (name, fd) in [
        ("g", (value(g0 + e, c0) - value(g0 - e, c0)) / (2.0 * e)),
        ("G", (value(g0, c0 + e) - value(g0, c0 - e)) / (2.0 * e)),
    ] {
        let k = p.params.index(name).unwrap();
        let a = adj.grads[k].as_ref().unwrap().values[0];
        let b = ad.grads[k].as_ref().unwrap().values[0];
        assert!(fd.abs() > 1e-6, "{name}: finite difference is zero");
        assert!(
            (a - fd).abs() < 1e-4 * fd.abs(),
            "{name}: adjoint {a} vs FD {fd}"
        );
        assert!(
            (b - fd).abs() < 1e-4 * fd.abs(),
            "{name}: autodiff {b} vs FD {fd}"
        );
    }
}

#[test]
fn registering_a_bad_model_names_the_problem() {
    let e = neurodiff::model::register(DecayTable::new("mpr", vec![1.0])).unwrap_err();
    assert!(e.to_string().contains("catalogue model"), "{e}");
    let mut bad = DecayTable::new("decay_table_bad", vec![1.0]);
    let mut spec = *bad.spec;
    spec.coupling = Box::leak(Box::new([CouplingSpec {
        name: "c",
        var: 4,
        sends: None,
        default_on: true,
        doc: "",
    }]));
    bad.spec = Box::leak(Box::new(spec));
    let e = neurodiff::model::register(bad).unwrap_err();
    assert!(e.to_string().contains("reads variable 4 of 1"), "{e}");
    let e = Problem::builder("decay_table_never_registered", conn3())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("unknown model"), "{e}");
}
