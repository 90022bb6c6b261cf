//! The schemes on Burn tensors: the tensor engine's step.

use burn::prelude::{Backend, Tensor};

use super::scheme::{Integrator, Tableau};

/// A right-hand side over the whole network state, plus the projection after each stage.
pub trait VectorField<B: Backend> {
    /// `d x / dt` for a state given as one `[batch, nodes]` tensor per variable.
    fn eval(&self, x: &[Tensor<B, 2>]) -> Vec<Tensor<B, 2>>;
    /// Projection onto the admissible state set.
    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>>;
    /// `d x / dt` and, when the model gives one, the diagonal linear part of the drift at the
    /// same state and coupling (see [`neurodiff_models::Model::linear`]). The default has none.
    fn eval_linear(&self, x: &[Tensor<B, 2>]) -> (Vec<Tensor<B, 2>>, Option<Vec<Tensor<B, 2>>>) {
        (self.eval(x), None)
    }
}

impl Integrator {
    /// Advances `x` by one step of length `dt`, adding the noise increments `z` (one entry per
    /// variable, `None` for none; an empty slice for a deterministic step).
    pub fn step<B: Backend, F: VectorField<B> + ?Sized>(
        self,
        f: &F,
        x: Vec<Tensor<B, 2>>,
        dt: f64,
        z: &[Option<Tensor<B, 2>>],
    ) -> Vec<Tensor<B, 2>> {
        match self.tableau() {
            Some(t) => rk_step(t, f, x, dt, z),
            None => exp_euler_step(f, x, dt, z),
        }
    }
}

fn add_noise<B: Backend>(z: &[Option<Tensor<B, 2>>], v: usize, t: Tensor<B, 2>) -> Tensor<B, 2> {
    match z.get(v) {
        Some(Some(n)) => t + n.clone(),
        _ => t,
    }
}

/// `Σ_i w_i k_i` over the stages with a nonzero weight, weights of 1 without a multiplication
/// (so Heun's `(k₁ + k₂)` and Euler's `k₁` are computed as written by hand).
fn weighted<B: Backend>(ks: &[&Tensor<B, 2>], w: &[f64]) -> Tensor<B, 2> {
    let mut acc: Option<Tensor<B, 2>> = None;
    for (k, &wi) in ks.iter().zip(w) {
        if wi == 0.0 {
            continue;
        }
        let term = if wi == 1.0 {
            (*k).clone()
        } else {
            (*k).clone() * wi
        };
        acc = Some(match acc {
            None => term,
            Some(a) => a + term,
        });
    }
    acc.expect("a stage with a nonzero weight")
}

/// One step of an explicit Runge–Kutta scheme given by its tableau.
fn rk_step<B: Backend, F: VectorField<B> + ?Sized>(
    t: &Tableau,
    f: &F,
    x: Vec<Tensor<B, 2>>,
    dt: f64,
    z: &[Option<Tensor<B, 2>>],
) -> Vec<Tensor<B, 2>> {
    let nv = x.len();
    // k[i][v]: stage i's drift of variable v.
    let mut k: Vec<Vec<Tensor<B, 2>>> = Vec::with_capacity(t.b.len());
    k.push(f.eval(&x));
    for a in &t.a[1..] {
        let xi: Vec<Tensor<B, 2>> = (0..nv)
            .map(|v| {
                let stages: Vec<&Tensor<B, 2>> = k.iter().map(|s| &s[v]).collect();
                // One nonzero coefficient (every classical scheme here): `x + k_j (a_j dt)`.
                let inc = match a.iter().filter(|&&c| c != 0.0).count() {
                    1 => {
                        let j = a.iter().position(|&c| c != 0.0).expect("one nonzero");
                        stages[j].clone() * (a[j] * dt)
                    }
                    _ => weighted(&stages, a) * dt,
                };
                let s = x[v].clone() + inc;
                if t.noise_in_stages {
                    add_noise(z, v, s)
                } else {
                    s
                }
            })
            .collect();
        let xi = if t.project_stages { f.project(xi) } else { xi };
        k.push(f.eval(&xi));
    }
    let h = dt * t.scale;
    let nx = x
        .into_iter()
        .enumerate()
        .map(|(v, xv)| {
            let stages: Vec<&Tensor<B, 2>> = k.iter().map(|s| &s[v]).collect();
            add_noise(z, v, xv + weighted(&stages, t.b) * h)
        })
        .collect();
    f.project(nx)
}

/// Below this `|a dt|`, `φ₁` is evaluated by its Taylor series: `eᶻ − 1` loses about
/// `ε/|z|` of relative precision to cancellation (`1e-6` in `f32` here), the six-term series at
/// most `z⁶/5040` (`3e-12`).
const PHI1_SERIES: f64 = 0.05;

/// `φ₁(z) = (eᶻ − 1)/z`, by its series `Σ_{k<6} zᵏ/(k+1)!` near 0. The quotient uses a
/// denominator that is never 0, so its derivative stays finite where the series is taken.
fn phi1<B: Backend>(z: Tensor<B, 2>) -> Tensor<B, 2> {
    let small = z.clone().abs().lower_elem(PHI1_SERIES);
    let safe = z.clone().mask_fill(small.clone(), 1.0);
    let quotient = (safe.clone().exp() - 1.0) / safe;
    // Horner: 1 + z/2 + z²/6 + z³/24 + z⁴/120 + z⁵/720.
    let mut series = z.clone() / 720.0 + 1.0 / 120.0;
    for c in [1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0] {
        series = series * z.clone() + c;
    }
    quotient.mask_where(small, series)
}

/// One exponential Euler step: `x + dt φ₁(a dt) f(x) + z` for the variables with a linear part,
/// Euler for the others.
fn exp_euler_step<B: Backend, F: VectorField<B> + ?Sized>(
    f: &F,
    x: Vec<Tensor<B, 2>>,
    dt: f64,
    z: &[Option<Tensor<B, 2>>],
) -> Vec<Tensor<B, 2>> {
    let (d, a) = f.eval_linear(&x);
    let nx = match a {
        None => x
            .into_iter()
            .zip(d)
            .enumerate()
            .map(|(v, (xv, dv))| add_noise(z, v, xv + dv * dt))
            .collect(),
        Some(a) => x
            .into_iter()
            .zip(d.into_iter().zip(a))
            .enumerate()
            .map(|(v, (xv, (dv, av)))| add_noise(z, v, xv + phi1(av * dt) * dv * dt))
            .collect(),
    };
    f.project(nx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = burn::backend::NdArray<f64>;

    /// `φ₁` against `expm1(z)/z` in `f64` on both sides of the series threshold and at 0.
    #[test]
    fn phi1_is_accurate_everywhere() {
        let zs: [f64; 12] = [
            0.0, 1e-12, -1e-8, 1e-3, -0.0499, 0.0499, 0.0501, -0.0501, 0.5, -3.0, 4.0, -40.0,
        ];
        let d = Default::default();
        let t: Tensor<B, 2> = Tensor::from_data(
            TensorData::new(zs.to_vec(), [1, zs.len()]),
            crate::float_opts::<B>(&d),
        );
        let got: Vec<f64> = phi1(t).into_data().into_vec().unwrap();
        for (z, g) in zs.iter().zip(got) {
            let want = if *z == 0.0 { 1.0 } else { z.exp_m1() / z };
            assert!(
                ((g - want) / want).abs() < 1e-11,
                "phi1({z}) = {g}, want {want}"
            );
        }
    }
}
