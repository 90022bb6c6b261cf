//! Fitting model parameters to an empirical functional connectivity (FC) by gradient descent
//! through the simulation.
//!
//! - Free parameters have bounds `(l, u)` and are optimised in the unbounded space of the
//!   inverse-sigmoid transform `z = −log(1/((θ − l)/(u − l)) − 1)`; a parameter is either global
//!   (one value per restart) or regional (one value per region and restart).
//! - `R` restarts are fitted at once as the batch dimension, each from its own starting point
//!   drawn inside the bounds (seeded), each with its own noise stream. The noise realisation is
//!   the same at every iteration (common random numbers), so the objective is deterministic.
//! - Each iteration simulates, computes FC of the monitored signal (a neural variable, or BOLD)
//!   and the loss against the target FC, and takes the gradient by chunked checkpointing: the
//!   fused engine's hand-written adjoint ([`crate::fused`]) where it supports the run, else
//!   Burn's autodiff through the tensor engine ([`crate::grad`]); see [`GradientEngine`]. The
//!   optimiser (Polyak-normalised, its loss-annealed variant, or Adam)
//!   steps in the unbounded space.
//! - The whole state of a fit ([`FitState`]) is plain data: it can be saved after every
//!   iteration and a fit resumed from it.

use burn::prelude::{Backend, Tensor, TensorData};
use burn::tensor::backend::AutodiffBackend;
use neurodiff_optim::{fc_corr_loss, fc_mse, Adam, AdamConfig, Bounds, Polyak};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::connectome::Connectome;
use crate::error::{Error, Result};
use crate::fused::GradOptions;
use crate::network::{param_specs, NetworkConfig};
use crate::observe::fc;
use crate::params::{ParamTable, ParamValue};
use crate::problem::{value_and_grad_on, Gradient, Loss, Problem, Unsupported};
use crate::sim::Run;

/// A parameter to fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreeParam {
    /// Parameter name (a model or coupling parameter).
    pub name: String,
    /// Lower bound (exclusive).
    pub lower: f64,
    /// Upper bound (exclusive).
    pub upper: f64,
    /// One value per region (`true`) or one global value (`false`).
    pub regional: bool,
    /// Starting value (strictly inside the bounds); `None`: drawn per restart.
    pub init: Option<f64>,
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Optimizer {
    /// `z ← z − γ ∇L / ‖∇L‖^β` (per restart, `β` spread over [0.8, 0.99] across restarts);
    /// `annealed`: the step is also multiplied by the current loss.
    Polyak {
        /// Step size `γ`.
        gamma: f64,
        /// Multiply the step by the loss.
        annealed: bool,
    },
    /// Adam with learning rate `lr` (β1 = 0.9, β2 = 0.999).
    Adam {
        /// Learning rate.
        lr: f64,
    },
}

/// The loss between simulated and empirical FC (strict upper triangles).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LossKind {
    /// `1 − corr(FC_sim, FC_emp)`.
    Corr,
    /// Mean squared difference.
    Mse,
    /// `w_corr (1 − corr) + w_mse MSE`.
    Mixed {
        /// Weight of the correlation term.
        w_corr: f64,
        /// Weight of the squared-difference term.
        w_mse: f64,
    },
}

pub use crate::problem::Gradient as GradientEngine;

/// Everything that defines a fit.
#[derive(Debug, Clone)]
pub struct FitProblem {
    /// The network.
    pub network: NetworkConfig,
    /// The connectome.
    pub connectome: Connectome,
    /// The target FC, `n × n` row-major.
    pub target_fc: Vec<f64>,
    /// Values of parameters that are not fitted (others keep their defaults).
    pub fixed: Vec<(String, ParamValue)>,
    /// The parameters to fit.
    pub free: Vec<FreeParam>,
    /// The simulation; its monitor must keep one signal (one variable, or BOLD).
    pub run: Run,
    /// Steps per checkpointed chunk.
    pub chunk: usize,
    /// Number of restarts fitted at once.
    pub restarts: usize,
    /// Optimiser.
    pub optimizer: Optimizer,
    /// Loss.
    pub loss: LossKind,
    /// Seed of the starting points.
    pub seed: u64,
    /// How gradients are taken.
    pub gradient: GradientEngine,
}

/// Adam's first and second moments (per free parameter) and its step count.
pub type AdamMoments = (Vec<Vec<f64>>, Vec<Vec<f64>>, u64);

/// One row of the history: a restart's loss and FC correlation at an iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// Iteration (0-based).
    pub iteration: usize,
    /// Restart (0-based).
    pub restart: usize,
    /// Loss.
    pub loss: f64,
    /// Pearson correlation between the upper triangles of simulated and empirical FC.
    pub corr: f64,
    /// Parameter values at this iteration (free parameters, in order; regional ones averaged).
    pub params: Vec<f64>,
}

/// The best point found so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Loss.
    pub loss: f64,
    /// FC correlation.
    pub corr: f64,
    /// Iteration and restart where it was found.
    pub iteration: usize,
    /// Restart.
    pub restart: usize,
    /// Values of the free parameters (one, or one per region, each).
    pub values: Vec<Vec<f64>>,
    /// Its simulated FC, `n × n`.
    pub fc: Vec<f64>,
}

/// The complete state of a fit, enough to resume it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitState {
    /// Iterations done.
    pub iteration: usize,
    /// Unbounded values per free parameter, `restarts × size` row-major.
    pub z: Vec<Vec<f64>>,
    /// Adam's moments and step count, if Adam is used.
    pub adam: Option<AdamMoments>,
    /// History.
    pub history: Vec<HistoryRow>,
    /// Best point.
    pub best: Option<Best>,
}

impl FreeParam {
    fn size(&self, nodes: usize) -> usize {
        if self.regional {
            nodes
        } else {
            1
        }
    }

    fn bounds(&self) -> Result<Bounds> {
        Bounds::new(self.lower, self.upper).map_err(|e| Error::param(&self.name, e.to_string()))
    }
}

impl FitProblem {
    /// Why the fused adjoint cannot take this fit's gradients, or `None` if it can.
    pub fn adjoint_unsupported(&self) -> Option<Unsupported> {
        crate::problem::adjoint_unsupported(&self.network, &self.run)
            .or_else(|| self.fc_loss().adjoint_unsupported(&self.run))
    }

    /// The gradient method this fit uses: [`FitProblem::gradient`] resolved by the façade's
    /// rule ([`crate::problem::choose_gradient`]); an error if the adjoint was asked for and
    /// cannot take it.
    pub fn gradient_method(&self) -> Result<Gradient> {
        crate::problem::choose_gradient(self.gradient, self.adjoint_unsupported())
    }

    /// The fit's loss as the façade's [`Loss`].
    pub fn fc_loss(&self) -> Loss {
        Loss::Fc {
            target: self.target_fc.clone(),
            kind: self.loss,
        }
    }

    /// Checks the problem: target size and values, parameter names, bounds, starting values,
    /// the monitor.
    pub fn validate(&self) -> Result<()> {
        let n = self.connectome.n;
        if self.target_fc.len() != n * n {
            return Err(Error::setting(
                "target",
                format!(
                    "the target FC has {} entries but the connectome has {n} regions ({} \
                     expected)",
                    self.target_fc.len(),
                    n * n
                ),
            ));
        }
        if let Some(k) = self.target_fc.iter().position(|v| !v.is_finite()) {
            return Err(Error::setting(
                "target",
                format!(
                    "the target FC is not finite at row {}, column {}",
                    k / n,
                    k % n
                ),
            ));
        }
        if self.restarts == 0 {
            return Err(Error::setting("restarts", "must be at least 1"));
        }
        if self.free.is_empty() {
            return Err(Error::setting(
                "fit",
                "no parameter to fit (give at least one, e.g. --fit G=0.0,3.0)",
            ));
        }
        let spec = crate::model::find(&self.network.model)?;
        let coupling = self
            .network
            .coupling
            .unwrap_or_else(|| spec.coupling_function.into());
        let specs = crate::network::param_specs(spec, coupling);
        for f in &self.free {
            let ps = specs.iter().find(|s| s.name == f.name).ok_or_else(|| {
                Error::param(
                    &f.name,
                    format!(
                        "no such parameter; known parameters: {}",
                        specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            let b = f.bounds()?;
            if f.lower < ps.lower || f.upper > ps.upper {
                return Err(Error::param(
                    &f.name,
                    format!(
                        "fit bounds ({}, {}) exceed the admissible range [{}, {}]",
                        f.lower, f.upper, ps.lower, ps.upper
                    ),
                ));
            }
            if let Some(v) = f.init {
                // The optimiser's error already names the parameter.
                b.check(&f.name, v).map_err(Error::Optim)?;
            }
            if self.fixed.iter().any(|(n, _)| n == &f.name) {
                return Err(Error::param(
                    &f.name,
                    "given both as fixed (--param) and as free (--fit)",
                ));
            }
        }
        let kept = if self.run.monitor.bold.is_some() {
            1
        } else {
            self.run.monitor.vars.len()
        };
        if kept != 1 {
            return Err(Error::setting(
                "record",
                "a fit compares the FC of one signal: record one variable, or BOLD",
            ));
        }
        if self.run.n_samples() < 3 {
            return Err(Error::setting(
                "duration",
                "the run keeps fewer than 3 samples; FC needs a longer run",
            ));
        }
        Ok(())
    }

    /// A fresh state: starting points drawn uniformly in the central 90 % of each range (or the
    /// given starting value), for every restart.
    pub fn initial_state(&self) -> Result<FitState> {
        self.validate()?;
        let n = self.connectome.n;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let mut z = Vec::new();
        for f in &self.free {
            let b = f.bounds()?;
            let size = f.size(n);
            let mut v = Vec::with_capacity(self.restarts * size);
            for _ in 0..self.restarts {
                let theta = match f.init {
                    Some(x) => x,
                    None => f.lower + (f.upper - f.lower) * rng.random_range(0.05..0.95),
                };
                v.extend(std::iter::repeat_n(b.to_unbounded_f64(theta), size));
            }
            z.push(v);
        }
        let adam = match self.optimizer {
            Optimizer::Adam { .. } => Some((
                z.iter().map(|v| vec![0.0; v.len()]).collect(),
                z.iter().map(|v| vec![0.0; v.len()]).collect(),
                0,
            )),
            _ => None,
        };
        Ok(FitState {
            iteration: 0,
            z,
            adam,
            history: Vec::new(),
            best: None,
        })
    }

    /// The bounded values `θ` of the free parameters for state `z`.
    pub fn values(&self, z: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        self.free
            .iter()
            .zip(z)
            .map(|(f, zs)| {
                let b = f.bounds()?;
                Ok(zs.iter().map(|&v| b.to_bounded_f64(v)).collect())
            })
            .collect()
    }
}

/// What one iteration measured.
#[derive(Debug, Clone)]
pub struct IterationReport {
    /// The iteration (0-based).
    pub iteration: usize,
    /// Loss per restart.
    pub loss: Vec<f64>,
    /// FC correlation per restart.
    pub corr: Vec<f64>,
}

/// Pearson correlation of the strict upper triangles of two `n × n` matrices.
pub fn fc_corr(a: &[f64], b: &[f64], n: usize) -> f64 {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            xs.push(a[i * n + j]);
            ys.push(b[i * n + j]);
        }
    }
    let m = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / m, ys.iter().sum::<f64>() / m);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(&ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

/// The loss per batch element from monitored samples `[T, R, 1, N]`.
pub fn fc_loss<B: Backend>(y: Tensor<B, 4>, target: &Tensor<B, 2>, kind: LossKind) -> Tensor<B, 1> {
    let [t, r, _, n] = y.dims();
    let x = y.swap_dims(0, 1).reshape([r, t, n]);
    let f = fc(x);
    let corr = || fc_corr_loss(f.clone(), target.clone()).expect("shapes checked by validate");
    let mse = || fc_mse(f.clone(), target.clone()).expect("shapes checked by validate");
    match kind {
        LossKind::Corr => corr(),
        LossKind::Mse => mse(),
        LossKind::Mixed { w_corr, w_mse } => corr() * w_corr + mse() * w_mse,
    }
}

/// [`fit`] on the backend `backend` chosen at run time (with Burn's autodiff over it). Not
/// generic: the fitter is compiled once, in this crate, for every backend of the build.
pub fn fit_on(
    backend: crate::backend::BackendKind,
    problem: &FitProblem,
    state: FitState,
    iterations: usize,
    on_iteration: &mut dyn FnMut(&FitState, &IterationReport) -> Result<()>,
) -> Result<FitState> {
    use crate::backend::{with_backend, BackendKind, BackendTask};
    struct Task<'a> {
        problem: &'a FitProblem,
        state: FitState,
        iterations: usize,
        on_iteration: &'a mut dyn FnMut(&FitState, &IterationReport) -> Result<()>,
    }
    impl BackendTask for Task<'_> {
        type Output = Result<FitState>;
        fn run<B: Backend>(self, _kind: BackendKind, device: B::Device) -> Result<FitState> {
            fit::<burn::backend::Autodiff<B>>(
                self.problem,
                self.state,
                self.iterations,
                &device,
                self.on_iteration,
            )
        }
    }
    with_backend(
        backend,
        Task {
            problem,
            state,
            iterations,
            on_iteration,
        },
    )?
}

/// Runs iterations until `state.iteration == iterations`, calling `on_iteration` after each
/// (with the updated state: save it there to be able to resume).
pub fn fit<B: AutodiffBackend>(
    problem: &FitProblem,
    mut state: FitState,
    iterations: usize,
    device: &B::Device,
    mut on_iteration: impl FnMut(&FitState, &IterationReport) -> Result<()>,
) -> Result<FitState> {
    problem.validate()?;
    let n = problem.connectome.n;
    let r = problem.restarts;
    let spec = crate::model::find(&problem.network.model)?;
    let coupling = problem
        .network
        .coupling
        .unwrap_or_else(|| spec.coupling_function.into());
    let specs = param_specs(spec, coupling);
    let bounds: Vec<Bounds> = problem
        .free
        .iter()
        .map(|f| f.bounds())
        .collect::<Result<_>>()?;
    let polyak = match problem.optimizer {
        Optimizer::Polyak { gamma, .. } => Some(
            Polyak::new(gamma, Polyak::spread_betas(r))
                .map_err(|e| Error::setting("gamma", e.to_string()))?,
        ),
        _ => None,
    };
    let adam = match problem.optimizer {
        Optimizer::Adam { lr } => Some(
            Adam::new(AdamConfig {
                lr,
                ..AdamConfig::default()
            })
            .map_err(|e| Error::setting("lr", e.to_string()))?,
        ),
        _ => None,
    };
    let loss = problem.fc_loss();
    // Decided once here so that a refused `--gradient adjoint` fails before the first iteration.
    let gradient = problem.gradient_method()?;
    let opts = GradOptions {
        chunk: problem.chunk,
        wrt: Some(problem.free.iter().map(|f| f.name.clone()).collect()),
    };
    // Each free parameter's position in the parameter table.
    let free_index: Vec<usize> = problem
        .free
        .iter()
        .map(|f| {
            specs
                .iter()
                .position(|s| s.name == f.name)
                .expect("validated")
        })
        .collect();
    let mut sim: Option<Problem> = None;
    while state.iteration < iterations {
        let theta = problem.values(&state.z)?;
        // Parameter table: fixed values, then the free ones as [R, 1] or [R, n].
        let mut given = problem.fixed.clone();
        for (f, v) in problem.free.iter().zip(&theta) {
            given.push((
                f.name.clone(),
                if f.regional {
                    ParamValue::Regional {
                        rows: r,
                        values: v.clone(),
                    }
                } else {
                    ParamValue::Batch(v.clone())
                },
            ));
        }
        let table = ParamTable::new(&specs, &given, n, Some(r))?;
        // The simulation is built (and its connectome copied) once; later iterations only put
        // in the new parameter table, which `ParamTable::new` has checked.
        let sim = match &mut sim {
            Some(sim) => {
                sim.params = table;
                &*sim
            }
            None => &*sim.insert(Problem::new(
                problem.connectome.clone(),
                problem.network.clone(),
                table,
                problem.run.clone(),
            )?),
        };
        let vg = value_and_grad_on::<B>(sim, &loss, gradient, &opts, device)?;
        // Simulated FC per restart.
        let t = vg.shape[0];
        let y: Tensor<B::InnerBackend, 4> = Tensor::from_data(
            TensorData::new(vg.outputs, vg.shape),
            crate::float_opts::<B::InnerBackend>(device),
        );
        let fcs = to_host64(fc(y.swap_dims(0, 1).reshape([r, t, n])));
        let losses = vg.loss;
        let grads = free_index
            .iter()
            .zip(&problem.free)
            .map(|(&k, f)| {
                vg.grads[k]
                    .as_ref()
                    .map(|g| g.values.clone())
                    .ok_or_else(|| {
                        Error::setting(
                            "fit",
                            format!("internal: no gradient was returned for `{}`", f.name),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let corr: Vec<f64> = (0..r)
            .map(|k| fc_corr(&fcs[k * n * n..(k + 1) * n * n], &problem.target_fc, n))
            .collect();
        if let Some(k) = losses.iter().position(|l| !l.is_finite()) {
            return Err(Error::setting(
                "fit",
                format!(
                    "the loss of restart {k} is not finite at iteration {} (parameters {:?}); \
                     narrow the bounds or lower the step size",
                    state.iteration,
                    theta.iter().map(|v| v[k * v.len() / r]).collect::<Vec<_>>()
                ),
            ));
        }
        for k in 0..r {
            let vals: Vec<Vec<f64>> = theta
                .iter()
                .map(|v| {
                    let size = v.len() / r;
                    v[k * size..(k + 1) * size].to_vec()
                })
                .collect();
            state.history.push(HistoryRow {
                iteration: state.iteration,
                restart: k,
                loss: losses[k],
                corr: corr[k],
                params: vals
                    .iter()
                    .map(|v| v.iter().sum::<f64>() / v.len() as f64)
                    .collect(),
            });
            if state.best.as_ref().is_none_or(|b| losses[k] < b.loss) {
                state.best = Some(Best {
                    loss: losses[k],
                    corr: corr[k],
                    iteration: state.iteration,
                    restart: k,
                    values: vals,
                    fc: fcs[k * n * n..(k + 1) * n * n].to_vec(),
                });
            }
        }
        // Gradients in the unbounded space: dL/dz = dL/dθ · dθ/dz.
        let mut gz = Vec::with_capacity(problem.free.len());
        for (((f, b), zs), g) in problem.free.iter().zip(&bounds).zip(&state.z).zip(grads) {
            let size = f.size(n);
            // The gradient has the parameter tensor's shape: [R, 1] or [R, n].
            let g: Vec<f64> = if g.len() == r * size {
                g
            } else {
                return Err(Error::setting(
                    "fit",
                    format!("internal: gradient of `{}` has {} entries", f.name, g.len()),
                ));
            };
            gz.push(
                g.iter()
                    .zip(zs)
                    .map(|(&g, &z)| {
                        let s = 1.0 / (1.0 + (-z).exp());
                        g * b.width() * s * (1.0 - s)
                    })
                    .collect::<Vec<f64>>(),
            );
        }
        let as_tensors = |vs: &[Vec<f64>]| -> Vec<Tensor<B::InnerBackend, 2>> {
            vs.iter()
                .map(|v| {
                    let size = v.len() / r;
                    Tensor::from_data(
                        TensorData::new(v.clone(), [r, size]),
                        crate::float_opts::<B::InnerBackend>(device),
                    )
                })
                .collect()
        };
        let zt = as_tensors(&state.z);
        let gt = as_tensors(&gz);
        let new_z = match (problem.optimizer, &polyak, &adam) {
            (Optimizer::Polyak { annealed, .. }, Some(p), _) => {
                let step = if annealed {
                    let l = Tensor::from_data(
                        TensorData::new(losses.clone(), [r]),
                        crate::float_opts::<B::InnerBackend>(device),
                    );
                    p.step_annealed(&zt, &gt, &l)
                } else {
                    p.step(&zt, &gt)
                };
                step.map_err(|e| Error::setting("fit", e.to_string()))?
            }
            (Optimizer::Adam { .. }, _, Some(a)) => {
                let (m, v, t) = state.adam.take().expect("Adam state initialised");
                let mut st = neurodiff_optim::AdamState {
                    m: as_tensors(&m),
                    v: as_tensors(&v),
                    t,
                };
                let out = a
                    .step(&zt, &gt, &mut st)
                    .map_err(|e| Error::setting("fit", e.to_string()))?;
                state.adam = Some((
                    st.m.into_iter().map(to_host64).collect(),
                    st.v.into_iter().map(to_host64).collect(),
                    st.t,
                ));
                out
            }
            _ => unreachable!("optimiser constructed above"),
        };
        state.z = new_z.into_iter().map(to_host64).collect();
        let report = IterationReport {
            iteration: state.iteration,
            loss: losses,
            corr,
        };
        state.iteration += 1;
        on_iteration(&state, &report)?;
    }
    Ok(state)
}

fn to_host64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .expect("converted to f64")
}
