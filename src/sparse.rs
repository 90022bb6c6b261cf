//! Sparse coupling: the connectome's nonzero weights as an edge list, for networks where most
//! pairs of nodes are not connected.
//!
//! # What sparse means
//! The dense engines compute each coupling sum `Σ_j W_ij s_j` as a matrix product over all `N²`
//! pairs, zero weights included, and keep `Wᵀ` (`N²` numbers; 1.6 GB in `f32` at 20,000 nodes).
//! In sparse mode only the `nnz` nonzero entries are kept, as a compressed sparse row list
//! ([`Csr`]: per target `i`, its sources `j` and weights `W_ij`, sorted by target), and every
//! sum is computed edge by edge:
//!
//! - tensor engine ([`crate::network`]): gather the sources' values (`[batch, nnz]`), multiply
//!   by the weights, scatter-add them into their targets (`[batch, N]`). With delays only the
//!   `nnz` delayed values are gathered from the history instead of all `N²`. Both operations
//!   have gradients, so sparse networks differentiate like dense ones.
//! - fused CPU engine ([`crate::fused`]): a loop over each target's incoming edges.
//!
//! The result is the same sum in another order: equal to the dense result up to floating-point
//! rounding (`tests/integration/sparse.rs`). Memory for the weights drops from `N²` to about `nnz` numbers
//! plus two indices per edge, and time per sum from `N²` to `nnz` operations, but each sparse
//! operation costs more than a dense multiply-add, so sparse only pays off below some density.
//!
//! # When it is used
//! [`SparseMode::On`] and [`SparseMode::Off`] force it. [`SparseMode::Auto`] (the default) uses
//! it where it was measured to be at least as fast as dense in both engines on CPU
//! (`BENCHMARKS.md`, "Sparse coupling"): networks of at least [`AUTO_MIN_NODES`] nodes with a
//! density `nnz / N²` of at most [`AUTO_MAX_DENSITY`], or of at least [`AUTO_LARGE_NODES`]
//! nodes (where `Wᵀ` no longer fits in the caches and dense sums slow down per entry) with a
//! density of at most [`AUTO_LARGE_MAX_DENSITY`]. Below [`AUTO_MIN_NODES`] dense sums are fast
//! and small anyway (the tensor engine's crossover there is at 1–2 %). The fused engine alone
//! would gain from sparse sums at higher densities too (up to about 10 % from 300 nodes): use
//! [`SparseMode::On`] there. Sparse always takes less memory.

/// Smallest network for which [`SparseMode::Auto`] considers sparse coupling.
pub const AUTO_MIN_NODES: usize = 1000;

/// Highest density (`nnz / N²`) at which [`SparseMode::Auto`] uses sparse coupling from
/// [`AUTO_MIN_NODES`] nodes (measured: sparse 1.5–3× faster at 1–2 %, the tensor engine's
/// crossover at 1,000 nodes near 3 %).
pub const AUTO_MAX_DENSITY: f64 = 0.02;

/// From this many nodes [`SparseMode::Auto`] uses sparse coupling up to
/// [`AUTO_LARGE_MAX_DENSITY`].
pub const AUTO_LARGE_NODES: usize = 3000;

/// Highest density at which [`SparseMode::Auto`] uses sparse coupling from [`AUTO_LARGE_NODES`]
/// nodes (measured at 3,000–20,000 nodes and 5 %: sparse 1.6–2.3× faster in the tensor engine,
/// 2–7× in the fused one; the tensor engine's crossover is near 10 %).
pub const AUTO_LARGE_MAX_DENSITY: f64 = 0.05;

/// Whether coupling sums use the connectome's nonzero entries only (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SparseMode {
    /// Sparse for at least [`AUTO_MIN_NODES`] nodes at a density of at most
    /// [`AUTO_MAX_DENSITY`], or at least [`AUTO_LARGE_NODES`] nodes at a density of at most
    /// [`AUTO_LARGE_MAX_DENSITY`].
    #[default]
    Auto,
    /// Always sparse.
    On,
    /// Always dense.
    Off,
}

crate::choice!(SparseMode, "sparse", [Auto => "auto", On => "on", Off => "off"]);

impl SparseMode {
    /// Whether a network of `n` nodes with `nnz` nonzero weights uses sparse coupling.
    pub fn is_sparse(self, n: usize, nnz: usize) -> bool {
        match self {
            Self::On => true,
            Self::Off => false,
            Self::Auto => {
                let d = density(n, nnz);
                (n >= AUTO_MIN_NODES && d <= AUTO_MAX_DENSITY)
                    || (n >= AUTO_LARGE_NODES && d <= AUTO_LARGE_MAX_DENSITY)
            }
        }
    }
}

/// `nnz / n²`.
pub fn density(n: usize, nnz: usize) -> f64 {
    nnz as f64 / (n as f64 * n as f64)
}

/// Number of nonzero entries of a row-major `n × n` matrix.
pub fn count_nonzero(weights: &[f64]) -> usize {
    weights.iter().filter(|&&w| w != 0.0).count()
}

/// The nonzero entries of an `n × n` weight matrix `W[target][source]` in compressed sparse row
/// form: the incoming edges of target `i` are `start[i]..start[i + 1]`, in increasing source
/// order.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    /// Number of nodes.
    pub n: usize,
    /// Offsets into `source`/`weight` per target, `n + 1` of them.
    pub start: Vec<usize>,
    /// Source node of each edge.
    pub source: Vec<u32>,
    /// Weight of each edge.
    pub weight: Vec<f64>,
}

impl Csr {
    /// The nonzero entries of the row-major `n × n` matrix `weights`.
    pub fn from_dense(n: usize, weights: &[f64]) -> Self {
        assert_eq!(weights.len(), n * n, "weights must be n × n");
        assert!(n <= u32::MAX as usize, "too many nodes for 32-bit indices");
        let nnz = count_nonzero(weights);
        let mut start = Vec::with_capacity(n + 1);
        let mut source = Vec::with_capacity(nnz);
        let mut weight = Vec::with_capacity(nnz);
        start.push(0);
        for row in weights.chunks_exact(n) {
            for (j, &w) in row.iter().enumerate() {
                if w != 0.0 {
                    source.push(j as u32);
                    weight.push(w);
                }
            }
            start.push(source.len());
        }
        Self {
            n,
            start,
            source,
            weight,
        }
    }

    /// Number of edges (nonzero weights).
    pub fn nnz(&self) -> usize {
        self.source.len()
    }

    /// Target node of each edge (non-decreasing).
    pub fn targets(&self) -> Vec<u32> {
        let mut t = Vec::with_capacity(self.nnz());
        for i in 0..self.n {
            t.extend(std::iter::repeat_n(
                i as u32,
                self.start[i + 1] - self.start[i],
            ));
        }
        t
    }

    /// `(target, source)` of each edge, in edge order.
    pub fn pairs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.n).flat_map(move |i| {
            self.source[self.start[i]..self.start[i + 1]]
                .iter()
                .map(move |&j| (i, j as usize))
        })
    }

    /// In-strengths `Σ_j W_ij`.
    pub fn rowsum(&self) -> Vec<f64> {
        (0..self.n)
            .map(|i| self.weight[self.start[i]..self.start[i + 1]].iter().sum())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_lists_nonzeros_by_target() {
        // W[target][source]
        let w = [0.0, 2.0, 0.0, 1.0, 0.0, 3.0, 0.0, 0.0, 0.0];
        let c = Csr::from_dense(3, &w);
        assert_eq!(c.start, vec![0, 1, 3, 3]);
        assert_eq!(c.source, vec![1, 0, 2]);
        assert_eq!(c.weight, vec![2.0, 1.0, 3.0]);
        assert_eq!(c.targets(), vec![0, 1, 1]);
        assert_eq!(c.pairs().collect::<Vec<_>>(), vec![(0, 1), (1, 0), (1, 2)]);
        assert_eq!(c.rowsum(), vec![2.0, 4.0, 0.0]);
    }

    #[test]
    fn auto_mode_needs_size_and_low_density() {
        let at = |n: usize, d: f64| (d * (n * n) as f64).round() as usize;
        let n = AUTO_MIN_NODES;
        assert!(SparseMode::Auto.is_sparse(n, at(n, AUTO_MAX_DENSITY)));
        assert!(!SparseMode::Auto.is_sparse(n, at(n, AUTO_MAX_DENSITY) + n));
        assert!(!SparseMode::Auto.is_sparse(n - 1, 1));
        // Between the two sizes the lower density bound applies, from the larger size the higher.
        let mid = (AUTO_MIN_NODES + AUTO_LARGE_NODES) / 2;
        assert!(!SparseMode::Auto.is_sparse(mid, at(mid, AUTO_LARGE_MAX_DENSITY)));
        let big = AUTO_LARGE_NODES;
        assert!(SparseMode::Auto.is_sparse(big, at(big, AUTO_LARGE_MAX_DENSITY)));
        assert!(!SparseMode::Auto.is_sparse(big, at(big, AUTO_LARGE_MAX_DENSITY) + big));
        assert!(SparseMode::Auto.is_sparse(20_000, at(20_000, 0.01)));
        // hcp80-like: small and dense.
        assert!(!SparseMode::Auto.is_sparse(80, at(80, 0.5)));
        assert!(SparseMode::On.is_sparse(2, 4));
        assert!(!SparseMode::Off.is_sparse(n, 1));
        assert!("maybe".parse::<SparseMode>().is_err());
    }
}
