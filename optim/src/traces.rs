//! Batches of traces on host slices, shared by the trace losses ([`crate::sdtw`],
//! [`crate::stats`]).
//!
//! A batch is a row-major `[rows, len]` block of `f64`: `rows` traces of `len` samples each (e.g.
//! `B` simulated voltage traces in mV, one per parameter set or restart). A loss compares a
//! simulated batch `[B, N]` against a target batch with either one row (one recording that every
//! simulation is compared with) or `B` rows (one target per simulation), and returns one loss per
//! simulated row and the gradient with respect to the simulated batch, `[B, N]`.

use crate::error::{Error, Result};

/// A checked, borrowed `[rows, len]` row-major batch of traces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traces<'a> {
    data: &'a [f64],
    rows: usize,
    len: usize,
}

impl<'a> Traces<'a> {
    /// `rows` traces of `len` samples in `data` (row-major). Errors if `rows` or `len` is zero,
    /// if `data.len() != rows · len`, or if a sample is not finite (naming its row and index).
    pub fn new(data: &'a [f64], rows: usize, len: usize) -> Result<Self> {
        if rows == 0 || len == 0 {
            return Err(Error::shape(
                "traces",
                format!(
                    "a batch needs at least one trace of at least one sample, got [{rows}, {len}]"
                ),
            ));
        }
        if data.len() != rows * len {
            return Err(Error::shape(
                "traces",
                format!(
                    "[{rows}, {len}] needs {} values, got {}",
                    rows * len,
                    data.len()
                ),
            ));
        }
        if let Some(k) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::shape(
                "traces",
                format!(
                    "trace {} sample {} is {} (traces must be finite)",
                    k / len,
                    k % len,
                    data[k]
                ),
            ));
        }
        Ok(Self { data, rows, len })
    }

    /// One trace: `[1, len]`.
    pub fn one(data: &'a [f64]) -> Result<Self> {
        Self::new(data, 1, data.len())
    }

    /// The number of traces.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of samples per trace.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (a batch holds at least one sample); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Trace `r`.
    pub fn row(&self, r: usize) -> &'a [f64] {
        &self.data[r * self.len..(r + 1) * self.len]
    }

    /// All values, row-major.
    pub fn data(&self) -> &'a [f64] {
        self.data
    }
}

/// Losses of a batch and their gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct LossGrad {
    /// One loss per simulated trace: `[B]`.
    pub loss: Vec<f64>,
    /// `∂loss_b / ∂sim_{b,t}`, row-major `[B, N]` (row `b` holds only trace `b`'s own loss
    /// gradient; the losses of different rows do not interact).
    pub grad: Vec<f64>,
}

/// Checks that `target` has one row or `sim.rows()` rows; if `same_len`, also that its traces
/// have the simulated length.
pub(crate) fn pair_rows<'a>(
    context: &'static str,
    sim: &Traces<'a>,
    target: &Traces<'a>,
    same_len: bool,
) -> Result<()> {
    if target.rows() != 1 && target.rows() != sim.rows() {
        return Err(Error::shape(
            context,
            format!(
                "the target batch must have 1 row or one per simulated trace ({}), got {}",
                sim.rows(),
                target.rows()
            ),
        ));
    }
    if same_len && target.len() != sim.len() {
        return Err(Error::shape(
            context,
            format!(
                "simulated traces have {} samples but target traces have {}",
                sim.len(),
                target.len()
            ),
        ));
    }
    Ok(())
}

/// The target row paired with simulated row `b` (checked by [`pair_rows`]).
pub(crate) fn target_row<'a>(target: &Traces<'a>, b: usize) -> &'a [f64] {
    target.row(if target.rows() == 1 { 0 } else { b })
}

/// Mean squared error between traces, `L_b = (1/N) Σ_t (x_{b,t} − y_{b,t})²` (unit: the trace
/// unit squared, e.g. mV²), with `∂L_b/∂x_{b,t} = 2 (x_{b,t} − y_{b,t}) / N`.
///
/// # Shapes
/// `sim`: `[B, N]`, `target`: `[1, N]` or `[B, N]`.
pub fn mse(sim: &Traces, target: &Traces) -> Result<LossGrad> {
    pair_rows("mse", sim, target, true)?;
    let n = sim.len();
    let mut loss = Vec::with_capacity(sim.rows());
    let mut grad = Vec::with_capacity(sim.rows() * n);
    for b in 0..sim.rows() {
        let (x, y) = (sim.row(b), target_row(target, b));
        let mut s = 0.0;
        for (xi, yi) in x.iter().zip(y) {
            let d = xi - yi;
            s += d * d;
            grad.push(2.0 * d / n as f64);
        }
        loss.push(s / n as f64);
    }
    Ok(LossGrad { loss, grad })
}
