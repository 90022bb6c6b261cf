//! A network of cells as a TOML file (`neurodiff cell --config net.toml`; a file with
//! `[[cells]]` is a network): cells from cell files or written inline, synapses with
//! per-synapse delays between populations, clamps and recordings on any cell.
//!
//! ```toml
//! dt = 0.025                # ms; the run's settings as in a cell file
//! duration = 60.0           # ms
//! celsius = 6.3             # °C
//! v_init = -65.0            # mV
//! precision = "f64"         # or "f32"
//! solver = "backward_euler" # or "crank_nicolson"
//!
//! [[cells]]                 # cells 0, 1, 2: three copies of a cell file
//! name = "exc"              # optional: refer to all cells of this entry by name
//! file = "cell.toml"        # a `neurodiff cell` file: its morphology, passive properties and
//!                           # channels (its run settings, stimuli and records are not used)
//! count = 3                 # copies (default 1)
//!
//! [[cells]]                 # cell 3, written inline like a cell file
//! name = "inh"
//! [[cells.branches]]
//! name = "soma"
//! length = 20.0
//! radius = 10.0
//! [[cells.channels]]
//! name = "hh"
//!
//! [[synapses]]
//! kind = "ionotropic"       # or "tanh_rate" (see `neurodiff models`)
//! pre = { cell = "exc", branch = "soma", x = 0.5 }   # a cell index, an entry's name or a list
//! post = { cell = "inh" }   # branch: default the root; x: default 0.5
//! rule = "all_to_all"       # every pre onto every post (no cell onto itself unless
//!                           # autapses = true), or "one_to_one" (equal lists, pairwise)
//! delay = 2.0               # ms, a whole number of steps of dt (default 0)
//! params = { gs = 0.01 }    # µS, mV, 1/ms as the synapse's table; a list: one per batch element
//!
//! [[stimuli]]               # as in a cell file, plus the cells it goes to (default cell 0)
//! cell = 0
//! branch = "soma"
//! amp = 0.1                 # nA
//! delay = 5.0
//! dur = 1.0
//!
//! [[record]]                # as in a cell file, plus `cell` (every cell named gets a record)
//! cell = "exc"
//! var = "v"
//! [[record]]                # or the conductance (µS) of every synapse of a [[synapses]] entry
//! synapses = 0
//! ```
//! The cells are numbered in the order of their entries, copies together. The batch size is
//! the longest list of values anywhere (cells' channel parameters, synapse parameters,
//! stimulus amplitudes).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use neurodiff_models::synapse::SynapseKind;
use serde::{Deserialize, Serialize};

use super::config::{
    batch_of, branch_index, build_cell, celsius, channel_lens, clamps_of, dt, half, one, probe_of,
    steps_of, stim_lens, v_init, BranchRef, CellConfig, CellRef, ChannelEntry, PassiveEntry,
    Precision, RecordEntry, StimEntry, SwcSource, Values, ROOT,
};
use super::network::{delay_error, delay_steps, NetProbe, Network};
use super::{Branch, Cell, Protocol, Scheme};
use crate::{Error, Result};

/// Whether the TOML text describes a network (it has a `cells` key).
pub fn is_network(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key("cells"))
}

/// Cells of a network: a cell file or an inline cell, `count` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellEntry {
    /// A name for all cells of this entry.
    #[serde(default)]
    pub name: Option<String>,
    /// How many copies.
    #[serde(default = "one")]
    pub count: usize,
    /// A cell file (relative to this file): its morphology, passive properties and channels.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Inline: an SWC morphology (or `branches`).
    #[serde(default)]
    pub morphology: Option<SwcSource>,
    /// Inline: branches.
    #[serde(default)]
    pub branches: Vec<Branch>,
    /// Inline: passive properties by group.
    #[serde(default)]
    pub passive: BTreeMap<String, PassiveEntry>,
    /// Inline: channels.
    #[serde(default)]
    pub channels: Vec<ChannelEntry>,
}

/// One end of a synapse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The cells.
    pub cell: CellRef,
    /// The branch (default: the root).
    #[serde(default)]
    pub branch: Option<BranchRef>,
    /// Position along it, 0–1.
    #[serde(default = "half")]
    pub x: f64,
}

/// How the cells of a synapse entry's two ends are paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Every presynaptic cell onto every postsynaptic cell.
    #[default]
    AllToAll,
    /// The i-th presynaptic cell onto the i-th postsynaptic cell.
    OneToOne,
}

/// Synapses of one kind between cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynapseEntry {
    /// The synapse (`ionotropic`, `tanh_rate`).
    pub kind: String,
    /// The presynaptic end.
    pub pre: Endpoint,
    /// The postsynaptic end.
    pub post: Endpoint,
    /// The pairing of the two ends' cells.
    #[serde(default)]
    pub rule: Rule,
    /// Whether a cell may synapse onto itself.
    #[serde(default)]
    pub autapses: bool,
    /// The delay, ms.
    #[serde(default)]
    pub delay: f64,
    /// Parameter values by name (the synapse's defaults otherwise).
    #[serde(default)]
    pub params: BTreeMap<String, Values>,
}

/// The whole network file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
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
    /// The scheme of the voltage equation.
    #[serde(default)]
    pub solver: Scheme,
    /// The cells.
    pub cells: Vec<CellEntry>,
    /// The synapses.
    #[serde(default)]
    pub synapses: Vec<SynapseEntry>,
    /// Current and voltage clamps.
    #[serde(default)]
    pub stimuli: Vec<StimEntry>,
    /// Recordings (default: `v` at the middle of every cell's root).
    #[serde(default)]
    pub record: Vec<RecordEntry>,
}

/// A resolved network configuration.
#[derive(Debug, Clone)]
pub struct NetResolved {
    /// The network.
    pub network: Network,
    /// The protocol (clamps on the merged cell's nodes; its probes are those of `probes`).
    pub protocol: Protocol,
    /// What is recorded.
    pub probes: Vec<NetProbe>,
    /// One label per probe (`exc[0]:soma(0.5).v`).
    pub labels: Vec<String>,
    /// The unit of each probe (`mV`, `nA`, `µS`, `1`).
    pub units: Vec<&'static str>,
    /// Each cell's name.
    pub cell_names: Vec<String>,
    /// Per `[[synapses]]` entry, its synapses (indices into the network's).
    pub synapse_entries: Vec<Range<usize>>,
    /// What was read but not used (a cell file's own stimuli, …).
    pub notes: Vec<String>,
}

impl NetConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads a TOML file and builds its network and protocol, relative paths taken from the
    /// file's folder.
    pub fn load_resolved(path: &Path) -> Result<(Self, NetResolved)> {
        let cfg = Self::load(path)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let resolved = cfg.resolve(base)?;
        Ok((cfg, resolved))
    }

    /// Builds the network and protocol; relative paths are taken from `base`.
    pub fn resolve(&self, base: &Path) -> Result<NetResolved> {
        let steps = steps_of(self.dt, self.duration)?;
        if self.cells.is_empty() {
            return Err(Error::setting("cells", "a network needs at least one cell"));
        }
        let mut notes = Vec::new();

        // The cells' own descriptions, and the batch size over everything.
        let mut bodies = Vec::with_capacity(self.cells.len());
        let mut lens = stim_lens(&self.stimuli);
        for (i, e) in self.cells.iter().enumerate() {
            let what = format!("cells[{i}]");
            let body = e.body(&what, base)?;
            if let Body::File { path, cfg } = &body {
                if !cfg.stimuli.is_empty() || !cfg.record.is_empty() {
                    notes.push(format!(
                        "{what}: the stimuli and records of {} are not used (the network's are)",
                        path.display()
                    ));
                }
            }
            lens.extend(channel_lens(&format!("{what}."), body.channels()));
            bodies.push(body);
        }
        for (j, s) in self.synapses.iter().enumerate() {
            for (p, v) in &s.params {
                lens.push((format!("synapses[{j}].params.{p}"), v.len()));
            }
        }
        let batch = batch_of(lens)?;

        // The cells, numbered in entry order.
        let mut cells: Vec<Cell> = Vec::new();
        let mut cell_names = Vec::new();
        let mut ranges: Vec<(Option<&str>, Range<usize>)> = Vec::new();
        for (i, (e, body)) in self.cells.iter().zip(&bodies).enumerate() {
            let what = format!("cells[{i}]");
            if e.count == 0 {
                return Err(Error::setting(
                    format!("{what}.count"),
                    "must be at least 1",
                ));
            }
            if let Some(n) = &e.name {
                if self.cells[..i].iter().any(|o| o.name.as_ref() == Some(n)) {
                    return Err(Error::setting(
                        format!("{what}.name"),
                        format!("`{n}` names an earlier entry too"),
                    ));
                }
            }
            let cell = body.build(&what, base, batch)?;
            let start = cells.len();
            for k in 0..e.count {
                cell_names.push(match (&e.name, e.count) {
                    (Some(n), 1) => n.clone(),
                    (Some(n), _) => format!("{n}[{k}]"),
                    (None, _) => format!("cell{}", start + k),
                });
                cells.push(cell.clone());
            }
            ranges.push((e.name.as_deref(), start..cells.len()));
        }
        let n_cells = cells.len();
        let cells_of = |r: &CellRef, what: &str| -> Result<Vec<usize>> {
            let list = match r {
                CellRef::Index(i) => vec![*i],
                CellRef::List(l) => l.clone(),
                CellRef::Name(n) => {
                    let (_, range) = ranges
                        .iter()
                        .find(|(name, _)| *name == Some(n.as_str()))
                        .ok_or_else(|| {
                            let names: Vec<&str> = ranges.iter().filter_map(|r| r.0).collect();
                            Error::setting(
                                what,
                                format!(
                                    "no [[cells]] entry named `{n}` (the names: {})",
                                    if names.is_empty() {
                                        "none".to_string()
                                    } else {
                                        names.join(", ")
                                    }
                                ),
                            )
                        })?;
                    range.clone().collect()
                }
            };
            if let Some(i) = list.iter().find(|&&i| i >= n_cells) {
                return Err(Error::setting(
                    what,
                    format!(
                        "no cell {i} (the network has {n_cells}: 0 to {})",
                        n_cells - 1
                    ),
                ));
            }
            if list.is_empty() {
                return Err(Error::setting(what, "an empty list of cells"));
            }
            Ok(list)
        };
        let mut net = Network::new(cells)?;
        let mut synapse_entries = Vec::with_capacity(self.synapses.len());
        for (j, s) in self.synapses.iter().enumerate() {
            let what = format!("synapses[{j}]");
            let kind = SynapseKind::find(&s.kind).ok_or_else(|| {
                Error::setting(
                    format!("{what}.kind"),
                    format!(
                        "unknown synapse `{}`; the synapses are: {}",
                        s.kind,
                        SynapseKind::names()
                    ),
                )
            })?;
            let rows = synapse_rows(&what, kind, &s.params, batch)?;
            // Checked here too, to name the entry rather than one of the synapses it makes.
            if delay_steps(s.delay, self.dt).is_none() {
                return Err(Error::setting(
                    format!("{what}.delay"),
                    delay_error(s.delay, self.dt),
                ));
            }
            let pre = cells_of(&s.pre.cell, &format!("{what}.pre.cell"))?;
            let post = cells_of(&s.post.cell, &format!("{what}.post.cell"))?;
            let pairs: Vec<(usize, usize)> = match s.rule {
                Rule::AllToAll => pre
                    .iter()
                    .flat_map(|&p| post.iter().map(move |&q| (p, q)))
                    .filter(|&(p, q)| s.autapses || p != q)
                    .collect(),
                Rule::OneToOne => {
                    if pre.len() != post.len() {
                        return Err(Error::setting(
                            format!("{what}.rule"),
                            format!(
                                "one_to_one needs as many pre as post cells ({} and {})",
                                pre.len(),
                                post.len()
                            ),
                        ));
                    }
                    if let Some(c) = pre.iter().zip(&post).find(|(p, q)| p == q) {
                        if !s.autapses {
                            return Err(Error::setting(
                                format!("{what}.rule"),
                                format!(
                                    "one_to_one pairs cell {} with itself (set autapses = true \
                                     to allow it)",
                                    c.0
                                ),
                            ));
                        }
                    }
                    pre.iter().copied().zip(post.iter().copied()).collect()
                }
            };
            if pairs.is_empty() {
                return Err(Error::setting(
                    &what,
                    "makes no synapse (every pair is a cell onto itself; set autapses = true)",
                ));
            }
            let first = net.synapses.len();
            for (p, q) in pairs {
                let (_, a) = s.pre.node_in(&net.cells[p], &format!("{what}.pre"))?;
                let (_, b) = s.post.node_in(&net.cells[q], &format!("{what}.post"))?;
                net.connect(kind, (p, a), (q, b), s.delay, &rows)
                    .map_err(|e| Error::setting(&what, e.to_string()))?;
            }
            synapse_entries.push(first..net.synapses.len());
        }

        let mut stims = Vec::new();
        for (j, st) in self.stimuli.iter().enumerate() {
            let what = format!("stimuli[{j}]");
            let mut nodes = Vec::new();
            for c in cells_of(st.cell.as_ref().unwrap_or(&CellRef::Index(0)), &what)? {
                let (_, node) = node_in(&net.cells[c], &st.branch, st.x, &what)?;
                nodes.push(net.offset[c] + node);
            }
            stims.push((what, st, nodes));
        }
        let (clamps, vclamps) = clamps_of(&stims, base, batch, steps, self.duration)?;

        let mut probes = Vec::new();
        let mut labels = Vec::new();
        let mut units = Vec::new();
        let default_rec = [RecordEntry {
            cell: Some(CellRef::List((0..n_cells).collect())),
            ..RecordEntry::default()
        }];
        let recs = if self.record.is_empty() {
            &default_rec[..]
        } else {
            &self.record[..]
        };
        for (j, r) in recs.iter().enumerate() {
            let what = format!("record[{j}]");
            if let Some(e) = r.synapses {
                if r.cell.is_some() || r.branch.is_some() || r.var != "v" {
                    return Err(Error::setting(
                        what,
                        "a synapse record takes only `synapses` (no cell, branch, x or var)",
                    ));
                }
                let range = synapse_entries.get(e).ok_or_else(|| {
                    Error::setting(
                        &what,
                        format!(
                            "no [[synapses]] entry {e} (the file has {})",
                            synapse_entries.len()
                        ),
                    )
                })?;
                for k in range.clone() {
                    let sy = &net.synapses[k];
                    probes.push(NetProbe::Synapse { synapse: k });
                    labels.push(format!(
                        "synapses[{e}] {}→{}.g",
                        cell_names[sy.pre.0], cell_names[sy.post.0]
                    ));
                    units.push("µS");
                }
                continue;
            }
            for c in cells_of(r.cell.as_ref().unwrap_or(&CellRef::Index(0)), &what)? {
                let (b, node) = node_in(&net.cells[c], r.branch(), r.x, &what)?;
                let merged = net.offset[c] + node;
                let probe = probe_of(&what, &r.var, merged, &net.merged, &vclamps)?;
                probes.push(NetProbe::Merged(probe));
                labels.push(format!(
                    "{}:{}({}).{}",
                    cell_names[c],
                    net.cells[c].morphology.name(b),
                    r.x,
                    r.var
                ));
                units.push(probe.unit());
            }
        }
        Ok(NetResolved {
            network: net,
            protocol: Protocol {
                dt: self.dt,
                steps,
                celsius: self.celsius,
                v_init: self.v_init,
                clamps,
                vclamps,
                scheme: self.solver,
                probes: Vec::new(),
            },
            probes,
            labels,
            units,
            cell_names,
            synapse_entries,
            notes,
        })
    }
}

/// The branch index and node of `cell` at branch `br`, position `x`; `what` names the entry in
/// an error.
fn node_in(cell: &Cell, br: &BranchRef, x: f64, what: &str) -> Result<(usize, usize)> {
    let b = branch_index(cell, br, what)?;
    let node = cell
        .node_at(b, x)
        .map_err(|e| Error::setting(what, e.to_string()))?;
    Ok((b, node))
}

impl Endpoint {
    /// Its branch index and node in `cell` (the root's middle by default).
    fn node_in(&self, cell: &Cell, what: &str) -> Result<(usize, usize)> {
        node_in(cell, self.branch.as_ref().unwrap_or(&ROOT), self.x, what)
    }
}

/// A cell entry's description: a loaded cell file, or the entry itself.
enum Body<'a> {
    File { path: PathBuf, cfg: Box<CellConfig> },
    Inline(&'a CellEntry),
}

impl Body<'_> {
    fn channels(&self) -> &[ChannelEntry] {
        match self {
            Body::File { cfg, .. } => &cfg.channels,
            Body::Inline(e) => &e.channels,
        }
    }

    /// The cell for a batch of `batch`; errors name the entry or the cell file.
    fn build(&self, what: &str, base: &Path, batch: usize) -> Result<Cell> {
        match self {
            Body::File { path, cfg } => {
                let dir = path.parent().unwrap_or_else(|| Path::new("."));
                build_cell(
                    &cfg.morphology,
                    &cfg.branches,
                    &cfg.passive,
                    &cfg.channels,
                    dir,
                    batch,
                )
                .map_err(|e| Error::Config {
                    path: path.clone(),
                    message: format!("(the cell of {what}) {e}"),
                })
            }
            Body::Inline(e) => build_cell(
                &e.morphology,
                &e.branches,
                &e.passive,
                &e.channels,
                base,
                batch,
            )
            .map_err(|err| Error::setting(what, err.to_string())),
        }
    }
}

impl CellEntry {
    /// Its description: the cell file loaded, or itself; `file` and inline keys together are an
    /// error.
    fn body(&self, what: &str, base: &Path) -> Result<Body<'_>> {
        let inline = self.morphology.is_some()
            || !self.branches.is_empty()
            || !self.passive.is_empty()
            || !self.channels.is_empty();
        match (&self.file, inline) {
            (Some(f), false) => {
                let path = base.join(f);
                let cfg = CellConfig::load(&path)?;
                Ok(Body::File {
                    path,
                    cfg: Box::new(cfg),
                })
            }
            (Some(_), true) => Err(Error::setting(
                what,
                "give either file = … or the cell inline (morphology or branches, passive, \
                 channels), not both",
            )),
            (None, _) => Ok(Body::Inline(self)),
        }
    }
}

/// The parameter rows (one per batch element) of a synapse entry: the values given, the
/// synapse's defaults elsewhere.
fn synapse_rows(
    what: &str,
    kind: SynapseKind,
    params: &BTreeMap<String, Values>,
    batch: usize,
) -> Result<Vec<Vec<f64>>> {
    let spec = kind.spec();
    for p in params.keys() {
        if spec.param_index(p).is_none() {
            return Err(Error::setting(
                format!("{what}.params.{p}"),
                format!(
                    "`{}` has no such parameter (it has: {})",
                    spec.name,
                    spec.params
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok((0..batch)
        .map(|b| {
            spec.params
                .iter()
                .map(|p| params.get(p.name).map_or(p.default, |v| v.get(b)))
                .collect()
        })
        .collect())
}
