//! A spiking circuit as data: populations of point neurons, projections between them, the
//! background drive and deep brain stimulation, with `serde` (TOML or JSON) and one
//! [`Circuit::validate`] that names whatever is wrong.
//!
//! Units follow the target neuron's input (see [`neurodiff_models::neuron`]): currents (`current`,
//! the OU `mu` and `sigma`, the DBS amplitude) are in the population's input unit, pA for
//! AdEx/LIF and µA/cm² for HH/STN; a projection's `weight` is a conductance in the matching
//! unit, **nS** onto AdEx/LIF (nS · mV = pA) and **mS/cm²** onto HH/STN (mS/cm² · mV =
//! µA/cm²). Times are in ms, potentials in mV.

use std::collections::BTreeMap;

use neurodiff_models::neuron::{self, NeuronSpec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A group of neurons of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Population {
    /// Name (used by projections, `--param POP.NAME=VALUE` and the outputs).
    pub name: String,
    /// Neuron model name (`hh`, `adex`, `lif`, `stn`; see `neurodiff_models::neuron`).
    pub neuron: String,
    /// Number of neurons.
    pub n: usize,
    /// Parameter values that replace the model's defaults, by name.
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
    /// Per-neuron heterogeneity: for each named parameter a relative spread `cv`; neuron `i`
    /// gets `p (1 + cv z_i)` (`|p|` for negative `p`, so the spread is `cv |p|`), `z_i` a
    /// standard normal clipped to ±3 drawn from the seed, then clipped to the parameter's
    /// bounds.
    #[serde(default)]
    pub heterogeneity: BTreeMap<String, f64>,
    /// Constant input current, in the neuron's input unit (pA or µA/cm²).
    #[serde(default)]
    pub current: f64,
    /// Ornstein–Uhlenbeck background current, if any.
    #[serde(default)]
    pub ou: Option<Ou>,
    /// Half-width (mV) of a uniform spread of the initial `V` around the rest state (so that
    /// pacemakers do not all start in phase). 0: every neuron starts at rest.
    #[serde(default)]
    pub v_spread_mv: f64,
}

/// An Ornstein–Uhlenbeck current `dI = (mu − I)/tau dt + sigma sqrt(2/tau) dW`: stationary mean
/// `mu` and standard deviation `sigma` (the population's input unit), correlation time `tau`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ou {
    /// Correlation time, ms.
    pub tau_ms: f64,
    /// Stationary mean.
    pub mu: f64,
    /// Stationary standard deviation.
    pub sigma: f64,
}

/// Synapses from every neuron of `pre` to every neuron of `post` with probability `p_connect`:
/// conductance-based, exponentially decaying, with one delay for the projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Projection {
    /// Presynaptic population.
    pub pre: String,
    /// Postsynaptic population.
    pub post: String,
    /// Probability of each (pre, post) pair being connected.
    pub p_connect: f64,
    /// Mean peak conductance per synapse: nS onto AdEx/LIF, mS/cm² onto HH/STN.
    pub weight: f64,
    /// Coefficient of variation of the weights (normal, clipped at 0).
    #[serde(default)]
    pub weight_cv: f64,
    /// Conduction plus synaptic delay, ms (rounded to steps).
    pub delay_ms: f64,
    /// Decay time constant of the conductance, ms.
    pub tau_decay_ms: f64,
    /// Reversal potential, mV.
    pub e_rev_mv: f64,
    /// The mean fan-in (synapses per postsynaptic neuron, `p_connect · n_pre`) that `weight` is
    /// calibrated for. When set, every weight is scaled by `fan_in_ref / (p_connect · n_pre)`,
    /// so that a neuron's summed input (and its rate) stays that of the calibrated size when
    /// the presynaptic population is resized; [`Circuit::keep_fan_in`] sets it from the
    /// current sizes. Unset: weights are used as given, whatever the sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_in_ref: Option<f64>,
}

impl Projection {
    /// `pre→post`, how errors name a projection.
    pub fn label(&self) -> String {
        format!("{}→{}", self.pre, self.post)
    }

    /// The factor every weight of this projection is multiplied by when it comes from a
    /// presynaptic population of `n_pre` neurons: `fan_in_ref / (p_connect · n_pre)`, or 1
    /// without a reference (or without synapses).
    pub fn weight_scale(&self, n_pre: usize) -> f64 {
        let fan_in = self.p_connect * n_pre as f64;
        match self.fan_in_ref {
            Some(r) if fan_in > 0.0 => r / fan_in,
            _ => 1.0,
        }
    }
}

/// A current into one population given as a time series in a `.npy` file (any waveform: a
/// recorded drive, a stimulation protocol other than [`Dbs`]'s pulses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    /// The population it drives.
    pub population: String,
    /// The `.npy` file: `[samples]` (the same current into every neuron of the population) or
    /// `[samples, n]` (one column per neuron), in the population's input unit (pA for
    /// AdEx/LIF, µA/cm² for HH/STN). A relative path in a circuit file is taken from the
    /// file's folder.
    pub file: std::path::PathBuf,
    /// Sample period, ms: sample `k` is the current during `[k·dt_ms, (k+1)·dt_ms)`; after the
    /// last sample the input is 0.
    pub dt_ms: f64,
    /// Multiplies every value (default 1).
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// An [`InputSeries`] read and checked against its circuit.
#[derive(Debug, Clone, PartialEq)]
pub struct InputData {
    /// The population's index.
    pub pop: usize,
    /// Sample period, ms.
    pub dt_ms: f64,
    /// Columns: 1 (the whole population) or the population's size.
    pub cols: usize,
    /// `[samples, cols]` row-major, scaled.
    pub values: Vec<f64>,
}

impl InputData {
    /// The row of time `t` ms (`cols` values), or `None` outside the series.
    pub fn row(&self, t: f64) -> Option<&[f64]> {
        let k = (t / self.dt_ms + 1e-9).floor();
        let row = k as usize;
        (k >= 0.0 && row < self.values.len() / self.cols)
            .then(|| &self.values[row * self.cols..(row + 1) * self.cols])
    }
}

impl InputSeries {
    /// Reads the file and checks it against circuit `c`: the population exists, the array is
    /// `[samples]` or `[samples, n]`, finite, and `dt_ms` is positive. Errors name the file.
    pub fn load(&self, c: &Circuit) -> Result<InputData> {
        let pop = c.population_index(&self.population).ok_or_else(|| {
            Error::setting(
                "inputs.population",
                format!(
                    "no population `{}` (populations: {})",
                    self.population,
                    c.population_names()
                ),
            )
        })?;
        if !(self.dt_ms.is_finite() && self.dt_ms > 0.0) {
            return Err(Error::setting(
                "inputs.dt_ms",
                format!("must be positive, got {}", self.dt_ms),
            ));
        }
        if !self.scale.is_finite() {
            return Err(Error::setting("inputs.scale", "must be finite"));
        }
        let a = crate::io::read_npy(&self.file)?;
        let n = c.populations[pop].n;
        let cols = match a.shape.as_slice() {
            [_] => 1,
            [_, m] if *m == n => n,
            other => {
                return Err(Error::data(
                    &self.file,
                    format!(
                        "an input for `{}` must be [samples] or [samples, {n}] (one column per                          neuron); the array is {other:?}",
                        self.population
                    ),
                ))
            }
        };
        if a.data.is_empty() {
            return Err(Error::data(&self.file, "the input series is empty"));
        }
        if let Some(k) = a.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::data(
                &self.file,
                format!("value {k} (sample {}) is not finite", k / cols),
            ));
        }
        Ok(InputData {
            pop,
            dt_ms: self.dt_ms,
            cols,
            values: a.data.iter().map(|v| v * self.scale).collect(),
        })
    }
}

/// Deep brain stimulation: monophasic rectangular current pulses into one population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dbs {
    /// Stimulated population.
    pub population: String,
    /// Pulse frequency, Hz.
    pub freq_hz: f64,
    /// Pulse amplitude, in the population's input unit.
    pub amplitude: f64,
    /// Pulse width, ms.
    pub width_ms: f64,
    /// Stimulation starts here (the first pulse's onset), ms.
    #[serde(default)]
    pub on_ms: f64,
    /// Stimulation stops here, ms (none: never).
    #[serde(default)]
    pub off_ms: Option<f64>,
}

impl Dbs {
    /// The stimulation current at time `t` (ms): `amplitude` inside a pulse, else 0.
    pub fn current(&self, t: f64) -> f64 {
        if self.pulse(t) {
            self.amplitude
        } else {
            0.0
        }
    }

    /// Whether a pulse is on at time `t` (ms).
    pub fn pulse(&self, t: f64) -> bool {
        if t < self.on_ms || self.off_ms.is_some_and(|off| t >= off) {
            return false;
        }
        let period = 1000.0 / self.freq_hz;
        (t - self.on_ms).rem_euclid(period) < self.width_ms
    }
}

fn default_dt() -> f64 {
    0.025
}

/// A whole circuit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Circuit {
    /// The populations, in order (global neuron ids run through them in this order).
    pub populations: Vec<Population>,
    /// The projections.
    #[serde(default)]
    pub projections: Vec<Projection>,
    /// Integration step, ms.
    #[serde(default = "default_dt")]
    pub dt_ms: f64,
    /// Seed of connectivity, heterogeneity, initial state and noise.
    #[serde(default)]
    pub seed: u64,
    /// Deep brain stimulation, if any.
    #[serde(default)]
    pub dbs: Option<Dbs>,
    /// Currents given as time series from files (`[[inputs]]`).
    #[serde(default)]
    pub inputs: Vec<InputSeries>,
}

impl Circuit {
    /// The STN–GPe–GPi circuit of issue 13 with `n_stn`, `n_gpe`, `n_gpi` neurons, dt 0.025 ms,
    /// seed 42.
    ///
    /// **Connectivity** (probability and delay) is the table. **Synapses**:
    /// glutamatergic (STN→GPe, STN→GPi) with `E_rev = 0 mV` and `τ_decay = 3 ms` (AMPA-type; the
    /// values of the JAX implementation the issue cites); GABAergic (GPe→STN, GPe→GPi) with
    /// `E_rev = −80 mV` (GABA_A; Terman et al. 2002 use −85 mV for GPe→STN) and
    /// `τ_decay = 8 ms` (GABA_A-type decay of pallidal IPSCs, ~5–12 ms). The **weights** (CV 0.2,
    /// the JAX implementation's ±20 %) are **tuned here** for plausible rates with the neuron
    /// parameters below, not taken from a publication: 0.05 nS (STN→GPe, STN→GPi), 0.03 nS
    /// (GPe→GPi) onto the small AdEx cells, 0.005 mS/cm² (GPe→STN) onto the STN membrane.
    ///
    /// **Neurons**: STN is the `stn` model (Terman et al. 2002 / Rubin & Terman 2004, its
    /// published parameters) with a bias of 15 µA/cm², an OU background (τ 5 ms, σ 3 µA/cm²)
    /// and 5 % heterogeneity of `g_L`. GPe and GPi are `adex` cells with one parameter set
    /// **tuned here** (not a published fit): a small pallidal cell (C 40 pF, g_L 1 nS, E_L
    /// −55 mV, V_T −54 mV, Δ_T 1.7 mV, τ_w 20 ms, a 2.5 nS, b 20 pA, V_reset −60 mV, V_peak
    /// 15 mV, t_ref 1 ms) that fires ~50 Hz at 40 pA and ~68 Hz at 60 pA alone. GPe: 30 pA and a
    /// strong OU background (τ 10 ms, σ 30 pA) for irregular firing, 10 % heterogeneity of C
    /// and b; GPi: 62 pA and a weak background (σ 5 pA) for regular firing, 5 % heterogeneity
    /// of C. Initial `V` spread ±5 mV around rest. Measured at the 1K–2K–1.5K size, 1 s
    /// (rates and CV over 200–1000 ms): STN 11.2 Hz (CV 0.16), GPe 52.3 Hz (CV 0.55), GPi
    /// 63.5 Hz (CV 0.15); the STN's mean V has a small beta peak near 23 Hz (0.22 mV² in 13–30 Hz).
    pub fn default_stn_gpe_gpi(n_stn: usize, n_gpe: usize, n_gpi: usize) -> Self {
        let map = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let pallidal = map(&[
            ("C", 40.0),
            ("g_L", 1.0),
            ("E_L", -55.0),
            ("V_T", -54.0),
            ("Delta_T", 1.7),
            ("tau_w", 20.0),
            ("a", 2.5),
            ("b", 20.0),
            ("V_reset", -60.0),
            ("V_peak", 15.0),
            ("t_ref", 1.0),
        ]);
        let ou = |tau_ms: f64, sigma: f64| {
            Some(Ou {
                tau_ms,
                mu: 0.0,
                sigma,
            })
        };
        Circuit {
            populations: vec![
                Population {
                    name: "stn".into(),
                    neuron: "stn".into(),
                    n: n_stn,
                    params: BTreeMap::new(),
                    heterogeneity: map(&[("g_L", 0.05)]),
                    current: 15.0,
                    ou: ou(5.0, 3.0),
                    v_spread_mv: 5.0,
                },
                Population {
                    name: "gpe".into(),
                    neuron: "adex".into(),
                    n: n_gpe,
                    params: pallidal.clone(),
                    heterogeneity: map(&[("C", 0.1), ("b", 0.1)]),
                    current: 30.0,
                    ou: ou(10.0, 30.0),
                    v_spread_mv: 5.0,
                },
                Population {
                    name: "gpi".into(),
                    neuron: "adex".into(),
                    n: n_gpi,
                    params: pallidal,
                    heterogeneity: map(&[("C", 0.05)]),
                    current: 62.0,
                    ou: ou(10.0, 5.0),
                    v_spread_mv: 5.0,
                },
            ],
            projections: vec![
                proj("stn", "gpe", 0.15, 0.05, 5.0, 3.0, 0.0),
                proj("gpe", "stn", 0.07, 0.005, 8.0, 8.0, -80.0),
                proj("stn", "gpi", 0.30, 0.05, 5.0, 3.0, 0.0),
                proj("gpe", "gpi", 0.05, 0.03, 5.0, 8.0, -80.0),
            ],
            dt_ms: 0.025,
            seed: 42,
            dbs: None,
            inputs: Vec::new(),
        }
    }

    /// The index of the population called `name`.
    pub fn population_index(&self, name: &str) -> Option<usize> {
        self.populations.iter().position(|p| p.name == name)
    }

    /// Total number of neurons.
    pub fn n_neurons(&self) -> usize {
        self.populations.iter().map(|p| p.n).sum()
    }

    /// The expected number of synapses, `Σ p_connect n_pre n_post`.
    pub fn expected_synapses(&self) -> f64 {
        self.projections
            .iter()
            .map(|pr| {
                let n = |name: &str| {
                    self.population_index(name)
                        .map(|i| self.populations[i].n as f64)
                        .unwrap_or(0.0)
                };
                pr.p_connect * n(&pr.pre) * n(&pr.post)
            })
            .sum()
    }

    /// Delay of a projection in steps: `round(delay_ms / dt_ms)` (at least 1 after
    /// [`Circuit::validate`]).
    pub fn delay_steps(&self, pr: &Projection) -> usize {
        (pr.delay_ms / self.dt_ms).round() as usize
    }

    /// Sets `POP.NAME=VALUE`: a neuron parameter of a population (checked against the model
    /// by [`Circuit::validate`]).
    ///
    /// # Errors
    /// A [`Error::Param`] when `POP` is not a population or the text is not `POP.NAME`.
    pub fn set_param(&mut self, key: &str, value: f64) -> Result<()> {
        let (pop, name) = key.split_once('.').ok_or_else(|| {
            Error::param(
                key,
                "expected POP.NAME (e.g. gpe.C), a population and a parameter",
            )
        })?;
        let known = self.population_names();
        let p = self
            .populations
            .iter_mut()
            .find(|p| p.name == pop)
            .ok_or_else(|| {
                Error::param(key, format!("no population `{pop}` (populations: {known})"))
            })?;
        p.params.insert(name.to_string(), value);
        Ok(())
    }

    /// The population names, comma-separated (for messages).
    pub fn population_names(&self) -> String {
        self.populations
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The neuron spec of population `i` (after [`Circuit::validate`] it exists).
    pub fn spec(&self, i: usize) -> Result<&'static NeuronSpec> {
        let p = &self.populations[i];
        neuron::find(&p.neuron).map_err(|e| {
            Error::setting(
                format!("populations.{}.neuron", p.name),
                format!("`{}` is not a neuron model (known: {})", e.name, e.known),
            )
        })
    }

    /// The parameter vector of population `i` before heterogeneity: the model's defaults with
    /// the population's overrides.
    pub fn base_params(&self, i: usize) -> Result<Vec<f64>> {
        let spec = self.spec(i)?;
        let pop = &self.populations[i];
        let mut p = spec.defaults();
        for (name, &v) in &pop.params {
            let j = spec
                .param_index(name)
                .ok_or_else(|| unknown_param(pop, spec, name))?;
            p[j] = v;
        }
        Ok(p)
    }

    /// Sets every projection's [`Projection::fan_in_ref`] (where unset) to its mean fan-in at
    /// the current sizes, so that resizing the populations afterwards scales the weights with
    /// the fan-in and keeps each neuron's summed synaptic input. The default circuit's weights
    /// were tuned at 1K–2K–1.5K: call this before resizing it (`neurodiff circuit
    /// --keep-fan-in`) to run it at other sizes with the same mean input per neuron.
    pub fn keep_fan_in(&mut self) {
        let sizes: Vec<(String, usize)> = self
            .populations
            .iter()
            .map(|p| (p.name.clone(), p.n))
            .collect();
        for pr in &mut self.projections {
            if pr.fan_in_ref.is_none() {
                if let Some((_, n)) = sizes.iter().find(|(name, _)| *name == pr.pre) {
                    let fan_in = pr.p_connect * *n as f64;
                    if fan_in > 0.0 {
                        pr.fan_in_ref = Some(fan_in);
                    }
                }
            }
        }
    }

    /// Checks everything that does not need the connectivity: names, sizes, probabilities,
    /// signs, the step against the smallest delay, the neuron parameters (each population's,
    /// before heterogeneity) and the background and stimulation settings.
    ///
    /// # Errors
    /// The first problem found, naming the population, projection or parameter.
    pub fn validate(&self) -> Result<()> {
        let finite_pos = |name: &str, v: f64| -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::setting(name, format!("must be positive, got {v}")));
            }
            Ok(())
        };
        finite_pos("dt_ms", self.dt_ms)?;
        if self.populations.is_empty() {
            return Err(Error::setting(
                "populations",
                "the circuit has no population",
            ));
        }
        for (i, pop) in self.populations.iter().enumerate() {
            let key = |k: &str| format!("populations.{}.{k}", pop.name);
            if pop.name.is_empty() || pop.name.contains('.') {
                return Err(Error::setting(
                    "populations.name",
                    format!("`{}`: a name must be non-empty without `.`", pop.name),
                ));
            }
            if self.populations[..i].iter().any(|q| q.name == pop.name) {
                return Err(Error::setting(
                    key("name"),
                    "two populations have this name",
                ));
            }
            if pop.n == 0 {
                return Err(Error::setting(
                    key("n"),
                    "a population needs at least 1 neuron",
                ));
            }
            if pop.n > u32::MAX as usize {
                return Err(Error::setting(key("n"), "at most 2^32 − 1 neurons"));
            }
            let spec = self.spec(i)?;
            let p = self.base_params(i)?;
            neuron::visit(&pop.neuron, CheckParams(&p))
                .unwrap_or(Ok(()))
                .map_err(|e| {
                    Error::param(format!("{}.{}", pop.name, param_of(&e)), e.to_string())
                })?;
            for (name, &cv) in &pop.heterogeneity {
                if spec.param_index(name).is_none() {
                    return Err(unknown_param(pop, spec, name));
                }
                if !(cv.is_finite() && cv >= 0.0) {
                    return Err(Error::param(
                        format!("{}.{name}", pop.name),
                        format!("heterogeneity must be a relative spread ≥ 0, got {cv}"),
                    ));
                }
            }
            if !pop.current.is_finite() {
                return Err(Error::setting(key("current"), "must be finite"));
            }
            if !(pop.v_spread_mv.is_finite() && pop.v_spread_mv >= 0.0) {
                return Err(Error::setting(key("v_spread_mv"), "must be ≥ 0"));
            }
            if let Some(ou) = &pop.ou {
                finite_pos(&key("ou.tau_ms"), ou.tau_ms)?;
                if !(ou.sigma.is_finite() && ou.sigma >= 0.0) {
                    return Err(Error::setting(key("ou.sigma"), "must be ≥ 0"));
                }
                if !ou.mu.is_finite() {
                    return Err(Error::setting(key("ou.mu"), "must be finite"));
                }
            }
        }
        let names = self.population_names();
        let mut min_delay = f64::INFINITY;
        for pr in &self.projections {
            let label = pr.label();
            let key = |k: &str| format!("projection {label}: {k}");
            for end in [&pr.pre, &pr.post] {
                if self.population_index(end).is_none() {
                    return Err(Error::setting(
                        format!("projection {label}"),
                        format!("no population `{end}` (populations: {names})"),
                    ));
                }
            }
            if !(0.0..=1.0).contains(&pr.p_connect) {
                return Err(Error::setting(
                    key("p_connect"),
                    format!("{} is not a probability in [0, 1]", pr.p_connect),
                ));
            }
            for (name, v) in [
                ("weight", pr.weight),
                ("weight_cv", pr.weight_cv),
                ("delay_ms", pr.delay_ms),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Error::setting(
                        key(name),
                        format!("must be ≥ 0 (a conductance, spread or delay), got {v}"),
                    ));
                }
            }
            if !(pr.tau_decay_ms.is_finite() && pr.tau_decay_ms > 0.0) {
                return Err(Error::setting(
                    key("tau_decay_ms"),
                    format!("must be positive, got {}", pr.tau_decay_ms),
                ));
            }
            if !pr.e_rev_mv.is_finite() {
                return Err(Error::setting(key("e_rev_mv"), "must be finite"));
            }
            if let Some(r) = pr.fan_in_ref {
                if !(r.is_finite() && r > 0.0) {
                    return Err(Error::setting(
                        key("fan_in_ref"),
                        format!("must be a positive number of synapses per neuron, got {r}"),
                    ));
                }
            }
            min_delay = min_delay.min(pr.delay_ms);
        }
        if self.dt_ms > min_delay {
            return Err(Error::setting(
                "dt_ms",
                format!(
                    "dt = {} ms is larger than the smallest delay, {min_delay} ms: a spike must \
                     arrive at least one step after it is emitted",
                    self.dt_ms
                ),
            ));
        }
        if let Some(d) = &self.dbs {
            if self.population_index(&d.population).is_none() {
                return Err(Error::setting(
                    "dbs.population",
                    format!("no population `{}` (populations: {names})", d.population),
                ));
            }
            finite_pos("dbs.freq_hz", d.freq_hz)?;
            finite_pos("dbs.width_ms", d.width_ms)?;
            if d.width_ms >= 1000.0 / d.freq_hz {
                return Err(Error::setting(
                    "dbs.width_ms",
                    format!(
                        "a pulse of {} ms does not fit in the period {} ms of {} Hz",
                        d.width_ms,
                        1000.0 / d.freq_hz,
                        d.freq_hz
                    ),
                ));
            }
            if !d.amplitude.is_finite() || !d.on_ms.is_finite() {
                return Err(Error::setting("dbs", "amplitude and on_ms must be finite"));
            }
        }
        Ok(())
    }
}

fn proj(pre: &str, post: &str, p: f64, w: f64, delay: f64, tau: f64, e: f64) -> Projection {
    Projection {
        pre: pre.into(),
        post: post.into(),
        p_connect: p,
        weight: w,
        weight_cv: 0.2,
        delay_ms: delay,
        tau_decay_ms: tau,
        e_rev_mv: e,
        fan_in_ref: None,
    }
}

fn unknown_param(pop: &Population, spec: &NeuronSpec, name: &str) -> Error {
    let known: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
    Error::param(
        format!("{}.{name}", pop.name),
        format!(
            "the `{}` neuron of population `{}` has no parameter `{name}` (it has: {})",
            spec.name,
            pop.name,
            known.join(", ")
        ),
    )
}

fn param_of(e: &neuron::NeuronError) -> &str {
    match e {
        neuron::NeuronError::OutOfBounds { name, .. } => name,
        _ => "params",
    }
}

/// Runs the neuron's own `validate` on a parameter vector.
pub(crate) struct CheckParams<'a>(pub &'a [f64]);

impl neuron::NeuronVisitor for CheckParams<'_> {
    type Output = std::result::Result<(), neuron::NeuronError>;
    fn visit<N: neuron::Neuron>(self, n: N) -> Self::Output {
        n.validate(self.0)
    }
}
