//! Shared test machinery: a small deterministic RNG, random admissible samples, the tensor-vs-point
//! and gradient-vs-finite-difference checks, and a single-node RK4 integrator over
//! `drift::<f64>`.

#![allow(dead_code)]

use burn::backend::{Autodiff, NdArray};
use burn::prelude::{Backend, Tensor, TensorData};
use neurodiff_models::{Dynamics, Model, ModelSpec};

/// The `f64` CPU backend the oracle comparisons run on.
pub type B = NdArray<f64>;
/// Its autodiff wrapper.
pub type Ad = Autodiff<NdArray<f64>>;

/// SplitMix64: tiny, deterministic, good enough to draw test points.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }
}

/// Sampling range overrides for one model: `(name, lo, hi)` for a parameter or a state variable.
pub type Overrides<'a> = &'a [(&'static str, f64, f64)];

/// Values for one parameter tensor: its shape (`[1,1]`, `[batch,1]`, `[1,nodes]` or
/// `[batch,nodes]`) and row-major data.
#[derive(Clone, Debug)]
pub struct ParamValues {
    pub shape: [usize; 2],
    pub data: Vec<f64>,
}

impl ParamValues {
    /// The value seen by batch element `b`, node `n` (broadcasting).
    pub fn at(&self, b: usize, n: usize) -> f64 {
        let (rb, rn) = (
            if self.shape[0] == 1 { 0 } else { b },
            if self.shape[1] == 1 { 0 } else { n },
        );
        self.data[rb * self.shape[1] + rn]
    }
}

/// A random network state, coupling input and parameter set for one model.
#[derive(Clone, Debug)]
pub struct Sample {
    pub batch: usize,
    pub nodes: usize,
    /// One `[batch * nodes]` vector per state variable.
    pub x: Vec<Vec<f64>>,
    /// One per coupling input; `None` when switched off.
    pub c: Vec<Option<Vec<f64>>>,
    pub p: Vec<ParamValues>,
}

/// The range a parameter is drawn from: the override if any, otherwise 30 % either side of the
/// default (±0.5 around a zero default), intersected with the admissible bounds.
fn param_range(spec: &ModelSpec, i: usize, ov: Overrides<'_>) -> (f64, f64) {
    let ps = &spec.params[i];
    if let Some(&(_, lo, hi)) = ov.iter().find(|o| o.0 == ps.name) {
        return (lo, hi);
    }
    let w = if ps.default == 0.0 {
        0.5
    } else {
        0.3 * ps.default.abs()
    };
    (
        (ps.default - w).max(ps.lower),
        (ps.default + w).min(ps.upper),
    )
}

fn var_range(spec: &ModelSpec, i: usize, ov: Overrides<'_>) -> (f64, f64) {
    let v = &spec.state[i];
    ov.iter()
        .find(|o| o.0 == v.name)
        .map(|o| (o.1, o.2))
        .unwrap_or(v.range)
}

/// Draws a sample. Parameter `i` gets shape number `i % 4` of `[1,1]`, `[batch,1]`, `[1,nodes]`,
/// `[batch,nodes]`, so every broadcasting pattern is exercised. `c_on[k]` says whether coupling
/// input `k` is present; coupling values are uniform in `[-c_scale, c_scale]`.
pub fn sample(
    spec: &ModelSpec,
    rng: &mut Rng,
    batch: usize,
    nodes: usize,
    ov: Overrides<'_>,
    c_on: &[bool],
    c_scale: f64,
) -> Sample {
    let bn = batch * nodes;
    let x = (0..spec.n_vars())
        .map(|i| {
            let (lo, hi) = var_range(spec, i, ov);
            (0..bn).map(|_| rng.uniform(lo, hi)).collect()
        })
        .collect();
    let c = (0..spec.coupling.len())
        .map(|k| c_on[k].then(|| (0..bn).map(|_| rng.uniform(-c_scale, c_scale)).collect()))
        .collect();
    let p = (0..spec.params.len())
        .map(|i| {
            let shape = match i % 4 {
                0 => [1, 1],
                1 => [batch, 1],
                2 => [1, nodes],
                _ => [batch, nodes],
            };
            let (lo, hi) = param_range(spec, i, ov);
            let data = (0..shape[0] * shape[1])
                .map(|_| rng.uniform(lo, hi))
                .collect();
            ParamValues { shape, data }
        })
        .collect();
    Sample {
        batch,
        nodes,
        x,
        c,
        p,
    }
}

pub fn tensor<BB: Backend>(data: &[f64], shape: [usize; 2]) -> Tensor<BB, 2> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), &Default::default())
}

pub fn values<BB: Backend>(t: Tensor<BB, 2>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("f64 tensor data")
}

/// State, coupling inputs and parameters as tensors.
pub type Tensors<BB> = (
    Vec<Tensor<BB, 2>>,
    Vec<Option<Tensor<BB, 2>>>,
    Vec<Tensor<BB, 2>>,
);

/// The sample as tensors on backend `BB`.
pub fn tensors<BB: Backend>(s: &Sample) -> Tensors<BB> {
    let shape = [s.batch, s.nodes];
    (
        s.x.iter().map(|v| tensor(v, shape)).collect(),
        s.c.iter()
            .map(|c| c.as_ref().map(|v| tensor(v, shape)))
            .collect(),
        s.p.iter().map(|p| tensor(&p.data, p.shape)).collect(),
    )
}

/// The point oracle at batch element `b`, node `n` of the sample.
pub fn point_drift<M: Model>(m: &M, s: &Sample, b: usize, n: usize) -> Vec<f64> {
    let i = b * s.nodes + n;
    let x: Vec<f64> = s.x.iter().map(|v| v[i]).collect();
    let c: Vec<f64> =
        s.c.iter()
            .map(|c| c.as_ref().map_or(0.0, |v| v[i]))
            .collect();
    let p: Vec<f64> = s.p.iter().map(|p| p.at(b, n)).collect();
    let mut dx = vec![f64::NAN; x.len()];
    m.drift(&x, &c, &p, &mut dx);
    dx
}

/// Asserts that `got` and `want` agree to `rtol` relative to `scale` (the magnitude the values
/// are compared at).
pub fn assert_close(what: &str, got: f64, want: f64, rtol: f64, scale: f64) {
    assert!(
        got.is_finite() && want.is_finite(),
        "{what}: non-finite value (got {got}, want {want})"
    );
    let tol = rtol * scale.max(want.abs()).max(1e-300);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} (|diff| {} > tol {tol})",
        (got - want).abs()
    );
}

/// The coupling patterns tried: every input present, every input absent, and alternating.
fn coupling_patterns(n: usize) -> Vec<Vec<bool>> {
    let mut pats = vec![vec![true; n], vec![false; n]];
    if n > 1 {
        pats.push((0..n).map(|k| k % 2 == 1).collect());
        pats.push((0..n).map(|k| k % 2 == 0).collect());
    }
    pats
}

/// Tensor `drift` (on `NdArray<f64>`, batch 3 × 4 nodes, mixed parameter shapes) against
/// `drift::<f64>`, for several coupling patterns; also `coupled` against
/// the scalar `coupled` (and, for inputs that send the plain variable, against `x[var]`), and
/// `project` against the scalar `project`.
pub fn check_drift_matches_point<M: Model>(m: &M, seed: u64, ov: Overrides<'_>) {
    let spec = m.spec();
    let mut rng = Rng::new(seed);
    for (trial, pat) in coupling_patterns(spec.coupling.len())
        .into_iter()
        .enumerate()
    {
        let s = sample(spec, &mut rng, 3, 4, ov, &pat, 1.0);
        let (x, c, p) = tensors::<B>(&s);
        let dx = Dynamics::<B>::drift(m, &x, &c, &p);
        assert_eq!(dx.len(), spec.n_vars(), "{}: drift length", spec.name);
        let got: Vec<Vec<f64>> = dx
            .into_iter()
            .map(|t| {
                assert_eq!(t.dims(), [3, 4], "{}: drift shape", spec.name);
                values(t)
            })
            .collect();
        let want: Vec<Vec<f64>> = (0..3)
            .flat_map(|b| (0..4).map(move |n| (b, n)))
            .map(|(b, n)| point_drift(m, &s, b, n))
            .collect();
        for v in 0..spec.n_vars() {
            let scale = want.iter().map(|w| w[v].abs()).fold(0.0, f64::max);
            for (i, w) in want.iter().enumerate() {
                assert_close(
                    &format!(
                        "{} trial {trial} (coupling {pat:?}) d{}/dt at element {i}",
                        spec.name, spec.state[v].name
                    ),
                    got[v][i],
                    w[v],
                    1e-11,
                    scale,
                );
            }
        }
        // What each node sends through the connectome.
        for (kk, cs) in spec.coupling.iter().enumerate() {
            let sent = values(Dynamics::<B>::coupled(m, kk, &x, &p));
            for b in 0..3 {
                for n in 0..4 {
                    let i = b * 4 + n;
                    let xi: Vec<f64> = s.x.iter().map(|v| v[i]).collect();
                    let pi: Vec<f64> = s.p.iter().map(|q| q.at(b, n)).collect();
                    let want = m.coupled(kk, &xi, &pi);
                    assert_close(
                        &format!("{}: coupled({kk}) at {i}", spec.name),
                        sent[i],
                        want,
                        1e-12,
                        want.abs().max(1e-12),
                    );
                    if cs.sends.is_none() {
                        assert_eq!(
                            want, xi[cs.var],
                            "{}: input {} declares no `sends` but does not send x[var]",
                            spec.name, cs.name
                        );
                    }
                }
            }
        }
    }
    // Projection, on states drawn from ranges widened by half their width on each side (so
    // that some fall outside the admissible set).
    let wide: Vec<(&'static str, f64, f64)> = spec
        .state
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (lo, hi) = var_range(spec, i, ov);
            (v.name, lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo))
        })
        .collect();
    let s = sample(
        spec,
        &mut rng,
        3,
        4,
        &wide,
        &vec![false; spec.coupling.len()],
        1.0,
    );
    let (x, _, _) = tensors::<B>(&s);
    let projected: Vec<Vec<f64>> = Dynamics::<B>::project(m, x)
        .into_iter()
        .map(values)
        .collect();
    for i in 0..12 {
        let mut xi: Vec<f64> = s.x.iter().map(|v| v[i]).collect();
        m.project(&mut xi);
        for v in 0..spec.n_vars() {
            assert_eq!(
                projected[v][i], xi[v],
                "{}: projection of var {v}",
                spec.name
            );
        }
        if !M::PROJECTS {
            assert_eq!(xi, s.x.iter().map(|v| v[i]).collect::<Vec<_>>());
        }
    }
}

/// `L(s_plus) - L(s_minus)` for `L = Σ_v Σ_{b,n} w[v][b,n] · dx_v[b,n]` from the point oracle,
/// differenced term by term (terms that do not change contribute exactly zero, so the
/// cancellation error scales with the changed terms only, not with all of `L`).
fn loss_diff<M: Model>(m: &M, sp: &Sample, sm: &Sample, w: &[Vec<f64>]) -> f64 {
    let mut l = 0.0;
    for b in 0..sp.batch {
        for n in 0..sp.nodes {
            let dp = point_drift(m, sp, b, n);
            let dm = point_drift(m, sm, b, n);
            for v in 0..dp.len() {
                l += w[v][b * sp.nodes + n] * (dp[v] - dm[v]);
            }
        }
    }
    l
}

/// Gradient of `L = Σ w · drift` (random weights) with respect to every parameter entry, state
/// entry and coupling entry, by `Autodiff<NdArray<f64>>` on the tensor drift, against central
/// finite differences of the point oracle.
pub fn check_gradients<M: Model>(m: &M, seed: u64, ov: Overrides<'_>) {
    let spec = m.spec();
    let mut rng = Rng::new(seed);
    let (batch, nodes) = (2, 3);
    let c_on = vec![true; spec.coupling.len()];
    let s = sample(spec, &mut rng, batch, nodes, ov, &c_on, 1.0);
    let w: Vec<Vec<f64>> = (0..spec.n_vars())
        .map(|_| (0..batch * nodes).map(|_| rng.uniform(-1.0, 1.0)).collect())
        .collect();

    let (x, c, p) = tensors::<Ad>(&s);
    let x: Vec<_> = x.into_iter().map(|t| t.require_grad()).collect();
    let c: Vec<_> = c.into_iter().map(|t| t.map(|t| t.require_grad())).collect();
    let p: Vec<_> = p.into_iter().map(|t| t.require_grad()).collect();
    let dx = Dynamics::<Ad>::drift(m, &x, &c, &p);
    let mut loss: Option<Tensor<Ad, 1>> = None;
    for (v, d) in dx.into_iter().enumerate() {
        let term = (d * tensor::<Ad>(&w[v], [batch, nodes])).sum();
        loss = Some(match loss {
            None => term,
            Some(l) => l + term,
        });
    }
    let grads = loss.expect("at least one state variable").backward();

    let grad_of = |t: &Tensor<Ad, 2>, shape: [usize; 2]| -> Vec<f64> {
        t.grad(&grads)
            .map(values)
            .unwrap_or_else(|| vec![0.0; shape[0] * shape[1]])
    };
    // Central differences with a step relative to the value (or to the size of the values
    // that quantity takes, for values near zero).
    let fd = |perturb: &dyn Fn(&mut Sample, f64), v0: f64, size: f64| -> f64 {
        let h = 1e-6 * v0.abs().max(size);
        let mut sp = s.clone();
        perturb(&mut sp, h);
        let mut sm = s.clone();
        perturb(&mut sm, -h);
        loss_diff(m, &sp, &sm, &w) / (2.0 * h)
    };
    let check = |what: String, ad: &[f64], fds: &[f64]| {
        let scale = fds.iter().fold(1e-9_f64, |a, b| a.max(b.abs()));
        for (i, (a, f)) in ad.iter().zip(fds).enumerate() {
            assert_close(&format!("{what}[{i}]"), *a, *f, 2e-6, scale);
        }
    };

    for (i, ps) in spec.params.iter().enumerate() {
        let ad = grad_of(&p[i], s.p[i].shape);
        let size = ps.default.abs().max(1e-3);
        let fds: Vec<f64> = (0..s.p[i].data.len())
            .map(|e| {
                fd(
                    &|sm: &mut Sample, h| sm.p[i].data[e] += h,
                    s.p[i].data[e],
                    size,
                )
            })
            .collect();
        check(format!("{}: dL/d{}", spec.name, ps.name), &ad, &fds);
    }
    for (v, vs) in spec.state.iter().enumerate() {
        let ad = grad_of(&x[v], [batch, nodes]);
        let size = 0.1 * (vs.range.1 - vs.range.0);
        let fds: Vec<f64> = (0..batch * nodes)
            .map(|e| fd(&|sm: &mut Sample, h| sm.x[v][e] += h, s.x[v][e], size))
            .collect();
        check(format!("{}: dL/d{}", spec.name, vs.name), &ad, &fds);
    }
    for (kk, cs) in spec.coupling.iter().enumerate() {
        let ad = grad_of(c[kk].as_ref().unwrap(), [batch, nodes]);
        let base = s.c[kk].as_ref().unwrap().clone();
        let fds: Vec<f64> = (0..batch * nodes)
            .map(|e| {
                fd(
                    &|sm: &mut Sample, h| sm.c[kk].as_mut().unwrap()[e] += h,
                    base[e],
                    0.1,
                )
            })
            .collect();
        check(format!("{}: dL/d{}", spec.name, cs.name), &ad, &fds);
    }
}

/// Default parameters with some replaced by name.
pub fn params(spec: &ModelSpec, set: &[(&str, f64)]) -> Vec<f64> {
    let mut p = spec.defaults();
    for (name, v) in set {
        let i = spec
            .param_index(name)
            .unwrap_or_else(|| panic!("{}: no parameter {name}", spec.name));
        p[i] = *v;
    }
    p
}

/// Integrates one uncoupled node (coupling inputs `c`, constant) with classical RK4 over
/// `drift::<f64>`, projecting after each step, and calls `observe(t, x)` after every step.
pub fn rk4<M: Model>(
    m: &M,
    x0: &[f64],
    c: &[f64],
    p: &[f64],
    dt: f64,
    steps: usize,
    mut observe: impl FnMut(f64, &[f64]),
) -> Vec<f64> {
    let n = x0.len();
    let mut x = x0.to_vec();
    let (mut k1, mut k2, mut k3, mut k4) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut tmp = vec![0.0; n];
    for step in 0..steps {
        m.drift(&x, c, p, &mut k1);
        for i in 0..n {
            tmp[i] = x[i] + 0.5 * dt * k1[i];
        }
        m.drift(&tmp, c, p, &mut k2);
        for i in 0..n {
            tmp[i] = x[i] + 0.5 * dt * k2[i];
        }
        m.drift(&tmp, c, p, &mut k3);
        for i in 0..n {
            tmp[i] = x[i] + dt * k3[i];
        }
        m.drift(&tmp, c, p, &mut k4);
        for i in 0..n {
            x[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
        m.project(&mut x);
        observe((step + 1) as f64 * dt, &x);
    }
    x
}

/// Mean frequency (cycles per time unit) of a sampled signal, from its upward crossings of its
/// own mean (linearly interpolated); `None` with fewer than three crossings.
pub fn frequency(t: &[f64], y: &[f64]) -> Option<f64> {
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let mut crossings = Vec::new();
    for i in 1..y.len() {
        let (a, b) = (y[i - 1] - mean, y[i] - mean);
        if a < 0.0 && b >= 0.0 {
            crossings.push(t[i - 1] + (t[i] - t[i - 1]) * (-a) / (b - a));
        }
    }
    (crossings.len() >= 3)
        .then(|| (crossings.len() - 1) as f64 / (crossings[crossings.len() - 1] - crossings[0]))
}

/// Peak-to-peak amplitude of a signal.
pub fn peak_to_peak(y: &[f64]) -> f64 {
    let max = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = y.iter().cloned().fold(f64::INFINITY, f64::min);
    max - min
}

/// Integrates one node and returns the time points and the trajectory of variable `var` after
/// `transient` steps.
pub fn trace<M: Model>(
    m: &M,
    x0: &[f64],
    p: &[f64],
    dt: f64,
    transient: usize,
    steps: usize,
    var: usize,
) -> (Vec<f64>, Vec<f64>) {
    let c = vec![0.0; m.spec().coupling.len()];
    let mut t = Vec::with_capacity(steps);
    let mut y = Vec::with_capacity(steps);
    let mut count = 0;
    rk4(m, x0, &c, p, dt, transient + steps, |tt, x| {
        count += 1;
        if count > transient {
            t.push(tt);
            y.push(x[var]);
        }
    });
    (t, y)
}

/// Numerical Jacobian of `drift::<f64>` at `x` (central differences), row-major
/// `J[i][j] = d(dx_i)/d(x_j)`.
pub fn jacobian<M: Model>(m: &M, x: &[f64], c: &[f64], p: &[f64]) -> Vec<Vec<f64>> {
    let n = x.len();
    let mut jac = vec![vec![0.0; n]; n];
    let (mut fp, mut fm) = (vec![0.0; n], vec![0.0; n]);
    for j in 0..n {
        let h = 1e-6 * x[j].abs().max(1e-2);
        let mut xp = x.to_vec();
        xp[j] += h;
        let mut xm = x.to_vec();
        xm[j] -= h;
        m.drift(&xp, c, p, &mut fp);
        m.drift(&xm, c, p, &mut fm);
        for i in 0..n {
            jac[i][j] = (fp[i] - fm[i]) / (2.0 * h);
        }
    }
    jac
}

/// A root of `f` in `[lo, hi]` by bisection (`f(lo)` and `f(hi)` must differ in sign).
pub fn bisect(mut f: impl FnMut(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let mut flo = f(lo);
    assert!(
        flo * f(hi) <= 0.0,
        "bisect: no sign change on [{lo}, {hi}] ({flo}, {})",
        f(hi)
    );
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        let fm = f(mid);
        if (fm < 0.0) == (flo < 0.0) && fm != 0.0 {
            lo = mid;
            flo = fm;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The drift at `x`, uncoupled.
pub fn drift_at<M: Model>(m: &M, x: &[f64], p: &[f64]) -> Vec<f64> {
    let c = vec![0.0; m.spec().coupling.len()];
    let mut dx = vec![f64::NAN; x.len()];
    m.drift(x, &c, p, &mut dx);
    dx
}

/// Integrates one uncoupled node with Heun's method (Euler predictor, trapezoidal corrector:
/// the engine's default integrator) over `drift::<f64>`, projecting after each stage, and
/// returns the final state.
pub fn heun<M: Model>(m: &M, x0: &[f64], p: &[f64], dt: f64, steps: usize) -> Vec<f64> {
    let n = x0.len();
    let c = vec![0.0; m.spec().coupling.len()];
    let mut x = x0.to_vec();
    let (mut k1, mut k2, mut pred) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for _ in 0..steps {
        m.drift(&x, &c, p, &mut k1);
        for i in 0..n {
            pred[i] = x[i] + dt * k1[i];
        }
        m.project(&mut pred);
        m.drift(&pred, &c, p, &mut k2);
        for i in 0..n {
            x[i] += 0.5 * dt * (k1[i] + k2[i]);
        }
        m.project(&mut x);
    }
    x
}
