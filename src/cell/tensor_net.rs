//! Networks of cells on Burn tensors: [`super::network`]'s step (synapses with per-synapse
//! delays, current drives, the cells as one system) on any backend, with gradients under
//! `Autodiff<B>` by chunked checkpointing ([`super::tensor`]'s scheme) with respect to every
//! channel parameter, synapse parameter and drive weight.
//!
//! The synapses of one kind are one group: their states, parameters and presynaptic voltages
//! are `[batch, synapses]` tensors, and their equations are the synapse's own generic
//! `kinetics`, `conductance`, `reversal` and `current` on [`Tx`] expressions. The ring buffer
//! of delayed presynaptic voltages is one `[batch, depth · presynaptic compartments]` tensor;
//! each step a group reads its inputs from `[v | buffer]` by one gather whose indices depend only
//! on `k mod depth` (prepared once for every slot), and the buffer's slot `k mod depth` takes
//! `V_pre(t_k)` by one `slice_assign`. The conductances and currents are scatter-added into the
//! postsynaptic compartments' diagonal and right-hand side, the drives' `w · signal_k` into
//! theirs; then the cell step ([`TensorCell::step_with`]). The order of operations is the
//! fused network's, so a batch element's trajectory is that of [`super::network::simulate`] to
//! rounding.

use burn::backend::Autodiff;
use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::tensor::IndexingUpdateOp;
use neurodiff_models::real::{scope, Tx};
use neurodiff_models::synapse::SynapseKind;
use neurodiff_models::Real;

use super::adjoint::TraceLoss;
use super::network::{
    net_protocol, probe_order, recording_in_probe_order, NetGrad, NetProbe, NetStepper, Network,
};
use super::tensor::{
    cell_grads, chunked_grad, first_non_finite, ints, run_in_blocks, unflatten,
    vclamp_current_seeds, vclamp_currents, CParams, CellGrads, Replay, Solve, Stim, TState,
    TensorCell, TreePlan,
};
use super::{CellError, Protocol, Recording};
use crate::Result;

type T2<B> = Tensor<B, 2>;

/// µS or nA to the solver's mS or µA.
const MILLI: f64 = 1e-3;

/// The synapses of one kind.
struct Group<B: Backend> {
    kind: SynapseKind,
    ns: usize,
    np: usize,
    /// The synapses (indices into [`Network::synapses`]).
    members: Vec<usize>,
    /// Per ring-buffer position `k mod depth` (one when there is no buffer): where each member
    /// reads its presynaptic voltage in `[v | buffer]`.
    src: Vec<Tensor<B, 1, Int>>,
    /// The postsynaptic compartments.
    post: Tensor<B, 1, Int>,
}

/// The state beyond the cells': per group its states `[batch, members]`, and the buffer.
struct NState<B: Backend> {
    cell: TState<B>,
    syn: Vec<Vec<T2<B>>>,
    hist: Option<T2<B>>,
}

/// What the gradient is with respect to: the cells' channel and pool parameters and passive
/// properties ([`CParams`]), per group its synapses' parameters `[param]` `[batch, members]`,
/// the drive weights `[batch, drives]`.
struct NParams<B: Backend> {
    cell: CParams<B>,
    syn: Vec<Vec<T2<B>>>,
    drive: Option<T2<B>>,
}

/// The network's step on backend `B`.
struct TensorNet<'a, B: Backend> {
    tc: TensorCell<'a, B>,
    net: &'a Network,
    groups: Vec<Group<B>>,
    depth: usize,
    npre: usize,
    pre_idx: Option<Tensor<B, 1, Int>>,
    drive_idx: Option<Tensor<B, 1, Int>>,
    /// The recorded synapses: (group, member position).
    syn_probes: Vec<(usize, usize)>,
}

impl<'a, B: Backend> TensorNet<'a, B> {
    fn new(
        net: &'a Network,
        protocol: &'a Protocol,
        syn_probes: &[usize],
        device: &B::Device,
    ) -> Result<Self> {
        let fused = NetStepper::<f64>::new(net, protocol, syn_probes.to_vec())?;
        let tc = TensorCell::<B>::new(&net.merged, protocol, device)?;
        let (n, depth, npre) = (tc.n, fused.depth, fused.pre_nodes.len());
        let mut kinds: Vec<SynapseKind> = Vec::new();
        for s in &fused.syn {
            if !kinds.contains(&s.kind) {
                kinds.push(s.kind);
            }
        }
        let groups: Vec<Group<B>> = kinds
            .iter()
            .map(|&kind| {
                let members: Vec<usize> = (0..fused.syn.len())
                    .filter(|&j| fused.syn[j].kind == kind)
                    .collect();
                let src = (0..depth.max(1))
                    .map(|w| {
                        let at = members.iter().map(|&j| {
                            let s = &fused.syn[j];
                            if s.delay == 0 {
                                s.pre as i64
                            } else {
                                (n + ((w + depth - s.delay) % depth) * npre + s.slot) as i64
                            }
                        });
                        ints(at.collect(), device)
                    })
                    .collect();
                let post = ints(
                    members.iter().map(|&j| fused.syn[j].post as i64).collect(),
                    device,
                );
                Group {
                    kind,
                    ns: fused.syn[members[0]].ns,
                    np: fused.syn[members[0]].np,
                    members,
                    src,
                    post,
                }
            })
            .collect();
        let probes = syn_probes
            .iter()
            .map(|&j| {
                let g = groups
                    .iter()
                    .position(|g| g.members.contains(&j))
                    .expect("grouped");
                (
                    g,
                    groups[g]
                        .members
                        .iter()
                        .position(|&x| x == j)
                        .expect("member"),
                )
            })
            .collect();
        let pre_idx = (npre > 0 && depth > 0)
            .then(|| ints(fused.pre_nodes.iter().map(|&i| i as i64).collect(), device));
        let drive_idx = (!fused.drive_node.is_empty())
            .then(|| ints(fused.drive_node.iter().map(|&i| i as i64).collect(), device));
        Ok(TensorNet {
            tc,
            net,
            groups,
            depth,
            npre,
            pre_idx,
            drive_idx,
            syn_probes: probes,
        })
    }

    fn col(&self, v: Vec<f64>, cols: usize) -> T2<B> {
        Tensor::from_data(
            TensorData::new(v, [self.tc.nb, cols]),
            crate::float_opts::<B>(&self.tc.device),
        )
    }

    /// The flat list [`Replay::params_of`] reads: the cells' ([`TensorCell::flat_params`] with
    /// `rows`), then per group its synapses' parameters, then the drive weights.
    fn flat_params(&self, rows: usize) -> Vec<T2<B>> {
        let nb = self.tc.nb;
        let mut flat = self.tc.flat_params(rows);
        let syn = self.groups.iter().flat_map(|g| {
            let m = g.members.len();
            (0..g.np)
                .map(|q| {
                    let mut v = vec![0.0; nb * m];
                    for (c, &j) in g.members.iter().enumerate() {
                        let p = &self.net.synapses[j].params;
                        (0..nb).for_each(|b| v[b * m + c] = p[b * g.np + q]);
                    }
                    self.col(v, m)
                })
                .collect::<Vec<_>>()
        });
        flat.extend(syn);
        let nd = self.net.drives.len();
        let drive = (nd > 0).then(|| {
            let mut v = vec![0.0; nb * nd];
            for (i, dr) in self.net.drives.iter().enumerate() {
                (0..nb).for_each(|b| v[b * nd + i] = dr.weight[b]);
            }
            self.col(v, nd)
        });
        flat.extend(drive);
        flat
    }

    /// Step `k`: the synapses read and advance, the buffer takes `V_pre(t_k)`, then the cell
    /// step with the synapses' and drives' terms.
    fn step(
        &self,
        k: usize,
        st: NState<B>,
        p: &NParams<B>,
        stim: &mut Stim<B>,
        solve: &Solve<'_, B>,
    ) -> NState<B> {
        let (nb, dev) = (self.tc.nb, &self.tc.device);
        let dt = self.tc.protocol().dt;
        let NState { cell, syn, hist } = st;
        let w = if self.depth > 0 { k % self.depth } else { 0 };
        let source = match &hist {
            Some(h) => Tensor::cat(vec![cell.v.clone(), h.clone()], 1),
            None => cell.v.clone(),
        };
        // Per group: the new states and the terms `(G, G E + I)` at the postsynaptic nodes.
        let mut terms = Vec::with_capacity(self.groups.len());
        let mut syn_new = Vec::with_capacity(self.groups.len());
        for ((g, x), ps) in self.groups.iter().zip(syn).zip(&p.syn) {
            let m = g.members.len();
            let u = source.clone().select(1, g.src[w].clone());
            let (xn, gt, it) = scope(|| {
                let ps: Vec<Tx<B>> = ps.iter().map(|t| Tx::new(t.clone())).collect();
                let u = Tx::new(u);
                let mut inf = vec![Tx::constant(0.0); g.ns];
                let mut rate = vec![Tx::constant(0.0); g.ns];
                let xs: Vec<Tx<B>> = if g.ns > 0 {
                    g.kind.kinetics(u, &ps, &mut inf, &mut rate);
                    x.into_iter()
                        .enumerate()
                        .map(|(i, xi)| {
                            let e = Real::exp(rate[i] * Tx::constant(-dt));
                            inf[i] + (Tx::new(xi) - inf[i]) * e
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let gs = g.kind.conductance(&xs, &ps) * Tx::constant(MILLI);
                let i = g.kind.current(u, &ps) * Tx::constant(MILLI);
                let rhs = gs * g.kind.reversal(&ps) + i;
                let shape = [nb, m];
                (
                    xs.into_iter()
                        .map(|x| x.tensor(shape, dev))
                        .collect::<Vec<_>>(),
                    gs.tensor(shape, dev),
                    rhs.tensor(shape, dev),
                )
            });
            syn_new.push(xn);
            terms.push((g.post.clone(), gt, it));
        }
        let hist = match (hist, &self.pre_idx) {
            (Some(h), Some(pre)) => {
                let vpre = cell.v.clone().select(1, pre.clone());
                let at = w * self.npre;
                Some(h.slice_assign([0..nb, at..at + self.npre], vpre))
            }
            (h, _) => h,
        };
        let drive = self.drive_idx.as_ref().map(|idx| {
            let nd = self.net.drives.len();
            let mut s = vec![0.0; nb * nd];
            for (i, dr) in self.net.drives.iter().enumerate() {
                (0..nb).for_each(|b| s[b * nd + i] = dr.signal_at(b, k) * MILLI);
            }
            let wt = p.drive.clone().expect("drive weights");
            (idx.clone(), wt * self.col(s, nd))
        });
        let cell = self
            .tc
            .step_with(k, cell, &p.cell, stim, solve, |mut d, mut rhs| {
                for (post, gt, it) in terms {
                    d = d.select_assign(1, post.clone(), gt, IndexingUpdateOp::Add);
                    rhs = rhs.select_assign(1, post, it, IndexingUpdateOp::Add);
                }
                if let Some((idx, i)) = drive {
                    rhs = rhs.select_assign(1, idx, i, IndexingUpdateOp::Add);
                }
                (d, rhs)
            });
        NState {
            cell,
            syn: syn_new,
            hist,
        }
    }

    /// Checks the cells' state and every synapse state.
    fn check(&self, st: &NState<B>, step: usize) -> Result<()> {
        self.tc.check(&st.cell, step)?;
        for (g, xs) in self.groups.iter().zip(&st.syn) {
            for (i, x) in xs.iter().enumerate() {
                if let Some((b, c, value)) = first_non_finite(x) {
                    let j = g.members[c];
                    let spec = g.kind.spec();
                    let post = self.net.node("synapse", self.net.synapses[j].post)?;
                    return Err(CellError::Diverged {
                        step,
                        time: step as f64 * self.tc.protocol().dt,
                        var: format!("synapse {j} {}.{}", spec.name, spec.states[i].name),
                        node: post,
                        location: self.net.merged.location(post),
                        batch: b,
                        value,
                    }
                    .into());
                }
            }
        }
        Ok(())
    }
}

/// Runs the network on backend `B` for `protocol` recording `probes` (as
/// [`super::network::simulate`], on tensors).
///
/// # Errors
/// As [`super::network::simulate`].
pub fn simulate<B: Backend>(
    net: &Network,
    protocol: &Protocol,
    probes: &[NetProbe],
    device: &B::Device,
) -> Result<Recording> {
    let (p, sp) = net_protocol(net, protocol, probes)?;
    let tn = TensorNet::<B>::new(net, &p, &sp, device)?;
    let plan = TreePlan::<B>::new(&net.merged.parent, &net.merged.g_axial, device);
    let params = tn.params_of(tn.flat_params(1));
    let st = tn.init(&params);
    let first = vec![tn.sample(&st, &params)];
    let solve = |d, b, _: &T2<B>| plan.solve(d, b);
    let nb = net.batch();
    let mut data = super::solve::recording_buffer((p.steps + 1) * probes.len() * nb);
    run_in_blocks(&tn.tc, p.steps, st, first, &mut data, |k, len, st, out| {
        tn.run(k, len, st, &params, &solve, out, true)
    })?;
    vclamp_currents(&p, &mut data, nb, probes.len());
    Ok(recording_in_probe_order(data, probes, nb, p.dt))
}

/// The loss of the network on backend `B` and its gradient with respect to every channel and
/// pool parameter, passive property, synapse parameter and drive weight (as [`super::network::value_and_grad`], on
/// tensors), with chunks of `chunk` steps ([`super::tensor`]'s scheme).
///
/// # Errors
/// A chunk of 0 steps; as [`simulate`]; the loss's own errors.
pub fn value_and_grad<B: Backend>(
    net: &Network,
    protocol: &Protocol,
    probes: &[NetProbe],
    chunk: usize,
    loss: impl FnOnce(&Recording) -> Result<TraceLoss>,
    device: &B::Device,
) -> Result<NetGrad> {
    let (p, sp) = net_protocol(net, protocol, probes)?;
    let nb = net.batch();
    let n_probes = probes.len();
    let tn = TensorNet::<B>::new(net, &p, &sp, device)?;
    let ta = TensorNet::<Autodiff<B>>::new(net, &p, &sp, device)?;
    let plan = TreePlan::<B>::new(&net.merged.parent, &net.merged.g_axial, device);
    let params = tn.flat_params(nb);
    let out = chunked_grad(&tn, &ta, params, plan, p.steps, chunk, |samples| {
        // The loss sees the recording in the probes' order; the engine's columns are the cell
        // probes, then the synapses: its gradient goes back to the engine's order.
        let mut raw = tn.tc.recording(samples);
        vclamp_currents(&p, &mut raw.data, nb, n_probes);
        let recording = recording_in_probe_order(raw.data, probes, nb, raw.dt);
        let TraceLoss { loss, grad } = loss(&recording)?;
        let order = probe_order(probes);
        let mut g_raw = vec![0.0; grad.len()];
        for s in 0..grad.len() / (n_probes * nb).max(1) {
            for (to, &from) in order.iter().enumerate() {
                for b in 0..nb {
                    g_raw[(s * n_probes + to) * nb + b] = grad[(s * n_probes + from) * nb + b];
                }
            }
        }
        vclamp_current_seeds(&p, &mut g_raw, nb, n_probes);
        Ok((g_raw, (recording, loss)))
    })?;
    let (recording, loss) = out.seeded;

    // Back to the layouts of the network.
    let mut it = out.grads.into_iter();
    let CellGrads {
        channels,
        pools,
        passive,
    } = cell_grads(&net.merged, &p, &mut it);
    let mut synapses: Vec<Vec<f64>> = net
        .synapses
        .iter()
        .map(|s| vec![0.0; s.params.len()])
        .collect();
    for g in &tn.groups {
        let m = g.members.len();
        for q in 0..g.np {
            let h = it.next().expect("a synapse parameter");
            for (c, &j) in g.members.iter().enumerate() {
                (0..nb).for_each(|b| synapses[j][b * g.np + q] = h[b * m + c]);
            }
        }
    }
    let nd = net.drives.len();
    let drives = match it.next() {
        Some(h) => (0..nd)
            .map(|i| (0..nb).map(|b| h[b * nd + i]).collect())
            .collect(),
        None => Vec::new(),
    };
    Ok(NetGrad {
        recording,
        loss,
        channels,
        pools,
        synapses,
        drives,
        passive,
        peak_states: out.peak_states,
        state_size: out.state_size,
    })
}

impl<B: Backend> Replay<B> for TensorNet<'_, B> {
    type State = NState<B>;
    type Params = NParams<B>;

    fn params_of(&self, flat: Vec<T2<B>>) -> NParams<B> {
        let mut it = flat.into_iter();
        let cell = self.tc.params_from(&mut it);
        let syn = self
            .groups
            .iter()
            .map(|g| {
                (0..g.np)
                    .map(|_| it.next().expect("a synapse parameter"))
                    .collect()
            })
            .collect();
        NParams {
            cell,
            syn,
            drive: it.next(),
        }
    }
    fn init(&self, p: &NParams<B>) -> NState<B> {
        let (nb, dev) = (self.tc.nb, &self.tc.device);
        let v0 = self.tc.protocol().v_init;
        let syn = self
            .groups
            .iter()
            .zip(&p.syn)
            .map(|(g, ps)| {
                if g.ns == 0 {
                    return Vec::new();
                }
                scope(|| {
                    let ps: Vec<Tx<B>> = ps.iter().map(|t| Tx::new(t.clone())).collect();
                    let mut inf = vec![Tx::constant(0.0); g.ns];
                    let mut rate = vec![Tx::constant(0.0); g.ns];
                    g.kind.kinetics(Tx::constant(v0), &ps, &mut inf, &mut rate);
                    let m = g.members.len();
                    inf.into_iter().map(|x| x.tensor([nb, m], dev)).collect()
                })
            })
            .collect();
        let width = self.depth * self.npre;
        NState {
            cell: self.tc.init(&p.cell),
            syn,
            hist: (width > 0).then(|| Tensor::full([nb, width], v0, crate::float_opts::<B>(dev))),
        }
    }

    /// The cell probes, then the recorded synapses' conductances (µS), `[batch, probes]`.
    fn sample(&self, st: &NState<B>, p: &NParams<B>) -> T2<B> {
        let mut cols = vec![self.tc.sample(&st.cell)];
        for &(gi, c) in &self.syn_probes {
            let g = &self.groups[gi];
            let shape = [self.tc.nb, g.members.len()];
            let gs = scope(|| {
                let xs: Vec<Tx<B>> = st.syn[gi].iter().map(|t| Tx::new(t.clone())).collect();
                let ps: Vec<Tx<B>> = p.syn[gi].iter().map(|t| Tx::new(t.clone())).collect();
                g.kind.conductance(&xs, &ps).tensor(shape, &self.tc.device)
            });
            cols.push(gs.narrow(1, c, 1));
        }
        Tensor::cat(cols, 1)
    }

    fn run(
        &self,
        from: usize,
        len: usize,
        mut st: NState<B>,
        p: &NParams<B>,
        solve: &Solve<'_, B>,
        samples: &mut Vec<T2<B>>,
        check: bool,
    ) -> Result<NState<B>> {
        let steps = self.tc.protocol().steps;
        let mut stim = Stim::default();
        for k in from..from + len {
            st = self.step(k, st, p, &mut stim, solve);
            if check && ((k + 1) % super::tensor::CHECK_EVERY == 0 || k + 1 == steps) {
                self.check(&st, k + 1)?;
            }
            samples.push(self.sample(&st, p));
        }
        Ok(st)
    }

    fn flatten(&self, st: &NState<B>) -> Vec<T2<B>> {
        let mut v = st.cell.to_vec();
        v.extend(st.syn.iter().flatten().cloned());
        v.extend(st.hist.clone());
        v
    }
    fn unflatten(&self, t: Vec<T2<B>>) -> NState<B> {
        let n_cell = self.tc.state_len();
        let mut rest = t;
        let tail = rest.split_off(n_cell);
        let cell = unflatten(&self.tc, rest);
        let mut it = tail.into_iter();
        let syn = self
            .groups
            .iter()
            .map(|g| {
                (0..g.ns)
                    .map(|_| it.next().expect("a synapse state"))
                    .collect()
            })
            .collect();
        NState {
            cell,
            syn,
            hist: it.next(),
        }
    }
}
