//! Morphologies: branches (unbranched cables) with a length, a radius, a number of
//! compartments, a group and a parent branch, built in code, from TOML (`[[branches]]`) or read
//! from an SWC file.
//!
//! ## Units
//! Lengths and radii in µm.
//!
//! ## SWC
//! An SWC file has one point per row: `id type x y z radius parent` (µm; `parent = −1` for the
//! root; `#` starts a comment). Types 1–4 are the groups soma, axon, basal and apical dendrite
//! (Cannon et al. 1998, the NeuroMorpho convention); any other type is refused with the file,
//! row and type. A branch is a maximal chain of points of one type between the root, branch
//! points and type changes; its length is the sum of the distances along the chain (for a branch
//! whose parent is not the soma, from its parent point; for a child of the soma, from the soma's
//! surface), its radius the length-weighted mean of the segments' mean radii (one cylinder per
//! branch: NEURON's frustum-by-frustum areas are not reproduced). A soma given as a single point
//! of radius `r` becomes a cylinder of length `2r` and radius `r`, whose side has the sphere's
//! area `4πr²` (NEURON's `Import3d` convention). A soma of several points is a cable like any
//! other branch. Every branch is cut into `max(ncomp, ⌈length / max_comp_length⌉)` compartments.
//!
//! ## Attachment
//! A branch attaches at its proximal end (`x = 0`) to the distal end (`x = 1`) of its parent, as
//! NEURON's `child.connect(parent(1))`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CellError;

/// The part of a cell a branch belongs to (SWC types 1–4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// SWC type 1.
    Soma,
    /// SWC type 2.
    Axon,
    /// SWC type 3.
    Basal,
    /// SWC type 4.
    Apical,
}

impl Group {
    /// Every group, in SWC order.
    pub const ALL: [Group; 4] = [Group::Soma, Group::Axon, Group::Basal, Group::Apical];

    /// The group's name (`soma`, `axon`, `basal`, `apical`).
    pub fn name(self) -> &'static str {
        match self {
            Group::Soma => "soma",
            Group::Axon => "axon",
            Group::Basal => "basal",
            Group::Apical => "apical",
        }
    }

    /// The group called `name`.
    pub fn find(name: &str) -> Option<Group> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The group of SWC type `t` (1–4).
    pub fn from_swc(t: i64) -> Option<Group> {
        match t {
            1 => Some(Group::Soma),
            2 => Some(Group::Axon),
            3 => Some(Group::Basal),
            4 => Some(Group::Apical),
            _ => None,
        }
    }
}

/// One unbranched cable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// A name for messages and recordings (default: `branch<i>`).
    #[serde(default)]
    pub name: Option<String>,
    /// The index of the parent branch, which must come earlier in the list; none for the root
    /// (exactly one branch, the first).
    #[serde(default)]
    pub parent: Option<usize>,
    /// Length, µm.
    pub length: f64,
    /// Radius, µm.
    pub radius: f64,
    /// Number of compartments.
    #[serde(default = "one")]
    pub ncomp: usize,
    /// The group.
    pub group: Group,
}

fn one() -> usize {
    1
}

/// A tree of branches, parents before children.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Morphology {
    /// The branches; branch 0 is the root.
    pub branches: Vec<Branch>,
}

impl Morphology {
    /// The name of branch `i` (its own, or `branch<i>`).
    pub fn name(&self, i: usize) -> String {
        self.branches[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("branch{i}"))
    }

    /// The branch called `name` (or `branch<i>`).
    pub fn find(&self, name: &str) -> Option<usize> {
        (0..self.branches.len()).find(|&i| self.name(i) == name)
    }

    /// Checks the tree: one root (branch 0), every parent an earlier branch, positive finite
    /// lengths and radii, at least one compartment per branch.
    pub fn validate(&self) -> Result<(), CellError> {
        if self.branches.is_empty() {
            return Err(CellError::setting("branches", "the cell has no branches"));
        }
        for (i, b) in self.branches.iter().enumerate() {
            let bad = |message: String| CellError::Branch {
                branch: self.name(i),
                index: i,
                message,
            };
            match (i, b.parent) {
                (0, Some(p)) => {
                    return Err(bad(format!(
                        "the first branch is the root and has no parent (got parent {p})"
                    )))
                }
                (i, None) if i > 0 => {
                    return Err(bad(
                        "only the first branch may lack a parent (a cell is one tree)".into(),
                    ))
                }
                (i, Some(p)) if p >= i => {
                    return Err(bad(format!(
                        "bad parent index {p}: a parent must be an earlier branch (0..{})",
                        i.saturating_sub(1)
                    )))
                }
                _ => {}
            }
            if !(b.length.is_finite() && b.length > 0.0) {
                return Err(bad(format!("length must be positive, got {} µm", b.length)));
            }
            if !(b.radius.is_finite() && b.radius > 0.0) {
                return Err(bad(format!("radius must be positive, got {} µm", b.radius)));
            }
            if b.ncomp == 0 {
                return Err(bad("ncomp must be at least 1".into()));
            }
        }
        let mut names = HashMap::new();
        for i in 0..self.branches.len() {
            if let Some(j) = names.insert(self.name(i), i) {
                return Err(CellError::Branch {
                    branch: self.name(i),
                    index: i,
                    message: format!("the name is also branch {j}'s"),
                });
            }
        }
        Ok(())
    }

    /// Reads an SWC file (see the module documentation); every branch gets
    /// `max(ncomp, ⌈length / max_comp_length⌉)` compartments.
    pub fn from_swc(
        path: &Path,
        ncomp: usize,
        max_comp_length: Option<f64>,
    ) -> Result<Self, CellError> {
        let text = std::fs::read_to_string(path).map_err(|e| CellError::Swc {
            file: path.to_path_buf(),
            row: 0,
            message: e.to_string(),
        })?;
        Self::parse_swc(&text, path, ncomp, max_comp_length)
    }

    /// Parses SWC text; `path` names the source in errors.
    pub fn parse_swc(
        text: &str,
        path: &Path,
        ncomp: usize,
        max_comp_length: Option<f64>,
    ) -> Result<Self, CellError> {
        let err = |row: usize, message: String| CellError::Swc {
            file: path.to_path_buf(),
            row,
            message,
        };
        if ncomp == 0 {
            return Err(err(0, "ncomp must be at least 1".into()));
        }
        if let Some(m) = max_comp_length {
            if !(m.is_finite() && m > 0.0) {
                return Err(err(0, format!("max_comp_length must be positive, got {m}")));
            }
        }
        struct Pt {
            row: usize,
            group: Group,
            pos: [f64; 3],
            r: f64,
            parent: Option<usize>,
        }
        let mut pts: Vec<Pt> = Vec::new();
        let mut by_id: HashMap<i64, usize> = HashMap::new();
        for (k, line) in text.lines().enumerate() {
            let row = k + 1;
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 7 {
                return Err(err(
                    row,
                    format!(
                        "expected 7 columns (id type x y z radius parent), found {}",
                        f.len()
                    ),
                ));
            }
            let int = |j: usize, what: &str| -> Result<i64, CellError> {
                f[j].parse::<i64>()
                    .or_else(|_| match f[j].parse::<f64>() {
                        Ok(x) if x.fract() == 0.0 => Ok(x as i64),
                        _ => Err(()),
                    })
                    .map_err(|_| err(row, format!("{what} `{}` is not an integer", f[j])))
            };
            let num = |j: usize, what: &str| -> Result<f64, CellError> {
                f[j].parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| err(row, format!("{what} `{}` is not a finite number", f[j])))
            };
            let id = int(0, "id")?;
            let t = int(1, "type")?;
            let pos = [num(2, "x")?, num(3, "y")?, num(4, "z")?];
            let r = num(5, "radius")?;
            let parent = int(6, "parent")?;
            let group = Group::from_swc(t).ok_or_else(|| {
                err(
                    row,
                    format!(
                        "point {id}: type {t} is not one of 1 (soma), 2 (axon), 3 (basal), 4 \
                         (apical)"
                    ),
                )
            })?;
            if r <= 0.0 {
                return Err(err(
                    row,
                    format!("point {id}: radius must be positive, got {r} µm (zero radius)"),
                ));
            }
            let parent = if parent == -1 {
                None
            } else {
                Some(*by_id.get(&parent).ok_or_else(|| {
                    err(
                        row,
                        format!(
                            "point {id}: bad parent index {parent} (no earlier point has that id)"
                        ),
                    )
                })?)
            };
            if by_id.insert(id, pts.len()).is_some() {
                return Err(err(row, format!("point id {id} appears twice")));
            }
            pts.push(Pt {
                row,
                group,
                pos,
                r,
                parent,
            });
        }
        let roots: Vec<usize> = (0..pts.len())
            .filter(|&i| pts[i].parent.is_none())
            .collect();
        match roots.as_slice() {
            [0] => {}
            [] => return Err(err(0, "no points (or no root with parent −1)".into())),
            [_] => {
                return Err(err(
                    pts[roots[0]].row,
                    "the root (parent −1) must be the first point".into(),
                ))
            }
            _ => {
                return Err(err(
                    pts[roots[1]].row,
                    format!(
                        "a second root (parent −1; the first is on row {}): a cell is one tree",
                        pts[roots[0]].row
                    ),
                ))
            }
        }
        let mut children = vec![Vec::new(); pts.len()];
        for (i, p) in pts.iter().enumerate() {
            if let Some(q) = p.parent {
                children[q].push(i);
            }
        }
        let dist = |a: usize, b: usize| -> f64 {
            let (p, q) = (pts[a].pos, pts[b].pos);
            ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt()
        };
        let n_comp = |len: f64| -> usize {
            let by_len = max_comp_length.map_or(1, |m| (len / m).ceil() as usize);
            ncomp.max(by_len)
        };
        // Walk branches depth-first from the root: (first point, parent branch).
        let mut branches: Vec<Branch> = Vec::new();
        let mut stack: Vec<(usize, Option<usize>)> = vec![(0, None)];
        let single_soma =
            pts[0].group == Group::Soma && children[0].iter().all(|&c| pts[c].group != Group::Soma);
        while let Some((start, parent_branch)) = stack.pop() {
            let group = pts[start].group;
            let mut chain = vec![start];
            loop {
                let last = *chain.last().unwrap();
                match children[last].as_slice() {
                    [c] if pts[*c].group == group => chain.push(*c),
                    _ => break,
                }
            }
            let (length, radius) = if start == 0 && single_soma {
                (2.0 * pts[0].r, pts[0].r)
            } else {
                // Segments: from the parent point (or the soma's surface) along the chain.
                let mut segs: Vec<(f64, f64)> = Vec::new();
                let mut prev = pts[start].parent;
                for &c in &chain {
                    if let Some(p) = prev {
                        let mut l = dist(p, c);
                        let mut r = 0.5 * (pts[p].r + pts[c].r);
                        if p == 0 && single_soma {
                            l = (l - pts[0].r).max(0.0);
                            r = pts[c].r;
                        }
                        segs.push((l, r));
                    }
                    prev = Some(c);
                }
                let length: f64 = segs.iter().map(|s| s.0).sum();
                let radius = if length > 0.0 {
                    segs.iter().map(|s| s.0 * s.1).sum::<f64>() / length
                } else {
                    pts[start].r
                };
                (length, radius)
            };
            if length.is_nan() || length <= 0.0 {
                return Err(err(
                    pts[start].row,
                    format!(
                        "the branch starting here ({} points) has zero length",
                        chain.len()
                    ),
                ));
            }
            let index = branches.len();
            branches.push(Branch {
                name: Some(format!("{}{}", group.name(), index)),
                parent: parent_branch,
                length,
                radius,
                ncomp: n_comp(length),
                group,
            });
            let last = *chain.last().unwrap();
            for &c in children[last].iter().rev() {
                stack.push((c, Some(index)));
            }
        }
        let m = Morphology { branches };
        m.validate()?;
        Ok(m)
    }
}
