//! What a monitor keeps, as settings: the schedule (every, transient), the variables, and
//! whether samples are the state, its temporal mean or the BOLD signal. [`Monitor::observer`]
//! turns them into the observer that the engines run.

use neurodiff_models::TimeUnit;

use super::observer::{Bold, Mean, Observer, Raw};
use crate::observe::bold::BoldParams;
use crate::sim::Run;

/// The kinds of monitor, as chosen on the command line (`--monitor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorKind {
    /// The state at each sample.
    #[default]
    Raw,
    /// The temporal mean over each sample period.
    Mean,
    /// The BOLD signal of the first recorded variable.
    Bold,
}

crate::choice!(MonitorKind, "monitor", [Raw => "raw", Mean => "mean", Bold => "bold"]);

/// What is kept of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Monitor {
    /// Keep one sample every this many steps.
    pub every: usize,
    /// `false`: the state at the sample step; `true`: the mean over the `every` steps that end
    /// there (a temporal average).
    pub mean: bool,
    /// Steps run before the first window starts; nothing from them is kept.
    pub transient: usize,
    /// Indices of the state variables kept, in order (ignored with `bold`).
    pub vars: Vec<usize>,
    /// Keep the BOLD signal driven by a neural variable instead of the state.
    #[serde(default)]
    pub bold: Option<BoldMonitor>,
}

/// The BOLD signal as the monitor's output: Balloon–Windkessel haemodynamics
/// ([`crate::observe::bold`]) driven by one neural variable, integrated alongside the model
/// (through the transient too) and carried across chunks with the state.
///
/// Every `every` neural steps the BOLD state takes one Heun step of `step_s` seconds with the
/// mean of the neural variable over those steps as input. A sample is the BOLD signal
/// `[batch, 1, nodes]`; the monitor's `every` must be a multiple of this `every`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoldMonitor {
    /// The neural variable driving the haemodynamics (e.g. MPR's `r`).
    pub var: usize,
    /// Neural steps per BOLD step.
    pub every: usize,
    /// Length of a BOLD step in seconds (`every · dt` converted from the model's time unit).
    pub step_s: f64,
    /// Haemodynamic parameters.
    pub params: BoldParams,
}

impl BoldMonitor {
    /// BOLD driven by state variable `var` of a model whose unit of time is `unit`, stepped with
    /// `dt`: one haemodynamic step per about `step_s` seconds, a whole number of neural steps
    /// (at least one; when `period` is given, at most `period` and dividing it, so that BOLD
    /// steps tile the sample period), with the default haemodynamic parameters.
    pub fn for_model(
        unit: TimeUnit,
        dt: f64,
        var: usize,
        step_s: f64,
        period: Option<usize>,
    ) -> Self {
        let mut every = ((step_s / unit.seconds() / dt).round() as usize).max(1);
        if let Some(p) = period {
            let p = p.max(1);
            every = (1..=every.min(p))
                .rev()
                .find(|k| p.is_multiple_of(*k))
                .unwrap_or(1);
        }
        Self {
            var,
            every,
            step_s: every as f64 * dt * unit.seconds(),
            params: BoldParams::default(),
        }
    }
}

/// The neural run behind a run whose monitor observes BOLD through `b`: a temporal mean of the
/// driving variable, one per BOLD step, from the first step on (the haemodynamics integrate
/// through the transient). The fused adjoint differentiates this run and puts the
/// haemodynamics between its means and the loss.
pub fn neural_run(run: &Run, b: &BoldMonitor) -> Run {
    let mut r = run.clone();
    r.monitor = Monitor {
        every: b.every,
        mean: true,
        transient: 0,
        vars: vec![b.var],
        bold: None,
    };
    r
}

impl Monitor {
    /// The sample taken after step `n` (1-based, the transient counted): sample `k` is taken
    /// after `transient + every · (k + 1)` steps.
    pub fn due(&self, n: usize) -> Option<usize> {
        let every = self.every.max(1);
        let t = n.checked_sub(self.transient)?;
        (t > 0 && t.is_multiple_of(every)).then(|| t / every - 1)
    }

    /// Whether the observer records the state after step `n`: after the transient, and from
    /// the first step for BOLD (the haemodynamics integrate through the transient).
    pub fn records(&self, n: usize) -> bool {
        self.bold.is_some() || n > self.transient
    }

    /// Numbers per node in one sample: the variables kept, or 1 (the BOLD signal).
    pub fn n_out(&self) -> usize {
        if self.bold.is_some() {
            1
        } else {
            self.vars.len()
        }
    }

    /// The observer the engines run for these settings.
    pub fn observer(&self) -> Observer {
        match (&self.bold, self.mean) {
            (Some(b), _) => Observer::Bold(Bold {
                var: b.var,
                every: b.every,
                step_s: b.step_s,
                params: b.params,
            }),
            (None, true) => Observer::Mean(Mean {
                vars: self.vars.clone(),
                every: self.every,
            }),
            (None, false) => Observer::Raw(Raw {
                vars: self.vars.clone(),
            }),
        }
    }
}
