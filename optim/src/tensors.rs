//! Shared helpers for lists of parameter tensors whose leading dimension is the restart index.

use burn::prelude::{Backend, Tensor};

use crate::error::{Error, Result};

/// Checks that `params` and `grads` are non-empty lists of the same length whose tensors have
/// pairwise equal shapes and a common leading dimension; returns that dimension (the number of
/// restarts `R`).
pub(crate) fn check_pairs<B: Backend, const D: usize>(
    context: &'static str,
    params: &[Tensor<B, D>],
    grads: &[Tensor<B, D>],
) -> Result<usize> {
    if D == 0 {
        return Err(Error::shape(
            context,
            "tensors need a leading restart dimension",
        ));
    }
    if params.is_empty() {
        return Err(Error::shape(context, "the parameter list is empty"));
    }
    if params.len() != grads.len() {
        return Err(Error::shape(
            context,
            format!(
                "{} parameter tensors but {} gradient tensors",
                params.len(),
                grads.len()
            ),
        ));
    }
    let r = params[0].dims()[0];
    for (k, (p, g)) in params.iter().zip(grads).enumerate() {
        let (pd, gd) = (p.dims(), g.dims());
        if pd != gd {
            return Err(Error::shape(
                context,
                format!("parameter {k} has shape {pd:?} but its gradient has shape {gd:?}"),
            ));
        }
        if pd[0] != r {
            return Err(Error::shape(
                context,
                format!(
                    "parameter {k} has shape {pd:?}, but parameter 0 has {r} restarts (leading \
                     dimension)"
                ),
            ));
        }
    }
    Ok(r)
}

/// Per-restart sum of squares over all tensors of the list: `[R]`.
pub(crate) fn row_sq_sum<B: Backend, const D: usize>(ts: &[Tensor<B, D>]) -> Tensor<B, 1> {
    ts.iter()
        .map(|t| {
            let r = t.dims()[0];
            let n = t.shape().num_elements() / r.max(1);
            t.clone().square().reshape([r, n]).sum_dim(1).reshape([r])
        })
        .reduce(|a, b| a + b)
        .expect("non-empty list (checked by the caller)")
}

/// Reshapes a per-restart `[R]` tensor to `[R, 1, …, 1]` (rank `D`) for broadcasting.
pub(crate) fn per_restart<B: Backend, const D: usize>(x: Tensor<B, 1>) -> Tensor<B, D> {
    let mut shape = [1usize; D];
    shape[0] = x.dims()[0];
    x.reshape(shape)
}
