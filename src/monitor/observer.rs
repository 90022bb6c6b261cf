//! Monitors as objects, written once over [`Real`] (as vbjax's `init`/`record`/`sample`): what
//! a monitor carries per node, how it records the state after a step, and what a sample reads.
//! The tensor engine runs them on `[batch, nodes]` tensor expressions (their carry travels with
//! the model state through chunks and checkpoints, so gradients flow through them), the fused
//! engine on each node's numbers; the schedule (which step records, which samples) is the
//! settings' ([`Monitor::due`](super::Monitor::due), [`Monitor::records`](super::Monitor::records)).
//!
//! A new monitor is a struct implementing [`Observe`] plus a variant of [`Observer`].

use neurodiff_models::real::{k, Real};

use crate::observe::bold::{self, BoldParams, NAMES, REST};

/// A monitor, per node: it carries [`Observe::n_state`] numbers from step to step and gives
/// [`Observe::n_out`] numbers per sample.
pub trait Observe {
    /// Numbers carried per node.
    fn n_state(&self) -> usize;
    /// Numbers per node in one sample.
    fn n_out(&self) -> usize;
    /// Writes the carry before the first step.
    fn init<R: Real>(&self, s: &mut [R]);
    /// Records the node's state `x` after step `n` (1-based) into the carry `s`.
    fn record<R: Real>(&self, n: usize, x: &[R], s: &mut [R]);
    /// Writes a sample (after the step's [`Observe::record`]) into `out` and resets what the
    /// next sample starts afresh.
    fn sample<R: Real>(&self, x: &[R], s: &mut [R], out: &mut [R]);
    /// The name of carried number `j`, for error messages.
    fn state_name(&self, j: usize) -> String {
        format!("monitor state {j}")
    }
}

/// The state at the sample step.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    /// The variables kept.
    pub vars: Vec<usize>,
}

impl Observe for Raw {
    fn n_state(&self) -> usize {
        0
    }
    fn n_out(&self) -> usize {
        self.vars.len()
    }
    fn init<R: Real>(&self, _s: &mut [R]) {}
    fn record<R: Real>(&self, _n: usize, _x: &[R], _s: &mut [R]) {}
    fn sample<R: Real>(&self, x: &[R], _s: &mut [R], out: &mut [R]) {
        for (o, &v) in out.iter_mut().zip(&self.vars) {
            *o = x[v];
        }
    }
}

/// The temporal mean over the `every` steps that end at the sample step.
#[derive(Debug, Clone, PartialEq)]
pub struct Mean {
    /// The variables kept.
    pub vars: Vec<usize>,
    /// Steps per sample.
    pub every: usize,
}

impl Observe for Mean {
    fn n_state(&self) -> usize {
        self.vars.len()
    }
    fn n_out(&self) -> usize {
        self.vars.len()
    }
    fn init<R: Real>(&self, s: &mut [R]) {
        s.iter_mut().for_each(|a| *a = k(0.0));
    }
    fn record<R: Real>(&self, _n: usize, x: &[R], s: &mut [R]) {
        for (a, &v) in s.iter_mut().zip(&self.vars) {
            *a = *a + x[v];
        }
    }
    fn sample<R: Real>(&self, _x: &[R], s: &mut [R], out: &mut [R]) {
        for (o, a) in out.iter_mut().zip(s.iter_mut()) {
            *o = *a / k(self.every as f64);
            *a = k(0.0);
        }
    }
    fn state_name(&self, j: usize) -> String {
        format!("running sum {j} of the mean monitor")
    }
}

/// The BOLD signal: Balloon–Windkessel haemodynamics ([`crate::observe::bold`]) driven by one
/// variable; every `every` steps one Heun step of `step_s` seconds with the mean of the
/// variable over those steps. Carry: `[s, f, v, q, running sum]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bold {
    /// The driving variable.
    pub var: usize,
    /// Neural steps per BOLD step.
    pub every: usize,
    /// BOLD step in seconds.
    pub step_s: f64,
    /// Haemodynamic parameters.
    pub params: BoldParams,
}

impl Observe for Bold {
    fn n_state(&self) -> usize {
        5
    }
    fn n_out(&self) -> usize {
        1
    }
    fn init<R: Real>(&self, s: &mut [R]) {
        for (a, &r) in s.iter_mut().zip(REST.iter().chain(&[0.0])) {
            *a = k(r);
        }
    }
    fn record<R: Real>(&self, n: usize, x: &[R], s: &mut [R]) {
        s[4] = s[4] + x[self.var];
        if n.is_multiple_of(self.every) {
            let y = [s[0], s[1], s[2], s[3]];
            let y = bold::heun_step(y, s[4] / k(self.every as f64), self.step_s, &self.params);
            s[..4].copy_from_slice(&y);
            s[4] = k(0.0);
        }
    }
    fn sample<R: Real>(&self, _x: &[R], s: &mut [R], out: &mut [R]) {
        out[0] = bold::signal([s[0], s[1], s[2], s[3]], &self.params);
    }
    fn state_name(&self, j: usize) -> String {
        match NAMES.get(j) {
            Some(name) => format!("BOLD {name}"),
            None => "BOLD input sum".into(),
        }
    }
}

/// One of the monitors (what [`Monitor::observer`](super::Monitor::observer) builds).
#[derive(Debug, Clone, PartialEq)]
pub enum Observer {
    /// [`Raw`].
    Raw(Raw),
    /// [`Mean`].
    Mean(Mean),
    /// [`Bold`].
    Bold(Bold),
}

macro_rules! each {
    ($self:ident, $o:ident => $e:expr) => {
        match $self {
            Observer::Raw($o) => $e,
            Observer::Mean($o) => $e,
            Observer::Bold($o) => $e,
        }
    };
}

impl Observe for Observer {
    fn n_state(&self) -> usize {
        each!(self, o => o.n_state())
    }
    fn n_out(&self) -> usize {
        each!(self, o => o.n_out())
    }
    fn init<R: Real>(&self, s: &mut [R]) {
        each!(self, o => o.init(s))
    }
    #[inline]
    fn record<R: Real>(&self, n: usize, x: &[R], s: &mut [R]) {
        each!(self, o => o.record(n, x, s))
    }
    #[inline]
    fn sample<R: Real>(&self, x: &[R], s: &mut [R], out: &mut [R]) {
        each!(self, o => o.sample(x, s, out))
    }
    fn state_name(&self, j: usize) -> String {
        each!(self, o => o.state_name(j))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::prelude::{Tensor, TensorData};

    /// Records `x(n)` for `n = 1..=steps` (one node, one variable) and samples every `every`
    /// steps, on `f64`.
    fn scalar_run(o: &Observer, steps: usize, every: usize, x: impl Fn(usize) -> f64) -> Vec<f64> {
        let mut s = vec![0.0; o.n_state()];
        o.init(&mut s);
        let mut out = Vec::new();
        for n in 1..=steps {
            o.record(n, &[x(n)], &mut s);
            if n % every == 0 {
                let mut y = vec![0.0; o.n_out()];
                o.sample(&[x(n)], &mut s, &mut y);
                out.extend(y);
            }
        }
        out
    }

    #[test]
    fn mean_is_the_average_over_each_window() {
        let o = Observer::Mean(Mean {
            vars: vec![0],
            every: 4,
        });
        // Windows 1..=4 and 5..=8 of x(n) = n: means 2.5 and 6.5.
        assert_eq!(scalar_run(&o, 8, 4, |n| n as f64), vec![2.5, 6.5]);
        let raw = Observer::Raw(Raw { vars: vec![0] });
        assert_eq!(scalar_run(&raw, 8, 4, |n| n as f64), vec![4.0, 8.0]);
    }

    #[test]
    fn bold_observer_is_the_haemodynamics_stepped_on_means() {
        // Driving input: a boxcar over the first 50 steps; 5 neural steps per BOLD step.
        let p = BoldParams::default();
        let o = Observer::Bold(Bold {
            var: 0,
            every: 5,
            step_s: 0.01,
            params: p,
        });
        let x = |n: usize| {
            if n <= 50 {
                1.0 + 0.1 * (n % 5) as f64
            } else {
                0.0
            }
        };
        let got = scalar_run(&o, 2000, 100, x);
        // The same by hand: Heun steps on the window means, the signal every 20 BOLD steps.
        let mut y = REST;
        let mut want = Vec::new();
        for j in 1..=400 {
            let mean = (5 * (j - 1) + 1..=5 * j).map(x).sum::<f64>() / 5.0;
            y = bold::heun_step(y, mean, 0.01, &p);
            if j % 20 == 0 {
                want.push(bold::signal(y, &p));
            }
        }
        assert!(
            want.iter().any(|v| v.abs() > 1e-3),
            "the input must move BOLD"
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
    }

    #[test]
    fn tensor_observers_match_the_scalar_ones() {
        type B = NdArray<f64>;
        let dev = Default::default();
        let x = |n: usize| (0.37 * n as f64).sin() + 0.5;
        for o in [
            Observer::Raw(Raw { vars: vec![0] }),
            Observer::Mean(Mean {
                vars: vec![0],
                every: 7,
            }),
            Observer::Bold(Bold {
                var: 0,
                every: 7,
                step_s: 0.02,
                params: BoldParams::default(),
            }),
        ] {
            let want = scalar_run(&o, 700, 7, x);
            let mut s = crate::monitor::tensor::init::<B>(&o, [1, 1], &dev);
            let mut got = Vec::new();
            for n in 1..=700 {
                let xs = [Tensor::<B, 2>::from_data(
                    TensorData::new(vec![x(n)], [1, 1]),
                    &dev,
                )];
                crate::monitor::tensor::record(&o, n, &xs, &mut s);
                if n % 7 == 0 {
                    let y = crate::monitor::tensor::sample(&o, &xs, &mut s);
                    got.extend(y.into_data().convert::<f64>().into_vec::<f64>().unwrap());
                }
            }
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "{o:?}: {g} vs {w}");
            }
        }
    }
}
