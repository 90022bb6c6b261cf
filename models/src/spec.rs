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

impl VarSpec {
    /// A state variable (a `const` shorthand for the struct literal).
    pub const fn new(
        name: &'static str,
        unit: &'static str,
        initial: f64,
        range: (f64, f64),
        doc: &'static str,
    ) -> Self {
        Self {
            name,
            unit,
            initial,
            range,
            doc,
        }
    }
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
    /// A parameter (a `const` shorthand for the struct literal).
    pub const fn new(
        name: &'static str,
        default: f64,
        unit: &'static str,
        lower: f64,
        upper: f64,
        doc: &'static str,
    ) -> Self {
        Self {
            name,
            default,
            unit,
            lower,
            upper,
            doc,
        }
    }

    /// Whether `value` lies inside the admissible bounds.
    pub fn admits(&self, value: f64) -> bool {
        value.is_finite() && value >= self.lower && value <= self.upper
    }
}

/// One coupling input a model accepts: the network sums a quantity sent by the other nodes
/// (through the connectome) and hands the result to the model's right-hand side.
///
/// The quantity each node sends is [`Model::coupled`](crate::Model::coupled): by default the state
/// variable [`CouplingSpec::var`] itself; a few models send a function of their state instead
/// (Jansen–Rit sends `y1 - y2`, Larter–Breakspear its firing rate `Q_V(V)`), which
/// [`CouplingSpec::sends`] documents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CouplingSpec {
    /// Name of the input (e.g. `c_r`).
    pub name: &'static str,
    /// Index of the state variable that is sent through the connectome to form this input (or,
    /// when [`CouplingSpec::sends`] is set, the main state variable the sent quantity is made of).
    pub var: usize,
    /// `None` when the node sends state variable `var` as it is; otherwise the expression it
    /// sends instead, for documentation (e.g. `y1 - y2`). The expression itself is computed by
    /// [`Model::coupled`](crate::Model::coupled).
    pub sends: Option<&'static str>,
    /// Whether the network computes this input unless told otherwise. An input that is off is
    /// zero (and costs nothing).
    pub default_on: bool,
    /// One-line meaning.
    pub doc: &'static str,
}

/// The coupling function a model is normally used with. `s_j` is the quantity node `j` sends
/// ([`Model::coupled`](crate::Model::coupled)), `W_ij` the weight from `j` onto `i`, `G` the
/// global coupling strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouplingFunction {
    /// `c_i = G Σ_j W_ij s_j`.
    Linear,
    /// `c_i = G Σ_j W_ij (s_j - s_i)` (diffusive coupling).
    Difference,
    /// TVB's `SigmoidalJansenRit`: `c_i = G Σ_j W_ij S(s_j)` with the pre-synaptic sigmoid
    /// `S(v) = cmin + (cmax - cmin) / (1 + exp(r (midpoint - v)))` (TVB defaults `cmin = 0`,
    /// `cmax = 2 × 0.0025 ms⁻¹`, `midpoint = 6 mV`, `r = 0.56 mV⁻¹`).
    SigmoidalJansenRit,
    /// `c_i = G Σ_j W_ij sin(s_j - s_i)`.
    Kuramoto,
}

impl CouplingFunction {
    /// Lower-case name (`linear`, `difference`, `sigmoidal_jansen_rit`, `kuramoto`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Difference => "difference",
            Self::SigmoidalJansenRit => "sigmoidal_jansen_rit",
            Self::Kuramoto => "kuramoto",
        }
    }
}

/// The unit of time of a model's equations; `dt` and durations are given in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Milliseconds (most neural masses).
    Ms,
    /// Seconds (e.g. `hopf`, fitted to BOLD).
    S,
}

impl TimeUnit {
    /// The symbol: `ms` or `s`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ms => "ms",
            Self::S => "s",
        }
    }

    /// One unit in seconds.
    pub const fn seconds(self) -> f64 {
        match self {
            Self::Ms => 1e-3,
            Self::S => 1.0,
        }
    }

    /// A default simulated duration in this unit: 3 s of milliseconds-scale dynamics, 60 s of
    /// seconds-scale ones.
    pub const fn default_duration(self) -> f64 {
        match self {
            Self::Ms => 3000.0,
            Self::S => 60.0,
        }
    }

    /// A default sampling period in this unit (1 ms, 0.1 s).
    pub const fn default_sample_period(self) -> f64 {
        match self {
            Self::Ms => 1.0,
            Self::S => 0.1,
        }
    }
}

impl std::fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq<&str> for TimeUnit {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// Everything static about a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec {
    /// Name on the command line (e.g. `mpr`).
    pub name: &'static str,
    /// Human-readable title.
    pub title: &'static str,
    /// Unit of time of the equations; `dt` and durations are in this unit.
    pub time_unit: TimeUnit,
    /// A sensible integration step, in `time_unit`.
    pub default_dt: f64,
    /// The sampling period `simulate` uses by default, in `time_unit`, when the unit's default
    /// ([`TimeUnit::default_sample_period`]) would not resolve the model's dynamics (`None`: the
    /// unit's default).
    pub sample_period: Option<f64>,
    /// State variables, in the order of the state list.
    pub state: &'static [VarSpec],
    /// Parameters, in the order of the parameter list the right-hand side receives.
    pub params: &'static [ParamSpec],
    /// Coupling inputs, in the order of the coupling list the right-hand side receives.
    pub coupling: &'static [CouplingSpec],
    /// The coupling function the model is normally used with (and its typical strength is
    /// given for).
    pub coupling_function: CouplingFunction,
    /// A typical global coupling strength `G` for this model, with
    /// [`ModelSpec::coupling_function`], on a connectome whose largest weight is 1 (the default
    /// value of the coupling's `G`). An order of magnitude: the right value depends on the
    /// connectome's in-strengths (about 13 on average for TVB's 76 regions, 1.8 for the bundled
    /// HCP 80) and should be fitted.
    pub coupling_strength: f64,
    /// Where the equations come from.
    pub citation: &'static str,
}

/// The lookups of a description with a `state: &[VarSpec]` and a `params: &[ParamSpec]` list
/// (models' [`ModelSpec`] and neurons' `NeuronSpec`), written once.
#[macro_export]
#[doc(hidden)]
macro_rules! spec_lookups {
    () => {
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
    };
}

impl ModelSpec {
    /// The sampling period `simulate` uses by default, in [`ModelSpec::time_unit`].
    pub fn default_sample_period(&self) -> f64 {
        self.sample_period
            .unwrap_or(self.time_unit.default_sample_period())
    }

    crate::spec_lookups!();

    /// Default initial state, one value per variable.
    pub fn initial(&self) -> Vec<f64> {
        self.state.iter().map(|v| v.initial).collect()
    }
}

/// Declares a model's parameters once: a struct with one named field per parameter (generic over
/// the number type, so equations read `p.tau` instead of `p[0]`), the [`ParamSpec`] table in the
/// same order, and the conversions between them.
///
/// ```
/// neurodiff_models::params! {
///     /// Parameters of a leaky node.
///     pub struct Params, const PARAMS {
///         /// damping coefficient
///         gamma = -10.0, "1/ms", [-100.0, 0.0];
///         /// input
///         I = 0.0, "1/ms", [-10.0, 10.0];
///     }
/// }
/// let p = Params::from_slice(&[-2.0, 0.5]);
/// assert_eq!((p.gamma, p.I), (-2.0, 0.5));
/// assert_eq!(PARAMS[1].name, "I");
/// assert_eq!(Params::index().I, 1);
/// ```
///
/// Each parameter is `name = default, "unit", [lower, upper];` with its one-line meaning as a
/// doc comment.
#[macro_export]
macro_rules! params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident, const $table:ident {
            $(
                #[doc = $doc:literal]
                $p:ident = $default:expr, $unit:literal, [$lo:expr, $hi:expr];
            )*
        }
    ) => {
        $(#[$meta])*
        #[allow(non_snake_case)]
        #[derive(Clone, Copy, Debug, PartialEq)]
        $vis struct $name<R> {
            $(
                #[doc = $doc]
                pub $p: R,
            )*
        }

        /// The parameter table, in the order the engine passes the values.
        $vis const $table: &[$crate::ParamSpec] = &[
            $($crate::ParamSpec::new(stringify!($p), $default, $unit, $lo, $hi, $doc.trim_ascii()),)*
        ];

        impl<R: Copy> $name<R> {
            /// The parameters from the slice the engine passes (one value per entry of the
            /// table, in its order).
            ///
            /// # Panics
            /// If the slice has another length.
            #[inline(always)]
            #[allow(non_snake_case)]
            pub fn from_slice(p: &[R]) -> Self {
                let [$($p),*] = p else {
                    panic!(
                        "{}: expected {} parameters, got {}",
                        stringify!($name),
                        $table.len(),
                        p.len()
                    )
                };
                Self { $($p: *$p),* }
            }
        }

        impl $name<usize> {
            /// Each parameter's position in the table (for gradients indexed by parameter).
            #[allow(unused_assignments)]
            pub fn index() -> Self {
                let mut i = 0usize;
                Self {
                    $($p: {
                        i += 1;
                        i - 1
                    }),*
                }
            }
        }
    };
}
