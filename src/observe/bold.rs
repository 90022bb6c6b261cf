//! Balloon–Windkessel haemodynamics: from neural activity to the BOLD signal.
//!
//! The Friston/Stephan form used by TVB (`tvb.analyzers.fmri_balloon`) and vbjax
//! (`neural_mass.bold_dfun`, `monitor.make_bold`), per region:
//!
//! ```text
//! ds/dt = x − s/τ_s − (f − 1)/τ_f                              vasodilatory signal
//! df/dt = s                                                     blood inflow
//! dv/dt = (f − v^(1/α)) / τ_o                                   blood volume
//! dq/dt = (f (1 − (1 − E0)^(1/f)) / E0 − v^(1/α) q / v) / τ_o   deoxyhaemoglobin
//! BOLD  = V0 (k1 (1 − q) + k2 (1 − q/v) + k3 (1 − v))
//! k1 = 4.3 ν0 E0 TE,   k2 = ε r0 E0 TE,   k3 = 1 − ε
//! ```
//!
//! `f`, `v`, `q` are normalised to 1 at rest, `s` is 0 at rest; the resting state is a fixed
//! point with BOLD = 0. The defaults (`τ_s = 0.65 s`, `τ_f = 0.41 s`, ...) are TVB's and
//! vbjax's, which enter as time constants (`1/τ`); note that Friston et al. (2000) quote 0.65 and
//! 0.41 as *rates* (s⁻¹). With these defaults the response to a brief input peaks about 2 s after
//! it, with a small undershoot near 5 s.
//!
//! ## Units
//! **Time is in seconds here.** The neural model may run in another unit (MPR runs in ms): the
//! caller converts the step to seconds. Typically the BOLD state is advanced once every `m`
//! neural steps of `dt` ms, by `dt_s = m · dt / 1000` seconds, with `x` the mean of the neural
//! variable over those `m` steps (held constant over the BOLD step). `x` enters `ds/dt`
//! directly, so its scale (e.g. a firing rate in kHz) sets the size of the response; the
//! equations are nonlinear, so that scale matters. Heun's global error is `O(dt_s²)`: about
//! `1e-4` of the peak at `dt_s = 0.01 s`; keep `dt_s` at or below a few hundredths of a second.
//!
//! The powers `v^(1/α)` and `(1 − E0)^(1/f)` are computed as `exp(ln v / α)` and
//! `exp(ln(1 − E0) / f)`: smooth, with finite gradients, for `f, v > 0` (always the case in the
//! physiological range).

use burn::prelude::{Backend, Tensor};
use neurodiff_models::real::{self, k, Real, Tx};

use crate::error::{Error, Result};

/// Haemodynamic parameters (times in seconds).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoldParams {
    /// Time constant of the vasodilatory signal's decay, s (default 0.65).
    pub tau_s: f64,
    /// Time constant of the flow-dependent feedback, s (default 0.41).
    pub tau_f: f64,
    /// Haemodynamic transit time, s (default 0.98).
    pub tau_o: f64,
    /// Grubb's exponent (vessel stiffness), dimensionless (default 0.32).
    pub alpha: f64,
    /// Resting oxygen extraction fraction, dimensionless, in (0, 1) (default 0.4).
    pub e0: f64,
    /// Resting venous blood volume fraction, in percent: scales the BOLD signal (default 4).
    pub v0: f64,
    /// Echo time, s (default 0.04).
    pub te: f64,
    /// Frequency offset at the outer surface of magnetised vessels, Hz (default 40.3).
    pub nu0: f64,
    /// Slope of the intravascular relaxation rate against oxygen saturation, Hz (default 25).
    pub r0: f64,
    /// Ratio of intra- to extravascular signal, dimensionless (default 0.5).
    pub epsilon: f64,
}

impl Default for BoldParams {
    fn default() -> Self {
        Self {
            tau_s: 0.65,
            tau_f: 0.41,
            tau_o: 0.98,
            alpha: 0.32,
            e0: 0.4,
            v0: 4.0,
            te: 0.04,
            nu0: 40.3,
            r0: 25.0,
            epsilon: 0.5,
        }
    }
}

impl BoldParams {
    /// `k1 = 4.3 ν0 E0 TE` (dimensionless).
    pub fn k1(&self) -> f64 {
        4.3 * self.nu0 * self.e0 * self.te
    }

    /// `k2 = ε r0 E0 TE` (dimensionless).
    pub fn k2(&self) -> f64 {
        self.epsilon * self.r0 * self.e0 * self.te
    }

    /// `k3 = 1 − ε` (dimensionless).
    pub fn k3(&self) -> f64 {
        1.0 - self.epsilon
    }

    /// Checks that the time constants and `alpha` are positive and finite and `e0` lies in
    /// (0, 1); the other values must be finite.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("tau_s", self.tau_s),
            ("tau_f", self.tau_f),
            ("tau_o", self.tau_o),
            ("alpha", self.alpha),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::param(
                    name,
                    format!("must be a positive finite number, got {v}"),
                ));
            }
        }
        if !(self.e0 > 0.0 && self.e0 < 1.0) {
            return Err(Error::param(
                "e0",
                format!("must lie strictly between 0 and 1, got {}", self.e0),
            ));
        }
        let finite = [
            ("v0", self.v0),
            ("te", self.te),
            ("nu0", self.nu0),
            ("r0", self.r0),
            ("epsilon", self.epsilon),
        ];
        for (name, v) in finite {
            if !v.is_finite() {
                return Err(Error::param(name, format!("must be finite, got {v}")));
            }
        }
        Ok(())
    }
}

/// The haemodynamic state of every region (or, for [`bold_drift`], its time derivative, per
/// second).
///
/// # Shapes
/// Each field: `[batch, nodes]`.
#[derive(Debug, Clone)]
pub struct BoldState<B: Backend> {
    /// Vasodilatory signal `s` (s⁻¹; 0 at rest).
    pub s: Tensor<B, 2>,
    /// Normalised blood inflow `f` (1 at rest).
    pub f: Tensor<B, 2>,
    /// Normalised blood volume `v` (1 at rest).
    pub v: Tensor<B, 2>,
    /// Normalised deoxyhaemoglobin content `q` (1 at rest).
    pub q: Tensor<B, 2>,
}

impl<B: Backend> BoldState<B> {
    /// The resting state: `s = 0`, `f = v = q = 1`, each `[batch, nodes]`.
    pub fn rest(batch: usize, nodes: usize, device: &B::Device) -> Self {
        let ones = Tensor::<B, 2>::ones([batch, nodes], crate::float_opts::<B>(device));
        Self {
            s: ones.zeros_like(),
            f: ones.clone(),
            v: ones.clone(),
            q: ones,
        }
    }

    fn txs(&self) -> [Tx<B>; 4] {
        [&self.s, &self.f, &self.v, &self.q].map(|t| Tx::new(t.clone()))
    }

    fn from_txs(y: [Tx<B>; 4], shape: [usize; 2], device: &B::Device) -> Self {
        let [s, f, v, q] = y.map(|t| t.tensor(shape, device));
        Self { s, f, v, q }
    }
}

/// The time derivative of `y = [s, f, v, q]` (per second) under the input `x`, for one region
/// on any [`Real`] (`f32`/`f64` in the fused engine and the adjoint, dual numbers for the
/// adjoint's Jacobians, tensor expressions for the tensor engine): the one description of the
/// haemodynamics.
pub fn drift<R: Real>(y: [R; 4], x: R, p: &BoldParams) -> [R; 4] {
    let [s, f, v, q] = y;
    // v^(1/α) and (1 − E0)^(1/f), through exp/log (see the module documentation).
    let v_pow = (v.ln() / k(p.alpha)).exp();
    let extracted = k::<R>(1.0) - (k::<R>((1.0 - p.e0).ln()) / f).exp();
    [
        x - s / k(p.tau_s) - (f - k(1.0)) / k(p.tau_f),
        s,
        (f - v_pow) / k(p.tau_o),
        (f * extracted / k(p.e0) - v_pow * q / v) / k(p.tau_o),
    ]
}

/// One Heun step of `dt_s` seconds with the input `x` held constant over the step:
/// `y~ = y + dt f(y)`, `y' = y + dt/2 (f(y) + f(y~))` (as vbjax's `heun_step`).
pub fn heun_step<R: Real>(y: [R; 4], x: R, dt_s: f64, p: &BoldParams) -> [R; 4] {
    let d1 = drift(y, x, p);
    let predicted: [R; 4] = std::array::from_fn(|c| y[c] + d1[c] * k(dt_s));
    let d2 = drift(predicted, x, p);
    std::array::from_fn(|c| y[c] + (d1[c] + d2[c]) * k(0.5 * dt_s))
}

/// The BOLD signal `V0 (k1 (1 − q) + k2 (1 − q/v) + k3 (1 − v))` (percent signal change; 0 at
/// rest) of one region.
pub fn signal<R: Real>(y: [R; 4], p: &BoldParams) -> R {
    let [_, _, v, q] = y;
    let one = k::<R>(1.0);
    ((one - q) * k(p.k1()) + (one - q / v) * k(p.k2()) + (one - v) * k(p.k3())) * k(p.v0)
}

/// [`drift`] on tensors.
///
/// # Shapes
/// `state` fields and `x`: `[batch, nodes]` (`x` may also broadcast, e.g. `[batch, 1]`). The
/// output has the fields' shape.
pub fn bold_drift<B: Backend>(
    state: &BoldState<B>,
    x: &Tensor<B, 2>,
    p: &BoldParams,
) -> BoldState<B> {
    let (shape, device) = (state.s.dims(), state.s.device());
    real::scope(|| {
        let d = drift(state.txs(), Tx::new(x.clone()), p);
        BoldState::from_txs(d, shape, &device)
    })
}

/// [`heun_step`] on tensors.
///
/// # Shapes
/// As [`bold_drift`].
pub fn bold_step<B: Backend>(
    state: BoldState<B>,
    x: &Tensor<B, 2>,
    dt_s: f64,
    p: &BoldParams,
) -> BoldState<B> {
    let (shape, device) = (state.s.dims(), state.s.device());
    real::scope(|| {
        let y = heun_step(state.txs(), Tx::new(x.clone()), dt_s, p);
        BoldState::from_txs(y, shape, &device)
    })
}

/// [`signal`] on tensors.
///
/// # Shapes
/// `state` fields: `[batch, nodes]` → `[batch, nodes]`.
pub fn bold_signal<B: Backend>(state: &BoldState<B>, p: &BoldParams) -> Tensor<B, 2> {
    let (shape, device) = (state.s.dims(), state.s.device());
    real::scope(|| signal(state.txs(), p).tensor(shape, &device))
}

/// The haemodynamic state at rest: `s = 0`, `f = v = q = 1`.
pub const REST: [f64; 4] = [0.0, 1.0, 1.0, 1.0];
/// Names of the haemodynamic state variables, for error messages.
pub const NAMES: [&str; 4] = ["s", "f", "v", "q"];

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::prelude::TensorData;

    type B = NdArray<f64>;
    type AD = Autodiff<NdArray<f64>>;

    fn host<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
        t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
    }

    /// The same equations in plain f64, written independently (with `powf`).
    fn drift_host(y: [f64; 4], x: f64, p: &BoldParams) -> [f64; 4] {
        let [s, f, v, q] = y;
        let va = v.powf(1.0 / p.alpha);
        [
            x - s / p.tau_s - (f - 1.0) / p.tau_f,
            s,
            (f - va) / p.tau_o,
            (f * (1.0 - (1.0 - p.e0).powf(1.0 / f)) / p.e0 - va * q / v) / p.tau_o,
        ]
    }

    fn rk4_host(y: [f64; 4], x: f64, h: f64, p: &BoldParams) -> [f64; 4] {
        let add = |a: [f64; 4], b: [f64; 4], c: f64| std::array::from_fn(|i| a[i] + c * b[i]);
        let k1 = drift_host(y, x, p);
        let k2 = drift_host(add(y, k1, h / 2.0), x, p);
        let k3 = drift_host(add(y, k2, h / 2.0), x, p);
        let k4 = drift_host(add(y, k3, h), x, p);
        std::array::from_fn(|i| y[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
    }

    fn bold_host(y: [f64; 4], p: &BoldParams) -> f64 {
        let [_, _, v, q] = y;
        let k1 = 4.3 * p.nu0 * p.e0 * p.te;
        let k2 = p.epsilon * p.r0 * p.e0 * p.te;
        let k3 = 1.0 - p.epsilon;
        p.v0 * (k1 * (1.0 - q) + k2 * (1.0 - q / v) + k3 * (1.0 - v))
    }

    /// RK4 reference with step `h`: BOLD after each multiple of `every` steps, input `amp` on
    /// `[0, on_steps·h)`.
    fn reference(h: f64, steps: usize, on_steps: usize, amp: f64, every: usize) -> Vec<f64> {
        let p = BoldParams::default();
        let mut y = [0.0, 1.0, 1.0, 1.0];
        let mut out = Vec::new();
        for k in 0..steps {
            y = rk4_host(y, if k < on_steps { amp } else { 0.0 }, h, &p);
            if (k + 1) % every == 0 {
                out.push(bold_host(y, &p));
            }
        }
        out
    }

    /// `bold_step` on a `[1, 1]` state: BOLD after every step, input `amp` on the first
    /// `on_steps` steps.
    fn simulate(dt: f64, steps: usize, on_steps: usize, amp: f64) -> Vec<f64> {
        let dev = Default::default();
        let p = BoldParams::default();
        let mut st = BoldState::<B>::rest(1, 1, &dev);
        let on = Tensor::<B, 2>::full([1, 1], amp, crate::float_opts::<B>(&dev));
        let off = Tensor::<B, 2>::zeros([1, 1], crate::float_opts::<B>(&dev));
        (0..steps)
            .map(|k| {
                st = bold_step(st.clone(), if k < on_steps { &on } else { &off }, dt, &p);
                host(bold_signal(&st, &p))[0]
            })
            .collect()
    }

    #[test]
    fn rest_is_a_fixed_point_with_zero_bold() {
        let dev = Default::default();
        let p = BoldParams::default();
        let st = BoldState::<B>::rest(2, 3, &dev);
        let x = Tensor::<B, 2>::zeros([2, 3], crate::float_opts::<B>(&dev));
        let d = bold_drift(&st, &x, &p);
        for field in [d.s, d.f, d.v, d.q] {
            // dq = (E0/E0 − 1)/τo up to rounding of exp(ln 0.6).
            assert!(host(field).iter().all(|v| v.abs() < 1e-15));
        }
        assert!(host(bold_signal(&st, &p)).iter().all(|&b| b == 0.0));
        let mut s = st;
        for _ in 0..1000 {
            s = bold_step(s, &x, 0.01, &p);
        }
        assert!(host(bold_signal(&s, &p)).iter().all(|b| b.abs() < 1e-13));
    }

    #[test]
    fn drift_matches_host_formula_away_from_rest() {
        let dev = Default::default();
        let p = BoldParams::default();
        let ys = [
            [0.3, 1.4, 1.1, 0.8],
            [-0.2, 0.7, 0.9, 1.2],
            [0.05, 1.05, 1.3, 0.6],
        ];
        let col = |i: usize| {
            Tensor::<B, 2>::from_data(
                TensorData::new(ys.iter().map(|y| y[i]).collect(), [1, 3]),
                &dev,
            )
        };
        let st = BoldState {
            s: col(0),
            f: col(1),
            v: col(2),
            q: col(3),
        };
        let xs = vec![0.5, -1.0, 2.0];
        let x = Tensor::<B, 2>::from_data(
            TensorData::new(xs.clone(), [1, 3]),
            crate::float_opts::<B>(&dev),
        );
        let d = bold_drift(&st, &x, &p);
        let got = [host(d.s), host(d.f), host(d.v), host(d.q)];
        let b = host(bold_signal(&st, &p));
        for (k, y) in ys.iter().enumerate() {
            let want = drift_host(*y, xs[k], &p);
            for i in 0..4 {
                assert!(
                    (got[i][k] - want[i]).abs() < 1e-12,
                    "{k}/{i}: {} vs {}",
                    got[i][k],
                    want[i]
                );
            }
            assert!((b[k] - bold_host(*y, &p)).abs() < 1e-12);
        }
    }

    #[test]
    fn boxcar_response_matches_rk4_reference_at_second_order() {
        // 20 s, input 1 on [0, 1 s). Reference: RK4 at 1e-4 s (error ~1e-14, negligible).
        let href = 1e-4;
        let reference_at = |dt: f64| {
            let every = (dt / href).round() as usize;
            reference(
                href,
                (20.0 / href).round() as usize,
                (1.0 / href).round() as usize,
                1.0,
                every,
            )
        };
        let err = |dt: f64| {
            let n = (20.0 / dt).round() as usize;
            let sim = simulate(dt, n, (1.0 / dt).round() as usize, 1.0);
            let r = reference_at(dt);
            assert_eq!(sim.len(), r.len());
            let peak = r.iter().cloned().fold(0.0, f64::max);
            (
                sim.iter()
                    .zip(&r)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max),
                peak,
            )
        };
        let (e1, peak) = err(0.01);
        let (e2, _) = err(0.02);
        // Heun's global error ≈ T dt² max|y'''| / 12 with time scales ~0.5 s: at most about
        // 20 · 1e-4 · 10 / 12 ≈ 2e-3 (relative to a peak of order 1) at dt = 0.01 s.
        assert!(
            e1 < 2e-3 * peak,
            "max error {e1} at dt = 0.01 s (peak {peak})"
        );
        // Second order: halving dt divides the error by about 4.
        let ratio = e2 / e1;
        assert!(
            (3.0..5.0).contains(&ratio),
            "error ratio {ratio} ({e2} / {e1})"
        );
    }

    #[test]
    fn brief_input_response_peaks_after_the_flow_then_undershoots() {
        let p = BoldParams::default();
        let dt = 0.005;
        let pulse = 0.1; // s
        let b = simulate(dt, (25.0 / dt) as usize, (pulse / dt).round() as usize, 1.0);
        let (imax, peak) =
            b.iter()
                .enumerate()
                .fold((0, f64::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        let t_peak = (imax + 1) as f64 * dt;
        // Independent estimate: linearised at rest, the flow obeys φ'' + φ'/τ_s + φ/τ_f = x,
        // whose impulse response e^(−t/2τ_s) sin(ωt) peaks at t_f = atan(2 τ_s ω)/ω,
        // ω² = 1/τ_f − 1/(4τ_s²) (≈ 0.78 s after the pulse's centre). Volume and
        // deoxyhaemoglobin follow the flow with a lag of order τ_o, so BOLD peaks between
        // t_f + τ_o/2 and t_f + 2τ_o.
        let w = (1.0 / p.tau_f - 1.0 / (4.0 * p.tau_s * p.tau_s)).sqrt();
        let t_f = pulse / 2.0 + (2.0 * p.tau_s * w).atan() / w;
        assert!(
            t_peak > t_f + 0.5 * p.tau_o && t_peak < t_f + 2.0 * p.tau_o,
            "BOLD peak at {t_peak} s, flow peak predicted at {t_f} s"
        );
        assert!(peak > 0.0);
        // Post-stimulus undershoot, then back to baseline.
        let under = b[imax..].iter().cloned().fold(f64::MAX, f64::min);
        assert!(
            under < 0.0 && under > -0.2 * peak,
            "undershoot {under} (peak {peak})"
        );
        assert!(
            b.last().unwrap().abs() < 1e-3 * peak,
            "end {}",
            b.last().unwrap()
        );
    }

    #[test]
    fn gradient_wrt_input_amplitude_matches_finite_differences() {
        let dev = Default::default();
        let p = BoldParams::default();
        let (dt, steps, on) = (0.02, 200, 50); // 4 s, input on for the first second
        let amps = vec![0.3, 1.0, 2.0, 0.05, 0.7, 1.5];
        let run = |a: Tensor<AD, 2>| {
            let mut st = BoldState::<AD>::rest(2, 3, &dev);
            let off = a.zeros_like();
            for k in 0..steps {
                st = bold_step(st, if k < on { &a } else { &off }, dt, &p);
            }
            bold_signal(&st, &p)
        };
        let a = Tensor::<AD, 2>::from_data(
            TensorData::new(amps.clone(), [2, 3]),
            crate::float_opts::<AD>(&dev),
        )
        .require_grad();
        let g = host(a.grad(&run(a.clone()).sum().backward()).unwrap());
        // Each region depends on its own amplitude only, so perturbing all at once gives every
        // partial derivative.
        let h = 1e-5;
        let shifted = |d: f64| {
            let v: Vec<f64> = amps.iter().map(|x| x + d).collect();
            host(run(Tensor::from_data(
                TensorData::new(v, [2, 3]),
                crate::float_opts::<AD>(&dev),
            )))
        };
        let (bp, bm) = (shifted(h), shifted(-h));
        for i in 0..6 {
            let fd = (bp[i] - bm[i]) / (2.0 * h);
            assert!(g[i].is_finite());
            assert!(
                (g[i] - fd).abs() < 1e-7 * (1.0 + fd.abs()),
                "{i}: {} vs fd {fd}",
                g[i]
            );
        }
    }

    #[test]
    fn f32_backend_agrees_with_f64() {
        fn run<Bk: Backend>() -> Vec<f64> {
            let dev = Default::default();
            let p = BoldParams::default();
            let mut st = BoldState::<Bk>::rest(1, 2, &dev);
            let x = Tensor::<Bk, 2>::from_data(
                TensorData::new(vec![1.0, 0.3], [1, 2]),
                crate::float_opts::<Bk>(&dev),
            );
            for _ in 0..300 {
                st = bold_step(st, &x, 0.01, &p);
            }
            host(bold_signal(&st, &p))
        }
        let (a, b) = (run::<B>(), run::<NdArray<f32>>());
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-4 * (1.0 + p.abs()), "{p} vs {q}");
        }
    }

    #[test]
    fn validate_rejects_bad_parameters() {
        assert!(BoldParams::default().validate().is_ok());
        let e = BoldParams {
            tau_o: 0.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("tau_o"), "{e}");
        let e = BoldParams {
            e0: 1.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("e0"), "{e}");
        assert!(BoldParams {
            v0: f64::NAN,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
