//! Smoothness regulariser for per-branch parameters (e.g. a channel's maximal conductance on
//! every branch of a dendritic tree): neighbouring branches are pulled towards each other,
//!
//! ```text
//! R(g) = Σ_{children c} w_c (g_c − g_{p(c)})²,
//! ∂R/∂g_c = 2 w_c (g_c − g_{p(c)}) − Σ_{c' : p(c') = c} 2 w_{c'} (g_{c'} − g_c),
//! ```
//!
//! over every branch `c` that has a parent `p(c)`. The tree is given as a parent-index array,
//! `parent[c] = −1` for a root (several roots, i.e. a forest of cells, are allowed). `w_c ≥ 0`
//! is one weight for all children or one per child (e.g. scaled by branch length); its unit is
//! the loss unit over the parameter unit squared.
//!
//! Used as an additive penalty on per-branch conductances in the spirit of Jaxley's fits of
//! detailed morphologies (Deistler et al., Nature Methods 2025), where each branch may carry its
//! own conductance but unconstrained per-branch values are ill-determined by somatic recordings.

use burn::prelude::{Backend, Int, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::traces::{LossGrad, Traces};

/// A validated branch tree (parent per branch) with child weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Smoothness {
    /// `(child, parent, weight)` for every non-root branch.
    edges: Vec<(usize, usize, f64)>,
    branches: usize,
}

impl Smoothness {
    /// One weight `w ≥ 0` for every child branch. Errors on a parent index out of range, a
    /// branch that is its own parent, or a cycle (naming the branches involved).
    pub fn new(parents: &[i64], weight: f64) -> Result<Self> {
        Self::with_weights(parents, &vec![weight; parents.len()])
    }

    /// One weight per branch (`weights[c]` for the edge from `c` to its parent; ignored for
    /// roots), each finite and `≥ 0`.
    pub fn with_weights(parents: &[i64], weights: &[f64]) -> Result<Self> {
        let n = parents.len();
        if n == 0 {
            return Err(Error::shape("smoothness", "the tree has no branches"));
        }
        if weights.len() != n {
            return Err(Error::shape(
                "smoothness",
                format!("{} weights for {n} branches", weights.len()),
            ));
        }
        let mut parent = vec![None; n];
        for (c, &p) in parents.iter().enumerate() {
            if p == -1 {
                continue;
            }
            if p < -1 || p >= n as i64 {
                return Err(Error::shape(
                    "smoothness",
                    format!(
                        "branch {c}: parent index {p} is out of range (valid: −1 for a root, or \
                         0..{})",
                        n - 1
                    ),
                ));
            }
            if p as usize == c {
                return Err(Error::shape(
                    "smoothness",
                    format!("branch {c} is its own parent"),
                ));
            }
            parent[c] = Some(p as usize);
        }
        // Cycle check: follow parents from every branch, colouring visited paths.
        // 0 = unseen, 1 = on the current path, 2 = known to reach a root.
        let mut state = vec![0u8; n];
        let mut path = Vec::new();
        for start in 0..n {
            let mut c = start;
            path.clear();
            loop {
                match state[c] {
                    2 => break,
                    1 => {
                        let at = path.iter().position(|&v| v == c).unwrap_or(0);
                        let cycle: Vec<String> =
                            path[at..].iter().map(|v: &usize| v.to_string()).collect();
                        return Err(Error::shape(
                            "smoothness",
                            format!(
                                "the parent indices form a cycle through branches {} (a tree \
                                 needs every branch to reach a root, parent −1)",
                                cycle.join(" → ")
                            ),
                        ));
                    }
                    _ => {}
                }
                state[c] = 1;
                path.push(c);
                match parent[c] {
                    Some(p) => c = p,
                    None => break,
                }
            }
            for &v in &path {
                state[v] = 2;
            }
        }
        let mut edges = Vec::new();
        for (c, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                let w = weights[c];
                if !(w.is_finite() && w >= 0.0) {
                    return Err(Error::setting(
                        "smoothness weight",
                        format!("branch {c}: the weight must be finite and ≥ 0, got {w}"),
                    ));
                }
                edges.push((c, *p, w));
            }
        }
        Ok(Self { edges, branches: n })
    }

    /// The number of branches.
    pub fn branches(&self) -> usize {
        self.branches
    }

    /// `R` and `∂R/∂g` for each row of a batch of per-branch values `[B, branches]`.
    pub fn value_and_grad(&self, g: &Traces) -> Result<LossGrad> {
        if g.len() != self.branches {
            return Err(Error::shape(
                "smoothness",
                format!(
                    "{} values per row for a tree of {} branches",
                    g.len(),
                    self.branches
                ),
            ));
        }
        let n = self.branches;
        let mut loss = Vec::with_capacity(g.rows());
        let mut grad = vec![0.0; g.rows() * n];
        for b in 0..g.rows() {
            let row = g.row(b);
            let gr = &mut grad[b * n..(b + 1) * n];
            let mut r = 0.0;
            for &(c, p, w) in &self.edges {
                let d = row[c] - row[p];
                r += w * d * d;
                gr[c] += 2.0 * w * d;
                gr[p] -= 2.0 * w * d;
            }
            loss.push(r);
        }
        Ok(LossGrad { loss, grad })
    }

    /// `R` on tensors, differentiable: `[B, branches]` → `[B]` (zero for a tree of roots only).
    pub fn value_tensor<B: Backend>(&self, g: Tensor<B, 2>) -> Result<Tensor<B, 1>> {
        let [b, n] = g.dims();
        if n != self.branches {
            return Err(Error::shape(
                "smoothness",
                format!(
                    "{n} values per row for a tree of {} branches",
                    self.branches
                ),
            ));
        }
        let device = g.device();
        if self.edges.is_empty() {
            return Ok(g.sum_dim(1).reshape([b]).zeros_like());
        }
        let e = self.edges.len();
        let idx = |f: fn(&(usize, usize, f64)) -> usize| {
            let v: Vec<i64> = self.edges.iter().map(|t| f(t) as i64).collect();
            Tensor::<B, 1, Int>::from_data(TensorData::new(v, [e]), &device)
        };
        let child = idx(|t| t.0);
        let parent = idx(|t| t.1);
        let w: Vec<f64> = self.edges.iter().map(|t| t.2).collect();
        let w = Tensor::<B, 1>::from_data(TensorData::new(w, [e]), (&device, g.dtype()))
            .reshape([1, e]);
        let d = g.clone().select(1, child) - g.select(1, parent);
        Ok((d.square() * w).sum_dim(1).reshape([b]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type AD = Autodiff<NdArray<f64>>;

    #[test]
    fn value_matches_hand_computation_and_gradient_matches_fd() {
        //      0
        //     / \
        //    1   2      (and a second root 5 with child 6)
        //   / \
        //  3   4
        let parents = [-1, 0, 0, 1, 1, -1, 5];
        let w = [9.0, 1.0, 2.0, 0.5, 1.5, 9.0, 3.0]; // roots' weights are ignored
        let s = Smoothness::with_weights(&parents, &w).unwrap();
        let g = [
            1.0, 2.0, 0.5, 3.0, 1.0, -1.0, 0.0, /* row 2 */ 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7,
        ];
        let t = Traces::new(&g, 2, 7).unwrap();
        let lg = s.value_and_grad(&t).unwrap();
        let want0 = 1.0 * 1.0 + 2.0 * 0.25 + 0.5 * 1.0 + 1.5 * 1.0 + 3.0 * 1.0;
        assert!(
            (lg.loss[0] - want0).abs() < 1e-14,
            "{} vs {want0}",
            lg.loss[0]
        );
        let h = 1e-6;
        for k in 0..14 {
            let (mut p, mut m) = (g, g);
            p[k] += h;
            m[k] -= h;
            let r = k / 7;
            let fd = (s
                .value_and_grad(&Traces::new(&p, 2, 7).unwrap())
                .unwrap()
                .loss[r]
                - s.value_and_grad(&Traces::new(&m, 2, 7).unwrap())
                    .unwrap()
                    .loss[r])
                / (2.0 * h);
            assert!(
                (lg.grad[k] - fd).abs() < 1e-8,
                "{k}: {} vs {fd}",
                lg.grad[k]
            );
        }
        // Equal values along the tree cost nothing.
        let flat = Traces::new(&[2.0; 7], 1, 7).unwrap();
        assert_eq!(s.value_and_grad(&flat).unwrap().loss[0], 0.0);
    }

    #[test]
    fn tensor_version_matches_host() {
        let parents = [-1, 0, 1, 1, 0];
        let s = Smoothness::new(&parents, 0.7).unwrap();
        let g = [0.3, -1.0, 2.0, 0.5, 1.1, 1.0, 1.0, 0.0, 4.0, -2.0];
        let lg = s.value_and_grad(&Traces::new(&g, 2, 5).unwrap()).unwrap();
        let dev = Default::default();
        let x = Tensor::<AD, 2>::from_data(
            TensorData::new(g.to_vec(), [2, 5]),
            crate::test_opts::<AD>(&dev),
        )
        .require_grad();
        let v = s.value_tensor(x.clone()).unwrap();
        let vals = v.to_data().convert::<f64>().into_vec::<f64>().unwrap();
        let gr = x
            .grad(&v.sum().backward())
            .unwrap()
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .unwrap();
        for (v, l) in vals.iter().zip(&lg.loss) {
            assert!((v - l).abs() < 1e-13, "{v} vs {l}");
        }
        for (a, b) in gr.iter().zip(&lg.grad) {
            assert!((a - b).abs() < 1e-13, "{a} vs {b}");
        }
    }

    #[test]
    fn bad_trees_are_errors() {
        let e = Smoothness::new(&[-1, 0, 7], 1.0).unwrap_err().to_string();
        assert!(
            e.contains("branch 2: parent index 7 is out of range"),
            "{e}"
        );
        let e = Smoothness::new(&[-1, -3], 1.0).unwrap_err().to_string();
        assert!(e.contains("branch 1: parent index -3"), "{e}");
        let e = Smoothness::new(&[-1, 1], 1.0).unwrap_err().to_string();
        assert!(e.contains("branch 1 is its own parent"), "{e}");
        let e = Smoothness::new(&[-1, 3, 1, 2, 0], 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cycle through branches 1 → 3 → 2"), "{e}");
        let e = Smoothness::new(&[1, 0], 1.0).unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
        let e = Smoothness::new(&[-1, 0], f64::NAN).unwrap_err().to_string();
        assert!(e.contains("branch 1: the weight"), "{e}");
        let s = Smoothness::new(&[-1, 0, 0], 1.0).unwrap();
        let e = s
            .value_and_grad(&Traces::new(&[0.0; 4], 1, 4).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("4 values per row for a tree of 3 branches"),
            "{e}"
        );
    }
}
