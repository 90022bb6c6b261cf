//! Task training of a biophysical network (issue 14): the evidence-integration task of Jaxley
//! (Deistler et al. 2025) on a recurrent network of Hodgkin–Huxley cells with conductance
//! synapses and per-synapse delays, trained by backpropagation through time (the network
//! adjoint of [`super::network`], checkpointed) with Adam from `neurodiff_optim`.
//!
//! ## The task
//! A trial is `T` ms (default 500 ms at `dt` 0.025 ms: 20,000 steps) of noisy evidence
//! `x(t) = c μ + σ ξ(t)` with the class `c = ±1` and `ξ` standard normal, held over bins of
//! `bin` ms (default 1 ms). The network must report the sign of `c`: the mean membrane
//! potential of two readout cells over the last `window` ms (default 100 ms) is the decision,
//! the larger one wins (cell 0: `c = −1`, cell 1: `c = +1`). The ideal observer of the whole
//! trial (the sign of the sum of the bins) is right with probability `Φ(μ √n_bins / σ)`
//! ([`EvidenceTask::ideal_accuracy`]).
//!
//! ## The network (as Jaxley's `fig5_rnn`, smaller)
//! `n_rec` single-compartment HH cells (NEURON's `hh`, 20 µm × 10 µm radius soma), the first
//! `n_inh` inhibitory (their synapses reverse at −75 mV, the others at 0 mV: Dale's law by the
//! presynaptic cell), connected with probability `p_rec` by Jaxley's `IonotropicSynapse` with a
//! random delay of 0.5–2 ms each (whole steps); every recurrent cell projects to both readout
//! cells (passive: leak 0.1 mS/cm² at −65 mV, the same soma). Each recurrent cell gets the
//! evidence through an input weight `w_in` (nA per unit of `x`) and a constant bias current
//! (nA), both trained; every synaptic maximal conductance `gs` is trained too, through the
//! inverse-sigmoid transform on `[0, g_max]`. The loss is Jaxley's: the cross-entropy of the
//! softmax of the readouts' mean potentials (mV) in the response window, averaged over the
//! batch of trials.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use super::adjoint::TraceLoss;
use super::network::{simulate, value_and_grad, NetProbe, Network};
use super::{Branch, Cell, CellError, Group, Morphology, Passive, Protocol};
use crate::Result;
use neurodiff_models::channel::ChannelKind;
use neurodiff_models::synapse::SynapseKind;

/// The evidence-integration task.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EvidenceTask {
    /// Time step, ms.
    pub dt: f64,
    /// Trial length, ms.
    pub duration: f64,
    /// Evidence bin, ms (the noise is held over a bin).
    pub bin: f64,
    /// Mean evidence per bin, in units of `x`.
    pub mu: f64,
    /// Noise s.d. per bin, in units of `x`.
    pub sigma: f64,
    /// The response window at the end of the trial, ms.
    pub window: f64,
}

impl Default for EvidenceTask {
    fn default() -> Self {
        EvidenceTask {
            dt: 0.025,
            duration: 500.0,
            bin: 1.0,
            mu: 0.5,
            sigma: 1.0,
            window: 100.0,
        }
    }
}

/// `Φ(z)`, the standard normal distribution function (Abramowitz & Stegun 7.1.26 through
/// `erf`, absolute error below 1.5e-7).
fn phi(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + y)
    } else {
        0.5 * (1.0 - y)
    }
}

impl EvidenceTask {
    /// The number of steps.
    pub fn steps(&self) -> usize {
        (self.duration / self.dt).round() as usize
    }

    /// Checks the settings.
    pub fn check(&self) -> Result<(), CellError> {
        let pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(CellError::setting(
                    name,
                    format!("must be positive, got {v}"),
                ))
            }
        };
        pos("dt", self.dt)?;
        pos("duration", self.duration)?;
        pos("bin", self.bin)?;
        pos("sigma", self.sigma)?;
        pos("window", self.window)?;
        if !(self.mu.is_finite() && self.mu > 0.0) {
            return Err(CellError::setting(
                "mu",
                format!("must be positive, got {}", self.mu),
            ));
        }
        if self.window > self.duration || self.bin > self.duration {
            return Err(CellError::setting(
                "window/bin",
                format!(
                    "the window ({} ms) and bin ({} ms) must not exceed the trial ({} ms)",
                    self.window, self.bin, self.duration
                ),
            ));
        }
        Ok(())
    }

    /// The ideal observer's accuracy over the whole trial, `Φ(μ √n_bins / σ)`.
    pub fn ideal_accuracy(&self) -> f64 {
        let n = (self.duration / self.bin).floor();
        phi(self.mu * n.sqrt() / self.sigma)
    }

    /// One trial: its class (0: `c = −1`, 1: `c = +1`) and its evidence per step.
    pub fn trial(&self, rng: &mut impl Rng) -> (usize, Vec<f64>) {
        let class = rng.random_range(0..2usize);
        let c = if class == 1 { 1.0 } else { -1.0 };
        let steps = self.steps();
        let per_bin = ((self.bin / self.dt).round() as usize).max(1);
        let mut x = Vec::with_capacity(steps);
        let mut v = 0.0;
        for k in 0..steps {
            if k % per_bin == 0 {
                let xi: f64 = StandardNormal.sample(rng);
                v = c * self.mu + self.sigma * xi;
            }
            x.push(v);
        }
        (class, x)
    }

    /// The first sample of the response window.
    pub fn window_start(&self) -> usize {
        self.steps() + 1 - ((self.window / self.dt).round() as usize).max(1)
    }
}

/// The network's shape and the starting values of its weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvidenceNet {
    /// Recurrent HH cells.
    pub n_rec: usize,
    /// Of which inhibitory (the first ones).
    pub n_inh: usize,
    /// Recurrent connection probability.
    pub p_rec: f64,
    /// Largest synaptic conductance, µS (the transform's upper bound).
    pub g_max: f64,
    /// Unbinding rate of every synapse, 1/ms (Jaxley's `k_minus`).
    pub k_minus: f64,
    /// Seed of the topology, delays and starting weights.
    pub seed: u64,
}

impl Default for EvidenceNet {
    fn default() -> Self {
        EvidenceNet {
            n_rec: 20,
            n_inh: 5,
            p_rec: 0.3,
            g_max: 0.05,
            k_minus: 0.025,
            seed: 1,
        }
    }
}

/// Bounds of the trained quantities: input weights (nA per unit of evidence) and biases (nA).
const W_IN: (f64, f64) = (-0.5, 0.5);
const BIAS: (f64, f64) = (-0.2, 0.3);

/// A synapse of the built network.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Edge {
    /// Presynaptic cell.
    pub pre: usize,
    /// Postsynaptic cell (`n_rec`, `n_rec + 1`: the readouts).
    pub post: usize,
    /// Reversal potential, mV.
    pub e_syn: f64,
    /// Delay, steps.
    pub delay: usize,
}

/// The trainable network: topology and the current values of every trained quantity.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Model {
    /// Its shape.
    pub shape: EvidenceNet,
    /// The synapses (recurrent, then readout).
    pub edges: Vec<Edge>,
    /// Input weight per recurrent cell, nA per unit of evidence.
    pub w_in: Vec<f64>,
    /// Bias current per recurrent cell, nA.
    pub bias: Vec<f64>,
    /// Maximal conductance per edge, µS.
    pub gs: Vec<f64>,
}

fn soma() -> Morphology {
    Morphology {
        branches: vec![Branch {
            name: Some("soma".into()),
            parent: None,
            length: 20.0,
            radius: 10.0,
            ncomp: 1,
            group: Group::Soma,
        }],
    }
}

impl Model {
    /// Draws the topology, delays (0.5–2 ms, whole steps of `dt`) and starting weights.
    pub fn new(shape: EvidenceNet, dt: f64) -> Result<Self, CellError> {
        if shape.n_rec == 0 || shape.n_inh > shape.n_rec {
            return Err(CellError::setting(
                "n_rec/n_inh",
                format!(
                    "need 0 ≤ n_inh ≤ n_rec, n_rec ≥ 1; got {} and {}",
                    shape.n_inh, shape.n_rec
                ),
            ));
        }
        if !(0.0..=1.0).contains(&shape.p_rec)
            || shape.g_max.is_nan()
            || shape.g_max <= 0.0
            || shape.k_minus.is_nan()
            || shape.k_minus <= 0.0
        {
            return Err(CellError::setting(
                "p_rec/g_max/k_minus",
                "need p_rec in [0, 1] and positive g_max and k_minus",
            ));
        }
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(shape.seed);
        let n = shape.n_rec;
        let e = |pre: usize| if pre < shape.n_inh { -75.0 } else { 0.0 };
        let delay = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
            let lo = (0.5 / dt).round() as usize;
            let hi = ((2.0 / dt).round() as usize).max(lo);
            rng.random_range(lo..=hi)
        };
        let mut edges = Vec::new();
        let mut gs = Vec::new();
        for pre in 0..n {
            for post in 0..n {
                if pre != post && rng.random::<f64>() < shape.p_rec {
                    edges.push(Edge {
                        pre,
                        post,
                        e_syn: e(pre),
                        delay: delay(&mut rng),
                    });
                    gs.push(shape.g_max * (0.05 + 0.15 * rng.random::<f64>()));
                }
            }
        }
        for out in 0..2 {
            for pre in 0..n {
                edges.push(Edge {
                    pre,
                    post: n + out,
                    e_syn: e(pre),
                    delay: delay(&mut rng),
                });
                gs.push(shape.g_max * (0.02 + 0.06 * rng.random::<f64>()));
            }
        }
        let w_in = (0..n)
            .map(|_| 0.1 * (2.0 * rng.random::<f64>() - 1.0))
            .collect();
        let bias = (0..n).map(|_| 0.04 + 0.02 * rng.random::<f64>()).collect();
        Ok(Model {
            shape,
            edges,
            w_in,
            bias,
            gs,
        })
    }

    /// The number of trained quantities: `w_in`, `bias`, then one `gs` per edge.
    pub fn n_params(&self) -> usize {
        2 * self.shape.n_rec + self.edges.len()
    }

    /// The bounds of trained quantity `i`.
    pub fn bounds(&self, i: usize) -> (f64, f64) {
        let n = self.shape.n_rec;
        if i < n {
            W_IN
        } else if i < 2 * n {
            BIAS
        } else {
            (0.0, self.shape.g_max)
        }
    }

    /// The trained quantities as one vector.
    pub fn values(&self) -> Vec<f64> {
        self.w_in
            .iter()
            .chain(&self.bias)
            .chain(&self.gs)
            .copied()
            .collect()
    }

    /// Sets the trained quantities from one vector.
    pub fn set_values(&mut self, v: &[f64]) {
        let n = self.shape.n_rec;
        self.w_in.copy_from_slice(&v[..n]);
        self.bias.copy_from_slice(&v[n..2 * n]);
        self.gs.copy_from_slice(&v[2 * n..]);
    }

    /// The network for a batch of trials with evidence `signals[b]` (one per step).
    pub fn network(&self, dt: f64, signals: Vec<Vec<f64>>) -> Result<Network, CellError> {
        let nb = signals.len();
        let steps = signals.first().map_or(0, Vec::len);
        let mut cells = Vec::with_capacity(self.shape.n_rec + 2);
        for _ in 0..self.shape.n_rec {
            let mut c = Cell::new(soma(), |_| Passive::default(), nb)?;
            c.insert(ChannelKind::HhNa, |_, _| true, &[vec![120.0, 50.0]])?;
            c.insert(ChannelKind::HhK, |_, _| true, &[vec![36.0, -77.0]])?;
            c.insert(ChannelKind::Leak, |_, _| true, &[vec![0.3, -54.3]])?;
            cells.push(c);
        }
        for _ in 0..2 {
            let mut c = Cell::new(soma(), |_| Passive::default(), nb)?;
            c.insert(ChannelKind::Leak, |_, _| true, &[vec![0.1, -65.0]])?;
            cells.push(c);
        }
        let mut net = Network::new(cells)?;
        for (e, &g) in self.edges.iter().zip(&self.gs) {
            net.connect(
                SynapseKind::Ionotropic,
                (e.pre, 0),
                (e.post, 0),
                e.delay as f64 * dt,
                &[vec![g, e.e_syn, self.shape.k_minus, -35.0, 10.0]],
            )?;
        }
        let signals = std::sync::Arc::new(signals);
        let ones = std::sync::Arc::new(vec![vec![1.0; steps]]);
        for i in 0..self.shape.n_rec {
            net.drive((i, 0), &[self.w_in[i]], signals.clone())?;
        }
        for i in 0..self.shape.n_rec {
            net.drive((i, 0), &[self.bias[i]], ones.clone())?;
        }
        Ok(net)
    }

    /// The readouts' probes.
    pub fn probes(&self) -> Vec<NetProbe> {
        (0..2)
            .map(|o| NetProbe::V {
                cell: self.shape.n_rec + o,
                node: 0,
            })
            .collect()
    }
}

/// The protocol of a trial.
pub fn protocol(task: &EvidenceTask) -> Protocol {
    Protocol {
        dt: task.dt,
        steps: task.steps(),
        ..Protocol::default()
    }
}

/// Jaxley's loss on a recording of the two readouts `[sample][2][batch]`: per trial the
/// cross-entropy of `softmax(mean V in the window)` against its class, divided by the batch
/// size (so the batch's loss is the mean), with its gradient; and whether each trial is right.
pub fn readout_loss(
    rec: &super::Recording,
    labels: &[usize],
    start: usize,
) -> (TraceLoss, Vec<bool>) {
    let nb = rec.batch;
    let n = rec.len();
    let m = (n - start) as f64;
    let mut loss = vec![0.0; nb];
    let mut grad = vec![0.0; rec.data.len()];
    let mut right = vec![false; nb];
    for b in 0..nb {
        let mean: Vec<f64> = (0..2)
            .map(|o| {
                (start..n)
                    .map(|k| rec.data[(k * 2 + o) * nb + b])
                    .sum::<f64>()
                    / m
            })
            .collect();
        let mx = mean[0].max(mean[1]);
        let z: f64 = mean.iter().map(|x| (x - mx).exp()).sum();
        let p: Vec<f64> = mean.iter().map(|x| (x - mx).exp() / z).collect();
        let y = labels[b];
        loss[b] = -(p[y].max(1e-300)).ln() / nb as f64;
        right[b] = mean[y] > mean[1 - y];
        for o in 0..2 {
            let d = (p[o] - if o == y { 1.0 } else { 0.0 }) / nb as f64 / m;
            for k in start..n {
                grad[(k * 2 + o) * nb + b] = d;
            }
        }
    }
    (TraceLoss { loss, grad }, right)
}

/// The loss (batch mean), the accuracy and the gradient with respect to
/// [`Model::values`] of one batch of trials.
pub struct BatchGrad {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction right.
    pub accuracy: f64,
    /// `∂loss/∂values`.
    pub grad: Vec<f64>,
    /// Readout traces of trial 0 (mV), for figures.
    pub example: [Vec<f64>; 2],
    /// The most network states held at once, and the numbers in one.
    pub peak_states: usize,
    /// The numbers in one state.
    pub state_size: usize,
}

/// The loss and gradient of `model` on the trials `(labels, signals)`, checkpoints `levels`.
pub fn batch_grad(
    model: &Model,
    task: &EvidenceTask,
    labels: &[usize],
    signals: Vec<Vec<f64>>,
    levels: &[usize],
) -> Result<BatchGrad> {
    let net = model.network(task.dt, signals)?;
    let p = protocol(task);
    let start = task.window_start();
    let mut right = Vec::new();
    let g = value_and_grad(&net, &p, &model.probes(), levels, |rec| {
        let (l, r) = readout_loss(rec, labels, start);
        right = r;
        Ok(l)
    })?;
    let n = model.shape.n_rec;
    let mut grad = vec![0.0; model.n_params()];
    for i in 0..n {
        grad[i] = g.drives[i].iter().sum();
        grad[n + i] = g.drives[n + i].iter().sum();
    }
    for (j, s) in g.synapses.iter().enumerate() {
        let np = SynapseKind::Ionotropic.spec().params.len();
        grad[2 * n + j] = s.iter().step_by(np).sum();
    }
    Ok(BatchGrad {
        loss: g.loss.iter().sum(),
        accuracy: right.iter().filter(|&&r| r).count() as f64 / right.len().max(1) as f64,
        grad,
        example: [g.recording.trace(0, 0), g.recording.trace(1, 0)],
        peak_states: g.peak_states,
        state_size: g.state_size,
    })
}

/// The accuracy and mean loss of `model` on the trials `(labels, signals)`, run forward in
/// batches of `chunk`.
pub fn evaluate(
    model: &Model,
    task: &EvidenceTask,
    labels: &[usize],
    signals: &[Vec<f64>],
    chunk: usize,
) -> Result<(f64, f64)> {
    let p = protocol(task);
    let start = task.window_start();
    let (mut right, mut loss) = (0usize, 0.0);
    for (l, s) in labels
        .chunks(chunk.max(1))
        .zip(signals.chunks(chunk.max(1)))
    {
        let net = model.network(task.dt, s.to_vec())?;
        let rec = simulate::<f64>(&net, &p, &model.probes())?;
        let (tl, r) = readout_loss(&rec, l, start);
        right += r.iter().filter(|&&x| x).count();
        loss += tl.loss.iter().sum::<f64>() * l.len() as f64;
    }
    let n = labels.len().max(1) as f64;
    Ok((right as f64 / n, loss / n))
}

/// A set of trials: classes and evidence, from `seed`.
pub fn trials(task: &EvidenceTask, n: usize, seed: u64) -> (Vec<usize>, Vec<Vec<f64>>) {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n).map(|_| task.trial(&mut rng)).unzip()
}
