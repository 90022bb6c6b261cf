//! The cable solver on Burn tensors: the same cell, channels and step as [`super::solve`] on any
//! backend (`NdArray`, `Flex`, `Wgpu`, `Cuda`), with gradients under `Autodiff<B>` by chunked
//! checkpointing — the path for large batches and GPUs, where the fused CPU solver
//! ([`super::simulate`], [`super::value_and_grad`]) is the path for small cells and batches.
//!
//! ## The step
//! Every state is a `[batch, nodes]` tensor (a placement's gates `[batch, its nodes]`), every
//! channel parameter a `[batch, 1]` tensor. Step `k` is [`super::solve`]'s, operation for
//! operation: the diagonal `d = C/dt + Σ g_axial + Σ_c g_c A` and right-hand side
//! `b = (C/dt) v + Σ_c (g E)_c A + I(t + dt/2)`, the channel terms from the channel's own
//! generic [`ChannelKind::drive`] on tensor expressions ([`Tx`]); one tree solve; then every
//! gate by exponential Euler at the new voltage from the channel's generic
//! [`ChannelKind::gates_rate`]. Crank–Nicolson (`2C/dt`, then `2 v½ − v`) is supported too.
//!
//! ## The tree solve, level by level (Jaxley's GPU scheme)
//! The nodes are grouped by depth. Elimination goes from the deepest level up: for every node
//! `i` of a level at once, with `t_i = g_i / d_i`, `d_p −= t_i g_i` and `b_p += t_i b_i` at its
//! parent `p` (a scatter-add: siblings add into one parent). Then `x = b/d` is right at the
//! root and holds `b_i/d_i` elsewhere, and back-substitution goes from the root down,
//! `x_i += t_i x_p`, a level at once. That is `O(depth)` tensor operations per step (about 11
//! per level), each over `batch × level width` numbers; a point cell is one division.
//!
//! **Its derivative is one more solve** ([`tree_solve_tracked`]): `A` is symmetric, so for
//! `x = A⁻¹ b` the adjoint `λ = A⁻¹ ∂L/∂x` is the same solve, and `∂L/∂b = λ`,
//! `∂L/∂d = −λ x`, and for the axial conductance of node `i` to its parent `p`
//! `−(λ_i − λ_p)(x_i − x_p)` (its diagonal share included; [`SolveBackward`]). Under
//! `Autodiff<B>` the solve is one node of the graph with that backward, so autodiff never
//! unrolls the elimination.
//!
//! ## Gradients ([`value_and_grad`])
//! The loss is any function of the recording (its value per batch element and its gradient
//! per sample, [`TraceLoss`], as for the fused adjoint); the gradient is with respect to every
//! parameter of every channel placement and calcium pool and batch element, laid out like
//! [`super::Placement::params`] and [`super::Pool::params`], and to each branch's passive
//! properties (`C_m`, `R_a`, radius, as [`CellGrad::passive`]). For the latter the leaves are
//! `C/h`, the axial conductances and the areas per node (`[batch, nodes]`, so each element's
//! derivative stays apart), whose gradients the fused adjoint's own conversion turns into the
//! branches' ([`cell_grads`]). The forward pass runs on `B` without a tape, recording and
//! keeping the state at the start of every chunk of `chunk` steps; then each chunk, last
//! first, runs again under `Autodiff<B>` from its start state, and
//! `S = Σ samples · ∂L/∂samples + state_end · ∂L/∂state_end` is back-propagated, giving the
//! chunk's share of `∂L/∂θ` and `∂L/∂state_start` for the chunk before. The first chunk starts
//! from the initial state built from the parameters (gates at their steady states at
//! `v_init`), so that dependence is differentiated too. Memory: `⌈T/chunk⌉` states plus one
//! chunk's tape.
//!
//! ## Voltage clamps
//! A clamp's conductance `1e-3/rs` and `1e-3 vc/rs` (while on) join the diagonal and the
//! right-hand side at its node, as in the fused step. Its recorded current `(vc − v)/rs` is
//! affine in the clamped voltage: the engine records that voltage and the host turns it into
//! the current ([`vclamp_currents`]); the loss's seeds come back through `∂i/∂v = −1/rs`
//! ([`vclamp_current_seeds`]).
//!
//! ## Calcium
//! Where the cell has a pool or a channel whose gates read calcium (`sk_e2`), the state carries
//! the concentration `cai` `[batch, nodes]` (mM; NEURON's default where there is no pool), as the
//! fused step does: a calcium current on a compartment with a pool takes the pool's Nernst
//! potential as its reversal potential there (`E + (E_Nernst − E) · mask`, the mask 1 on the
//! pooled nodes) and adds its current density to the pools' `ica` from the state at the step's
//! start; after the solve each pool advances exactly for that frozen current
//! (`cai + (cai∞ − cai)(1 − e^{−dt/τ})`, a scatter-add at its nodes), and then the gates that read
//! calcium take the new concentration (NEURON's order).

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::tensor::{IndexingUpdateOp, TensorPrimitive};
use neurodiff_models::channel::{ca_dynamics, Calcium, ChannelKind};
use neurodiff_models::real::{scope, Tx};
use neurodiff_models::Real;

use super::adjoint::{passive_grad, solve_step, CellGrad, TraceLoss};
use super::solve::{Probe, Protocol, Recording, Scheme, Stepper};
use super::{Cell, CellError};
use crate::Result;

type T2<B> = Tensor<B, 2>;

/// Steps between the checks that every state is finite (a check reads the state back).
pub const CHECK_EVERY: usize = 100;

/// One depth level of the tree: its nodes, their parents and axial conductances (mS).
#[derive(Clone)]
struct Level<B: Backend> {
    idx: Tensor<B, 1, Int>,
    par: Tensor<B, 1, Int>,
    g: T2<B>,
}

/// The tree of a cell for the level-by-level solve: its levels, deepest first.
#[derive(Clone)]
pub(crate) struct TreePlan<B: Backend> {
    levels: Vec<Level<B>>,
    /// Every node's parent (the root its own), for `∂L/∂g_axial`.
    parent: Tensor<B, 1, Int>,
    /// 1 at every node but the root, `[1, nodes]`.
    nonroot: T2<B>,
}

impl<B: Backend> std::fmt::Debug for TreePlan<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TreePlan({} levels)", self.levels.len())
    }
}

pub(crate) fn ints<B: Backend>(v: Vec<i64>, device: &B::Device) -> Tensor<B, 1, Int> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

fn row<B: Backend>(v: Vec<f64>, device: &B::Device) -> T2<B> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [1, n]), crate::float_opts::<B>(device))
}

impl<B: Backend> TreePlan<B> {
    /// The levels of the tree `parent` (parents before children, node 0 the root) with axial
    /// conductances `g_axial` (mS).
    pub(crate) fn new(parent: &[usize], g_axial: &[f64], device: &B::Device) -> Self {
        let n = parent.len();
        let mut depth = vec![0usize; n];
        for i in 1..n {
            depth[i] = depth[parent[i]] + 1;
        }
        let max = depth.iter().copied().max().unwrap_or(0);
        let levels = (1..=max)
            .rev()
            .map(|l| {
                let nodes: Vec<usize> = (0..n).filter(|&i| depth[i] == l).collect();
                Level {
                    idx: ints(nodes.iter().map(|&i| i as i64).collect(), device),
                    par: ints(nodes.iter().map(|&i| parent[i] as i64).collect(), device),
                    g: row(nodes.iter().map(|&i| g_axial[i]).collect(), device),
                }
            })
            .collect();
        TreePlan {
            levels,
            parent: ints(
                (0..n)
                    .map(|i| if i == 0 { 0 } else { parent[i] as i64 })
                    .collect(),
                device,
            ),
            nonroot: row((0..n).map(|i| f64::from(i > 0)).collect(), device),
        }
    }

    /// `x = A⁻¹ b` for the symmetric tree matrix with diagonal `d` and off-diagonals
    /// `−g_axial`, all `[batch, nodes]` (see the module documentation).
    pub(crate) fn solve(&self, mut d: T2<B>, mut b: T2<B>) -> T2<B> {
        let mut ts = Vec::with_capacity(self.levels.len());
        for lv in &self.levels {
            let di = d.clone().select(1, lv.idx.clone());
            let bi = b.clone().select(1, lv.idx.clone());
            let t = lv.g.clone() / di;
            d = d.select_assign(
                1,
                lv.par.clone(),
                -(t.clone() * lv.g.clone()),
                IndexingUpdateOp::Add,
            );
            b = b.select_assign(1, lv.par.clone(), t.clone() * bi, IndexingUpdateOp::Add);
            ts.push(t);
        }
        let mut x = b / d;
        for (lv, t) in self.levels.iter().zip(ts).rev() {
            let xp = x.clone().select(1, lv.par.clone());
            x = x.select_assign(1, lv.idx.clone(), t * xp, IndexingUpdateOp::Add);
        }
        x
    }
}

/// The backward of the tree solve: `λ = A⁻¹ ∂L/∂x`, `∂L/∂d = −λ x`, `∂L/∂b = λ`, and for the
/// axial conductance `g_i` of node `i` to its parent `p` (in `A` as `−g_i` twice off the diagonal
/// and `+g_i` on the diagonal at `i` and at `p`) the whole `∂L/∂g_i = −(λ_i − λ_p)(x_i − x_p)`.
/// The diagonal's share is here, not through `d` (the step builds `d` from a detached copy of
/// the conductances): summed from the four products `λ x`, which nearly cancel where
/// neighbouring voltages are close, it lost digits (2.7e-5 relative on an `R_a` gradient).
#[derive(Debug)]
struct SolveBackward;

impl<B: Backend> Backward<B, 3> for SolveBackward {
    /// The plan, the diagonal, the solution and the rows of the axial conductances.
    type State = (
        Arc<TreePlan<B>>,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        usize,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_d, node_b, node_g] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (plan, d, x, g_rows) = ops.state;
        let t = |p| T2::<B>::from_primitive(TensorPrimitive::Float(p));
        let (x, lam) = (t(x), plan.solve(t(d), t(grad)));
        if let Some(node) = node_g {
            let xp = x.clone().select(1, plan.parent.clone());
            let lp = lam.clone().select(1, plan.parent.clone());
            let mut gg = -((lam.clone() - lp) * (x.clone() - xp)) * plan.nonroot.clone();
            if g_rows == 1 && gg.dims()[0] > 1 {
                gg = gg.sum_dim(0);
            }
            grads.register::<B>(node.id, gg.into_primitive().tensor());
        }
        if let Some(node) = node_d {
            let gd = -(lam.clone() * x);
            grads.register::<B>(node.id, gd.into_primitive().tensor());
        }
        if let Some(node) = node_b {
            grads.register::<B>(node.id, lam.into_primitive().tensor());
        }
    }
}

/// [`TreePlan::solve`] under `Autodiff<B>` as one node of the graph whose backward is one more
/// solve (the elimination is never unrolled). `g_axial` (`[rows, nodes]`, mS) are the plan's
/// axial conductances as a tensor the gradient reaches: the solve itself reads the plan's.
pub(crate) fn tree_solve_tracked<B: Backend>(
    plan: &Arc<TreePlan<B>>,
    d: T2<Autodiff<B>>,
    b: T2<Autodiff<B>>,
    g_axial: &T2<Autodiff<B>>,
) -> T2<Autodiff<B>> {
    let g_rows = g_axial.dims()[0];
    let d = d.into_primitive().tensor();
    let b = b.into_primitive().tensor();
    let g = g_axial.clone().into_primitive().tensor();
    let t = |p| T2::<B>::from_primitive(TensorPrimitive::Float(p));
    let out = match SolveBackward
        .prepare::<NoCheckpointing>([d.node.clone(), b.node.clone(), g.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let x = plan.solve(t(d.primitive.clone()), t(b.primitive));
            let x = x.into_primitive().tensor();
            prep.finish((plan.clone(), d.primitive, x.clone(), g_rows), x)
        }
        OpsKind::UnTracked(prep) => {
            let x = plan.solve(t(d.primitive), t(b.primitive));
            prep.finish(x.into_primitive().tensor())
        }
    };
    T2::from_primitive(TensorPrimitive::Float(out))
}

/// The tree solve a step calls: `(d, b, g_axial) ↦ A⁻¹ b` ([`TreePlan::solve`], or
/// [`tree_solve_tracked`] under a gradient).
pub(crate) type Solve<'a, B> = dyn Fn(T2<B>, T2<B>, &T2<B>) -> T2<B> + 'a;

/// A channel placement on tensors.
struct Chan<B: Backend> {
    kind: ChannelKind,
    ng: usize,
    /// The rates' temperature factor.
    phi: f64,
    /// Its nodes, or `None` when it is on every node in order (no gather, no scatter).
    idx: Option<Tensor<B, 1, Int>>,
    m: usize,
    ca: Calcium,
    /// A calcium current on a compartment with a pool: 1 at its nodes with a pool (there its
    /// reversal potential is the pool's Nernst potential and its current fills the pool), 0
    /// elsewhere, `[1, m]`.
    pooled: Option<T2<B>>,
}

/// A calcium pool on tensors: its compartments.
struct PoolAt<B: Backend> {
    idx: Tensor<B, 1, Int>,
    m: usize,
}

/// The state carried from step to step: voltages `[batch, nodes]`, per placement its gates,
/// each `[batch, its nodes]`, and where the cell has calcium (a pool, or a channel that reads
/// it) the concentration `[batch, nodes]` (mM; NEURON's default where there is no pool).
#[derive(Clone)]
pub(crate) struct TState<B: Backend> {
    pub(crate) v: T2<B>,
    pub(crate) gates: Vec<Vec<T2<B>>>,
    pub(crate) cai: Option<T2<B>>,
}

impl<B: Backend> TState<B> {
    pub(crate) fn into_vec(self) -> Vec<T2<B>> {
        let mut v = vec![self.v];
        v.extend(self.gates.into_iter().flatten());
        v.extend(self.cai);
        v
    }

    pub(crate) fn to_vec(&self) -> Vec<T2<B>> {
        self.clone().into_vec()
    }
}

/// What a cell's step reads that its gradient is with respect to, as the step uses it:
/// [`TensorCell::params_from`] builds it from the flat list of [`TensorCell::flat_params`]
/// (channel parameters, pool parameters, then `C/h`, the axial conductances and the areas).
/// The passive tensors have `rows` 1 in a forward run and the batch under a gradient, so that
/// each batch element's derivative stays apart.
pub(crate) struct CParams<B: Backend> {
    /// Per placement, its parameters, each `[batch, 1]`.
    pub(crate) chan: Vec<Vec<T2<B>>>,
    /// Per calcium pool, its parameters (`ca_dynamics::PARAMS`), each `[batch, 1]`.
    pub(crate) pool: Vec<Vec<T2<B>>>,
    /// `C/h` per node (mS; `h` the solve's step), `[rows, nodes]`.
    cdt: T2<B>,
    /// Each node's axial conductance to its parent (mS, 0 at the root), `[rows, nodes]`.
    g_axial: T2<B>,
    /// The diagonal's state-free part `C/h + Σ g_axial`, `[rows, nodes]`.
    diag: T2<B>,
    /// Per placement, its nodes' membrane areas (cm²), `[rows, its nodes]`.
    area: Vec<T2<B>>,
}

/// The cell's step on backend `B`.
pub(crate) struct TensorCell<'a, B: Backend> {
    cell: &'a Cell,
    protocol: &'a Protocol,
    pub(crate) n: usize,
    pub(crate) nb: usize,
    pub(crate) device: B::Device,
    /// `C/h` per node on the host (`h = dt`, `dt/2` for Crank–Nicolson), mS.
    cdt: Vec<f64>,
    /// The nodes but the root, and their parents (`None` for a single node).
    up: Option<(Tensor<B, 1, Int>, Tensor<B, 1, Int>)>,
    chans: Vec<Chan<B>>,
    pools: Vec<PoolAt<B>>,
    /// Whether the state carries calcium.
    calcium: bool,
    /// The nodes with a current clamp, and per clamp its column among them.
    clamp_idx: Option<Tensor<B, 1, Int>>,
    clamp_col: Vec<usize>,
    n_clamped: usize,
    /// The same for the voltage clamps.
    vclamp_idx: Option<Tensor<B, 1, Int>>,
    vclamp_col: Vec<usize>,
    n_vclamped: usize,
}

/// The stimuli last uploaded by [`TensorCell::step`] (a step's usually equal the step
/// before's): the current clamps' currents, and the voltage clamps' conductances and
/// conductance × command.
pub(crate) struct Stim<B: Backend> {
    clamp: Option<(Vec<f64>, T2<B>)>,
    vclamp: Option<(Vec<f64>, T2<B>, T2<B>)>,
}

impl<B: Backend> Default for Stim<B> {
    fn default() -> Self {
        Stim {
            clamp: None,
            vclamp: None,
        }
    }
}

/// Distinct nodes of `nodes` (sorted), as an index tensor (`None` when empty), and each
/// entry's column among them.
fn columns<B: Backend>(
    nodes: &[usize],
    device: &B::Device,
) -> (Option<Tensor<B, 1, Int>>, Vec<usize>, usize) {
    let mut distinct = nodes.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let col = nodes
        .iter()
        .map(|n| distinct.binary_search(n).unwrap_or(0))
        .collect();
    let idx =
        (!distinct.is_empty()).then(|| ints(distinct.iter().map(|&i| i as i64).collect(), device));
    (idx, col, distinct.len())
}

/// `x` at `idx` (`None`: every column).
fn at<B: Backend>(idx: &Option<Tensor<B, 1, Int>>, x: T2<B>) -> T2<B> {
    match idx {
        None => x,
        Some(i) => x.select(1, i.clone()),
    }
}

/// `t` with `x` added at columns `idx` (`None`: every column).
fn add_at<B: Backend>(t: T2<B>, idx: &Option<Tensor<B, 1, Int>>, x: T2<B>) -> T2<B> {
    match idx {
        None => t + x,
        Some(i) => t.select_assign(1, i.clone(), x, IndexingUpdateOp::Add),
    }
}

/// Tensor expressions of `[batch, 1]` parameters.
fn exprs<B: Backend>(p: &[T2<B>]) -> Vec<Tx<B>> {
    p.iter().map(|t| Tx::new(t.clone())).collect()
}

impl<'a, B: Backend> TensorCell<'a, B> {
    /// Checks `protocol` against `cell` and prepares the constant parts.
    pub(crate) fn new(cell: &'a Cell, protocol: &'a Protocol, device: &B::Device) -> Result<Self> {
        let st = Stepper::<f64>::new(cell, protocol)?;
        let n = cell.n_nodes();
        let nb = cell.batch;
        let mut pooled = vec![false; n];
        cell.pools
            .iter()
            .flat_map(|p| &p.nodes)
            .for_each(|&i| pooled[i] = true);
        let chans = cell
            .channels
            .iter()
            .zip(&st.chans)
            .map(|(pl, ch)| {
                let all = pl.nodes.len() == n && pl.nodes.iter().enumerate().all(|(i, &x)| i == x);
                let nernst = ch.ca == Calcium::Current && pl.nodes.iter().any(|&i| pooled[i]);
                Chan {
                    kind: pl.kind,
                    ng: ch.ng,
                    phi: ch.phi,
                    idx: (!all).then(|| ints(pl.nodes.iter().map(|&i| i as i64).collect(), device)),
                    m: pl.nodes.len(),
                    ca: ch.ca,
                    pooled: nernst.then(|| {
                        row(
                            pl.nodes
                                .iter()
                                .map(|&i| f64::from(u8::from(pooled[i])))
                                .collect(),
                            device,
                        )
                    }),
                }
            })
            .collect();
        let pools = cell
            .pools
            .iter()
            .map(|p| PoolAt {
                idx: ints(p.nodes.iter().map(|&i| i as i64).collect(), device),
                m: p.nodes.len(),
            })
            .collect();
        let nodes: Vec<usize> = protocol.clamps.iter().map(|c| c.node).collect();
        let (clamp_idx, clamp_col, n_clamped) = columns(&nodes, device);
        let nodes: Vec<usize> = protocol.vclamps.iter().map(|c| c.node).collect();
        let (vclamp_idx, vclamp_col, n_vclamped) = columns(&nodes, device);
        Ok(TensorCell {
            cell,
            protocol,
            n,
            nb,
            device: device.clone(),
            cdt: st.cdt.clone(),
            up: (n > 1).then(|| {
                (
                    ints((1..n as i64).collect(), device),
                    ints((1..n).map(|i| cell.parent[i] as i64).collect(), device),
                )
            }),
            chans,
            pools,
            calcium: st.calcium,
            clamp_idx,
            clamp_col,
            n_clamped,
            vclamp_idx,
            vclamp_col,
            n_vclamped,
        })
    }

    /// The protocol.
    pub(crate) fn protocol(&self) -> &'a Protocol {
        self.protocol
    }

    /// The number of tensors in a state ([`TState::into_vec`]).
    pub(crate) fn state_len(&self) -> usize {
        1 + self.chans.iter().map(|c| c.ng).sum::<usize>() + usize::from(self.calcium)
    }

    /// The flat list [`TensorCell::params_from`] reads: every placement's parameters, then
    /// every pool's, as `[batch, 1]` columns; then `C/h`, the axial conductances and the
    /// membrane areas per node, each `[rows, nodes]` (see [`CParams`]).
    pub(crate) fn flat_params(&self, rows: usize) -> Vec<T2<B>> {
        let nb = self.nb;
        let opts = crate::float_opts::<B>(&self.device);
        let cols = |params: &[f64], np: usize| -> Vec<T2<B>> {
            (0..np)
                .map(|q| {
                    let col: Vec<f64> = (0..nb).map(|b| params[b * np + q]).collect();
                    Tensor::from_data(TensorData::new(col, [nb, 1]), opts.clone())
                })
                .collect()
        };
        let mut out: Vec<T2<B>> = Vec::new();
        for pl in &self.cell.channels {
            out.extend(cols(&pl.params, pl.kind.spec().params.len()));
        }
        for pool in &self.cell.pools {
            out.extend(cols(&pool.params, ca_dynamics::PARAMS.len()));
        }
        for per_node in [&self.cdt, &self.cell.g_axial, &self.cell.area] {
            out.push(Tensor::from_data(
                TensorData::new(per_node.repeat(rows), [rows, self.n]),
                opts.clone(),
            ));
        }
        out
    }

    /// The parameters as the step uses them, from [`TensorCell::flat_params`]' list (taken
    /// from `it`).
    pub(crate) fn params_from(&self, it: &mut impl Iterator<Item = T2<B>>) -> CParams<B> {
        let chan = per_placement(self.cell, it);
        let pool = self
            .cell
            .pools
            .iter()
            .map(|_| {
                (0..ca_dynamics::PARAMS.len())
                    .map(|_| it.next().expect("a pool parameter"))
                    .collect()
            })
            .collect();
        let cdt = it.next().expect("C/h");
        let g_axial = it.next().expect("the axial conductances");
        let area = it.next().expect("the areas");
        // The axial part from a detached copy: the solve's backward gives the whole
        // `∂L/∂g_axial` ([`SolveBackward`]).
        let ga = g_axial.clone().detach();
        let diag = match &self.up {
            None => cdt.clone() + ga,
            Some((child, parent)) => {
                let gc = ga.clone().select(1, child.clone());
                cdt.clone() + ga.select_assign(1, parent.clone(), gc, IndexingUpdateOp::Add)
            }
        };
        let area = self
            .chans
            .iter()
            .map(|ch| at(&ch.idx, area.clone()))
            .collect();
        CParams {
            chan,
            pool,
            cdt,
            g_axial,
            diag,
            area,
        }
    }

    /// The parameters of a forward run.
    pub(crate) fn params(&self) -> CParams<B> {
        self.params_from(&mut self.flat_params(1).into_iter())
    }

    /// The state at `t = 0`: `v_init` everywhere, calcium at NEURON's default, every gate at
    /// its steady state there.
    pub(crate) fn init(&self, params: &CParams<B>) -> TState<B> {
        let v0 = self.protocol.v_init;
        let opts = crate::float_opts::<B>(&self.device);
        let gates = self
            .chans
            .iter()
            .zip(&params.chan)
            .map(|(ch, p)| {
                if ch.ng == 0 {
                    return Vec::new();
                }
                scope(|| {
                    let p = exprs(p);
                    let mut inf = vec![Tx::constant(0.0); ch.ng];
                    let mut tau = vec![Tx::constant(0.0); ch.ng];
                    let (v, cai) = (Tx::constant(v0), Tx::constant(ca_dynamics::CAI_DEFAULT));
                    ch.kind.gates_ca(v, cai, &p, &mut inf, &mut tau);
                    inf.into_iter()
                        .map(|x| x.tensor([self.nb, ch.m], &self.device))
                        .collect()
                })
            })
            .collect();
        TState {
            v: Tensor::full([self.nb, self.n], v0, opts.clone()),
            gates,
            cai: self
                .calcium
                .then(|| Tensor::full([self.nb, self.n], ca_dynamics::CAI_DEFAULT, opts)),
        }
    }

    /// The clamps' currents during step `k`, µA, `[batch, clamped nodes]` on the host.
    fn clamp_currents(&self, k: usize) -> Vec<f64> {
        let (nb, nc) = (self.nb, self.n_clamped);
        let mut i = vec![0.0; nb * nc];
        for (cl, &col) in self.protocol.clamps.iter().zip(&self.clamp_col) {
            let a = cl.waveform.at(k, self.protocol.dt) * 1e-3; // nA → µA
            match cl.batch {
                Some(b) => i[b * nc + col] += a,
                None => (0..nb).for_each(|b| i[b * nc + col] += a),
            }
        }
        i
    }

    /// `[batch, cols]` values from the host.
    fn upload(&self, v: Vec<f64>, cols: usize) -> T2<B> {
        Tensor::from_data(
            TensorData::new(v, [self.nb, cols]),
            crate::float_opts::<B>(&self.device),
        )
    }

    /// The voltage clamps' terms during step `k` on the host, `[batch, clamped nodes]` twice:
    /// the conductances `1e-3/rs` (mS) while on, then `1e-3 vc/rs` (µA), as the fused step adds
    /// them.
    fn vclamp_terms(&self, k: usize) -> Vec<f64> {
        let (nb, nc) = (self.nb, self.n_vclamped);
        let mut t = vec![0.0; 2 * nb * nc];
        let (g, gu) = t.split_at_mut(nb * nc);
        for (vc, &col) in self.protocol.vclamps.iter().zip(&self.vclamp_col) {
            let c = 1e-3 / vc.rs;
            for b in 0..nb {
                if let Some(u) = vc.command_in_step(k, self.protocol.dt, b) {
                    g[b * nc + col] += c;
                    gu[b * nc + col] += c * u;
                }
            }
        }
        t
    }

    /// Step `k` from `st` with the tree solve `solve`; `stim` caches the last stimuli
    /// uploaded.
    pub(crate) fn step(
        &self,
        k: usize,
        st: TState<B>,
        params: &CParams<B>,
        stim: &mut Stim<B>,
        solve: &Solve<'_, B>,
    ) -> TState<B> {
        self.step_with(k, st, params, stim, solve, |d, rhs| (d, rhs))
    }

    /// [`TensorCell::step`] with `extra(d, rhs)` adding terms to the system before the solve
    /// (a network's synapses and drives).
    pub(crate) fn step_with(
        &self,
        k: usize,
        st: TState<B>,
        params: &CParams<B>,
        stim: &mut Stim<B>,
        solve: &Solve<'_, B>,
        extra: impl FnOnce(T2<B>, T2<B>) -> (T2<B>, T2<B>),
    ) -> TState<B> {
        let (nb, n, dev) = (self.nb, self.n, &self.device);
        let TState { v, gates, cai } = st;
        let opts = crate::float_opts::<B>(dev);
        let mut d = Tensor::zeros([nb, n], opts.clone()) + params.diag.clone();
        let mut rhs = v.clone() * params.cdt.clone();
        // The calcium current density that fills the pools (µA/cm²), from the state at the
        // start of the step (NEURON's `ica` of the step).
        let mut ica = (!self.pools.is_empty()).then(|| Tensor::zeros([nb, n], opts));
        for (((ch, x), p), area) in self
            .chans
            .iter()
            .zip(&gates)
            .zip(&params.chan)
            .zip(&params.area)
        {
            let shape = [nb, ch.m];
            let (g, ge, i) = scope(|| {
                let x = exprs(x);
                let p = exprs(p);
                let area = Tx::new(area.clone());
                match (&ch.pooled, &cai) {
                    (Some(mask), Some(cai)) => {
                        // A calcium current into a pool: the pool's Nernst potential is its
                        // reversal potential where there is one.
                        let mask = Tx::new(mask.clone());
                        let en = ca_dynamics::nernst(
                            Tx::new(at(&ch.idx, cai.clone())),
                            self.protocol.celsius,
                        );
                        let rev = ch.kind.reversal(&p);
                        let e = rev + (en - rev) * mask;
                        let g = ch.kind.conductance(&x, &p);
                        let i = g * (Tx::new(at(&ch.idx, v.clone())) - e) * mask;
                        let ga = g * area;
                        (
                            ga.tensor(shape, dev),
                            (ga * e).tensor(shape, dev),
                            Some(i.tensor(shape, dev)),
                        )
                    }
                    _ => {
                        let (g, ge) = ch.kind.drive(&x, &p);
                        (
                            (g * area).tensor(shape, dev),
                            (ge * area).tensor(shape, dev),
                            None,
                        )
                    }
                }
            });
            d = add_at(d, &ch.idx, g);
            rhs = add_at(rhs, &ch.idx, ge);
            if let Some(i) = i {
                ica = ica.map(|acc| add_at(acc, &ch.idx, i));
            }
        }
        if let Some(idx) = &self.clamp_idx {
            let i = self.clamp_currents(k);
            if stim.clamp.as_ref().is_none_or(|(last, _)| *last != i) {
                let t = self.upload(i.clone(), self.n_clamped);
                stim.clamp = Some((i, t));
            }
            let t = stim.clamp.as_ref().map(|s| s.1.clone()).expect("set above");
            rhs = rhs.select_assign(1, idx.clone(), t, IndexingUpdateOp::Add);
        }
        if let Some(idx) = &self.vclamp_idx {
            let t = self.vclamp_terms(k);
            if stim.vclamp.as_ref().is_none_or(|(last, ..)| *last != t) {
                let half = t.len() / 2;
                let g = self.upload(t[..half].to_vec(), self.n_vclamped);
                let gu = self.upload(t[half..].to_vec(), self.n_vclamped);
                stim.vclamp = Some((t, g, gu));
            }
            let (_, g, gu) = stim.vclamp.as_ref().expect("set above");
            d = d.select_assign(1, idx.clone(), g.clone(), IndexingUpdateOp::Add);
            rhs = rhs.select_assign(1, idx.clone(), gu.clone(), IndexingUpdateOp::Add);
        }
        let (d, rhs) = extra(d, rhs);
        let mut vn = solve(d, rhs, &params.g_axial);
        if self.protocol.scheme == Scheme::CrankNicolson {
            vn = vn * 2.0 - v;
        }
        let dt = self.protocol.dt;
        // The pools over the step, exact for its frozen current (`cnexp`):
        // `cai ← cai + (cai∞ − cai)(1 − e^{−dt/τ})`, before the gates that read calcium (as
        // NEURON orders `CaDynamics_E2` before `SK_E2`).
        let cai = match (cai, ica) {
            (Some(mut c), Some(ica)) => {
                for (pool, p) in self.pools.iter().zip(&params.pool) {
                    let (ci, ii) = (
                        c.clone().select(1, pool.idx.clone()),
                        ica.clone().select(1, pool.idx.clone()),
                    );
                    let delta = scope(|| {
                        let p = exprs(p);
                        let inf = ca_dynamics::steady(Tx::new(ii), &p);
                        let e = Real::exp(Tx::constant(-dt) / ca_dynamics::tau(&p));
                        ((inf - Tx::new(ci)) * (Tx::constant(1.0) - e)).tensor([nb, pool.m], dev)
                    });
                    c = c.select_assign(1, pool.idx.clone(), delta, IndexingUpdateOp::Add);
                }
                Some(c)
            }
            (c, _) => c,
        };
        let gates = self
            .chans
            .iter()
            .zip(gates)
            .zip(&params.chan)
            .map(|((ch, x), p)| {
                if ch.ng == 0 {
                    return x;
                }
                let vi = at(&ch.idx, vn.clone());
                let ci = match (&cai, ch.ca) {
                    (Some(c), Calcium::Reads) => Some(at(&ch.idx, c.clone())),
                    _ => None,
                };
                scope(|| {
                    let p = exprs(p);
                    let mut inf = vec![Tx::constant(0.0); ch.ng];
                    let mut rate = vec![Tx::constant(0.0); ch.ng];
                    ch.kind
                        .gates_rate(Tx::new(vi), ci.map(Tx::new), &p, &mut inf, &mut rate);
                    x.into_iter()
                        .enumerate()
                        .map(|(g, xg)| {
                            let e = Real::exp(rate[g] * Tx::constant(-dt * ch.phi));
                            let xn = inf[g] + (Tx::new(xg) - inf[g]) * e;
                            xn.tensor([nb, ch.m], dev)
                        })
                        .collect()
                })
            })
            .collect();
        TState { v: vn, gates, cai }
    }

    /// The probes' values in state `st`, `[batch, probes]`.
    pub(crate) fn sample(&self, st: &TState<B>) -> T2<B> {
        let cols: Vec<T2<B>> = self
            .protocol
            .probes
            .iter()
            .map(|p| match *p {
                Probe::V { node } => st.v.clone().narrow(1, node, 1),
                Probe::Gate {
                    channel,
                    node,
                    gate,
                } => {
                    let j = self.cell.channels[channel]
                        .nodes
                        .iter()
                        .position(|&x| x == node)
                        .unwrap_or(0);
                    st.gates[channel][gate].clone().narrow(1, j, 1)
                }
                // The clamped voltage; the host makes it the current (`vclamp_currents`).
                Probe::VClampCurrent { clamp } => {
                    st.v.clone().narrow(1, self.protocol.vclamps[clamp].node, 1)
                }
            })
            .collect();
        Tensor::cat(cols, 1)
    }

    /// The first non-finite value of `st` after step `step`, as an error naming the compartment
    /// and variable.
    pub(crate) fn check(&self, st: &TState<B>, step: usize) -> Result<()> {
        let diverged = |var: String, node: usize, batch: usize, value: f64| {
            Err(CellError::Diverged {
                step,
                time: step as f64 * self.protocol.dt,
                var,
                node,
                location: self.cell.location(node),
                batch,
                value,
            }
            .into())
        };
        if let Some((b, node, x)) = first_non_finite(&st.v) {
            return diverged("v".into(), node, b, x);
        }
        if let Some((b, node, x)) = st.cai.as_ref().and_then(first_non_finite) {
            return diverged("cai".into(), node, b, x);
        }
        for (c, gates) in st.gates.iter().enumerate() {
            for (g, t) in gates.iter().enumerate() {
                if let Some((b, j, x)) = first_non_finite(t) {
                    let pl = &self.cell.channels[c];
                    let spec = pl.kind.spec();
                    let var = format!("{}.{}", spec.name, spec.gates[g].name);
                    return diverged(var, pl.nodes[j], b, x);
                }
            }
        }
        Ok(())
    }

    /// `[steps + 1]` samples `[batch, probes]` as a [`Recording`].
    pub(crate) fn recording(&self, samples: Vec<T2<B>>) -> Recording {
        let np = samples
            .first()
            .map_or(self.protocol.probes.len(), |s| s.dims()[1]);
        let mut data = Vec::with_capacity(samples.len() * self.nb * np);
        self.to_host(samples, &mut data);
        Recording {
            data,
            n_probes: np,
            batch: self.nb,
            dt: self.protocol.dt,
        }
    }

    /// Appends samples `[batch, columns]` to `data` on the host, `[sample][column][batch]`.
    pub(crate) fn to_host(&self, samples: Vec<T2<B>>, data: &mut Vec<f64>) {
        let Some(np) = samples.first().map(|s| s.dims()[1]) else {
            return;
        };
        let nb = self.nb;
        for block in samples.chunks(BLOCK) {
            let h = host(Tensor::cat(block.to_vec(), 0));
            for s in h.chunks(nb * np) {
                for p in 0..np {
                    data.extend((0..nb).map(|b| s[b * np + p]));
                }
            }
        }
    }
}

/// Steps a forward run keeps on the device before it moves their samples to the host (so that
/// the device's memory does not grow with the run's length).
pub(crate) const BLOCK: usize = 1024;

/// Runs `steps` steps in blocks of [`BLOCK`], moving each block's samples to the host:
/// `first` (the samples before the first step) and then one per step, `[sample][column][batch]`
/// in `data`. `run(from, len, state, samples)` runs one block.
pub(crate) fn run_in_blocks<S, B: Backend>(
    tc: &TensorCell<'_, B>,
    steps: usize,
    mut st: S,
    first: Vec<T2<B>>,
    data: &mut Vec<f64>,
    mut run: impl FnMut(usize, usize, S, &mut Vec<T2<B>>) -> Result<S>,
) -> Result<S> {
    let mut samples = first;
    let mut k = 0;
    while k < steps {
        let len = BLOCK.min(steps - k);
        st = run(k, len, st, &mut samples)?;
        tc.to_host(std::mem::take(&mut samples), data);
        k += len;
    }
    tc.to_host(samples, data);
    Ok(st)
}

/// Per channel placement of `cell`, its parameters' items taken in order from `it` (one item
/// per parameter): the layout of the flat parameter list and of its gradients.
pub(crate) fn per_placement<T>(cell: &Cell, it: &mut impl Iterator<Item = T>) -> Vec<Vec<T>> {
    cell.channels
        .iter()
        .map(|pl| {
            let np = pl.kind.spec().params.len();
            (0..np).map(|_| it.next().expect("a parameter")).collect()
        })
        .collect()
}

/// Per placement, `[param]` columns of `batch` values to [`super::Placement::params`]'s
/// `[batch][param]` rows.
pub(crate) fn to_rows(cols: Vec<Vec<Vec<f64>>>, batch: usize) -> Vec<Vec<f64>> {
    cols.into_iter()
        .map(|c| {
            (0..batch)
                .flat_map(|b| c.iter().map(move |x| x[b]))
                .collect()
        })
        .collect()
}

/// The first non-finite value of a `[rows, cols]` tensor: `(row, col, value)`.
pub(crate) fn first_non_finite<B: Backend>(t: &T2<B>) -> Option<(usize, usize, f64)> {
    let cols = t.dims()[1];
    let v = host(t.clone());
    v.iter()
        .position(|x| !x.is_finite())
        .map(|i| (i / cols, i % cols, v[i]))
}

/// A tensor's values on the host in `f64`, row-major.
pub(crate) fn host<B: Backend>(t: T2<B>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .unwrap_or_default()
}

/// Turns the samples of voltage-clamp current probes in `data` (`[sample][probe][batch]`, with
/// `row` probes per sample: the protocol's first, then any others), the clamped voltage as the
/// engine records it, into the clamp's current `(vc − v)/rs` (nA), as
/// [`super::VClamp::current_at_sample`].
pub(crate) fn vclamp_currents(protocol: &Protocol, data: &mut [f64], nb: usize, row: usize) {
    each_clamp_sample(protocol, data, nb, row, |vc, s, b, x| {
        *x = vc.current_at_sample(s, protocol.dt, b, *x)
    });
}

/// The seeds of [`vclamp_currents`]' inputs from those of its outputs, in place:
/// `∂L/∂v = −(1/rs) ∂L/∂i` while the clamp is on, else 0.
pub(crate) fn vclamp_current_seeds(protocol: &Protocol, grad: &mut [f64], nb: usize, row: usize) {
    each_clamp_sample(protocol, grad, nb, row, |vc, s, b, x| {
        *x = match vc.command_at_sample(s, protocol.dt, b) {
            Some(_) => -*x / vc.rs,
            None => 0.0,
        }
    });
}

/// Calls `f(clamp, sample, batch element, value)` for every value of a voltage-clamp current
/// probe in `data` (`[sample][probe][batch]`, `np` probes per sample, the protocol's first).
fn each_clamp_sample(
    protocol: &Protocol,
    data: &mut [f64],
    nb: usize,
    np: usize,
    mut f: impl FnMut(&super::VClamp, usize, usize, &mut f64),
) {
    if np == 0 {
        return;
    }
    for (s, row) in data.chunks_exact_mut(np * nb).enumerate() {
        for (p, probe) in protocol.probes.iter().enumerate() {
            if let Probe::VClampCurrent { clamp } = *probe {
                let vc = &protocol.vclamps[clamp];
                for (b, x) in row[p * nb..(p + 1) * nb].iter_mut().enumerate() {
                    f(vc, s, b, x);
                }
            }
        }
    }
}

/// Runs `protocol` on `cell` on backend `B` and returns the recordings (as
/// [`super::simulate`], on tensors).
///
/// # Errors
/// As [`super::simulate`].
pub fn simulate<B: Backend>(
    cell: &Cell,
    protocol: &Protocol,
    device: &B::Device,
) -> Result<Recording> {
    let tc = TensorCell::<B>::new(cell, protocol, device)?;
    let plan = TreePlan::<B>::new(&cell.parent, &cell.g_axial, device);
    let params = tc.params();
    let st = tc.init(&params);
    let (nb, np) = (cell.batch, protocol.probes.len());
    let first = if np > 0 {
        vec![tc.sample(&st)]
    } else {
        Vec::new()
    };
    let solve = |d, b, _: &T2<B>| plan.solve(d, b);
    let mut data = super::solve::recording_buffer((protocol.steps + 1) * np * nb);
    run_in_blocks(
        &tc,
        protocol.steps,
        st,
        first,
        &mut data,
        |k, len, st, out| tc.run(k, len, st, &params, &solve, out, true),
    )?;
    vclamp_currents(protocol, &mut data, nb, np);
    Ok(Recording {
        data,
        n_probes: np,
        batch: nb,
        dt: protocol.dt,
    })
}

/// The loss of a simulation on backend `B` and its gradient with respect to every channel and
/// pool parameter and the passive properties (as [`super::value_and_grad`], on tensors), with
/// chunks of `chunk` steps (see the module documentation).
///
/// # Errors
/// A chunk of 0 steps, nothing recorded; as [`simulate`]; the loss's own errors.
pub fn value_and_grad<B: Backend>(
    cell: &Cell,
    protocol: &Protocol,
    chunk: usize,
    loss: impl FnOnce(&Recording) -> Result<TraceLoss>,
    device: &B::Device,
) -> Result<CellGrad> {
    if protocol.probes.is_empty() {
        return Err(CellError::setting(
            "record",
            "nothing is recorded: the loss is a function of the recording",
        )
        .into());
    }
    let tc = TensorCell::<B>::new(cell, protocol, device)?;
    let ta = TensorCell::<Autodiff<B>>::new(cell, protocol, device)?;
    let plan = TreePlan::<B>::new(&cell.parent, &cell.g_axial, device);
    let params = tc.flat_params(cell.batch);
    let out = chunked_grad(&tc, &ta, params, plan, protocol.steps, chunk, |samples| {
        let mut recording = tc.recording(samples);
        vclamp_currents(
            protocol,
            &mut recording.data,
            cell.batch,
            protocol.probes.len(),
        );
        let TraceLoss { loss, mut grad } = loss(&recording)?;
        vclamp_current_seeds(protocol, &mut grad, cell.batch, protocol.probes.len());
        Ok((grad, (recording, loss)))
    })?;
    let (recording, loss) = out.seeded;
    let g = cell_grads(cell, protocol, &mut out.grads.into_iter());
    Ok(CellGrad {
        recording,
        loss,
        grad: g.channels,
        pools: g.pools,
        passive: g.passive,
        peak_states: out.peak_states,
        state_size: out.state_size,
    })
}

/// A cell's share of a gradient, in the layouts of [`CellGrad`].
pub(crate) struct CellGrads {
    pub(crate) channels: Vec<Vec<f64>>,
    pub(crate) pools: Vec<Vec<f64>>,
    pub(crate) passive: Vec<Vec<f64>>,
}

/// The gradients of [`TensorCell::flat_params`]' list (taken from `it`, each on the host
/// row-major, the passive ones `[batch, nodes]`) in the layouts of [`CellGrad`]: the passive
/// properties' by the fused adjoint's conversion from `∂L/∂(C/h)`, `∂L/∂g_axial` and
/// `∂L/∂area` per node.
pub(crate) fn cell_grads(
    cell: &Cell,
    protocol: &Protocol,
    it: &mut impl Iterator<Item = Vec<f64>>,
) -> CellGrads {
    let nb = cell.batch;
    let channels = to_rows(per_placement(cell, it), nb);
    let pools = cell
        .pools
        .iter()
        .map(|_| {
            let cols = (0..ca_dynamics::PARAMS.len())
                .map(|_| it.next().expect("a pool parameter"))
                .collect();
            to_rows(vec![cols], nb).remove(0)
        })
        .collect();
    let n = cell.n_nodes();
    // `[batch][node]` to the adjoint's `[node][batch]`.
    let mut per_node = || {
        let g = it.next().expect("a passive gradient");
        (0..n * nb)
            .map(|i| g[(i % nb) * n + i / nb])
            .collect::<Vec<f64>>()
    };
    let (g_cdt, g_axial, g_area) = (per_node(), per_node(), per_node());
    CellGrads {
        channels,
        pools,
        passive: passive_grad(cell, solve_step(protocol), &g_cdt, &g_axial, &g_area),
    }
}

/// A tensor engine the chunked gradient ([`chunked_grad`]) drives: its state, the parameters
/// the gradient is for (given as one flat list of tensors) and its steps.
pub(crate) trait Replay<B: Backend> {
    /// The carried state.
    type State;
    /// The parameters as the steps use them.
    type Params;
    /// The parameters from the flat list.
    fn params_of(&self, flat: Vec<T2<B>>) -> Self::Params;
    /// The state at `t = 0` (a function of the parameters).
    fn init(&self, p: &Self::Params) -> Self::State;
    /// The recorded values of a state, `[batch, columns]`.
    fn sample(&self, st: &Self::State, p: &Self::Params) -> T2<B>;
    /// Steps `from..from + len`, pushing the samples after each; checks finiteness if `check`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        from: usize,
        len: usize,
        st: Self::State,
        p: &Self::Params,
        solve: &Solve<'_, B>,
        samples: &mut Vec<T2<B>>,
        check: bool,
    ) -> Result<Self::State>;
    /// The state's tensors, in a fixed order.
    fn flatten(&self, st: &Self::State) -> Vec<T2<B>>;
    /// The state from [`Replay::flatten`]'s tensors.
    fn unflatten(&self, t: Vec<T2<B>>) -> Self::State;
}

impl<B: Backend> Replay<B> for TensorCell<'_, B> {
    type State = TState<B>;
    type Params = CParams<B>;

    fn params_of(&self, flat: Vec<T2<B>>) -> Self::Params {
        self.params_from(&mut flat.into_iter())
    }
    fn init(&self, p: &Self::Params) -> TState<B> {
        TensorCell::init(self, p)
    }
    fn sample(&self, st: &TState<B>, _: &Self::Params) -> T2<B> {
        TensorCell::sample(self, st)
    }
    /// Pushes no samples when nothing is recorded.
    fn run(
        &self,
        from: usize,
        len: usize,
        mut st: TState<B>,
        params: &Self::Params,
        solve: &Solve<'_, B>,
        samples: &mut Vec<T2<B>>,
        check: bool,
    ) -> Result<TState<B>> {
        let mut stim = Stim::default();
        for k in from..from + len {
            st = self.step(k, st, params, &mut stim, solve);
            if check && ((k + 1) % CHECK_EVERY == 0 || k + 1 == self.protocol.steps) {
                self.check(&st, k + 1)?;
            }
            if !self.protocol.probes.is_empty() {
                samples.push(self.sample(&st));
            }
        }
        Ok(st)
    }
    fn flatten(&self, st: &TState<B>) -> Vec<T2<B>> {
        st.to_vec()
    }
    fn unflatten(&self, t: Vec<T2<B>>) -> TState<B> {
        unflatten(self, t)
    }
}

/// What [`chunked_grad`] returns.
pub(crate) struct Chunked<X> {
    /// Per flat parameter, `∂L/∂θ` on the host (row-major).
    pub(crate) grads: Vec<Vec<f64>>,
    /// What the loss returned besides its gradient.
    pub(crate) seeded: X,
    /// Chunk start states plus one chunk's steps.
    pub(crate) peak_states: usize,
    /// The numbers in one state.
    pub(crate) state_size: usize,
}

/// The chunked checkpointed gradient (see the module documentation): `fwd` runs `steps` steps
/// on `B` without a tape keeping a state every `chunk` steps; `seed` turns the samples
/// (`[batch, columns]` each, `steps + 1` of them) into `∂L/∂samples`
/// (`[sample][column][batch]`) and whatever else it returns; then `rev` replays the chunks, last
/// first, under `Autodiff<B>` with the tree solve as one node ([`tree_solve_tracked`]). The
/// gradient is with respect to `params` (flat, as [`Replay::params_of`] takes them), the first
/// chunk starting from [`Replay::init`] of the parameters.
#[allow(clippy::too_many_arguments)]
pub(crate) fn chunked_grad<B, F, R, X>(
    fwd: &F,
    rev: &R,
    params: Vec<T2<B>>,
    plan: TreePlan<B>,
    steps: usize,
    chunk: usize,
    seed: impl FnOnce(Vec<T2<B>>) -> Result<(Vec<f64>, X)>,
) -> Result<Chunked<X>>
where
    B: Backend,
    F: Replay<B>,
    R: Replay<Autodiff<B>>,
{
    type A<B> = Autodiff<B>;
    if chunk == 0 {
        return Err(
            CellError::setting("chunk", "0 steps per checkpointed chunk: give at least 1").into(),
        );
    }
    let plan = Arc::new(plan);
    // 1. Forward without a tape, keeping each chunk's start state.
    let p = fwd.params_of(params.clone());
    let mut st = fwd.init(&p);
    let mut samples = vec![fwd.sample(&st, &p)];
    let [nb, cols] = samples[0].dims();
    let device = samples[0].device();
    let solve = |d, b, _: &T2<B>| plan.solve(d, b);
    let mut starts = Vec::new();
    let mut k = 0;
    while k < steps {
        let len = chunk.min(steps - k);
        starts.push((k, len, fwd.flatten(&st)));
        st = fwd.run(k, len, st, &p, &solve, &mut samples, true)?;
        k += len;
    }
    let state_size = fwd
        .flatten(&st)
        .iter()
        .map(|t| t.dims().iter().product::<usize>())
        .sum();
    let (grad, seeded) = seed(samples)?;

    // 2. Backwards over the chunks.
    let plan_a = Arc::clone(&plan);
    let solve_a = move |d, b, g: &T2<A<B>>| tree_solve_tracked::<B>(&plan_a, d, b, g);
    let d_samples = |from: usize, len: usize| -> Tensor<B, 3> {
        let mut v = Vec::with_capacity(len * nb * cols);
        for s in from..from + len {
            let row = &grad[s * cols * nb..(s + 1) * cols * nb];
            for b in 0..nb {
                v.extend((0..cols).map(|q| row[q * nb + b]));
            }
        }
        Tensor::from_data(
            TensorData::new(v, [len, nb, cols]),
            crate::float_opts::<B>(&device),
        )
    };
    let mut acc: Vec<T2<B>> = params.iter().map(|t| t.zeros_like()).collect();
    let mut g_state: Option<Vec<T2<B>>> = None;
    let n_chunks = starts.len();
    for (from, len, start) in starts.into_iter().rev() {
        let leaves: Vec<T2<A<B>>> = params
            .iter()
            .map(|t| T2::<A<B>>::from_inner(t.clone()).require_grad())
            .collect();
        let used = rev.params_of(leaves.iter().map(|t| t.clone().mul_scalar(1.0)).collect());
        // The first chunk starts from the parameters' initial state; the others from leaves.
        let (st0, st_leaves) = if from == 0 {
            (rev.init(&used), None)
        } else {
            let l: Vec<T2<A<B>>> = start
                .into_iter()
                .map(|t| T2::<A<B>>::from_inner(t).require_grad())
                .collect();
            (rev.unflatten(l.clone()), Some(l))
        };
        let mut out = Vec::with_capacity(len + 1);
        if from == 0 {
            out.push(rev.sample(&st0, &used));
        }
        let end = rev.run(from, len, st0, &used, &solve_a, &mut out, false)?;
        let first = if from == 0 { 0 } else { from + 1 };
        let m = out.len();
        let o = Tensor::stack::<3>(out, 0);
        let mut s = (o * Tensor::from_inner(d_samples(first, m))).sum();
        if let Some(gs) = &g_state {
            for (t, gt) in rev.flatten(&end).into_iter().zip(gs) {
                s = s + (t * Tensor::from_inner(gt.clone())).sum();
            }
        }
        let gr = s.backward();
        for (a, l) in acc.iter_mut().zip(&leaves) {
            if let Some(g) = l.grad(&gr) {
                *a = a.clone() + g;
            }
        }
        g_state = st_leaves.map(|l| {
            l.iter()
                .map(|t| {
                    t.grad(&gr)
                        .unwrap_or_else(|| t.clone().inner().zeros_like())
                })
                .collect()
        });
    }
    Ok(Chunked {
        grads: acc.into_iter().map(host).collect(),
        seeded,
        peak_states: n_chunks + chunk.min(steps),
        state_size,
    })
}

/// A state from its tensors in [`TState::into_vec`]'s order.
pub(crate) fn unflatten<B: Backend>(tc: &TensorCell<'_, B>, t: Vec<T2<B>>) -> TState<B> {
    let mut it = t.into_iter();
    let v = it.next().expect("the voltage");
    let gates = tc
        .chans
        .iter()
        .map(|ch| (0..ch.ng).map(|_| it.next().expect("a gate")).collect())
        .collect();
    let cai = tc.calcium.then(|| it.next().expect("the calcium"));
    TState { v, gates, cai }
}
