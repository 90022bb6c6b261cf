//! The BOLD monitor through the fused adjoint.
//!
//! The Balloon–Windkessel haemodynamics only observe the neural model (nothing flows back), so
//! the adjoint differentiates the neural run with a temporal-mean monitor of the driving
//! variable, one sample per BOLD step from the first step on (the haemodynamics integrate
//! through the transient), and the BOLD layer sits between those means and the caller's loss on
//! the host:
//!
//! 1. forward: from rest, one Heun step of `step_s` seconds per mean ([`heun_step`], the one
//!    description of the haemodynamics that the monitors of both engines also run), and
//!    the BOLD signal where the monitor samples it (sample `k`, after
//!    `transient + every · (k + 1)` neural steps, reads the BOLD state after that many steps
//!    divided by `bold.every` BOLD steps, as the BOLD monitor does);
//! 2. the caller's loss and its gradient with respect to the BOLD samples;
//! 3. backward, region by region: the BOLD trajectory is recomputed and swept in reverse,
//!    the local Jacobians of each Heun step and of the signal by forward-mode dual numbers
//!    ([`crate::fused::dual`]), giving the gradient with respect to each mean, which the
//!    neural adjoint takes as its sample gradient.
//!
//! The haemodynamics run in `f64` whatever the neural float type. Memory: the means
//! (`steps / bold.every · batch · nodes` values) and one region's trajectory at a time.

use neurodiff_models::Model;

use super::{value_and_grad_model, FusedValueAndGrad, GradOptions, HostLoss};
use crate::error::{Error, Result};
use crate::fused::dual::Dual;
use crate::fused::engine::{FusedRun, Real};
use crate::monitor::BoldMonitor;
use crate::observe::bold::{heun_step, signal};

pub(super) use crate::monitor::neural_run;

/// The haemodynamic layer of one run: where each sample reads the BOLD state.
struct Layer<'a> {
    b: &'a BoldMonitor,
    /// Per sample, the number of BOLD steps taken when it is read.
    at: Vec<usize>,
    /// The neural run's step and time unit, for error messages.
    dt: f64,
    time_unit: &'static str,
}

use crate::observe::bold::{NAMES, REST};

impl Layer<'_> {
    /// BOLD samples `[samples, batch, 1, nodes]` from the means `x` `[m, batch, 1, nodes]`.
    fn forward(&self, x: &[f64], shape: [usize; 4]) -> Result<(Vec<f64>, [usize; 4])> {
        let [m, batch, _, n] = shape;
        let ns = self.at.len();
        let (p, h) = (&self.b.params, self.b.step_s);
        let mut y = vec![0.0; ns * batch * n];
        for bb in 0..batch {
            for i in 0..n {
                let mut st = REST;
                let mut k = 0;
                for j in 0..=m {
                    while k < ns && self.at[k] == j {
                        y[(k * batch + bb) * n + i] = signal(st, p);
                        k += 1;
                    }
                    if j == m || k == ns {
                        break;
                    }
                    st = heun_step(st, x[(j * batch + bb) * n + i], h, p);
                    if let Some(v) = st.iter().position(|v| !v.is_finite()) {
                        return Err(self.diverged(j + 1, v, i, bb, st[v]));
                    }
                }
            }
        }
        Ok((y, [ns, batch, 1, n]))
    }

    /// `dL/d means` from `dL/d samples` `dy`, region by region.
    fn backward(&self, x: &[f64], shape: [usize; 4], dy: &[f64]) -> Vec<f64> {
        let [m, batch, _, n] = shape;
        let ns = self.at.len();
        let (p, h) = (&self.b.params, self.b.step_s);
        let last = self.at.last().copied().unwrap_or(0).min(m);
        let mut dx = vec![0.0; x.len()];
        let mut traj = vec![REST; last + 1];
        for bb in 0..batch {
            for i in 0..n {
                let xi = |j: usize| x[(j * batch + bb) * n + i];
                for j in 0..last {
                    traj[j + 1] = heun_step(traj[j], xi(j), h, p);
                }
                let mut lam = [0.0; 4];
                let mut k = ns;
                for j in (0..=last).rev() {
                    while k > 0 && self.at[k - 1] == j {
                        k -= 1;
                        let g = dy[(k * batch + bb) * n + i];
                        if g != 0.0 {
                            let y: [Dual<f64, 4>; 4] =
                                std::array::from_fn(|c| Dual::var(traj[j][c], c));
                            let s = signal(y, p);
                            lam.iter_mut().zip(&s.eps).for_each(|(l, &d)| *l += g * d);
                        }
                    }
                    if j == 0 {
                        break;
                    }
                    // traj[j] = step(traj[j - 1], x[j - 1]).
                    let y: [Dual<f64, 5>; 4] =
                        std::array::from_fn(|c| Dual::var(traj[j - 1][c], c));
                    let out = heun_step(y, Dual::var(xi(j - 1), 4), h, p);
                    let g: [f64; 5] =
                        std::array::from_fn(|d| (0..4).map(|o| lam[o] * out[o].eps[d]).sum());
                    dx[((j - 1) * batch + bb) * n + i] = g[4];
                    lam = [g[0], g[1], g[2], g[3]];
                }
            }
        }
        dx
    }

    fn diverged(&self, bold_steps: usize, var: usize, node: usize, batch: usize, v: f64) -> Error {
        let step = bold_steps * self.b.every;
        Error::Diverged {
            step,
            time: step as f64 * self.dt,
            time_unit: self.time_unit,
            var: format!("BOLD {}", NAMES[var]),
            node,
            batch,
            value: v as f32,
        }
    }
}

/// [`value_and_grad_fused`] for a run whose monitor observes BOLD through `b`: `loss` receives
/// the BOLD samples `[samples, batch, 1, nodes]`, and so do the returned outputs.
pub(super) fn value_and_grad_bold<M: Model, T: Real>(
    model: &M,
    fr: &FusedRun<'_>,
    b: &BoldMonitor,
    opts: &GradOptions,
    loss: &HostLoss<'_>,
) -> Result<FusedValueAndGrad> {
    let spec = model.spec();
    fr.run.validate(spec.n_vars())?;
    let run = fr.run;
    let m = &run.monitor;
    let layer = Layer {
        b,
        at: (0..run.n_samples())
            .map(|k| (m.transient + m.every * (k + 1)) / b.every)
            .collect(),
        dt: run.dt,
        time_unit: spec.time_unit.name(),
    };
    let neural = neural_run(run, b);
    let inner = FusedRun {
        connectome: fr.connectome,
        network: fr.network,
        params: fr.params,
        x0: fr.x0,
        x0_rows: fr.x0_rows,
        batch: fr.batch,
        run: &neural,
        threads: fr.threads,
    };
    let through = |x: &[f64], shape: [usize; 4]| -> Result<(Vec<f64>, Vec<f64>)> {
        let (y, bold_shape) = layer.forward(x, shape)?;
        let (l, dy) = loss(&y, bold_shape)?;
        if dy.len() != y.len() {
            return Err(Error::setting(
                "loss",
                format!(
                    "the loss gradient has {} values for {} BOLD samples",
                    dy.len(),
                    y.len()
                ),
            ));
        }
        Ok((l, layer.backward(x, shape, &dy)))
    };
    let vg = value_and_grad_model::<M, T>(model, &inner, opts, &through)?;
    let (outputs, shape) = layer.forward(&vg.outputs, vg.shape)?;
    Ok(FusedValueAndGrad {
        outputs,
        shape,
        ..vg
    })
}
