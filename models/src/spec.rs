//! Static descriptions of models: state variables, parameters (with units and bounds) and coupling
//! inputs. The command line, the fitter and `neurodiff models` all read these.

/// One state variable of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VarSpec {
    /// Short name, used on the command line and in output metadata (e.g. `r`).
    pub name: &'static str,
    /// Physical unit (e.g. `kHz`, `mV`, `a.u.`).
    pub unit: &'static str,
    /// Default initial value (used for every node unless an initial state is given).
    pub initial: f64,
    /// A plausible range of values, used to draw random initial conditions and in documentation.
    pub range: (f64, f64),
    /// One-line meaning.
    pub doc: &'static str,
}

/// One parameter of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// Short name, used on the command line (e.g. `eta`).
    pub name: &'static str,
    /// Default value.
    pub default: f64,
    /// Physical unit.
    pub unit: &'static str,
    /// Admissible lower bound (inclusive). Values outside `[lower, upper]` are rejected.
    pub lower: f64,
    /// Admissible upper bound (inclusive).
    pub upper: f64,
    /// One-line meaning.
    pub doc: &'static str,
}

impl ParamSpec {
    /// Whether `value` lies inside the admissible bounds.
    pub fn admits(&self, value: f64) -> bool {
        value.is_finite() && value >= self.lower && value <= self.upper
    }
}

/// One coupling input a model accepts: the network sums a chosen state variable of the other nodes
/// (through the connectome) and hands the result to the model's right-hand side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CouplingSpec {
    /// Name of the input (e.g. `c_r`).
    pub name: &'static str,
    /// Index of the state variable that is sent through the connectome to form this input.
    pub var: usize,
    /// Whether the network computes this input unless told otherwise. An input that is off is
    /// zero (and costs nothing).
    pub default_on: bool,
    /// One-line meaning.
    pub doc: &'static str,
}

/// Everything static about a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec {
    /// Name on the command line (e.g. `mpr`).
    pub name: &'static str,
    /// Human-readable title.
    pub title: &'static str,
    /// Unit of time of the equations (`ms` or `s`); `dt` and durations are in this unit.
    pub time_unit: &'static str,
    /// A sensible integration step, in `time_unit`.
    pub default_dt: f64,
    /// State variables, in the order of the state list.
    pub state: &'static [VarSpec],
    /// Parameters, in the order of the parameter list the right-hand side receives.
    pub params: &'static [ParamSpec],
    /// Coupling inputs, in the order of the coupling list the right-hand side receives.
    pub coupling: &'static [CouplingSpec],
    /// A typical global coupling strength `G` for this model on a connectome whose largest
    /// weight is 1 (the default value of the coupling's `G`).
    pub coupling_strength: f64,
    /// Where the equations come from.
    pub citation: &'static str,
}

impl ModelSpec {
    /// Number of state variables.
    pub fn n_vars(&self) -> usize {
        self.state.len()
    }

    /// Index of the parameter called `name`.
    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    /// Index of the state variable called `name`.
    pub fn var_index(&self, name: &str) -> Option<usize> {
        self.state.iter().position(|v| v.name == name)
    }

    /// Default parameter values, in order.
    pub fn defaults(&self) -> Vec<f64> {
        self.params.iter().map(|p| p.default).collect()
    }

    /// Default initial state, one value per variable.
    pub fn initial(&self) -> Vec<f64> {
        self.state.iter().map(|v| v.initial).collect()
    }
}
