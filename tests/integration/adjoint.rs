//! The fused engine's discrete adjoint against the tensor engine's checkpointed autodiff
//! (`grad::value_and_grad` on NdArray f64), against central finite differences, and across
//! chunk lengths: MPR with noise and the FC loss, Hopf with difference coupling (two sent
//! quantities, held coupling), Jansen–Rit with its sigmoidal coupling and custom sent quantity,
//! Wilson–Cowan with a temporal-mean monitor; global, per-batch and per-region parameters.

use crate::common::*;
use burn::backend::Autodiff;
use burn::prelude::{Backend, Tensor, TensorData};
use neurodiff::connectome::Connectome;
use neurodiff::coupling::CouplingKind;
use neurodiff::fused::{
    fc_corr_loss, value_and_grad_fused_in, FusedValueAndGrad, GradOptions, HostLoss,
};
use neurodiff::fused::{FusedRun, Real};
use neurodiff::grad::value_and_grad;
use neurodiff::integrate::Integrator;
use neurodiff::network::{param_specs, Network, NetworkConfig};
use neurodiff::noise::NoiseMode;
use neurodiff::observe::fc;
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::sim::Run;

type Ad = Autodiff<Nd64>;

/// A gradient problem: network, parameters, run, initial state `[vars, nodes]`, loss.
struct Setup {
    conn: Connectome,
    cfg: NetworkConfig,
    table: ParamTable,
    run: Run,
    x0: Vec<f64>,
    loss: Loss,
}

#[derive(Clone, Copy)]
enum Loss {
    /// 1 − corr(FC of recorded variable 0, empirical FC).
    Fc,
    /// `Σ w (y − 0.1)²` with a fixed pattern of weights.
    Quad,
}

fn weights(shape: [usize; 4]) -> Vec<f64> {
    let [t, _, v, n] = shape;
    (0..t * v * n)
        .map(|k| 1.0 + 0.5 * (k as f64 * 0.37).sin())
        .collect()
}

fn emp() -> Vec<f64> {
    neurodiff::connectome::bundled_fc_hcp80().data
}

fn host_loss(kind: Loss) -> Box<HostLoss<'static>> {
    match kind {
        Loss::Fc => {
            let e = emp();
            Box::new(move |y: &[f64], shape: [usize; 4]| Ok(fc_corr_loss(y, shape, 0, &e)))
        }
        Loss::Quad => Box::new(|y: &[f64], shape: [usize; 4]| {
            let [t, b, v, n] = shape;
            let w = weights(shape);
            let mut l = vec![0.0; b];
            let mut g = vec![0.0; y.len()];
            #[allow(clippy::needless_range_loop)]
            for k in 0..t {
                for bb in 0..b {
                    for q in 0..v * n {
                        let at = (k * b + bb) * v * n + q;
                        let wk = w[k * v * n + q];
                        l[bb] += wk * (y[at] - 0.1).powi(2);
                        g[at] = 2.0 * wk * (y[at] - 0.1);
                    }
                }
            }
            Ok((l, g))
        }),
    }
}

fn burn_loss<B: Backend>(kind: Loss, y: Tensor<B, 4>) -> Tensor<B, 1> {
    let [t, r, v, n] = y.dims();
    let d = y.device();
    match kind {
        Loss::Fc => {
            let x = y.narrow(2, 0, 1).swap_dims(0, 1).reshape([r, t, n]);
            let e = Tensor::<B, 2>::from_data(
                TensorData::new(emp(), [n, n]),
                neurodiff::float_opts::<B>(&d),
            );
            neurodiff_optim::fc_corr_loss(fc(x), e).unwrap()
        }
        Loss::Quad => {
            let w = Tensor::<B, 4>::from_data(
                TensorData::new(weights([t, r, v, n]), [t, 1, v, n]),
                neurodiff::float_opts::<B>(&d),
            );
            ((y - 0.1).powi_scalar(2) * w)
                .sum_dim(0)
                .sum_dim(2)
                .sum_dim(3)
                .reshape([r])
        }
    }
}

fn setup(
    model: &str,
    coupling: Option<CouplingKind>,
    given: &[(&str, ParamValue)],
    run: Run,
    loss: Loss,
) -> Setup {
    let conn = Connectome::load("hcp80", None).unwrap();
    let spec = neurodiff::models::find(model).unwrap();
    let mut cfg = NetworkConfig::new(model);
    cfg.coupling = coupling;
    let kind = coupling.unwrap_or_else(|| spec.coupling_function.into());
    let given: Vec<(String, ParamValue)> = given
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    let table = ParamTable::new(&param_specs(spec, kind), &given, conn.n, None).unwrap();
    // Heterogeneous initial state: each variable at its initial value, perturbed per node.
    let x0 = spec
        .state
        .iter()
        .flat_map(|v| {
            let (lo, hi) = v.range;
            (0..conn.n).map(move |i| v.initial + 0.05 * (hi - lo) * ((i as f64 * 1.3).sin()))
        })
        .collect();
    Setup {
        conn,
        cfg,
        table,
        run,
        x0,
        loss,
    }
}

fn adjoint<T: Real>(s: &Setup, chunk: usize) -> FusedValueAndGrad {
    let fr = FusedRun {
        connectome: &s.conn,
        network: &s.cfg,
        params: &s.table,
        x0: &s.x0,
        x0_rows: 1,
        batch: s.table.batch,
        run: &s.run,
        threads: 2,
    };
    let loss = host_loss(s.loss);
    value_and_grad_fused_in(
        std::mem::size_of::<T>() == 8,
        &fr,
        &GradOptions { chunk, wrt: None },
        &*loss,
    )
    .unwrap()
}

/// The tensor engine's checkpointed gradient: (loss per batch element, gradient per parameter).
fn burn(s: &Setup, chunk: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let d = Default::default();
    let net = Network::<Ad>::build(&s.cfg, &s.conn, s.run.dt, &d).unwrap();
    let net_in = Network::<Nd64>::build(&s.cfg, &s.conn, s.run.dt, &d).unwrap();
    let params = s.table.tensors::<Nd64>(&d);
    let n = s.conn.n;
    let b = s.table.batch;
    let x0: Vec<Tensor<Nd64, 2>> =
        s.x0.chunks(n)
            .map(|v| {
                let rows: Vec<f64> = (0..b).flat_map(|_| v.iter().copied()).collect();
                Tensor::from_data(
                    TensorData::new(rows, [b, n]),
                    neurodiff::float_opts::<Nd64>(&d),
                )
            })
            .collect();
    let kind = s.loss;
    let loss = move |y: Tensor<Ad, 4>| burn_loss(kind, y);
    let g = value_and_grad(&net, &net_in, &params, x0, &s.run, chunk, &loss).unwrap();
    let host = |t: Tensor<Nd64, 2>| t.into_data().convert::<f64>().into_vec::<f64>().unwrap();
    (
        g.loss
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .unwrap(),
        g.grads.into_iter().map(host).collect(),
    )
}

/// Largest relative difference over the parameters, each parameter's gradient compared with the
/// largest magnitude of its own reference gradient (floored at 1e-9 of the largest overall).
fn grad_diff(s: &Setup, a: &FusedValueAndGrad, b: &[Vec<f64>]) -> (f64, String) {
    let overall = b
        .iter()
        .flatten()
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    let mut worst = (0.0, String::new());
    for (k, (ga, gb)) in a.grads.iter().zip(b).enumerate() {
        let ga = &ga.as_ref().expect("every parameter differentiated").values;
        assert_eq!(ga.len(), gb.len(), "shape of {}", s.table.specs[k].name);
        let scale = gb
            .iter()
            .fold(0f64, |m, v| m.max(v.abs()))
            .max(1e-9 * overall);
        let d = ga
            .iter()
            .zip(gb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
            / scale;
        if d > worst.0 {
            worst = (d, s.table.specs[k].name.to_string());
        }
    }
    worst
}

/// Checks the adjoint in f64 and f32 against the tensor engine's f64 gradient. Where the
/// dynamics amplify rounding, the two engines' discrete maps (different summation and operation
/// orders, each differentiated exactly) give gradients that differ by more than rounding: the
/// difference between two chunkings of the tensor engine itself is printed for scale.
fn check_against_burn(s: &Setup, chunk: usize, tol64: f64, tol32: f64) {
    let (l_ref, g_ref) = burn(s, 100);
    let (_, g_ref2) = burn(s, 37);
    let self_diff = g_ref
        .iter()
        .zip(&g_ref2)
        .map(|(a, b)| {
            let scale = a.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs() / scale)
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max);
    println!("tensor engine, chunks of 100 vs 37: {self_diff:e}");
    assert!(
        g_ref.iter().flatten().any(|v| v.abs() > 1e-10),
        "zero gradient"
    );
    let a = adjoint::<f64>(s, chunk);
    let dl = a
        .loss
        .iter()
        .zip(&l_ref)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-12))
        .fold(0.0, f64::max);
    assert!(
        dl < 1e-9,
        "f64 loss differs by {dl}: {:?} vs {l_ref:?}",
        a.loss
    );
    let (d, name) = grad_diff(s, &a, &g_ref);
    println!("f64: worst relative difference {d:e} ({name})");
    assert!(d <= tol64, "f64 gradient differs by {d:e} (worst: {name})");
    let a32 = adjoint::<f32>(s, chunk);
    let (d, name) = grad_diff(s, &a32, &g_ref);
    println!("f32: worst relative difference {d:e} ({name})");
    assert!(d <= tol32, "f32 gradient differs by {d:e} (worst: {name})");
}

fn eta_regional() -> ParamValue {
    ParamValue::Regional {
        rows: 1,
        values: (0..80).map(|i| -4.8 - 0.003 * i as f64).collect(),
    }
}

fn run_r(steps: usize, integrator: Integrator, sigma: f64, seed: u64, every: usize) -> Run {
    let mut r = run(steps, integrator, sigma, seed, every);
    r.monitor.vars = vec![0];
    r
}

#[test]
fn mpr_heun_noise_fc_loss_matches_burn() {
    let s = setup(
        "mpr",
        None,
        &[
            ("G", ParamValue::Batch(vec![0.4, 0.8])),
            ("eta", eta_regional()),
        ],
        run_r(1500, Integrator::Heun, 0.01, 4, 10),
        Loss::Fc,
    );
    // Measured: 2.4e-8 (eta, relative to the largest regional entry).
    check_against_burn(&s, 128, 1e-7, 1e-4);
}

#[test]
fn mpr_euler_per_batch_and_region_matches_burn() {
    let eta: Vec<f64> = (0..160).map(|i| -4.9 + 0.002 * i as f64).collect();
    let s = setup(
        "mpr",
        None,
        &[
            ("G", ParamValue::Scalar(0.6)),
            (
                "eta",
                ParamValue::Regional {
                    rows: 2,
                    values: eta,
                },
            ),
            ("J", ParamValue::Batch(vec![14.0, 15.5])),
        ],
        run(1000, Integrator::Euler, 0.02, 11, 7),
        Loss::Quad,
    );
    check_against_burn(&s, 64, 1e-8, 1e-4);
}

/// Every scheme with a tableau (the list the engine-agreement tests iterate over): MPR, which
/// projects (`r ≥ 0`) and has hand-written VJPs, Jansen–Rit, differentiated by dual numbers
/// through its sigmoidal coupling and custom sent quantity, and Hopf with the coupling held over
/// the step; the sweep reads each tableau backwards, so a wrong weight or stage coefficient
/// shows against autodiff.
#[test]
fn every_tableau_scheme_matches_burn() {
    for integrator in Integrator::ALL {
        if integrator.tableau().is_none() {
            continue;
        }
        println!("{integrator}: mpr");
        let s = setup(
            "mpr",
            None,
            &[
                ("G", ParamValue::Batch(vec![0.5, 0.9])),
                ("eta", eta_regional()),
            ],
            run_r(300, integrator, 0.0, 0, 10),
            Loss::Fc,
        );
        // Measured: 5.2e-8 (f64), up to 9.9e-5 (f32, Heun).
        check_against_burn(&s, 64, 1e-7, 3e-4);
        println!("{integrator}: jansen_rit");
        let mut r = run(300, integrator, 0.0, 0, 6);
        r.dt = 0.1;
        r.noise.sigma = vec![0.0; 6];
        r.monitor.vars = vec![1, 2];
        let s = setup(
            "jansen_rit",
            None,
            &[("G", ParamValue::Batch(vec![5.0, 12.0]))],
            r,
            Loss::Quad,
        );
        check_against_burn(&s, 45, 1e-8, 1e-4);
        // Held coupling (TVB's scheme): every later stage's input adjoint adds into the first
        // stage's inputs.
        println!("{integrator}: hopf, held coupling");
        let mut r = run(300, integrator, 0.0, 0, 8);
        r.dt = 0.05;
        r.noise.sigma = vec![0.0; 2];
        let mut s = setup(
            "hopf",
            None,
            &[("G", ParamValue::Batch(vec![0.2, 0.9]))],
            r,
            Loss::Quad,
        );
        s.cfg.hold_coupling = true;
        check_against_burn(&s, 50, 1e-8, 1e-4);
    }
}

#[test]
fn hopf_difference_coupling_held_matches_burn() {
    let mut r = run(800, Integrator::Heun, 0.02, 3, 8);
    r.dt = 0.05;
    let mut s = setup(
        "hopf",
        None,
        &[("G", ParamValue::Batch(vec![0.2, 0.5, 0.9]))],
        r.clone(),
        Loss::Quad,
    );
    check_against_burn(&s, 50, 1e-8, 1e-4);
    // The same with the coupling held over the step (TVB's scheme).
    s.cfg.hold_coupling = true;
    check_against_burn(&s, 50, 1e-8, 1e-4);
}

#[test]
fn jansen_rit_sigmoidal_coupling_matches_burn() {
    let mut r = run(600, Integrator::Heun, 0.0, 0, 6);
    r.dt = 0.1;
    r.noise.sigma = vec![0.0; 6];
    r.monitor.vars = vec![1, 2];
    let s = setup(
        "jansen_rit",
        None,
        &[("G", ParamValue::Batch(vec![5.0, 12.0]))],
        r,
        Loss::Quad,
    );
    check_against_burn(&s, 90, 1e-8, 1e-4);
}

#[test]
fn wilson_cowan_mean_monitor_matches_burn() {
    let mut r = run(900, Integrator::Heun, 0.01, 5, 15);
    r.dt = 0.1;
    r.monitor.mean = true;
    r.monitor.transient = 55;
    let s = setup(
        "wilson_cowan",
        None,
        &[("G", ParamValue::Batch(vec![0.5, 1.0]))],
        r,
        Loss::Quad,
    );
    // 40 does not divide the 15-step windows: windows straddle chunk boundaries. Measured:
    // 5.2e-8 (shift).
    check_against_burn(&s, 40, 1e-7, 1e-4);
}

#[test]
fn kuramoto_coupling_matches_burn() {
    let mut r = run(500, Integrator::Heun, 0.0, 0, 5);
    r.dt = 0.1;
    r.noise.sigma = vec![0.0];
    r.noise.mode = NoiseMode::None;
    r.monitor.vars = vec![0];
    let s = setup(
        "kuramoto",
        None,
        &[("G", ParamValue::Batch(vec![0.1, 0.3]))],
        r,
        Loss::Quad,
    );
    check_against_burn(&s, 77, 1e-8, 1e-4);
}

/// MPR observed through Balloon–Windkessel BOLD (the haemodynamics on the host, between the
/// neural adjoint and the FC loss): against the tensor engine, which carries the BOLD state
/// through its checkpointed autodiff, and against central finite differences. The BOLD step is
/// stretched (0.05 s per 10 steps of 0.01 ms) so that a short run covers 10 s of haemodynamics;
/// the transient (335 steps) is not a multiple of the BOLD step, so samples read the last
/// completed BOLD step.
#[test]
fn mpr_bold_fc_loss_matches_burn_and_finite_differences() {
    let bold_run = |sigma: f64| {
        let mut r = run_r(2000, Integrator::Heun, sigma, 6, 50);
        r.monitor.transient = 335;
        r.monitor.bold = Some(neurodiff::monitor::BoldMonitor {
            var: 0,
            every: 10,
            step_s: 0.05,
            params: neurodiff::observe::BoldParams::default(),
        });
        r
    };
    let s = setup(
        "mpr",
        None,
        &[
            ("G", ParamValue::Batch(vec![0.5, 0.9])),
            ("eta", eta_regional()),
        ],
        bold_run(0.01),
        Loss::Fc,
    );
    let a = adjoint::<f64>(&s, 128);
    assert_eq!(a.shape, [33, 2, 1, 80], "BOLD samples returned");
    // Measured: 9.2e-8 in f64 (G; the same order as the neural-only MPR case, from the two
    // engines' different summation orders), 1.3e-5 in f32 (I).
    check_against_burn(&s, 128, 5e-7, 1e-4);

    // Deterministic: d loss / d G and d eta (global) by central differences.
    let mk = |g: f64, eta: f64| {
        setup(
            "mpr",
            None,
            &[
                ("G", ParamValue::Scalar(g)),
                ("eta", ParamValue::Scalar(eta)),
            ],
            bold_run(0.0),
            Loss::Fc,
        )
    };
    let (g0, eta0, h) = (0.7, -4.8, 1e-5);
    let s = mk(g0, eta0);
    let a = adjoint::<f64>(&s, 200);
    for (name, dg, de) in [("G", h, 0.0), ("eta", 0.0, h)] {
        let k = s.table.index(name).unwrap();
        let analytic = a.grads[k].as_ref().unwrap().values[0];
        let lp = adjoint::<f64>(&mk(g0 + dg, eta0 + de), 2000).loss[0];
        let lm = adjoint::<f64>(&mk(g0 - dg, eta0 - de), 2000).loss[0];
        let fd = (lp - lm) / (2.0 * h);
        assert!(
            (analytic - fd).abs() <= 1e-5 * fd.abs().max(1e-3),
            "d loss / d {name}: adjoint {analytic:e}, finite differences {fd:e}"
        );
    }
}

#[test]
fn chunk_length_does_not_change_the_gradient() {
    let s = setup(
        "mpr",
        None,
        &[
            ("G", ParamValue::Batch(vec![0.5, 0.7])),
            ("eta", eta_regional()),
        ],
        run_r(1200, Integrator::Heun, 0.01, 9, 10),
        Loss::Fc,
    );
    let a = adjoint::<f64>(&s, 1200);
    for k in [1, 37, 500] {
        let b = adjoint::<f64>(&s, k);
        assert_eq!(a.loss, b.loss);
        for (ga, gb) in a.grads.iter().zip(&b.grads) {
            let (ga, gb) = (ga.as_ref().unwrap(), gb.as_ref().unwrap());
            for (x, y) in ga.values.iter().zip(&gb.values) {
                assert!(
                    (x - y).abs() <= 1e-12 * x.abs().max(1e-9),
                    "K={k}: {x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn matches_central_finite_differences() {
    let base = [
        ("G", 0.7),
        ("eta", -4.7),
        ("J", 14.5),
        ("Delta", 1.1),
        ("tau", 1.2),
    ];
    let mk = |shift: Option<(usize, f64)>| {
        let given: Vec<(&str, ParamValue)> = base
            .iter()
            .enumerate()
            .map(|(i, &(n, v))| {
                let dv = match shift {
                    Some((j, h)) if j == i => h,
                    _ => 0.0,
                };
                (n, ParamValue::Scalar(v + dv))
            })
            .collect();
        setup(
            "mpr",
            None,
            &given,
            run_r(3000, Integrator::Heun, 0.0, 0, 10),
            Loss::Fc,
        )
    };
    let s = mk(None);
    let g = adjoint::<f64>(&s, 128);
    for (i, &(name, _)) in base.iter().enumerate() {
        let k = s.table.index(name).unwrap();
        let analytic = g.grads[k].as_ref().unwrap().values[0];
        let h = 1e-5;
        let lp = adjoint::<f64>(&mk(Some((i, h))), 3000).loss[0];
        let lm = adjoint::<f64>(&mk(Some((i, -h))), 3000).loss[0];
        let fd = (lp - lm) / (2.0 * h);
        let tol = 1e-5 * fd.abs().max(1e-3);
        assert!(
            (analytic - fd).abs() <= tol,
            "d loss / d {name}: adjoint {analytic:e}, finite differences {fd:e}"
        );
    }
}

#[test]
fn selected_parameters_only() {
    let s = setup(
        "mpr",
        None,
        &[("G", ParamValue::Batch(vec![0.5, 0.7]))],
        run_r(500, Integrator::Heun, 0.01, 2, 10),
        Loss::Fc,
    );
    let all = adjoint::<f64>(&s, 100);
    let fr = FusedRun {
        connectome: &s.conn,
        network: &s.cfg,
        params: &s.table,
        x0: &s.x0,
        x0_rows: 1,
        batch: s.table.batch,
        run: &s.run,
        threads: 1,
    };
    let loss = host_loss(s.loss);
    let some = value_and_grad_fused_in(
        true,
        &fr,
        &GradOptions {
            chunk: 100,
            wrt: Some(vec!["G".into(), "eta".into()]),
        },
        &*loss,
    )
    .unwrap();
    for (k, spec) in s.table.specs.iter().enumerate() {
        match (spec.name, &some.grads[k]) {
            ("G" | "eta", Some(g)) => assert_eq!(g, all.grads[k].as_ref().unwrap()),
            ("G" | "eta", None) => panic!("{} missing", spec.name),
            (_, g) => assert!(g.is_none(), "{} not requested", spec.name),
        }
    }
}

#[test]
fn unsupported_runs_are_reported() {
    let mut s = setup(
        "mpr",
        None,
        &[],
        run_r(100, Integrator::ExpEuler, 0.0, 0, 10),
        Loss::Fc,
    );
    let fr = |s: &Setup| {
        let loss = host_loss(s.loss);
        value_and_grad_fused_in(
            true,
            &FusedRun {
                connectome: &s.conn,
                network: &s.cfg,
                params: &s.table,
                x0: &s.x0,
                x0_rows: 1,
                batch: 1,
                run: &s.run,
                threads: 1,
            },
            &GradOptions::default(),
            &*loss,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    assert!(fr(&s).contains("exp_euler"), "{}", fr(&s));
    s.run.integrator = Integrator::Heun;
    s.cfg.speed = Some(5.0);
    assert!(fr(&s).contains("delays"), "{}", fr(&s));
}
