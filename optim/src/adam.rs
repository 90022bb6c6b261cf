//! Adam (Kingma & Ba 2015) on plain tensors.
//!
//! Burn's own optimisers (`burn::optim`) update the parameters of a `Module` through its
//! records; neurodiff's parameters are plain tensors (a list, leading dimension = restart index,
//! as in [`crate::polyak`]), so Adam is written here directly. With `t` the step count,
//!
//! ```text
//! m ← β1 m + (1 − β1) g          v ← β2 v + (1 − β2) g²
//! m̂ = m / (1 − β1^t)             v̂ = v / (1 − β2^t)
//! θ ← θ − lr · m̂ / (sqrt(v̂) + eps)
//! ```
//!
//! Everything is element-wise, so restarts are independent. Units: the step is about `lr` in
//! the parameters' unit per entry; run it on the dimensionless unbounded variables of
//! [`crate::transform`].
//!
//! Under autodiff, pass the inner (detached) tensors and gradients and re-attach the result, as
//! for [`crate::polyak`]; the state then lives on the inner backend too.

use burn::prelude::{Backend, Tensor};

use crate::error::{Error, Result};
use crate::tensors::check_pairs;

/// Settings of [`Adam`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (step size), positive; default `1e-3`.
    pub lr: f64,
    /// Decay of the first moment, in `[0, 1)`; default `0.9`.
    pub beta1: f64,
    /// Decay of the second moment, in `[0, 1)`; default `0.999`.
    pub beta2: f64,
    /// Added to `sqrt(v̂)` against division by zero, positive; default `1e-8`.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Checks the settings' ranges.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::setting(
                    name,
                    format!("must be a positive finite number, got {v}"),
                ))
            }
        };
        let decay = |name: &'static str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::setting(name, format!("must lie in [0, 1), got {v}")))
            }
        };
        positive("lr", self.lr)?;
        decay("beta1", self.beta1)?;
        decay("beta2", self.beta2)?;
        positive("eps", self.eps)
    }
}

/// The optimiser's state: moment estimates shaped like the parameters, and the step count.
#[derive(Debug, Clone)]
pub struct AdamState<B: Backend, const D: usize> {
    /// First-moment estimates `m`, one per parameter tensor (same shapes).
    pub m: Vec<Tensor<B, D>>,
    /// Second-moment estimates `v`, one per parameter tensor (same shapes).
    pub v: Vec<Tensor<B, D>>,
    /// Number of steps taken.
    pub t: u64,
}

/// Adam with a validated [`AdamConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    config: AdamConfig,
}

impl Adam {
    /// An optimiser with checked settings.
    pub fn new(config: AdamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The settings.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Fresh state (zero moments, no steps) for parameters shaped like `params`.
    ///
    /// # Shapes
    /// `params[k]`: `[R, ...]`, all with the same `R`.
    pub fn init<B: Backend, const D: usize>(
        &self,
        params: &[Tensor<B, D>],
    ) -> Result<AdamState<B, D>> {
        check_pairs("Adam::init", params, params)?;
        let zeros: Vec<_> = params.iter().map(|p| p.zeros_like()).collect();
        Ok(AdamState {
            m: zeros.clone(),
            v: zeros,
            t: 0,
        })
    }

    /// One step: updates `state` and returns the new parameters. On error `state` is left as it
    /// was.
    ///
    /// # Shapes
    /// `params[k]`, `grads[k]`, `state.m[k]`, `state.v[k]`: one common shape `[R, ...]` per `k`.
    pub fn step<B: Backend, const D: usize>(
        &self,
        params: &[Tensor<B, D>],
        grads: &[Tensor<B, D>],
        state: &mut AdamState<B, D>,
    ) -> Result<Vec<Tensor<B, D>>> {
        check_pairs("Adam::step", params, grads)?;
        check_pairs("Adam::step (first moments)", params, &state.m)?;
        check_pairs("Adam::step (second moments)", params, &state.v)?;
        let c = &self.config;
        let t = state.t + 1;
        let bc1 = 1.0 - c.beta1.powf(t as f64);
        let bc2 = 1.0 - c.beta2.powf(t as f64);
        let mut out = Vec::with_capacity(params.len());
        for (k, (p, g)) in params.iter().zip(grads).enumerate() {
            let m = state.m[k].clone() * c.beta1 + g.clone() * (1.0 - c.beta1);
            let v = state.v[k].clone() * c.beta2 + g.clone().square() * (1.0 - c.beta2);
            let m_hat = m.clone() / bc1;
            let v_hat = v.clone() / bc2;
            out.push(p.clone() - m_hat / (v_hat.sqrt() + c.eps) * c.lr);
            state.m[k] = m;
            state.v[k] = v;
        }
        state.t = t;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::prelude::TensorData;

    type B = NdArray<f64>;

    fn t2(v: Vec<f64>, shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(v, shape),
            crate::test_opts::<B>(&Default::default()),
        )
    }

    fn host<const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
    }

    #[test]
    fn first_two_steps_by_hand() {
        let cfg = AdamConfig {
            lr: 0.1,
            beta1: 0.8,
            beta2: 0.9,
            eps: 1e-3,
        };
        let adam = Adam::new(cfg).unwrap();
        let p0 = vec![1.0, -2.0, 0.5, 3.0];
        let g1 = vec![0.4, -1.0, 2.0, 0.0];
        let g2 = vec![-0.2, -0.5, 1.0, 3.0];
        let params = vec![t2(p0.clone(), [2, 2])];
        let mut st = adam.init(&params).unwrap();
        let params = adam
            .step(&params, &[t2(g1.clone(), [2, 2])], &mut st)
            .unwrap();
        let after1 = host(params[0].clone());
        let params = adam
            .step(&params, &[t2(g2.clone(), [2, 2])], &mut st)
            .unwrap();
        let after2 = host(params[0].clone());
        assert_eq!(st.t, 2);
        for i in 0..4 {
            // Step 1: m = 0.2 g1, v = 0.1 g1²; m̂ = g1, v̂ = g1².
            let s1 = p0[i] - 0.1 * g1[i] / (g1[i].abs() + 1e-3);
            // Step 2 written out: m = 0.8·0.2 g1 + 0.2 g2, v = 0.9·0.1 g1² + 0.1 g2²,
            // corrections 1 − 0.64 = 0.36 and 1 − 0.81 = 0.19.
            let m = 0.16 * g1[i] + 0.2 * g2[i];
            let v = 0.09 * g1[i] * g1[i] + 0.1 * g2[i] * g2[i];
            let s2 = s1 - 0.1 * (m / 0.36) / ((v / 0.19).sqrt() + 1e-3);
            assert!(
                (after1[i] - s1).abs() < 1e-12,
                "step 1, {i}: {} vs {s1}",
                after1[i]
            );
            assert!(
                (after2[i] - s2).abs() < 1e-12,
                "step 2, {i}: {} vs {s2}",
                after2[i]
            );
        }
        // The zero gradient entry did not move in step 1.
        assert_eq!(after1[3], 3.0);
    }

    #[test]
    fn converges_on_a_quadratic() {
        // L = Σ a_i (θ_i − c_i)², gradient 2 a_i (θ_i − c_i), badly scaled on purpose.
        let a = [1.0, 100.0, 0.01, 5.0, 1.0, 30.0];
        let c = [3.0, -1.0, 0.5, 2.0, -4.0, 0.0];
        let adam = Adam::new(AdamConfig {
            lr: 0.05,
            ..Default::default()
        })
        .unwrap();
        let mut params = vec![t2(vec![0.0; 2], [2, 1]), t2(vec![0.0; 4], [2, 2])];
        let mut st = adam.init(&params).unwrap();
        for _ in 0..3000 {
            let th: Vec<f64> = params.iter().flat_map(|p| host(p.clone())).collect();
            let g: Vec<f64> = (0..6).map(|i| 2.0 * a[i] * (th[i] - c[i])).collect();
            let grads = vec![t2(g[..2].to_vec(), [2, 1]), t2(g[2..].to_vec(), [2, 2])];
            params = adam.step(&params, &grads, &mut st).unwrap();
        }
        let th: Vec<f64> = params.iter().flat_map(|p| host(p.clone())).collect();
        for i in 0..6 {
            assert!((th[i] - c[i]).abs() < 1e-2, "{i}: {} vs {}", th[i], c[i]);
        }
    }

    #[test]
    fn rejects_bad_settings_and_shapes() {
        for cfg in [
            AdamConfig {
                lr: 0.0,
                ..Default::default()
            },
            AdamConfig {
                beta1: 1.0,
                ..Default::default()
            },
            AdamConfig {
                beta2: -0.1,
                ..Default::default()
            },
            AdamConfig {
                eps: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(Adam::new(cfg).is_err(), "{cfg:?}");
        }
        let e = Adam::new(AdamConfig {
            beta1: 1.0,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("beta1") && e.contains("[0, 1)"), "{e}");

        let adam = Adam::new(AdamConfig::default()).unwrap();
        let params = vec![t2(vec![0.0; 4], [2, 2])];
        let mut st = adam.init(&params).unwrap();
        let bad = vec![t2(vec![0.0; 4], [4, 1])];
        assert!(adam.step(&params, &bad, &mut st).is_err());
        assert_eq!(st.t, 0);
        let other = vec![t2(vec![0.0; 6], [2, 3])];
        assert!(adam.step(&other, &other, &mut st).is_err());
    }
}
