//! Surrogate gradients of a circuit's objective on the tensor engine ([`TensorEngine`]) under
//! `Autodiff<B>`, by chunked checkpointing (issue 13): memory grows like `T/K` carried states
//! plus one chunk's tape of `K` steps, not like a tape of all `T` steps.
//!
//! The objective is [`super::grad`]'s, computed by the same function ([`objective`]): rates
//! (Hz) over the window from the spike counts, beta power (mV²) of the LFP proxy, and
//! `L = Σ ((r − r*)/r*)² + Σ (ln P − ln P*)²`, one loss per batch element. The derivative is
//! the fused engine's with `surrogate = true`: each spike that happened carries the
//! fast-sigmoid surrogate of its threshold crossing ([`neurodiff_models::Real::spike`], slope
//! per neuron model in 1/mV) into its synaptic events and the spike counts; resets take the
//! spike's value only. The gradient is with respect to a few parameters ([`Seed`]: currents,
//! OU means, projection mean weights, DBS amplitude; see [`TensorEngine::seed`]), in the loss's
//! units per the parameter's (e.g. 1/pA for a current, 1/nS or 1/(mS/cm²) for a weight).
//!
//! The algorithm is [`crate::grad`]'s: the forward pass runs on `B::InnerBackend` (no tape),
//! keeping the carried state ([`TensorState`]: neuron states, OU currents, conductances, delay
//! ring buffers, step) at each chunk's start and what the objective reads (window spike counts,
//! LFP samples); the loss is differentiated once with respect to those; then each chunk, last
//! first, is re-run under `Autodiff<B>` from its start state (OU noise and DBS pulses are
//! functions of `(seed, step, neuron)` and regenerate exactly), and
//! `S_c = Σ outputs_c · dL/d outputs_c + Σ state_{c+1} · dL/d state_{c+1}` is back-propagated,
//! giving `dL/d state_c` for the chunk before and this chunk's share of `dL/dθ`.

use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::backend::AutodiffBackend;
use neurodiff_models::real::{scope, Tx};

use super::circuit::Circuit;
use super::engine::Seed;
use super::grad::{check, no_beta_power, objective, Objective, Window};
use super::tensor::{TensorEngine, TensorState};
use crate::error::{Error, Result};
use crate::grad::leaf;

type T2<B> = Tensor<B, 2>;

/// The objective and its gradient, per batch element (circuit).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEvaluation {
    /// The loss of each batch element.
    pub loss: Vec<f64>,
    /// `∂L_b/∂θ_d`, `[batch][seed]`.
    pub grad: Vec<Vec<f64>>,
    /// Rates over the window, Hz, `[batch][population]`.
    pub rates_hz: Vec<Vec<f64>>,
    /// Beta power, mV², `[batch][population]` (0 where the objective has none).
    pub beta_mv2: Vec<Vec<f64>>,
}

/// What the objective reads from a stretch of steps: spike counts in the window,
/// `[batch, populations]`, and the LFP samples, `[samples, batch, populations]` (none when the
/// stretch has no sample).
struct Observed<B: Backend> {
    counts: T2<B>,
    lfp: Option<Tensor<B, 3>>,
}

/// Runs `len` steps of `e`, observing what the objective reads.
fn observe<B: Backend>(e: &mut TensorEngine<B>, len: u64, w: &Window) -> Result<Observed<B>> {
    let n_pop = e.n_populations();
    let mut counts: Option<T2<B>> = None;
    let mut lfp = Vec::new();
    for _ in 0..len {
        let s = e.steps_done();
        e.step()?;
        if s >= w.start {
            let c = Tensor::cat((0..n_pop).map(|k| e.spikes(k).sum_dim(1)).collect(), 1);
            counts = Some(counts.map_or(c.clone(), |a| a + c));
        }
        if w.samples(s) {
            let mean = |k| e.voltages(k).sum_dim(1) / e.population(k).1 as f64;
            lfp.push(Tensor::cat((0..n_pop).map(mean).collect(), 1));
        }
    }
    let counts = counts.unwrap_or_else(|| {
        let dev = e.voltages(0).device();
        Tensor::zeros([e.batch(), n_pop], crate::float_opts::<B>(&dev))
    });
    let lfp = (!lfp.is_empty()).then(|| Tensor::stack(lfp, 0));
    Ok(Observed { counts, lfp })
}

/// The loss per batch element, `[batch, 1]`, with the rates and beta powers on the host, by
/// [`objective`] on tensor expressions.
/// `[batch][population]` values on the host.
type PerPop = Vec<Vec<f64>>;

fn loss_of<B: Backend>(
    circuits: &[Circuit],
    obj: &Objective,
    w: &Window,
    o: &Observed<B>,
) -> Result<(T2<B>, PerPop, PerPop)> {
    let [batch, n_pop] = o.counts.dims();
    let dev = o.counts.device();
    let sizes: Vec<usize> = circuits[0].populations.iter().map(|p| p.n).collect();
    let (loss, rates, beta) = scope(|| {
        let counts: Vec<Tx<B>> = (0..n_pop)
            .map(|k| Tx::new(o.counts.clone().narrow(1, k, 1)))
            .collect();
        let mut lfp = vec![Vec::new(); n_pop];
        if let Some(l) = &o.lfp {
            for &(k, _) in &obj.beta {
                lfp[k] = (0..l.dims()[0])
                    .map(|j| {
                        let x = l.clone().narrow(0, j, 1).narrow(2, k, 1);
                        Tx::new(x.reshape([batch, 1]))
                    })
                    .collect();
            }
        }
        let (loss, rates, beta) = objective(obj, w, &sizes, &counts, &lfp);
        let t = |x: Tx<B>| x.tensor([batch, 1], &dev);
        let host = |v: Vec<Tx<B>>| host_rows(Tensor::cat(v.into_iter().map(t).collect(), 1));
        (t(loss), host(rates), host(beta))
    });
    for (b, c) in circuits.iter().enumerate() {
        for &(k, _) in &obj.beta {
            no_beta_power(c, k, beta[b][k])?;
        }
    }
    Ok((loss, rates, beta))
}

/// `[rows, cols]` to host rows.
fn host_rows<B: Backend>(t: T2<B>) -> Vec<Vec<f64>> {
    let cols = t.dims()[1];
    let v = t
        .into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .unwrap_or_default();
    v.chunks(cols.max(1)).map(<[f64]>::to_vec).collect()
}

/// Checks the input; the window's steps and each seed's values as `[batch, 1]` tensors.
fn prepare<B: Backend>(
    circuits: &[Circuit],
    seeds: &[Seed],
    obj: &Objective,
    device: &B::Device,
) -> Result<(Window, Vec<T2<B>>)> {
    let c0 = circuits
        .first()
        .ok_or_else(|| Error::setting("circuits", "at least one circuit (batch element)"))?;
    for c in circuits {
        check(c, obj)?;
    }
    let mut theta = Vec::with_capacity(seeds.len());
    for seed in seeds {
        let v = circuits
            .iter()
            .map(|c| seed.value(c))
            .collect::<Result<Vec<f64>>>()?;
        if matches!(seed, Seed::Weight { .. }) && v.contains(&0.0) {
            return Err(Error::param(
                seed.key(c0),
                "cannot differentiate with respect to a mean weight of 0 (every weight is \
                 proportional to it); start from a small positive weight",
            ));
        }
        let n = v.len();
        theta.push(Tensor::from_data(
            TensorData::new(v, [n, 1]),
            crate::float_opts::<B>(device),
        ));
    }
    Ok((Window::new(obj, c0.dt_ms), theta))
}

/// The objective of `obj` for each circuit (a batch: circuits of one structure, as
/// [`TensorEngine::new`] takes them) and its surrogate gradient with respect to `seeds`, by
/// chunked checkpointing with chunks of `chunk` steps (see the module documentation). The run
/// lasts until the window's end, `obj.window_ms.1` ms.
///
/// # Errors
/// A chunk of 0 steps; a bad objective (window, population, target); a seed the tensor engine
/// does not differentiate ([`TensorEngine::seed`]) or a mean weight of 0; whatever
/// [`TensorEngine::new`] reports; a diverging run; no beta power where there is a target.
pub fn value_and_grad<B: AutodiffBackend>(
    circuits: &[Circuit],
    seeds: &[Seed],
    obj: &Objective,
    chunk: usize,
    device: &B::Device,
) -> Result<TensorEvaluation> {
    if chunk == 0 {
        return Err(Error::setting(
            "chunk",
            "0 steps per checkpointed chunk: give at least 1",
        ));
    }
    let (w, theta) = prepare::<B::InnerBackend>(circuits, seeds, obj, device)?;

    // 1. Forward without a tape, keeping each chunk's start state and observations.
    let mut fwd = TensorEngine::<B::InnerBackend>::new(circuits, false, device)?;
    fwd.seed(seeds, &theta)?;
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < w.stop {
        let len = (chunk as u64).min(w.stop - start);
        let state = fwd.state();
        chunks.push((state, len, observe(&mut fwd, len, &w)?));
        start += len;
    }
    let counts = chunks
        .iter()
        .map(|c| c.2.counts.clone())
        .reduce(|a, b| a + b)
        .expect("at least one chunk");
    let samples: Vec<_> = chunks.iter().filter_map(|c| c.2.lfp.clone()).collect();
    let lfp = (!samples.is_empty()).then(|| Tensor::cat(samples, 0));

    // 2. dL/d observations, once.
    let (counts_leaf, counts_used) = leaf::<B, 2>(counts.clone());
    let lfp_leaf = lfp.clone().map(leaf::<B, 3>);
    let seen = Observed {
        counts: counts_used,
        lfp: lfp_leaf.as_ref().map(|l| l.1.clone()),
    };
    let (loss, rates_hz, beta_mv2) = loss_of(circuits, obj, &w, &seen)?;
    let loss_value = loss.clone().inner();
    let g = loss.sum().backward();
    let d_counts = counts_leaf.grad(&g).unwrap_or_else(|| counts.zeros_like());
    let d_lfp = lfp_leaf
        .zip(lfp.as_ref())
        .map(|((l, _), x)| l.grad(&g).unwrap_or_else(|| x.zeros_like()));

    // 3. Backwards over the chunks.
    let mut ad = TensorEngine::<B>::new(circuits, true, device)?;
    let mut grads: Vec<T2<B::InnerBackend>> = theta.iter().map(|t| t.zeros_like()).collect();
    let mut g_state: Option<Vec<T2<B::InnerBackend>>> = None;
    let mut offset = lfp.as_ref().map_or(0, |l| l.dims()[0]);
    for (state, len, _) in chunks.into_iter().rev() {
        let (leaves, used): (Vec<_>, Vec<_>) = state.tensors.into_iter().map(leaf::<B, 2>).unzip();
        ad.set_state(TensorState {
            step: state.step,
            tensors: used,
        })?;
        let (th_leaves, th_used): (Vec<_>, Vec<_>) =
            theta.iter().cloned().map(leaf::<B, 2>).unzip();
        ad.seed(seeds, &th_used)?;
        let o = observe(&mut ad, len, &w)?;
        let mut s = (o.counts * Tensor::from_inner(d_counts.clone())).sum();
        if let (Some(l), Some(dl)) = (o.lfp, &d_lfp) {
            let m = l.dims()[0];
            offset -= m;
            s = s + (l * Tensor::from_inner(dl.clone().narrow(0, offset, m))).sum();
        }
        if let Some(gs) = &g_state {
            for (t, gt) in ad.state().tensors.into_iter().zip(gs) {
                s = s + (t * Tensor::from_inner(gt.clone())).sum();
            }
        }
        let gr = s.backward();
        for (acc, th) in grads.iter_mut().zip(&th_leaves) {
            if let Some(gt) = th.grad(&gr) {
                *acc = acc.clone() + gt;
            }
        }
        g_state = Some(
            leaves
                .iter()
                .map(|t| {
                    t.grad(&gr)
                        .unwrap_or_else(|| t.clone().inner().zeros_like())
                })
                .collect(),
        );
    }
    Ok(evaluation(loss_value, &grads, rates_hz, beta_mv2))
}

/// [`value_and_grad`] with one tape over the whole run (memory grows with every step): the
/// reference the chunked gradient is tested against, and a choice for short runs.
///
/// # Errors
/// As [`value_and_grad`].
pub fn value_and_grad_full<B: AutodiffBackend>(
    circuits: &[Circuit],
    seeds: &[Seed],
    obj: &Objective,
    device: &B::Device,
) -> Result<TensorEvaluation> {
    let (w, theta) = prepare::<B::InnerBackend>(circuits, seeds, obj, device)?;
    let mut ad = TensorEngine::<B>::new(circuits, true, device)?;
    let (th_leaves, th_used): (Vec<_>, Vec<_>) = theta.iter().cloned().map(leaf::<B, 2>).unzip();
    ad.seed(seeds, &th_used)?;
    let o = observe(&mut ad, w.stop, &w)?;
    let (loss, rates_hz, beta_mv2) = loss_of(circuits, obj, &w, &o)?;
    let g = loss.clone().sum().backward();
    let grads: Vec<_> = th_leaves
        .iter()
        .zip(&theta)
        .map(|(t, t0)| t.grad(&g).unwrap_or_else(|| t0.zeros_like()))
        .collect();
    Ok(evaluation(loss.inner(), &grads, rates_hz, beta_mv2))
}

fn evaluation<B: Backend>(
    loss: T2<B>,
    grads: &[T2<B>],
    rates_hz: Vec<Vec<f64>>,
    beta_mv2: Vec<Vec<f64>>,
) -> TensorEvaluation {
    let loss: Vec<f64> = host_rows(loss).into_iter().map(|r| r[0]).collect();
    let per_seed: Vec<Vec<f64>> = grads
        .iter()
        .map(|g| host_rows(g.clone()).into_iter().map(|r| r[0]).collect())
        .collect();
    let grad = (0..loss.len())
        .map(|b| per_seed.iter().map(|g| g[b]).collect())
        .collect();
    TensorEvaluation {
        loss,
        grad,
        rates_hz,
        beta_mv2,
    }
}
