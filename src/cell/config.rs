//! A cell and its protocol as a TOML file (`neurodiff cell --config cell.toml`).
//!
//! ```toml
//! dt = 0.025            # ms
//! duration = 50.0       # ms
//! celsius = 6.3         # °C (NEURON's default; scales the hh rates by 3^((celsius − 6.3)/10))
//! v_init = -65.0        # mV
//! precision = "f64"     # or "f32"
//! solver = "backward_euler"  # or "crank_nicolson" (second order, NEURON's secondorder = 2;
//!                            # gradients and fits too)
//!
//! # Either an SWC file (relative to this file) …
//! [morphology]
//! swc = "cell.swc"
//! ncomp = 1                 # at least this many compartments per branch
//! max_comp_length = 20.0    # µm; more compartments where a branch is longer
//!
//! # … or branches (µm), parents before children, the root first:
//! [[branches]]
//! name = "soma"
//! group = "soma"            # soma, axon, basal, apical
//! length = 20.0
//! radius = 10.0
//! ncomp = 1
//! [[branches]]
//! name = "dend"
//! parent = 0
//! group = "basal"
//! length = 200.0
//! radius = 1.0
//! ncomp = 10
//!
//! [passive.all]             # or per group: [passive.basal]
//! cm = 1.0                  # µF/cm²
//! ra = 100.0                # Ω·cm
//!
//! [[channels]]
//! name = "hh_na"            # any channel of `neurodiff_models::channel` (hh: NEURON's hh
//!                           # whole, gnabar gkbar gl ena ek el; hh_na, hh_k, leak: the same
//!                           # apart; ih, nata_t, nap_et2, k_tst, k_pst, skv3_1, im, ca_hva,
//!                           # ca_lva, sk_e2), or the calcium pool "ca_dynamics_e2" (gamma, decay ms,
//!                           # depth µm, min_cai mM)
//! groups = ["soma"]         # default: all
//! params = { gbar = 120.0 } # mS/cm², mV; a list gives one value per batch element
//!
//! [[stimuli]]               # current clamp
//! branch = "soma"           # name or index
//! x = 0.5                   # position along the branch, 0–1
//! amp = 0.1                 # nA (a list: one per batch element)
//! delay = 5.0               # ms
//! dur = 40.0                # ms
//! # waveform = "i.npy"      # instead of amp/delay/dur: nA per step, [steps] or [steps, batch]
//!
//! [[stimuli]]               # voltage clamp (NEURON's SEClamp)
//! kind = "vclamp"           # default "iclamp" (the current clamp above)
//! branch = "soma"
//! x = 0.5
//! rs = 1.0                  # series resistance, MΩ (> 0; default 1, as NEURON)
//! amp1 = -70.0              # command voltages, mV (default 0; a list: one per batch element)
//! dur1 = 5.0                # ms (≥ 0, default 0): amp1 on [0, dur1), amp2 for the next dur2,
//! amp2 = 0.0                # amp3 for the next dur3, then the clamp is off (no current)
//! dur2 = 10.0
//! # amp3 = -65.0, dur3 = 10.0
//!
//! [[record]]
//! branch = "dend"
//! x = 0.95
//! var = "v"                 # or a gate: "hh_na.m"; or "vclamp.i": the current of the voltage
//!                           # clamp at this compartment, nA (positive depolarises)
//! ```
//! The batch size is the longest list given (every list has 1 or that many entries).
//!
//! A file with `[[cells]]` describes a network of cells instead ([`super::net_config`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use neurodiff_models::channel::{ca_dynamics, ChannelKind};
use neurodiff_models::spec::ParamSpec;
use serde::{Deserialize, Serialize};

use super::{
    Branch, Cell, CellError, Clamp, Group, Morphology, Passive, Probe, Protocol, Scheme, VClamp,
    Waveform,
};
use crate::{Error, Result};

/// Number precision of the solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// `f32`.
    F32,
    /// `f64`.
    #[default]
    F64,
}

/// An SWC morphology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwcSource {
    /// The file, relative to the config file.
    pub swc: PathBuf,
    /// The least number of compartments per branch.
    #[serde(default = "one")]
    pub ncomp: usize,
    /// The longest compartment, µm.
    #[serde(default)]
    pub max_comp_length: Option<f64>,
}

pub(crate) fn one() -> usize {
    1
}

/// One value, or one per batch element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Values {
    /// The same for every batch element.
    One(f64),
    /// One per batch element.
    Many(Vec<f64>),
}

impl Values {
    pub(crate) fn len(&self) -> usize {
        match self {
            Values::One(_) => 1,
            Values::Many(v) => v.len(),
        }
    }
    pub(crate) fn get(&self, b: usize) -> f64 {
        match self {
            Values::One(x) => *x,
            Values::Many(v) if v.len() == 1 => v[0],
            Values::Many(v) => v[b],
        }
    }
}

/// A branch by index or name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BranchRef {
    /// By index.
    Index(usize),
    /// By name.
    Name(String),
}

/// Passive properties of a group (`all` or a group name); missing entries keep the value of
/// `all`, then NEURON's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveEntry {
    /// µF/cm².
    pub cm: Option<f64>,
    /// Ω·cm.
    pub ra: Option<f64>,
}

/// A channel on some groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelEntry {
    /// The channel's name.
    pub name: String,
    /// The groups (`all` for every branch).
    #[serde(default = "all")]
    pub groups: Vec<String>,
    /// Parameter values by name (the channel's defaults otherwise).
    #[serde(default)]
    pub params: BTreeMap<String, Values>,
}

fn all() -> Vec<String> {
    vec!["all".into()]
}

pub(crate) fn half() -> f64 {
    0.5
}

/// The kind of a stimulus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StimKind {
    /// A current clamp (`amp`, `delay`, `dur` or `waveform`).
    #[default]
    Iclamp,
    /// A voltage clamp (NEURON's `SEClamp`: `rs`, `amp1..3`, `dur1..3`).
    Vclamp,
}

/// A current clamp, or a voltage clamp (`kind = "vclamp"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StimEntry {
    /// Networks: the cells it is applied to (each its own clamp; default: cell 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<CellRef>,
    /// `iclamp` (default) or `vclamp`.
    #[serde(default)]
    pub kind: StimKind,
    /// The branch.
    pub branch: BranchRef,
    /// Position along it, 0–1.
    #[serde(default = "half")]
    pub x: f64,
    /// Amplitude, nA.
    #[serde(default)]
    pub amp: Option<Values>,
    /// Onset, ms.
    #[serde(default)]
    pub delay: f64,
    /// Duration, ms (default: to the end).
    #[serde(default)]
    pub dur: Option<f64>,
    /// A `.npy` of nA per step, `[steps]` or `[steps, batch]`, relative to the config file.
    #[serde(default)]
    pub waveform: Option<PathBuf>,
    /// Voltage clamp: series resistance, MΩ (default 1).
    #[serde(default)]
    pub rs: Option<f64>,
    /// Voltage clamp: first command voltage, mV (default 0).
    #[serde(default)]
    pub amp1: Option<Values>,
    /// Voltage clamp: second command voltage, mV (default 0).
    #[serde(default)]
    pub amp2: Option<Values>,
    /// Voltage clamp: third command voltage, mV (default 0).
    #[serde(default)]
    pub amp3: Option<Values>,
    /// Voltage clamp: duration of `amp1` from `t = 0`, ms (default 0).
    #[serde(default)]
    pub dur1: Option<f64>,
    /// Voltage clamp: duration of `amp2`, ms (default 0).
    #[serde(default)]
    pub dur2: Option<f64>,
    /// Voltage clamp: duration of `amp3`, ms (default 0).
    #[serde(default)]
    pub dur3: Option<f64>,
}

impl StimEntry {
    /// The voltage clamp of this entry at `node` for a batch of `batch`; `what` names it.
    fn vclamp(&self, what: &str, node: usize, batch: usize) -> Result<VClamp> {
        let iclamp_keys = [
            ("amp", self.amp.is_some()),
            ("delay", self.delay != 0.0),
            ("dur", self.dur.is_some()),
            ("waveform", self.waveform.is_some()),
        ];
        if let Some((k, _)) = iclamp_keys.iter().find(|k| k.1) {
            return Err(Error::setting(
                what,
                format!(
                    "`{k}` belongs to a current clamp; a voltage clamp takes rs, amp1..3 (mV) and \
                     dur1..3 (ms)"
                ),
            ));
        }
        let amps = [&self.amp1, &self.amp2, &self.amp3];
        let rows = if amps.iter().any(|a| a.as_ref().is_some_and(|a| a.len() > 1)) {
            batch
        } else {
            1
        };
        let amp = (0..rows)
            .map(|b| {
                let at = |a: &Option<Values>| a.as_ref().map_or(0.0, |a| a.get(b));
                [at(amps[0]), at(amps[1]), at(amps[2])]
            })
            .collect();
        let vc = VClamp {
            node,
            rs: self.rs.unwrap_or(1.0),
            amp,
            dur: [
                self.dur1.unwrap_or(0.0),
                self.dur2.unwrap_or(0.0),
                self.dur3.unwrap_or(0.0),
            ],
        };
        vc.check(what, batch)?;
        Ok(vc)
    }

    /// Whether a voltage-clamp key is given.
    fn has_vclamp_key(&self) -> Option<&'static str> {
        [
            ("rs", self.rs.is_some()),
            ("amp1", self.amp1.is_some()),
            ("amp2", self.amp2.is_some()),
            ("amp3", self.amp3.is_some()),
            ("dur1", self.dur1.is_some()),
            ("dur2", self.dur2.is_some()),
            ("dur3", self.dur3.is_some()),
        ]
        .into_iter()
        .find(|k| k.1)
        .map(|k| k.0)
    }
}

/// A recorded quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordEntry {
    /// Networks: the cells (default: cell 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<CellRef>,
    /// Networks: instead of a compartment, the conductance (µS) of every synapse of this
    /// `[[synapses]]` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapses: Option<usize>,
    /// The branch (default: the root, 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<BranchRef>,
    /// Position along it, 0–1.
    #[serde(default = "half")]
    pub x: f64,
    /// `v`, `vclamp.i` or `channel.gate`.
    #[serde(default = "v")]
    pub var: String,
}

impl Default for RecordEntry {
    fn default() -> Self {
        RecordEntry {
            cell: None,
            synapses: None,
            branch: None,
            x: 0.5,
            var: v(),
        }
    }
}

/// The root branch.
pub(crate) const ROOT: BranchRef = BranchRef::Index(0);

impl RecordEntry {
    /// The branch (the root when none is given).
    pub(crate) fn branch(&self) -> &BranchRef {
        self.branch.as_ref().unwrap_or(&ROOT)
    }

    /// The first key given that only a network config takes.
    fn network_key(&self) -> Option<&'static str> {
        if self.cell.is_some() {
            Some("cell")
        } else if self.synapses.is_some() {
            Some("synapses")
        } else {
            None
        }
    }
}

/// Cells of a network config: one by index, every cell of a `[[cells]]` entry by its name, or
/// a list of indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CellRef {
    /// One cell, by index.
    Index(usize),
    /// Every cell of the `[[cells]]` entry of this name.
    Name(String),
    /// These cells, by index.
    List(Vec<usize>),
}

fn v() -> String {
    "v".into()
}

pub(crate) fn dt() -> f64 {
    0.025
}
pub(crate) fn celsius() -> f64 {
    6.3
}
pub(crate) fn v_init() -> f64 {
    -65.0
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellConfig {
    /// Time step, ms.
    #[serde(default = "dt")]
    pub dt: f64,
    /// Simulated time, ms.
    pub duration: f64,
    /// Temperature, °C.
    #[serde(default = "celsius")]
    pub celsius: f64,
    /// Initial voltage, mV.
    #[serde(default = "v_init")]
    pub v_init: f64,
    /// Solver precision.
    #[serde(default)]
    pub precision: Precision,
    /// The scheme of the voltage equation (`backward_euler`, the default, or `crank_nicolson`).
    #[serde(default)]
    pub solver: Scheme,
    /// An SWC morphology (or `branches`).
    #[serde(default)]
    pub morphology: Option<SwcSource>,
    /// Branches (or `morphology`).
    #[serde(default)]
    pub branches: Vec<Branch>,
    /// Passive properties by group.
    #[serde(default)]
    pub passive: BTreeMap<String, PassiveEntry>,
    /// Channels.
    #[serde(default)]
    pub channels: Vec<ChannelEntry>,
    /// Current and voltage clamps.
    #[serde(default)]
    pub stimuli: Vec<StimEntry>,
    /// Recordings (default: `v` at the middle of the root).
    #[serde(default)]
    pub record: Vec<RecordEntry>,
}

/// A resolved configuration: the cell, the protocol and a label per probe.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The cell.
    pub cell: Cell,
    /// The protocol.
    pub protocol: Protocol,
    /// One label per probe (`soma(0.5).v`).
    pub labels: Vec<String>,
}

impl CellConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        if super::net_config::is_network(&text) {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: "a network config ([[cells]]): load it with `NetConfig` \
                          (`neurodiff cell --config` and `--fit` take it; --lyapunov takes a \
                          single cell)"
                    .into(),
            });
        }
        toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads a TOML file and builds its cell and protocol, relative paths taken from the file's
    /// folder.
    pub fn load_resolved(path: &Path) -> Result<(Self, Resolved)> {
        let cfg = Self::load(path)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let resolved = cfg.resolve(base)?;
        Ok((cfg, resolved))
    }

    /// The batch size: the longest list of values given.
    fn batch(&self) -> Result<usize> {
        let mut lens = channel_lens("", &self.channels);
        lens.extend(stim_lens(&self.stimuli));
        batch_of(lens)
    }

    /// Builds the cell and protocol; relative paths are taken from `base` (the config's
    /// folder).
    pub fn resolve(&self, base: &Path) -> Result<Resolved> {
        let steps = steps_of(self.dt, self.duration)?;
        let batch = self.batch()?;
        let cell = build_cell(
            &self.morphology,
            &self.branches,
            &self.passive,
            &self.channels,
            base,
            batch,
        )?;
        let mut stims = Vec::with_capacity(self.stimuli.len());
        for (j, st) in self.stimuli.iter().enumerate() {
            let what = format!("stimuli[{j}]");
            if st.cell.is_some() {
                return Err(Error::setting(
                    what,
                    "`cell` belongs to a network config (with [[cells]])",
                ));
            }
            let node = cell.node_at(branch_index(&cell, &st.branch, &what)?, st.x)?;
            stims.push((what, st, vec![node]));
        }
        let (clamps, vclamps) = clamps_of(&stims, base, batch, steps, self.duration)?;
        let mut probes = Vec::new();
        let mut labels = Vec::new();
        let default_rec = [RecordEntry::default()];
        let recs = if self.record.is_empty() {
            &default_rec[..]
        } else {
            &self.record[..]
        };
        for (j, r) in recs.iter().enumerate() {
            let what = format!("record[{j}]");
            if let Some(k) = r.network_key() {
                return Err(Error::setting(
                    what,
                    format!("`{k}` belongs to a network config (with [[cells]])"),
                ));
            }
            let br = branch_index(&cell, r.branch(), &what)?;
            let node = cell.node_at(br, r.x)?;
            let probe = probe_of(&what, &r.var, node, &cell, &vclamps)?;
            labels.push(format!("{}({}).{}", cell.morphology.name(br), r.x, r.var));
            probes.push(probe);
        }
        Ok(Resolved {
            cell,
            protocol: Protocol {
                dt: self.dt,
                steps,
                celsius: self.celsius,
                v_init: self.v_init,
                clamps,
                vclamps,
                scheme: self.solver,
                probes,
            },
            labels,
        })
    }
}

/// The number of steps of `dt` ms in `duration` ms, both checked positive.
pub(crate) fn steps_of(dt: f64, duration: f64) -> Result<usize> {
    if !(dt.is_finite() && dt > 0.0) {
        return Err(Error::setting(
            "dt",
            format!("must be positive, got {dt} ms"),
        ));
    }
    if !(duration.is_finite() && duration > 0.0) {
        return Err(Error::setting(
            "duration",
            format!("must be positive, got {duration} ms"),
        ));
    }
    Ok((duration / dt).round() as usize)
}

/// The number of values of every parameter of `channels` (named `{prefix}channels.NAME.PARAM`).
pub(crate) fn channel_lens(prefix: &str, channels: &[ChannelEntry]) -> Vec<(String, usize)> {
    let mut lens = Vec::new();
    for c in channels {
        for (p, v) in &c.params {
            lens.push((format!("{prefix}channels.{}.{p}", c.name), v.len()));
        }
    }
    lens
}

/// The number of values of every amplitude of `stimuli`.
pub(crate) fn stim_lens(stimuli: &[StimEntry]) -> Vec<(String, usize)> {
    let mut lens = Vec::new();
    for (j, s) in stimuli.iter().enumerate() {
        for (k, a) in [
            ("amp", &s.amp),
            ("amp1", &s.amp1),
            ("amp2", &s.amp2),
            ("amp3", &s.amp3),
        ] {
            if let Some(a) = a {
                lens.push((format!("stimuli[{j}].{k}"), a.len()));
            }
        }
    }
    lens
}

/// The batch size of lists of `(name, length)`: the longest; every other list must have 1 or
/// that many entries.
pub(crate) fn batch_of(lens: Vec<(String, usize)>) -> Result<usize> {
    let b = lens.iter().map(|l| l.1).max().unwrap_or(1).max(1);
    for (name, l) in lens {
        if l != 1 && l != b {
            return Err(Error::setting(
                name,
                format!("{l} values, but the batch has {b} (give 1 or {b})"),
            ));
        }
    }
    Ok(b)
}

/// The index of branch `r` of `cell`; `what` names the entry in an error.
pub(crate) fn branch_index(cell: &Cell, r: &BranchRef, what: &str) -> Result<usize> {
    match r {
        BranchRef::Index(i) if *i < cell.morphology.branches.len() => Ok(*i),
        BranchRef::Index(i) => Err(Error::setting(
            what,
            format!(
                "no branch {i} (the cell has {})",
                cell.morphology.branches.len()
            ),
        )),
        BranchRef::Name(n) => cell
            .morphology
            .find(n)
            .ok_or_else(|| Error::setting(what, format!("no branch named `{n}`"))),
    }
}

/// The current and voltage clamps of `stims` (each with its name and its nodes: one clamp at
/// each), for a batch of `batch` and `steps` steps of a run of `duration` ms; waveform files
/// relative to `base`, each read once.
pub(crate) fn clamps_of(
    stims: &[(String, &StimEntry, Vec<usize>)],
    base: &Path,
    batch: usize,
    steps: usize,
    duration: f64,
) -> Result<(Vec<Clamp>, Vec<VClamp>)> {
    let mut clamps = Vec::new();
    let mut vclamps = Vec::new();
    for (what, s, nodes) in stims {
        if s.kind == StimKind::Vclamp {
            for &node in nodes {
                vclamps.push(s.vclamp(what, node, batch)?);
            }
            continue;
        }
        if let Some(k) = s.has_vclamp_key() {
            return Err(Error::setting(
                what,
                format!("`{k}` belongs to a voltage clamp: add kind = \"vclamp\""),
            ));
        }
        // One waveform per batch column (or one for all), the same at every node.
        let waveforms: Vec<(Option<usize>, Waveform)> = match (&s.waveform, &s.amp) {
            (Some(file), None) => {
                let path = base.join(file);
                let arr = crate::io::read_npy(&path)?;
                let (rows, cols) = match arr.shape.as_slice() {
                    [r] => (*r, 1),
                    [r, c] if *c == 1 || *c == batch => (*r, *c),
                    s => {
                        return Err(Error::data(
                            &path,
                            format!("shape {s:?}: expected [steps] or [steps, {batch}]"),
                        ))
                    }
                };
                if rows < steps {
                    return Err(Error::data(
                        &path,
                        format!("{rows} samples for {steps} steps (one per step of dt)"),
                    ));
                }
                (0..cols)
                    .map(|col| {
                        (
                            (cols > 1).then_some(col),
                            Waveform::Samples(
                                (0..rows).map(|r| arr.data[r * cols + col]).collect(),
                            ),
                        )
                    })
                    .collect()
            }
            (None, Some(amp)) => {
                let dur = s.dur.unwrap_or(duration - s.delay);
                let many = amp.len() > 1;
                (0..if many { batch } else { 1 })
                    .map(|b| {
                        (
                            many.then_some(b),
                            Waveform::Step {
                                amp: amp.get(b),
                                delay: s.delay,
                                dur,
                            },
                        )
                    })
                    .collect()
            }
            _ => {
                return Err(Error::setting(
                    what,
                    "give either amp (with delay, dur) or waveform, not both",
                ))
            }
        };
        for &node in nodes {
            for (b, w) in &waveforms {
                clamps.push(Clamp {
                    node,
                    batch: *b,
                    waveform: w.clone(),
                });
            }
        }
    }
    Ok((clamps, vclamps))
}

/// The probe of `var` (`v`, `vclamp.i` or `channel.gate`) at `node` of `cell` (whose voltage
/// clamps are `vclamps`); `what` names the entry in an error.
pub(crate) fn probe_of(
    what: &str,
    var: &str,
    node: usize,
    cell: &Cell,
    vclamps: &[VClamp],
) -> Result<Probe> {
    if var == "v" {
        return Ok(Probe::V { node });
    }
    if var == "vclamp.i" {
        let at: Vec<usize> = (0..vclamps.len())
            .filter(|&c| vclamps[c].node == node)
            .collect();
        let [clamp] = at[..] else {
            return Err(Error::setting(
                what,
                format!(
                    "var `vclamp.i`: {} voltage clamps at {} (need exactly one)",
                    at.len(),
                    cell.location(node)
                ),
            ));
        };
        return Ok(Probe::VClampCurrent { clamp });
    }
    let (cname, gname) = var
        .split_once('.')
        .ok_or_else(|| Error::setting(what, format!("var `{var}`: give v or channel.gate")))?;
    let found = cell.channels.iter().enumerate().find_map(|(ci, pl)| {
        let spec = pl.kind.spec();
        let g = spec.gates.iter().position(|g| g.name == gname)?;
        (spec.name == cname && pl.nodes.contains(&node)).then_some((ci, g))
    });
    let (channel, gate) = found.ok_or_else(|| {
        Error::setting(
            what,
            format!(
                "no channel `{cname}` with a gate `{gname}` at {}",
                cell.location(node)
            ),
        )
    })?;
    Ok(Probe::Gate {
        channel,
        node,
        gate,
    })
}

/// A cell's morphology (an SWC file relative to `base`, or branches), passive properties by
/// group and channels, with parameters for a batch of `batch`.
pub(crate) fn build_cell(
    morphology: &Option<SwcSource>,
    branches: &[Branch],
    passive: &BTreeMap<String, PassiveEntry>,
    channels: &[ChannelEntry],
    base: &Path,
    batch: usize,
) -> Result<Cell> {
    let morph = match (morphology, branches.is_empty()) {
        (Some(s), true) => Morphology::from_swc(&base.join(&s.swc), s.ncomp, s.max_comp_length)?,
        (None, false) => Morphology {
            branches: branches.to_vec(),
        },
        (Some(_), false) => {
            return Err(Error::setting(
                "morphology",
                "give either [morphology] swc = … or [[branches]], not both",
            ))
        }
        (None, true) => {
            return Err(Error::setting(
                "morphology",
                "no morphology: give [morphology] swc = … or [[branches]]",
            ))
        }
    };
    for key in passive.keys() {
        if key != "all" && Group::find(key).is_none() {
            return Err(Error::setting(
                format!("passive.{key}"),
                "not a group (all, soma, axon, basal, apical)",
            ));
        }
    }
    let all_p = passive.get("all").copied().unwrap_or_default();
    let passive_of = |g: Group| {
        let e = passive.get(g.name()).copied().unwrap_or_default();
        let d = Passive::default();
        Passive {
            cm: e.cm.or(all_p.cm).unwrap_or(d.cm),
            ra: e.ra.or(all_p.ra).unwrap_or(d.ra),
        }
    };
    let mut cell = Cell::new(morph, passive_of, batch)?;
    for (j, ch) in channels.iter().enumerate() {
        if ch.name == ca_dynamics::NAME {
            let groups = groups_of(j, &ch.groups)?;
            let rows = param_rows(ca_dynamics::NAME, ca_dynamics::PARAMS, ch, batch)?;
            cell.insert_pool(|_, br| groups.contains(&br.group), &rows)?;
            continue;
        }
        let kind = ChannelKind::find(&ch.name).ok_or_else(|| CellError::UnknownChannel {
            name: ch.name.clone(),
            context: format!("channels[{j}]"),
            known: ChannelKind::names(),
        })?;
        let spec = kind.spec();
        let groups = groups_of(j, &ch.groups)?;
        let rows = param_rows(spec.name, spec.params, ch, batch)?;
        cell.insert(kind, |_, br| groups.contains(&br.group), &rows)?;
    }
    Ok(cell)
}

/// The groups of `channels[j]` (`all` for every group).
fn groups_of(j: usize, names: &[String]) -> Result<Vec<Group>> {
    let mut groups = Vec::new();
    for g in names {
        if g == "all" {
            groups.extend(Group::ALL);
        } else {
            groups.push(Group::find(g).ok_or_else(|| {
                Error::setting(
                    format!("channels[{j}].groups"),
                    format!("`{g}` is not a group (all, soma, axon, basal, apical)"),
                )
            })?);
        }
    }
    Ok(groups)
}

/// The parameter rows (one per batch element) of a channel entry for a table `specs`: the values
/// given, defaults elsewhere; an unknown name is an error naming the channel and parameter.
fn param_rows(
    name: &str,
    specs: &[ParamSpec],
    ch: &ChannelEntry,
    batch: usize,
) -> Result<Vec<Vec<f64>>> {
    for p in ch.params.keys() {
        if !specs.iter().any(|s| s.name == p) {
            return Err(CellError::Param {
                channel: name.into(),
                param: p.clone(),
                message: format!(
                    "no such parameter (it has: {})",
                    specs.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
                ),
            }
            .into());
        }
    }
    Ok((0..batch)
        .map(|b| {
            specs
                .iter()
                .map(|p| ch.params.get(p.name).map_or(p.default, |v| v.get(b)))
                .collect()
        })
        .collect())
}
