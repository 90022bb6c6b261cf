//! Connectomes given as edge lists, kept sparse from the file on: a network of 100,000 regions
//! at 0.1 % density is 10 million edges (about 240 MB here), where its dense matrix would take
//! 80 GB.
//!
//! # Format
//! One edge per row: `source, target, weight[, length]` — 0-based node indices (whole
//! numbers), the weight (≥ 0, finite) of the connection from `source` onto `target`, and
//! optionally the tract length in mm (≥ 0, finite; needed for conduction delays).
//!
//! - text (`.csv`, `.tsv`, `.txt`): fields separated by commas, tabs or spaces; blank lines and
//!   lines starting with `#` are skipped; a first line that is not numbers is a header;
//! - `.npy`: a 2-D array of shape `[edges, 3]` or `[edges, 4]` (any float or integer type).
//!
//! The number of regions is the largest index plus one. Zero weights are dropped; the same
//! edge twice is an error naming both rows.

use std::io::BufRead;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::read_npy;
use crate::sparse::Csr;

/// A connectome's edges, compressed by target row (the rows of `W[target][source]`), sources
/// increasing within a row.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeList {
    /// Weights by target row.
    pub csr: Csr,
    /// Tract length of each edge in mm, aligned with `csr.source`, if given.
    pub lengths: Option<Vec<f64>>,
}

/// The columns of an edge list as read, with the row (1-based line or 0-based array row) of
/// each edge for error messages.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub source: Vec<u32>,
    pub target: Vec<u32>,
    pub weight: Vec<f64>,
    pub length: Option<Vec<f64>>,
    pub row: Vec<u32>,
    /// `line` (text) or `row` (array), for messages.
    pub row_word: &'static str,
}

/// Whether `spec` names an edge list: `edges:PATH`, or a file whose name has `.edges.` before
/// its extension (`sc.edges.csv`, `sc.edges.npy`). Returns the path.
pub(crate) fn edge_list_path(spec: &str) -> Option<&Path> {
    if let Some(p) = spec.strip_prefix("edges:") {
        return Some(Path::new(p));
    }
    let name = Path::new(spec).file_name()?.to_str()?;
    name.contains(".edges.").then(|| Path::new(spec))
}

/// Reads an edge list file (see the module documentation).
pub(crate) fn read(path: &Path) -> Result<(usize, EdgeList)> {
    let cols = if path.extension().is_some_and(|e| e == "npy") {
        read_npy_columns(path)?
    } else {
        read_text_columns(path)?
    };
    from_columns(cols, path)
}

fn node_index(v: f64, path: &Path, what: &str, word: &str, row: usize) -> Result<u32> {
    if v.fract() == 0.0 && v >= 0.0 && v < u32::MAX as f64 {
        Ok(v as u32)
    } else {
        Err(Error::data(
            path,
            format!("{word} {row}: {what} {v} is not a node index (a whole number ≥ 0)"),
        ))
    }
}

fn value(v: f64, path: &Path, what: &str, word: &str, row: usize) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(Error::data(
            path,
            format!("{word} {row}: {what} is {v}; it must be finite and ≥ 0"),
        ))
    }
}

fn read_npy_columns(path: &Path) -> Result<Columns> {
    let a = read_npy(path)?;
    let k = match a.shape.as_slice() {
        [_, k @ (3 | 4)] => *k,
        sh => {
            return Err(Error::data(
                path,
                format!(
                    "an edge list must have shape [edges, 3] (source, target, weight) or \
                     [edges, 4] (with length); found {sh:?}"
                ),
            ))
        }
    };
    let e = a.shape[0];
    let mut c = Columns {
        length: (k == 4).then(|| Vec::with_capacity(e)),
        row_word: "row",
        ..Columns::default()
    };
    for (r, f) in a.data.chunks_exact(k).enumerate() {
        push(&mut c, f, path, r)?;
    }
    Ok(c)
}

fn push(c: &mut Columns, f: &[f64], path: &Path, row: usize) -> Result<()> {
    let w = c.row_word;
    let weight = value(f[2], path, "the weight", w, row)?;
    if weight == 0.0 {
        return Ok(());
    }
    c.source.push(node_index(f[0], path, "source", w, row)?);
    c.target.push(node_index(f[1], path, "target", w, row)?);
    c.weight.push(weight);
    if let Some(l) = &mut c.length {
        l.push(value(f[3], path, "the length", w, row)?);
    }
    c.row.push(u32::try_from(row).unwrap_or(u32::MAX));
    Ok(())
}

fn read_text_columns(path: &Path) -> Result<Columns> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut c = Columns {
        row_word: "line",
        ..Columns::default()
    };
    let mut width = None;
    let mut fields = [0f64; 4];
    for (k, line) in reader.lines().enumerate() {
        let lineno = k + 1;
        let line = line.map_err(|e| Error::io(path, e))?;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut count = 0;
        let mut bad = None;
        for tok in t
            .split(|ch: char| ch == ',' || ch == ';' || ch.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            if count < 4 {
                match tok.parse::<f64>() {
                    Ok(v) => fields[count] = v,
                    Err(_) => bad = bad.or(Some(tok.to_string())),
                }
            }
            count += 1;
        }
        if let Some(tok) = bad {
            if width.is_none() && c.row.is_empty() {
                // A header line.
                width = Some(count);
                continue;
            }
            return Err(Error::data(
                path,
                format!("line {lineno}: `{tok}` is not a number"),
            ));
        }
        if !(3..=4).contains(&count) {
            return Err(Error::data(
                path,
                format!(
                    "line {lineno}: {count} fields; an edge is `source, target, weight[, length]`"
                ),
            ));
        }
        match width {
            Some(w) if w != count => {
                return Err(Error::data(
                    path,
                    format!("line {lineno}: {count} fields where the first row has {w}"),
                ))
            }
            _ => width = Some(count),
        }
        if c.length.is_none() && count == 4 {
            c.length = Some(Vec::new());
        }
        push(&mut c, &fields[..count], path, lineno)?;
    }
    if c.row.is_empty() && width.is_none() {
        return Err(Error::data(path, "the edge list has no edges"));
    }
    Ok(c)
}

/// Sorts the edges into rows by target (a counting sort: no copy of the whole list besides the
/// result), sources increasing within each row, and refuses repeated edges.
pub(crate) fn from_columns(c: Columns, path: &Path) -> Result<(usize, EdgeList)> {
    let e = c.source.len();
    let n = c
        .source
        .iter()
        .chain(&c.target)
        .map(|&i| i as usize + 1)
        .max()
        .unwrap_or(0);
    if n == 0 {
        return Err(Error::data(
            path,
            "the edge list has no edges with a weight > 0",
        ));
    }
    let mut start = vec![0usize; n + 1];
    for &t in &c.target {
        start[t as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut cursor = start.clone();
    let mut source = vec![0u32; e];
    let mut weight = vec![0f64; e];
    let mut row = vec![0u32; e];
    let mut length = c.length.as_ref().map(|_| vec![0f64; e]);
    for k in 0..e {
        let t = c.target[k] as usize;
        let at = cursor[t];
        cursor[t] += 1;
        source[at] = c.source[k];
        weight[at] = c.weight[k];
        row[at] = c.row[k];
        if let (Some(dst), Some(src)) = (&mut length, &c.length) {
            dst[at] = src[k];
        }
    }
    drop(c.source);
    drop(c.weight);
    drop(c.row);
    let mut perm: Vec<usize> = Vec::new();
    for i in 0..n {
        let (a, b) = (start[i], start[i + 1]);
        if source[a..b].windows(2).all(|w| w[0] < w[1]) {
            continue;
        }
        perm.clear();
        perm.extend(a..b);
        perm.sort_by_key(|&k| (source[k], row[k]));
        for w in perm.windows(2) {
            if source[w[0]] == source[w[1]] {
                return Err(Error::data(
                    path,
                    format!(
                        "{word}s {} and {} both give the edge {} → {i}; give each edge once",
                        row[w[0]],
                        row[w[1]],
                        source[w[0]],
                        word = c.row_word,
                    ),
                ));
            }
        }
        let s: Vec<u32> = perm.iter().map(|&k| source[k]).collect();
        let wv: Vec<f64> = perm.iter().map(|&k| weight[k]).collect();
        source[a..b].copy_from_slice(&s);
        weight[a..b].copy_from_slice(&wv);
        if let Some(l) = &mut length {
            let lv: Vec<f64> = perm.iter().map(|&k| l[k]).collect();
            l[a..b].copy_from_slice(&lv);
        }
    }
    Ok((
        n,
        EdgeList {
            csr: Csr {
                n,
                start,
                source,
                weight,
            },
            lengths: length,
        },
    ))
}

/// The edges of `csr` among the nodes `idx` (node `idx[k]` becomes node `k`).
pub(crate) fn subset(el: &EdgeList, idx: &[usize]) -> EdgeList {
    let mut new_of = vec![u32::MAX; el.csr.n];
    for (k, &i) in idx.iter().enumerate() {
        new_of[i] = k as u32;
    }
    let mut start = vec![0];
    let (mut source, mut weight) = (Vec::new(), Vec::new());
    let mut lengths = el.lengths.as_ref().map(|_| Vec::new());
    for &i in idx {
        let mut row: Vec<(u32, usize)> = (el.csr.start[i]..el.csr.start[i + 1])
            .filter(|&k| new_of[el.csr.source[k] as usize] != u32::MAX)
            .map(|k| (new_of[el.csr.source[k] as usize], k))
            .collect();
        row.sort_unstable();
        for (j, k) in row {
            source.push(j);
            weight.push(el.csr.weight[k]);
            if let (Some(dst), Some(src)) = (&mut lengths, &el.lengths) {
                dst.push(src[k]);
            }
        }
        start.push(source.len());
    }
    EdgeList {
        csr: Csr {
            n: idx.len(),
            start,
            source,
            weight,
        },
        lengths,
    }
}
