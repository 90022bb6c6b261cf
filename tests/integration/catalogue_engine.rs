//! Every model of the catalogue through the engine (iterating the registry, so a new model is
//! covered as soon as it is registered), on a 5-region subset of the bundled HCP connectome with
//! the model's own coupling function:
//!
//! 1. a short deterministic run stays finite and moves;
//! 2. a batch of 3 parameter sets (the model's first parameter varied) equals 3 separate runs;
//! 3. the chunked checkpointed gradient of a scalar summary (a weighted sum of the final state,
//!    see [`summary_weights`]) w.r.t. every parameter (the model's and the coupling's) matches
//!    central finite differences in f64, and the full-tape gradient;
//! 4. the tensor engine equals the fused engine (without and with delays) where the fused
//!    engine supports the run.
//!
//! Failures are collected over all models and reported together.

use crate::common::*;
use burn::backend::Autodiff;
use burn::prelude::{Backend, Tensor, TensorData};
use neurodiff::connectome::{Connectome, Normalization};
use neurodiff::fused::{simulate_fused, FusedRun};
use neurodiff::grad::{value_and_grad, value_and_grad_full};
use neurodiff::integrate::Integrator;
use neurodiff::models::ModelSpec;
use neurodiff::monitor::Monitor;
use neurodiff::network::{Network, NetworkConfig};
use neurodiff::noise::{Noise, NoiseMode, NoiseSource};
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::problem::fused_unsupported;
use neurodiff::sim::{simulate, Run};

const REGIONS: [usize; 5] = [0, 5, 11, 40, 45];
const STEPS: usize = 200;

fn connectome() -> Connectome {
    let mut c = Connectome::load("hcp80", None).unwrap().subset(&REGIONS);
    // The models' typical coupling strengths are given for a largest weight of 1.
    c.normalize(Normalization::Max);
    c
}

/// A deterministic initial state `[vars, nodes]` inside each variable's documented range,
/// different at every node (so that the coupling does something).
fn x0_host(spec: &ModelSpec, n: usize) -> Vec<f64> {
    spec.state
        .iter()
        .flat_map(|v| {
            (0..n).map(move |i| {
                let (lo, hi) = v.range;
                lo + (hi - lo) * (0.4 + 0.05 * i as f64)
            })
        })
        .collect()
}

fn run_for(spec: &ModelSpec, every: usize, vars: Vec<usize>) -> Run {
    Run {
        dt: spec.default_dt,
        steps: STEPS,
        integrator: Integrator::Heun,
        noise: Noise {
            sigma: vec![0.0; spec.n_vars()],
            mode: NoiseMode::None,
            seed: 0,
            source: NoiseSource::Host,
        },
        chunk: 64,
        monitor: Monitor {
            every,
            mean: false,
            transient: 0,
            vars,
            bold: None,
        },
    }
}

/// Parameter tensors `[batch, 1]` from one row of values per batch element (built directly, not
/// through the bounds-checking table, so that finite differences may step past a bound on which
/// a default sits, e.g. `wilson_cowan`'s `shift = 1`).
fn ptensors<B: Backend>(rows: &[Vec<f64>], d: &B::Device) -> Vec<Tensor<B, 2>> {
    let b = rows.len();
    (0..rows[0].len())
        .map(|k| {
            Tensor::from_data(
                TensorData::new(rows.iter().map(|r| r[k]).collect::<Vec<f64>>(), [b, 1]),
                neurodiff::float_opts::<B>(d),
            )
        })
        .collect()
}

/// The initial state for a batch, `[batch, nodes]` per variable.
fn x0_tensors<B: Backend>(
    x0: &[f64],
    nv: usize,
    n: usize,
    batch: usize,
    d: &B::Device,
) -> Vec<Tensor<B, 2>> {
    (0..nv)
        .map(|v| {
            let row = &x0[v * n..(v + 1) * n];
            let vals: Vec<f64> = (0..batch).flat_map(|_| row.to_vec()).collect();
            Tensor::from_data(
                TensorData::new(vals, [batch, n]),
                neurodiff::float_opts::<B>(d),
            )
        })
        .collect()
}

/// Tensor-engine run; samples `[samples, batch, vars, nodes]` in f64.
fn tensor_run<B: Backend>(
    cfg: &NetworkConfig,
    conn: &Connectome,
    rows: &[Vec<f64>],
    x0: &[f64],
    run: &Run,
) -> Vec<f64> {
    let d = Default::default();
    let net = Network::<B>::build(cfg, conn, run.dt, &d).unwrap();
    let nv = net.spec().n_vars();
    let mut out = Vec::new();
    simulate(
        &net,
        &ptensors::<B>(rows, &d),
        x0_tensors::<B>(x0, nv, conn.n, rows.len(), &d),
        run,
        |c| {
            out.extend(
                c.values
                    .into_data()
                    .convert::<f64>()
                    .into_vec::<f64>()
                    .unwrap(),
            );
            Ok(())
        },
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{}: {e}", cfg.model));
    out
}

/// The network's parameter list and its default values (G at the model's typical strength).
fn defaults(
    cfg: &NetworkConfig,
    conn: &Connectome,
) -> (Vec<neurodiff::models::ParamSpec>, Vec<f64>) {
    let net = Network::<Nd64>::build(cfg, conn, 1.0, &Default::default()).unwrap();
    let specs = net.param_specs();
    let values = specs.iter().map(|s| s.default).collect();
    (specs, values)
}

fn rel64(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn catalogue_is_not_empty() {
    let names: Vec<&str> = neurodiff::models::catalogue()
        .iter()
        .map(|s| s.name)
        .collect();
    assert!(names.len() >= 14, "{names:?}");
}

/// 1. Short deterministic runs are finite, and the state moves.
#[test]
fn every_model_runs_finite() {
    let conn = connectome();
    let mut failures = Vec::new();
    for spec in neurodiff::models::catalogue() {
        let cfg = NetworkConfig::new(spec.name);
        let (_, p) = defaults(&cfg, &conn);
        let x0 = x0_host(spec, conn.n);
        let run = run_for(spec, 10, (0..spec.n_vars()).collect());
        let out = tensor_run::<Nd64>(&cfg, &conn, &[p], &x0, &run);
        if let Some(v) = out.iter().find(|v| !v.is_finite()) {
            failures.push(format!("{}: non-finite value {v}", spec.name));
        }
        let last = &out[out.len() - x0.len()..];
        if rel64(&x0, last) < 1e-6 {
            failures.push(format!("{}: the state did not move", spec.name));
        }
    }
    report(failures);
}

/// 2. A batch of 3 parameter sets equals 3 separate runs (tensor and fused engines).
#[test]
fn every_model_batch_equals_separate_runs() {
    let conn = connectome();
    let mut failures = Vec::new();
    for spec in neurodiff::models::catalogue() {
        let cfg = NetworkConfig::new(spec.name);
        let (specs, p) = defaults(&cfg, &conn);
        let first = &specs[0];
        let v = p[0];
        let delta = if v != 0.0 {
            0.05 * v.abs()
        } else {
            0.01 * (first.upper - first.lower).min(1.0)
        };
        let vals: Vec<f64> = [v, v + delta, v - delta]
            .iter()
            .map(|x| x.clamp(first.lower, first.upper))
            .collect();
        let rows: Vec<Vec<f64>> = vals
            .iter()
            .map(|&x| {
                let mut r = p.clone();
                r[0] = x;
                r
            })
            .collect();
        let x0 = x0_host(spec, conn.n);
        let nv = spec.n_vars();
        let run = run_for(spec, 20, (0..nv).collect());
        let all = tensor_run::<Nd64>(&cfg, &conn, &rows, &x0, &run);
        // The fused engine through a parameter table.
        let given: Vec<(String, ParamValue)> =
            vec![(first.name.to_string(), ParamValue::Batch(vals.clone()))];
        let table = ParamTable::new(&specs, &given, conn.n, None).unwrap();
        let fused = |t: &ParamTable| -> Vec<f64> {
            let fr = FusedRun {
                connectome: &conn,
                network: &cfg,
                params: t,
                x0: &x0,
                x0_rows: 1,
                batch: t.batch,
                run: &run,
                threads: 1,
            };
            let mut out = Vec::new();
            simulate_fused::<f64>(
                &fr,
                &mut |_, _, v| {
                    out.extend(v);
                    Ok(())
                },
                &mut |_| {},
            )
            .unwrap();
            out
        };
        let fused_all = fused(&table);
        let per = nv * conn.n;
        let samples = all.len() / (3 * per);
        for (b, row) in rows.iter().enumerate() {
            let pick = |v: &[f64]| -> Vec<f64> {
                (0..samples)
                    .flat_map(|s| v[(s * 3 + b) * per..(s * 3 + b + 1) * per].to_vec())
                    .collect()
            };
            let one = tensor_run::<Nd64>(&cfg, &conn, std::slice::from_ref(row), &x0, &run);
            // Batch rows are independent: f64 round-off at most.
            let diff = rel64(&one, &pick(&all));
            if diff > 1e-12 {
                failures.push(format!("{} tensor, element {b}: {diff:e}", spec.name));
            }
            let t1 = ParamTable::new(
                &specs,
                &[(first.name.to_string(), ParamValue::Scalar(vals[b]))],
                conn.n,
                None,
            )
            .unwrap();
            let diff = rel64(&fused(&t1), &pick(&fused_all));
            if diff > 1e-7 {
                failures.push(format!("{} fused, element {b}: {diff:e}", spec.name));
            }
        }
        // Not vacuous: the varied parameter changes the run.
        let a = &all[all.len() - 3 * per..all.len() - 2 * per];
        let c = &all[all.len() - 2 * per..all.len() - per];
        if rel64(a, c) < 1e-9 {
            failures.push(format!(
                "{}: varying {} by {delta} changed nothing",
                spec.name, first.name
            ));
        }
    }
    report(failures);
}

/// Weights of the summary `L = Σ_v Σ_i w_vi x_v(T, i)`: every variable (a parameter may act on
/// one variable only within a short run, e.g. the Epileptor's second population does not feed
/// `x1` while `x1 < 0`), and unequal over nodes (with a symmetric connectome the plain sum of
/// Kuramoto phases, or of a difference-coupled variable, does not depend on `G` at all).
fn summary_weights(nv: usize, n: usize) -> Vec<f64> {
    (0..nv * n)
        .map(|k| (1.0 + (k % n) as f64 + 0.5 * (k / n) as f64) / (nv * n) as f64)
        .collect()
}

/// 3. Chunked gradients against central finite differences (f64), for every parameter.
///
/// The summary `L` ([`summary_weights`]) is taken after 200 Heun steps from a fixed state.
/// Central differences with `h = 1e-5 · max(|p|, 1e-2)` have a truncation error `O(h²)`
/// (relative ~1e-10) and a rounding error ~ `ε S / h` amplified by the run's sensitivity (S:
/// the magnitude of the final state); the tolerance `1e-5 |fd| + 1e-12 S / h` is well above
/// both and far below any real mistake. A parameter whose derivative is zero or below that
/// floor passes when both are below it; those are listed with `--nocapture`. At the defaults
/// they are: MPR's `cv` (multiplies `c_V`, off by default); the Epileptor's `slope` (only in
/// the `x1 ≥ 0` branch, not reached), `aa` (multiplies `max(x2 + 0.25, 0)`, zero here), `Kf`
/// (multiplies `c2`, off), `Ks` (acts through `z` at rate `r = 3.5e-4`: below the floor in
/// 10 ms) and `G` (the gains `Kvf`, `Kf`, `Ks` are 0). `G` is allowed there only when the
/// coupling inputs provably do not enter the drift ([`coupling_is_inert`]).
#[test]
fn every_model_gradient_matches_finite_differences() {
    type B = Autodiff<Nd64>;
    let conn = connectome();
    let d = Default::default();
    let mut failures = Vec::new();
    for spec in neurodiff::models::catalogue() {
        let cfg = NetworkConfig::new(spec.name);
        let (specs, p) = defaults(&cfg, &conn);
        let x0 = x0_host(spec, conn.n);
        let nv = spec.n_vars();
        let run = run_for(spec, STEPS, (0..nv).collect());
        let w = summary_weights(nv, conn.n);
        let hs: Vec<f64> = p.iter().map(|v| 1e-5 * v.abs().max(1e-2)).collect();
        let mut rows = vec![p.clone()];
        for (k, h) in hs.iter().enumerate() {
            for s in [1.0, -1.0] {
                let mut r = p.clone();
                r[k] += s * h;
                rows.push(r);
            }
        }
        let out = tensor_run::<Nd64>(&cfg, &conn, &rows, &x0, &run);
        let n = conn.n;
        let batch = rows.len();
        assert_eq!(out.len(), batch * nv * n, "one sample");
        let l = |b: usize| -> f64 {
            let x = &out[b * nv * n..(b + 1) * nv * n];
            x.iter().zip(&w).map(|(x, w)| x * w).sum()
        };
        let l0 = l(0);

        let net = Network::<B>::build(&cfg, &conn, run.dt, &d).unwrap();
        let net_in = Network::<Nd64>::build(&cfg, &conn, run.dt, &d).unwrap();
        let params = ptensors::<Nd64>(std::slice::from_ref(&p), &d);
        let wt = Tensor::<B, 4>::from_data(
            TensorData::new(w.clone(), [1, 1, nv, n]),
            neurodiff::float_opts::<B>(&d),
        );
        let loss = |y: Tensor<B, 4>| -> Tensor<B, 1> {
            let [_, b, v, n] = y.dims();
            (y * wt.clone()).reshape([b, v * n]).sum_dim(1).reshape([b])
        };
        let x0t = x0_tensors::<Nd64>(&x0, nv, n, 1, &d);
        let ch = value_and_grad(&net, &net_in, &params, x0t.clone(), &run, 64, &loss).unwrap();
        let full = value_and_grad_full(&net, &params, x0t, &run, &loss).unwrap();
        let lv: f64 = ch.loss.into_scalar();
        if (lv - l0).abs() > 1e-12 * l0.abs().max(1e-9) {
            failures.push(format!("{}: loss {lv} vs forward {l0}", spec.name));
        }
        let scale = out[..nv * n].iter().fold(l0.abs(), |m, x| m.max(x.abs()));
        let mut zero = Vec::new();
        for (k, ps) in specs.iter().enumerate() {
            let gc: f64 = ch.grads[k].clone().into_scalar();
            let gf: f64 = full.grads[k].clone().into_scalar();
            let fd = (l(1 + 2 * k) - l(2 + 2 * k)) / (2.0 * hs[k]);
            let floor = 1e-12 * scale / hs[k];
            if (gc - gf).abs() > 1e-9 * gf.abs() + 1e-3 * floor {
                failures.push(format!(
                    "{} d/d{}: chunked {gc:e} vs full tape {gf:e}",
                    spec.name, ps.name
                ));
            }
            if (gc - fd).abs() > 1e-5 * fd.abs() + floor {
                failures.push(format!(
                    "{} d/d{}: checkpointed {gc:e} vs finite differences {fd:e}",
                    spec.name, ps.name
                ));
            }
            if fd.abs() <= floor {
                zero.push(ps.name);
            }
        }
        println!("{}: derivatives below the floor: {zero:?}", spec.name);
        if zero.contains(&"G") {
            if coupling_is_inert(spec, &x0, &p[..spec.params.len()], n) {
                println!(
                    "{}: the coupling inputs do not enter the drift at the default parameters \
                     (zero gains), so d/dG is structurally zero",
                    spec.name
                );
            } else {
                failures.push(format!("{}: d/dG is too small to check", spec.name));
            }
        }
    }
    report(failures);
}

/// Whether no coupling input changes the model's drift at the initial state of any node, with
/// model parameters `p` (e.g. the Epileptor's gains `Kvf`, `Kf`, `Ks` are 0 by default).
fn coupling_is_inert(spec: &ModelSpec, x0: &[f64], p: &[f64], n: usize) -> bool {
    struct V<'a> {
        x: Vec<f64>,
        p: &'a [f64],
        k: usize,
    }
    impl neurodiff::models::ModelVisitor for V<'_> {
        type Output = bool;
        fn visit<M: neurodiff::models::Model>(self, m: M) -> bool {
            let nc = m.spec().coupling.len();
            let nv = m.spec().n_vars();
            let (mut a, mut b) = (vec![0.0; nv], vec![0.0; nv]);
            let mut c = vec![0.0; nc];
            m.drift(&self.x, &c, self.p, &mut a);
            c[self.k] = 1.0;
            m.drift(&self.x, &c, self.p, &mut b);
            a == b
        }
    }
    let nv = spec.n_vars();
    (0..n).all(|i| {
        let x: Vec<f64> = (0..nv).map(|v| x0[v * n + i]).collect();
        (0..spec.coupling.len())
            .all(|k| neurodiff::models::visit(spec.name, V { x: x.clone(), p, k }).unwrap())
    })
}

/// 4. The tensor engine equals the fused engine, without and with delays.
#[test]
fn every_model_tensor_engine_equals_fused_engine() {
    let conn = connectome();
    let mut failures = Vec::new();
    for spec in neurodiff::models::catalogue() {
        let nv = spec.n_vars();
        let x0 = x0_host(spec, conn.n);
        let max_len = conn
            .lengths
            .as_ref()
            .unwrap()
            .iter()
            .cloned()
            .fold(0.0, f64::max);
        // Delays of up to 12 steps.
        let speed = max_len / (12.0 * spec.default_dt);
        for speed in [None, Some(speed)] {
            let cfg = NetworkConfig {
                speed,
                ..NetworkConfig::new(spec.name)
            };
            let (specs, p) = defaults(&cfg, &conn);
            let run = run_for(spec, 10, (0..nv).collect());
            if let Some(why) = fused_unsupported(&run) {
                println!("{}: fused engine skipped: {why}", spec.name);
                continue;
            }
            let table = ParamTable::new(&specs, &[], conn.n, None).unwrap();
            let fr = FusedRun {
                connectome: &conn,
                network: &cfg,
                params: &table,
                x0: &x0,
                x0_rows: 1,
                batch: 1,
                run: &run,
                threads: 1,
            };
            let mut fused = Vec::new();
            simulate_fused::<f64>(
                &fr,
                &mut |_, _, v| {
                    fused.extend(v);
                    Ok(())
                },
                &mut |_| {},
            )
            .unwrap();
            let tensor = tensor_run::<Nd64>(&cfg, &conn, &[p], &x0, &run);
            // Both engines in f64, and the samples come back in f64.
            let diff = rel64(&tensor, &fused);
            if diff > 1e-6 {
                failures.push(format!(
                    "{} (speed {speed:?}): tensor vs fused differ by {diff:e}",
                    spec.name
                ));
            }
        }
    }
    report(failures);
}
