//! The fused CPU engine against the tensor engine it replaces for forward runs: same noise
//! streams, same integrators and monitors, so the same trajectories to floating-point tolerance;
//! and its result does not depend on how the batch is split across threads.

use crate::common::*;
use burn::prelude::{Backend, Tensor};
use neurodiff::connectome::Connectome;
use neurodiff::coupling::CouplingKind;
use neurodiff::fused::FusedRun;
use neurodiff::integrate::Integrator;
use neurodiff::network::{param_specs, Network, NetworkConfig};
use neurodiff::noise::NoiseMode;
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::sim::{simulate_collect, Run};
use neurodiff::Error;

fn table(conn: &Connectome, given: &[(&str, ParamValue)]) -> ParamTable {
    let given: Vec<(String, ParamValue)> = given
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    ParamTable::new(
        &param_specs(
            neurodiff::models::find("mpr").unwrap(),
            CouplingKind::Linear,
        ),
        &given,
        conn.n,
        None,
    )
    .unwrap()
}

fn run_fused<T: neurodiff::fused::Real>(
    conn: &Connectome,
    t: &ParamTable,
    run: &Run,
    threads: usize,
) -> Result<Vec<f32>, Error> {
    let x0: Vec<f64> = [0.1f64, -2.0]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, conn.n))
        .collect();
    let fr = FusedRun {
        connectome: conn,
        network: &NetworkConfig::new("mpr"),
        params: t,
        x0: &x0,
        x0_rows: 1,
        batch: t.batch,
        run,
        threads,
    };
    fused_samples::<T>(&fr)
}

fn run_tensor<B: Backend>(conn: &Connectome, t: &ParamTable, run: &Run) -> Result<Vec<f32>, Error> {
    let d = Default::default();
    let net = Network::<B>::new("mpr", conn, None, None, &d)?;
    let x0 = net.initial_state(t.batch, &d);
    let p: Vec<Tensor<B, 2>> = t.tensors(&d);
    Ok(simulate_collect(&net, &p, x0, run)?.0)
}

fn given() -> Vec<(&'static str, ParamValue)> {
    let eta: Vec<f64> = (0..80).map(|i| -5.0 + 0.01 * i as f64).collect();
    vec![
        ("G", ParamValue::Batch(vec![0.2, 0.6, 1.0])),
        (
            "eta",
            ParamValue::Regional {
                rows: 1,
                values: eta,
            },
        ),
    ]
}

#[test]
fn fused_matches_tensor_engine_for_every_integrator_and_monitor() {
    let conn = Connectome::load("hcp80", None).unwrap();
    let t = table(&conn, &given());
    for integrator in Integrator::ALL {
        if integrator == Integrator::ExpEuler {
            // The fused engine refuses it (typed, see the façade tests); nothing to compare.
            let r = run(10, integrator, 0.0, 5, 5);
            assert!(run_fused::<f32>(&conn, &t, &r, 1).is_err());
            continue;
        }
        for (sigma, mode, mean, transient) in [
            (0.0, NoiseMode::None, false, 0),
            (0.02, NoiseMode::Independent, false, 150),
            (0.02, NoiseMode::Shared, true, 0),
        ] {
            if sigma > 0.0 && !integrator.supports_noise() {
                continue;
            }
            let mut r = run(1500, integrator, sigma, 5, 25);
            r.noise.mode = mode;
            r.monitor.mean = mean;
            r.monitor.transient = transient;
            let a = run_fused::<f32>(&conn, &t, &r, 1).unwrap();
            let b = run_tensor::<Nd>(&conn, &t, &r).unwrap();
            assert_eq!(a.len(), b.len());
            let diff = rel_diff(&b, &a);
            assert!(
                diff < 2e-5,
                "{} sigma {sigma} {mode:?} mean {mean}: fused vs tensor differ by {diff}",
                integrator.name()
            );
            // f64 against f64 agrees much more tightly.
            let a64 = run_fused::<f64>(&conn, &t, &r, 1).unwrap();
            let b64 = run_tensor::<Nd64>(&conn, &t, &r).unwrap();
            let diff64 = rel_diff(&b64, &a64);
            assert!(
                diff64 < 1e-6,
                "{}: f64 engines differ by {diff64}",
                integrator.name()
            );
        }
    }
}

#[test]
fn fused_result_does_not_depend_on_threads() {
    let conn = Connectome::load("hcp80", None).unwrap();
    let mut g = given();
    g[0].1 = ParamValue::parse("G", "linspace(0.1,1.0,37)").unwrap();
    let t = table(&conn, &g);
    let r = run(400, Integrator::Heun, 0.03, 9, 20);
    let one = run_fused::<f32>(&conn, &t, &r, 1).unwrap();
    for threads in [2, 3, 5] {
        assert_eq!(
            one,
            run_fused::<f32>(&conn, &t, &r, threads).unwrap(),
            "{threads} threads"
        );
    }
}

#[test]
fn fused_reports_divergence_like_the_tensor_engine() {
    let conn = Connectome::load("hcp80", None).unwrap();
    let t = table(
        &conn,
        &[
            ("eta", ParamValue::Scalar(50.0)),
            ("G", ParamValue::Batch(vec![0.0, 5.0])),
        ],
    );
    let mut r = run(5000, Integrator::Euler, 0.0, 0, 1);
    r.dt = 0.5;
    let a = run_fused::<f32>(&conn, &t, &r, 1).unwrap_err();
    let b = run_tensor::<Nd>(&conn, &t, &r).unwrap_err();
    match (a, b) {
        (
            Error::Diverged {
                step: s1, var: v1, ..
            },
            Error::Diverged {
                step: s2, var: v2, ..
            },
        ) => {
            assert_eq!(s1, s2, "first non-finite step");
            assert_eq!(v1, v2);
        }
        (a, b) => panic!("expected two divergence errors, got {a} and {b}"),
    }
}

/// The fused engine observes BOLD (its haemodynamics on the host, from the temporal means of
/// the driving variable) where and as the tensor engine does, transient included.
#[test]
fn fused_bold_matches_tensor_engine() {
    use neurodiff::monitor::BoldMonitor;
    use neurodiff::observe::bold::BoldParams;
    let conn = Connectome::load("hcp80", None).unwrap();
    let t = table(&conn, &given());
    let mut r = run(6000, Integrator::Heun, 0.02, 3, 1000);
    r.monitor.transient = 1300;
    r.monitor.vars = vec![0];
    r.monitor.bold = Some(BoldMonitor {
        var: 0,
        every: 100,
        step_s: 100.0 * r.dt * 1e-3,
        params: BoldParams::default(),
    });
    let a = run_fused::<f64>(&conn, &t, &r, 1).unwrap();
    let b = run_tensor::<Nd64>(&conn, &t, &r).unwrap();
    assert_eq!(a.len(), r.n_samples() * t.batch * conn.n);
    assert!(a.iter().any(|&v| v.abs() > 1e-6), "BOLD never left rest");
    let diff = rel_diff(&b, &a);
    assert!(diff < 1e-5, "f64: fused vs tensor BOLD differ by {diff}");
    // In f32 the fused engine keeps the haemodynamics in f64 (only the neural run is f32), while
    // the f32 tensor engine integrates them in f32, where the BOLD signal (a difference of
    // quantities near 1) loses most of its digits this close to rest: compare with f64.
    let a32 = run_fused::<f32>(&conn, &t, &r, 2).unwrap();
    let diff32 = rel_diff(&b, &a32);
    assert!(
        diff32 < 1e-3,
        "f32 fused vs f64 tensor BOLD differ by {diff32}"
    );
}
