//! Tuning a circuit by gradient descent: a few parameters ([`Seed`]s) within bounds, towards
//! targets on population rates and beta power ([`Objective`]), with an optimiser of
//! `neurodiff-optim` (Adam or Polyak's normalised step) and a gradient ([`Gradient`]) by
//! central finite differences with common random numbers (the default) or by the forward-mode
//! dual numbers of [`super::grad`].
//!
//! **Why finite differences by default.** In a recurrent circuit the derivatives of a spiking
//! run grow with its chaos: the STN–GPe loop moves a spike after ~3,200 steps for a relative
//! change of 1e-6 in a current (the held-spike derivative of a long window is then not the
//! slope of the objective), and surrogate spikes carry every AdEx upswing's derivative (which
//! the exponential term multiplies by up to e^((V_peak − V_T)/Δ_T)) into their targets.
//! Measured on the default circuit at 100–200–150 neurons, 400 ms window: surrogate
//! d(GPe rate)/d(GPe current) between −4.7e5 and +2.2e3 Hz/pA from one iteration to the next,
//! where differences of runs give ~1 Hz/pA. Differences over a step of 2 % of the bounds, with
//! the same seed at every point, measure the slope of the rates and beta power over many
//! spikes; their cost is `2P` runs, run in parallel. Dual numbers remain the exact derivative
//! of feed-forward and short runs ([`super::grad`] tests them against differences).
//!
//! Each parameter `θ ∈ (lo, hi)` is optimised as `z = ln(θ − lo) − ln(hi − θ)` (the inverse
//! sigmoid, [`Bounds`]), so every step stays inside the bounds and `∂L/∂z = ∂L/∂θ · (θ − lo)
//! (hi − θ) / (hi − lo)`. Every evaluation runs the same circuit with the same seed (the same
//! connectivity and noise: common random numbers), so the loss is a deterministic function of
//! the parameters and successive losses are comparable.

use burn::backend::NdArray;
use burn::prelude::{Tensor, TensorData};
use neurodiff_optim::{Adam, AdamConfig, Bounds, Polyak};

use super::circuit::Circuit;
use super::engine::Seed;
use super::grad::{evaluate, evaluate_in, Evaluation, Objective};
use crate::error::{Error, Result};

/// The optimiser of a circuit fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// Adam with this learning rate (in the unbounded coordinates `z`).
    Adam {
        /// Step size.
        lr: f64,
    },
    /// Polyak-style normalised gradient descent `z ← z − γ ∇L / ‖∇L‖^β`.
    Polyak {
        /// `γ`.
        gamma: f64,
        /// `β`, in `[0.8, 0.99]`.
        beta: f64,
    },
}

/// One parameter to fit: what, and the open interval it is kept in.
#[derive(Debug, Clone, PartialEq)]
pub struct FitParam {
    /// The parameter.
    pub seed: Seed,
    /// Its bounds, in its unit.
    pub bounds: Bounds,
}

impl FitParam {
    /// Parses `KEY=LO..HI` (e.g. `gpe.current=-20..60`, `w:gpe->stn=0.001..0.05`), checking the
    /// key against `c` and the bounds against what the parameter admits (a neuron parameter's
    /// spec bounds, non-negative weights and DBS amplitude).
    ///
    /// # Errors
    /// A malformed text, an unknown parameter, bounds outside the admissible range.
    pub fn parse(text: &str, c: &Circuit) -> Result<Self> {
        let (key, range) = text.split_once('=').ok_or_else(|| {
            Error::setting(
                "fit",
                format!("`{text}`: expected KEY=LO..HI, e.g. gpe.current=-20..60"),
            )
        })?;
        let seed = Seed::parse(key, c)?;
        let (lo, hi) = range.split_once("..").ok_or_else(|| {
            Error::setting(
                "fit",
                format!("`{text}`: the bounds must read LO..HI, e.g. 0.001..0.05"),
            )
        })?;
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| Error::setting("fit", format!("`{text}`: `{s}` is not a number")))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        let bounds = Bounds::new(lo, hi).map_err(|e| Error::param(key.trim(), e.to_string()))?;
        let (min, max) = admissible(&seed, c)?;
        if lo < min || hi > max {
            return Err(Error::param(
                key.trim(),
                format!("bounds [{lo}, {hi}] leave the admissible range [{min}, {max}]"),
            ));
        }
        Ok(Self { seed, bounds })
    }
}

/// The range a parameter admits at all.
fn admissible(seed: &Seed, c: &Circuit) -> Result<(f64, f64)> {
    Ok(match seed {
        Seed::Param { pop, name } => {
            let k = c
                .population_index(pop)
                .ok_or_else(|| Error::param(seed.key(c), "no such population"))?;
            let spec = c.spec(k)?;
            let j = spec
                .param_index(name)
                .ok_or_else(|| Error::param(seed.key(c), "no such parameter"))?;
            (spec.params[j].lower, spec.params[j].upper)
        }
        Seed::Weight { .. } | Seed::DbsAmplitude => (0.0, f64::INFINITY),
        Seed::Current { .. } | Seed::OuMu { .. } => (f64::NEG_INFINITY, f64::INFINITY),
    })
}

/// What a fit does.
#[derive(Debug, Clone, PartialEq)]
pub struct FitSettings {
    /// The parameters (at most 8: forward mode).
    pub params: Vec<FitParam>,
    /// The targets and window.
    pub objective: Objective,
    /// Optimiser steps (the loss is evaluated `iterations + 1` times).
    pub iterations: usize,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// How the gradient is computed.
    pub gradient: Gradient,
}

/// How [`fit`] computes the gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gradient {
    /// Central finite differences with common random numbers (the same seed: the same
    /// connectivity, heterogeneity and noise at every point), `θ ± h` with `h` this fraction
    /// of the bounds' width (less near a bound); `2P` extra runs per step, run in parallel on
    /// the machine's cores. Robust in recurrent circuits, where forward-mode derivatives of
    /// spiking runs grow with the circuit's chaos (see the module documentation).
    FiniteDifference {
        /// `h / (upper − lower)`.
        step: f64,
    },
    /// Forward-mode dual numbers ([`evaluate`]); `surrogate` as there.
    Dual {
        /// Surrogate spike derivatives (else spikes held at their steps).
        surrogate: bool,
    },
}

/// One evaluation of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitRow {
    /// 0 for the starting point.
    pub iteration: usize,
    /// The parameters' values, in the settings' order.
    pub values: Vec<f64>,
    /// The evaluation there.
    pub eval: Evaluation,
}

/// The outcome of [`fit`].
#[derive(Debug, Clone)]
pub struct FitOutcome {
    /// Every evaluation, in order.
    pub history: Vec<FitRow>,
    /// Index into `history` of the lowest loss.
    pub best: usize,
    /// The circuit with the best parameters.
    pub circuit: Circuit,
}

/// Fits `settings.params` of `c` from their values in `c` (which must lie inside their
/// bounds). `on_row` sees each evaluation as it is made (progress).
///
/// # Errors
/// A starting value outside its bounds, more than 8 parameters, a bad optimiser setting, and
/// everything [`evaluate`] reports.
pub fn fit(
    c: &Circuit,
    settings: &FitSettings,
    on_row: &mut dyn FnMut(&FitRow),
) -> Result<FitOutcome> {
    let ps = &settings.params;
    if ps.is_empty() {
        return Err(Error::setting("fit", "no parameter to fit"));
    }
    if ps.len() > 8 {
        return Err(Error::setting(
            "fit",
            format!(
                "{} parameters: at most 8 at a time (forward mode)",
                ps.len()
            ),
        ));
    }
    for (i, a) in ps.iter().enumerate() {
        if ps[..i].iter().any(|b| b.seed == a.seed) {
            return Err(Error::param(a.seed.key(c), "listed twice"));
        }
    }
    let mut theta = Vec::with_capacity(ps.len());
    for p in ps {
        let v = p.seed.value(c)?;
        p.bounds
            .check(&p.seed.key(c), v)
            .map_err(|e| Error::param(p.seed.key(c), format!("starting value: {e}")))?;
        theta.push(v);
    }
    let seeds: Vec<Seed> = ps.iter().map(|p| p.seed.clone()).collect();
    let dev = Default::default();
    type B = NdArray<f64>;
    let row = |z: &[f64]| -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(z.to_vec(), [1, z.len()]),
            crate::float_opts::<B>(&dev),
        )
    };
    let host = |t: &Tensor<B, 2>| -> Vec<f64> {
        t.to_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .unwrap_or_default()
    };
    enum Opt {
        Adam(Adam, neurodiff_optim::AdamState<B, 2>),
        Polyak(Polyak),
    }
    let mut z: Vec<f64> = ps
        .iter()
        .zip(&theta)
        .map(|(p, &v)| p.bounds.to_unbounded_f64(v))
        .collect();
    let mut opt = match settings.optimizer {
        Optimizer::Adam { lr } => {
            let a = Adam::new(AdamConfig {
                lr,
                ..AdamConfig::default()
            })
            .map_err(Error::Optim)?;
            let st = a.init(&[row(&z)]).map_err(Error::Optim)?;
            Opt::Adam(a, st)
        }
        Optimizer::Polyak { gamma, beta } => {
            Opt::Polyak(Polyak::new(gamma, vec![beta]).map_err(Error::Optim)?)
        }
    };
    let mut circuit = c.clone();
    let mut history: Vec<FitRow> = Vec::with_capacity(settings.iterations + 1);
    for it in 0..=settings.iterations {
        let values: Vec<f64> = ps
            .iter()
            .zip(&z)
            .map(|(p, &zi)| p.bounds.to_bounded_f64(zi))
            .collect();
        for (p, &v) in ps.iter().zip(&values) {
            p.seed.set(&mut circuit, v)?;
        }
        let eval = match settings.gradient {
            Gradient::Dual { surrogate } => {
                evaluate(&circuit, &seeds, &settings.objective, surrogate)?
            }
            Gradient::FiniteDifference { step } => {
                finite_difference(&circuit, ps, &values, &settings.objective, step)?
            }
        };
        if !eval.loss.is_finite() || eval.grad.iter().any(|g| !g.is_finite()) {
            return Err(Error::setting(
                "fit",
                format!(
                    "iteration {it}: the loss or its gradient is not finite (loss {}, gradient \
                     {:?}) at {}",
                    eval.loss,
                    eval.grad,
                    describe(ps, &values, c)
                ),
            ));
        }
        let r = FitRow {
            iteration: it,
            values: values.clone(),
            eval,
        };
        on_row(&r);
        history.push(r);
        if it == settings.iterations {
            break;
        }
        let last = &history[history.len() - 1];
        // ∂L/∂z = ∂L/∂θ · (θ − lo)(hi − θ)/(hi − lo).
        let gz: Vec<f64> = ps
            .iter()
            .zip(&values)
            .zip(&last.eval.grad)
            .map(|((p, &v), &g)| {
                let (lo, hi) = (p.bounds.lower(), p.bounds.upper());
                g * (v - lo) * (hi - v) / (hi - lo)
            })
            .collect();
        if gz.iter().all(|&g| g == 0.0) {
            // A flat objective: nothing moves (e.g. rate targets without surrogate spikes).
            return Err(Error::setting(
                "fit",
                format!(
                    "iteration {it}: the gradient is exactly zero at {} (rate targets with \
                     dual numbers need surrogate spikes; with finite differences, a larger \
                     --fd-step)",
                    describe(ps, &values, c)
                ),
            ));
        }
        let next = match &mut opt {
            Opt::Adam(a, st) => a.step(&[row(&z)], &[row(&gz)], st).map_err(Error::Optim)?,
            Opt::Polyak(p) => p.step(&[row(&z)], &[row(&gz)]).map_err(Error::Optim)?,
        };
        z = host(&next[0]);
    }
    let best = history
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.eval.loss.total_cmp(&b.1.eval.loss))
        .map_or(0, |(i, _)| i);
    let mut circuit = c.clone();
    for (p, &v) in ps.iter().zip(&history[best].values) {
        p.seed.set(&mut circuit, v)?;
    }
    Ok(FitOutcome {
        history,
        best,
        circuit,
    })
}

/// The objective at `values` with its gradient by central differences (see
/// [`Gradient::FiniteDifference`]); the `2P + 1` runs in parallel.
fn finite_difference(
    c: &Circuit,
    ps: &[FitParam],
    values: &[f64],
    obj: &Objective,
    step: f64,
) -> Result<Evaluation> {
    if !(step > 0.0 && step < 0.5) {
        return Err(Error::setting(
            "fd-step",
            format!("must lie in (0, 0.5), got {step}"),
        ));
    }
    // Points: the centre, then θ_d + h_d and θ_d − h_d for each d.
    let mut points = vec![c.clone()];
    let mut h = Vec::with_capacity(ps.len());
    for (p, &v) in ps.iter().zip(values) {
        let (lo, hi) = (p.bounds.lower(), p.bounds.upper());
        let hd = (step * (hi - lo)).min(0.5 * (v - lo)).min(0.5 * (hi - v));
        h.push(hd);
        for sign in [1.0, -1.0] {
            let mut cc = c.clone();
            p.seed.set(&mut cc, v + sign * hd)?;
            points.push(cc);
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(points.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Evaluation>>>> =
        points.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= points.len() {
                    break;
                }
                let r = evaluate_in::<f64>(&points[i], &[], obj, false);
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    let mut evals = Vec::with_capacity(points.len());
    for r in results {
        let r = r
            .into_inner()
            .ok()
            .flatten()
            .ok_or_else(|| Error::setting("fit", "a finite-difference run did not finish"))?;
        evals.push(r?);
    }
    let mut centre = evals[0].clone();
    centre.grad = (0..ps.len())
        .map(|d| (evals[1 + 2 * d].loss - evals[2 + 2 * d].loss) / (2.0 * h[d]))
        .collect();
    Ok(centre)
}

fn describe(ps: &[FitParam], values: &[f64], c: &Circuit) -> String {
    ps.iter()
        .zip(values)
        .map(|(p, v)| format!("{} = {v}", p.seed.key(c)))
        .collect::<Vec<_>>()
        .join(", ")
}
