//! The façade (`neurodiff::problem`): engine and gradient choice from one `capabilities()`,
//! typed `Unsupported` reasons, and the entry points checked against each other and against
//! finite differences.

use crate::common::*;
use neurodiff::backend::BackendKind;
use neurodiff::connectome::Connectome;
use neurodiff::fit::LossKind;
use neurodiff::fused::GradOptions;
use neurodiff::integrate::Integrator;
use neurodiff::network::NetworkConfig;
use neurodiff::noise::NoiseSource;
use neurodiff::params::ParamValue;
use neurodiff::problem::{
    simulate_collect, value_and_grad, Engine, Gradient, Loss, Problem, RunSpec,
};
use neurodiff::Error;

/// The first 12 regions of the bundled HCP connectome (small and fast).
fn conn12() -> Connectome {
    Connectome::load("hcp80", None)
        .unwrap()
        .subset(&(0..12).collect::<Vec<_>>())
}

/// MPR for 4 ms (400 steps of 0.01 ms) with noise, a sample every 10 steps.
fn mpr_noisy() -> RunSpec {
    RunSpec {
        dt: Some(0.01),
        duration: 4.0,
        noise_sigma: vec![0.01, 0.02],
        sample_every: 10,
        chunk: Some(64),
        ..RunSpec::default()
    }
}

#[test]
fn capabilities_choose_the_engine_and_name_what_is_missing() {
    let base = Problem::builder("mpr", conn12())
        .run(RunSpec {
            record: vec![0],
            ..mpr_noisy()
        })
        .build()
        .unwrap();
    // A plain problem: the fused engine on CPU backends, the tensor engine on GPUs.
    assert_eq!(
        base.engine_for(BackendKind::Ndarray, Engine::Auto).unwrap(),
        Engine::Fused
    );
    assert_eq!(
        base.engine_for(BackendKind::Wgpu, Engine::Auto).unwrap(),
        Engine::Tensor
    );
    let corr = Loss::Fc {
        target: vec![0.0; 144],
        kind: LossKind::Corr,
    };
    assert_eq!(
        base.gradient_for(&corr, Gradient::Auto).unwrap(),
        Gradient::Adjoint
    );

    // Device noise: the fused engine cannot draw it.
    let mut dev = base.clone();
    dev.run.noise.source = NoiseSource::Device;
    let caps = dev.capabilities();
    assert!(caps.tensor.is_ok() && caps.autodiff.is_ok());
    let u = caps.fused.unwrap_err();
    assert_eq!(u.engine, "fused");
    assert!(u.feature.contains("device"), "{u}");
    assert_eq!(
        dev.engine_for(BackendKind::Ndarray, Engine::Auto).unwrap(),
        Engine::Tensor
    );
    match dev.engine_for(BackendKind::Ndarray, Engine::Fused) {
        Err(Error::Unsupported(u)) => assert_eq!(u.engine, "fused"),
        other => panic!("expected Unsupported, got {other:?}"),
    }

    // Delays and exponential Euler: the adjoint lacks them, autodiff takes over under Auto.
    let delayed = Problem::builder("mpr", conn12())
        .network(NetworkConfig {
            speed: Some(5.0),
            ..NetworkConfig::new("mpr")
        })
        .run(mpr_noisy())
        .build()
        .unwrap();
    let u = delayed.capabilities().adjoint.unwrap_err();
    assert!(u.feature.contains("delays") && !u.hint.is_empty(), "{u}");
    assert_eq!(
        delayed.gradient_for(&corr, Gradient::Auto).unwrap(),
        Gradient::Autodiff
    );
    assert!(matches!(
        delayed.gradient_for(&corr, Gradient::Adjoint),
        Err(Error::Unsupported(_))
    ));
    let exp_euler = Problem::builder("mpr", conn12())
        .run(RunSpec {
            integrator: Integrator::ExpEuler,
            ..mpr_noisy()
        })
        .build()
        .unwrap();
    assert!(exp_euler
        .capabilities()
        .adjoint
        .unwrap_err()
        .feature
        .contains("exp_euler"));
    // Every scheme with a tableau has the adjoint.
    for integrator in [Integrator::Rk3, Integrator::Rk4] {
        let p = Problem::builder("mpr", conn12())
            .run(RunSpec {
                integrator,
                noise_sigma: Vec::new(),
                ..mpr_noisy()
            })
            .build()
            .unwrap();
        assert_eq!(p.capabilities().adjoint, Ok(()), "{integrator}");
    }
    // The loss counts too: the adjoint has the corr loss only.
    let mse = Loss::Fc {
        target: vec![0.0; 144],
        kind: LossKind::Mse,
    };
    assert_eq!(
        base.gradient_for(&mse, Gradient::Auto).unwrap(),
        Gradient::Autodiff
    );
    let msg = base
        .gradient_for(&mse, Gradient::Adjoint)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("adjoint") && msg.contains("hint:"), "{msg}");
}

#[test]
fn simulate_runs_the_same_problem_on_both_engines() {
    let p = Problem::builder("mpr", conn12())
        .param_value("G", ParamValue::Batch(vec![0.3, 0.9, 1.5]))
        .run(mpr_noisy())
        .build()
        .unwrap();
    assert_eq!(p.batch, 3);
    let (fused, shape_f, done_f) =
        simulate_collect(&p, BackendKind::Ndarray, Engine::Auto).unwrap();
    let (tensor, shape_t, done_t) =
        simulate_collect(&p, BackendKind::Ndarray, Engine::Tensor).unwrap();
    assert_eq!(done_f.engine, Engine::Fused);
    assert_eq!(done_t.engine, Engine::Tensor);
    assert_eq!(shape_f, shape_t);
    assert_eq!(shape_f, [40, 3, 2, 12]);
    assert_eq!(fused.len(), shape_f.iter().product::<usize>());
    let d = rel_diff(&fused, &tensor);
    assert!(d < 1e-4, "fused vs tensor through the façade: {d}");
    let d = rel_diff(&done_f.final_state, &done_t.final_state);
    assert!(d < 1e-4, "final states: {d}");
    // The batch elements differ (different G), so the comparison is not vacuous.
    let n = 12 * 2;
    assert!(rel_diff(&fused[..n], &fused[2 * n..3 * n]) > 1e-3);
}

#[test]
fn initial_state_and_loss_shapes_are_checked() {
    let p = Problem::builder("mpr", conn12())
        .run(mpr_noisy())
        .build()
        .unwrap();
    let e = p.clone().with_initial_state(1, vec![0.0; 5]).unwrap_err();
    assert!(e.to_string().contains("initial-state"), "{e}");
    let e = p
        .clone()
        .with_initial_state(1, vec![f64::NAN; 24])
        .unwrap_err();
    assert!(e.to_string().contains("not finite"), "{e}");
    let bad = Loss::Fc {
        target: vec![0.0; 10],
        kind: LossKind::Corr,
    };
    let mut one = p.clone();
    one.run.monitor.vars = vec![0];
    let e = value_and_grad(
        &one,
        &bad,
        Gradient::Auto,
        &GradOptions::default(),
        BackendKind::Ndarray,
    )
    .unwrap_err();
    assert!(e.to_string().contains("target FC has 10 entries"), "{e}");
    let e = Problem::builder("mpr", conn12())
        .param("tau", -1.0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("`tau`"), "{e}");
}

/// Adjoint and autodiff through the façade give the same loss and gradient, and both match
/// central finite differences of the loss (f64, the noise realisation fixed by the seed).
#[test]
fn value_and_grad_methods_agree_with_finite_differences() {
    let conn = conn12();
    let n = conn.n;
    // A target FC: the structural weights, symmetrised (any non-constant matrix will do).
    let w = &conn.weights;
    let target: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if i == j {
                1.0
            } else {
                0.5 * (w[i * n + j] + w[j * n + i])
            }
        })
        .collect();
    let loss = Loss::Fc {
        target,
        kind: LossKind::Corr,
    };
    let problem = |g: f64, eta: f64| {
        Problem::builder("mpr", conn.clone())
            .param("G", g)
            .param("eta", eta)
            .run(RunSpec {
                dt: Some(0.01),
                duration: 6.0,
                noise_sigma: vec![0.02, 0.04],
                sample_every: 10,
                record: vec![0],
                chunk: Some(100),
                ..RunSpec::default()
            })
            .build()
            .unwrap()
    };
    let opts = GradOptions {
        chunk: 150,
        wrt: Some(vec!["G".into(), "eta".into()]),
    };
    let (g0, eta0) = (0.8, -4.6);
    let p = problem(g0, eta0);
    let k_g = p.params.index("G").unwrap();
    let k_eta = p.params.index("eta").unwrap();
    let adj = value_and_grad(&p, &loss, Gradient::Adjoint, &opts, BackendKind::Ndarray64).unwrap();
    let ad = value_and_grad(&p, &loss, Gradient::Autodiff, &opts, BackendKind::Ndarray64).unwrap();
    assert_eq!(adj.gradient, Gradient::Adjoint);
    assert_eq!(ad.gradient, Gradient::Autodiff);
    assert_eq!(adj.shape, ad.shape);
    assert!(
        (adj.loss[0] - ad.loss[0]).abs() < 1e-9,
        "{:?} {:?}",
        adj.loss,
        ad.loss
    );
    // Only the parameters asked for.
    let others = (0..p.params.specs.len()).filter(|&k| k != k_g && k != k_eta);
    for k in others {
        assert!(adj.grads[k].is_none() && ad.grads[k].is_none());
    }
    let value = |g: f64, eta: f64| {
        value_and_grad(
            &problem(g, eta),
            &loss,
            Gradient::Adjoint,
            &opts,
            BackendKind::Ndarray64,
        )
        .unwrap()
        .loss[0]
    };
    for (k, h, fd) in [
        (
            k_g,
            1e-5,
            (value(g0 + 1e-5, eta0) - value(g0 - 1e-5, eta0)) / 2e-5,
        ),
        (
            k_eta,
            1e-5,
            (value(g0, eta0 + 1e-5) - value(g0, eta0 - 1e-5)) / 2e-5,
        ),
    ] {
        let a = adj.grads[k].as_ref().unwrap().values[0];
        let b = ad.grads[k].as_ref().unwrap().values[0];
        assert!(fd.abs() > 1e-6, "finite difference (h = {h}) is zero: {fd}");
        assert!(
            (a - fd).abs() < 1e-4 * fd.abs().max(1e-3),
            "adjoint {a} vs FD {fd}"
        );
        assert!(
            (b - fd).abs() < 1e-4 * fd.abs().max(1e-3),
            "autodiff {b} vs FD {fd}"
        );
    }
}

/// A monitor whose own carry diverges (haemodynamics driven far outside their range while the
/// neural state stays finite) stops the run and names the monitor's variable, in both engines.
#[test]
fn a_diverging_monitor_is_reported_by_name() {
    use neurodiff::monitor::BoldMonitor;
    // gamma = 0 and no coupling: x stays at -1e4, a drive BOLD's flow cannot follow.
    let mut p = Problem::builder("linear", conn12())
        .param("gamma", 0.0)
        .param("G", 0.0)
        .run(RunSpec {
            dt: Some(0.1),
            duration: 2000.0,
            sample_every: 100,
            ..RunSpec::default()
        })
        .build()
        .unwrap()
        .with_initial_state(1, vec![-1e4; 12])
        .unwrap();
    let unit = p.spec().time_unit;
    p.run.monitor.bold = Some(BoldMonitor::for_model(unit, 0.1, 0, 0.01, Some(100)));
    for engine in [Engine::Tensor, Engine::Fused] {
        let e = match simulate_collect(&p, BackendKind::Ndarray, engine) {
            Ok((_, shape, _)) => panic!("{engine:?}: ran to the end ({shape:?} samples)"),
            Err(e) => e,
        };
        let msg = e.to_string();
        assert!(
            matches!(e, Error::Diverged { .. }) && msg.contains("BOLD"),
            "{engine:?}: {msg}"
        );
    }
}
