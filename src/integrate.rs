//! Fixed-step integrators. They are stateless, know their order, and see only a
//! [`VectorField`]: a model, its coupling and its parameters bound together by the network.
//!
//! With additive noise, `z` (already scaled by `sigma sqrt(dt)`) is added once per step:
//! - Euler–Maruyama: `x' = P(x + dt f(x) + z)`
//! - stochastic Heun (vbjax, TVB): `x~ = P(x + dt f(x) + z)`,
//!   `x' = P(x + dt/2 (f(x) + f(x~)) + z)`
//! - classical RK4 (deterministic runs only).
//!
//! `P` is the model's projection (identity for most models).

use burn::prelude::{Backend, Tensor};

/// A right-hand side over the whole network state, plus the projection after each stage.
pub trait VectorField<B: Backend> {
    /// `d x / dt` for a state given as one `[batch, nodes]` tensor per variable.
    fn eval(&self, x: &[Tensor<B, 2>]) -> Vec<Tensor<B, 2>>;
    /// Projection onto the admissible state set.
    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>>;
}

/// The integration scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Integrator {
    /// Euler (Euler–Maruyama with noise), order 1.
    Euler,
    /// Heun (stochastic Heun with additive noise), order 2 for ODEs.
    #[default]
    Heun,
    /// Classical fourth-order Runge–Kutta, ODEs only.
    Rk4,
}

crate::choice!(Integrator, "integrator", [Euler => "euler", Heun => "heun", Rk4 => "rk4"]);

impl Integrator {
    /// Order of convergence for ODEs.
    pub fn order(self) -> usize {
        match self {
            Self::Euler => 1,
            Self::Heun => 2,
            Self::Rk4 => 4,
        }
    }

    /// Whether the scheme is valid with additive noise.
    pub fn supports_noise(self) -> bool {
        !matches!(self, Self::Rk4)
    }

    /// All schemes (for tests that iterate over them).
    pub const ALL: [Integrator; 3] = [Self::Euler, Self::Heun, Self::Rk4];

    /// Advances `x` by one step of length `dt`, adding the noise increments `z` (one entry per
    /// variable, `None` for none; an empty slice for a deterministic step).
    pub fn step<B: Backend, F: VectorField<B> + ?Sized>(
        self,
        f: &F,
        x: Vec<Tensor<B, 2>>,
        dt: f64,
        z: &[Option<Tensor<B, 2>>],
    ) -> Vec<Tensor<B, 2>> {
        let add_noise = |v: usize, t: Tensor<B, 2>| match z.get(v) {
            Some(Some(n)) => t + n.clone(),
            _ => t,
        };
        match self {
            Self::Euler => {
                let d = f.eval(&x);
                let nx = x
                    .into_iter()
                    .zip(d)
                    .enumerate()
                    .map(|(v, (xv, dv))| add_noise(v, xv + dv * dt))
                    .collect();
                f.project(nx)
            }
            Self::Heun => {
                let d1 = f.eval(&x);
                let xi: Vec<_> = x
                    .iter()
                    .zip(&d1)
                    .enumerate()
                    .map(|(v, (xv, dv))| add_noise(v, xv.clone() + dv.clone() * dt))
                    .collect();
                let xi = f.project(xi);
                let d2 = f.eval(&xi);
                drop(xi);
                let nx = x
                    .into_iter()
                    .zip(d1.into_iter().zip(d2))
                    .enumerate()
                    .map(|(v, (xv, (a, b)))| add_noise(v, xv + (a + b) * (0.5 * dt)))
                    .collect();
                f.project(nx)
            }
            Self::Rk4 => {
                let stage = |x: &[Tensor<B, 2>], k: &[Tensor<B, 2>], h: f64| -> Vec<Tensor<B, 2>> {
                    x.iter()
                        .zip(k)
                        .map(|(xv, kv)| xv.clone() + kv.clone() * h)
                        .collect()
                };
                let k1 = f.eval(&x);
                let k2 = f.eval(&stage(&x, &k1, 0.5 * dt));
                let k3 = f.eval(&stage(&x, &k2, 0.5 * dt));
                let k4 = f.eval(&stage(&x, &k3, dt));
                let nx = x
                    .into_iter()
                    .zip(k1.into_iter().zip(k2).zip(k3.into_iter().zip(k4)))
                    .enumerate()
                    .map(|(v, (xv, ((a, b), (c, d))))| {
                        add_noise(v, xv + (a + (b + c) * 2.0 + d) * (dt / 6.0))
                    })
                    .collect();
                f.project(nx)
            }
        }
    }
}
