//! The spiking circuit on Burn tensors: the same neuron equations (`neurodiff_models::neuron`,
//! written once over `Real`, here on [`Tx`] tensor expressions), the same step as the fused
//! engine ([`super::engine`]), on any backend (`NdArray`, `Flex`, `Wgpu`, `Cuda`) and under
//! `Autodiff<B>` (surrogate spike gradients through [`Real::spike`]), with a batch dimension:
//! every state is a `[batch, neurons]` tensor.
//!
//! The surrogate derivative is the fused engine's (`surrogate = true`): a spike that happened
//! carries it into its synaptic events and the spike counts, a neuron that did not spike sends
//! nothing (value 0, derivative 0), the reset takes the spike's value only. The carried state
//! can be taken out and put back ([`TensorEngine::state`], [`TensorEngine::set_state`]), on any
//! backend, and a few parameters made functions of tensors the gradient reaches
//! ([`TensorEngine::seed`]): what [`super::tensor_grad`]'s checkpointed gradient runs on.
//!
//! Batch element `b` is the circuit `circuits[b]`: the circuits must share their structure and
//! connectivity (populations, sizes, projections' `p_connect`, seed) and may differ in every
//! value (neuron parameters, currents, OU, weights, DBS amplitude). Initial states, drawn
//! heterogeneity and weights are taken from the fused engine built for each circuit, and the
//! OU noise is the fused engine's, a function of `(seed, step, neuron)`: with one seed, every
//! batch element sees the same noise (common random numbers, so that a sweep's differences
//! come from its parameters). Each batch element is the fused engine's run of its circuit,
//! operation for operation.
//!
//! Synaptic propagation is sparse but not event-driven: each step gathers the presynaptic
//! spikes of every synapse (`select`), weighs them and sums them into the postsynaptic
//! neurons (`select_assign` with addition), `O(synapses)` per step. That is what a GPU does
//! well and a CPU does not: on the CPU the fused engine (`O(spikes × fan-out)`) is the path,
//! and this one its cross-check. Connectivity on the device costs 16 bytes per synapse (two
//! `i64` indices on `NdArray`) plus the weight.

use burn::prelude::{Backend, Int, Tensor, TensorData};
use burn::tensor::IndexingUpdateOp;
use neurodiff_models::neuron::{self, Neuron, NeuronVisitor, V};
use neurodiff_models::real::{scope, Tx};
use neurodiff_models::Real;

use super::circuit::{Circuit, Dbs, InputData, Ou};
use super::connect::{normal, stream};
use super::engine::{Engine, Seed};
use crate::error::{Error, Result};

type T2<B> = Tensor<B, 2>;

/// Steps between the checks that every membrane potential is finite (a check reads the
/// voltages back to the host).
pub const CHECK_EVERY: u64 = 100;

/// A parameter: the same value everywhere (folded into scalar operations) or a tensor.
#[derive(Clone)]
enum Param<B: Backend> {
    Const(f64),
    T(T2<B>),
}

impl<B: Backend> Param<B> {
    fn tx(&self) -> Tx<B> {
        match self {
            Param::Const(c) => Tx::constant(*c),
            Param::T(t) => Tx::new(t.clone()),
        }
    }
}

/// `[batch][n]` host values as a parameter: a constant when they are all equal.
fn param<B: Backend>(v: &[f64], batch: usize, n: usize, device: &B::Device) -> Param<B> {
    if v.iter().all(|&x| x == v[0]) {
        Param::Const(v[0])
    } else {
        Param::T(tensor(v, batch, n, device))
    }
}

fn tensor<B: Backend>(v: &[f64], rows: usize, cols: usize, device: &B::Device) -> T2<B> {
    Tensor::from_data(
        TensorData::new(v.to_vec(), [rows, cols]),
        crate::float_opts::<B>(device),
    )
}

/// `(e^{a dt} − 1)/a` as the fused engine's `phi` computes it (a series for `|a dt| < 0.01`).
fn phi<B: Backend>(a: Tx<B>, dt: f64) -> Tx<B> {
    let c = Tx::<B>::constant;
    let z = a * c(dt);
    let small = z.abs().lt(c(0.01));
    let series = c(dt)
        * (c(1.0) + z * (c(0.5) + z * (c(1.0 / 6.0) + z * (c(1.0 / 24.0) + z * c(1.0 / 120.0)))));
    let a_safe = Tx::select(small, c(1.0), a);
    let exact = (Real::exp(z) - c(1.0)) / a_safe;
    Tx::select(small, series, exact)
}

/// A population's step on tensors, behind one virtual call.
trait TensorDynamics<B: Backend>: Send + Sync {
    #[allow(clippy::too_many_arguments)]
    fn advance(
        &self,
        x: &mut [T2<B>],
        p: &[Param<B>],
        i_ext: T2<B>,
        g: &T2<B>,
        inv_c: &Param<B>,
        dt: f64,
        surrogate: bool,
    ) -> T2<B>;
}

struct Dyn<N>(N);

impl<N: Neuron, B: Backend> TensorDynamics<B> for Dyn<N> {
    fn advance(
        &self,
        x: &mut [T2<B>],
        p: &[Param<B>],
        i_ext: T2<B>,
        g: &T2<B>,
        inv_c: &Param<B>,
        dt: f64,
        surrogate: bool,
    ) -> T2<B> {
        let n = &self.0;
        let nv = x.len();
        let shape = x[V].dims();
        let device = x[V].device();
        scope(|| {
            let xs: Vec<Tx<B>> = x.iter().map(|t| Tx::new(t.clone())).collect();
            let ps: Vec<Tx<B>> = p.iter().map(Param::tx).collect();
            let gt = Tx::new(g.clone());
            let mut f = vec![Tx::constant(0.0); nv];
            let mut lin = vec![Tx::constant(0.0); nv];
            n.drift_linear(&xs, Tx::new(i_ext), &ps, &mut f, &mut lin);
            lin[V] = lin[V] - gt * inv_c.tx();
            let mut xn: Vec<Tx<B>> = (0..nv).map(|k| xs[k] + f[k] * phi(lin[k], dt)).collect();
            let spike = n.spike(xs[V], xn[V], &ps).tensor(shape, &device);
            // As in the fused engine, only the spikes that happened carry the surrogate: a
            // neuron that did not spike sends nothing (its value 0 times the surrogate).
            let spike = if surrogate {
                spike.clone() * spike.detach()
            } else {
                spike.detach()
            };
            if N::RESETS {
                // The reset takes the spike's value only, as in the fused engine.
                n.reset(&mut xn, Tx::new(spike.clone().detach()), &ps);
            }
            for (k, t) in x.iter_mut().enumerate() {
                *t = xn[k].tensor(shape, &device);
            }
            spike
        })
    }
}

/// A visitor building the tensor dynamics for backend `B`.
struct MakeFor<B>(std::marker::PhantomData<B>);

impl<B: Backend> NeuronVisitor for MakeFor<B> {
    type Output = Box<dyn TensorDynamics<B>>;
    fn visit<N: Neuron>(self, n: N) -> Self::Output {
        Box::new(Dyn(n))
    }
}

struct Pop<B: Backend> {
    name: String,
    n: usize,
    offset: usize,
    dynamics: Box<dyn TensorDynamics<B>>,
    x: Vec<T2<B>>,
    p: Vec<Param<B>>,
    inv_c: Param<B>,
    current: Param<B>,
    ou: Option<Ou>,
    /// Per batch element: `(mu, sigma)` of its OU current.
    ou_b: Vec<(f64, f64)>,
    ou_mu: Param<B>,
    ou_i: T2<B>,
    ou_seed: u64,
    spikes: T2<B>,
    counts: T2<B>,
}

struct Proj<B: Backend> {
    pre: usize,
    post: usize,
    pre_idx: Tensor<B, 1, Int>,
    post_idx: Tensor<B, 1, Int>,
    /// `[1 or batch, synapses]`.
    w: T2<B>,
    /// A factor on every weight, `[batch, 1]` (1 in value; see [`TensorEngine::seed`]).
    scale: Option<T2<B>>,
    decay: f64,
    e_rev: f64,
    /// Arrivals per slot, `[batch, n_post]`; slot `s mod (delay + 1)` is read at step `s`.
    ring: Vec<T2<B>>,
    g: T2<B>,
}

/// The state a [`TensorEngine`] carries from one step to the next, in a fixed order (per
/// population its state variables and its OU current, then per projection its conductance and
/// its delay slots; each `[batch, n]`), with the number of steps taken: what a checkpoint
/// keeps ([`TensorEngine::state`], [`TensorEngine::set_state`]).
pub struct TensorState<B: Backend> {
    /// Steps taken (the OU noise and DBS pulses of the next step follow from it).
    pub step: u64,
    /// The tensors, in the order above.
    pub tensors: Vec<T2<B>>,
}

/// The circuit on Burn tensors (see the module documentation).
pub struct TensorEngine<B: Backend> {
    device: B::Device,
    dt: f64,
    step: u64,
    batch: usize,
    surrogate: bool,
    pops: Vec<Pop<B>>,
    projs: Vec<Proj<B>>,
    /// The DBS target and settings, with the amplitude per batch element.
    dbs: Option<(usize, Dbs, Param<B>)>,
    /// Currents from files, shared by the batch.
    inputs: Vec<InputData>,
}

fn pops_named<B: Backend>(pops: &[Pop<B>], name: &str) -> Option<usize> {
    pops.iter().position(|p| p.name == name)
}

fn same_structure(a: &Circuit, b: &Circuit, index: usize) -> Result<()> {
    let err = |what: &str| {
        Err(Error::setting(
            format!("circuits[{index}]"),
            format!(
                "batch elements must share the circuit's structure and connectivity: {what} \
                 differs from circuits[0]"
            ),
        ))
    };
    if a.seed != b.seed || a.dt_ms != b.dt_ms {
        return err("seed or dt_ms");
    }
    if a.populations.len() != b.populations.len()
        || a.populations.iter().zip(&b.populations).any(|(p, q)| {
            p.name != q.name
                || p.neuron != q.neuron
                || p.n != q.n
                || p.ou.is_some() != q.ou.is_some()
                || p.ou.map(|o| o.tau_ms) != q.ou.map(|o| o.tau_ms)
        })
    {
        return err("a population (name, neuron, size, OU time constant)");
    }
    if a.projections.len() != b.projections.len()
        || a.projections.iter().zip(&b.projections).any(|(p, q)| {
            p.pre != q.pre
                || p.post != q.post
                || p.p_connect != q.p_connect
                || p.delay_ms != q.delay_ms
                || p.tau_decay_ms != q.tau_decay_ms
                || p.e_rev_mv != q.e_rev_mv
        })
    {
        return err("a projection (pre, post, p_connect, delay, tau_decay, e_rev)");
    }
    if a.dbs.is_some() != b.dbs.is_some()
        || a.dbs.as_ref().zip(b.dbs.as_ref()).is_some_and(|(d, e)| {
            d.population != e.population
                || d.freq_hz != e.freq_hz
                || d.width_ms != e.width_ms
                || d.on_ms != e.on_ms
                || d.off_ms != e.off_ms
        })
    {
        return err("the DBS timing");
    }
    if a.inputs != b.inputs {
        return err("the input series (`inputs`)");
    }
    Ok(())
}

impl<B: Backend> TensorEngine<B> {
    /// One batch element per circuit (see the module documentation), on `device`.
    /// `surrogate`: spikes carry the surrogate derivative under `Autodiff<B>` (else none).
    ///
    /// # Errors
    /// No circuit; circuits that do not share their structure; whatever [`Engine::new`]
    /// reports for each.
    pub fn new(circuits: &[Circuit], surrogate: bool, device: &B::Device) -> Result<Self> {
        let c0 = circuits
            .first()
            .ok_or_else(|| Error::setting("circuits", "at least one circuit (batch element)"))?;
        for (b, c) in circuits.iter().enumerate().skip(1) {
            same_structure(c0, c, b)?;
        }
        let batch = circuits.len();
        let fused: Vec<Engine> = circuits.iter().map(Engine::new).collect::<Result<_>>()?;
        let e0 = &fused[0];
        let mut pops = Vec::with_capacity(e0.pops.len());
        for (k, p0) in e0.pops.iter().enumerate() {
            let n = p0.n;
            let nv = p0.nv;
            let np = p0.p.len() / n.max(1);
            let model = &c0.populations[k].neuron;
            let dynamics = neuron::visit(model, MakeFor::<B>(std::marker::PhantomData))
                .ok_or_else(|| Error::setting("neuron", format!("unknown neuron `{model}`")))?;
            let gather = |f: &dyn Fn(&super::engine::Pop<f64>, usize) -> f64| -> Vec<f64> {
                let mut v = Vec::with_capacity(batch * n);
                for e in &fused {
                    let p = &e.pops[k];
                    v.extend((0..n).map(|i| f(p, i)));
                }
                v
            };
            let x = (0..nv)
                .map(|j| tensor(&gather(&|p, i| p.var(i, j)), batch, n, device))
                .collect();
            let p = (0..np)
                .map(|j| param(&gather(&|p, i| p.p[i * np + j]), batch, n, device))
                .collect();
            let inv_c = param(&gather(&|p, i| p.inv_c[i]), batch, n, device);
            let current = param(&gather(&|p, i| p.current[i]), batch, n, device);
            let ou_i = tensor(&gather(&|p, i| p.ou_i[i]), batch, n, device);
            let ou_b: Vec<(f64, f64)> = circuits
                .iter()
                .map(|c| c.populations[k].ou.map_or((0.0, 0.0), |o| (o.mu, o.sigma)))
                .collect();
            let mus: Vec<f64> = ou_b.iter().map(|o| o.0).collect();
            let zeros = Tensor::zeros([batch, n], crate::float_opts::<B>(device));
            pops.push(Pop {
                name: p0.name.clone(),
                n,
                offset: p0.offset,
                dynamics,
                x,
                p,
                inv_c,
                current,
                ou: p0.ou,
                ou_mu: param(&mus, batch, 1, device),
                ou_b,
                ou_i,
                ou_seed: p0.ou_seed,
                spikes: zeros.clone(),
                counts: zeros,
            });
        }
        let mut projs = Vec::with_capacity(e0.projs.len());
        for (k, pr0) in e0.projs.iter().enumerate() {
            let syn = &pr0.syn;
            for (b, e) in fused.iter().enumerate().skip(1) {
                let s = &e.projs[k].syn;
                if s.offsets != syn.offsets || s.targets != syn.targets {
                    return Err(Error::setting(
                        format!("circuits[{b}]"),
                        "its connectivity differs from circuits[0] (same seed, sizes and \
                         p_connect give the same)",
                    ));
                }
            }
            let mut pre = Vec::with_capacity(syn.len());
            for i in 0..syn.offsets.len().saturating_sub(1) {
                let (a, z) = (syn.offsets[i] as usize, syn.offsets[i + 1] as usize);
                pre.extend(std::iter::repeat_n(i as i64, z - a));
            }
            let post: Vec<i64> = syn.targets.iter().map(|&j| j as i64).collect();
            let ne = syn.len();
            let same_w = fused.iter().all(|e| e.projs[k].syn.weights == syn.weights);
            let w: Vec<f64> = if same_w {
                syn.weights.iter().map(|&w| w as f64).collect()
            } else {
                fused
                    .iter()
                    .flat_map(|e| e.projs[k].syn.weights.iter().map(|&w| w as f64))
                    .collect()
            };
            let rows = if same_w { 1 } else { batch };
            let n_post = e0.pops[pr0.post].n;
            let zeros = Tensor::<B, 2>::zeros([batch, n_post], crate::float_opts::<B>(device));
            let ints =
                |v: Vec<i64>| Tensor::<B, 1, Int>::from_data(TensorData::new(v, [ne]), device);
            projs.push(Proj {
                pre: pr0.pre,
                post: pr0.post,
                pre_idx: ints(pre),
                post_idx: ints(post),
                w: tensor(&w, rows, ne, device),
                scale: None,
                decay: pr0.decay,
                e_rev: pr0.e_rev,
                ring: vec![zeros.clone(); pr0.delay + 1],
                g: zeros,
            });
        }
        let dbs = match &c0.dbs {
            Some(d) => {
                let amps: Vec<f64> = circuits
                    .iter()
                    .map(|c| c.dbs.as_ref().map_or(0.0, |d| d.amplitude))
                    .collect();
                let k = c0.population_index(&d.population).ok_or_else(|| {
                    Error::setting(
                        "dbs.population",
                        format!("no population `{}`", d.population),
                    )
                })?;
                Some((k, d.clone(), param(&amps, batch, 1, device)))
            }
            None => None,
        };
        Ok(Self {
            device: device.clone(),
            dt: c0.dt_ms,
            step: 0,
            batch,
            surrogate,
            pops,
            projs,
            dbs,
            inputs: e0.inputs.clone(),
        })
    }

    /// Step, ms.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of populations.
    pub fn n_populations(&self) -> usize {
        self.pops.len()
    }

    /// Name, size and global id of the first neuron of population `k`.
    pub fn population(&self, k: usize) -> (&str, usize, usize) {
        let p = &self.pops[k];
        (&p.name, p.n, p.offset)
    }

    /// The spikes of population `k` in the last step, `[batch, n]` (1 in value; the surrogate
    /// derivative under `Autodiff<B>` when asked for).
    pub fn spikes(&self, k: usize) -> T2<B> {
        self.pops[k].spikes.clone()
    }

    /// Spikes of population `k` summed since the start, `[batch, n]` (differentiable like
    /// [`TensorEngine::spikes`]).
    pub fn counts(&self, k: usize) -> T2<B> {
        self.pops[k].counts.clone()
    }

    /// Membrane potentials of population `k`, `[batch, n]`, mV.
    pub fn voltages(&self, k: usize) -> T2<B> {
        self.pops[k].x[V].clone()
    }

    /// Steps taken so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The carried state (see [`TensorState`]): an engine of the same circuits given it by
    /// [`TensorEngine::set_state`], on this backend or another (the tensors moved there),
    /// continues exactly as this one does.
    pub fn state(&self) -> TensorState<B> {
        let mut tensors = Vec::new();
        for p in &self.pops {
            tensors.extend(p.x.iter().cloned());
            tensors.push(p.ou_i.clone());
        }
        for pr in &self.projs {
            tensors.push(pr.g.clone());
            tensors.extend(pr.ring.iter().cloned());
        }
        TensorState {
            step: self.step,
            tensors,
        }
    }

    /// Restores a state taken by [`TensorEngine::state`]; the spike counts
    /// ([`TensorEngine::counts`]) restart at zero.
    ///
    /// # Errors
    /// A state of another shape (from an engine of other circuits).
    pub fn set_state(&mut self, state: TensorState<B>) -> Result<()> {
        let want: Vec<[usize; 2]> = self.state().tensors.iter().map(|t| t.dims()).collect();
        let got: Vec<[usize; 2]> = state.tensors.iter().map(|t| t.dims()).collect();
        if want != got {
            return Err(Error::setting(
                "state",
                format!(
                    "{} tensors, but this engine carries {} (or other shapes): a state of another \
                     circuit's engine",
                    got.len(),
                    want.len()
                ),
            ));
        }
        let mut it = state.tensors.into_iter();
        let mut next = || it.next().expect("shapes checked");
        for p in &mut self.pops {
            for x in &mut p.x {
                *x = next();
            }
            p.ou_i = next();
            p.counts = p.counts.zeros_like();
            p.spikes = p.spikes.zeros_like();
        }
        for pr in &mut self.projs {
            pr.g = next();
            for slot in &mut pr.ring {
                *slot = next();
            }
        }
        self.step = state.step;
        Ok(())
    }

    /// Attaches derivatives with respect to `seeds`: `theta[d]`, `[batch, 1]`, holds each batch
    /// element's value of parameter `seeds[d]` as its circuit states it ([`Seed::value`]), and
    /// the engine's parameters become functions of it with unchanged values, so that under
    /// `Autodiff` gradients reach `theta`. [`Seed::Current`], [`Seed::DbsAmplitude`]: the
    /// current is `theta`. [`Seed::OuMu`]: the OU mean is `theta`, and at step 0 the initial OU
    /// current (`μ + σ z`) follows it too. [`Seed::Weight`]: every weight of the projection
    /// times `theta / theta` (1 in value, derivative `w / theta` as in the fused engine; the
    /// value must not be 0). Call after [`TensorEngine::set_state`]; it replaces an earlier
    /// call's tensors.
    ///
    /// # Errors
    /// A neuron parameter ([`Seed::Param`]: it also sets the initial state and `1/C`, which this
    /// engine takes from the fused engine in `f64`); a seed naming no population, projection,
    /// OU current or DBS here; a `theta` not `[batch, 1]`.
    pub fn seed(&mut self, seeds: &[Seed], theta: &[T2<B>]) -> Result<()> {
        if seeds.len() != theta.len() || theta.iter().any(|t| t.dims() != [self.batch, 1]) {
            return Err(Error::setting(
                "theta",
                format!(
                    "one [batch = {}, 1] tensor per seed ({} seeds)",
                    self.batch,
                    seeds.len()
                ),
            ));
        }
        for (d, (seed, th)) in seeds.iter().zip(theta).enumerate() {
            let missing =
                |what: &str| Error::param(format!("seeds[{d}]"), format!("{what} in this circuit"));
            match seed {
                Seed::Param { pop, name } => {
                    return Err(Error::param(
                        format!("{pop}.{name}"),
                        "the tensor engine differentiates currents, OU means, weights and the \
                         DBS amplitude, not neuron parameters (they also set the initial state \
                         and 1/C); use spiking::grad::evaluate (forward mode) for them",
                    ))
                }
                Seed::Current { pop: name } => {
                    let k = pops_named(&self.pops, name)
                        .ok_or_else(|| missing("no such population"))?;
                    self.pops[k].current = Param::T(th.clone());
                }
                Seed::OuMu { pop: name } => {
                    let k = pops_named(&self.pops, name)
                        .ok_or_else(|| missing("no such population"))?;
                    let p = &mut self.pops[k];
                    if p.ou.is_none() {
                        return Err(missing("no OU current of that population"));
                    }
                    if self.step == 0 {
                        // The initial OU current μ + σ z: its derivative 1, its value unchanged.
                        p.ou_i = p.ou_i.clone() + (th.clone() - th.clone().detach());
                    }
                    p.ou_mu = Param::T(th.clone());
                }
                Seed::Weight { index } => {
                    let pr = self
                        .projs
                        .get_mut(*index)
                        .ok_or_else(|| missing("no such projection"))?;
                    pr.scale = Some(th.clone() / th.clone().detach());
                }
                Seed::DbsAmplitude => {
                    let dbs = self.dbs.as_mut().ok_or_else(|| missing("no DBS"))?;
                    dbs.2 = Param::T(th.clone());
                }
            }
        }
        Ok(())
    }

    /// Advances every batch element by one step, as [`Engine::step`] does.
    ///
    /// # Errors
    /// A non-finite membrane potential (checked every [`CHECK_EVERY`] steps), naming the
    /// population, batch element and time.
    pub fn step(&mut self) -> Result<()> {
        let s = self.step;
        let t = s as f64 * self.dt;
        let (batch, dev) = (self.batch, self.device.clone());
        let zeros = |n: usize| Tensor::<B, 2>::zeros([batch, n], crate::float_opts::<B>(&dev));
        let mut g: Vec<T2<B>> = self.pops.iter().map(|p| zeros(p.n)).collect();
        let mut ge: Vec<T2<B>> = g.clone();
        for pr in &mut self.projs {
            let slot = (s % pr.ring.len() as u64) as usize;
            let arrival = std::mem::replace(&mut pr.ring[slot], zeros(pr.g.dims()[1]));
            let gk = pr.g.clone() * pr.decay + arrival;
            pr.g = gk.clone();
            g[pr.post] = g[pr.post].clone() + gk.clone();
            ge[pr.post] = ge[pr.post].clone() + gk * pr.e_rev;
        }
        for (k, pop) in self.pops.iter_mut().enumerate() {
            let mut drive = match &pop.current {
                Param::Const(c) => pop.ou_i.clone() + *c,
                Param::T(c) => c.clone() + pop.ou_i.clone(),
            };
            if let Some((target, d, amp)) = &self.dbs {
                if *target == k && d.pulse(t) {
                    drive = match amp {
                        Param::Const(a) => drive + *a,
                        Param::T(a) => drive + a.clone(),
                    };
                }
            }
            for input in self.inputs.iter().filter(|i| i.pop == k) {
                if let Some(row) = input.row(t) {
                    drive = drive + tensor(row, 1, row.len(), &self.device);
                }
            }
            let gk = g[k].clone();
            let i_ext = drive + ge[k].clone() - gk.clone() * pop.x[V].clone();
            let spikes = pop.dynamics.advance(
                &mut pop.x,
                &pop.p,
                i_ext,
                &gk,
                &pop.inv_c,
                self.dt,
                self.surrogate,
            );
            pop.counts = pop.counts.clone() + spikes.clone();
            pop.spikes = spikes;
            if let Some(ou) = &pop.ou {
                let e = (-self.dt / ou.tau_ms).exp();
                // The same normal variates for every batch element (the fused engine's stream
                // for this seed), each scaled by its own amplitude.
                let mut rng = stream(pop.ou_seed, s, 0);
                let z: Vec<f64> = (0..pop.n).map(|_| normal(&mut rng)).collect();
                let mut noise = Vec::with_capacity(batch * pop.n);
                for &(_, sigma) in &pop.ou_b {
                    let amp = sigma * (1.0 - e * e).sqrt();
                    noise.extend(z.iter().map(|&z| amp * z));
                }
                let noise = tensor(&noise, batch, pop.n, &dev);
                pop.ou_i = match &pop.ou_mu {
                    Param::Const(mu) => ((pop.ou_i.clone() - *mu) * e + *mu) + noise,
                    Param::T(mu) => (mu.clone() + (pop.ou_i.clone() - mu.clone()) * e) + noise,
                };
            }
        }
        for pr in &mut self.projs {
            // Arrivals at step s + 1 + delay: the slot read at step s.
            let slot = (s % pr.ring.len() as u64) as usize;
            let pre = &self.pops[pr.pre];
            let n_post = pr.g.dims()[1];
            let w = match &pr.scale {
                Some(scale) => pr.w.clone() * scale.clone(),
                None => pr.w.clone(),
            };
            let on_edges = pre.spikes.clone().select(1, pr.pre_idx.clone()) * w;
            pr.ring[slot] = zeros(n_post).select_assign(
                1,
                pr.post_idx.clone(),
                on_edges,
                IndexingUpdateOp::Add,
            );
        }
        self.step += 1;
        if self.step.is_multiple_of(CHECK_EVERY) {
            self.check()?;
        }
        Ok(())
    }

    /// The first non-finite membrane potential, as an error.
    pub fn check(&self) -> Result<()> {
        for pop in &self.pops {
            let v: Vec<f64> = pop.x[V]
                .clone()
                .into_data()
                .convert::<f64>()
                .into_vec::<f64>()
                .unwrap_or_default();
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::setting(
                    "circuit",
                    format!(
                        "simulation diverged by t = {} ms (step {}): V of neuron {} of \
                         population `{}` in batch element {} became {}; try a smaller dt or \
                         weaker synapses or input",
                        self.step as f64 * self.dt,
                        self.step,
                        i % pop.n,
                        pop.name,
                        i / pop.n,
                        v[i]
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A host copy of one step of a [`TensorEngine`] (batch element `b`): spikes and voltages, for
/// a [`super::Recorder`].
pub struct Snapshot {
    first_ids: Vec<usize>,
    spiked: Vec<Vec<u32>>,
    v: Vec<Vec<f64>>,
}

impl Snapshot {
    /// Reads batch element `b` of the last step back from the device (the voltages only when
    /// `voltages` is set; [`super::monitor::Observed::v`] is then 0).
    pub fn take<B: Backend>(e: &TensorEngine<B>, b: usize, voltages: bool) -> Self {
        let host = |t: T2<B>, n: usize| -> Vec<f64> {
            let row = t.slice([b..b + 1, 0..n]);
            row.into_data()
                .convert::<f64>()
                .into_vec::<f64>()
                .unwrap_or_default()
        };
        let mut spiked = Vec::with_capacity(e.pops.len());
        let mut v = Vec::with_capacity(e.pops.len());
        for pop in &e.pops {
            let s = host(pop.spikes.clone(), pop.n);
            spiked.push(
                (0..pop.n)
                    .filter(|&i| s.get(i).is_some_and(|x| *x != 0.0))
                    .map(|i| i as u32)
                    .collect(),
            );
            v.push(if voltages {
                host(pop.x[V].clone(), pop.n)
            } else {
                vec![0.0; pop.n]
            });
        }
        Self {
            first_ids: e.pops.iter().map(|p| p.offset).collect(),
            spiked,
            v,
        }
    }
}

impl super::monitor::Observed for Snapshot {
    fn spiked(&self, k: usize) -> &[u32] {
        &self.spiked[k]
    }
    fn first_id(&self, k: usize) -> usize {
        self.first_ids[k]
    }
    fn v(&self, k: usize, i: usize) -> f64 {
        self.v[k][i]
    }
    fn v_sum(&self, k: usize) -> f64 {
        self.v[k].iter().sum()
    }
}
