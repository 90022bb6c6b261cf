//! Differentiable objectives of a circuit and their gradients with respect to a few parameters,
//! by forward-mode dual numbers through the spiking engine ([`Engine::with_seeds`]).
//!
//! Forward mode carries one derivative direction per parameter ([`Seed`]) beside every value:
//! a run costs about `1 + P` plain runs for `P` parameters (dual numbers of 2, 4 or 8
//! directions, the smallest that holds them), and its memory does not grow with the number of
//! steps (nothing is stored for a backward pass). It suits what a circuit is tuned by: a handful
//! of weights, drives and conductances.
//!
//! ## The objective
//! Over a window `[start, stop)` (ms) of a run of `stop` ms:
//! - the **rate** of population `k`, `r_k = Σ spikes / (n_k · (stop − start))` in Hz, the
//!   spikes summed as the engine's spike values (1 each, with their derivative);
//! - the **beta power** of population `k`, `P_k` in mV²: the LFP proxy (the population's mean
//!   `V`, sampled every [`LFP_EVERY_MS`]) minus its mean, times a Hann window, its one-sided
//!   periodogram `2 |X_m|² / (f_s Σ w_n²)` summed over the frequencies `13 ≤ f_m ≤ 30` Hz times
//!   the frequency step `f_s / M` (a single-segment estimate of the band power; `neurodiff
//!   circuit` reports Welch's average over segments, which estimates the same quantity with
//!   less variance);
//! - the loss `L = Σ_rates ((r_k − r*_k) / r*_k)² + Σ_beta (ln P_k − ln P*_k)²` (relative
//!   errors: rates in Hz and powers spanning decades weigh alike).
//!
//! ## Which derivative
//! With `surrogate = false` the derivative holds every spike at its step: it is the limit of
//! central finite differences with small steps (the run is smooth between the parameter values
//! where a spike moves to another step), so rates, which only change by whole spikes, have
//! derivative 0 and the beta power has the derivative of its sub-threshold and synaptic
//! pathways. With `surrogate = true` each spike that happened also carries the fast-sigmoid
//! derivative of the threshold crossing into its synaptic events and the spike counts (see
//! [`super::engine`]), which gives rates a gradient: the usual surrogate-gradient estimate of
//! how the spike count responds, biased but informative where finite differences see steps.

use super::circuit::Circuit;
use super::engine::{Engine, Seed, SpikeNum};
use crate::error::{Error, Result};
use crate::fused::dual::Dual;
use neurodiff_models::Real;

/// Sampling interval of the LFP proxy for the beta power, ms (1 kHz).
pub const LFP_EVERY_MS: f64 = 1.0;

/// The beta band, Hz.
pub const BETA_HZ: (f64, f64) = (13.0, 30.0);

/// What a circuit is tuned towards (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// The window the rates and spectra are measured over, `[start, stop)` ms; the run lasts
    /// `stop` ms.
    pub window_ms: (f64, f64),
    /// Target rates, Hz, by population index.
    pub rates: Vec<(usize, f64)>,
    /// Target beta power, mV², by population index.
    pub beta: Vec<(usize, f64)>,
}

/// A value of the objective and its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The loss.
    pub loss: f64,
    /// `∂L/∂θ_d` for each seed, in the seeds' order (empty for a plain run).
    pub grad: Vec<f64>,
    /// Rate of each population, Hz, over the window.
    pub rates_hz: Vec<f64>,
    /// Beta power of each population, mV².
    pub beta_mv2: Vec<f64>,
    /// The spikes of the run, `(global neuron id, step)`, in order.
    pub spikes: Vec<(u32, u64)>,
}

/// The objective and its gradient with respect to `seeds` (at most 8).
///
/// # Errors
/// As [`Engine::with_seeds`]; a bad objective (window, population index, target);
/// a diverging run.
pub fn evaluate(
    c: &Circuit,
    seeds: &[Seed],
    obj: &Objective,
    surrogate: bool,
) -> Result<Evaluation> {
    match seeds.len() {
        0 => evaluate_in::<f64>(c, seeds, obj, surrogate),
        1..=2 => evaluate_in::<Dual<f64, 2>>(c, seeds, obj, surrogate),
        3..=4 => evaluate_in::<Dual<f64, 4>>(c, seeds, obj, surrogate),
        5..=8 => evaluate_in::<Dual<f64, 8>>(c, seeds, obj, surrogate),
        n => Err(Error::setting(
            "seeds",
            format!("{n} parameters: forward mode here carries at most 8 (fit fewer at a time)"),
        )),
    }
}

pub(crate) fn check(c: &Circuit, obj: &Objective) -> Result<()> {
    let (a, b) = obj.window_ms;
    if !(a >= 0.0 && b > a && a.is_finite() && b.is_finite()) {
        return Err(Error::setting(
            "objective.window_ms",
            format!("[{a}, {b}) must satisfy 0 <= start < stop"),
        ));
    }
    let n_pop = c.populations.len();
    for (what, list) in [("rates", &obj.rates), ("beta", &obj.beta)] {
        for &(k, target) in list {
            if k >= n_pop {
                return Err(Error::setting(
                    format!("objective.{what}"),
                    format!("population index {k}, but the circuit has {n_pop}"),
                ));
            }
            if !(target > 0.0 && target.is_finite()) {
                return Err(Error::setting(
                    format!("objective.{what}.{}", c.populations[k].name),
                    format!("target {target} must be positive and finite"),
                ));
            }
        }
    }
    if !obj.beta.is_empty() {
        let samples = ((b - a) / LFP_EVERY_MS).floor();
        if samples * LFP_EVERY_MS < 1000.0 / BETA_HZ.0 * 2.0 {
            return Err(Error::setting(
                "objective.window_ms",
                format!(
                    "a beta-power target needs a window of at least {} ms (two cycles at \
                     {} Hz), got {} ms",
                    2000.0 / BETA_HZ.0,
                    BETA_HZ.0,
                    b - a
                ),
            ));
        }
    }
    Ok(())
}

/// [`evaluate`] in a chosen number type (`f64` for a plain run).
pub fn evaluate_in<T: SpikeNum>(
    c: &Circuit,
    seeds: &[Seed],
    obj: &Objective,
    surrogate: bool,
) -> Result<Evaluation> {
    check(c, obj)?;
    let mut e = Engine::<T>::with_seeds(c, seeds, surrogate)?;
    let dt = e.dt();
    let w = Window::new(obj, dt);
    let n_pop = e.n_populations();
    let mut counts = vec![T::zero(); n_pop];
    let mut lfp: Vec<Vec<T>> = vec![Vec::new(); n_pop];
    let mut spikes = Vec::new();
    for s in 0..w.stop {
        e.step()?;
        for (k, count) in counts.iter_mut().enumerate() {
            let off = e.population(k).2 as u32;
            spikes.extend(e.spiked(k).iter().map(|&i| (off + i, s)));
            if s >= w.start {
                for &sp in e.spikes(k) {
                    *count = *count + sp;
                }
            }
        }
        if w.samples(s) {
            for (k, l) in lfp.iter_mut().enumerate() {
                let n = T::of(e.population(k).1 as f64);
                let sum = e.voltages(k).fold(T::zero(), |a, v| a + v);
                l.push(sum / n);
            }
        }
    }
    let sizes: Vec<usize> = (0..n_pop).map(|k| e.population(k).1).collect();
    let (loss, rates, beta) = objective(obj, &w, &sizes, &counts, &lfp);
    for &(k, _) in &obj.beta {
        no_beta_power(c, k, beta[k].value())?;
    }
    Ok(Evaluation {
        loss: loss.value(),
        grad: (0..seeds.len()).map(|d| loss.tangent(d)).collect(),
        rates_hz: rates.iter().map(|r| r.value()).collect(),
        beta_mv2: beta.iter().map(|b| b.value()).collect(),
        spikes,
    })
}

/// The steps of an objective's window: the run lasts `stop` steps, spikes count from step
/// `start`, and the LFP is sampled at steps `start + j every` (`j = 0, 1, …`).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// First step of the window.
    pub start: u64,
    /// Steps of the run (the window ends there).
    pub stop: u64,
    /// Steps between LFP samples ([`LFP_EVERY_MS`]).
    pub every: u64,
    /// Step, ms.
    pub dt: f64,
}

impl Window {
    /// The window of `obj` at step `dt` ms (checked by the callers).
    pub fn new(obj: &Objective, dt: f64) -> Self {
        let start = (obj.window_ms.0 / dt).round() as u64;
        let stop = ((obj.window_ms.1 / dt).round() as u64).max(start + 1);
        let every = ((LFP_EVERY_MS / dt).round() as u64).max(1);
        Self {
            start,
            stop,
            every,
            dt,
        }
    }

    /// Whether the LFP is sampled after step `s` (0-based).
    pub fn samples(&self, s: u64) -> bool {
        s >= self.start && s < self.stop && (s - self.start).is_multiple_of(self.every)
    }
}

/// The objective from what a run observed over the window, in any number type (`f64`, dual
/// numbers, or [`Tx`](neurodiff_models::real::Tx) tensor expressions holding one value per
/// batch element): per population its spike count over the window (`counts`) and its LFP
/// samples (`lfp`, mV; needed only for the populations with a beta target), `sizes` its neuron
/// counts. Returns the loss, the rates (Hz) and the beta powers (mV², 0 where not asked for)
/// of the module documentation: the one definition every engine's gradient differentiates.
pub fn objective<R: Real>(
    obj: &Objective,
    w: &Window,
    sizes: &[usize],
    counts: &[R],
    lfp: &[Vec<R>],
) -> (R, Vec<R>, Vec<R>) {
    let window_s = (w.stop - w.start) as f64 * w.dt / 1000.0;
    let rates: Vec<R> = counts
        .iter()
        .zip(sizes)
        .map(|(&c, &n)| c / R::cst(n as f64 * window_s))
        .collect();
    let fs = 1000.0 / (w.every as f64 * w.dt);
    let mut beta = vec![R::cst(0.0); counts.len()];
    for &(k, _) in &obj.beta {
        beta[k] = band_power(&lfp[k], fs, BETA_HZ);
    }
    let mut loss = R::cst(0.0);
    for &(k, target) in &obj.rates {
        let r = (rates[k] - R::cst(target)) / R::cst(target);
        loss = loss + r * r;
    }
    for &(k, target) in &obj.beta {
        let r = beta[k].ln() - R::cst(target.ln());
        loss = loss + r * r;
    }
    (loss, rates, beta)
}

/// The error for a population whose beta power is not positive (its logarithm is the loss).
pub(crate) fn no_beta_power(c: &Circuit, k: usize, power: f64) -> Result<()> {
    if power > 0.0 {
        return Ok(());
    }
    Err(Error::setting(
        format!("objective.beta.{}", c.populations[k].name),
        "the population's LFP has no power in the beta band (a constant LFP?)",
    ))
}

/// Band power (units of `x`²) of a series sampled at `fs` Hz: a Hann window over the
/// mean-removed series, its one-sided periodogram summed over the frequencies in `band`
/// (inclusive) times the frequency step (see the module documentation). A direct DFT at the
/// band's frequencies only, in any [`Real`] (so dual numbers and tensors carry its derivative).
pub fn band_power<R: Real>(x: &[R], fs: f64, band: (f64, f64)) -> R {
    let m = x.len();
    if m < 2 {
        return R::cst(0.0);
    }
    let mean = x.iter().skip(1).fold(x[0], |a, &v| a + v) / R::cst(m as f64);
    let w: Vec<f64> = (0..m)
        .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / m as f64).cos())
        .collect();
    let w2: f64 = w.iter().map(|v| v * v).sum();
    let df = fs / m as f64;
    let mut total = R::cst(0.0);
    let (lo, hi) = (
        (band.0 / df).ceil() as usize,
        (band.1 / df).floor() as usize,
    );
    for f in lo.max(1)..=hi.min((m - 1) / 2) {
        let (mut re, mut im) = (R::cst(0.0), R::cst(0.0));
        let step = -2.0 * std::f64::consts::PI * f as f64 / m as f64;
        for n in 0..m {
            let xn = (x[n] - mean) * R::cst(w[n]);
            let ph = step * n as f64;
            re = re + xn * R::cst(ph.cos());
            im = im + xn * R::cst(ph.sin());
        }
        total = total + (re * re + im * im) * R::cst(2.0 / (fs * w2) * df);
    }
    total
}
