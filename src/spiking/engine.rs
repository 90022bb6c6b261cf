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
//! Each population holds its neuron as `Box<dyn PopDynamics<T>>`, implemented for every
//! [`Neuron`] by one generic function ([`advance`]): one virtual call per population per step,
//! the per-neuron loop monomorphised and inlined.
//!
//! ## Numbers and derivatives
//! The engine is generic over its number, [`SpikeNum`]: `f64` (the default, [`Engine::new`]),
//! or forward-mode dual numbers [`Dual<f64, N>`] ([`Engine::with_seeds`]) that carry the
//! derivatives of every state, conductance and spike with respect to up to `N` parameters
//! ([`Seed`]: a neuron parameter of a population, its constant current or OU mean, a
//! projection's mean weight, the DBS amplitude). Forward mode costs about `N + 1` runs and no
//! memory that grows with the number of steps. The value part of a dual run is the `f64` run
//! exactly (the same operations on the values).
//!
//! A spike is `Neuron::spike`, exactly 0 or 1 in value. Its derivative is either
//! - **zero** (`surrogate = false`): the derivative of the run with every spike held at its
//!   step, which is what a central finite difference with a small step sees (the run is
//!   piecewise smooth in the parameters, with jumps where a spike moves to another step), or
//! - **the surrogate** (`surrogate = true`, the default for fitting): the fast-sigmoid
//!   derivative of [`neurodiff_models::Real::spike`] at each spike that happened, carried into
//!   every synaptic event it triggers (`g ← g + s w`) and into spike counts. The reset
//!   (`V ← V − s (V − V_reset)`, `w ← w + s b`) takes the spike's value only, as Zenke & Vogels
//!   (2021, Neural Comput. 33:899) recommend: through the reset, a spike multiplies `V`'s
//!   derivative by about `−s′ (V_th − V_reset)` (−7.5 for LIF at slope 1/mV), which made the
//!   derivatives of a noisy LIF population grow to 1e9 within a second. Neurons that did not
//!   spike send nothing (propagation stays event-driven), so near-misses contribute through
//!   their voltage only.

use std::marker::PhantomData;

use neurodiff_models::neuron::{self, Neuron, NeuronError, NeuronSpec, NeuronVisitor, V};
use neurodiff_models::real::Lanes;
use num_traits::Float;
use rand::Rng;

use super::circuit::{Circuit, Dbs, InputData, Ou};
use super::connect::{normal, stream, subseed, tag, Synapses};
use super::monitor::Recorder;
use crate::error::{Error, Result};
use crate::fused::dual::Dual;

/// The number the spiking engine runs in: `f64`, or [`Dual<f64, N>`] carrying derivatives
/// along `N` directions (one per [`Seed`]).
pub trait SpikeNum: Float + Send + Sync + std::fmt::Debug + 'static {
    /// Derivative directions carried (0 for `f64`).
    const DIRECTIONS: usize;
    /// `value` with derivative `tangent` along direction `dir` (and 0 along the others).
    fn seeded(value: f64, dir: usize, tangent: f64) -> Self;
    /// A constant.
    #[inline(always)]
    fn of(value: f64) -> Self {
        Self::seeded(value, usize::MAX, 0.0)
    }
    /// The value.
    fn value(&self) -> f64;
    /// The derivative along `dir`.
    fn tangent(&self, dir: usize) -> f64;
    /// The value as a constant (derivatives dropped).
    #[inline(always)]
    fn detach(self) -> Self {
        Self::of(self.value())
    }
    /// One step of a population: [`advance`], or for `f64` [`advance_lanes`] (the same
    /// numbers, bit for bit, four neurons at a time).
    #[inline(always)]
    fn advance_pop<N: Neuron>(
        n: &N,
        s: StepInputs<'_, Self>,
    ) -> std::result::Result<(), (usize, f64)> {
        advance(n, s)
    }
}

impl SpikeNum for f64 {
    const DIRECTIONS: usize = 0;
    #[inline(always)]
    fn seeded(value: f64, _dir: usize, _tangent: f64) -> Self {
        value
    }
    #[inline(always)]
    fn value(&self) -> f64 {
        *self
    }
    #[inline(always)]
    fn tangent(&self, _dir: usize) -> f64 {
        0.0
    }
    #[inline(always)]
    fn advance_pop<N: Neuron>(
        n: &N,
        s: StepInputs<'_, f64>,
    ) -> std::result::Result<(), (usize, f64)> {
        advance_lanes(n, s)
    }
}

impl<const N: usize> SpikeNum for Dual<f64, N> {
    const DIRECTIONS: usize = N;
    #[inline(always)]
    fn seeded(value: f64, dir: usize, tangent: f64) -> Self {
        let mut d = Dual::cst(value);
        if dir < N {
            d.eps[dir] = tangent;
        }
        d
    }
    #[inline(always)]
    fn value(&self) -> f64 {
        self.re
    }
    #[inline(always)]
    fn tangent(&self, dir: usize) -> f64 {
        self.eps.get(dir).copied().unwrap_or(0.0)
    }
}

/// A parameter to differentiate with respect to ([`Engine::with_seeds`]); the derivative is
/// with respect to the value the [`Circuit`] states.
#[derive(Debug, Clone, PartialEq)]
pub enum Seed {
    /// A neuron parameter of a population (`gpe.C`): its base value, around which each
    /// neuron's heterogeneous value is drawn as `p_i = p (1 + cv z_i)`, so `∂p_i/∂p = p_i / p`
    /// (exact unless a neuron's value was clipped at a bound).
    Param {
        /// Population name.
        pop: String,
        /// Parameter name.
        name: String,
    },
    /// The constant current of a population (`gpe.current`).
    Current {
        /// Population name.
        pop: String,
    },
    /// The mean of a population's OU current (`gpe.ou_mu`).
    OuMu {
        /// Population name.
        pop: String,
    },
    /// The mean weight of projection `index` (in the circuit's order); every synapse's weight
    /// is proportional to it.
    Weight {
        /// Projection index.
        index: usize,
    },
    /// The DBS pulse amplitude.
    DbsAmplitude,
}

impl Seed {
    /// Parses `POP.NAME` (a neuron parameter), `POP.current`, `POP.ou_mu`, `w:PRE->POST`
    /// (a projection's mean weight) or `dbs.amplitude`, checking names against the circuit.
    ///
    /// # Errors
    /// An unknown population, parameter or projection, naming the known ones.
    pub fn parse(text: &str, c: &Circuit) -> Result<Self> {
        let t = text.trim();
        if t == "dbs.amplitude" {
            if c.dbs.is_none() {
                return Err(Error::param(
                    t,
                    "the circuit has no DBS (add --dbs FREQ,AMP,WIDTH)",
                ));
            }
            return Ok(Seed::DbsAmplitude);
        }
        if let Some(rest) = t.strip_prefix("w:") {
            let (pre, post) = rest.split_once("->").ok_or_else(|| {
                Error::param(t, "expected w:PRE->POST (e.g. w:stn->gpe), a projection")
            })?;
            let index = c
                .projections
                .iter()
                .position(|p| p.pre == pre.trim() && p.post == post.trim())
                .ok_or_else(|| {
                    let known: Vec<String> = c
                        .projections
                        .iter()
                        .map(|p| format!("w:{}->{}", p.pre, p.post))
                        .collect();
                    Error::param(
                        t,
                        format!("no such projection (projections: {})", known.join(", ")),
                    )
                })?;
            return Ok(Seed::Weight { index });
        }
        let (pop, name) = t.split_once('.').ok_or_else(|| {
            Error::param(
                t,
                "expected POP.NAME, POP.current, POP.ou_mu, w:PRE->POST or dbs.amplitude",
            )
        })?;
        let k = c.population_index(pop).ok_or_else(|| {
            Error::param(
                t,
                format!(
                    "no population `{pop}` (populations: {})",
                    c.population_names()
                ),
            )
        })?;
        let pop = pop.to_string();
        match name {
            "current" => Ok(Seed::Current { pop }),
            "ou_mu" => {
                if c.populations[k].ou.is_none() {
                    return Err(Error::param(
                        t,
                        format!("population `{pop}` has no OU current"),
                    ));
                }
                Ok(Seed::OuMu { pop })
            }
            _ => {
                let spec = c.spec(k)?;
                if spec.param_index(name).is_none() {
                    let known: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
                    return Err(Error::param(
                        t,
                        format!(
                            "the `{}` neuron has no parameter `{name}` (it has: {}; or current, ou_mu)",
                            spec.name,
                            known.join(", ")
                        ),
                    ));
                }
                Ok(Seed::Param {
                    pop,
                    name: name.to_string(),
                })
            }
        }
    }
}

impl Seed {
    /// The text [`Seed::parse`] reads for this parameter (`gpe.C`, `stn.current`,
    /// `gpe.ou_mu`, `w:gpe->stn`, `dbs.amplitude`).
    pub fn key(&self, c: &Circuit) -> String {
        match self {
            Seed::Param { pop, name } => format!("{pop}.{name}"),
            Seed::Current { pop } => format!("{pop}.current"),
            Seed::OuMu { pop } => format!("{pop}.ou_mu"),
            Seed::Weight { index } => {
                let p = &c.projections[*index];
                format!("w:{}->{}", p.pre, p.post)
            }
            Seed::DbsAmplitude => "dbs.amplitude".into(),
        }
    }

    /// The parameter's value in `c` (a neuron parameter's base value, before heterogeneity).
    ///
    /// # Errors
    /// When the seed does not belong to `c` (parse it against the same circuit).
    pub fn value(&self, c: &Circuit) -> Result<f64> {
        let missing = || Error::param(self.key(c), "not a parameter of this circuit");
        let pop = |name: &str| c.population_index(name).ok_or_else(missing);
        match self {
            Seed::Param { pop: p, name } => {
                let k = pop(p)?;
                let j = c.spec(k)?.param_index(name).ok_or_else(missing)?;
                Ok(c.base_params(k)?[j])
            }
            Seed::Current { pop: p } => Ok(c.populations[pop(p)?].current),
            Seed::OuMu { pop: p } => c.populations[pop(p)?].ou.map(|o| o.mu).ok_or_else(missing),
            Seed::Weight { index } => c
                .projections
                .get(*index)
                .map(|p| p.weight)
                .ok_or_else(missing),
            Seed::DbsAmplitude => c.dbs.as_ref().map(|d| d.amplitude).ok_or_else(missing),
        }
    }

    /// Sets the parameter in `c` to `v` (checked later by [`Circuit::validate`]).
    ///
    /// # Errors
    /// When the seed does not belong to `c`.
    pub fn set(&self, c: &mut Circuit, v: f64) -> Result<()> {
        let key = self.key(c);
        let missing = || Error::param(&key, "not a parameter of this circuit");
        let k = match self {
            Seed::Param { pop, .. } | Seed::Current { pop } | Seed::OuMu { pop } => {
                c.population_index(pop).ok_or_else(missing)?
            }
            _ => 0,
        };
        match self {
            Seed::Param { name, .. } => {
                c.populations[k].params.insert(name.clone(), v);
            }
            Seed::Current { .. } => c.populations[k].current = v,
            Seed::OuMu { .. } => c.populations[k].ou.as_mut().ok_or_else(missing)?.mu = v,
            Seed::Weight { index } => {
                c.projections.get_mut(*index).ok_or_else(missing)?.weight = v;
            }
            Seed::DbsAmplitude => c.dbs.as_mut().ok_or_else(missing)?.amplitude = v,
        }
        Ok(())
    }
}

/// The largest number of state variables a neuron may have here (the step keeps its scratch
/// on the stack).
pub const MAX_VARS: usize = 8;

/// Where variable `k` of neuron `i` lies in a population's state: the state is stored in
/// blocks of [`LANES`] neurons, `[⌈n / LANES⌉][n_vars][LANES]` (the last block padded), so
/// that [`advance_lanes`] loads and stores a variable of four neurons as one vector.
#[inline(always)]
pub fn state_index(nv: usize, i: usize, k: usize) -> usize {
    (i / LANES * nv + k) * LANES + i % LANES
}

/// A neuron-major array `[n][width]` (`n ≥ 1`) in the blocked layout of [`state_index`]
/// (`[⌈n / LANES⌉][width][LANES]`), the last block padded with copies of the last neuron.
pub fn to_blocks<T: Copy>(a: &[T], n: usize, width: usize) -> Vec<T> {
    let blocks = n.div_ceil(LANES);
    let mut out = Vec::with_capacity(blocks * width * LANES);
    for b in 0..blocks {
        for k in 0..width {
            for l in 0..LANES {
                let i = (b * LANES + l).min(n - 1);
                out.push(a[i * width + k]);
            }
        }
    }
    out
}

/// The most parameters a neuron may have for [`advance_lanes`] (which keeps one block's
/// parameters on the stack); a neuron with more is stepped by [`advance`].
pub const MAX_PARAMS: usize = 32;

/// A population's `f64` parameters `[n][n_params]` as [`advance_lanes`] reads them. Only the
/// parameters that differ between neurons (heterogeneous ones) are stored per block of
/// [`LANES`] neurons; the others are one [`Lanes::splat`] per population. At 45,000 neurons the
/// full blocked table (one `Lanes` per parameter and block) was 4.7 MB streamed from memory
/// every step for one or two parameters that vary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamLanes {
    /// Every parameter's value splatted over the lanes, `[n_params]` (for a varying parameter,
    /// neuron 0's value, overwritten per block).
    pub uniform: Vec<Lanes<LANES>>,
    /// The indices of the parameters whose value is not the same (bit for bit) in every neuron.
    pub varied: Vec<usize>,
    /// The varying parameters per block, `[⌈n / LANES⌉][varied.len()]` (the last block padded
    /// with copies of the last neuron).
    pub blocks: Vec<Lanes<LANES>>,
}

impl ParamLanes {
    /// From parameters `[n][np]` (`n ≥ 1`). Empty (so that [`advance_lanes`] falls back to
    /// [`advance`]) when `np` exceeds [`MAX_PARAMS`].
    pub fn new(p: &[f64], n: usize, np: usize) -> Self {
        if np > MAX_PARAMS || n == 0 {
            return Self::default();
        }
        let varied: Vec<usize> = (0..np)
            .filter(|&j| (1..n).any(|i| p[i * np + j].to_bits() != p[j].to_bits()))
            .collect();
        let uniform = (0..np).map(|j| Lanes::splat(p[j])).collect();
        let nh = varied.len();
        let mut blocks = Vec::with_capacity(n.div_ceil(LANES) * nh);
        for b in 0..n.div_ceil(LANES) {
            for &j in &varied {
                blocks.push(Lanes::new(std::array::from_fn(|l| {
                    p[(b * LANES + l).min(n - 1) * np + j]
                })));
            }
        }
        Self {
            uniform,
            varied,
            blocks,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        (self.uniform.len() + self.blocks.len()) * std::mem::size_of::<Lanes<LANES>>()
            + self.varied.len() * std::mem::size_of::<usize>()
    }
}

/// What a population's step needs.
pub struct StepInputs<'a, T> {
    /// State in blocks of [`LANES`] neurons, `[⌈n / LANES⌉][n_vars][LANES]`
    /// ([`state_index`]).
    pub x: &'a mut [T],
    /// Parameters, `[n][n_params]`.
    pub p: &'a [T],
    /// The same parameters for [`advance_lanes`] ([`ParamLanes`]; `f64` only, may be empty:
    /// then the population is stepped by [`advance`]).
    pub p_lanes: &'a ParamLanes,
    /// External current per neuron (constant + OU + DBS).
    pub drive: &'a [T],
    /// Total synaptic conductance per neuron, `G = Σ g`.
    pub g: &'a [T],
    /// `GE = Σ g E_rev` per neuron.
    pub ge: &'a [T],
    /// `1/C` per neuron: the gain of the input current on `dV/dt`.
    pub inv_c: &'a [T],
    /// Step, ms.
    pub dt: f64,
    /// Receives the indices of the neurons that spiked.
    pub spiked: &'a mut Vec<u32>,
    /// Receives their spikes (1 in value; see the module documentation for the derivative).
    pub spikes: &'a mut Vec<T>,
    /// Whether a spike carries the surrogate derivative (else none).
    pub surrogate: bool,
}

/// A neuron model behind one virtual call per population and step.
pub trait PopDynamics<T: SpikeNum = f64>: Send + Sync {
    /// The model's spec.
    fn spec(&self) -> &'static NeuronSpec;
    /// [`Neuron::validate`].
    fn validate(&self, p: &[f64]) -> std::result::Result<(), NeuronError>;
    /// [`Neuron::rest`].
    fn rest(&self, p: &[T], x: &mut [T]);
    /// `∂(dV/dt)/∂I` at state `x`: `1/C` (in the input unit over the capacitance unit).
    fn input_gain(&self, p: &[T], x: &[T]) -> T;
    /// Advances every neuron of a population by one step. On a non-finite `V`, returns the
    /// neuron and the value.
    fn advance(&self, s: StepInputs<'_, T>) -> std::result::Result<(), (usize, f64)>;
}

struct Dyn<N: Neuron>(N);

impl<N: Neuron, T: SpikeNum> PopDynamics<T> for Dyn<N> {
    fn spec(&self) -> &'static NeuronSpec {
        N::SPEC
    }
    fn validate(&self, p: &[f64]) -> std::result::Result<(), NeuronError> {
        self.0.validate(p)
    }
    fn rest(&self, p: &[T], x: &mut [T]) {
        self.0.rest(p, x)
    }
    fn input_gain(&self, p: &[T], x: &[T]) -> T {
        let nv = x.len();
        let (mut f0, mut f1) = ([T::zero(); MAX_VARS], [T::zero(); MAX_VARS]);
        self.0.drift(x, T::zero(), p, &mut f0[..nv]);
        self.0.drift(x, T::one(), p, &mut f1[..nv]);
        f1[V] - f0[V]
    }
    fn advance(&self, s: StepInputs<'_, T>) -> std::result::Result<(), (usize, f64)> {
        T::advance_pop(&self.0, s)
    }
}

/// The coefficients `1/(k+1)!` of [`phi`]'s Taylor series.
const PHI_TAYLOR: [f64; 10] = [
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
];

/// [`phi`] uses its Taylor series for `|z|` below this.
const PHI_SMALL: f64 = 0.1;

/// `(e^{a dt} − 1)/a`, `dt` at `a = 0`: for `|a dt| < 0.1` by its Taylor series
/// `dt Σ_{k=0}^{9} z^k/(k+1)!`, `z = a dt` (relative error below `z^10/11! < 2.6e-18`: no `exp`
/// and no division), otherwise `(e^z − 1)/a` (cancellation costs at most ~1 of 16 digits
/// there). Gates with time constants above 0.25 ms, AdEx's `w` and synaptic conductances have
/// `|z| < 0.1` at dt 0.025 ms; `exp` and the division were a third of the circuit's time.
#[inline(always)]
pub fn phi<T: SpikeNum>(a: T, dt: f64) -> T {
    const C: [f64; 10] = PHI_TAYLOR;
    let c = T::of;
    let z = a * c(dt);
    if z.value().abs() < PHI_SMALL {
        let mut p = c(C[9]);
        for &ck in C[..9].iter().rev() {
            p = c(ck) + z * p;
        }
        c(dt) * p
    } else {
        (neurodiff_models::Real::exp(z) - c(1.0)) / a
    }
}

/// One exponential-Euler step of every neuron of a population (see the module documentation).
#[inline(never)]
pub fn advance<N: Neuron, T: SpikeNum>(
    n: &N,
    s: StepInputs<'_, T>,
) -> std::result::Result<(), (usize, f64)> {
    let nv = N::SPEC.n_vars();
    let np = N::SPEC.params.len();
    let mut f = [T::zero(); MAX_VARS];
    let mut lin = [T::zero(); MAX_VARS];
    let mut xj = [T::zero(); MAX_VARS];
    for j in 0..s.g.len() {
        let at = state_index(nv, j, 0);
        for (k, v) in xj[..nv].iter_mut().enumerate() {
            *v = s.x[at + k * LANES];
        }
        let x = &mut xj[..nv];
        let p = &s.p[j * np..(j + 1) * np];
        let v0 = x[V];
        let i = s.drive[j] + s.ge[j] - s.g[j] * v0;
        lin[..nv].fill(T::zero());
        n.drift_linear(x, i, p, &mut f[..nv], &mut lin[..nv]);
        lin[V] = lin[V] - s.g[j] * s.inv_c[j];
        for k in 0..nv {
            x[k] = x[k] + f[k] * phi(lin[k], s.dt);
        }
        let v1 = x[V];
        if !v1.is_finite() {
            return Err((j, v1.value()));
        }
        let mut spike = n.spike(v0, v1, p);
        if spike.value() != 0.0 {
            if !s.surrogate {
                spike = spike.detach();
            }
            if N::RESETS {
                // The reset takes the spike's value only (see the module documentation).
                n.reset(x, spike.detach(), p);
            }
            s.spiked.push(j as u32);
            s.spikes.push(spike);
        }
        for (k, &v) in x.iter().enumerate() {
            s.x[at + k * LANES] = v;
        }
    }
    Ok(())
}

/// Neurons stepped side by side by [`advance_lanes`].
pub const LANES: usize = 4;

/// [`phi`] of every lane, bit for bit: the Taylor series, and where a lane needs it the exact
/// form too (both evaluated, no branch per lane; `exp` and the division are skipped when every
/// lane is small, as for AdEx's `w`, `V` under synaptic conductance and slow gates).
#[inline(always)]
fn phi_lanes(a: Lanes<LANES>, dt: f64) -> Lanes<LANES> {
    type L = Lanes<LANES>;
    let z = a * L::splat(dt);
    let mut p = L::splat(PHI_TAYLOR[9]);
    for &ck in PHI_TAYLOR[..9].iter().rev() {
        p = L::splat(ck) + z * p;
    }
    let taylor = L::splat(dt) * p;
    let small = neurodiff_models::Real::lt(neurodiff_models::Real::abs(z), L::splat(PHI_SMALL));
    if small.iter().all(|&s| s) {
        return taylor;
    }
    let exact = (neurodiff_models::Real::exp(z) - L::splat(1.0)) / a;
    neurodiff_models::Real::select(small, taylor, exact)
}

/// [`advance`] for `f64`, [`LANES`] neurons at a time: the same equations on [`Lanes`] (every
/// lane the `f64` result bit for bit), so that the neurons' dependency chains (`exp`, the
/// division by `C`) overlap. Each variable of a block of four neurons is one load and one
/// store of the blocked state ([`state_index`]). The parameters are one stack array per
/// population ([`StepInputs::p_lanes`]: the uniform ones splatted once, the varying ones
/// loaded per block). The last block is padded with copies of its last neuron, whose
/// spikes are dropped. Spikes are reported in neuron order, as by [`advance`].
pub fn advance_lanes<N: Neuron>(
    n: &N,
    s: StepInputs<'_, f64>,
) -> std::result::Result<(), (usize, f64)> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2 (checked just above).
        return unsafe { advance_lanes_avx2(n, s) };
    }
    advance_lanes_body(n, s)
}

/// [`advance_lanes_body`] compiled for AVX2, so that the lanes are one 256-bit register (no
/// FMA: Rust does not contract `a * b + c`, so the numbers are those of the plain build).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn advance_lanes_avx2<N: Neuron>(
    n: &N,
    s: StepInputs<'_, f64>,
) -> std::result::Result<(), (usize, f64)> {
    advance_lanes_body(n, s)
}

#[inline(always)]
#[allow(clippy::needless_range_loop)] // lanes and variables indexed side by side
fn advance_lanes_body<N: Neuron>(
    n: &N,
    s: StepInputs<'_, f64>,
) -> std::result::Result<(), (usize, f64)> {
    type L = Lanes<LANES>;
    let nv = N::SPEC.n_vars();
    let np = N::SPEC.params.len();
    let count = s.g.len();
    let blocks = count.div_ceil(LANES);
    let pl = s.p_lanes;
    let nh = pl.varied.len();
    if np > MAX_PARAMS
        || pl.uniform.len() != np
        || pl.blocks.len() != blocks * nh
        || s.x.len() != blocks * nv * LANES
    {
        return advance(n, s);
    }
    let zero = L::splat(0.0);
    let mut pb = [zero; MAX_PARAMS];
    pb[..np].copy_from_slice(&pl.uniform);
    let (mut x, mut f, mut lin) = ([zero; MAX_VARS], [zero; MAX_VARS], [zero; MAX_VARS]);
    for b in 0..blocks {
        let j0 = b * LANES;
        let m = (count - j0).min(LANES);
        // A full block reads four neighbours at once; the last one repeats its last neuron.
        let gather = |v: &[f64]| {
            if m == LANES {
                L::new(v[j0..j0 + LANES].try_into().expect("four lanes"))
            } else {
                L::new(std::array::from_fn(|l| v[j0 + l.min(m - 1)]))
            }
        };
        let xb = &mut s.x[b * nv * LANES..(b + 1) * nv * LANES];
        for k in 0..nv {
            x[k] = L::new(
                xb[k * LANES..(k + 1) * LANES]
                    .try_into()
                    .expect("four lanes"),
            );
        }
        for (&j, &v) in pl.varied.iter().zip(&pl.blocks[b * nh..(b + 1) * nh]) {
            pb[j] = v;
        }
        let p = &pb[..np];
        let (g, ge, drive, inv_c) = (gather(s.g), gather(s.ge), gather(s.drive), gather(s.inv_c));
        let v0 = x[V];
        let i = drive + ge - g * v0;
        lin[..nv].fill(zero);
        n.drift_linear(&x[..nv], i, p, &mut f[..nv], &mut lin[..nv]);
        lin[V] = lin[V] - g * inv_c;
        for k in 0..nv {
            x[k] = x[k] + f[k] * phi_lanes(lin[k], s.dt);
        }
        let v1 = x[V];
        // Padded lanes are copies of the last neuron's step, so a test over all lanes is the
        // test over the real ones; folded without short-circuit, it is one vector compare
        // and one branch per block (per-lane branches were ~10 % of the AdEx step).
        let bad = v1.0.iter().fold(false, |acc, &v| {
            acc | (v.to_bits() & !(1 << 63) >= f64::INFINITY.to_bits())
        });
        if bad {
            if let Some(l) = (0..m).find(|&l| !v1.0[l].is_finite()) {
                return Err((j0 + l, v1.0[l]));
            }
        }
        let spike = n.spike(v0, v1, p);
        let any = spike.0.iter().fold(false, |acc, &h| acc | (h != 0.0));
        if any && N::RESETS {
            n.reset(&mut x[..nv], spike, p);
        }
        // Padded lanes are stored too: they stay copies of the last neuron's step.
        for k in 0..nv {
            xb[k * LANES..(k + 1) * LANES].copy_from_slice(&x[k].0);
        }
        if any {
            for l in 0..m {
                if spike.0[l] != 0.0 {
                    s.spiked.push((j0 + l) as u32);
                    s.spikes.push(spike.0[l]);
                }
            }
        }
    }
    Ok(())
}

struct Make<T>(PhantomData<T>);

impl<T: SpikeNum> NeuronVisitor for Make<T> {
    type Output = Box<dyn PopDynamics<T>>;
    fn visit<N: Neuron>(self, n: N) -> Self::Output {
        Box::new(Dyn(n))
    }
}

/// The dynamics of the neuron model called `name`.
pub fn dynamics<T: SpikeNum>(name: &str) -> Option<Box<dyn PopDynamics<T>>> {
    neuron::visit(name, Make(PhantomData))
}

/// One population's state.
pub(crate) struct Pop<T: SpikeNum> {
    pub name: String,
    pub n: usize,
    /// Global id of its first neuron.
    pub offset: usize,
    pub dynamics: Box<dyn PopDynamics<T>>,
    pub nv: usize,
    /// State in blocks of [`LANES`] neurons ([`state_index`]); read it through
    /// [`Pop::var`].
    pub x: Vec<T>,
    /// Parameters, `[n][n_params]`.
    pub p: Vec<T>,
    /// The `f64` parameters for [`advance_lanes`] (empty in dual numbers).
    pub p_lanes: ParamLanes,
    pub inv_c: Vec<T>,
    pub current: Vec<T>,
    pub ou: Option<Ou>,
    /// The OU mean (a [`Seed::OuMu`] makes it carry a derivative).
    pub ou_mu: T,
    pub ou_i: Vec<T>,
    pub ou_seed: u64,
    pub drive: Vec<T>,
    pub g: Vec<T>,
    pub ge: Vec<T>,
    /// Neurons that spiked in the last step.
    pub spiked: Vec<u32>,
    /// Their spikes (1 in value, with the derivative of the module documentation).
    pub spikes: Vec<T>,
}

impl<T: SpikeNum> Pop<T> {
    /// Variable `k` of neuron `i`.
    #[inline(always)]
    pub fn var(&self, i: usize, k: usize) -> T {
        self.x[state_index(self.nv, i, k)]
    }
}

/// One projection's state.
pub(crate) struct Proj<T: SpikeNum> {
    pub pre: usize,
    pub post: usize,
    pub syn: Synapses,
    pub delay: usize,
    pub decay: f64,
    pub e_rev: f64,
    /// Factor on every weight: 1 (a [`Seed::Weight`] gives it the derivative `1/weight`).
    pub scale: T,
    /// `[delay + 1][n_post]`.
    pub ring: Vec<T>,
    pub g: Vec<T>,
}

/// A circuit being simulated (see the module documentation), in `f64` or, with derivatives,
/// in [`Dual`] numbers ([`Engine::with_seeds`]).
pub struct Engine<T: SpikeNum = f64> {
    dt: f64,
    step: u64,
    pub(crate) pops: Vec<Pop<T>>,
    pub(crate) projs: Vec<Proj<T>>,
    dbs: Option<(usize, Dbs)>,
    /// The DBS amplitude (a [`Seed::DbsAmplitude`] makes it carry a derivative).
    dbs_amp: T,
    /// Currents from files ([`Circuit::inputs`]).
    pub(crate) inputs: Vec<InputData>,
    surrogate: bool,
}

/// Bytes per synapse of the stored connectivity (`u32` target + `f32` weight).
pub const BYTES_PER_SYNAPSE: usize = 8;

impl Engine<f64> {
    /// Checks the circuit, estimates its memory (refusing one that would not fit in the
    /// memory available), draws heterogeneity, initial states and connectivity from the seed.
    ///
    /// # Errors
    /// Whatever [`Circuit::validate`] finds; a neuron whose drawn parameters are inconsistent
    /// (population, neuron, parameter); a circuit too large for the available memory.
    pub fn new(c: &Circuit) -> Result<Self> {
        Self::build(c, &[], false)
    }
}

impl<T: SpikeNum> Engine<T> {
    /// As [`Engine::new`], in dual numbers: seed `d` of `seeds` is derivative direction `d`
    /// (at most `T::DIRECTIONS` seeds). `surrogate` chooses the derivative of a spike (see the
    /// module documentation).
    ///
    /// # Errors
    /// As [`Engine::new`]; more seeds than directions; a seed naming nothing in the circuit.
    pub fn with_seeds(c: &Circuit, seeds: &[Seed], surrogate: bool) -> Result<Self> {
        Self::build(c, seeds, surrogate)
    }

    fn build(c: &Circuit, seeds: &[Seed], surrogate: bool) -> Result<Self> {
        if seeds.len() > T::DIRECTIONS {
            return Err(Error::setting(
                "seeds",
                format!(
                    "{} parameters to differentiate, but the engine carries {} derivative \
                     directions",
                    seeds.len(),
                    T::DIRECTIONS
                ),
            ));
        }
        let seed_of = |want: &dyn Fn(&Seed) -> bool| seeds.iter().position(want);
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
            let dynamics = dynamics::<T>(&pop.neuron).expect("validated neuron name");
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
            // Parameters in T: a seeded parameter carries ∂p_i/∂p = p_i / p (1 at p = 0).
            let mut pt: Vec<T> = p.iter().map(|&v| T::of(v)).collect();
            for (j, ps) in spec.params.iter().enumerate() {
                let d = seed_of(
                    &|s: &Seed| matches!(s, Seed::Param { pop: sp, name } if *sp == pop.name && name == ps.name),
                );
                if let Some(d) = d {
                    for i in 0..pop.n {
                        let v = p[i * np + j];
                        let dv = if base[j] != 0.0 { v / base[j] } else { 1.0 };
                        pt[i * np + j] = T::seeded(v, d, dv);
                    }
                }
            }
            let p = pt;
            let p_lanes = if T::DIRECTIONS == 0 && pop.n > 0 {
                let values: Vec<f64> = p.iter().map(|v| v.value()).collect();
                ParamLanes::new(&values, pop.n, np)
            } else {
                ParamLanes::default()
            };
            let mut x = vec![T::zero(); pop.n * nv];
            let mut inv_c = vec![T::zero(); pop.n];
            let init = subseed(c.seed, tag::INIT, k as u64);
            for i in 0..pop.n {
                let xi = &mut x[i * nv..(i + 1) * nv];
                let pi = &p[i * np..(i + 1) * np];
                dynamics.rest(pi, xi);
                inv_c[i] = dynamics.input_gain(pi, xi);
                if pop.v_spread_mv > 0.0 {
                    let u: f64 = stream(init, 0, i).random();
                    xi[V] = xi[V] + T::of(pop.v_spread_mv * (2.0 * u - 1.0));
                }
            }
            let x = if pop.n > 0 {
                to_blocks(&x, pop.n, nv)
            } else {
                x
            };
            let seeded = |want: &dyn Fn(&Seed) -> bool, value: f64| match seed_of(want) {
                Some(d) => T::seeded(value, d, 1.0),
                None => T::of(value),
            };
            let ou_mu = seeded(
                &|s: &Seed| matches!(s, Seed::OuMu { pop: sp } if *sp == pop.name),
                pop.ou.map_or(0.0, |o| o.mu),
            );
            let current = seeded(
                &|s: &Seed| matches!(s, Seed::Current { pop: sp } if *sp == pop.name),
                pop.current,
            );
            let ou_seed = subseed(c.seed, tag::OU, k as u64);
            let ou_i = match &pop.ou {
                // Start in the stationary distribution.
                Some(ou) => (0..pop.n)
                    .map(|i| ou_mu + T::of(ou.sigma * normal(&mut stream(ou_seed, u64::MAX, i))))
                    .collect(),
                None => vec![T::zero(); pop.n],
            };
            pops.push(Pop {
                name: pop.name.clone(),
                n: pop.n,
                offset,
                dynamics,
                nv,
                x,
                p,
                p_lanes,
                inv_c,
                current: vec![current; pop.n],
                ou: pop.ou,
                ou_mu,
                ou_i,
                ou_seed,
                drive: vec![T::zero(); pop.n],
                g: vec![T::zero(); pop.n],
                ge: vec![T::zero(); pop.n],
                spiked: Vec::new(),
                spikes: Vec::new(),
            });
            offset += pop.n;
        }
        let mut projs = Vec::with_capacity(c.projections.len());
        for (k, pr) in c.projections.iter().enumerate() {
            let pre = c.population_index(&pr.pre).expect("validated");
            let post = c.population_index(&pr.post).expect("validated");
            let (n_pre, n_post) = (c.populations[pre].n, c.populations[post].n);
            let delay = c.delay_steps(pr).max(1);
            let scale =
                match seed_of(&|s: &Seed| matches!(s, Seed::Weight { index } if *index == k)) {
                    Some(d) if pr.weight != 0.0 => T::seeded(1.0, d, 1.0 / pr.weight),
                    Some(_) => {
                        return Err(Error::param(
                            format!("w:{}->{}", pr.pre, pr.post),
                            "cannot differentiate with respect to a mean weight of 0 (every \
                         weight is proportional to it); start from a small positive weight",
                        ))
                    }
                    None => T::one(),
                };
            projs.push(Proj {
                pre,
                post,
                syn: Synapses::generate(pr, k, c.seed, n_pre, n_post),
                delay,
                decay: (-c.dt_ms / pr.tau_decay_ms).exp(),
                e_rev: pr.e_rev_mv,
                scale,
                ring: vec![T::zero(); (delay + 1) * n_post],
                g: vec![T::zero(); n_post],
            });
        }
        let dbs = c.dbs.as_ref().map(|d| {
            (
                c.population_index(&d.population).expect("validated"),
                d.clone(),
            )
        });
        let dbs_amp = match seed_of(&|s: &Seed| matches!(s, Seed::DbsAmplitude)) {
            Some(d) => T::seeded(c.dbs.as_ref().map_or(0.0, |d| d.amplitude), d, 1.0),
            None => T::of(c.dbs.as_ref().map_or(0.0, |d| d.amplitude)),
        };
        let inputs = c
            .inputs
            .iter()
            .map(|i| i.load(c))
            .collect::<Result<Vec<_>>>()?;
        for (d, s) in seeds.iter().enumerate() {
            if let Seed::Param { pop, .. } | Seed::Current { pop } | Seed::OuMu { pop } = s {
                if c.population_index(pop).is_none() {
                    return Err(Error::param(
                        format!("seeds[{d}]"),
                        format!("no population `{pop}`"),
                    ));
                }
            }
        }
        Ok(Self {
            dt: c.dt_ms,
            step: 0,
            pops,
            projs,
            dbs,
            dbs_amp,
            inputs,
            surrogate,
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
        let t = std::mem::size_of::<T>();
        self.projs
            .iter()
            .map(|p| p.syn.bytes() + p.ring.len() * t + p.g.len() * t)
            .sum()
    }

    /// The conductance of projection `k` onto postsynaptic neuron `j` now (at the end of the
    /// last step; the value the next step starts from before its arrivals).
    pub fn conductance(&self, k: usize, j: usize) -> T {
        self.projs[k].g[j]
    }

    /// The state of neuron `i` of population `k` (its variables in the neuron's order).
    pub fn state(&self, k: usize, i: usize) -> Vec<T> {
        let p = &self.pops[k];
        (0..p.nv).map(|v| p.var(i, v)).collect()
    }

    /// The membrane potential of neuron `i` of population `k`.
    pub fn voltage(&self, k: usize, i: usize) -> T {
        self.pops[k].var(i, V)
    }

    /// The membrane potential of every neuron of population `k`, in order.
    pub fn voltages(&self, k: usize) -> impl Iterator<Item = T> + '_ {
        let p = &self.pops[k];
        (0..p.n).map(move |i| p.var(i, V))
    }

    /// The neurons of population `k` that spiked in the last step.
    pub fn spiked(&self, k: usize) -> &[u32] {
        &self.pops[k].spiked
    }

    /// Their spikes, in the same order: 1 in value, with the derivative of the module
    /// documentation (their sum is a differentiable spike count).
    pub fn spikes(&self, k: usize) -> &[T] {
        &self.pops[k].spikes
    }

    /// Replaces the constant current of each neuron of population `k` (one value per neuron).
    ///
    /// # Panics
    /// If `values` does not have one value per neuron.
    pub fn set_current(&mut self, k: usize, values: &[f64]) {
        assert_eq!(values.len(), self.pops[k].n, "one current per neuron");
        for (c, &v) in self.pops[k].current.iter_mut().zip(values) {
            *c = T::of(v);
        }
    }

    /// Advances the circuit by one step (see the module documentation).
    ///
    /// # Errors
    /// A non-finite membrane potential, naming the population, neuron and time.
    pub fn step(&mut self) -> Result<()> {
        let s = self.step;
        let t = s as f64 * self.dt;
        for pop in &mut self.pops {
            pop.g.fill(T::zero());
            pop.ge.fill(T::zero());
        }
        for pr in &mut self.projs {
            let n = pr.g.len();
            let slot = (s % (pr.delay as u64 + 1)) as usize;
            let row = &mut pr.ring[slot * n..(slot + 1) * n];
            let post = &mut self.pops[pr.post];
            let (decay, e_rev) = (T::of(pr.decay), T::of(pr.e_rev));
            for (((gj, arrival), total), ge) in
                pr.g.iter_mut()
                    .zip(row.iter_mut())
                    .zip(post.g.iter_mut())
                    .zip(post.ge.iter_mut())
            {
                let g = *gj * decay + *arrival;
                *arrival = T::zero();
                *gj = g;
                *total = *total + g;
                *ge = *ge + g * e_rev;
            }
        }
        for (k, pop) in self.pops.iter_mut().enumerate() {
            let dbs = match &self.dbs {
                Some((target, d)) if *target == k && d.pulse(t) => self.dbs_amp,
                _ => T::zero(),
            };
            for ((d, &c), &o) in pop.drive.iter_mut().zip(&pop.current).zip(&pop.ou_i) {
                *d = c + o + dbs;
            }
            for input in self.inputs.iter().filter(|i| i.pop == k) {
                match input.row(t) {
                    Some(&[v]) => pop.drive.iter_mut().for_each(|d| *d = *d + T::of(v)),
                    Some(row) => {
                        for (d, &v) in pop.drive.iter_mut().zip(row) {
                            *d = *d + T::of(v);
                        }
                    }
                    None => {}
                }
            }
            pop.spiked.clear();
            pop.spikes.clear();
            let inputs = StepInputs {
                x: &mut pop.x,
                p: &pop.p,
                p_lanes: &pop.p_lanes,
                drive: &pop.drive,
                g: &pop.g,
                ge: &pop.ge,
                inv_c: &pop.inv_c,
                dt: self.dt,
                spiked: &mut pop.spiked,
                spikes: &mut pop.spikes,
                surrogate: self.surrogate,
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
                let (mu, et) = (pop.ou_mu, T::of(e));
                for v in &mut pop.ou_i {
                    *v = mu + (*v - mu) * et + T::of(amp * normal(&mut rng));
                }
            }
        }
        for pr in &mut self.projs {
            let n = pr.g.len();
            let slot = ((s + 1 + pr.delay as u64) % (pr.delay as u64 + 1)) as usize;
            let row = &mut pr.ring[slot * n..(slot + 1) * n];
            let pre = &self.pops[pr.pre];
            for (&i, &spike) in pre.spiked.iter().zip(&pre.spikes) {
                let (targets, weights) = pr.syn.row(i as usize);
                if T::DIRECTIONS == 0 {
                    // f64: the spike is 1 and the scale 1 (the weights exactly as stored).
                    for (&j, &w) in targets.iter().zip(weights) {
                        let r = &mut row[j as usize];
                        *r = *r + T::of(w as f64);
                    }
                } else {
                    let a = spike * pr.scale;
                    for (&j, &w) in targets.iter().zip(weights) {
                        let r = &mut row[j as usize];
                        *r = *r + a * T::of(w as f64);
                    }
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
        // state, parameters (twice: per neuron, and in blocks for the lanes step) and
        // per-neuron buffers (≤ 8 + 2 × 32 + 8 values of 8 bytes)
        other += 8.0 * 80.0 * pop.n as f64;
    }
    (syn + other) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps `n` neurons of one model by [`advance`], by the portable lanes body and by
    /// [`advance_lanes`] (AVX2 where the processor has it) from the same varied states and
    /// inputs, and requires the same bits and the same spikes.
    struct Check;

    impl NeuronVisitor for Check {
        type Output = usize;
        fn visit<N: Neuron>(self, model: N) -> usize {
            let n = 7; // not a multiple of LANES: the padded group is exercised
            let nv = N::SPEC.n_vars();
            let defaults: Vec<f64> = N::SPEC.params.iter().map(|p| p.default).collect();
            // The first parameter varies slightly between neurons (stored per block), the
            // others are the same in every neuron (splatted): both paths of `ParamLanes`.
            let p: Vec<f64> = (0..n)
                .flat_map(|j| {
                    let mut d = defaults.clone();
                    d[0] *= 1.0 + 0.002 * j as f64;
                    d
                })
                .collect();
            let mut x0 = vec![0.0; n * nv];
            for j in 0..n {
                model.rest(
                    &p[j * defaults.len()..(j + 1) * defaults.len()],
                    &mut x0[j * nv..(j + 1) * nv],
                );
                x0[j * nv + V] += 3.0 * j as f64;
            }
            let inv_c: Vec<f64> = (0..n)
                .map(|j| {
                    let (pj, xj) = (
                        &p[j * defaults.len()..(j + 1) * defaults.len()],
                        &x0[j * nv..(j + 1) * nv],
                    );
                    let (mut f0, mut f1) = ([0.0; MAX_VARS], [0.0; MAX_VARS]);
                    model.drift(xj, 0.0, pj, &mut f0[..nv]);
                    model.drift(xj, 1.0, pj, &mut f1[..nv]);
                    f1[V] - f0[V]
                })
                .collect();
            let x0 = to_blocks(&x0, n, nv);
            let p_lanes = ParamLanes::new(&p, n, defaults.len());
            let (mut xa, mut xb, mut xc) = (x0.clone(), x0.clone(), x0);
            let mut spikes = 0;
            for step in 0..4000 {
                let t = step as f64;
                // Around 1 nA (point neurons; AdEx's default rheobase is about 0.55 nA) or
                // 15 µA/cm² (membrane patches), swaying by half.
                let amp = if N::SPEC.input.unit == "pA" {
                    1000.0
                } else {
                    15.0
                };
                let drive: Vec<f64> = (0..n)
                    .map(|j| amp * (1.0 + 0.5 * (0.01 * t + j as f64).sin()))
                    .collect();
                let g: Vec<f64> = (0..n)
                    .map(|j| 0.01 * (1.0 + (0.003 * t * (j + 1) as f64).cos()))
                    .collect();
                let ge: Vec<f64> = g.iter().map(|g| g * -20.0).collect();
                let mut out = Vec::new();
                for (which, x) in [&mut xa, &mut xb, &mut xc].into_iter().enumerate() {
                    let (mut spiked, mut sp) = (Vec::new(), Vec::new());
                    let s = StepInputs {
                        x,
                        p: &p,
                        p_lanes: &p_lanes,
                        drive: &drive,
                        g: &g,
                        ge: &ge,
                        inv_c: &inv_c,
                        dt: 0.025,
                        spiked: &mut spiked,
                        spikes: &mut sp,
                        surrogate: false,
                    };
                    match which {
                        0 => advance(&model, s).unwrap(),
                        1 => advance_lanes_body(&model, s).unwrap(),
                        _ => advance_lanes(&model, s).unwrap(),
                    }
                    out.push((spiked, sp));
                }
                assert_eq!(out[0], out[1], "{} step {step}", N::SPEC.name);
                assert_eq!(out[0], out[2], "{} step {step}", N::SPEC.name);
                spikes += out[0].0.len();
                for (j, k) in (0..n).flat_map(|j| (0..nv).map(move |k| (j, k))) {
                    let at = state_index(nv, j, k);
                    let (a, b, c) = (xa[at], xb[at], xc[at]);
                    assert_eq!(a.to_bits(), b.to_bits(), "{} step {step}", N::SPEC.name);
                    assert_eq!(a.to_bits(), c.to_bits(), "{} step {step}", N::SPEC.name);
                }
            }
            spikes
        }
    }

    #[test]
    fn blocked_state_holds_every_neuron_and_variable_once() {
        let (n, nv) = (7, 3);
        let a: Vec<usize> = (0..n * nv).collect();
        let b = to_blocks(&a, n, nv);
        assert_eq!(b.len(), 2 * nv * LANES);
        for i in 0..n {
            for k in 0..nv {
                assert_eq!(b[state_index(nv, i, k)], i * nv + k);
            }
        }
        // Padding repeats the last neuron.
        assert_eq!(b[state_index(nv, 7, 2)], 6 * nv + 2);
        // Parameters: the middle one is the same in every neuron (splatted once), the others
        // vary (stored per block).
        let p: Vec<f64> = (0..n)
            .flat_map(|i| [(3 * i) as f64, 0.5, (3 * i + 2) as f64])
            .collect();
        let pl = ParamLanes::new(&p, n, 3);
        assert_eq!(pl.varied, vec![0, 2]);
        assert_eq!(pl.uniform.len(), 3);
        assert_eq!(pl.uniform[1].0, [0.5; LANES]);
        assert_eq!(pl.blocks.len(), 2 * 2);
        assert_eq!(pl.blocks[1].0, [2.0, 5.0, 8.0, 11.0]);
        assert_eq!(pl.blocks[2].0, [12.0, 15.0, 18.0, 18.0]);
        // -0.0 and 0.0 are different parameters.
        let pz = ParamLanes::new(&[0.0, -0.0], 2, 1);
        assert_eq!(pz.varied, vec![0]);
        // Too many parameters: empty, so the population takes the scalar step.
        let wide = vec![1.0; MAX_PARAMS + 1];
        assert_eq!(
            ParamLanes::new(&wide, 1, MAX_PARAMS + 1),
            ParamLanes::default()
        );
    }

    #[test]
    fn lanes_step_every_neuron_model_as_the_scalar_step_bit_for_bit() {
        for spec in neuron::catalogue() {
            let spikes = neuron::visit(spec.name, Check).unwrap();
            // The inputs must make the neurons fire, or resets would go unchecked.
            assert!(spikes > 0, "{}: no spikes", spec.name);
        }
    }
}
