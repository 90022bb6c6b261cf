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
//! `leak.g@basal=0.01..1` for a leak placed on the dendrites by its own entry. The calcium pool
//! is fitted the same way by its name, `ca_dynamics_e2.decay=20..200` (every pool, or those on
//! `GROUP`), and the passive properties as `passive.cm` (µF/cm²), `passive.ra` (Ω·cm) and
//! `passive.radius` (µm), e.g. `passive.ra@basal=50..300` (every branch, or those of `GROUP`,
//! as one value). Bounds are in the parameter's unit (mS/cm², mV, ms, µF/cm², Ω·cm, µm) and
//! must lie inside the owner's table's own range ([`PASSIVE`] for the passive properties); the
//! value in the configuration must lie strictly inside them (it is restart 0's start).
//!
//! ## Networks
//! In a network file ([`parse_net_fit_param`]) the same syntax fits the parameter on every cell
//! of the network; `NAME:SPEC` only on the cells of `[[cells]]` entry `NAME` (or the one cell
//! of that name, e.g. `pyr[2]`), e.g. `inter:hh_na.gbar=50..200`; and
//! `synapses[J].PARAM=LO..HI` fits parameter `PARAM` of every synapse of `[[synapses]]` entry
//! `J` (0-based, in file order) as one value, e.g. `synapses[1].gs=0.001..0.1` (µS).

use std::ops::Range;

use neurodiff_models::channel::{ca_dynamics, ChannelKind};
use neurodiff_models::spec::ParamSpec;
use neurodiff_models::synapse::SynapseKind;
use neurodiff_optim::{SoftDtw, Traces, Windows};

use super::adjoint::{CellGrad, TraceLoss};
use super::network::{NetGrad, Network};
use super::{Cell, CellError, Group, NodeKind, Passive, Recording};
use crate::{Error, Result};

/// The passive properties a fit can take (`passive.cm`, `passive.ra`, `passive.radius`), in
/// the order of [`super::CellGrad::passive`], with the ranges fits may search.
pub const PASSIVE: &[ParamSpec] = &[
    ParamSpec::new(
        "cm",
        1.0,
        "µF/cm²",
        1e-3,
        100.0,
        "specific membrane capacitance",
    ),
    ParamSpec::new("ra", 35.4, "Ω·cm", 1.0, 1e5, "axial resistivity"),
    ParamSpec::new("radius", 1.0, "µm", 1e-3, 1e4, "radius of the branch"),
];

/// What a fitted parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Placements of a channel ([`Cell::channels`]).
    Channel(ChannelKind),
    /// Calcium pools ([`Cell::pools`]).
    Pool,
    /// Branches' passive properties ([`Cell::passive`], [`PASSIVE`]): one value for the whole
    /// batch.
    Passive,
    /// Synapses of a network ([`Network::synapses`]), all of one kind.
    Synapse(SynapseKind),
}

impl Owner {
    /// The owner's parameter table.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            Owner::Channel(k) => k.spec().params,
            Owner::Pool => ca_dynamics::PARAMS,
            Owner::Passive => PASSIVE,
            Owner::Synapse(k) => k.spec().params,
        }
    }

    /// The owner's name (`hh_na`, `ca_dynamics_e2`, `passive`).
    pub fn name(self) -> &'static str {
        match self {
            Owner::Channel(k) => k.spec().name,
            Owner::Pool => ca_dynamics::NAME,
            Owner::Passive => "passive",
            Owner::Synapse(k) => k.spec().name,
        }
    }

    /// Parameter `q` of placement, pool or branch `i` of `cell` in batch element `b` (NaN for
    /// a synapse: it belongs to a network, [`FitParam::net_value`]).
    fn get(self, cell: &Cell, i: usize, b: usize, q: usize) -> f64 {
        let np = self.params().len();
        match self {
            Owner::Channel(_) => cell.channels[i].params[b * np + q],
            Owner::Pool => cell.pools[i].params[b * np + q],
            Owner::Passive => [
                cell.passive[i].cm,
                cell.passive[i].ra,
                cell.morphology.branches[i].radius,
            ][q],
            Owner::Synapse(_) => f64::NAN,
        }
    }
}

/// A fitted parameter, resolved on a cell.
#[derive(Debug, Clone, PartialEq)]
pub struct FitParam {
    /// As given (`hh_na.gbar@soma`), without the bounds.
    pub label: String,
    /// The channel, the pool or the passive properties.
    pub owner: Owner,
    /// The parameter's index in the owner's table.
    pub param: usize,
    /// The placements ([`Cell::channels`] indices), pools ([`Cell::pools`] indices) or
    /// branches ([`Cell::passive`] indices) that share it.
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
        self.owner.get(cell, self.placements[0], b, self.param)
    }

    /// Its current value in batch element `b` of a network (of its first synapse, or of its
    /// first placement, pool or branch of the merged cell).
    pub fn net_value(&self, net: &Network, b: usize) -> f64 {
        match self.owner {
            Owner::Synapse(k) => {
                net.synapses[self.placements[0]].params[b * k.spec().params.len() + self.param]
            }
            _ => self.value(&net.merged, b),
        }
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
    let owner = if cname == ca_dynamics::NAME {
        Owner::Pool
    } else if cname == "passive" {
        Owner::Passive
    } else {
        Owner::Channel(
            ChannelKind::find(cname).ok_or_else(|| CellError::UnknownChannel {
                name: cname.into(),
                context: format!("fit-param `{spec}`"),
                known: format!(
                    "{} (and the pool {})",
                    ChannelKind::names(),
                    ca_dynamics::NAME
                ),
            })?,
        )
    };
    let table = owner.params();
    let param = table
        .iter()
        .position(|p| p.name == pname)
        .ok_or_else(|| CellError::Param {
            channel: owner.name().into(),
            param: pname.into(),
            message: format!(
                "no such parameter (it has: {})",
                table.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
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
    let ps = &table[param];
    let (lower, upper) = bounds_of(spec, range, owner, ps)?;
    let covers = |nodes: &[usize]| match group {
        None => true,
        Some(g) => nodes.iter().any(|&n| match cell.kind[n] {
            NodeKind::Compartment { branch, .. } => cell.morphology.branches[branch].group == g,
            NodeKind::Junction { .. } => false,
        }),
    };
    let placements: Vec<usize> = match owner {
        Owner::Channel(kind) => (0..cell.channels.len())
            .filter(|&c| cell.channels[c].kind == kind && covers(&cell.channels[c].nodes))
            .collect(),
        Owner::Pool => (0..cell.pools.len())
            .filter(|&c| covers(&cell.pools[c].nodes))
            .collect(),
        Owner::Passive => (0..cell.passive.len())
            .filter(|&br| covers(&cell.comps[br]))
            .collect(),
        // Not parsed here ([`parse_net_fit_param`]).
        Owner::Synapse(_) => Vec::new(),
    };
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
        owner,
        param,
        placements,
        lower,
        upper,
    };
    for &c in &fp.placements {
        check_start(spec, &fp, ps, |b| owner.get(cell, c, b, param), cell.batch)?;
    }
    Ok(fp)
}

/// The bounds `LO..HI` of a fitted parameter `ps` of `owner`: finite, ordered and inside the
/// parameter's own range.
fn bounds_of(spec: &str, range: &str, owner: Owner, ps: &ParamSpec) -> Result<(f64, f64)> {
    let (lo, hi) = range
        .split_once("..")
        .ok_or_else(|| bad(spec, "bounds must read LO..HI"))?;
    let num = |s: &str| {
        s.trim()
            .parse::<f64>()
            .map_err(|_| bad(spec, format!("`{}` is not a number", s.trim())))
    };
    let (lower, upper) = (num(lo)?, num(hi)?);
    if !(lower.is_finite() && upper.is_finite() && lower < upper) {
        return Err(bad(
            spec,
            format!("need finite bounds with LO < HI, got {lower}..{upper}"),
        ));
    }
    if lower < ps.lower || upper > ps.upper {
        return Err(CellError::Param {
            channel: owner.name().into(),
            param: ps.name.into(),
            message: format!(
                "fit bounds {lower}..{upper} {} reach outside the parameter's range [{}, {}]",
                ps.unit, ps.lower, ps.upper
            ),
        }
        .into());
    }
    Ok((lower, upper))
}

/// Checks a fitted parameter's value in the configuration (`value(b)` in each of `batch`
/// elements): one value, strictly inside the bounds (it is restart 0's start).
fn check_start(
    spec: &str,
    fp: &FitParam,
    ps: &ParamSpec,
    value: impl Fn(usize) -> f64,
    batch: usize,
) -> Result<()> {
    let v = value(0);
    if (0..batch).any(|b| value(b) != v) {
        return Err(bad(
            spec,
            "the configuration gives several values (a batch)",
        ));
    }
    if !(v > fp.lower && v < fp.upper) {
        return Err(bad(
            spec,
            format!(
                "the configuration's value {v} {} (the first restart's start) must lie strictly \
                 inside {}..{}",
                ps.unit, fp.lower, fp.upper
            ),
        ));
    }
    Ok(())
}

/// Parses a fitted parameter of a network (see the [module documentation](self)) and resolves
/// it: `synapses[J].PARAM=LO..HI` on the synapses of `[[synapses]]` entry `J` (`entries`: each
/// entry's synapses), `NAME:SPEC` as [`parse_fit_param`] on the cells named `NAME` or
/// `NAME[k]` (`cell_names`), and `SPEC` alone on every cell (the merged cell).
pub fn parse_net_fit_param(
    spec: &str,
    net: &Network,
    cell_names: &[String],
    entries: &[Range<usize>],
) -> Result<FitParam> {
    let text = spec.trim();
    if let Some(rest) = text.strip_prefix("synapses[") {
        let form = "expected synapses[J].PARAM=LO..HI";
        let (j, rest) = rest.split_once(']').ok_or_else(|| bad(spec, form))?;
        let j: usize = j
            .trim()
            .parse()
            .map_err(|_| bad(spec, format!("`{}` is not an entry number", j.trim())))?;
        let members = entries.get(j).ok_or_else(|| {
            bad(
                spec,
                format!(
                    "no [[synapses]] entry {j} (the file has {}, numbered from 0)",
                    entries.len()
                ),
            )
        })?;
        let (pname, range) = rest
            .strip_prefix('.')
            .and_then(|r| r.split_once('='))
            .ok_or_else(|| bad(spec, form))?;
        if members.is_empty() {
            return Err(bad(spec, format!("[[synapses]] entry {j} made no synapse")));
        }
        let kind = net.synapses[members.start].kind;
        let owner = Owner::Synapse(kind);
        let table = owner.params();
        let pname = pname.trim();
        let param = table.iter().position(|p| p.name == pname).ok_or_else(|| {
            bad(
                spec,
                format!(
                    "`{}` has no parameter `{pname}` (it has: {})",
                    kind.spec().name,
                    table.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let ps = &table[param];
        let (lower, upper) = bounds_of(spec, range, owner, ps)?;
        let fp = FitParam {
            label: format!("synapses[{j}].{pname}"),
            owner,
            param,
            placements: members.clone().collect(),
            lower,
            upper,
        };
        let np = table.len();
        for &s in &fp.placements {
            let p = &net.synapses[s].params;
            check_start(spec, &fp, ps, |b| p[b * np + param], net.batch())?;
        }
        return Ok(fp);
    }
    let Some((name, inner)) = text.split_once(':') else {
        return parse_fit_param(text, &net.merged);
    };
    let name = name.trim();
    let cells: Vec<usize> = (0..cell_names.len())
        .filter(|&c| {
            let n = &cell_names[c];
            n == name || n.strip_prefix(name).is_some_and(|r| r.starts_with('['))
        })
        .collect();
    if cells.is_empty() {
        return Err(bad(
            spec,
            format!(
                "no cell or [[cells]] entry named `{name}` (the cells: {})",
                cell_names.join(", ")
            ),
        ));
    }
    let mut fp = parse_fit_param(inner, &net.merged)?;
    // The cell of a merged node (the cells' nodes are consecutive, from `offset`).
    let cell_of = |node: usize| net.offset.partition_point(|&o| o <= node) - 1;
    let m = &net.merged;
    fp.placements.retain(|&i| {
        let node = match fp.owner {
            Owner::Channel(_) => m.channels[i].nodes[0],
            Owner::Pool => m.pools[i].nodes[0],
            Owner::Passive => m.comps[i][0],
            Owner::Synapse(_) => return false,
        };
        cells.contains(&cell_of(node))
    });
    if fp.placements.is_empty() {
        return Err(bad(
            spec,
            format!("the cells `{name}` have no `{}` there", fp.owner.name()),
        ));
    }
    fp.label = format!("{name}:{}", fp.label);
    Ok(fp)
}

/// Sets the fitted parameters of a network from `theta`, `[batch][param]` (the cells' on its
/// merged cell, as [`set_values`]).
pub fn set_net_values(net: &mut Network, params: &[FitParam], theta: &[f64]) -> Result<()> {
    set_values(&mut net.merged, params, theta)?;
    let (p, nb) = (params.len(), net.batch());
    for (j, fp) in params.iter().enumerate() {
        if let Owner::Synapse(k) = fp.owner {
            let np = k.spec().params.len();
            for &s in &fp.placements {
                for b in 0..nb {
                    net.synapses[s].params[b * np + fp.param] = theta[b * p + j];
                }
            }
        }
    }
    Ok(())
}

/// The gradient of a network's loss with respect to the fitted parameters, `[batch][param]`
/// (as [`gather`]; a synapse parameter sums its synapses).
pub fn gather_net(params: &[FitParam], g: &NetGrad, batch: usize) -> Vec<f64> {
    gather_parts(
        params,
        [&g.channels, &g.pools, &g.passive, &g.synapses],
        batch,
    )
}

/// Sets the fitted parameters from `theta`, `[batch][param]`. A passive property is one value
/// for the whole batch: it takes batch element 0's (fit such a parameter with one cell per
/// restart).
pub fn set_values(cell: &mut Cell, params: &[FitParam], theta: &[f64]) -> Result<()> {
    let (p, nb) = (params.len(), cell.batch);
    for (j, fp) in params.iter().enumerate() {
        let np = fp.owner.params().len();
        for &c in &fp.placements {
            let rows = match fp.owner {
                Owner::Channel(_) => &mut cell.channels[c].params,
                Owner::Pool => &mut cell.pools[c].params,
                // A network's ([`set_net_values`]).
                Owner::Synapse(_) => break,
                Owner::Passive => {
                    let (pas, v) = (cell.passive[c], theta[j]);
                    match fp.param {
                        0 => cell.set_passive(c, Passive { cm: v, ..pas })?,
                        1 => cell.set_passive(c, Passive { ra: v, ..pas })?,
                        _ => cell.set_radius(c, v)?,
                    }
                    continue;
                }
            };
            for b in 0..nb {
                rows[b * np + fp.param] = theta[b * p + j];
            }
        }
    }
    Ok(())
}

/// The gradient with respect to the fitted parameters, `[batch][param]`, from the adjoint's
/// per-placement, per-pool and per-branch gradients (a shared parameter sums its placements).
pub fn gather(params: &[FitParam], g: &CellGrad, batch: usize) -> Vec<f64> {
    gather_parts(params, [&g.grad, &g.pools, &g.passive, &Vec::new()], batch)
}

/// [`gather`] from the gradients per placement, pool, branch and synapse.
fn gather_parts(params: &[FitParam], parts: [&Vec<Vec<f64>>; 4], batch: usize) -> Vec<f64> {
    let p = params.len();
    let mut out = vec![0.0; batch * p];
    for b in 0..batch {
        for (j, fp) in params.iter().enumerate() {
            let np = fp.owner.params().len();
            let grad = match fp.owner {
                Owner::Channel(_) => parts[0],
                Owner::Pool => parts[1],
                Owner::Passive => parts[2],
                Owner::Synapse(_) => parts[3],
            };
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
