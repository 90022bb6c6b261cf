//! The fused CPU engine: forward simulation without a tensor framework in the inner loop.
//!
//! It runs the same network, integrators, monitor and noise streams as the tensor engine
//! ([`crate::sim`]), but each step is one pass over plain arrays: the coupling is a matrix
//! product (`matrixmultiply`), and each node's right-hand side is the model's
//! [`Model::drift_point`](neurodiff_models::Model::drift_point), inlined. Batch elements are
//! independent, so the batch is split across threads, each running whole chunks of steps.
//!
//! The tensor engine dispatches dozens of tensor operations per step (~0.4 µs each on CPU),
//! which dominates at small batch sizes; this engine removes that overhead. It has no tape, so
//! gradients always use the tensor engine, and it is tested against it
//! (`tests/fused.rs`): same noise, same result to floating-point tolerance.
//!
//! Supported: every model, linear coupling, every integrator, both monitors, both noise modes
//! with the host noise source. Anything else is reported by [`supports`] and runs on the tensor
//! engine.

use std::ops::Range;

use num_traits::Float;

use neurodiff_models::{Model, ModelVisitor};

use crate::connectome::Connectome;
use crate::coupling::CouplingKind;
use crate::error::{Error, Result};
use crate::integrate::Integrator;
use crate::noise::{draw, stream, NoiseMode, NoiseSource};
use crate::params::ParamTable;
use crate::sim::Run;

/// Float types the fused engine runs in.
pub trait Real: Float + Send + Sync + std::fmt::Debug + 'static {
    /// `c = a · b` for row-major `a` (`m × k`, row stride `rsa`) and `b` (`k × n`), `c`
    /// contiguous `m × n`.
    fn gemm(m: usize, k: usize, n: usize, a: &[Self], rsa: usize, b: &[Self], c: &mut [Self]);
    /// From `f64`.
    fn of(v: f64) -> Self;
    /// To `f32` (for output).
    fn as_f32(self) -> f32;
}

impl Real for f32 {
    fn gemm(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, b: &[f32], c: &mut [f32]) {
        assert!(a.len() >= (m - 1) * rsa + k && b.len() >= k * n && c.len() >= m * n);
        // SAFETY: the bounds above cover every element the kernel reads or writes.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                rsa as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        }
    }
    fn of(v: f64) -> Self {
        v as f32
    }
    fn as_f32(self) -> f32 {
        self
    }
}

impl Real for f64 {
    fn gemm(m: usize, k: usize, n: usize, a: &[f64], rsa: usize, b: &[f64], c: &mut [f64]) {
        assert!(a.len() >= (m - 1) * rsa + k && b.len() >= k * n && c.len() >= m * n);
        // SAFETY: the bounds above cover every element the kernel reads or writes.
        unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                rsa as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        }
    }
    fn of(v: f64) -> Self {
        v
    }
    fn as_f32(self) -> f32 {
        self as f32
    }
}

/// Which engine runs a forward simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The fused engine on CPU backends when it supports the run, else the tensor engine.
    #[default]
    Auto,
    /// Burn tensors on the chosen backend.
    Tensor,
    /// The fused CPU engine (an error if it does not support the run).
    Fused,
}

impl std::str::FromStr for Engine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "tensor" => Ok(Self::Tensor),
            "fused" => Ok(Self::Fused),
            _ => Err(Error::setting(
                "engine",
                format!("`{s}` is not one of: auto, tensor, fused"),
            )),
        }
    }
}

/// Why a run cannot use the fused engine, or `None` if it can.
pub fn supports(coupling: CouplingKind, run: &Run) -> Option<&'static str> {
    if coupling != CouplingKind::Linear {
        return Some("the fused engine implements linear coupling only");
    }
    if !run.noise.is_off() && run.noise.source != NoiseSource::Host {
        return Some("the fused engine draws host noise only");
    }
    None
}

/// Everything a fused run needs besides the model.
pub struct FusedRun<'a> {
    /// The connectome (weights used as `W[target][source]`).
    pub connectome: &'a Connectome,
    /// Which of the model's coupling inputs are computed.
    pub inputs_on: &'a [bool],
    /// All parameter values (model's, then coupling's `G`).
    pub params: &'a ParamTable,
    /// Initial state, `[rows, vars, nodes]` row-major with `rows` 1 (broadcast) or the batch.
    pub x0: &'a [f64],
    /// Rows of `x0`.
    pub x0_rows: usize,
    /// Batch size.
    pub batch: usize,
    /// Run settings.
    pub run: &'a Run,
    /// Worker threads (0: one per available core).
    pub threads: usize,
}

/// Runs a simulation of the model called `model` on the fused engine in float type `T`.
/// `on_samples(first, k, values)` receives each chunk's `k` samples `[k, batch, vars, nodes]`;
/// `on_progress` the number of steps done. Returns the final state `[batch, vars, nodes]`.
pub fn simulate_fused<T: Real>(
    model: &str,
    fr: &FusedRun<'_>,
    on_samples: &mut dyn FnMut(usize, usize, Vec<f32>) -> Result<()>,
    on_progress: &mut dyn FnMut(usize),
) -> Result<Vec<f32>> {
    struct V<'a, 'b, T> {
        fr: &'a FusedRun<'a>,
        on_samples: &'b mut dyn FnMut(usize, usize, Vec<f32>) -> Result<()>,
        on_progress: &'b mut dyn FnMut(usize),
        _t: std::marker::PhantomData<T>,
    }
    impl<T: Real> ModelVisitor for V<'_, '_, T> {
        type Output = Result<Vec<f32>>;
        fn visit<M: Model>(self, m: M) -> Self::Output {
            run_model::<M, T>(m, self.fr, self.on_samples, self.on_progress)
        }
    }
    neurodiff_models::visit(
        model,
        V::<T> {
            fr,
            on_samples,
            on_progress,
            _t: std::marker::PhantomData,
        },
    )?
}

/// Read-only data shared by the worker threads.
struct Ctx<T> {
    n: usize,
    nv: usize,
    /// Number of model parameters (the coupling's `G` follows them).
    pm: usize,
    /// Parameters per node: `pm` model parameters, then `G`.
    pt: usize,
    /// `Wᵀ`, `n × n`: `wt[j * n + i] = W[i][j]`.
    wt: Vec<T>,
    /// Distinct state variables sent through the connectome.
    sources: Vec<usize>,
    /// For each coupling input: the index into `sources`, or `None` if switched off.
    input_src: Vec<Option<usize>>,
    /// Parameters, `[param_rows][n][pt]`.
    params: Vec<T>,
    param_rows: usize,
    dt: T,
    integrator: Integrator,
    /// Noisy variables and their scale `sigma sqrt(dt)` (as `f32`, like the tensor engine).
    noisy: Vec<(usize, f32)>,
    seed: u64,
    shared_noise: bool,
    monitor_vars: Vec<usize>,
    every: usize,
    transient: usize,
    mean: bool,
}

/// A worker's mutable buffers for its rows of the batch.
struct Worker<T> {
    rows: Range<usize>,
    x: Vec<T>,
    d1: Vec<T>,
    d2: Vec<T>,
    d3: Vec<T>,
    d4: Vec<T>,
    xi: Vec<T>,
    coup: Vec<T>,
    z: Vec<T>,
    acc: Vec<T>,
    acc_on: bool,
}

/// The samples a worker took during a chunk (`(index, values)`), or where it blew up.
type ChunkResult<T> = std::result::Result<Vec<(usize, Vec<T>)>, Blowup>;

/// Where a fused run first became non-finite.
struct Blowup {
    step: usize,
    batch: usize,
    var: usize,
    node: usize,
    value: f32,
}

fn run_model<M: Model, T: Real>(
    m: M,
    fr: &FusedRun<'_>,
    on_samples: &mut dyn FnMut(usize, usize, Vec<f32>) -> Result<()>,
    on_progress: &mut dyn FnMut(usize),
) -> Result<Vec<f32>> {
    let spec = M::SPEC;
    let run = fr.run;
    run.validate(spec.n_vars())?;
    if let Some(why) = supports(CouplingKind::Linear, run) {
        return Err(Error::setting("engine", why));
    }
    let n = fr.connectome.n;
    let nv = spec.n_vars();
    let batch = fr.batch;
    let pm = spec.params.len();
    let pt = fr.params.specs.len();
    let mut wt = vec![T::zero(); n * n];
    for i in 0..n {
        for j in 0..n {
            wt[j * n + i] = T::of(fr.connectome.weights[i * n + j]);
        }
    }
    let mut sources = Vec::new();
    let mut input_src = Vec::new();
    for (k, c) in spec.coupling.iter().enumerate() {
        if fr.inputs_on[k] {
            let idx = match sources.iter().position(|&s| s == c.var) {
                Some(i) => i,
                None => {
                    sources.push(c.var);
                    sources.len() - 1
                }
            };
            input_src.push(Some(idx));
        } else {
            input_src.push(None);
        }
    }
    let param_rows = fr.params.batch;
    let mut params = vec![T::zero(); param_rows * n * pt];
    for b in 0..param_rows {
        for i in 0..n {
            for k in 0..pt {
                params[(b * n + i) * pt + k] = T::of(fr.params.value_at(k, b, i));
            }
        }
    }
    let noisy = if run.noise.is_off() {
        Vec::new()
    } else {
        (0..nv)
            .filter(|&v| run.noise.sigma[v] != 0.0)
            .map(|v| (v, (run.noise.sigma[v] * run.dt.sqrt()) as f32))
            .collect()
    };
    let ctx = Ctx {
        n,
        nv,
        pm,
        pt,
        wt,
        sources,
        input_src,
        params,
        param_rows,
        dt: T::of(run.dt),
        integrator: run.integrator,
        noisy,
        seed: run.noise.seed,
        shared_noise: run.noise.mode == NoiseMode::Shared,
        monitor_vars: run.monitor.vars.clone(),
        every: run.monitor.every,
        transient: run.monitor.transient,
        mean: run.monitor.mean,
    };

    let threads = if fr.threads == 0 {
        std::thread::available_parallelism().map_or(1, |p| p.get())
    } else {
        fr.threads
    };
    // Small batches are not worth a thread each.
    let threads = threads.min(batch.div_ceil(8)).max(1);
    let per = batch.div_ceil(threads);
    let mut workers: Vec<Worker<T>> = (0..threads)
        .map(|t| {
            let rows = (t * per).min(batch)..((t + 1) * per).min(batch);
            let r = rows.len();
            let mut x = vec![T::zero(); r * nv * n];
            for (lb, b) in rows.clone().enumerate() {
                let src = if fr.x0_rows == 1 { 0 } else { b };
                for k in 0..nv * n {
                    x[lb * nv * n + k] = T::of(fr.x0[src * nv * n + k]);
                }
            }
            let buf = || vec![T::zero(); r * nv * n];
            Worker {
                rows,
                x,
                d1: buf(),
                d2: buf(),
                d3: buf(),
                d4: buf(),
                xi: buf(),
                coup: vec![T::zero(); r * n * ctx.sources.len().max(1)],
                z: buf(),
                acc: vec![T::zero(); r * ctx.monitor_vars.len() * n],
                acc_on: false,
            }
        })
        .filter(|w| !w.rows.is_empty())
        .collect();

    let nrec = ctx.monitor_vars.len();
    let mut start = 0;
    while start < run.steps {
        let len = run.chunk.min(run.steps - start);
        let results: Vec<ChunkResult<T>> = std::thread::scope(|s| {
            let handles: Vec<_> = workers
                .iter_mut()
                .map(|w| {
                    let ctx = &ctx;
                    s.spawn(move || chunk_dispatch(m, ctx, w, start, len))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("fused worker panicked"))
                .collect()
        });
        // Report the earliest blow-up over all workers.
        let mut first: Option<Blowup> = None;
        let mut per_worker = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(s) => per_worker.push(s),
                Err(b) => {
                    if first.as_ref().is_none_or(|f| b.step < f.step) {
                        first = Some(b);
                    }
                }
            }
        }
        if let Some(b) = first {
            return Err(Error::Diverged {
                step: b.step,
                time: b.step as f64 * run.dt,
                time_unit: spec.time_unit,
                var: spec.state[b.var].name.to_string(),
                node: b.node,
                batch: b.batch,
                value: b.value,
            });
        }
        // Interleave the workers' samples into [k, batch, vars, nodes].
        let ks: Vec<usize> = per_worker[0].iter().map(|(k, _)| *k).collect();
        if let Some(&k0) = ks.first() {
            let mut out = Vec::with_capacity(ks.len() * batch * nrec * n);
            for si in 0..ks.len() {
                for samples in &per_worker {
                    debug_assert_eq!(samples[si].0, ks[si]);
                    out.extend(samples[si].1.iter().map(|v| v.as_f32()));
                }
            }
            on_samples(k0, ks.len(), out)?;
        }
        start += len;
        on_progress(start);
    }
    let mut fin = Vec::with_capacity(batch * nv * n);
    for w in &workers {
        fin.extend(w.x.iter().map(|v| v.as_f32()));
    }
    Ok(fin)
}

/// Runs [`chunk`] compiled for AVX2 and FMA when the processor has them (chosen at run time, as
/// XLA does), else for the baseline instruction set.
fn chunk_dispatch<M: Model, T: Real>(
    m: M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    start: usize,
    len: usize,
) -> ChunkResult<T> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected on this processor.
            return unsafe { chunk_avx2(m, ctx, w, start, len) };
        }
    }
    chunk(m, ctx, w, start, len)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2<M: Model, T: Real>(
    m: M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    start: usize,
    len: usize,
) -> ChunkResult<T> {
    chunk(m, ctx, w, start, len)
}

/// Adds the noise increments (if any) to `x`.
#[inline(always)]
fn add_noise<T: Real>(x: &mut [T], z: Option<&[T]>) {
    if let Some(z) = z {
        x.iter_mut().zip(z).for_each(|(x, &z)| *x = *x + z);
    }
}

/// Runs steps `start..start + len` for one worker's rows.
#[inline(always)]
fn chunk<M: Model, T: Real>(
    m: M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    start: usize,
    len: usize,
) -> ChunkResult<T> {
    let (n, nv) = (ctx.n, ctx.nv);
    let r = w.rows.len();
    let mut samples = Vec::new();
    let noisy = !ctx.noisy.is_empty();
    for s in 0..len {
        let step = start + s;
        if noisy {
            fill_noise(ctx, w, step);
        }
        let zs = if noisy { Some(&w.z[..]) } else { None };
        let dt = ctx.dt;
        match ctx.integrator {
            Integrator::Euler => {
                eval::<M, T>(m, ctx, w.rows.start, r, &w.x, &mut w.coup, &mut w.d1);
                w.x.iter_mut()
                    .zip(&w.d1)
                    .for_each(|(x, &d)| *x = *x + d * dt);
                add_noise(&mut w.x, zs);
                project::<M, T>(m, nv, n, &mut w.x);
            }
            Integrator::Heun => {
                eval::<M, T>(m, ctx, w.rows.start, r, &w.x, &mut w.coup, &mut w.d1);
                w.xi.iter_mut()
                    .zip(w.x.iter().zip(&w.d1))
                    .for_each(|(xi, (&x, &d))| *xi = x + d * dt);
                add_noise(&mut w.xi, zs);
                project::<M, T>(m, nv, n, &mut w.xi);
                eval::<M, T>(m, ctx, w.rows.start, r, &w.xi, &mut w.coup, &mut w.d2);
                let h = dt * T::of(0.5);
                w.x.iter_mut()
                    .zip(w.d1.iter().zip(&w.d2))
                    .for_each(|(x, (&a, &b))| *x = *x + (a + b) * h);
                add_noise(&mut w.x, zs);
                project::<M, T>(m, nv, n, &mut w.x);
            }
            Integrator::Rk4 => {
                let half = dt * T::of(0.5);
                eval::<M, T>(m, ctx, w.rows.start, r, &w.x, &mut w.coup, &mut w.d1);
                for k in 0..w.x.len() {
                    w.xi[k] = w.x[k] + w.d1[k] * half;
                }
                eval::<M, T>(m, ctx, w.rows.start, r, &w.xi, &mut w.coup, &mut w.d2);
                for k in 0..w.x.len() {
                    w.xi[k] = w.x[k] + w.d2[k] * half;
                }
                eval::<M, T>(m, ctx, w.rows.start, r, &w.xi, &mut w.coup, &mut w.d3);
                for k in 0..w.x.len() {
                    w.xi[k] = w.x[k] + w.d3[k] * dt;
                }
                eval::<M, T>(m, ctx, w.rows.start, r, &w.xi, &mut w.coup, &mut w.d4);
                let sixth = dt / T::of(6.0);
                let two = T::of(2.0);
                for k in 0..w.x.len() {
                    w.x[k] = w.x[k] + (w.d1[k] + (w.d2[k] + w.d3[k]) * two + w.d4[k]) * sixth;
                }
                add_noise(&mut w.x, zs);
                project::<M, T>(m, nv, n, &mut w.x);
            }
        }
        if let Some(k) = w.x.iter().position(|v| !v.is_finite()) {
            let lb = k / (nv * n);
            return Err(Blowup {
                step: step + 1,
                batch: w.rows.start + lb,
                var: (k / n) % nv,
                node: k % n,
                value: w.x[k].as_f32(),
            });
        }
        // Monitor.
        let done = step + 1;
        if done <= ctx.transient {
            continue;
        }
        let nrec = ctx.monitor_vars.len();
        if ctx.mean {
            for lb in 0..r {
                for (ri, &v) in ctx.monitor_vars.iter().enumerate() {
                    let src = &w.x[(lb * nv + v) * n..(lb * nv + v + 1) * n];
                    let dst = &mut w.acc[(lb * nrec + ri) * n..(lb * nrec + ri + 1) * n];
                    if w.acc_on {
                        dst.iter_mut().zip(src).for_each(|(a, &x)| *a = *a + x);
                    } else {
                        dst.copy_from_slice(src);
                    }
                }
            }
            w.acc_on = true;
        }
        if (done - ctx.transient).is_multiple_of(ctx.every) {
            let k = (done - ctx.transient) / ctx.every - 1;
            let sample = if ctx.mean {
                w.acc_on = false;
                let inv = T::one() / T::of(ctx.every as f64);
                w.acc.iter().map(|&a| a * inv).collect()
            } else {
                let mut v = Vec::with_capacity(r * nrec * n);
                for lb in 0..r {
                    for &var in &ctx.monitor_vars {
                        v.extend_from_slice(&w.x[(lb * nv + var) * n..(lb * nv + var + 1) * n]);
                    }
                }
                v
            };
            samples.push((k, sample));
        }
    }
    Ok(samples)
}

/// The noise increments of one step for a worker's rows, laid out like the state.
fn fill_noise<T: Real>(ctx: &Ctx<T>, w: &mut Worker<T>, step: usize) {
    let (n, nv) = (ctx.n, ctx.nv);
    let width = if ctx.shared_noise { 1 } else { n };
    w.z.iter_mut().for_each(|z| *z = T::zero());
    for (lb, b) in w.rows.clone().enumerate() {
        let mut rng = stream(ctx.seed, step as u64, b);
        for &(v, scale) in &ctx.noisy {
            let base = (lb * nv + v) * n;
            if width == 1 {
                let val = T::of(draw(&mut rng, scale) as f64);
                w.z[base..base + n].iter_mut().for_each(|z| *z = val);
            } else {
                for z in &mut w.z[base..base + n] {
                    *z = T::of(draw(&mut rng, scale) as f64);
                }
            }
        }
    }
}

#[inline(always)]
fn project<M: Model, T: Real>(m: M, nv: usize, n: usize, x: &mut [T]) {
    if !M::PROJECTS {
        return;
    }
    let mut buf = [T::zero(); 16];
    for row in x.chunks_exact_mut(nv * n) {
        for i in 0..n {
            for v in 0..nv {
                buf[v] = row[v * n + i];
            }
            m.project_point(&mut buf[..nv]);
            for v in 0..nv {
                row[v * n + i] = buf[v];
            }
        }
    }
}

/// `out = f(x)` for `r` rows starting at batch element `b0`.
#[inline(always)]
fn eval<M: Model, T: Real>(
    m: M,
    ctx: &Ctx<T>,
    b0: usize,
    r: usize,
    x: &[T],
    coup: &mut [T],
    out: &mut [T],
) {
    let (n, nv, pt, pm) = (ctx.n, ctx.nv, ctx.pt, ctx.pm);
    // Network input per source variable: x_v · Wᵀ (scaled by G per node below).
    for (si, &v) in ctx.sources.iter().enumerate() {
        let c = &mut coup[si * r * n..(si + 1) * r * n];
        if r <= 4 {
            // Row by row as a sum of scaled rows of Wᵀ: contiguous, vectorises, no packing.
            for lb in 0..r {
                let xr = &x[lb * nv * n + v * n..lb * nv * n + (v + 1) * n];
                let cr = &mut c[lb * n..(lb + 1) * n];
                cr.iter_mut().for_each(|c| *c = T::zero());
                for (j, &xj) in xr.iter().enumerate() {
                    if xj != T::zero() {
                        let wrow = &ctx.wt[j * n..(j + 1) * n];
                        cr.iter_mut().zip(wrow).for_each(|(c, &w)| *c = *c + xj * w);
                    }
                }
            }
        } else {
            T::gemm(r, n, n, &x[v * n..], nv * n, &ctx.wt, c);
        }
    }
    let nin = ctx.input_src.len();
    let mut xs = [T::zero(); 16];
    let mut cs = [T::zero(); 16];
    let mut ds = [T::zero(); 16];
    for lb in 0..r {
        let prow = if ctx.param_rows == 1 { 0 } else { b0 + lb };
        let xrow = &x[lb * nv * n..(lb + 1) * nv * n];
        let orow = &mut out[lb * nv * n..(lb + 1) * nv * n];
        for i in 0..n {
            let p = &ctx.params[(prow * n + i) * pt..(prow * n + i + 1) * pt];
            let g = p[pm];
            for v in 0..nv {
                xs[v] = xrow[v * n + i];
            }
            for (c, src) in cs.iter_mut().zip(&ctx.input_src) {
                *c = match *src {
                    Some(si) => g * coup[(si * r + lb) * n + i],
                    None => T::zero(),
                };
            }
            m.drift_point(&xs[..nv], &cs[..nin], &p[..pm], &mut ds[..nv]);
            for v in 0..nv {
                orow[v * n + i] = ds[v];
            }
        }
    }
}
