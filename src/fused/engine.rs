//! The forward stepping of the fused engine (see the module above).

use std::ops::Range;

use num_traits::Float;

use neurodiff_models::Model;

use crate::connectome::Connectome;
use crate::coupling::{point, CouplingKind};
use crate::error::{Error, Result};
use crate::integrate::{Integrator, Tableau};
use crate::monitor::{Monitor, Observe, Observer};
use crate::network::{
    check_speed, delay_steps, edge_lengths_for_delays, resolve_inputs, sent_quantities,
    NetworkConfig,
};
use crate::noise::{draw, stream, NoiseMode};
use crate::params::ParamTable;
use crate::sim::Run;

/// Float types the fused engine runs in.
pub trait Real: Float + Send + Sync + std::fmt::Debug + 'static {
    /// `c = a · b` for row-major `a` (`m × k`, row stride `rsa`) and `b` (`k × n`), `c`
    /// contiguous `m × n`.
    fn gemm(m: usize, k: usize, n: usize, a: &[Self], rsa: usize, b: &[Self], c: &mut [Self]);
    /// From `f64`.
    fn of(v: f64) -> Self;
    /// To `f32` (for error messages).
    fn as_f32(self) -> f32;
    /// To `f64` (for output: exact from `f32` and `f64`).
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }
}

/// [`Real`] for a float type, with its `matrixmultiply` kernel.
macro_rules! real_float {
    ($t:ty, $gemm:path) => {
        #[allow(clippy::unnecessary_cast)]
        impl Real for $t {
            fn gemm(m: usize, k: usize, n: usize, a: &[$t], rsa: usize, b: &[$t], c: &mut [$t]) {
                assert!(a.len() >= (m - 1) * rsa + k && b.len() >= k * n && c.len() >= m * n);
                let (rsa, n_) = (rsa as isize, n as isize);
                // SAFETY: the bounds above cover every element the kernel reads or writes.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        rsa,
                        1,
                        b.as_ptr(),
                        n_,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        n_,
                        1,
                    )
                }
            }
            fn of(v: f64) -> Self {
                v as $t
            }
            fn as_f32(self) -> f32 {
                self as f32
            }
        }
    };
}

real_float!(f32, matrixmultiply::sgemm);
real_float!(f64, matrixmultiply::dgemm);

/// The most state variables (and coupling inputs) per node the fused engine and its adjoint hold
/// in their per-node scratch arrays; [`setup`] refuses larger models with an error.
pub const MAX_VARS: usize = 16;

/// Everything a fused run needs besides the model.
pub struct FusedRun<'a> {
    /// The connectome (weights used as `W[target][source]`, lengths for delays).
    pub connectome: &'a Connectome,
    /// The network: model, coupling, inputs, delays, held coupling.
    pub network: &'a NetworkConfig,
    /// All parameter values (model's, then the coupling's).
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

impl FusedRun<'_> {
    /// The threads this run may use: [`FusedRun::threads`], or one per available core.
    pub(crate) fn max_threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |p| p.get())
        } else {
            self.threads
        }
    }
}

/// Runs a simulation on the fused engine in float type `T`. `on_samples(first, k, values)`
/// receives each chunk's `k` samples `[k, batch, vars, nodes]` (`vars` is 1 for BOLD), as
/// `f64` whatever `T` (exact); `on_progress` the number of steps done. Returns the final state
/// `[batch, vars, nodes]`.
pub fn simulate_fused<T: Real>(
    fr: &FusedRun<'_>,
    on_samples: &mut dyn FnMut(usize, usize, Vec<f64>) -> Result<()>,
    on_progress: &mut dyn FnMut(usize),
) -> Result<Vec<f64>> {
    crate::model::lookup(&fr.network.model)?.simulate_fused(
        std::mem::size_of::<T>() == 8,
        fr,
        on_samples,
        on_progress,
    )
}

/// One nonzero connection, for delayed or sparse sums.
#[derive(Clone, Copy)]
pub(crate) struct Edge<T> {
    pub(crate) source: u32,
    pub(crate) delay: u32,
    pub(crate) weight: T,
}

/// Read-only data shared by the worker threads.
pub(crate) struct Ctx<T> {
    pub(crate) n: usize,
    pub(crate) nv: usize,
    /// Number of model parameters (the coupling's follow them).
    pub(crate) pm: usize,
    /// Parameters per node: `pm` model parameters, then the coupling's.
    pub(crate) pt: usize,
    pub(crate) coupling: CouplingKind,
    pub(crate) n_sums: usize,
    /// `Wᵀ`, `n × n`: `wt[j * n + i] = W[i][j]` (empty when sparse).
    pub(crate) wt: Vec<T>,
    /// Undelayed sums over the edge list rather than with `wt`.
    pub(crate) sparse: bool,
    /// `Σ_j W_ij`.
    pub(crate) rowsum: Vec<T>,
    /// Per target `i`, its nonzero incoming connections (`edges[start[i]..start[i + 1]]`);
    /// empty unless delayed or sparse.
    pub(crate) edge_start: Vec<usize>,
    pub(crate) edges: Vec<Edge<T>>,
    /// History length (1 without delays).
    pub(crate) horizon: usize,
    pub(crate) delayed: bool,
    pub(crate) hold: bool,
    /// Distinct sent quantities: the coupling input defining each, and whether it is a custom
    /// expression ([`Model::coupled`](neurodiff_models::Model::coupled)) rather than a plain variable.
    pub(crate) sources: Vec<(usize, bool)>,
    /// For each coupling input: index into `sources`, or `None` if off.
    pub(crate) input_src: Vec<Option<usize>>,
    /// Parameters, `[param_rows][n][pt]`.
    pub(crate) params: Vec<T>,
    pub(crate) param_rows: usize,
    pub(crate) dt: T,
    pub(crate) integrator: Integrator,
    /// Noisy variables and their scale `sigma sqrt(dt)` (as `f32`, like the tensor engine).
    pub(crate) noisy: Vec<(usize, f32)>,
    pub(crate) seed: u64,
    pub(crate) shared_noise: bool,
    /// The monitor's settings (schedule) and the observer it runs.
    pub(crate) monitor: Monitor,
    pub(crate) obs: Observer,
}

impl<T: Real> Ctx<T> {
    #[inline(always)]
    pub(crate) fn node_params(&self, b: usize, i: usize) -> &[T] {
        let row = if self.param_rows == 1 { 0 } else { b };
        &self.params[(row * self.n + i) * self.pt..(row * self.n + i + 1) * self.pt]
    }
}

/// A worker's mutable buffers for its rows of the batch.
#[derive(Clone)]
pub(crate) struct Worker<T> {
    pub(crate) rows: Range<usize>,
    pub(crate) x: Vec<T>,
    /// Each stage's drift, one buffer per stage of the scheme's tableau.
    pub(crate) d: Vec<Vec<T>>,
    pub(crate) xi: Vec<T>,
    /// Sent quantity per source: `[sources][r][n]`.
    pub(crate) sent: Vec<T>,
    /// Pre-synaptic values per source and sum: `[sources][sums][r][n]`.
    pub(crate) pre: Vec<T>,
    /// Sums per source and sum: `[sources][sums][r][n]`.
    pub(crate) sums: Vec<T>,
    /// Coupling inputs per input: `[inputs][r][n]` (held for the step when `hold`).
    pub(crate) cin: Vec<T>,
    /// Delay history of the pre-synaptic values: `[sources][sums][H][n][r]`, the batch rows
    /// innermost so that each edge reads its `r` delayed values from one contiguous run (row
    /// outermost, every edge of every row was a cache miss once `H · n` outgrew the cache).
    pub(crate) hist: Vec<T>,
    /// One delayed sum per batch row, while it is accumulated over a target's edges.
    pub(crate) row_acc: Vec<T>,
    pub(crate) z: Vec<T>,
    /// The monitor's carry, `[r][n_state][n]`, in `f64` whatever `T` (the BOLD signal is a
    /// difference of quantities near 1, which `f32` would leave with few digits near rest).
    pub(crate) mon: Vec<f64>,
}

/// The samples a worker took during a chunk (`(index, values)`), or where it blew up.
pub(crate) type ChunkResult<T> = std::result::Result<Vec<(usize, Vec<T>)>, Blowup>;

/// Where a fused run first became non-finite.
pub(crate) struct Blowup {
    pub(crate) step: usize,
    pub(crate) batch: usize,
    pub(crate) var: usize,
    pub(crate) node: usize,
    pub(crate) value: f32,
}

/// The shared read-only context of a fused run and one worker per group of batch rows (the
/// batch split across `fr.threads` threads), each holding its rows of the initial state.
///
/// A worker gets at least `rows_per_thread` rows (fewer threads for small batches).
pub(crate) fn setup<M: Model, T: Real>(
    m: &M,
    fr: &FusedRun<'_>,
    rows_per_thread: usize,
) -> Result<(Ctx<T>, Vec<Worker<T>>)> {
    let spec = m.spec();
    let run = fr.run;
    run.validate(spec.n_vars())?;
    if let Some(why) = crate::problem::fused_unsupported(run) {
        return Err(why.into());
    }
    if spec.n_vars() > MAX_VARS || spec.coupling.len() > MAX_VARS {
        return Err(Error::setting(
            "engine",
            format!(
                "model `{}` has {} state variables and {} coupling inputs; the fused engine \
                 holds at most {MAX_VARS} of each per node (use --engine tensor)",
                spec.name,
                spec.n_vars(),
                spec.coupling.len()
            ),
        ));
    }
    let obs = run.monitor.observer();
    if obs.n_state() > MAX_VARS || obs.n_out() > MAX_VARS {
        return Err(Error::setting(
            "monitor",
            format!(
                "the fused engine keeps at most {MAX_VARS} numbers per node in a monitor; \
                 this one keeps {} and samples {} (use --engine tensor)",
                obs.n_state(),
                obs.n_out()
            ),
        ));
    }
    if fr.batch == 0 {
        return Err(Error::setting("batch", "must be at least 1"));
    }
    let net = fr.network;
    let conn = fr.connectome;
    let n = conn.n;
    let nv = spec.n_vars();
    let batch = fr.batch;
    let pm = spec.params.len();
    let pt = fr.params.specs.len();
    let coupling: CouplingKind = net
        .coupling
        .unwrap_or_else(|| spec.coupling_function.into());
    let inputs_on = resolve_inputs(spec, net.inputs.as_deref())?;
    let (src_inputs, input_src) = sent_quantities(spec, &inputs_on);
    let sources: Vec<(usize, bool)> = src_inputs
        .iter()
        .map(|&k| (k, spec.coupling[k].sends.is_some()))
        .collect();
    let sparse = net.sparse.is_sparse(n, conn.nnz());
    // In-strengths in `T`, over each target's row: the dense row, or an edge list's stored
    // weights (the zeros a dense row adds do not change the sum).
    let row = |i: usize| -> &[f64] {
        match &conn.edges {
            Some(e) => &e.csr.weight[e.csr.start[i]..e.csr.start[i + 1]],
            None => &conn.weights[i * n..(i + 1) * n],
        }
    };
    let rowsum: Vec<T> = (0..n)
        .map(|i| row(i).iter().fold(T::zero(), |a, &w| a + T::of(w)))
        .collect();
    let wt = if sparse {
        Vec::new()
    } else {
        let dense = conn.to_dense()?;
        let mut wt = vec![T::zero(); n * n];
        for i in 0..n {
            for j in 0..n {
                wt[j * n + i] = T::of(dense.weights[i * n + j]);
            }
        }
        wt
    };
    let lengths = match net.speed {
        Some(speed) => {
            check_speed(speed)?;
            Some((edge_lengths_for_delays(conn)?, speed))
        }
        None => None,
    };
    let (edge_start, edges, horizon) = if sparse || lengths.is_some() {
        // The nonzero weights by target (an edge list as given; nothing n × n when sparse).
        let csr = conn.csr();
        let edges: Vec<Edge<T>> = csr
            .source
            .iter()
            .zip(&csr.weight)
            .enumerate()
            .map(|(k, (&j, &w))| Edge {
                source: j,
                delay: lengths.as_ref().map_or(0, |(l, speed)| {
                    u32::try_from(delay_steps(l[k], *speed, run.dt)).unwrap_or(u32::MAX)
                }),
                weight: T::of(w),
            })
            .collect();
        let horizon = edges.iter().map(|e| e.delay as usize).max().unwrap_or(0) + 1;
        (csr.start.clone(), edges, horizon)
    } else {
        (Vec::new(), Vec::new(), 1)
    };
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
        coupling,
        n_sums: point::n_sums(coupling),
        wt,
        sparse,
        rowsum,
        edge_start,
        edges,
        horizon,
        delayed: lengths.is_some(),
        hold: net.hold_coupling || lengths.is_some(),
        sources,
        input_src,
        params,
        param_rows,
        dt: T::of(run.dt),
        integrator: run.integrator,
        noisy,
        seed: run.noise.seed,
        shared_noise: run.noise.mode == NoiseMode::Shared,
        monitor: run.monitor.clone(),
        obs,
    };

    let stages = run
        .integrator
        .tableau()
        .expect("refused by problem::fused_unsupported")
        .b
        .len();
    let threads = fr
        .max_threads()
        .min(batch.div_ceil(rows_per_thread.max(1)))
        .max(1);
    let per = batch.div_ceil(threads);
    let ns = ctx.sources.len();
    let workers: Vec<Worker<T>> = (0..threads)
        .map(|t| (t * per).min(batch)..((t + 1) * per).min(batch))
        .filter(|rows| !rows.is_empty())
        .map(|rows| {
            let r = rows.len();
            let mut x = vec![T::zero(); r * nv * n];
            for (lb, b) in rows.clone().enumerate() {
                let src = if fr.x0_rows == 1 { 0 } else { b };
                for k in 0..nv * n {
                    x[lb * nv * n + k] = T::of(fr.x0[src * nv * n + k]);
                }
            }
            let buf = || vec![T::zero(); r * nv * n];
            let mut w = Worker {
                rows,
                x,
                d: (0..stages).map(|_| buf()).collect(),
                xi: buf(),
                sent: vec![T::zero(); ns * r * n],
                pre: vec![T::zero(); ns * 2 * r * n],
                sums: vec![T::zero(); ns * 2 * r * n],
                cin: vec![T::zero(); ctx.input_src.len() * r * n],
                hist: vec![
                    T::zero();
                    if ctx.delayed {
                        ns * 2 * r * horizon * n
                    } else {
                        0
                    }
                ],
                row_acc: vec![T::zero(); r],
                z: buf(),
                mon: vec![0.0; r * ctx.obs.n_state() * n],
            };
            init_monitor(&ctx, &mut w);
            if ctx.delayed {
                // Constant initial history: the initial state's contribution at every slot.
                sent_and_pre(m, &ctx, &mut w, false);
                for si in 0..ns {
                    for q in 0..ctx.n_sums {
                        for slot in 0..horizon {
                            hist_store(&ctx, r, si, q, slot, &w.pre, &mut w.hist);
                        }
                    }
                }
            }
            w
        })
        .collect();
    Ok((ctx, workers))
}

/// The workers' results, or the earliest blow-up over all of them.
pub(crate) fn earliest<R>(
    results: Vec<std::result::Result<R, Blowup>>,
) -> std::result::Result<Vec<R>, Blowup> {
    let mut first: Option<Blowup> = None;
    let mut ok = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(b) if first.as_ref().is_none_or(|f| b.step < f.step) => first = Some(b),
            Err(_) => {}
        }
    }
    first.map_or(Ok(ok), Err)
}

/// The error for a blow-up.
pub(crate) fn diverged<M: Model, T>(m: &M, ctx: &Ctx<T>, b: Blowup, dt: f64) -> Error {
    let nv = m.spec().n_vars();
    Error::Diverged {
        step: b.step,
        time: b.step as f64 * dt,
        time_unit: m.spec().time_unit.name(),
        var: match m.spec().state.get(b.var) {
            Some(v) => v.name.to_string(),
            None => ctx.obs.state_name(b.var - nv),
        },
        node: b.node,
        batch: b.batch,
        value: b.value,
    }
}

/// [`simulate_fused`] for the model value `m` (`fr.network.model` is not looked up).
pub fn simulate_model<M: Model, T: Real>(
    m: &M,
    fr: &FusedRun<'_>,
    on_samples: &mut dyn FnMut(usize, usize, Vec<f64>) -> Result<()>,
    on_progress: &mut dyn FnMut(usize),
) -> Result<Vec<f64>> {
    // Small batches are not worth a thread each: the workers meet after every chunk, and a
    // worker of several rows shares each pass over the weights between them.
    let (ctx, mut workers) = setup::<M, T>(m, fr, 8)?;
    let (run, batch, n, nv) = (fr.run, fr.batch, ctx.n, ctx.nv);
    let nrec = ctx.obs.n_out();
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
        let per_worker = earliest(results).map_err(|b| diverged(m, &ctx, b, run.dt))?;
        // Interleave the workers' samples into [k, batch, vars, nodes].
        let ks: Vec<usize> = per_worker[0].iter().map(|(k, _)| *k).collect();
        if let Some(&k0) = ks.first() {
            let mut out = Vec::with_capacity(ks.len() * batch * nrec * n);
            for si in 0..ks.len() {
                for samples in &per_worker {
                    debug_assert_eq!(samples[si].0, ks[si]);
                    out.extend(samples[si].1.iter().map(|v| v.as_f64()));
                }
            }
            on_samples(k0, ks.len(), out)?;
        }
        start += len;
        on_progress(start);
    }
    let mut fin = Vec::with_capacity(batch * nv * n);
    for w in &workers {
        fin.extend(w.x.iter().map(|v| v.as_f64()));
    }
    Ok(fin)
}

/// Offset of `pre`/`sums` row `lb` of sum `q` of source `si`.
#[inline(always)]
pub(crate) fn pre_at<T>(ctx: &Ctx<T>, r: usize, si: usize, q: usize, lb: usize) -> usize {
    ((si * 2 + q) * r + lb) * ctx.n
}

/// Offset of history slot `slot` of sum `q` of source `si` (`[n][r]` from there).
#[inline(always)]
fn hist_at<T>(ctx: &Ctx<T>, r: usize, si: usize, q: usize, slot: usize) -> usize {
    (((si * 2 + q) * ctx.horizon) + slot) * ctx.n * r
}

/// Writes the `pre` values of sum `q` of source `si` (all `r` rows) into history slot `slot`.
#[inline(always)]
fn hist_store<T: Real>(
    ctx: &Ctx<T>,
    r: usize,
    si: usize,
    q: usize,
    slot: usize,
    pre: &[T],
    hist: &mut [T],
) {
    let n = ctx.n;
    let h0 = hist_at(ctx, r, si, q, slot);
    let dst = &mut hist[h0..h0 + n * r];
    for lb in 0..r {
        let src = &pre[pre_at(ctx, r, si, q, lb)..][..n];
        for (j, &v) in src.iter().enumerate() {
            dst[j * r + lb] = v;
        }
    }
}

/// Runs [`chunk`] compiled for AVX2 and FMA when the processor has them (chosen at run time, as
/// XLA does), else for the baseline instruction set.
pub(crate) fn chunk_dispatch<M: Model, T: Real>(
    m: &M,
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
    m: &M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    start: usize,
    len: usize,
) -> ChunkResult<T> {
    chunk(m, ctx, w, start, len)
}

/// Adds the noise increments (if any) to `x`.
#[inline(always)]
pub(crate) fn add_noise<T: Real>(x: &mut [T], z: Option<&[T]>) {
    if let Some(z) = z {
        x.iter_mut().zip(z).for_each(|(x, &z)| *x = *x + z);
    }
}

/// Which state buffer a stage evaluates.
#[derive(Clone, Copy)]
pub(crate) enum Stage {
    X,
    Xi,
}

/// `d[out] = f(state)`: the coupling inputs (unless held) then the drift.
#[inline(always)]
fn stage<M: Model, T: Real>(m: &M, ctx: &Ctx<T>, w: &mut Worker<T>, which: Stage, out: usize) {
    if !ctx.hold {
        inputs(m, ctx, w, which, None);
    }
    let r = w.rows.len();
    let x = match which {
        Stage::X => &w.x,
        Stage::Xi => &w.xi,
    };
    drift(m, ctx, w.rows.start, r, x, &w.cin, &mut w.d[out]);
}

/// `out = base + (Σ_j c_j d_j) h` over the terms `(j, c_j)` (`base` is `out` itself when
/// `None`), with weights of 1 not multiplied, as the tensor engine's tableau interpreter
/// computes it (so Heun's `x + (k₁ + k₂) h` and Euler's `x + k₁ dt` are the hand-written
/// operations). One pass for up to two terms.
#[inline(always)]
fn combine<T: Real>(out: &mut [T], base: Option<&[T]>, d: &[Vec<T>], terms: &[(usize, f64)], h: T) {
    // Unit weights, one or two terms (Euler, Heun, every stage input of the classical schemes):
    // plain zipped passes that the compiler vectorises.
    if terms.iter().all(|&(_, c)| c == 1.0) {
        match (terms, base) {
            ([j], None) => {
                let a = &d[j.0];
                out.iter_mut().zip(a).for_each(|(o, &a)| *o = *o + a * h);
                return;
            }
            ([j], Some(b)) => {
                let a = &d[j.0];
                out.iter_mut()
                    .zip(b.iter().zip(a))
                    .for_each(|(o, (&b, &a))| *o = b + a * h);
                return;
            }
            ([j0, j1], None) => {
                let (p, q) = (&d[j0.0], &d[j1.0]);
                out.iter_mut()
                    .zip(p.iter().zip(q))
                    .for_each(|(o, (&p, &q))| *o = *o + (p + q) * h);
                return;
            }
            ([j0, j1], Some(b)) => {
                let (p, q) = (&d[j0.0], &d[j1.0]);
                out.iter_mut()
                    .zip(b.iter().zip(p.iter().zip(q)))
                    .for_each(|(o, (&b, (&p, &q)))| *o = b + (p + q) * h);
                return;
            }
            _ => {}
        }
    }
    let term = |(j, c): (usize, f64), k: usize| {
        if c == 1.0 {
            d[j][k]
        } else {
            d[j][k] * T::of(c)
        }
    };
    for k in 0..out.len() {
        let sum = terms[1..]
            .iter()
            .fold(term(terms[0], k), |acc, &t| acc + term(t, k));
        out[k] = base.map_or(out[k], |b| b[k]) + sum * h;
    }
}

/// A tableau prepared for [`rk_step`]: per stage after the first, the nonzero coefficients
/// and the factor they are multiplied by (`a_j dt` folded into one factor where a stage has a
/// single coefficient, as the tensor engine does), then the weights and `scale · dt`.
pub(crate) struct StepPlan<T> {
    stages: Vec<(Vec<(usize, f64)>, T)>,
    weights: (Vec<(usize, f64)>, T),
    noise_in_stages: bool,
    project_stages: bool,
}

impl<T: Real> StepPlan<T> {
    /// The plan of the run's scheme (the fused engine takes the tableau schemes only).
    pub(crate) fn new(ctx: &Ctx<T>) -> Self {
        Self::of(
            ctx.integrator
                .tableau()
                .expect("refused by problem::fused_unsupported"),
            ctx.dt,
        )
    }

    fn of(t: &Tableau, dt: T) -> Self {
        let nonzero = |c: &[f64]| -> Vec<(usize, f64)> {
            c.iter()
                .enumerate()
                .filter(|(_, &c)| c != 0.0)
                .map(|(j, &c)| (j, c))
                .collect()
        };
        let stages = t.a[1..]
            .iter()
            .map(|a| match nonzero(a)[..] {
                [(j, c)] => (vec![(j, 1.0)], T::of(c) * dt),
                ref terms => (terms.to_vec(), dt),
            })
            .collect();
        Self {
            stages,
            weights: (nonzero(t.b), dt * T::of(t.scale)),
            noise_in_stages: t.noise_in_stages,
            project_stages: t.project_stages,
        }
    }
}

/// What a step shows to whoever records it (the adjoint's tape); the engine's own stepping
/// passes `()`, which records nothing and compiles away.
pub(crate) trait StepTape<T> {
    /// Stage `i` has been evaluated: it read the state `w.x` (stage 0) or `w.xi`, and left its
    /// coupling inputs, sums and sent quantities in `w.cin`, `w.sums` and `w.sent`.
    fn stage(&mut self, w: &Worker<T>, i: usize);
    /// A state about to be projected (only for models that project): the input of stage `i`
    /// (`i ≥ 1`, schemes that project their stages), or the step's result (`i == 0`).
    fn unprojected(&mut self, u: &[T], i: usize);
}

impl<T> StepTape<T> for () {
    #[inline(always)]
    fn stage(&mut self, _: &Worker<T>, _: usize) {}
    #[inline(always)]
    fn unprojected(&mut self, _: &[T], _: usize) {}
}

/// One step of an explicit Runge–Kutta scheme (its tableau, prepared as `plan`: stages,
/// weights, where the noise and the projection enter), from `w.x` to `w.x`: the fused engine's
/// one interpretation of the schemes of [`crate::integrate`], which the adjoint also records
/// through `tape`.
#[inline(always)]
fn rk_step<M: Model, T: Real, Tp: StepTape<T>>(
    m: &M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    plan: &StepPlan<T>,
    zs: Option<&[T]>,
    tape: &mut Tp,
) {
    let (n, nv) = (ctx.n, ctx.nv);
    stage(m, ctx, w, Stage::X, 0);
    tape.stage(w, 0);
    for (i, (terms, h)) in plan.stages.iter().enumerate() {
        combine(&mut w.xi, Some(&w.x), &w.d, terms, *h);
        if plan.noise_in_stages {
            add_noise(&mut w.xi, zs);
        }
        if plan.project_stages && M::PROJECTS {
            tape.unprojected(&w.xi, i + 1);
            project::<M, T>(m, nv, n, &mut w.xi);
        }
        stage(m, ctx, w, Stage::Xi, i + 1);
        tape.stage(w, i + 1);
    }
    combine(&mut w.x, None, &w.d, &plan.weights.0, plan.weights.1);
    add_noise(&mut w.x, zs);
    if M::PROJECTS {
        tape.unprojected(&w.x, 0);
        project::<M, T>(m, nv, n, &mut w.x);
    }
}

/// Step `step` of a run for one worker's rows, from `w.x` to `w.x`: its noise, the held
/// coupling inputs (with delays, the history update), then the scheme's stages.
#[inline(always)]
pub(crate) fn advance<M: Model, T: Real, Tp: StepTape<T>>(
    m: &M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    plan: &StepPlan<T>,
    step: usize,
    tape: &mut Tp,
) {
    let noisy = !ctx.noisy.is_empty();
    if noisy {
        fill_noise(ctx, w, step);
    }
    if ctx.hold {
        inputs(m, ctx, w, Stage::X, Some(step));
    }
    // Taken out of the worker for the step so the stages can borrow the worker mutably.
    let z = std::mem::take(&mut w.z);
    let zs = if noisy { Some(&z[..]) } else { None };
    rk_step(m, ctx, w, plan, zs, tape);
    w.z = z;
}

/// Runs steps `start..start + len` for one worker's rows.
#[inline(always)]
fn chunk<M: Model, T: Real>(
    m: &M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    start: usize,
    len: usize,
) -> ChunkResult<T> {
    let (n, nv) = (ctx.n, ctx.nv);
    let mut samples = Vec::new();
    let plan = StepPlan::new(ctx);
    for s in 0..len {
        let step = start + s;
        advance(m, ctx, w, &plan, step, &mut ());
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
        if ctx.monitor.records(done) && !w.mon.is_empty() {
            record_monitor(ctx, w, done)?;
        }
        if let Some(k) = ctx.monitor.due(done) {
            samples.push((k, sample_monitor(ctx, w)));
        }
    }
    Ok(samples)
}

/// Writes the monitor's initial carry for every node of a worker.
fn init_monitor<T: Real>(ctx: &Ctx<T>, w: &mut Worker<T>) {
    let (n, ns) = (ctx.n, ctx.obs.n_state());
    let mut s = [0.0; MAX_VARS];
    ctx.obs.init(&mut s[..ns]);
    for (k, chunk) in w.mon.chunks_mut(n).enumerate() {
        chunk.fill(s[k % ns]);
    }
}

/// Runs `f(row, node, state, carry)` on every node of a worker, the node's state and monitor
/// carry gathered into `f64` arrays (and the carry written back).
#[inline(always)]
fn each_node<T: Real>(
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    mut f: impl FnMut(usize, usize, &[f64], &mut [f64]) -> std::result::Result<(), Blowup>,
) -> std::result::Result<(), Blowup> {
    let (n, nv, ns) = (ctx.n, ctx.nv, ctx.obs.n_state());
    let (mut xs, mut s) = ([0.0; MAX_VARS], [0.0; MAX_VARS]);
    for lb in 0..w.rows.len() {
        for i in 0..n {
            for (v, x) in xs[..nv].iter_mut().enumerate() {
                *x = w.x[(lb * nv + v) * n + i].as_f64();
            }
            for (j, c) in s[..ns].iter_mut().enumerate() {
                *c = w.mon[(lb * ns + j) * n + i];
            }
            f(lb, i, &xs[..nv], &mut s[..ns])?;
            for (j, &c) in s[..ns].iter().enumerate() {
                w.mon[(lb * ns + j) * n + i] = c;
            }
        }
    }
    Ok(())
}

/// Records the state after step `done` into the monitor's carry of every node; a non-finite
/// carry is a blow-up (named by the observer).
fn record_monitor<T: Real>(
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    done: usize,
) -> std::result::Result<(), Blowup> {
    let (nv, b0) = (ctx.nv, w.rows.start);
    each_node(ctx, w, |lb, i, x, s| {
        ctx.obs.record(done, x, s);
        match s.iter().position(|c| !c.is_finite()) {
            None => Ok(()),
            Some(j) => Err(Blowup {
                step: done,
                batch: b0 + lb,
                var: nv + j,
                node: i,
                value: s[j] as f32,
            }),
        }
    })
}

/// One sample `[r][n_out][n]` of every node, resetting what the observer restarts.
fn sample_monitor<T: Real>(ctx: &Ctx<T>, w: &mut Worker<T>) -> Vec<T> {
    let (n, no) = (ctx.n, ctx.obs.n_out());
    let mut out = vec![T::zero(); w.rows.len() * no * n];
    let mut o = [0.0; MAX_VARS];
    let _ = each_node(ctx, w, |lb, i, x, s| {
        ctx.obs.sample(x, s, &mut o[..no]);
        for (j, &v) in o[..no].iter().enumerate() {
            out[(lb * no + j) * n + i] = T::of(v);
        }
        Ok(())
    });
    out
}

/// The noise increments of one step for a worker's rows, laid out like the state.
pub(crate) fn fill_noise<T: Real>(ctx: &Ctx<T>, w: &mut Worker<T>, step: usize) {
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
pub(crate) fn project<M: Model, T: Real>(m: &M, nv: usize, n: usize, x: &mut [T]) {
    if !M::PROJECTS {
        return;
    }
    let mut buf = [T::zero(); MAX_VARS];
    for row in x.chunks_exact_mut(nv * n) {
        for i in 0..n {
            for v in 0..nv {
                buf[v] = row[v * n + i];
            }
            m.project(&mut buf[..nv]);
            for v in 0..nv {
                row[v * n + i] = buf[v];
            }
        }
    }
}

/// For each sent quantity: the value each node sends (`w.sent`) and its contributions to the
/// sums (`w.pre`), from the state buffer `xi` (`true`) or `x`.
#[inline(always)]
pub(crate) fn sent_and_pre<M: Model, T: Real>(
    m: &M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    from_xi: bool,
) {
    let (n, nv, pm) = (ctx.n, ctx.nv, ctx.pm);
    let r = w.rows.len();
    let x = if from_xi { &w.xi } else { &w.x };
    let mut xs = [T::zero(); MAX_VARS];
    for (si, &(k, custom)) in ctx.sources.iter().enumerate() {
        let var = m.spec().coupling[k].var;
        for lb in 0..r {
            let b = w.rows.start + lb;
            let xrow = &x[lb * nv * n..(lb + 1) * nv * n];
            for j in 0..n {
                let s = if custom {
                    for v in 0..nv {
                        xs[v] = xrow[v * n + j];
                    }
                    m.coupled(k, &xs[..nv], &ctx.node_params(b, j)[..pm])
                } else {
                    xrow[var * n + j]
                };
                w.sent[(si * r + lb) * n + j] = s;
                let pre = point::pre(ctx.coupling, s, &ctx.node_params(b, j)[pm..]);
                w.pre[pre_at(ctx, r, si, 0, lb) + j] = pre[0];
                if ctx.n_sums == 2 {
                    w.pre[pre_at(ctx, r, si, 1, lb) + j] = pre[1];
                }
            }
        }
    }
}

/// The coupling inputs `w.cin` from the state buffer `which`. With `step` (held coupling), the
/// delayed sums read the history, which is first updated with this step's values.
#[inline(always)]
pub(crate) fn inputs<M: Model, T: Real>(
    m: &M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    which: Stage,
    step: Option<usize>,
) {
    let n = ctx.n;
    let r = w.rows.len();
    sent_and_pre(m, ctx, w, matches!(which, Stage::Xi));
    match (ctx.delayed, step) {
        (true, Some(step)) => {
            let h = ctx.horizon;
            let slot = step % h;
            for si in 0..ctx.sources.len() {
                for q in 0..ctx.n_sums {
                    hist_store(ctx, r, si, q, slot, &w.pre, &mut w.hist);
                    let h0 = hist_at(ctx, r, si, q, 0);
                    let hist = &w.hist[h0..h0 + h * n * r];
                    let acc = &mut w.row_acc;
                    for i in 0..n {
                        acc.iter_mut().for_each(|a| *a = T::zero());
                        for e in &ctx.edges[ctx.edge_start[i]..ctx.edge_start[i + 1]] {
                            let sl = (slot + h - e.delay as usize) % h;
                            let at = (sl * n + e.source as usize) * r;
                            let vals = &hist[at..at + r];
                            acc.iter_mut()
                                .zip(vals)
                                .for_each(|(a, &v)| *a = *a + e.weight * v);
                        }
                        for (lb, &a) in acc.iter().enumerate() {
                            w.sums[pre_at(ctx, r, si, q, lb) + i] = a;
                        }
                    }
                }
            }
        }
        _ => {
            for si in 0..ctx.sources.len() {
                for q in 0..ctx.n_sums {
                    let p0 = pre_at(ctx, r, si, q, 0);
                    matmul_rows(ctx, r, &w.pre[p0..p0 + r * n], &mut w.sums[p0..p0 + r * n]);
                }
            }
        }
    }
    // Post: each target's input from its sums.
    for (k, src) in ctx.input_src.iter().enumerate() {
        for lb in 0..r {
            let b = w.rows.start + lb;
            let out = &mut w.cin[(k * r + lb) * n..(k * r + lb + 1) * n];
            match *src {
                None => out.iter_mut().for_each(|c| *c = T::zero()),
                Some(si) => {
                    let p0 = pre_at(ctx, r, si, 0, lb);
                    let p1 = pre_at(ctx, r, si, 1, lb);
                    #[allow(clippy::needless_range_loop)] // i indexes five arrays
                    for i in 0..n {
                        let sums = [w.sums[p0 + i], w.sums[p1 + i]];
                        let s_i = w.sent[(si * r + lb) * n + i];
                        out[i] = point::post(
                            ctx.coupling,
                            sums,
                            s_i,
                            ctx.rowsum[i],
                            &ctx.node_params(b, i)[ctx.pm..],
                        );
                    }
                }
            }
        }
    }
}

/// `out[lb] = a[lb] · Wᵀ` for `r` rows of length `n`.
#[inline(always)]
pub(crate) fn matmul_rows<T: Real>(ctx: &Ctx<T>, r: usize, a: &[T], out: &mut [T]) {
    let n = ctx.n;
    if ctx.sparse {
        // Over each target's incoming edges.
        for lb in 0..r {
            let ar = &a[lb * n..(lb + 1) * n];
            let cr = &mut out[lb * n..(lb + 1) * n];
            for (i, c) in cr.iter_mut().enumerate() {
                *c = ctx.edges[ctx.edge_start[i]..ctx.edge_start[i + 1]]
                    .iter()
                    .fold(T::zero(), |acc, e| acc + e.weight * ar[e.source as usize]);
            }
        }
    } else if r <= 4 {
        // Row by row as a sum of scaled rows of Wᵀ: contiguous, vectorises, no packing.
        for lb in 0..r {
            let ar = &a[lb * n..(lb + 1) * n];
            let cr = &mut out[lb * n..(lb + 1) * n];
            cr.iter_mut().for_each(|c| *c = T::zero());
            for (j, &aj) in ar.iter().enumerate() {
                if aj != T::zero() {
                    let wrow = &ctx.wt[j * n..(j + 1) * n];
                    cr.iter_mut().zip(wrow).for_each(|(c, &w)| *c = *c + aj * w);
                }
            }
        }
    } else {
        T::gemm(r, n, n, a, n, &ctx.wt, out);
    }
}

/// `out = drift(x, cin)` for `r` rows starting at batch element `b0`.
#[inline(always)]
pub(crate) fn drift<M: Model, T: Real>(
    m: &M,
    ctx: &Ctx<T>,
    b0: usize,
    r: usize,
    x: &[T],
    cin: &[T],
    out: &mut [T],
) {
    let (n, nv, pm) = (ctx.n, ctx.nv, ctx.pm);
    let nin = ctx.input_src.len();
    let mut xs = [T::zero(); MAX_VARS];
    let mut cs = [T::zero(); MAX_VARS];
    let mut ds = [T::zero(); MAX_VARS];
    for lb in 0..r {
        let xrow = &x[lb * nv * n..(lb + 1) * nv * n];
        let orow = &mut out[lb * nv * n..(lb + 1) * nv * n];
        for i in 0..n {
            let p = ctx.node_params(b0 + lb, i);
            for v in 0..nv {
                xs[v] = xrow[v * n + i];
            }
            for (k, c) in cs.iter_mut().take(nin).enumerate() {
                *c = cin[(k * r + lb) * n + i];
            }
            m.drift(&xs[..nv], &cs[..nin], &p[..pm], &mut ds[..nv]);
            for v in 0..nv {
                orow[v * n + i] = ds[v];
            }
        }
    }
}
