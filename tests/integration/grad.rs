//! Gradients through the simulation: the chunked checkpointed gradient against the full tape
//! (f32 and f64), against central finite differences of the loss (deterministic runs, f64), and
//! across chunk lengths and monitors that straddle chunk boundaries.

use crate::common::*;
use burn::backend::Autodiff;
use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::backend::AutodiffBackend;
use neurodiff::grad::{value_and_grad, value_and_grad_full, ValueAndGrad};
use neurodiff::integrate::Integrator;
use neurodiff::network::Network;
use neurodiff::observe::fc;
use neurodiff::params::ParamValue;
use neurodiff::sim::{to_host, Run};
use neurodiff_optim::fc_corr_loss;

/// 1 − corr(FC(r), FC_emp) per batch element, from samples `[T, R, 1, N]`.
fn fc_loss<B: Backend>(y: Tensor<B, 4>, emp: &Tensor<B, 2>) -> Tensor<B, 1> {
    let [t, r, _, n] = y.dims();
    let x = y.swap_dims(0, 1).reshape([r, t, n]);
    fc_corr_loss(fc(x), emp.clone()).unwrap()
}

fn emp_fc<B: Backend>(d: &B::Device) -> Tensor<B, 2> {
    let a = neurodiff::connectome::bundled_fc_hcp80();
    Tensor::from_data(
        TensorData::new(
            a.data.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            [80, 80],
        ),
        neurodiff::float_opts::<B>(d),
    )
}

struct Case<B: AutodiffBackend> {
    net: Network<B>,
    net_in: Network<B::InnerBackend>,
    params: Vec<Tensor<B::InnerBackend, 2>>,
    batch: usize,
}

fn case<B: AutodiffBackend>(given: &[(&str, ParamValue)]) -> Case<B> {
    let d = Default::default();
    let (net, _) = mpr_net::<B>(&d);
    let (net_in, _) = mpr_net::<B::InnerBackend>(&d);
    let (params, batch) = params(&net_in, given, &d);
    Case {
        net,
        net_in,
        params,
        batch,
    }
}

fn grads_of<B: AutodiffBackend>(
    c: &Case<B>,
    run: &Run,
    chunk: Option<usize>,
) -> ValueAndGrad<B::InnerBackend> {
    let d = Default::default();
    let emp = emp_fc::<B>(&d);
    let loss = move |y: Tensor<B, 4>| fc_loss(y, &emp);
    let x0 = c.net_in.initial_state(c.batch, &d);
    match chunk {
        Some(k) => value_and_grad(&c.net, &c.net_in, &c.params, x0, run, k, &loss).unwrap(),
        None => value_and_grad_full(&c.net, &c.params, x0, run, &loss).unwrap(),
    }
}

fn to_host64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}

fn flat<B: Backend>(g: &[Tensor<B, 2>]) -> Vec<f32> {
    g.iter().flat_map(|t| to_host(t.clone())).collect()
}

/// Relative difference between two gradient lists, per parameter tensor (so a small gradient
/// is not hidden by a large one).
fn grad_diff<B: Backend>(a: &[Tensor<B, 2>], b: &[Tensor<B, 2>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| rel_diff(&to_host(x.clone()), &to_host(y.clone())))
        .fold(0.0, f64::max)
}

/// A run recording r only (the FC loss reads one variable).
fn run_r(steps: usize, integrator: Integrator, sigma: f64, seed: u64, every: usize) -> Run {
    let mut r = run(steps, integrator, sigma, seed, every);
    r.monitor.vars = vec![0];
    r
}

fn eta_regional() -> ParamValue {
    ParamValue::Regional {
        rows: 1,
        values: (0..80).map(|i| -4.8 - 0.003 * i as f64).collect(),
    }
}

#[test]
fn chunked_equals_full_tape_f32() {
    type B = Autodiff<Nd>;
    let c = case::<B>(&[
        ("G", ParamValue::Batch(vec![0.4, 0.8])),
        ("eta", eta_regional()),
    ]);
    let r = run_r(2000, Integrator::Heun, 0.01, 4, 10);
    let full = grads_of(&c, &r, None);
    for k in [100, 37] {
        let ch = grads_of(&c, &r, Some(k));
        let dl = rel_diff(&to_host(full.loss.clone()), &to_host(ch.loss.clone()));
        assert!(dl < 1e-6, "K={k}: loss differs by {dl}");
        // Norm-wise over the whole gradient vector: ‖g_chunked − g_full‖ / ‖g_full‖.
        let (a, b) = (flat(&full.grads), flat(&ch.grads));
        let num: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum();
        let den: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
        let dg = (num / den).sqrt();
        assert!(
            dg <= 1e-4,
            "K={k}: gradients differ by {dg} (relative, norm-wise)"
        );
    }
    // The gradient is not trivially zero.
    let g = flat(&full.grads);
    assert!(g.iter().any(|v| v.abs() > 1e-6));
}

#[test]
fn chunked_equals_full_tape_f64_with_mean_monitor() {
    type B = Autodiff<Nd64>;
    let c = case::<B>(&[
        ("G", ParamValue::Batch(vec![0.5, 0.9])),
        ("eta", eta_regional()),
        ("tau", ParamValue::Scalar(1.1)),
    ]);
    let mut r = run_r(1500, Integrator::Heun, 0.01, 8, 15);
    r.monitor.mean = true;
    r.monitor.transient = 55;
    let full = grads_of(&c, &r, None);
    // 40 does not divide the 15-step windows: the accumulator crosses chunk boundaries.
    let ch = grads_of(&c, &r, Some(40));
    let dg = grad_diff(&full.grads, &ch.grads);
    assert!(dg < 1e-9, "f64 gradients differ by {dg}");
}

#[test]
fn gradient_matches_central_finite_differences() {
    type B = Autodiff<Nd64>;
    let base = [("G", 0.7), ("eta", -4.7), ("J", 14.5), ("Delta", 1.1)];
    let given = |shift: Option<(usize, f64)>| -> Vec<(&'static str, ParamValue)> {
        base.iter()
            .enumerate()
            .map(|(i, &(n, v))| {
                let dv = match shift {
                    Some((j, h)) if j == i => h,
                    _ => 0.0,
                };
                (n, ParamValue::Scalar(v + dv))
            })
            .collect()
    };
    // Deterministic: the loss is a smooth function of the parameters.
    let r = run_r(3000, Integrator::Heun, 0.0, 0, 10);
    let c = case::<B>(&given(None));
    let g = grads_of(&c, &r, Some(128));
    let specs = c.net_in.param_specs();
    for (i, &(name, _)) in base.iter().enumerate() {
        let k = specs.iter().position(|s| s.name == name).unwrap();
        let analytic: f64 = to_host64(g.grads[k].clone())[0];
        let h = 1e-5;
        let lp = to_host64(grads_of(&case::<B>(&given(Some((i, h)))), &r, Some(3000)).loss)[0];
        let lm = to_host64(grads_of(&case::<B>(&given(Some((i, -h)))), &r, Some(3000)).loss)[0];
        let fd = (lp - lm) / (2.0 * h);
        // Central differences have O(h^2) truncation and O(eps/h) rounding error: with
        // h = 1e-5 in f64 both are far below 1e-5 relative to gradients of order 1e-3..1.
        let tol = 1e-5 * fd.abs().max(1e-3);
        assert!(
            (analytic - fd).abs() <= tol,
            "d loss / d {name}: checkpointed {analytic:e}, finite differences {fd:e}"
        );
    }
}

#[test]
fn batch_elements_get_their_own_gradients() {
    // The gradient for batch element 1 must equal the gradient of a run of element 1 alone.
    type B = Autodiff<Nd64>;
    let r = run_r(1000, Integrator::Heun, 0.0, 0, 10);
    let both = grads_of(
        &case::<B>(&[
            ("G", ParamValue::Batch(vec![0.3, 0.8])),
            ("eta", ParamValue::Batch(vec![-4.9, -4.6])),
        ]),
        &r,
        Some(250),
    );
    let one = grads_of(
        &case::<B>(&[
            ("G", ParamValue::Batch(vec![0.8])),
            ("eta", ParamValue::Batch(vec![-4.6])),
        ]),
        &r,
        Some(250),
    );
    let c = case::<B>(&[]);
    let specs = c.net_in.param_specs();
    for name in ["G", "eta"] {
        let k = specs.iter().position(|s| s.name == name).unwrap();
        let b = to_host(both.grads[k].clone())[1] as f64;
        let o = to_host(one.grads[k].clone())[0] as f64;
        assert!(
            (b - o).abs() <= 1e-9 * o.abs().max(1e-6),
            "{name}: {b} vs {o}"
        );
    }
}

#[test]
fn chunked_equals_full_tape_through_bold() {
    use neurodiff::monitor::BoldMonitor;
    use neurodiff::observe::bold::BoldParams;
    type B = Autodiff<Nd64>;
    let c = case::<B>(&[
        ("G", ParamValue::Batch(vec![0.5, 0.9])),
        ("eta", eta_regional()),
    ]);
    let mut r = run_r(1400, Integrator::Heun, 0.01, 2, 70);
    // A BOLD step every 7 neural steps, artificially long (0.05 s) so that the haemodynamics
    // move within a short test run.
    r.monitor.bold = Some(BoldMonitor {
        var: 0,
        every: 7,
        step_s: 0.05,
        params: BoldParams::default(),
    });
    let full = grads_of(&c, &r, None);
    // 45 is not a multiple of 7: the BOLD accumulator crosses chunk boundaries.
    let ch = grads_of(&c, &r, Some(45));
    let dg = grad_diff(&full.grads, &ch.grads);
    assert!(dg < 1e-9, "f64 gradients through BOLD differ by {dg}");
    let g = flat(&full.grads);
    assert!(
        g.iter().any(|v| v.abs() > 1e-8),
        "gradient through BOLD is zero"
    );
}
