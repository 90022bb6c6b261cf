//! Spiking neurons (`neurodiff_models::neuron`): the catalogue, parameter checks, the spike's
//! exact value and surrogate gradient, the tensor side against `f64`, and a test-local
//! single-cell integrator (step, detect, reset) that the per-neuron tests (`neuron_hh`,
//! `neuron_adex`, `neuron_lif`) use.

use neurodiff_models::neuron::{
    self, adex::AdEx, hh::HodgkinHuxley, lif::Lif, stn::Stn, Neuron, NeuronError, V,
};
use neurodiff_models::real::{scope, Tx};

use crate::common::{assert_close, tensor, values, Ad, Rng, B};

/// How the test-local integrator advances the state between detections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scheme {
    /// Classical RK4 on `drift::<f64>`.
    Rk4,
    /// Exponential Euler on the neuron's diagonal linear part (`Neuron::linear`), Euler where
    /// it is 0: Rush–Larsen for gates.
    ExpEuler,
}

/// What a single-cell run returns.
pub struct Run {
    /// Spike times (ms): the end of each step in which `Neuron::spike` was 1.
    pub spikes: Vec<f64>,
    /// `V` after every step (before the reset of that step, so a spike's overshoot shows).
    pub v: Vec<f64>,
    /// Final state.
    pub x: Vec<f64>,
}

/// One step of `scheme` from `x` with current `i` (held over the step).
pub fn step<N: Neuron>(n: &N, x: &mut [f64], i: f64, p: &[f64], dt: f64, scheme: Scheme) {
    let nv = x.len();
    match scheme {
        Scheme::Rk4 => {
            let (mut k1, mut k2, mut k3, mut k4) =
                (vec![0.0; nv], vec![0.0; nv], vec![0.0; nv], vec![0.0; nv]);
            let mut tmp = vec![0.0; nv];
            n.drift(x, i, p, &mut k1);
            for j in 0..nv {
                tmp[j] = x[j] + 0.5 * dt * k1[j];
            }
            n.drift(&tmp, i, p, &mut k2);
            for j in 0..nv {
                tmp[j] = x[j] + 0.5 * dt * k2[j];
            }
            n.drift(&tmp, i, p, &mut k3);
            for j in 0..nv {
                tmp[j] = x[j] + dt * k3[j];
            }
            n.drift(&tmp, i, p, &mut k4);
            for j in 0..nv {
                x[j] += dt / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
            }
        }
        Scheme::ExpEuler => {
            let (mut f, mut a) = (vec![0.0; nv], vec![0.0; nv]);
            n.drift(x, i, p, &mut f);
            if N::LINEAR {
                n.linear(x, i, p, &mut a);
            }
            for j in 0..nv {
                if a[j] == 0.0 {
                    x[j] += dt * f[j];
                } else {
                    let b = f[j] - a[j] * x[j];
                    let e = (a[j] * dt).exp();
                    x[j] = x[j] * e + b / a[j] * (e - 1.0);
                }
            }
        }
    }
}

/// Runs one cell from its rest state for `t_end` ms with current `current(t)` (held over each
/// step at its value at the step's start): step, detect (`Neuron::spike` on `V` before and
/// after), reset (`Neuron::reset`).
pub fn run<N: Neuron>(
    n: &N,
    p: &[f64],
    current: impl Fn(f64) -> f64,
    dt: f64,
    t_end: f64,
    scheme: Scheme,
) -> Run {
    let mut x = vec![0.0; N::SPEC.n_vars()];
    n.rest(p, &mut x);
    let steps = (t_end / dt).round() as usize;
    let mut out = Run {
        spikes: Vec::new(),
        v: Vec::with_capacity(steps),
        x: Vec::new(),
    };
    for s in 0..steps {
        let t = s as f64 * dt;
        let v_before = x[V];
        step(n, &mut x, current(t), p, dt, scheme);
        let v_after = x[V];
        out.v.push(v_after);
        let spike = n.spike(v_before, v_after, p);
        assert!(spike == 0.0 || spike == 1.0, "spike value {spike}");
        if spike == 1.0 {
            out.spikes.push(t + dt);
        }
        n.reset(&mut x, spike, p);
        assert!(
            x.iter().all(|v| v.is_finite()),
            "{}: state {x:?} at t = {t}",
            N::SPEC.name
        );
    }
    out.x = x;
    out
}

/// Inter-spike intervals.
pub fn isis(spikes: &[f64]) -> Vec<f64> {
    spikes.windows(2).map(|w| w[1] - w[0]).collect()
}

/// `Neuron::drift_linear` (one call, overridden where drift and linear part share terms) gives
/// exactly `drift` and `linear` at random states around rest.
fn drift_linear_equals_drift_and_linear<N: Neuron + Default>() {
    let n = N::default();
    let p = N::SPEC.defaults();
    let nv = N::SPEC.n_vars();
    let mut rng = Rng::new(5);
    for _ in 0..200 {
        let mut x = vec![0.0; nv];
        n.rest(&p, &mut x);
        x[V] = rng.uniform(-90.0, 40.0);
        for v in x.iter_mut().skip(1) {
            *v *= rng.uniform(0.5, 1.5);
        }
        let i = rng.uniform(-10.0, 50.0);
        let (mut f, mut a) = (vec![0.0; nv], vec![0.0; nv]);
        n.drift(&x, i, &p, &mut f);
        if N::LINEAR {
            n.linear(&x, i, &p, &mut a);
        }
        let (mut f2, mut a2) = (vec![0.0; nv], vec![0.0; nv]);
        n.drift_linear(&x, i, &p, &mut f2, &mut a2);
        assert_eq!(f, f2, "{}: drift at {x:?}", N::SPEC.name);
        assert_eq!(a, a2, "{}: linear part at {x:?}", N::SPEC.name);
    }
}

/// Default parameters with some replaced by name.
pub fn params<N: Neuron>(set: &[(&str, f64)]) -> Vec<f64> {
    let s = N::SPEC;
    let mut p = s.defaults();
    for (name, v) in set {
        let i = s
            .param_index(name)
            .unwrap_or_else(|| panic!("{}: no parameter {name}", s.name));
        p[i] = *v;
    }
    p
}

/// The catalogue lists the three neurons with unique names, `find` and `visit` reach them, and
/// every spec is consistent: `V` first in mV, defaults inside their bounds and valid, the input
/// unit as documented, the time unit ms, the spec's initial state equal to `rest()` at the
/// defaults.
#[test]
fn catalogue_and_specs_are_consistent() {
    drift_linear_equals_drift_and_linear::<HodgkinHuxley>();
    drift_linear_equals_drift_and_linear::<AdEx>();
    drift_linear_equals_drift_and_linear::<Lif>();
    drift_linear_equals_drift_and_linear::<Stn>();
    let names: Vec<&str> = neuron::catalogue().iter().map(|s| s.name).collect();
    assert_eq!(names, ["hh", "adex", "lif", "stn"]);
    assert!(neuron::find("adex").is_ok());
    let err = neuron::find("izhikevich").unwrap_err();
    assert!(err.to_string().contains("hh, adex, lif, stn"), "{err}");

    struct Check;
    impl neuron::NeuronVisitor for Check {
        type Output = &'static str;
        fn visit<N: Neuron>(self, n: N) -> &'static str {
            let s = N::SPEC;
            assert_eq!(s.state[V].name, "V");
            assert_eq!(s.state[V].unit, "mV");
            assert_eq!(s.time_unit.name(), "ms");
            assert_eq!(s.input.name, "I");
            let want_unit = if matches!(s.name, "hh" | "stn") {
                "µA/cm²"
            } else {
                "pA"
            };
            assert_eq!(s.input.unit, want_unit, "{}", s.name);
            assert!(s.surrogate_slope > 0.0 && s.default_dt > 0.0);
            for q in s.params {
                assert!(q.admits(q.default), "{}: {} default", s.name, q.name);
                assert!(!q.unit.is_empty() && !q.doc.is_empty());
            }
            n.validate(&s.defaults())
                .unwrap_or_else(|e| panic!("defaults invalid: {e}"));
            let mut x = vec![f64::NAN; s.n_vars()];
            n.rest(&s.defaults(), &mut x);
            for (v, xv) in s.state.iter().zip(&x) {
                assert!(
                    (v.initial - xv).abs() < 1e-6,
                    "{}: spec initial {} = {} but rest() gives {xv}",
                    s.name,
                    v.name,
                    v.initial
                );
            }
            s.name
        }
    }
    for name in names {
        assert_eq!(neuron::visit(name, Check), Some(name));
    }
    assert!(neuron::visit("nope", Check).is_none());
}

/// Bad parameters are refused with an error that names them: out of bounds, not finite, the
/// wrong count, and the relations (reset below threshold, `E_K < E_Na`).
#[test]
fn validate_refuses_bad_parameters() {
    let e = AdEx.validate(&params::<AdEx>(&[("C", -5.0)])).unwrap_err();
    assert!(
        matches!(e, NeuronError::OutOfBounds { name: "C", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("`C` = -5 pF"), "{e}");
    let e = AdEx
        .validate(&params::<AdEx>(&[("V_reset", 10.0)]))
        .unwrap_err();
    assert!(matches!(e, NeuronError::OutOfBounds { .. }), "{e}");
    let e = AdEx
        .validate(&params::<AdEx>(&[("V_reset", -40.0), ("V_peak", -45.0)]))
        .unwrap_err();
    assert!(e.to_string().contains("V_reset"), "{e}");
    let e = Lif
        .validate(&params::<Lif>(&[("V_reset", -50.0)]))
        .unwrap_err();
    assert!(matches!(e, NeuronError::Inconsistent { .. }), "{e}");
    let e = Lif
        .validate(&params::<Lif>(&[("tau_m", f64::NAN)]))
        .unwrap_err();
    assert!(
        matches!(e, NeuronError::OutOfBounds { name: "tau_m", .. }),
        "{e}"
    );
    let e = Lif.validate(&[1.0, 2.0]).unwrap_err();
    assert!(matches!(e, NeuronError::Count { got: 2, .. }), "{e}");
    let e = HodgkinHuxley
        .validate(&params::<HodgkinHuxley>(&[("E_K", 60.0)]))
        .unwrap_err();
    assert!(e.to_string().contains("E_K"), "{e}");
    let e = Stn
        .validate(&params::<Stn>(&[("sigma_b", 0.0)]))
        .unwrap_err();
    assert!(e.to_string().contains("sigma_b"), "{e}");
}

/// The spike is an upward crossing with the exact value 0 or 1: below → above is 1; below →
/// below, above → above (an action potential's top) and above → below are 0. Under autodiff
/// (`Tx<Autodiff<NdArray>>`) its derivative with respect to `V` after the step is the
/// fast-sigmoid surrogate `slope / (2 (1 + slope |V − θ|)²)`, nonzero near the threshold,
/// and it passes through the reset `V ← V − s (V − V_reset)`.
#[test]
fn spike_is_exact_with_a_surrogate_gradient() {
    let p = Lif::SPEC.defaults(); // V_th = −55
    for (vb, va, want) in [
        (-56.0, -54.0, 1.0),
        (-70.0, -55.5, 0.0),
        (-54.0, -50.0, 0.0),
        (-54.0, -56.0, 0.0),
        (-55.0 - 1e-9, -55.0 + 1e-9, 1.0),
    ] {
        assert_eq!(Lif.spike(vb, va, &p), want, "{vb} -> {va}");
        if (va + 55.0f64).abs() > 1e-3 {
            let p32: Vec<f32> = p.iter().map(|&q| q as f32).collect();
            assert_eq!(Lif.spike(vb as f32, va as f32, &p32), want as f32);
        }
    }
    let ph = HodgkinHuxley::SPEC.defaults();
    assert_eq!(HodgkinHuxley.spike(-5.0, 3.0, &ph), 1.0);
    assert_eq!(HodgkinHuxley.spike(30.0, 40.0, &ph), 0.0);

    // Gradient of s and of the reset V through autodiff, at V_after = θ + δ from V_before
    // below the threshold.
    let slope = Lif::SPEC.surrogate_slope;
    let deltas = [-0.3, 0.2, 0.5, 3.0];
    let va: Vec<f64> = deltas.iter().map(|d| -55.0 + d).collect();
    let shape = [1, deltas.len()];
    let x = tensor::<Ad>(&va, shape).require_grad();
    let (s, v_new) = scope(|| {
        let pt: Vec<Tx<Ad>> = p.iter().map(|&q| Tx::constant(q)).collect();
        let v_after = Tx::new(x.clone());
        let s = Lif.spike(Tx::constant(-60.0), v_after, &pt);
        let mut st = [v_after, Tx::constant(0.0)];
        Lif.reset(&mut st, s, &pt);
        let dev = Default::default();
        (s.tensor(shape, &dev), st[0].tensor(shape, &dev))
    });
    let sv = values(s.clone());
    let g = values(x.grad(&s.sum().backward()).expect("a gradient"));
    for (j, &d) in deltas.iter().enumerate() {
        assert_eq!(sv[j], if d > 0.0 { 1.0 } else { 0.0 });
        // The second factor, H(θ − V_before), is 1 with value-only derivative along V_after.
        let want = slope / (2.0 * (1.0 + slope * d.abs()).powi(2));
        assert_close(&format!("ds/dV at θ{d:+}"), g[j], want, 1e-12, 1.0);
        assert!(g[j] > 0.0);
    }
    // Reset: V_new = V − s (V − V_reset), so dV_new/dV = 1 − s − (V − V_reset) ds/dV.
    let x2 = tensor::<Ad>(&va, shape).require_grad();
    let v_new2 = scope(|| {
        let pt: Vec<Tx<Ad>> = p.iter().map(|&q| Tx::constant(q)).collect();
        let v_after = Tx::new(x2.clone());
        let s = Lif.spike(Tx::constant(-60.0), v_after, &pt);
        let mut st = [v_after, Tx::constant(0.0)];
        Lif.reset(&mut st, s, &pt);
        st[0].tensor(shape, &Default::default())
    });
    let vn = values(v_new);
    let gv = values(x2.grad(&v_new2.sum().backward()).expect("a gradient"));
    for (j, &d) in deltas.iter().enumerate() {
        let s = if d > 0.0 { 1.0 } else { 0.0 };
        assert_eq!(vn[j], if d > 0.0 { -70.0 } else { va[j] });
        let ds = slope / (2.0 * (1.0 + slope * d.abs()).powi(2));
        let want = 1.0 - s - (va[j] + 70.0) * ds;
        assert_close(&format!("dV_new/dV at θ{d:+}"), gv[j], want, 1e-12, 1.0);
    }
}

/// Draws a state for neuron `N` at `count` points: each variable uniform in its spec range
/// (widened for `V` to cover the upswing and the HH singular points exactly), refractory
/// countdowns half 0.
fn draw_state<N: Neuron>(rng: &mut Rng, count: usize) -> Vec<Vec<f64>> {
    N::SPEC
        .state
        .iter()
        .enumerate()
        .map(|(j, v)| {
            (0..count)
                .map(|e| {
                    if j == V {
                        match e {
                            0 => -40.0,
                            1 => -55.0,
                            2 => -40.0 + 1e-4,
                            _ => rng.uniform(-85.0, 10.0),
                        }
                    } else if v.name == "r" && e % 2 == 0 {
                        0.0
                    } else {
                        rng.uniform(v.range.0, v.range.1)
                    }
                })
                .collect()
        })
        .collect()
}

/// Every neuron's `drift`, `linear`, `rest`, `spike` and `reset` on `[2, 4]` tensors
/// (`Tx<NdArray<f64>>`, one value per element for states, parameters and current) equal the
/// `f64` evaluation element by element.
fn tensor_matches_f64<N: Neuron + Default>(seed: u64) {
    let n = N::default();
    let s = N::SPEC;
    let shape = [2, 4];
    let count = 8;
    let mut rng = Rng::new(seed);
    let x = draw_state::<N>(&mut rng, count);
    let v_after: Vec<f64> = (0..count).map(|_| rng.uniform(-80.0, 20.0)).collect();
    let cur: Vec<f64> = (0..count).map(|_| rng.uniform(-5.0, 500.0)).collect();
    let p: Vec<Vec<f64>> = s
        .params
        .iter()
        .map(|q| {
            (0..count)
                .map(|_| {
                    let d = q.default;
                    let w = if d == 0.0 { 0.5 } else { 0.3 * d.abs() };
                    rng.uniform(d - w, d + w).clamp(q.lower, q.upper)
                })
                .collect()
        })
        .collect();
    let nv = s.n_vars();
    let dev = Default::default();
    let got: Vec<Vec<f64>> = scope(|| {
        let xt: Vec<Tx<B>> = x.iter().map(|v| Tx::new(tensor(v, shape))).collect();
        let pt: Vec<Tx<B>> = p.iter().map(|v| Tx::new(tensor(v, shape))).collect();
        let it = Tx::new(tensor(&cur, shape));
        let mut dx = vec![Tx::constant(f64::NAN); nv];
        n.drift(&xt, it, &pt, &mut dx);
        let mut a = vec![Tx::constant(0.0); nv];
        n.linear(&xt, it, &pt, &mut a);
        let mut rest = vec![Tx::constant(f64::NAN); nv];
        n.rest(&pt, &mut rest);
        let spike = n.spike(xt[V], Tx::new(tensor(&v_after, shape)), &pt);
        let mut reset = xt.clone();
        n.reset(&mut reset, spike, &pt);
        dx.into_iter()
            .chain(a)
            .chain(rest)
            .chain([spike])
            .chain(reset)
            .map(|t| values(t.tensor(shape, &dev)))
            .collect()
    });
    for e in 0..count {
        let xe: Vec<f64> = x.iter().map(|v| v[e]).collect();
        let pe: Vec<f64> = p.iter().map(|v| v[e]).collect();
        let mut dx = vec![f64::NAN; nv];
        n.drift(&xe, cur[e], &pe, &mut dx);
        let mut a = vec![0.0; nv];
        n.linear(&xe, cur[e], &pe, &mut a);
        let mut rest = vec![f64::NAN; nv];
        n.rest(&pe, &mut rest);
        let spike = n.spike(xe[V], v_after[e], &pe);
        let mut reset = xe.clone();
        n.reset(&mut reset, spike, &pe);
        let want: Vec<f64> = dx
            .into_iter()
            .chain(a)
            .chain(rest)
            .chain([spike])
            .chain(reset)
            .collect();
        for (q, w) in want.iter().enumerate() {
            assert_close(
                &format!("{}: output {q} at element {e} ({xe:?})", s.name),
                got[q][e],
                *w,
                1e-10,
                1.0,
            );
        }
    }
}

#[test]
fn tensor_side_matches_f64() {
    tensor_matches_f64::<HodgkinHuxley>(1);
    tensor_matches_f64::<AdEx>(2);
    tensor_matches_f64::<Lif>(3);
    tensor_matches_f64::<Stn>(4);
}

/// The drift stays finite in `f32` far outside the usual range (the exponential of AdEx and
/// the rates of HH and STN go through `exp_safe`; STN's `α_q` at its singular point −154.9 mV),
/// and for AdEx beyond `V_peak` (overshoot) it is the
/// drift at `V_peak`.
#[test]
fn drift_is_finite_in_f32_far_out() {
    for v in [-500.0f32, -154.9, -100.0, 0.0, 60.0, 500.0, 1e6] {
        let ph: Vec<f32> = HodgkinHuxley::SPEC
            .defaults()
            .iter()
            .map(|&q| q as f32)
            .collect();
        let mut dx = [f32::NAN; 4];
        HodgkinHuxley.drift(&[v, 0.5, 0.5, 0.5], 10.0, &ph, &mut dx);
        assert!(dx.iter().all(|d| d.is_finite()), "hh at {v}: {dx:?}");

        let ps: Vec<f32> = params::<Stn>(&[("g_H", 2.0)])
            .iter()
            .map(|&q| q as f32)
            .collect();
        let mut dx = [f32::NAN; 6];
        Stn.drift(&[v, 0.5, 0.5, 0.5, 0.1, 0.5], 10.0, &ps, &mut dx);
        assert!(dx.iter().all(|d| d.is_finite()), "stn at {v}: {dx:?}");

        let pa: Vec<f32> = AdEx::SPEC.defaults().iter().map(|&q| q as f32).collect();
        let mut dx = [f32::NAN; 3];
        AdEx.drift(&[v, 50.0, 0.0], 500.0, &pa, &mut dx);
        assert!(dx.iter().all(|d| d.is_finite()), "adex at {v}: {dx:?}");
        if v > 0.0 {
            let mut at_peak = [f32::NAN; 3];
            AdEx.drift(&[0.0, 50.0, 0.0], 500.0, &pa, &mut at_peak);
            assert_eq!(dx, at_peak);
        }
    }
}
