//! The [`Neuron`] trait, its static description [`NeuronSpec`], parameter checks and the
//! catalogue macro. See the module documentation of [`crate::neuron`] for how an engine drives a
//! neuron.

use crate::spec::{ParamSpec, TimeUnit, VarSpec};
use crate::{k, Real};

/// Index of the membrane potential `V` (mV) in every neuron's state: it is always the first
/// state variable.
pub const V: usize = 0;

/// The external input a neuron receives: one current, with its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    /// Name on the command line (`I`).
    pub name: &'static str,
    /// Unit: `pA` for point neurons with a capacitance in pF (AdEx, LIF), `µA/cm²` for
    /// membrane-patch models with a specific capacitance in µF/cm² (Hodgkin–Huxley).
    pub unit: &'static str,
    /// One-line meaning.
    pub doc: &'static str,
}

/// Everything static about a neuron model. State variable 0 is always the membrane potential
/// `V` in mV ([`V`]); time is in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeuronSpec {
    /// Name on the command line (e.g. `hh`).
    pub name: &'static str,
    /// Human-readable title.
    pub title: &'static str,
    /// Unit of time of the equations (ms for every neuron).
    pub time_unit: TimeUnit,
    /// A sensible integration step, in `time_unit`.
    pub default_dt: f64,
    /// State variables, in order; the first is `V` (mV). `initial` is the value at rest for the
    /// default parameters (the exact rest for any parameters is [`Neuron::rest`]).
    pub state: &'static [VarSpec],
    /// Parameters, in the order the equations receive them, with units, defaults and bounds.
    pub params: &'static [ParamSpec],
    /// The external current.
    pub input: InputSpec,
    /// How a spike is detected, for documentation: the level `V` crosses upwards (a parameter
    /// name such as `V_peak`, or a fixed detection level such as `0 mV`).
    pub threshold: &'static str,
    /// The slope of the surrogate gradient of the spike ([`Real::spike`]), in 1/mV: the
    /// surrogate derivative at the threshold is `slope / 2` per mV.
    pub surrogate_slope: f64,
    /// Where the equations and values come from.
    pub citation: &'static str,
}

impl NeuronSpec {
    crate::spec_lookups!();

    /// Checks the number of values and that each lies inside its parameter's bounds.
    ///
    /// # Errors
    /// [`NeuronError::Count`] or [`NeuronError::OutOfBounds`] naming the first bad parameter.
    pub fn check_bounds(&self, p: &[f64]) -> Result<(), NeuronError> {
        if p.len() != self.params.len() {
            return Err(NeuronError::Count {
                neuron: self.name,
                expected: self.params.len(),
                got: p.len(),
            });
        }
        for (s, &value) in self.params.iter().zip(p) {
            if !s.admits(value) {
                return Err(NeuronError::OutOfBounds {
                    neuron: self.name,
                    name: s.name,
                    value,
                    unit: s.unit,
                    lower: s.lower,
                    upper: s.upper,
                });
            }
        }
        Ok(())
    }
}

/// A parameter set a neuron cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NeuronError {
    /// The wrong number of parameter values.
    #[error("{neuron}: expected {expected} parameter values, got {got}")]
    Count {
        /// The neuron model.
        neuron: &'static str,
        /// Its number of parameters.
        expected: usize,
        /// The number given.
        got: usize,
    },
    /// A value outside its parameter's bounds (or not finite).
    #[error("{neuron}: parameter `{name}` = {value} {unit} is outside [{lower}, {upper}]")]
    OutOfBounds {
        /// The neuron model.
        neuron: &'static str,
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The parameter's unit.
        unit: &'static str,
        /// Its lower bound.
        lower: f64,
        /// Its upper bound.
        upper: f64,
    },
    /// Values that are each admissible but not together (e.g. a reset above the threshold).
    #[error("{neuron}: {what}")]
    Inconsistent {
        /// The neuron model.
        neuron: &'static str,
        /// What is wrong, with the values.
        what: String,
    },
}

/// A single-compartment neuron: its static description and its equations, each written once
/// over [`Real`] (`f32`/`f64`, dual numbers, Burn tensors through [`Tx`](crate::real::Tx)).
///
/// Slices: `x` has one entry per state variable (`x[V]` the membrane potential in mV), `p` one
/// per parameter, in the order of [`Neuron::SPEC`]; `i_ext` is the external current in
/// `SPEC.input.unit`. Time is in ms, so every drift is per ms.
///
/// An engine's step is: advance the state over `dt` with the drift (and [`Neuron::linear`] for
/// exponential Euler), detect a spike with [`Neuron::spike`] from `V` before and after the
/// step, then apply [`Neuron::reset`] with that spike value. See [`crate::neuron`].
pub trait Neuron: Send + Sync + 'static {
    /// The static description of the neuron.
    const SPEC: &'static NeuronSpec;

    /// Writes `d state / dt` (per ms) into `dx` for state `x`, external current `i_ext` and
    /// parameters `p`.
    fn drift<R: Real>(&self, x: &[R], i_ext: R, p: &[R], dx: &mut [R]);

    /// Whether [`Neuron::linear`] gives a diagonal linear part (exponential Euler /
    /// Rush–Larsen use it).
    const LINEAR: bool = false;

    /// The diagonal linear part of the drift, as [`Model::linear`](crate::Model::linear):
    /// writes `a[v]` such that `dx_v/dt = a_v x_v + b_v` with neither `a_v` nor `b_v` depending
    /// on `x_v` (a gate `dm/dt = α_m (1 − m) − β_m m` has `a = −(α_m + β_m)`). Exponential Euler
    /// advances such a variable by `x ← x e^{a dt} + (b/a)(e^{a dt} − 1)`, `b = f − a x`,
    /// exactly for `a` and `b` frozen over the step. Entries left untouched are 0 (that
    /// variable is stepped by Euler). Only called when [`Neuron::LINEAR`] is set.
    fn linear<R: Real>(&self, _x: &[R], _i_ext: R, _p: &[R], _a: &mut [R]) {}

    /// [`Neuron::drift`] into `dx` and, when [`Neuron::LINEAR`] is set, [`Neuron::linear`]
    /// into `a` (entries it leaves untouched keep their value: the caller zeroes them), in one
    /// call. A neuron whose drift and linear part share costly terms (voltage-dependent rate
    /// functions) overrides it to compute them once; the result must equal the two calls.
    #[inline(always)]
    fn drift_linear<R: Real>(&self, x: &[R], i_ext: R, p: &[R], dx: &mut [R], a: &mut [R]) {
        self.drift(x, i_ext, p, dx);
        if Self::LINEAR {
            self.linear(x, i_ext, p, a);
        }
    }

    /// Writes the resting state for parameters `p` into `x` (e.g. Hodgkin–Huxley: `V = −65 mV`
    /// with the gates at their steady state; AdEx: `V = E_L`, `w = 0`).
    fn rest<R: Real>(&self, p: &[R], x: &mut [R]);

    /// The level (mV) whose upward crossing by `V` is a spike.
    fn threshold<R: Real>(&self, p: &[R]) -> R;

    /// The spike emitted during a step in which `V` went from `v_before` to `v_after`: an
    /// upward crossing of [`Neuron::threshold`] `θ`, `s = H(v_after − θ) · [v_before < θ]`.
    /// The value is exactly 0 or 1. Under differentiation the first factor is a
    /// [`Real::spike`] with slope `SPEC.surrogate_slope` (the fast-sigmoid surrogate, nonzero
    /// near the threshold) and the second a constant: a surrogate on both factors would cancel
    /// at every crossing (`∂s/∂v_after ≈ −∂s/∂v_before` when `V` straddles `θ`), so that a
    /// higher voltage would not make a spike more likely. This is SuperSpike's surrogate of
    /// `H(V − θ)` after the step (Zenke & Ganguli 2018).
    fn spike<R: Real>(&self, v_before: R, v_after: R, p: &[R]) -> R {
        let theta = self.threshold(p);
        let slope = Self::SPEC.surrogate_slope;
        let armed = R::select(v_before.lt(theta), R::cst(1.0), R::cst(0.0));
        (v_after - theta).spike(slope) * armed
    }

    /// Whether the neuron has a reset (integrate-and-fire types); when unset,
    /// [`Neuron::reset`] does nothing and an engine may skip it.
    const RESETS: bool = false;

    /// Applies the reset after a step with spike value `s` (0 or 1, from [`Neuron::spike`]), in
    /// place, written differentiably as a blend, `x ← x − s (x − x_reset)` or `x ← x + s Δ`
    /// (for AdEx `V ← V − s (V − V_reset)`, `w ← w + s b`), so that gradients flow through `s`.
    fn reset<R: Real>(&self, _x: &mut [R], _s: R, _p: &[R]) {}

    /// Checks a parameter set: each value inside its bounds (the default), plus whatever
    /// relation between values the neuron needs (e.g. a reset below the threshold).
    ///
    /// # Errors
    /// A [`NeuronError`] naming the parameter or relation.
    fn validate(&self, p: &[f64]) -> Result<(), NeuronError> {
        Self::SPEC.check_bounds(p)
    }
}

/// The refractory countdown counts as finished below this many ms left: far below any step, it
/// absorbs the round-off of counting `t_ref` down by `dt` (in `f32`, 80 steps of 0.025 ms
/// leave up to ~1e-5 ms), so that the clamp lasts `⌈t_ref / dt⌉` steps and not one more.
pub const REFRACTORY_EPS: f64 = 1e-4;

/// A refractory countdown, shared by the integrate-and-fire neurons: the state variable `r`
/// (ms left) decreases at rate 1 while above [`REFRACTORY_EPS`] and stays put otherwise; the
/// reset sets it to `t_ref`. Returns `(refractory mask, dr/dt)`.
#[inline(always)]
pub(crate) fn refractory<R: Real>(r: R) -> (R::Mask, R) {
    let on = r.gt(k(REFRACTORY_EPS));
    (on, R::select(on, k(-1.0), k(0.0)))
}

/// Generic code to run for a neuron chosen by name at run time (static dispatch).
pub trait NeuronVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the neuron that was looked up.
    fn visit<N: Neuron>(self, neuron: N) -> Self::Output;
}

/// Declares the neuron modules of `neuron/` and the catalogue over them, in catalogue order:
/// each entry `module::Type` is a `pub mod module;` and a neuron in `catalogue`, `find` and
/// `visit`. Invoked once, in `neuron/mod.rs`; adding a neuron is its file and one line there.
#[macro_export]
#[doc(hidden)]
macro_rules! neurons {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every neuron's static description, in catalogue order.
        pub fn catalogue() -> Vec<&'static $crate::neuron::NeuronSpec> {
            vec![$(<$module::$ty as $crate::neuron::Neuron>::SPEC),*]
        }

        /// The static description of the neuron called `name`.
        ///
        /// # Errors
        /// [`UnknownModel`](crate::UnknownModel) listing the known neurons.
        pub fn find(
            name: &str,
        ) -> Result<&'static $crate::neuron::NeuronSpec, $crate::UnknownModel> {
            catalogue()
                .into_iter()
                .find(|s| s.name == name)
                .ok_or_else(|| $crate::UnknownModel {
                    name: name.to_string(),
                    known: catalogue().iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
                })
        }

        /// Runs `visitor` with the neuron called `name`, if there is one.
        pub fn visit<V: $crate::neuron::NeuronVisitor>(
            name: &str,
            visitor: V,
        ) -> Option<V::Output> {
            $(
                if <$module::$ty as $crate::neuron::Neuron>::SPEC.name == name {
                    return Some(visitor.visit(<$module::$ty>::default()));
                }
            )*
            None
        }
    };
}
