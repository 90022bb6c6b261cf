//! Fitting a cell's channel parameters to recorded traces (`neurodiff cell --fit`): which
//! parameters (with bounds), the trace losses of `neurodiff_optim` (MSE, windowed statistics
//! with the normalised MAE, soft-DTW) chained into the adjoint ([`super::adjoint`]) through
//! their gradients, and the optimiser loop over the inverse-sigmoid variables, with restarts as
//! the batch.
//!
//! ## Fitted parameters
//! `CHANNEL.PARAM=LO..HI` fits parameter `PARAM` of every placement of `CHANNEL` (one
//! `[[channels]]` entry is one placement) as one value; `CHANNEL.PARAM@GROUP=LO..HI` only the
//! placements that cover a compartment of `GROUP` (`soma`, `axon`, `basal`, `apical`), e.g.
//! `leak.g@basal=0.01..1` for a leak placed on the dendrites by its own entry. Bounds are in the
//! parameter's unit (mS/cm², mV) and must lie inside the channel table's own range; the value
//! in the configuration must lie strictly inside them (it is restart 0's start).

use neurodiff_models::channel::ChannelKind;
use neurodiff_optim::{SoftDtw, Traces, Windows};

use super::adjoint::TraceLoss;
use super::{Cell, CellError, Group, NodeKind, Recording};
use crate::{Error, Result};

/// A fitted parameter, resolved on a cell.
#[derive(Debug, Clone, PartialEq)]
pub struct FitParam {
    /// As given (`hh_na.gbar@soma`), without the bounds.
    pub label: String,
    /// The channel.
    pub channel: ChannelKind,
    /// The parameter's index in the channel's table.
    pub param: usize,
    /// The placements ([`Cell::channels`] indices) that share it.
    pub placements: Vec<usize>,
    /// Lower bound (parameter unit).
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

impl FitParam {
    /// The bounds as `neurodiff_optim`'s type.
    pub fn bounds(&self) -> neurodiff_optim::Bounds {
        neurodiff_optim::Bounds::new(self.lower, self.upper).expect("checked at parsing")
    }

    /// Its current value in batch element `b` (of its first placement).
    pub fn value(&self, cell: &Cell, b: usize) -> f64 {
        let np = self.channel.spec().params.len();
        cell.channels[self.placements[0]].params[b * np + self.param]
    }
}

fn bad(spec: &str, message: impl Into<String>) -> Error {
    Error::setting(format!("fit-param `{spec}`"), message)
}

/// Parses `CHANNEL.PARAM[@GROUP]=LO..HI` and resolves it on `cell`.
pub fn parse_fit_param(spec: &str, cell: &Cell) -> Result<FitParam> {
    let (lhs, range) = spec
        .split_once('=')
        .ok_or_else(|| bad(spec, "expected CHANNEL.PARAM[@GROUP]=LO..HI"))?;
    let (name, group) = match lhs.split_once('@') {
        Some((n, g)) => (n.trim(), Some(g.trim())),
        None => (lhs.trim(), None),
    };
    let (cname, pname) = name
        .split_once('.')
        .ok_or_else(|| bad(spec, "expected CHANNEL.PARAM before `=`"))?;
    let kind = ChannelKind::find(cname).ok_or_else(|| CellError::UnknownChannel {
        name: cname.into(),
        context: format!("fit-param `{spec}`"),
        known: ChannelKind::names(),
    })?;
    let cs = kind.spec();
    let param = cs.param_index(pname).ok_or_else(|| CellError::Param {
        channel: cs.name.into(),
        param: pname.into(),
        message: format!(
            "no such parameter (it has: {})",
            cs.params
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let group = match group {
        None => None,
        Some(g) => Some(Group::find(g).ok_or_else(|| {
            bad(
                spec,
                format!("`{g}` is not a group (soma, axon, basal, apical)"),
            )
        })?),
    };
    let (lo, hi) = range
        .split_once("..")
        .ok_or_else(|| bad(spec, "bounds must read LO..HI"))?;
    let num = |s: &str| {
        s.trim()
            .parse::<f64>()
            .map_err(|_| bad(spec, format!("`{}` is not a number", s.trim())))
    };
    let (lower, upper) = (num(lo)?, num(hi)?);
    let ps = &cs.params[param];
    if !(lower.is_finite() && upper.is_finite() && lower < upper) {
        return Err(bad(
            spec,
            format!("need finite bounds with LO < HI, got {lower}..{upper}"),
        ));
    }
    if lower < ps.lower || upper > ps.upper {
        return Err(CellError::Param {
            channel: cs.name.into(),
            param: ps.name.into(),
            message: format!(
                "fit bounds {lower}..{upper} {} reach outside the parameter's range [{}, {}]",
                ps.unit, ps.lower, ps.upper
            ),
        }
        .into());
    }
    let covers = |c: usize| {
        let pl = &cell.channels[c];
        match group {
            None => true,
            Some(g) => pl.nodes.iter().any(|&n| match cell.kind[n] {
                NodeKind::Compartment { branch, .. } => cell.morphology.branches[branch].group == g,
                NodeKind::Junction { .. } => false,
            }),
        }
    };
    let placements: Vec<usize> = (0..cell.channels.len())
        .filter(|&c| cell.channels[c].kind == kind && covers(c))
        .collect();
    if placements.is_empty() {
        return Err(bad(
            spec,
            format!(
                "the cell has no `{cname}`{}",
                group.map_or(String::new(), |g| format!(" on {}", g.name()))
            ),
        ));
    }
    let fp = FitParam {
        label: lhs.trim().into(),
        channel: kind,
        param,
        placements,
        lower,
        upper,
    };
    let np = cs.params.len();
    for &c in &fp.placements {
        let v = cell.channels[c].params[param];
        let others = &cell.channels[c].params;
        if (0..cell.batch).any(|b| others[b * np + param] != v) {
            return Err(bad(
                spec,
                "the configuration gives several values (a batch)",
            ));
        }
        if !(v > lower && v < upper) {
            return Err(bad(
                spec,
                format!(
                    "the configuration's value {v} {} (the first restart's start) must lie \
                     strictly inside {lower}..{upper}",
                    ps.unit
                ),
            ));
        }
    }
    Ok(fp)
}

/// Sets the fitted parameters from `theta`, `[batch][param]`.
pub fn set_values(cell: &mut Cell, params: &[FitParam], theta: &[f64]) {
    let p = params.len();
    for b in 0..cell.batch {
        for (j, fp) in params.iter().enumerate() {
            let np = fp.channel.spec().params.len();
            for &c in &fp.placements {
                cell.channels[c].params[b * np + fp.param] = theta[b * p + j];
            }
        }
    }
}

/// The gradient with respect to the fitted parameters, `[batch][param]`, from the adjoint's
/// per-placement gradient (a shared parameter sums its placements).
pub fn gather(params: &[FitParam], grad: &[Vec<f64>], batch: usize) -> Vec<f64> {
    let p = params.len();
    let mut out = vec![0.0; batch * p];
    for b in 0..batch {
        for (j, fp) in params.iter().enumerate() {
            let np = fp.channel.spec().params.len();
            out[b * p + j] = fp
                .placements
                .iter()
                .map(|&c| grad[c][b * np + fp.param])
                .sum();
        }
    }
    out
}

/// A trace loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossKind {
    /// Mean squared error, mV².
    Mse,
    /// Normalised MAE between the mean and s.d. of the voltage in `windows` equal windows
    /// (all scales 1: mV).
    Stats {
        /// The number of windows.
        windows: usize,
    },
    /// The debiased soft-DTW divergence with smoothing `gamma` (mV) and warping penalty
    /// `lambda` (mV per sample of lag).
    Sdtw {
        /// Smoothing, mV.
        gamma: f64,
        /// Warping penalty, mV per sample.
        lambda: f64,
    },
}

impl LossKind {
    /// The name (`mse`, `stats`, `sdtw`).
    pub fn name(&self) -> &'static str {
        match self {
            LossKind::Mse => "mse",
            LossKind::Stats { .. } => "stats",
            LossKind::Sdtw { .. } => "sdtw",
        }
    }
}

/// The loss of recording `rec` against `target` (one trace per compared probe, each as long as
/// the recording), summed over the compared `probes`, per batch element, with its gradient in
/// the layout of [`Recording::data`].
pub fn trace_loss(
    kind: LossKind,
    rec: &Recording,
    target: &[Vec<f64>],
    probes: &[usize],
) -> Result<TraceLoss> {
    let (n, np, nb) = (rec.len(), rec.n_probes, rec.batch);
    let mut loss = vec![0.0; nb];
    let mut grad = vec![0.0; rec.data.len()];
    let optim = |e: neurodiff_optim::Error| Error::setting("loss", e.to_string());
    for (y, &p) in target.iter().zip(probes) {
        let sim: Vec<f64> = (0..nb).flat_map(|b| rec.trace(p, b)).collect();
        let sim = Traces::new(&sim, nb, n).map_err(optim)?;
        let tgt = Traces::one(y).map_err(optim)?;
        let lg = match kind {
            LossKind::Mse => neurodiff_optim::mse(&sim, &tgt),
            LossKind::Stats { windows } => {
                Windows::split(n, windows).and_then(|w| w.nmae(&sim, &tgt, None))
            }
            LossKind::Sdtw { gamma, lambda } => {
                SoftDtw::new(gamma, lambda).and_then(|s| s.divergence(true).batch(&sim, &tgt))
            }
        }
        .map_err(optim)?;
        for b in 0..nb {
            loss[b] += lg.loss[b];
            for k in 0..n {
                grad[(k * np + p) * nb + b] += lg.grad[b * n + k];
            }
        }
    }
    Ok(TraceLoss { loss, grad })
}
