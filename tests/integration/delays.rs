//! Conduction delays against independent facts: zero delays are the undelayed (held-coupling)
//! run; a linear delay equation against its method-of-steps solution and its characteristic
//! root; the locked frequency and phase of two delay-coupled Kuramoto oscillators against the
//! phase-locking equation and its stability condition; batch = separate runs and independence of
//! the chunk length with delays; and gradients through the delay history against central finite
//! differences and the full tape.
//!
//! How the engine treats delays (`src/network.rs`): with delays the coupling is evaluated once
//! per step from the state at the start of the step and held for every stage (as TVB), and step
//! `n → n + 1` reads what source `j` sent at step `n − d_ij`, `d_ij = rint(L_ij / (speed dt))`.
//! Before the first step the history holds the initial value.

use crate::common::*;
use burn::backend::Autodiff;
use burn::prelude::{Backend, Tensor, TensorData};
use neurodiff::connectome::Connectome;
use neurodiff::coupling::CouplingKind;
use neurodiff::fused::{FusedRun, Real};
use neurodiff::grad::{value_and_grad, value_and_grad_full};
use neurodiff::integrate::Integrator;
use neurodiff::io::Array;
use neurodiff::monitor::Monitor;
use neurodiff::network::{param_specs, Delays, Network, NetworkConfig};
use neurodiff::noise::{Noise, NoiseMode, NoiseSource};
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::sim::{simulate, Run};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A connectome from row-major `[target][source]` weights and lengths.
fn conn_from(n: usize, weights: Vec<f64>, lengths: Vec<f64>) -> Connectome {
    Connectome::from_arrays(
        Array {
            data: weights,
            shape: vec![n, n],
        },
        Some(Array {
            data: lengths,
            shape: vec![n, n],
        }),
        None,
        "test",
    )
    .unwrap()
}

/// Some regions of the bundled HCP connectome (both hemispheres), weights scaled to max 1.
fn hcp_subset(idx: &[usize]) -> Connectome {
    let mut c = Connectome::load("hcp80", None).unwrap().subset(idx);
    c.normalize(neurodiff::connectome::Normalization::Max);
    c
}

const SUBSET: [usize; 8] = [0, 3, 7, 12, 40, 43, 47, 52];

/// Everything a run needs besides the run settings, for both engines.
struct Setup {
    conn: Connectome,
    cfg: NetworkConfig,
    table: ParamTable,
    /// Initial state `[x0_rows, vars, nodes]`.
    x0: Vec<f64>,
    x0_rows: usize,
}

impl Setup {
    fn new(
        conn: Connectome,
        cfg: NetworkConfig,
        given: &[(&str, ParamValue)],
        x0: Vec<f64>,
    ) -> Self {
        let spec = neurodiff::models::find(&cfg.model).unwrap();
        let kind = cfg
            .coupling
            .unwrap_or_else(|| CouplingKind::from(spec.coupling_function));
        let given: Vec<(String, ParamValue)> = given
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        let table = ParamTable::new(&param_specs(spec, kind), &given, conn.n, None).unwrap();
        let per_row = spec.n_vars() * conn.n;
        assert_eq!(x0.len() % per_row, 0);
        let x0_rows = x0.len() / per_row;
        Self {
            conn,
            cfg,
            table,
            x0,
            x0_rows,
        }
    }

    fn n_vars(&self) -> usize {
        neurodiff::models::find(&self.cfg.model).unwrap().n_vars()
    }

    /// The initial state as `[batch, nodes]` tensors.
    fn x0_tensors<B: Backend>(&self, d: &B::Device) -> Vec<Tensor<B, 2>> {
        let (nv, n, batch) = (self.n_vars(), self.conn.n, self.table.batch);
        (0..nv)
            .map(|v| {
                let vals: Vec<f64> = (0..batch)
                    .flat_map(|b| {
                        let r = if self.x0_rows == 1 { 0 } else { b };
                        self.x0[(r * nv + v) * n..(r * nv + v + 1) * n].to_vec()
                    })
                    .collect();
                Tensor::from_data(
                    TensorData::new(vals, [batch, n]),
                    neurodiff::float_opts::<B>(d),
                )
            })
            .collect()
    }
}

/// Runs the tensor engine and returns the samples `[samples, batch, vars, nodes]` in `f64`.
fn tensor_run<B: Backend>(s: &Setup, run: &Run) -> Vec<f64> {
    let d = Default::default();
    let net = Network::<B>::build(&s.cfg, &s.conn, run.dt, &d).unwrap();
    let p = s.table.tensors::<B>(&d);
    let mut out = Vec::new();
    simulate(
        &net,
        &p,
        s.x0_tensors::<B>(&d),
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
    .unwrap();
    out
}

/// Runs the fused engine in float type `T` (samples come back as `f32`).
fn fused_run<T: Real>(s: &Setup, run: &Run) -> Vec<f64> {
    let fr = FusedRun {
        connectome: &s.conn,
        network: &s.cfg,
        params: &s.table,
        x0: &s.x0,
        x0_rows: s.x0_rows,
        batch: s.table.batch,
        run,
        threads: 1,
    };
    fused_samples::<T>(&fr)
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Run settings: all variables recorded every `every` steps.
fn run_of(
    n_vars: usize,
    dt: f64,
    steps: usize,
    integrator: Integrator,
    sigma: f64,
    every: usize,
) -> Run {
    Run {
        dt,
        steps,
        integrator,
        noise: Noise {
            sigma: vec![sigma; n_vars],
            mode: if sigma > 0.0 {
                NoiseMode::Independent
            } else {
                NoiseMode::None
            },
            seed: 17,
            source: NoiseSource::Host,
        },
        chunk: 250,
        monitor: Monitor {
            every,
            mean: false,
            transient: 0,
            vars: (0..n_vars).collect(),
            bold: None,
        },
    }
}

fn cfg(model: &str, speed: Option<f64>, hold: bool) -> NetworkConfig {
    NetworkConfig {
        speed,
        hold_coupling: hold,
        ..NetworkConfig::new(model)
    }
}

/// Largest absolute difference relative to the largest magnitude of `a`.
fn rel64(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

/// MPR initial state `[1, 2, nodes]` with some spread over the nodes.
fn mpr_x0(n: usize) -> Vec<f64> {
    let r = (0..n).map(|i| 0.05 + 0.02 * (i % 4) as f64);
    let v = (0..n).map(|i| -2.0 + 0.15 * (i % 5) as f64);
    r.chain(v).collect()
}

/// The root of a continuous `f` on `[lo, hi]` where it changes sign, by bisection.
fn bisect(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let flo = f(lo);
    assert!(flo * f(hi) <= 0.0, "no sign change on [{lo}, {hi}]");
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if (f(mid) > 0.0) == (flo > 0.0) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Every root of `f` on `[lo, hi]` (sign changes on a fine grid, refined by bisection).
fn all_roots(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> Vec<f64> {
    let n = 20_000;
    let xs: Vec<f64> = (0..=n)
        .map(|k| lo + (hi - lo) * k as f64 / n as f64)
        .collect();
    xs.windows(2)
        .filter(|w| f(w[0]) == 0.0 || f(w[0]) * f(w[1]) < 0.0)
        .map(|w| bisect(&f, w[0], w[1]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Zero delays.

#[test]
fn zero_delays_reproduce_the_undelayed_run() {
    let base = hcp_subset(&SUBSET);
    let n = base.n;
    let mut zero_len = base.clone();
    zero_len.lengths = Some(vec![0.0; n * n]);
    // Every delay rounds to 0 steps: with zero lengths at any speed, or real lengths (tens of
    // mm) at an enormous speed.
    assert!(
        Delays::from_lengths(zero_len.lengths.as_ref().unwrap(), 2.0, 0.01)
            .unwrap()
            .steps
            .iter()
            .all(|&d| d == 0)
    );
    let fast = Delays::from_lengths(base.lengths.as_ref().unwrap(), 1e12, 0.01).unwrap();
    assert!(fast.steps.iter().all(|&d| d == 0) && fast.horizon == 1);
    let given = [
        ("G", ParamValue::Batch(vec![0.6, 1.8])),
        ("eta", ParamValue::Scalar(-4.6)),
    ];
    let x0 = mpr_x0(n);
    // The reference: no delays, coupling held over each step (what delays imply).
    let held = Setup::new(base.clone(), cfg("mpr", None, true), &given, x0.clone());
    let variants = [
        Setup::new(
            zero_len.clone(),
            cfg("mpr", Some(2.0), false),
            &given,
            x0.clone(),
        ),
        Setup::new(
            base.clone(),
            cfg("mpr", Some(1e12), false),
            &given,
            x0.clone(),
        ),
    ];
    for (integrator, sigma) in [
        (Integrator::Heun, 0.02),
        (Integrator::Euler, 0.02),
        (Integrator::Rk4, 0.0),
    ] {
        let r = run_of(2, 0.01, 1200, integrator, sigma, 10);
        let want = tensor_run::<Nd64>(&held, &r);
        let want_fused = fused_run::<f64>(&held, &r);
        assert!(want.iter().all(|v| v.is_finite()));
        for (k, s) in variants.iter().enumerate() {
            // Same operations up to the summation order of the coupling sums: f64 round-off.
            let got = tensor_run::<Nd64>(s, &r);
            let diff = rel64(&want, &got);
            assert!(
                diff <= 1e-12,
                "{integrator:?}, variant {k}: tensor engine, zero delays vs undelayed: {diff:e}"
            );
            // The fused engine returns f32 samples: at most an f32 rounding apart.
            let got = fused_run::<f64>(s, &r);
            let diff = rel64(&want_fused, &got);
            assert!(
                diff <= 1e-7,
                "{integrator:?}, variant {k}: fused engine, zero delays vs undelayed: {diff:e}"
            );
        }
        // Euler has a single stage, so holding the coupling changes nothing: zero delays equal
        // the default (per-stage coupling) run too.
        if integrator == Integrator::Euler {
            let plain = Setup::new(base.clone(), cfg("mpr", None, false), &given, x0.clone());
            let d = rel64(&tensor_run::<Nd64>(&plain, &r), &want);
            assert!(d <= 1e-12, "Euler: held vs per-stage coupling {d:e}");
        }
    }
    // Real delays (speed 2 mm/ms: tens of ms) do change the run.
    let slow = Setup::new(base.clone(), cfg("mpr", Some(2.0), false), &given, x0);
    let r = run_of(2, 0.01, 1200, Integrator::Heun, 0.0, 10);
    let d = rel64(
        &tensor_run::<Nd64>(&held, &r),
        &tensor_run::<Nd64>(&slow, &r),
    );
    assert!(d > 1e-3, "delays had no effect ({d:e})");
}

// ---------------------------------------------------------------------------------------------
// 2. A linear delay equation with a known solution.

/// `x0' = γ x0 + G x1(t − s)`, `x1' = γ x1` (node 1 drives node 0 through one edge with delay
/// `s`), with constant history `x(t ≤ 0) = x(0) = (b, a)`. Method of steps: `x1 = a e^{γt}`
/// (for `t ≥ 0`; `a` before), so on `[0, s]` the input is the constant `G a` and
/// `x0 = (b + G a/γ) e^{γt} − G a/γ`; for `t ≥ s`, `x0' = γ x0 + G a e^{γ(t−s)}` gives
/// `x0 = e^{γ(t−s)} (x0(s) + G a (t − s))`.
fn linear_delay_exact(t: f64, s: f64, gamma: f64, g: f64, a: f64, b: f64) -> (f64, f64) {
    let x1 = a * (gamma * t).exp();
    let first = |t: f64| (b + g * a / gamma) * (gamma * t).exp() - g * a / gamma;
    let x0 = if t <= s {
        first(t)
    } else {
        (gamma * (t - s)).exp() * (first(s) + g * a * (t - s))
    };
    (x0, x1)
}

#[test]
fn linear_delay_equation_matches_the_method_of_steps() {
    let (gamma, g, tau, a, b) = (-0.2, 0.8, 3.0, 1.0, 0.5);
    let t_end = 12.0;
    // W[0][1] = 1: node 1 drives node 0; length τ mm at 1 mm/ms.
    let conn = conn_from(2, vec![0.0, 1.0, 0.0, 0.0], vec![0.0, tau, 0.0, 0.0]);
    let s = Setup::new(
        conn,
        cfg("linear", Some(1.0), false),
        &[
            ("gamma", ParamValue::Scalar(gamma)),
            ("G", ParamValue::Scalar(g)),
        ],
        vec![b, a],
    );
    // Samples every 0.1 ms.
    let errors = |integrator: Integrator, dt: f64, shift: f64| -> (f64, f64) {
        let steps = (t_end / dt).round() as usize;
        let every = (0.1 / dt).round() as usize;
        let d = Delays::from_lengths(s.conn.lengths.as_ref().unwrap(), 1.0, dt).unwrap();
        assert_eq!(d.steps[1], (tau / dt).round() as usize);
        let r = run_of(1, dt, steps, integrator, 0.0, every);
        let out = tensor_run::<Nd64>(&s, &r);
        // Max error over [0, τ] and over the whole run, against the solution with delay τ + shift.
        let (mut e_first, mut e_all) = (0f64, 0f64);
        for (k, pair) in out.chunks(2).enumerate() {
            let t = (k + 1) as f64 * every as f64 * dt;
            let (x0, x1) = linear_delay_exact(t, tau + shift, gamma, g, a, b);
            let e = (pair[0] - x0).abs().max((pair[1] - x1).abs());
            if t <= tau + 1e-9 {
                e_first = e_first.max(e);
            }
            e_all = e_all.max(e);
        }
        (e_first, e_all)
    };
    for integrator in Integrator::ALL {
        // Exponential Euler integrates this linear equation exactly for an input held over the
        // step (the linear model gives its linear part), so here it is exact on [0, τ] like RK4
        // and otherwise behaves as a second-order scheme: the hold's lag is its only error.
        let exact_ode = matches!(integrator, Integrator::Rk4 | Integrator::ExpEuler);
        let p = if integrator == Integrator::ExpEuler {
            2
        } else {
            integrator.order() as i32
        };
        let (dt1, dt2) = (0.02, 0.01);
        // On [0, τ] the delayed input is the constant G·a from the initial history, so the
        // solution is that of an ODE: the integrator's own order p.
        let (f1, _) = errors(integrator, dt1, 0.0);
        let (f2, _) = errors(integrator, dt2, 0.0);
        if exact_ode {
            // RK4: error ~ dt^4 / 120-ish times derivatives of order |γ|^5 · 1; exponential
            // Euler: exact. Both far below 1e-10.
            assert!(f1 < 1e-10, "{integrator:?} on [0, τ]: {f1:e}");
        } else {
            let order = (f1 / f2).log2();
            assert!(
                (order - p as f64).abs() < 0.15,
                "{integrator:?} on [0, τ]: measured order {order:.3} ({f1:e}, {f2:e})"
            );
        }
        // Over the whole run the coupling is held over each step, i.e. the input of step
        // [t_n, t_n + dt] is G·x1(t_n − τ): to leading order that is the input with delay
        // τ + dt/2 (midpoint rule), so the run converges at order min(p, 2) to the solution
        // with delay τ + dt/2, and only at order 1 to the one with delay τ. An off-by-one delay
        // (τ ± dt) would be an O(dt) error in both.
        let (_, a1) = errors(integrator, dt1, dt1 / 2.0);
        let (_, a2) = errors(integrator, dt2, dt2 / 2.0);
        let order = (a1 / a2).log2();
        let expect = p.min(2) as f64;
        assert!(
            (order - expect).abs() < 0.25,
            "{integrator:?}, delay τ + dt/2: measured order {order:.3} ({a1:e}, {a2:e})"
        );
        let (_, c1) = errors(integrator, dt1, 0.0);
        let (_, c2) = errors(integrator, dt2, 0.0);
        let order = (c1 / c2).log2();
        assert!(
            (order - 1.0).abs() < 0.25,
            "{integrator:?}, delay τ: measured order {order:.3} ({c1:e}, {c2:e})"
        );
        // For p ≥ 2 that first-order error is the effect of delaying the input
        // u(t) = G a e^{γ(t−τ)} by dt/2: δx0(t) = ∫_τ^t e^{γ(t−s)} |u'(s)| dt/2 ds
        // = (dt/2) G a |γ| (t − τ) e^{γ(t−τ)}, largest at t − τ = 1/|γ|: (dt/2) G a / e.
        if p >= 2 {
            let predicted = dt2 / 2.0 * g * a / std::f64::consts::E;
            assert!(
                (c2 / predicted - 1.0).abs() < 0.05,
                "{integrator:?}: error {c2:e}, predicted {predicted:e}"
            );
        }
    }
}

/// The symmetric pair `x' = γ x + G x(t − τ)` decays like `e^{λt}` with `λ` the rightmost root
/// of `λ = γ + G e^{−λτ}` (real for `G > 0`: `λ = γ + W₀(G τ e^{−γτ}) / τ`).
#[test]
fn symmetric_pair_decays_at_the_characteristic_root() {
    let (gamma, g, tau) = (-1.0, 0.5, 2.0);
    let dt = 0.01;
    let conn = conn_from(2, vec![0.0, 1.0, 1.0, 0.0], vec![0.0, tau, tau, 0.0]);
    let s = Setup::new(
        conn,
        cfg("linear", Some(1.0), false),
        &[
            ("gamma", ParamValue::Scalar(gamma)),
            ("G", ParamValue::Scalar(g)),
        ],
        vec![1.0, 1.0],
    );
    let root = |tau: f64| bisect(|l| l - gamma - g * (-l * tau).exp(), gamma, 0.0);
    let lambda = root(tau);
    // The held coupling acts like a delay of τ + dt/2 (see the test above).
    let lambda_eff = root(tau + dt / 2.0);
    let r = run_of(1, dt, 6000, Integrator::Rk4, 0.0, 100);
    let out = tensor_run::<Nd64>(&s, &r);
    // Samples at t = 1, 2, ..., 60 ms, both nodes equal; rate over [40, 60] ms, when the other
    // roots (real parts below −0.6 here) have died out by e^{-0.4·40}.
    let x = |t: usize| out[(t - 1) * 2];
    assert_eq!(
        x(50),
        out[(50 - 1) * 2 + 1],
        "symmetric pair stays symmetric"
    );
    let measured = (x(60) / x(40)).ln() / 20.0;
    let shift = (lambda_eff - lambda).abs();
    assert!(shift > 0.0);
    assert!(
        (measured - lambda_eff).abs() < 0.05 * shift,
        "measured rate {measured}, root {lambda} (τ + dt/2: {lambda_eff})"
    );
    assert!(lambda < -0.05 && lambda > gamma + 0.05, "{lambda}");
}

// ---------------------------------------------------------------------------------------------
// 3. Two delay-coupled Kuramoto oscillators.

/// Runs two identical Kuramoto oscillators (`ω`, coupling `K`, delay `τ` both ways) from phases
/// `(0, φ0)` and returns the common frequency over the last 100 ms and the final phase
/// difference in `[0, 2π)`.
fn kuramoto_pair(
    omega: f64,
    k: f64,
    tau: f64,
    phi0: f64,
    t_end: f64,
    engine: &str,
) -> (f64, f64, f64) {
    let dt = 0.05;
    let conn = conn_from(2, vec![0.0, 1.0, 1.0, 0.0], vec![0.0, tau, tau, 0.0]);
    let s = Setup::new(
        conn,
        cfg("kuramoto", Some(1.0), false),
        &[
            ("omega", ParamValue::Scalar(omega)),
            ("G", ParamValue::Scalar(k)),
        ],
        vec![0.0, phi0],
    );
    let d = Delays::from_lengths(s.conn.lengths.as_ref().unwrap(), 1.0, dt).unwrap();
    assert!((d.steps[1] as f64 * dt - tau).abs() < 1e-12);
    let every = 20; // 1 ms
    let steps = (t_end / dt).round() as usize;
    let r = run_of(1, dt, steps, Integrator::Heun, 0.0, every);
    let out = match engine {
        "tensor" => tensor_run::<Nd64>(&s, &r),
        _ => fused_run::<f64>(&s, &r),
    };
    let m = out.len() / 2;
    let th = |k: usize, i: usize| out[k * 2 + i];
    let span = 100;
    let f0 = (th(m - 1, 0) - th(m - 1 - span, 0)) / span as f64;
    let f1 = (th(m - 1, 1) - th(m - 1 - span, 1)) / span as f64;
    let phase = (th(m - 1, 1) - th(m - 1, 0)).rem_euclid(std::f64::consts::TAU);
    (f0, f1, phase)
}

/// For `θ1' = ω + K sin(θ2(t−τ) − θ1)`, `θ2' = ω + K sin(θ1(t−τ) − θ2)` (our Kuramoto coupling
/// `G Σ_j W_ij sin(θ_j(t − τ_ij) − θ_i)` with `W = [[0, 1], [1, 0]]`), a locked state
/// `θ1 = Ωt`, `θ2 = Ωt + φ` with `φ ∈ {0, π}` needs `Ω = ω − K sin(Ωτ)` (in phase) or
/// `Ω = ω + K sin(Ωτ)` (anti-phase), and is stable iff `K cos(Ωτ) > 0` (in phase) or
/// `K cos(Ωτ) < 0` (anti-phase) (Earl & Strogatz 2003, Phys. Rev. E 67, 036204; Schuster &
/// Wagner 1989). Once locked, the held coupling is constant in time, so Heun is exact and the
/// measured frequency must match the root to round-off.
#[test]
fn delayed_kuramoto_pair_locks_as_theory_predicts() {
    let (omega, k) = (0.5, 0.2);
    let in_phase = |tau: f64| move |w: f64| omega - k * (w * tau).sin() - w;
    let anti_phase = |tau: f64| move |w: f64| omega + k * (w * tau).sin() - w;
    // Every locked frequency lies in [ω − K, ω + K].
    let (lo, hi) = (omega - k - 1e-3, omega + k + 1e-3);
    let mut seen = Vec::new();
    for tau in [1.0, 4.0] {
        // Kτ < 1: the in-phase equation has a single root, and it is stable.
        let roots = all_roots(in_phase(tau), lo, hi);
        assert_eq!(roots.len(), 1, "τ = {tau}: {roots:?}");
        let big_omega = roots[0];
        assert!(k * (big_omega * tau).cos() > 0.0);
        for engine in ["fused", "tensor"] {
            let t_end = if engine == "fused" { 400.0 } else { 300.0 };
            let (f0, f1, phase) = kuramoto_pair(omega, k, tau, 0.3, t_end, engine);
            let dphase = phase.min(std::f64::consts::TAU - phase);
            assert!(
                dphase < 1e-4,
                "τ = {tau}, {engine}: phase difference {phase}"
            );
            for f in [f0, f1] {
                assert!(
                    (f - big_omega).abs() < 1e-6,
                    "τ = {tau}, {engine}: frequency {f}, predicted Ω = {big_omega}"
                );
            }
        }
        seen.push(big_omega);
    }
    // The delay lowers the locked frequency, by a different amount for each delay.
    assert!(
        seen[0] < omega - 0.05 && seen[1] < seen[0] - 0.05,
        "{seen:?}"
    );

    // τ = 6: every in-phase solution is unstable (Ωτ ∈ (π/2, 3π/2) for all Ω in [ω−K, ω+K]),
    // the anti-phase one is stable: from near in-phase the pair must end in anti-phase.
    let tau = 6.0;
    for w in all_roots(in_phase(tau), lo, hi) {
        assert!(k * (w * tau).cos() < 0.0, "in-phase root {w} is stable");
    }
    let stable: Vec<f64> = all_roots(anti_phase(tau), lo, hi)
        .into_iter()
        .filter(|w| k * (w * tau).cos() < 0.0)
        .collect();
    assert_eq!(stable.len(), 1, "{stable:?}");
    let (f0, f1, phase) = kuramoto_pair(omega, k, tau, 0.3, 400.0, "fused");
    assert!(
        (phase - std::f64::consts::PI).abs() < 1e-4,
        "τ = 6: phase difference {phase}, expected π"
    );
    for f in [f0, f1] {
        assert!(
            (f - stable[0]).abs() < 1e-6,
            "τ = 6: frequency {f}, predicted anti-phase Ω = {}",
            stable[0]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Batch and chunks with delays.

#[test]
fn delayed_batch_equals_separate_runs_and_chunks_do_not_matter() {
    let conn = hcp_subset(&SUBSET);
    let n = conn.n;
    let dt = 0.01;
    // A speed giving delays of up to 40 steps.
    let max_len = conn
        .lengths
        .as_ref()
        .unwrap()
        .iter()
        .cloned()
        .fold(0.0, f64::max);
    let speed = max_len / (40.0 * dt);
    let d = Delays::from_lengths(conn.lengths.as_ref().unwrap(), speed, dt).unwrap();
    assert_eq!(d.horizon, 41);
    let distinct: std::collections::BTreeSet<usize> = d.steps.iter().copied().collect();
    assert!(distinct.len() > 5, "delays {distinct:?}");
    let gs = [0.5, 1.2, 2.0];
    let etas = [-4.8, -4.6, -4.4];
    // Per batch element a different initial state, to exercise per-element histories.
    let x0: Vec<f64> = (0..3)
        .flat_map(|b| {
            mpr_x0(n)
                .into_iter()
                .map(move |v| v * (1.0 + 0.1 * b as f64))
        })
        .collect();
    let c = cfg("mpr", Some(speed), false);
    let all = Setup::new(
        conn.clone(),
        c.clone(),
        &[
            ("G", ParamValue::Batch(gs.to_vec())),
            ("eta", ParamValue::Batch(etas.to_vec())),
        ],
        x0.clone(),
    );
    let mut r = run_of(2, dt, 900, Integrator::Heun, 0.0, 10);
    let per = 2 * n;
    let samples = 90;
    let t_all = tensor_run::<Nd64>(&all, &r);
    let f_all = fused_run::<f64>(&all, &r);
    for b in 0..3 {
        let one = Setup::new(
            conn.clone(),
            c.clone(),
            &[
                ("G", ParamValue::Scalar(gs[b])),
                ("eta", ParamValue::Scalar(etas[b])),
            ],
            x0[b * per..(b + 1) * per].to_vec(),
        );
        let pick = |v: &[f64]| -> Vec<f64> {
            (0..samples)
                .flat_map(|s| v[(s * 3 + b) * per..(s * 3 + b + 1) * per].to_vec())
                .collect()
        };
        let dt_ = rel64(&tensor_run::<Nd64>(&one, &r), &pick(&t_all));
        assert!(dt_ <= 1e-12, "tensor, element {b}: {dt_:e}");
        let df = rel64(&fused_run::<f64>(&one, &r), &pick(&f_all));
        assert!(df <= 1e-7, "fused, element {b}: {df:e}");
    }
    // The batch elements really differ (so the comparison above is not vacuous).
    assert!(rel64(&t_all[..per], &t_all[per..2 * per]) > 1e-2);
    // Chunk lengths shorter than the delay horizon (the history crosses several chunks),
    // coprime with it and with the sampling, with noise.
    r.noise = run_of(2, dt, 900, Integrator::Heun, 0.01, 10).noise;
    r.chunk = 1000;
    let t_ref = tensor_run::<Nd64>(&all, &r);
    let f_ref = fused_run::<f64>(&all, &r);
    let fast_ref = fused_run::<f32>(&all, &r);
    for chunk in [7, 37, 41, 128] {
        r.chunk = chunk;
        let dt_ = rel64(&t_ref, &tensor_run::<Nd64>(&all, &r));
        assert!(dt_ <= 1e-12, "tensor, chunk {chunk}: {dt_:e}");
        assert_eq!(
            f_ref,
            fused_run::<f64>(&all, &r),
            "fused f64, chunk {chunk}"
        );
        assert_eq!(
            fast_ref,
            fused_run::<f32>(&all, &r),
            "fused f32, chunk {chunk}"
        );
    }
    // And the engines agree on the delayed, noisy run.
    let diff = rel64(&t_ref, &f_ref);
    assert!(diff <= 1e-6, "tensor vs fused with delays: {diff:e}");
}

// ---------------------------------------------------------------------------------------------
// 5. Gradients through the delay history.

/// Checks the chunked gradient of the mean of the first variable over all samples w.r.t. the
/// named parameters against the full tape and central finite differences, for a model on the
/// HCP subset with delays of up to `max_steps` steps.
fn check_delayed_gradient(model: &str, given: &[(&str, f64)], wrt: &[&str], dt: f64) {
    type B = Autodiff<Nd64>;
    let conn = hcp_subset(&SUBSET[..6]);
    let max_len = conn
        .lengths
        .as_ref()
        .unwrap()
        .iter()
        .cloned()
        .fold(0.0, f64::max);
    let max_steps = 30.0;
    let speed = max_len / (max_steps * dt);
    let c = cfg(model, Some(speed), false);
    let spec = neurodiff::models::find(model).unwrap();
    let nv = spec.n_vars();
    let d = Default::default();
    let net = Network::<B>::build(&c, &conn, dt, &d).unwrap();
    let net_in = Network::<Nd64>::build(&c, &conn, dt, &d).unwrap();
    assert_eq!(net_in.delay_horizon(), Some(31));
    let specs = net_in.param_specs();
    let steps = 400;
    let mut r = run_of(nv, dt, steps, Integrator::Heun, 0.0, 10);
    r.monitor.vars = vec![0];

    // Base point and, per parameter, ±h: one batched forward run (batch elements are
    // independent, tested above).
    let base: Vec<f64> = specs
        .iter()
        .map(|s| {
            given
                .iter()
                .find(|g| g.0 == s.name)
                .map_or(s.default, |g| g.1)
        })
        .collect();
    let hs: Vec<f64> = wrt
        .iter()
        .map(|name| {
            let k = specs.iter().position(|s| s.name == *name).unwrap();
            1e-5 * base[k].abs().max(1e-2)
        })
        .collect();
    let batch = 1 + 2 * wrt.len();
    let mut values: Vec<Vec<f64>> = vec![base.clone(); batch];
    for (i, name) in wrt.iter().enumerate() {
        let k = specs.iter().position(|s| s.name == *name).unwrap();
        values[1 + 2 * i][k] += hs[i];
        values[2 + 2 * i][k] -= hs[i];
    }
    let table_of = |rows: &[Vec<f64>]| -> ParamTable {
        let given: Vec<(String, ParamValue)> = specs
            .iter()
            .enumerate()
            .map(|(k, s)| {
                (
                    s.name.to_string(),
                    ParamValue::Batch(rows.iter().map(|v| v[k]).collect()),
                )
            })
            .collect();
        ParamTable::new(&specs, &given, conn.n, None).unwrap()
    };
    let x0_host: Vec<f64> = spec
        .state
        .iter()
        .flat_map(|v| {
            (0..conn.n).map(move |i| {
                let (lo, hi) = v.range;
                lo + (hi - lo) * (0.4 + 0.04 * (i % 5) as f64)
            })
        })
        .collect();
    let mean_first = |out: &[f64], b: usize, batch: usize| -> f64 {
        let n = conn.n;
        let samples = out.len() / (batch * n);
        (0..samples)
            .flat_map(|s| out[(s * batch + b) * n..(s * batch + b + 1) * n].to_vec())
            .sum::<f64>()
            / (samples * n) as f64
    };
    let fd_setup = Setup {
        conn: conn.clone(),
        cfg: c.clone(),
        table: table_of(&values),
        x0: x0_host.clone(),
        x0_rows: 1,
    };
    let out = tensor_run::<Nd64>(&fd_setup, &r);
    let l0 = mean_first(&out, 0, batch);
    let fd: Vec<f64> = (0..wrt.len())
        .map(|i| {
            (mean_first(&out, 1 + 2 * i, batch) - mean_first(&out, 2 + 2 * i, batch))
                / (2.0 * hs[i])
        })
        .collect();

    // Analytic: chunked (chunks of 13 steps, shorter than the 31-step horizon) and full tape.
    let one = Setup {
        table: table_of(std::slice::from_ref(&base)),
        ..fd_setup
    };
    let p = one.table.tensors::<Nd64>(&d);
    let loss = |y: Tensor<B, 4>| -> Tensor<B, 1> {
        let [t, b, _, n] = y.dims();
        y.swap_dims(0, 1)
            .reshape([b, t * n])
            .mean_dim(1)
            .reshape([b])
    };
    let x0 = one.x0_tensors::<Nd64>(&d);
    let ch = value_and_grad(&net, &net_in, &p, x0.clone(), &r, 13, &loss).unwrap();
    let full = value_and_grad_full(&net, &p, x0, &r, &loss).unwrap();
    let lv: f64 = ch.loss.clone().into_scalar();
    assert!(
        (lv - l0).abs() <= 1e-12 * l0.abs().max(1e-12),
        "loss {lv} vs {l0}"
    );
    for (i, name) in wrt.iter().enumerate() {
        let k = specs.iter().position(|s| s.name == *name).unwrap();
        let gc: f64 = ch.grads[k].clone().into_scalar();
        let gf: f64 = full.grads[k].clone().into_scalar();
        // Same arithmetic, different tape segmentation: f64 round-off.
        assert!(
            (gc - gf).abs() <= 1e-9 * gf.abs().max(1e-12),
            "{model} d/d{name}: chunked {gc:e}, full tape {gf:e}"
        );
        // Central differences: truncation O(h²) (relative ~1e-10 for h = 1e-5 |p|) and
        // rounding ~ 1e-16 |L| / h; 1e-6 relative (plus the rounding floor) is well above both.
        let floor = 1e-14 * l0.abs().max(1e-6) / hs[i];
        assert!(
            (gc - fd[i]).abs() <= 1e-6 * fd[i].abs() + floor,
            "{model} d/d{name}: checkpointed {gc:e}, finite differences {:e}",
            fd[i]
        );
        assert!(
            fd[i].abs() > 1e3 * floor,
            "{model} d/d{name} is too small to check"
        );
    }
}

#[test]
fn delayed_gradient_matches_finite_differences_mpr() {
    check_delayed_gradient(
        "mpr",
        &[("G", 1.5), ("eta", -4.6)],
        &["G", "eta", "J"],
        0.01,
    );
}

/// Larter–Breakspear sends `Q_V(V) = QV_max (1 + tanh((V − VT)/d_V))/2`, a function of its own
/// parameters, so the initial history and every history slot depend on `QV_max` and `d_V`.
#[test]
fn delayed_gradient_matches_finite_differences_custom_sent_quantity() {
    check_delayed_gradient(
        "larter_breakspear",
        &[("G", 0.6)],
        &["G", "QV_max", "d_V"],
        0.05,
    );
}
