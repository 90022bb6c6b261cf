//! The simulation loop: steps in chunks, draws each chunk's noise in one call, keeps only what
//! the monitor asks for, and checks once per chunk that the state is still finite.

use burn::prelude::{Backend, Tensor};
use burn::tensor::ElementConversion;

use crate::error::{Error, Result};
use crate::integrate::Integrator;
use crate::monitor::{Monitor, Observe, Observer};
use crate::network::Network;
use crate::noise::{ChunkNoise, Noise};

/// The settings of a run (everything except network, parameters and initial state).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Step, in the model's unit of time.
    pub dt: f64,
    /// Total number of steps, transient included.
    pub steps: usize,
    /// Integration scheme.
    pub integrator: Integrator,
    /// Noise.
    pub noise: Noise,
    /// Steps per chunk (noise is drawn and finiteness checked once per chunk).
    pub chunk: usize,
    /// What is kept.
    pub monitor: Monitor,
}

impl Run {
    /// Number of samples the monitor keeps: sample `k` is taken after
    /// `transient + every * (k + 1)` steps.
    pub fn n_samples(&self) -> usize {
        self.steps.saturating_sub(self.monitor.transient) / self.monitor.every.max(1)
    }

    /// Checks the settings against a model.
    pub fn validate(&self, n_vars: usize) -> Result<()> {
        if !(self.dt > 0.0 && self.dt.is_finite()) {
            return Err(Error::setting(
                "dt",
                format!("must be a positive, finite step, got {}", self.dt),
            ));
        }
        if self.steps == 0 {
            return Err(Error::setting(
                "duration",
                "the run has no steps: duration must be at least one dt",
            ));
        }
        if self.monitor.every == 0 {
            return Err(Error::setting("sample-every", "must be at least 1"));
        }
        if self.chunk == 0 {
            return Err(Error::setting("chunk", "must be at least 1"));
        }
        if let Some(b) = &self.monitor.bold {
            if b.var >= n_vars {
                return Err(Error::setting(
                    "bold",
                    format!("driving variable index {} out of range", b.var),
                ));
            }
            if b.every == 0 || !self.monitor.every.is_multiple_of(b.every) {
                return Err(Error::setting(
                    "bold",
                    format!(
                        "the sampling period ({} steps) must be a multiple of the BOLD step ({} \
                         steps)",
                        self.monitor.every, b.every
                    ),
                ));
            }
            if !(b.step_s > 0.0 && b.step_s.is_finite()) {
                return Err(Error::setting("bold", "BOLD step must be positive"));
            }
            b.params
                .validate()
                .map_err(|e| Error::setting("bold", e.to_string()))?;
        }
        if let Some(&v) = self.monitor.vars.iter().find(|&&v| v >= n_vars) {
            return Err(Error::setting(
                "record",
                format!("variable index {v} out of range (model has {n_vars})"),
            ));
        }
        if self.noise.sigma.len() != n_vars {
            return Err(Error::setting(
                "noise",
                format!(
                    "{} noise amplitudes given for a model with {n_vars} state variables",
                    self.noise.sigma.len()
                ),
            ));
        }
        if let Some(s) = self
            .noise
            .sigma
            .iter()
            .find(|s| !(s.is_finite() && **s >= 0.0))
        {
            return Err(Error::setting(
                "noise",
                format!("noise amplitude must be finite and ≥ 0, got {s}"),
            ));
        }
        if !self.noise.is_off() && !self.integrator.supports_noise() {
            return Err(Error::setting(
                "integrator",
                format!(
                    "`{}` is for deterministic runs; use euler or heun with noise, or set the \
                     noise to 0",
                    self.integrator.name()
                ),
            ));
        }
        Ok(())
    }
}

/// The samples taken during one chunk: their indices and a tensor `[k, batch, vars, nodes]`.
pub struct ChunkSamples<B: Backend> {
    /// Index of the first sample in the run.
    pub first: usize,
    /// The samples, `[k, batch, vars, nodes]`.
    pub values: Tensor<B, 4>,
}

/// State carried from step to step and across chunk boundaries.
#[derive(Clone)]
pub struct Carry<B: Backend> {
    /// The model state, one `[batch, nodes]` tensor per variable.
    pub x: Vec<Tensor<B, 2>>,
    /// The monitor's carry ([`crate::monitor::Observe::n_state`] tensors `[batch, nodes]`).
    pub mon: Vec<Tensor<B, 2>>,
    /// Delay history per sent quantity, flat `[H, nodes, batch]` (empty without delays; see
    /// [`crate::network`]).
    pub hist: Vec<Tensor<B, 1>>,
}

impl<B: Backend> Carry<B> {
    /// The carry at the start of a run: the state, the network's initial delay history, and
    /// the monitor's initial carry.
    pub fn start(
        net: &Network<B>,
        x0: Vec<Tensor<B, 2>>,
        params: &[Tensor<B, 2>],
        run: &Run,
    ) -> Self {
        let hist = net.initial_history(&x0, params);
        let mon =
            crate::monitor::tensor::init(&run.monitor.observer(), x0[0].dims(), &x0[0].device());
        Self { x: x0, mon, hist }
    }

    /// All tensors, in a fixed order (state, monitor, history); each history as
    /// `[1, H · nodes · batch]`.
    pub fn tensors(&self) -> Vec<Tensor<B, 2>> {
        let mut v = self.x.clone();
        v.extend(self.mon.iter().cloned());
        v.extend(self.hist.iter().map(|h| {
            let [len] = h.dims();
            h.clone().reshape([1, len])
        }));
        v
    }

    /// Rebuilds a carry of the same layout as `self` from tensors in [`Carry::tensors`] order,
    /// possibly on another backend.
    pub fn with_tensors<C: Backend>(&self, t: Vec<Tensor<C, 2>>) -> Carry<C> {
        let mut it = t.into_iter();
        let x = it.by_ref().take(self.x.len()).collect();
        let mon = it.by_ref().take(self.mon.len()).collect();
        let hist = it
            .by_ref()
            .take(self.hist.len())
            .map(|h| {
                let [_, len] = h.dims();
                h.reshape([len])
            })
            .collect();
        Carry { x, mon, hist }
    }
}

/// Runs steps `start..start + len` from `carry`, returning the new carry and the samples taken.
///
/// Pure: the result depends only on the arguments (the chunk's noise included), which is what
/// lets the checkpointed gradient run the same chunk again under `Autodiff<B>`.
pub fn run_chunk<B: Backend>(
    net: &Network<B>,
    params: &[Tensor<B, 2>],
    mut carry: Carry<B>,
    noise: &ChunkNoise<B>,
    start: usize,
    len: usize,
    run: &Run,
) -> (Carry<B>, Option<ChunkSamples<B>>) {
    let obs = run.monitor.observer();
    let mut samples = Vec::new();
    let mut first = None;
    for s in 0..len {
        let z = noise.step(s);
        if let Some((k, y)) = step_observed(net, params, &mut carry, start + s, z, run, &obs) {
            first.get_or_insert(k);
            samples.push(y);
        }
    }
    let samples = first.map(|first| ChunkSamples {
        first,
        values: Tensor::stack(samples, 0),
    });
    (carry, samples)
}

/// One step (index `step`, 0-based) and the monitor after it: records the new state, and
/// returns the sample `(k, [batch, n_out, nodes])` if one falls due.
fn step_observed<B: Backend>(
    net: &Network<B>,
    params: &[Tensor<B, 2>],
    carry: &mut Carry<B>,
    step_index: usize,
    z: &[Option<Tensor<B, 2>>],
    run: &Run,
    obs: &Observer,
) -> Option<(usize, Tensor<B, 3>)> {
    let (m, n) = (&run.monitor, step_index + 1);
    carry.x = step(net, params, carry, step_index, z, run);
    if m.records(n) {
        crate::monitor::tensor::record(obs, n, &carry.x, &mut carry.mon);
    }
    let k = m.due(n)?;
    Some((
        k,
        crate::monitor::tensor::sample(obs, &carry.x, &mut carry.mon),
    ))
}

/// One integration step (step index `step`, 0-based) from `carry`, returning the new state and
/// updating the delay history.
fn step<B: Backend>(
    net: &Network<B>,
    params: &[Tensor<B, 2>],
    carry: &mut Carry<B>,
    step: usize,
    z: &[Option<Tensor<B, 2>>],
    run: &Run,
) -> Vec<Tensor<B, 2>> {
    let x = std::mem::take(&mut carry.x);
    if net.holds_coupling() {
        let held = net.step_inputs(&x, &mut carry.hist, step, params);
        let field = net.field_held(params, held);
        run.integrator.step(&field, x, run.dt, z)
    } else {
        run.integrator.step(&net.field(params), x, run.dt, z)
    }
}

/// Default chunk length: at most 1,000 steps, and at most about 16 M noise values per chunk.
pub fn default_chunk(batch: usize, nodes: usize, vars: usize) -> usize {
    (16_000_000 / (batch * nodes * vars).max(1)).clamp(1, 1000)
}

/// Runs a whole simulation from `x0` (one `[batch, nodes]` tensor per variable). `on_samples`
/// receives each chunk's samples (after the chunk has been checked to be finite), `on_progress`
/// the number of steps done. Returns the final state.
pub fn simulate<B: Backend>(
    net: &Network<B>,
    params: &[Tensor<B, 2>],
    x0: Vec<Tensor<B, 2>>,
    run: &Run,
    mut on_samples: impl FnMut(ChunkSamples<B>) -> Result<()>,
    mut on_progress: impl FnMut(usize),
) -> Result<Vec<Tensor<B, 2>>> {
    run.validate(net.spec().n_vars())?;
    let [batch, nodes] = x0[0].dims();
    let device = x0[0].device();
    let mut carry = Carry::start(net, x0, params, run);
    let mut start = 0;
    while start < run.steps {
        let len = run.chunk.min(run.steps - start);
        let noise = run
            .noise
            .chunk::<B>(start, len, batch, nodes, run.dt, &device);
        let before = carry.clone();
        let (next, samples) = run_chunk(net, params, carry, &noise, start, len, run);
        if !all_finite(&next.x) || !(next.mon.is_empty() || all_finite(&next.mon)) {
            return Err(locate_divergence(
                net, params, before, &noise, start, len, run,
            ));
        }
        carry = next;
        if let Some(s) = samples {
            on_samples(s)?;
        }
        start += len;
        on_progress(start);
    }
    Ok(carry.x)
}

/// Runs a simulation and returns all samples on the host, `[samples, batch, vars, nodes]`
/// row-major, with that shape.
pub fn simulate_collect<B: Backend>(
    net: &Network<B>,
    params: &[Tensor<B, 2>],
    x0: Vec<Tensor<B, 2>>,
    run: &Run,
) -> Result<(Vec<f32>, [usize; 4])> {
    let [batch, nodes] = x0[0].dims();
    let mut out = Vec::new();
    simulate(
        net,
        params,
        x0,
        run,
        |s| {
            out.extend(to_host(s.values));
            Ok(())
        },
        |_| {},
    )?;
    let shape = [run.n_samples(), batch, run.monitor.vars.len(), nodes];
    Ok((out, shape))
}

/// Whether every entry of every tensor is finite (one reduction and one read-back).
pub fn all_finite<B: Backend>(x: &[Tensor<B, 2>]) -> bool {
    let probe = Tensor::cat(x.to_vec(), 1).mul_scalar(0.0).sum();
    probe.into_scalar().elem::<f64>().is_finite()
}

/// Copies a tensor to the host as `f64` (exact for every backend's float).
pub fn to_host64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .expect("converted to f64")
}

/// Copies a tensor to the host as `f32`.
pub fn to_host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("converted to f32")
}

/// Re-runs a chunk one step at a time from its starting state to find the first non-finite
/// value (only called after the chunk has diverged, so speed does not matter).
pub(crate) fn locate_divergence<B: Backend>(
    net: &Network<B>,
    params: &[Tensor<B, 2>],
    mut carry: Carry<B>,
    noise: &ChunkNoise<B>,
    start: usize,
    len: usize,
    run: &Run,
) -> Error {
    let spec = net.spec();
    let obs = run.monitor.observer();
    for s in 0..len {
        let n = start + s + 1;
        step_observed(net, params, &mut carry, start + s, noise.step(s), run, &obs);
        let nv = carry.x.len();
        for (v, xv) in carry.x.iter().chain(&carry.mon).enumerate() {
            let [_, nodes] = xv.dims();
            let host = to_host(xv.clone());
            if let Some(idx) = host.iter().position(|x| !x.is_finite()) {
                return Error::Diverged {
                    step: n,
                    time: n as f64 * run.dt,
                    time_unit: spec.time_unit.name(),
                    var: match spec.state.get(v) {
                        Some(var) => var.name.to_string(),
                        None => obs.state_name(v - nv),
                    },
                    node: idx % nodes,
                    batch: idx / nodes,
                    value: host[idx],
                };
            }
        }
    }
    // Not reproduced step by step (cannot happen for a deterministic chunk); report the chunk.
    Error::Diverged {
        step: start + len,
        time: (start + len) as f64 * run.dt,
        time_unit: spec.time_unit.name(),
        var: "?".into(),
        node: 0,
        batch: 0,
        value: f32::NAN,
    }
}
