//! The fused CPU engine of spiking circuits, in `f64`: every population is stepped every `dt`
//! through the neuron's own equations ([`Neuron`]), and spikes travel through the projections
//! event by event.
//!
//! ## One step (`t = s dt → (s + 1) dt`)
//! 1. **Synapses.** For each projection, the arrivals due at this step are taken from its delay
//!    ring buffer and the conductances decay exactly: `g ← g e^{−dt/τ} + arrivals`.
//! 2. **Neurons.** Per population, the input current is
//!    `I = I_const + I_OU + I_DBS(t) + Σ_projections g (E_rev − V)`, the synaptic part written
//!    as `GE − G V` with `G = Σ g`, `GE = Σ g E_rev`. Each neuron is advanced by exponential
//!    Euler: `x_k ← x_k + f_k (e^{a_k dt} − 1)/a_k` (`dt f_k` where `a_k = 0`), with `f` the
//!    drift ([`Neuron::drift`] at the current `I`) and `a` the diagonal linear part
//!    ([`Neuron::linear`]: Rush–Larsen on gates, HH's total ionic conductance on `V`), to which
//!    the synaptic conductance adds `−G/C` on `V` (`1/C`, the gain of `I` on `dV/dt`, is
//!    measured once per neuron from the drift). So `V` is exponential Euler in its synaptic
//!    (and, for HH, ionic) conductance and Euler in what the neuron does not declare linear
//!    (AdEx's exponential term, STN's gated currents); a conductance jump of any size cannot
//!    overshoot `E_rev`. A neuron whose drift is 0 (refractory) keeps its `V` exactly.
//! 3. **Spikes.** `s = Neuron::spike(V_before, V_after)` (exactly 0 or 1); a spiking neuron is
//!    reset ([`Neuron::reset`], integrate-and-fire types) and listed. Its spike time is the end
//!    of the step, `(s + 1) dt`.
//! 4. **Propagation (event-driven).** Only neurons that spiked touch their synapses: each
//!    out-synapse of projection `k` adds its weight to slot `(s + 1 + d_k) mod (d_k + 1)` of
//!    the projection's ring buffer `[d_k + 1 slots][post neurons]`, consumed at the start of
//!    step `s + 1 + d_k`. So a spike at `t_s = (s + 1) dt` raises `g` by `w` at exactly
//!    `t_s + d_k dt` and `g(t) = w e^{−(t − t_s − d_k dt)/τ}` after that (at step
//!    boundaries). The work per step grows with spikes × fan-out, not with the synapses.
//! 5. **Background.** The OU current advances by its exact discretisation,
//!    `I ← μ + (I − μ) e^{−dt/τ} + σ sqrt(1 − e^{−2dt/τ}) ξ`, `ξ` standard normal.
//!
//! ## Randomness
//! A function of `(seed, step, element)` only (the convention of [`crate::noise`]): the OU
//! increments of step `s` for population `k` are one stream keyed by
//! `(seed, OU tag, k)`, `s` and drawn in neuron order (element = neuron index); connectivity by
//! `(seed, projection, presynaptic neuron)`; heterogeneity by `(seed, population, parameter)`
//! and neuron; initial states by `(seed, population)` and neuron.
//!
//! ## Units of the conductances
//! A projection's weights are in the postsynaptic neuron's conductance unit: nS onto AdEx/LIF
//! (nS · mV = pA, their input unit), mS/cm² onto HH/STN (mS/cm² · mV = µA/cm²).
//!
//! ## Dispatch
//! Each population holds its neuron as `Box<dyn PopDynamics>`, implemented for every
//! [`Neuron`] by one generic function ([`advance`]): one virtual call per population per step,
//! the per-neuron loop monomorphised and inlined.

use neurodiff_models::neuron::{self, Neuron, NeuronError, NeuronSpec, NeuronVisitor, V};
use rand::Rng;

use super::circuit::{Circuit, Dbs, Ou};
use super::connect::{normal, stream, subseed, tag, Synapses};
use super::monitor::Recorder;
use crate::error::{Error, Result};

/// The largest number of state variables a neuron may have here (the step keeps its scratch
/// on the stack).
pub const MAX_VARS: usize = 8;

/// What a population's step needs.
pub struct StepInputs<'a> {
    /// State, `[n][n_vars]`.
    pub x: &'a mut [f64],
    /// Parameters, `[n][n_params]`.
    pub p: &'a [f64],
    /// External current per neuron (constant + OU + DBS).
    pub drive: &'a [f64],
    /// Total synaptic conductance per neuron, `G = Σ g`.
    pub g: &'a [f64],
    /// `GE = Σ g E_rev` per neuron.
    pub ge: &'a [f64],
    /// `1/C` per neuron: the gain of the input current on `dV/dt`.
    pub inv_c: &'a [f64],
    /// Step, ms.
    pub dt: f64,
    /// Receives the indices of the neurons that spiked.
    pub spiked: &'a mut Vec<u32>,
}

/// A neuron model behind one virtual call per population and step.
pub trait PopDynamics: Send + Sync {
    /// The model's spec.
    fn spec(&self) -> &'static NeuronSpec;
    /// [`Neuron::validate`].
    fn validate(&self, p: &[f64]) -> std::result::Result<(), NeuronError>;
    /// [`Neuron::rest`].
    fn rest(&self, p: &[f64], x: &mut [f64]);
    /// `∂(dV/dt)/∂I` at state `x`: `1/C` (in the input unit over the capacitance unit).
    fn input_gain(&self, p: &[f64], x: &[f64]) -> f64;
    /// Advances every neuron of a population by one step. On a non-finite `V`, returns the
    /// neuron and the value.
    fn advance(&self, s: StepInputs<'_>) -> std::result::Result<(), (usize, f64)>;
}

struct Dyn<N: Neuron>(N);

impl<N: Neuron> PopDynamics for Dyn<N> {
    fn spec(&self) -> &'static NeuronSpec {
        N::SPEC
    }
    fn validate(&self, p: &[f64]) -> std::result::Result<(), NeuronError> {
        self.0.validate(p)
    }
    fn rest(&self, p: &[f64], x: &mut [f64]) {
        self.0.rest(p, x)
    }
    fn input_gain(&self, p: &[f64], x: &[f64]) -> f64 {
        let nv = x.len();
        let (mut f0, mut f1) = ([0.0; MAX_VARS], [0.0; MAX_VARS]);
        self.0.drift(x, 0.0, p, &mut f0[..nv]);
        self.0.drift(x, 1.0, p, &mut f1[..nv]);
        f1[V] - f0[V]
    }
    fn advance(&self, s: StepInputs<'_>) -> std::result::Result<(), (usize, f64)> {
        advance(&self.0, s)
    }
}

/// `(e^{a dt} − 1)/a`, `dt` at `a = 0`: for `|a dt| < 0.01` by its Taylor series
/// `dt (1 + z/2 + z²/6 + z³/24 + z⁴/120)`, `z = a dt` (relative error below `z⁵/720 < 1.4e-13`),
/// otherwise `(e^z − 1)/a` (cancellation costs at most ~2 of 16 digits there). Gates, AdEx's
/// `w` and synaptic conductances mostly have `|z| < 0.01` at dt 0.025 ms; glibc's `expm1` was a
/// third of the circuit's time.
#[inline(always)]
pub fn phi(a: f64, dt: f64) -> f64 {
    let z = a * dt;
    if z.abs() < 0.01 {
        dt * (1.0 + z * (0.5 + z * (1.0 / 6.0 + z * (1.0 / 24.0 + z * (1.0 / 120.0)))))
    } else {
        (z.exp() - 1.0) / a
    }
}

/// One exponential-Euler step of every neuron of a population (see the module documentation).
#[inline(never)]
pub fn advance<N: Neuron>(n: &N, s: StepInputs<'_>) -> std::result::Result<(), (usize, f64)> {
    let nv = N::SPEC.n_vars();
    let np = N::SPEC.params.len();
    let mut f = [0.0f64; MAX_VARS];
    let mut lin = [0.0f64; MAX_VARS];
    for j in 0..s.g.len() {
        let x = &mut s.x[j * nv..(j + 1) * nv];
        let p = &s.p[j * np..(j + 1) * np];
        let v0 = x[V];
        let i = s.drive[j] + s.ge[j] - s.g[j] * v0;
        lin[..nv].fill(0.0);
        n.drift_linear(x, i, p, &mut f[..nv], &mut lin[..nv]);
        lin[V] -= s.g[j] * s.inv_c[j];
        for k in 0..nv {
            x[k] += f[k] * phi(lin[k], s.dt);
        }
        let v1 = x[V];
        if !v1.is_finite() {
            return Err((j, v1));
        }
        let spike = n.spike(v0, v1, p);
        if spike != 0.0 {
            if N::RESETS {
                n.reset(x, spike, p);
            }
            s.spiked.push(j as u32);
        }
    }
    Ok(())
}

struct Make;

impl NeuronVisitor for Make {
    type Output = Box<dyn PopDynamics>;
    fn visit<N: Neuron>(self, n: N) -> Self::Output {
        Box::new(Dyn(n))
    }
}

/// The dynamics of the neuron model called `name`.
pub fn dynamics(name: &str) -> Option<Box<dyn PopDynamics>> {
    neuron::visit(name, Make)
}

/// One population's state.
pub(crate) struct Pop {
    pub name: String,
    pub n: usize,
    /// Global id of its first neuron.
    pub offset: usize,
    pub dynamics: Box<dyn PopDynamics>,
    pub nv: usize,
    pub x: Vec<f64>,
    pub p: Vec<f64>,
    pub inv_c: Vec<f64>,
    pub current: Vec<f64>,
    pub ou: Option<Ou>,
    pub ou_i: Vec<f64>,
    pub ou_seed: u64,
    pub drive: Vec<f64>,
    pub g: Vec<f64>,
    pub ge: Vec<f64>,
    /// Neurons that spiked in the last step.
    pub spiked: Vec<u32>,
}

/// One projection's state.
pub(crate) struct Proj {
    pub pre: usize,
    pub post: usize,
    pub syn: Synapses,
    pub delay: usize,
    pub decay: f64,
    pub e_rev: f64,
    /// `[delay + 1][n_post]`.
    pub ring: Vec<f64>,
    pub g: Vec<f64>,
}

/// A circuit being simulated (see the module documentation).
pub struct Engine {
    dt: f64,
    step: u64,
    pub(crate) pops: Vec<Pop>,
    pub(crate) projs: Vec<Proj>,
    dbs: Option<(usize, Dbs)>,
}

/// Bytes per synapse of the stored connectivity (`u32` target + `f32` weight).
pub const BYTES_PER_SYNAPSE: usize = 8;

impl Engine {
    /// Checks the circuit, estimates its memory (refusing one that would not fit in the
    /// memory available), draws heterogeneity, initial states and connectivity from the seed.
    ///
    /// # Errors
    /// Whatever [`Circuit::validate`] finds; a neuron whose drawn parameters are inconsistent
    /// (population, neuron, parameter); a circuit too large for the available memory.
    pub fn new(c: &Circuit) -> Result<Self> {
        c.validate()?;
        let bytes = estimate_bytes(c);
        if let Some(avail) = crate::io::available_memory_bytes() {
            if bytes as f64 > 0.9 * avail as f64 {
                return Err(Error::setting(
                    "circuit",
                    format!(
                        "about {:.2} GB needed ({:.3e} synapses at {BYTES_PER_SYNAPSE} bytes, \
                         delay buffers, state) but only {:.2} GB of memory is available; use \
                         fewer neurons or a smaller p_connect",
                        bytes as f64 / 1e9,
                        c.expected_synapses(),
                        avail as f64 / 1e9
                    ),
                ));
            }
        }
        let mut pops = Vec::with_capacity(c.populations.len());
        let mut offset = 0;
        for (k, pop) in c.populations.iter().enumerate() {
            let spec = c.spec(k)?;
            let dynamics = dynamics(&pop.neuron).expect("validated neuron name");
            let (nv, np) = (spec.n_vars(), spec.params.len());
            if nv > MAX_VARS {
                return Err(Error::setting(
                    format!("populations.{}.neuron", pop.name),
                    format!(
                        "`{}` has {nv} state variables, at most {MAX_VARS}",
                        spec.name
                    ),
                ));
            }
            let base = c.base_params(k)?;
            let mut p = Vec::with_capacity(pop.n * np);
            for _ in 0..pop.n {
                p.extend_from_slice(&base);
            }
            for (name, &cv) in &pop.heterogeneity {
                if cv == 0.0 {
                    continue;
                }
                let j = spec.param_index(name).expect("validated parameter name");
                let ps = &spec.params[j];
                let sub = subseed(c.seed, tag::HETERO, ((k as u64) << 32) | j as u64);
                for i in 0..pop.n {
                    let z = normal(&mut stream(sub, 0, i)).clamp(-3.0, 3.0);
                    let v = base[j] + cv * base[j].abs() * z;
                    p[i * np + j] = v.clamp(ps.lower, ps.upper);
                }
            }
            for i in 0..pop.n {
                dynamics.validate(&p[i * np..(i + 1) * np]).map_err(|e| {
                    Error::param(
                        format!("{}.params", pop.name),
                        format!(
                            "neuron {i} of population `{}` after heterogeneity: {e}; lower \
                             the heterogeneity",
                            pop.name
                        ),
                    )
                })?;
            }
            let mut x = vec![0.0; pop.n * nv];
            let mut inv_c = vec![0.0; pop.n];
            let init = subseed(c.seed, tag::INIT, k as u64);
            for i in 0..pop.n {
                let xi = &mut x[i * nv..(i + 1) * nv];
                let pi = &p[i * np..(i + 1) * np];
                dynamics.rest(pi, xi);
                inv_c[i] = dynamics.input_gain(pi, xi);
                if pop.v_spread_mv > 0.0 {
                    let u: f64 = stream(init, 0, i).random();
                    xi[V] += pop.v_spread_mv * (2.0 * u - 1.0);
                }
            }
            let ou_seed = subseed(c.seed, tag::OU, k as u64);
            let ou_i = match &pop.ou {
                // Start in the stationary distribution.
                Some(ou) => (0..pop.n)
                    .map(|i| ou.mu + ou.sigma * normal(&mut stream(ou_seed, u64::MAX, i)))
                    .collect(),
                None => vec![0.0; pop.n],
            };
            pops.push(Pop {
                name: pop.name.clone(),
                n: pop.n,
                offset,
                dynamics,
                nv,
                x,
                p,
                inv_c,
                current: vec![pop.current; pop.n],
                ou: pop.ou,
                ou_i,
                ou_seed,
                drive: vec![0.0; pop.n],
                g: vec![0.0; pop.n],
                ge: vec![0.0; pop.n],
                spiked: Vec::new(),
            });
            offset += pop.n;
        }
        let mut projs = Vec::with_capacity(c.projections.len());
        for (k, pr) in c.projections.iter().enumerate() {
            let pre = c.population_index(&pr.pre).expect("validated");
            let post = c.population_index(&pr.post).expect("validated");
            let (n_pre, n_post) = (c.populations[pre].n, c.populations[post].n);
            let delay = c.delay_steps(pr).max(1);
            projs.push(Proj {
                pre,
                post,
                syn: Synapses::generate(pr, k, c.seed, n_pre, n_post),
                delay,
                decay: (-c.dt_ms / pr.tau_decay_ms).exp(),
                e_rev: pr.e_rev_mv,
                ring: vec![0.0; (delay + 1) * n_post],
                g: vec![0.0; n_post],
            });
        }
        let dbs = c.dbs.as_ref().map(|d| {
            (
                c.population_index(&d.population).expect("validated"),
                d.clone(),
            )
        });
        Ok(Self {
            dt: c.dt_ms,
            step: 0,
            pops,
            projs,
            dbs,
        })
    }

    /// Step, ms.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Steps taken so far.
    pub fn steps_done(&self) -> u64 {
        self.step
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

    /// Total number of neurons.
    pub fn n_neurons(&self) -> usize {
        self.pops.iter().map(|p| p.n).sum()
    }

    /// Synapses per projection, in the circuit's order.
    pub fn synapse_counts(&self) -> Vec<usize> {
        self.projs.iter().map(|p| p.syn.len()).collect()
    }

    /// The synapses of projection `k`.
    pub fn synapses(&self, k: usize) -> &Synapses {
        &self.projs[k].syn
    }

    /// Delay of projection `k` in steps.
    pub fn delay_steps(&self, k: usize) -> usize {
        self.projs[k].delay
    }

    /// Bytes held by connectivity and delay buffers.
    pub fn synapse_bytes(&self) -> usize {
        self.projs
            .iter()
            .map(|p| p.syn.bytes() + p.ring.len() * 8 + p.g.len() * 8)
            .sum()
    }

    /// The conductance of projection `k` onto postsynaptic neuron `j` now (at the end of the
    /// last step; the value the next step starts from before its arrivals).
    pub fn conductance(&self, k: usize, j: usize) -> f64 {
        self.projs[k].g[j]
    }

    /// The state of neuron `i` of population `k`.
    pub fn state(&self, k: usize, i: usize) -> &[f64] {
        let p = &self.pops[k];
        &p.x[i * p.nv..(i + 1) * p.nv]
    }

    /// The membrane potential of every neuron of population `k`, in order.
    pub fn voltages(&self, k: usize) -> impl Iterator<Item = f64> + '_ {
        let p = &self.pops[k];
        p.x.iter().step_by(p.nv).copied()
    }

    /// The neurons of population `k` that spiked in the last step.
    pub fn spiked(&self, k: usize) -> &[u32] {
        &self.pops[k].spiked
    }

    /// Replaces the constant current of each neuron of population `k` (one value per neuron).
    ///
    /// # Panics
    /// If `values` does not have one value per neuron.
    pub fn set_current(&mut self, k: usize, values: &[f64]) {
        assert_eq!(values.len(), self.pops[k].n, "one current per neuron");
        self.pops[k].current.copy_from_slice(values);
    }

    /// Advances the circuit by one step (see the module documentation).
    ///
    /// # Errors
    /// A non-finite membrane potential, naming the population, neuron and time.
    pub fn step(&mut self) -> Result<()> {
        let s = self.step;
        let t = s as f64 * self.dt;
        for pop in &mut self.pops {
            pop.g.fill(0.0);
            pop.ge.fill(0.0);
        }
        for pr in &mut self.projs {
            let n = pr.g.len();
            let slot = (s % (pr.delay as u64 + 1)) as usize;
            let row = &mut pr.ring[slot * n..(slot + 1) * n];
            let post = &mut self.pops[pr.post];
            let (decay, e_rev) = (pr.decay, pr.e_rev);
            for (((gj, arrival), total), ge) in
                pr.g.iter_mut()
                    .zip(row.iter_mut())
                    .zip(post.g.iter_mut())
                    .zip(post.ge.iter_mut())
            {
                let g = *gj * decay + *arrival;
                *arrival = 0.0;
                *gj = g;
                *total += g;
                *ge += g * e_rev;
            }
        }
        for (k, pop) in self.pops.iter_mut().enumerate() {
            let dbs = match &self.dbs {
                Some((target, d)) if *target == k => d.current(t),
                _ => 0.0,
            };
            for j in 0..pop.n {
                pop.drive[j] = pop.current[j] + pop.ou_i[j] + dbs;
            }
            pop.spiked.clear();
            let inputs = StepInputs {
                x: &mut pop.x,
                p: &pop.p,
                drive: &pop.drive,
                g: &pop.g,
                ge: &pop.ge,
                inv_c: &pop.inv_c,
                dt: self.dt,
                spiked: &mut pop.spiked,
            };
            if let Err((j, value)) = pop.dynamics.advance(inputs) {
                return Err(Error::setting(
                    "circuit",
                    format!(
                        "simulation diverged at t = {} ms (step {}): V of neuron {j} of \
                         population `{}` (global id {}) became {value}; try a smaller dt or \
                         weaker synapses or input",
                        (s + 1) as f64 * self.dt,
                        s + 1,
                        pop.name,
                        pop.offset + j
                    ),
                ));
            }
            if let Some(ou) = &pop.ou {
                let e = (-self.dt / ou.tau_ms).exp();
                let amp = ou.sigma * (1.0 - e * e).sqrt();
                let mut rng = stream(pop.ou_seed, s, 0);
                for v in &mut pop.ou_i {
                    *v = ou.mu + (*v - ou.mu) * e + amp * normal(&mut rng);
                }
            }
        }
        for pr in &mut self.projs {
            let n = pr.g.len();
            let slot = ((s + 1 + pr.delay as u64) % (pr.delay as u64 + 1)) as usize;
            let row = &mut pr.ring[slot * n..(slot + 1) * n];
            for &i in &self.pops[pr.pre].spiked {
                let (targets, weights) = pr.syn.row(i as usize);
                for (&j, &w) in targets.iter().zip(weights) {
                    row[j as usize] += w as f64;
                }
            }
        }
        self.step += 1;
        Ok(())
    }

    /// Runs `steps` steps, recording into `rec` after each, calling `progress(done, steps)`
    /// every 1000 steps and at the end.
    ///
    /// # Errors
    /// As [`Engine::step`].
    pub fn run(
        &mut self,
        steps: u64,
        rec: &mut Recorder,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        for done in 0..steps {
            self.step()?;
            rec.observe(self);
            if (done + 1) % 1000 == 0 {
                progress(done + 1, steps);
            }
        }
        progress(steps, steps);
        Ok(())
    }
}

/// The memory a circuit is expected to need, bytes: synapses at [`BYTES_PER_SYNAPSE`] (their
/// expected count), offsets, delay buffers and conductances, and the neurons' state.
pub fn estimate_bytes(c: &Circuit) -> usize {
    let syn = c.expected_synapses() * BYTES_PER_SYNAPSE as f64;
    let mut other = 0.0;
    for pr in &c.projections {
        let n = |name: &str| {
            c.population_index(name)
                .map(|i| c.populations[i].n as f64)
                .unwrap_or(0.0)
        };
        let slots = (pr.delay_ms / c.dt_ms).round().max(1.0) + 1.0;
        other += 8.0 * n(&pr.pre) + 8.0 * (slots + 1.0) * n(&pr.post);
    }
    for pop in &c.populations {
        // state, parameters and per-neuron buffers (≤ 8 + 32 + 8 values of 8 bytes)
        other += 8.0 * 48.0 * pop.n as f64;
    }
    (syn + other) as usize
}
