//! Sparse coupling against dense coupling on the same matrix: the same trajectories (tensor
//! engine in f64 and f32, fused engine), with and without delays, for every coupling kind, and
//! the same gradients under `Autodiff<NdArray<f64>>` and from the fused engine's adjoint.

use crate::common::*;
use burn::backend::Autodiff;
use burn::prelude::{Backend, Tensor};
use neurodiff::connectome::Connectome;
use neurodiff::coupling::CouplingKind;
use neurodiff::fused::{value_and_grad_fused_in, GradOptions};
use neurodiff::fused::{FusedRun, Real};
use neurodiff::grad::value_and_grad_full;
use neurodiff::integrate::Integrator;
use neurodiff::io::Array;
use neurodiff::network::{param_specs, Network, NetworkConfig};
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::sim::{simulate_collect, Run};
use neurodiff::sparse::SparseMode;
use rand::{Rng, SeedableRng};

const N: usize = 200;
const DENSITY: f64 = 0.03;

/// A random connectome of `n` nodes where each node receives `round(density · n)` connections
/// from distinct other nodes, with weights in (0, 1] and tract lengths in [5, 150) mm.
fn random_connectome(n: usize, density: f64, seed: u64) -> Connectome {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let k = (density * n as f64).round() as usize;
    let mut w = vec![0.0; n * n];
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in rand::seq::index::sample(&mut rng, n - 1, k) {
            let j = if j >= i { j + 1 } else { j };
            w[i * n + j] = 1.0 - rng.random::<f64>();
        }
        for j in 0..n {
            l[i * n + j] = rng.random_range(5.0..150.0);
        }
    }
    let arr = |data| Array {
        shape: vec![n, n],
        data,
    };
    Connectome::from_arrays(arr(w), Some(arr(l)), None, "random").unwrap()
}

/// The cases: a model and a coupling, covering every coupling kind.
const CASES: [(&str, CouplingKind); 6] = [
    ("mpr", CouplingKind::Linear),
    ("mpr", CouplingKind::Difference),
    ("kuramoto", CouplingKind::Kuramoto),
    ("mpr", CouplingKind::Kuramoto),
    ("jansen_rit", CouplingKind::SigmoidalJansenRit),
    ("mpr", CouplingKind::Sigmoidal),
];

fn config(model: &str, coupling: CouplingKind, speed: Option<f64>, sparse: bool) -> NetworkConfig {
    NetworkConfig {
        coupling: Some(coupling),
        speed,
        sparse: if sparse {
            SparseMode::On
        } else {
            SparseMode::Off
        },
        ..NetworkConfig::new(model)
    }
}

/// A batch of 2 with per-region values for one model parameter and (for the sigmoidal couplings)
/// per-region coupling parameters, so that per-edge parameter lookups are exercised.
fn table(model: &str, coupling: CouplingKind, n: usize) -> ParamTable {
    let spec = neurodiff::models::find(model).unwrap();
    let specs = param_specs(spec, coupling);
    let regional = |base: f64, step: f64| ParamValue::Regional {
        rows: 1,
        values: (0..n).map(|i| base + step * (i % 7) as f64).collect(),
    };
    let g = specs.iter().find(|p| p.name == "G").unwrap().default;
    let mut given = vec![("G".to_string(), ParamValue::Batch(vec![g, 1.5 * g]))];
    if model == "mpr" {
        given.push(("eta".into(), regional(-5.0, 0.05)));
    }
    if coupling == CouplingKind::SigmoidalJansenRit {
        given.push(("cpl_midpoint".into(), regional(5.5, 0.2)));
    }
    if coupling == CouplingKind::Sigmoidal {
        given.push(("cpl_midpoint".into(), regional(-0.2, 0.1)));
        given.push(("cpl_sigma".into(), ParamValue::Scalar(2.0)));
    }
    ParamTable::new(&specs, &given, n, None).unwrap()
}

fn run_for(model: &str, steps: usize) -> Run {
    let spec = neurodiff::models::find(model).unwrap();
    let mut r = run(steps, Integrator::Heun, 0.0, 3, 10);
    r.dt = spec.default_dt;
    r.noise.sigma = vec![0.0; spec.n_vars()];
    r.monitor.vars = (0..spec.n_vars()).collect();
    r
}

/// A random initial state in each variable's range (so that couplings see different values).
fn x0(model: &str, n: usize) -> Vec<f64> {
    let spec = neurodiff::models::find(model).unwrap();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
    let mut v = Vec::new();
    for var in spec.state {
        let (lo, hi) = var.range;
        let (lo, hi) = (lo.max(-10.0), hi.min(10.0));
        for _ in 0..n {
            v.push(rng.random_range(lo..=hi));
        }
    }
    v
}

fn x0_tensors<B: Backend>(model: &str, n: usize, batch: usize, d: &B::Device) -> Vec<Tensor<B, 2>> {
    let v = x0(model, n);
    v.chunks_exact(n)
        .map(|row| {
            let t: Tensor<B, 2> = tensor2::<B>(row.iter().map(|&x| x as f32).collect(), 1, n, d);
            t.expand([batch, n])
        })
        .collect()
}

fn tensor_run<B: Backend>(conn: &Connectome, cfg: &NetworkConfig, run: &Run) -> Vec<f32> {
    let d = Default::default();
    let net = Network::<B>::build(cfg, conn, run.dt, &d).unwrap();
    let t = table(&cfg.model, cfg.coupling.unwrap(), conn.n);
    let p = t.tensors::<B>(&d);
    let x0 = x0_tensors::<B>(&cfg.model, conn.n, t.batch, &d);
    simulate_collect(&net, &p, x0, run).unwrap().0
}

fn fused_run<T: Real>(conn: &Connectome, cfg: &NetworkConfig, run: &Run) -> Vec<f32> {
    let t = table(&cfg.model, cfg.coupling.unwrap(), conn.n);
    let x0 = x0(&cfg.model, conn.n);
    let fr = FusedRun {
        connectome: conn,
        network: cfg,
        params: &t,
        x0: &x0,
        x0_rows: 1,
        batch: t.batch,
        run,
        threads: 1,
    };
    fused_samples::<T>(&fr).unwrap()
}

/// Checks `a` against `b` and that the trajectories moved (a constant run would hide bugs).
fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f64) {
    let diff = rel_diff(a, b);
    eprintln!("{what}: relative difference {diff:.2e}");
    assert!(
        diff <= tol,
        "{what}: sparse vs dense differ by {diff} > {tol}"
    );
    assert!(a.iter().all(|x| x.is_finite()), "{what}: not finite");
    // Samples are [sample, batch, var, node]: the first and last samples differ.
    let k = a.len() / 10;
    assert!(
        rel_diff(&a[..k], &a[a.len() - k..]) > 1e-3,
        "{what}: the trajectories did not move"
    );
}

#[test]
fn network_uses_sparse_coupling_as_configured() {
    let conn = random_connectome(N, DENSITY, 1);
    let d = Default::default();
    let build = |mode| {
        let cfg = NetworkConfig {
            sparse: mode,
            ..NetworkConfig::new("mpr")
        };
        Network::<Nd64>::build(&cfg, &conn, 0.01, &d)
            .unwrap()
            .is_sparse()
    };
    assert!(build(SparseMode::On));
    assert!(!build(SparseMode::Off));
    // Auto: 200 nodes are below the size where sparse coupling is chosen.
    assert!(!build(SparseMode::Auto));
    // The delay horizon is over the nonzero edges when sparse, over all pairs when dense.
    let with = |mode| {
        let cfg = NetworkConfig {
            speed: Some(10.0),
            sparse: mode,
            ..NetworkConfig::new("mpr")
        };
        Network::<Nd64>::build(&cfg, &conn, 0.1, &d)
            .unwrap()
            .delay_horizon()
            .unwrap()
    };
    assert!(with(SparseMode::On) <= with(SparseMode::Off));
    assert!(with(SparseMode::On) > 100, "delays of up to 150 steps");
    // Auto at 1,000 nodes: sparse at 1 % density, dense at 5 % (see neurodiff::sparse).
    for (density, sparse) in [(0.01, true), (0.05, false)] {
        let big = random_connectome(1000, density, 6);
        let cfg = NetworkConfig::new("mpr");
        let net = Network::<Nd64>::build(&cfg, &big, 0.01, &d).unwrap();
        assert_eq!(net.is_sparse(), sparse, "1000 nodes at density {density}");
    }
}

/// The tensor engine on backend `B`: sparse against dense for `cases`, with and without delays.
fn tensor_sparse_equals_dense<B: Backend>(
    label: &str,
    seed: u64,
    cases: &[(&str, CouplingKind)],
    tol: f64,
) {
    let conn = random_connectome(N, DENSITY, seed);
    for &(model, coupling) in cases {
        for speed in [None, Some(8.0)] {
            let r = run_for(model, 200);
            let sparse = tensor_run::<B>(&conn, &config(model, coupling, speed, true), &r);
            let dense = tensor_run::<B>(&conn, &config(model, coupling, speed, false), &r);
            let what = format!("{label}{model}/{} speed {speed:?}", coupling.name());
            assert_close(&what, &sparse, &dense, tol);
        }
    }
}

#[test]
fn tensor_engine_sparse_equals_dense_f64_every_coupling() {
    tensor_sparse_equals_dense::<Nd64>("", 1, &CASES, 1e-6);
}

#[test]
fn tensor_engine_sparse_equals_dense_f32() {
    tensor_sparse_equals_dense::<Nd>("", 2, &[CASES[0], CASES[2], CASES[4]], 1e-4);
}

/// The flex backend (f32) as the ndarray one.
#[test]
fn tensor_engine_sparse_equals_dense_flex() {
    tensor_sparse_equals_dense::<Flex>("flex ", 2, &[CASES[1], CASES[3], CASES[5]], 1e-4);
}

#[test]
fn fused_engine_sparse_equals_dense_and_tensor() {
    let conn = random_connectome(N, DENSITY, 3);
    for (model, coupling) in CASES {
        for speed in [None, Some(8.0)] {
            let r = run_for(model, 200);
            let what = format!("{model}/{} speed {speed:?}", coupling.name());
            let on = config(model, coupling, speed, true);
            let off = config(model, coupling, speed, false);
            let sparse = fused_run::<f64>(&conn, &on, &r);
            assert_close(&what, &sparse, &fused_run::<f64>(&conn, &off, &r), 1e-6);
            assert_close(&what, &sparse, &tensor_run::<Nd64>(&conn, &on, &r), 1e-6);
            let sparse32 = fused_run::<f32>(&conn, &on, &r);
            assert_close(&what, &sparse32, &fused_run::<f32>(&conn, &off, &r), 1e-4);
        }
    }
}

/// The comparison is sensitive: removing one edge from the sparse side shows.
#[test]
fn comparison_detects_a_missing_edge() {
    let conn = random_connectome(N, DENSITY, 4);
    let mut cut = conn.clone();
    let k = cut.weights.iter().position(|&w| w != 0.0).unwrap();
    cut.weights[k] = 0.0;
    let (model, coupling) = CASES[0];
    let r = run_for(model, 200);
    let a = tensor_run::<Nd64>(&cut, &config(model, coupling, None, true), &r);
    let b = tensor_run::<Nd64>(&conn, &config(model, coupling, None, false), &r);
    assert!(rel_diff(&a, &b) > 1e-6, "one edge less went unnoticed");
}

type Ad = Autodiff<Nd64>;

/// Gradients of a loss w.r.t. every parameter (model and coupling) through a sparse network
/// equal those through the dense one.
#[test]
fn gradients_sparse_equal_dense() {
    let conn = random_connectome(N, DENSITY, 5);
    for (model, coupling, speed) in [
        ("mpr", CouplingKind::Linear, Some(8.0)),
        ("mpr", CouplingKind::Difference, None),
        ("kuramoto", CouplingKind::Kuramoto, Some(8.0)),
        ("jansen_rit", CouplingKind::SigmoidalJansenRit, None),
        ("mpr", CouplingKind::Sigmoidal, Some(8.0)),
    ] {
        let r = run_for(model, 60);
        let grads = |sparse: bool| autodiff_grads(&conn, model, coupling, speed, sparse, &r);
        let (names, gs) = grads(true);
        let (_, gd) = grads(false);
        let mut nonzero = 0;
        for ((name, a), b) in names.iter().zip(&gs).zip(&gd) {
            let scale = b.iter().fold(0f64, |m, x| m.max(x.abs()));
            let diff = a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                diff <= 1e-9 * scale.max(1e-12),
                "{model}/{} d/d{name}: sparse vs dense differ by {diff} (scale {scale})",
                coupling.name()
            );
            nonzero += usize::from(scale > 0.0);
        }
        let g_idx = names.iter().position(|&n| n == "G").unwrap();
        assert!(
            gd[g_idx].iter().any(|&x| x != 0.0),
            "{model}/{}: dL/dG is zero, the test would be vacuous",
            coupling.name()
        );
        assert!(nonzero >= 2, "{model}: too few nonzero gradients");
    }
}

/// The tensor engine's gradient (checkpointed autodiff, f64) of the mean square of the last
/// sample's first variable, per batch element: parameter names and gradients.
fn autodiff_grads(
    conn: &Connectome,
    model: &str,
    coupling: CouplingKind,
    speed: Option<f64>,
    sparse: bool,
    r: &Run,
) -> (Vec<&'static str>, Vec<Vec<f64>>) {
    let d = Default::default();
    let cfg = config(model, coupling, speed, sparse);
    let net = Network::<Ad>::build(&cfg, conn, r.dt, &d).unwrap();
    assert_eq!(net.is_sparse(), sparse);
    let t = table(model, coupling, conn.n);
    let p = t.tensors::<Nd64>(&d);
    let x0 = x0_tensors::<Nd64>(model, conn.n, t.batch, &d);
    let loss = |y: Tensor<Ad, 4>| {
        let [k, b, _, n] = y.dims();
        let last = y.narrow(0, k - 1, 1).narrow(2, 0, 1).reshape([b, n]);
        (last.clone() * last).mean_dim(1).reshape([b])
    };
    let vg = value_and_grad_full(&net, &p, x0, r, &loss).unwrap();
    let names: Vec<&str> = t.specs.iter().map(|s| s.name).collect();
    (names, vg.grads.into_iter().map(to_vec).collect())
}

/// The fused engine's discrete adjoint (no delays) with sparse sums equals it with dense sums,
/// and the tensor engine's autodiff gradient through sparse sums, for every coupling kind.
#[test]
fn fused_adjoint_sparse_equals_dense_and_autodiff() {
    let conn = random_connectome(N, DENSITY, 8);
    // The loss of `autodiff_grads` on the host, with its gradient.
    let loss = |y: &[f64], shape: [usize; 4]| -> neurodiff::Result<(Vec<f64>, Vec<f64>)> {
        let [k, b, v, n] = shape;
        let mut l = vec![0.0; b];
        let mut g = vec![0.0; y.len()];
        for (bb, lb) in l.iter_mut().enumerate() {
            for i in 0..n {
                let at = ((k - 1) * b + bb) * v * n + i;
                *lb += y[at] * y[at] / n as f64;
                g[at] = 2.0 * y[at] / n as f64;
            }
        }
        Ok((l, g))
    };
    for (model, coupling) in CASES {
        let what = format!("{model}/{}", coupling.name());
        let r = run_for(model, 60);
        let t = table(model, coupling, conn.n);
        // The tensor engine starts from the f32-rounded state (see `x0_tensors`).
        let x0: Vec<f64> = x0(model, conn.n).iter().map(|&v| v as f32 as f64).collect();
        let adjoint = |sparse: bool| {
            let cfg = config(model, coupling, None, sparse);
            let fr = FusedRun {
                connectome: &conn,
                network: &cfg,
                params: &t,
                x0: &x0,
                x0_rows: 1,
                batch: t.batch,
                run: &r,
                threads: 1,
            };
            let opts = GradOptions {
                chunk: 25,
                wrt: None,
            };
            let vg = value_and_grad_fused_in(true, &fr, &opts, &loss).unwrap();
            let grads: Vec<Vec<f64>> = vg.grads.into_iter().map(|g| g.unwrap().values).collect();
            (vg.loss, grads)
        };
        let (loss_s, gs) = adjoint(true);
        let (loss_d, gd) = adjoint(false);
        let (names, ga) = autodiff_grads(&conn, model, coupling, None, true, &r);
        for (a, b) in loss_s.iter().zip(&loss_d) {
            assert!((a - b).abs() <= 1e-12 * b.abs(), "{what}: loss {a} vs {b}");
        }
        let mut nonzero = 0;
        for (((name, s), d), a) in names.iter().zip(&gs).zip(&gd).zip(&ga) {
            assert_eq!(s.len(), a.len(), "{what} d/d{name}: shapes");
            let scale = d.iter().fold(0f64, |m, x| m.max(x.abs()));
            let max_diff =
                |x: &[f64], y: &[f64]| x.iter().zip(y).fold(0f64, |m, (p, q)| m.max((p - q).abs()));
            let (dd, da) = (max_diff(s, d), max_diff(s, a));
            assert!(
                dd <= 1e-9 * scale.max(1e-12),
                "{what} d/d{name}: adjoint sparse vs dense differ by {dd} (scale {scale})"
            );
            assert!(
                da <= 1e-6 * scale.max(1e-12),
                "{what} d/d{name}: adjoint vs autodiff (both sparse) differ by {da} (scale {scale})"
            );
            nonzero += usize::from(scale > 0.0);
        }
        let g_idx = names.iter().position(|&n| n == "G").unwrap();
        assert!(gd[g_idx].iter().any(|&x| x != 0.0), "{what}: dL/dG is zero");
        assert!(nonzero >= 2, "{what}: too few nonzero gradients");
    }
}

fn to_vec(t: Tensor<Nd64, 2>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}
