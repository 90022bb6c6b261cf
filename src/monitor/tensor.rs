//! The observers on the tensor engine: each carried number is a `[batch, nodes]` tensor (part of
//! the engine's carry, so checkpointed and differentiated with the state), and the observer's
//! one generic description runs on tensor expressions.

use burn::prelude::{Backend, Tensor};
use neurodiff_models::real::{self, Tx};

use super::observer::{Observe, Observer};

/// The carry before the first step, `n_state` tensors of `shape`.
pub fn init<B: Backend>(o: &Observer, shape: [usize; 2], device: &B::Device) -> Vec<Tensor<B, 2>> {
    real::scope(|| {
        let mut s = vec![Tx::<B>::constant(0.0); o.n_state()];
        o.init(&mut s);
        s.into_iter().map(|t| t.tensor(shape, device)).collect()
    })
}

fn txs<B: Backend>(x: &[Tensor<B, 2>]) -> Vec<Tx<B>> {
    x.iter().map(|t| Tx::new(t.clone())).collect()
}

/// Records the state `x` after step `n` into the carry `s`.
pub fn record<B: Backend>(o: &Observer, n: usize, x: &[Tensor<B, 2>], s: &mut Vec<Tensor<B, 2>>) {
    if s.is_empty() {
        return;
    }
    let (shape, device) = (s[0].dims(), s[0].device());
    real::scope(|| {
        let xs = txs(x);
        let mut st: Vec<Tx<B>> = s.drain(..).map(Tx::new).collect();
        o.record(n, &xs, &mut st);
        s.extend(st.into_iter().map(|t| t.tensor(shape, &device)));
    });
}

/// A sample, `[batch, n_out, nodes]`, resetting what the observer restarts.
pub fn sample<B: Backend>(
    o: &Observer,
    x: &[Tensor<B, 2>],
    s: &mut Vec<Tensor<B, 2>>,
) -> Tensor<B, 3> {
    let (shape, device) = (x[0].dims(), x[0].device());
    real::scope(|| {
        let xs = txs(x);
        let mut st: Vec<Tx<B>> = s.drain(..).map(Tx::new).collect();
        let mut out = vec![Tx::<B>::constant(0.0); o.n_out()];
        o.sample(&xs, &mut st, &mut out);
        s.extend(st.into_iter().map(|t| t.tensor(shape, &device)));
        let out: Vec<Tensor<B, 2>> = out.into_iter().map(|t| t.tensor(shape, &device)).collect();
        Tensor::stack(out, 1)
    })
}
