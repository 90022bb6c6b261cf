//! Gradients through long simulations by chunked checkpointing.
//!
//! The forward pass runs on `B::InnerBackend` (no tape), keeping only the carried state at
//! chunk boundaries and the observed outputs. The loss is differentiated once with respect to
//! the outputs. Then the chunks are walked backwards: each is re-run from its boundary state
//! under `Autodiff<B>` (its noise regenerated exactly from `(seed, step, batch element)`), and
//! the surrogate
//!
//! ```text
//! S_c = Σ outputs_c · dL/d outputs_c  +  Σ carry_{c+1} · dL/d carry_{c+1}
//! ```
//!
//! is back-propagated, giving `dL/d carry_c` (handed to the previous chunk) and this chunk's
//! share of `dL/d params` (accumulated). Memory grows like `T/K` boundary states plus one
//! chunk's tape of `K` steps, instead of a tape of all `T` steps; the result equals the
//! full-tape gradient up to floating-point rounding (`tests/integration/grad.rs`).

use burn::prelude::{Backend, Tensor};
use burn::tensor::backend::AutodiffBackend;

use crate::error::Result;
use crate::network::Network;
use crate::sim::{all_finite, locate_divergence, run_chunk, Carry, Run};

/// A tracked leaf built from an inner tensor, and the tensor to use in computations.
///
/// Burn 0.21's autodiff keeps one graph per leaf until operations join them; after a merge, the
/// *leaf's own* node id keeps pointing at the emptied graph, so every later operation on the leaf
/// merges again, moving a whole graph each time (quadratic in the number of steps; same logic on
/// Burn's main branch). Using the leaf only through one trivial operation avoids it: the
/// operation's result is tracked correctly, and gradients still reach the leaf.
pub(crate) fn leaf<B: AutodiffBackend, const D: usize>(
    t: Tensor<B::InnerBackend, D>,
) -> (Tensor<B, D>, Tensor<B, D>) {
    let leaf = Tensor::<B, D>::from_inner(t).require_grad();
    let used = leaf.clone().mul_scalar(1.0);
    (leaf, used)
}

/// The outputs of a simulation as the loss sees them: the samples `[samples, batch, vars,
/// nodes]`.
pub type Outputs<B> = Tensor<B, 4>;

/// What a gradient evaluation returns (on the inner, tape-free backend).
pub struct ValueAndGrad<B: Backend> {
    /// Loss per batch element, `[batch]`.
    pub loss: Tensor<B, 1>,
    /// `d (Σ loss) / d params[k]`, each of the shape of `params[k]`.
    pub grads: Vec<Tensor<B, 2>>,
    /// The simulated outputs, `[samples, batch, vars, nodes]`.
    pub outputs: Outputs<B>,
}

/// Value and gradient of `loss(outputs)` with respect to the parameter tensors, by chunked
/// checkpointing with chunks of `chunk` steps (the run's own `chunk` is ignored).
///
/// `net` is the network on the autodiff backend, `net_inner` the same network on its inner
/// backend; `params` and `x0` live on the inner backend. The loss returns one value per batch
/// element; batch elements are independent, so the gradient of their sum gives each element's
/// own gradient in its rows of the parameters.
pub fn value_and_grad<B: AutodiffBackend>(
    net: &Network<B>,
    net_inner: &Network<B::InnerBackend>,
    params: &[Tensor<B::InnerBackend, 2>],
    x0: Vec<Tensor<B::InnerBackend, 2>>,
    run: &Run,
    chunk: usize,
    loss: &dyn Fn(Outputs<B>) -> Tensor<B, 1>,
) -> Result<ValueAndGrad<B::InnerBackend>> {
    run.validate(net.spec().n_vars())?;
    let chunk = chunk.max(1);
    let [batch, nodes] = x0[0].dims();
    let device = x0[0].device();

    // 1. Forward without a tape, keeping boundary states and outputs.
    let mut carry = Carry::start(net_inner, x0, params, run);
    let mut bounds = Vec::new();
    let mut outputs = Vec::new();
    let mut start = 0;
    while start < run.steps {
        let len = chunk.min(run.steps - start);
        let noise = run
            .noise
            .chunk::<B::InnerBackend>(start, len, batch, nodes, run.dt, &device);
        bounds.push((start, len, carry.clone()));
        let (next, samples) = run_chunk(net_inner, params, carry.clone(), &noise, start, len, run);
        if !all_finite(&next.x) {
            return Err(locate_divergence(
                net_inner, params, carry, &noise, start, len, run,
            ));
        }
        outputs.push(samples.map(|s| s.values));
        carry = next;
        start += len;
    }
    let present: Vec<Tensor<B::InnerBackend, 4>> = outputs.iter().flatten().cloned().collect();
    let all = Tensor::cat(present, 0);

    // 2. dL/d outputs, once.
    let (y, y_used) = leaf::<B, 4>(all.clone());
    let l = loss(y_used);
    let loss_value = l.clone().inner();
    let g = l.sum().backward();
    let dy = y.grad(&g).unwrap_or_else(|| all.zeros_like());

    // 3. Backwards over the chunks.
    let mut grads: Vec<Tensor<B::InnerBackend, 2>> =
        params.iter().map(|p| p.zeros_like()).collect();
    let mut g_carry: Option<Vec<Tensor<B::InnerBackend, 2>>> = None;
    let mut offset = dy.dims()[0];
    for (start, len, carry_in) in bounds.into_iter().rev() {
        let (leaves, used): (Vec<_>, Vec<_>) =
            carry_in.tensors().into_iter().map(leaf::<B, 2>).unzip();
        let (p_ad, p_used): (Vec<_>, Vec<_>) = params.iter().cloned().map(leaf::<B, 2>).unzip();
        let noise = run
            .noise
            .chunk::<B>(start, len, batch, nodes, run.dt, &device);
        let mut carry_ad = carry_in.with_tensors(used);
        if start == 0 {
            // The initial history is a function of the initial state and parameters.
            carry_ad.hist = net.initial_history(&carry_ad.x, &p_used);
        }
        let (end, samples) = run_chunk(net, &p_used, carry_ad, &noise, start, len, run);
        let mut terms: Vec<Tensor<B, 1>> = Vec::new();
        if let Some(s) = samples {
            let k = s.values.dims()[0];
            offset -= k;
            let dy_c = Tensor::<B, 4>::from_inner(dy.clone().narrow(0, offset, k));
            terms.push((s.values * dy_c).sum());
        }
        if let Some(gc) = &g_carry {
            for (t, gt) in end.tensors().into_iter().zip(gc) {
                terms.push((t * Tensor::from_inner(gt.clone())).sum());
            }
        }
        if terms.is_empty() {
            // Nothing after this chunk depends on it.
            g_carry = Some(
                leaves
                    .iter()
                    .map(|t| t.clone().inner().zeros_like())
                    .collect(),
            );
            continue;
        }
        let surrogate = Tensor::cat(terms, 0).sum();
        let gr = surrogate.backward();
        for (acc, p) in grads.iter_mut().zip(&p_ad) {
            if let Some(gp) = p.grad(&gr) {
                *acc = acc.clone() + gp;
            }
        }
        g_carry = Some(
            leaves
                .iter()
                .map(|t| {
                    t.grad(&gr)
                        .unwrap_or_else(|| t.clone().inner().zeros_like())
                })
                .collect(),
        );
    }
    Ok(ValueAndGrad {
        loss: loss_value,
        grads,
        outputs: all,
    })
}

/// The same value and gradient with one tape over the whole run (memory grows with every
/// step): the reference the chunked version is tested against, and a choice for short runs.
pub fn value_and_grad_full<B: AutodiffBackend>(
    net: &Network<B>,
    params: &[Tensor<B::InnerBackend, 2>],
    x0: Vec<Tensor<B::InnerBackend, 2>>,
    run: &Run,
    loss: &dyn Fn(Outputs<B>) -> Tensor<B, 1>,
) -> Result<ValueAndGrad<B::InnerBackend>> {
    run.validate(net.spec().n_vars())?;
    let [batch, nodes] = x0[0].dims();
    let device = x0[0].device();
    let (p_ad, p_used): (Vec<_>, Vec<_>) = params.iter().cloned().map(leaf::<B, 2>).unzip();
    let x: Vec<Tensor<B, 2>> = x0.into_iter().map(Tensor::from_inner).collect();
    let noise = run
        .noise
        .chunk::<B>(0, run.steps, batch, nodes, run.dt, &device);
    let carry = Carry::start(net, x, &p_used, run);
    let (_, samples) = run_chunk(net, &p_used, carry, &noise, 0, run.steps, run);
    let y = samples.expect("the run takes at least one sample").values;
    let l = loss(y.clone());
    let g = l.clone().sum().backward();
    let grads = p_ad
        .iter()
        .zip(params)
        .map(|(p, p0)| p.grad(&g).unwrap_or_else(|| p0.zeros_like()))
        .collect();
    Ok(ValueAndGrad {
        loss: l.inner(),
        grads,
        outputs: y.inner(),
    })
}
