//! The schemes as data.

/// An explicit Runge–Kutta scheme: stage `i` evaluates the drift at
/// `x + dt Σ_{j<i} a[i][j] k_j`, and the step is `x + dt · scale · Σ_i b[i] k_i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tableau {
    /// Stage coefficients: `a[i]` has `i` entries (the first stage is the state itself).
    pub a: &'static [&'static [f64]],
    /// Weights of the stages, multiplied by `scale` (kept apart so that equal weights sum
    /// before one multiplication, as in `(k₁ + k₂) dt/2`).
    pub b: &'static [f64],
    /// Common factor of the weights.
    pub scale: f64,
    /// Whether the noise increment is added to the input of every stage after the first (and
    /// always to the result): stochastic Heun. Schemes with this unset are deterministic only
    /// unless they have a single stage.
    pub noise_in_stages: bool,
    /// Whether the projection is applied to each stage's input (Heun) or only to the result.
    pub project_stages: bool,
    /// Order of convergence for ODEs.
    pub order: usize,
}

/// Euler (Euler–Maruyama with noise).
pub const EULER: Tableau = Tableau {
    a: &[&[]],
    b: &[1.0],
    scale: 1.0,
    noise_in_stages: false,
    project_stages: false,
    order: 1,
};

/// Heun's method (stochastic Heun with additive noise, as in vbjax and TVB).
pub const HEUN: Tableau = Tableau {
    a: &[&[], &[1.0]],
    b: &[1.0, 1.0],
    scale: 0.5,
    noise_in_stages: true,
    project_stages: true,
    order: 2,
};

/// Kutta's third-order method (1901): stages at `t`, `t + dt/2`, `t + dt`, the last from
/// `x + dt (−k₁ + 2 k₂)`.
pub const RK3: Tableau = Tableau {
    a: &[&[], &[0.5], &[-1.0, 2.0]],
    b: &[1.0, 4.0, 1.0],
    scale: 1.0 / 6.0,
    noise_in_stages: false,
    project_stages: false,
    order: 3,
};

/// The classical fourth-order Runge–Kutta method.
pub const RK4: Tableau = Tableau {
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0, 2.0, 2.0, 1.0],
    scale: 1.0 / 6.0,
    noise_in_stages: false,
    project_stages: false,
    order: 4,
};

/// The integration scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrator {
    /// Euler (Euler–Maruyama with noise), order 1.
    Euler,
    /// Heun (stochastic Heun with additive noise), order 2 for ODEs.
    #[default]
    Heun,
    /// Kutta's third-order Runge–Kutta, ODEs only.
    Rk3,
    /// Classical fourth-order Runge–Kutta, ODEs only.
    Rk4,
    /// Exponential Euler on the drift's diagonal linear part (Euler where a model has none),
    /// order 1; exact for linear variables with frozen coefficients.
    ExpEuler,
}

crate::choice!(Integrator, "integrator", [
    Euler => "euler", Heun => "heun", Rk3 => "rk3", Rk4 => "rk4", ExpEuler => "exp_euler",
]);

impl Integrator {
    /// All schemes (the convergence-order and engine-agreement tests iterate over them).
    pub const ALL: [Integrator; 5] = [
        Self::Euler,
        Self::Heun,
        Self::Rk3,
        Self::Rk4,
        Self::ExpEuler,
    ];

    /// The explicit Runge–Kutta tableau, or `None` for exponential Euler.
    pub fn tableau(self) -> Option<&'static Tableau> {
        match self {
            Self::Euler => Some(&EULER),
            Self::Heun => Some(&HEUN),
            Self::Rk3 => Some(&RK3),
            Self::Rk4 => Some(&RK4),
            Self::ExpEuler => None,
        }
    }

    /// Order of convergence for ODEs.
    pub fn order(self) -> usize {
        self.tableau().map_or(1, |t| t.order)
    }

    /// Whether the scheme is valid with additive noise.
    pub fn supports_noise(self) -> bool {
        self.tableau()
            .is_none_or(|t| t.noise_in_stages || t.b.len() == 1)
    }
}
