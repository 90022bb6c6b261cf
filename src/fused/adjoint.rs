//! Gradients on the fused CPU engine: a hand-written discrete adjoint (reverse mode) of its time
//! stepping, with chunked checkpointing.
//!
//! 1. **Forward**: the fused engine's own stepping ([`super::engine`]), keeping the state at the
//!    start of every chunk of `K` steps and the monitor's samples.
//! 2. **Loss**: the caller's loss on the host returns its value per batch element and
//!    `dL/d samples` ([`HostLoss`]; [`fc_corr_loss`] is the FC-correlation loss with its
//!    hand-derived gradient).
//! 3. **Backward**: for each chunk from the last, the chunk is recomputed from its boundary
//!    state (its noise regenerated from `(seed, step, batch element)`), storing every step's
//!    stages, coupling sums and inputs; then the steps are swept in reverse,
//!    carrying the adjoint `λ = dL/dx` through the projection, the integrator, the model's drift,
//!    the sent quantities and the coupling, and accumulating `dL/d params`.
//!
//! The local Jacobians (drift, sent quantity, projection, coupling `pre`/`post`) come from
//! forward-mode dual numbers ([`super::dual`]) through the generic point functions, so every
//! model of the catalogue and every coupling function is differentiated from the same source the
//! fused engine integrates. A model may supply hand-written vector-Jacobian products of its drift
//! and projection instead ([`Model::HAND_VJP`]: MPR and Hopf do, several times faster than the
//! duals; a unit test checks each against the duals). Memory is `T/K` boundary states plus one
//! chunk's tape (two when pipelined).
//!
//! When the machine has a spare core per worker (a batch smaller than half the cores, e.g. one
//! simulation), each worker's chunks are re-run on a second thread one chunk ahead of its sweep,
//! so the re-run overlaps the sweep instead of preceding it.
//!
//! Supported: every model and coupling function, dense or sparse coupling sums
//! ([`crate::sparse`]: the transposed sums then run over the same edge list), every scheme
//! with a tableau (Euler and stochastic Heun with additive host noise, RK3 and RK4 without:
//! the chunk is re-run through the engine's own step, which records each stage, and the sweep
//! reads the tableau backwards), held or per-stage coupling, every state monitor
//! (sub-sampled or temporal mean, transient) and the BOLD monitor (the haemodynamics on the
//! host, between the neural adjoint and the loss: see the `bold` submodule). Not supported
//! (reported by [`crate::problem::Problem::capabilities`]): conduction delays, exponential Euler,
//! device noise.
//!
//! Tested against the tensor engine's checkpointed autodiff ([`crate::grad::value_and_grad`])
//! and against finite differences (`tests/integration/adjoint.rs`), and sparse against dense
//! (`tests/integration/sparse.rs`).

mod bold;

use neurodiff_models::Model;

use super::dual::Dual;
use super::engine::{
    advance, chunk_dispatch, diverged, earliest, pre_at, setup, Blowup, Ctx, FusedRun, Real,
    StepPlan, StepTape, Worker,
};
use crate::coupling::{point, CouplingKind};
use crate::error::{Error, Result};
use crate::integrate::Tableau;
use crate::monitor::Observe;
use crate::params::ParamValue;

/// A loss on the host: given the samples `[samples, batch, vars, nodes]` (row-major, `f64`) and
/// their shape, the loss per batch element and `d (Σ loss) / d samples` (same layout).
pub type HostLoss<'a> = dyn Fn(&[f64], [usize; 4]) -> Result<(Vec<f64>, Vec<f64>)> + 'a;

/// Settings of an adjoint gradient evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct GradOptions {
    /// Steps per checkpointed chunk (memory: one state per chunk plus one chunk's tape).
    pub chunk: usize,
    /// Parameters to differentiate, by name (`None`: all of them). Fewer parameters make the
    /// local Jacobians cheaper.
    pub wrt: Option<Vec<String>>,
}

impl Default for GradOptions {
    fn default() -> Self {
        Self {
            chunk: 1000,
            wrt: None,
        }
    }
}

/// The gradient with respect to one parameter, in the shape of its value (as
/// [`crate::params::ParamTable::tensors`]): `[1, 1]` for a scalar (summed over batch and nodes),
/// `[batch, 1]` for one value per batch element, `[rows, nodes]` for regional values.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGrad {
    /// `[rows, cols]`.
    pub shape: [usize; 2],
    /// Row-major values.
    pub values: Vec<f64>,
}

/// What [`value_and_grad_fused`] returns (the counterpart of [`crate::grad::ValueAndGrad`]).
#[derive(Debug, Clone)]
pub struct FusedValueAndGrad {
    /// Loss per batch element.
    pub loss: Vec<f64>,
    /// `d (Σ loss) / d param` for each parameter of the table (`None` for those not in
    /// [`GradOptions::wrt`]).
    pub grads: Vec<Option<ParamGrad>>,
    /// The samples, `[samples, batch, vars, nodes]`.
    pub outputs: Vec<f64>,
    /// Shape of `outputs`.
    pub shape: [usize; 4],
}

/// [`value_and_grad_fused`] in `f64` (`double`) or `f32`, chosen at run time. Not generic, so it
/// is compiled once, in this crate: callers in other crates (the command-line tool, tests,
/// examples) link to it instead of compiling the adjoint of every model again.
pub fn value_and_grad_fused_in(
    double: bool,
    fr: &FusedRun<'_>,
    opts: &GradOptions,
    loss: &HostLoss<'_>,
) -> Result<FusedValueAndGrad> {
    crate::model::lookup(&fr.network.model)?.value_and_grad_fused(double, fr, opts, loss)
}

/// Value and gradient of `loss(samples)` with respect to the parameters of `fr.params`, by the
/// discrete adjoint of the fused engine in float type `T` (see the module documentation). Batch
/// elements are independent: each gets its own gradient in its rows of per-batch parameters.
pub fn value_and_grad_fused<T: Real>(
    fr: &FusedRun<'_>,
    opts: &GradOptions,
    loss: &HostLoss<'_>,
) -> Result<FusedValueAndGrad> {
    crate::model::lookup(&fr.network.model)?.value_and_grad_fused(
        std::mem::size_of::<T>() == 8,
        fr,
        opts,
        loss,
    )
}

/// [`value_and_grad_fused`] for the model value `m` (`fr.network.model` is not looked up).
pub fn value_and_grad_model<M: Model, T: Real>(
    m: &M,
    fr: &FusedRun<'_>,
    opts: &GradOptions,
    loss: &HostLoss<'_>,
) -> Result<FusedValueAndGrad> {
    if let Some(why) = crate::problem::adjoint_unsupported(fr.network, fr.run) {
        return Err(why.into());
    }
    if opts.chunk == 0 {
        return Err(Error::setting("chunk", "must be at least 1"));
    }
    if let Some(b) = &fr.run.monitor.bold {
        return bold::value_and_grad_bold::<M, T>(m, fr, b, opts, loss);
    }
    run_model::<M, T>(m, fr, opts, loss)
}

/// Which parameters are differentiated and the derivative directions of each local function.
struct Dirs {
    /// Per parameter (model's then coupling's): differentiate it.
    sel: Vec<bool>,
    /// Drift inputs `[x (nv), c (nin), model params (pm)]`.
    drift: Vec<usize>,
    /// Sent-quantity inputs `[x (nv), model params (pm)]`.
    sent: Vec<usize>,
    /// Post inputs `[sum 0, sum 1, s_i, coupling params]`.
    post: Vec<usize>,
    /// Pre inputs `[s, coupling params]`.
    pre: Vec<usize>,
    /// Projection inputs `[x (nv)]`.
    proj: Vec<usize>,
}

impl Dirs {
    fn new<T>(ctx: &Ctx<T>, sel: Vec<bool>) -> Self {
        let (nv, nin, pm, pt) = (ctx.nv, ctx.input_src.len(), ctx.pm, ctx.pt);
        let model_p = (0..pm).filter(|&k| sel[k]);
        let cpl_p = || (pm..pt).filter(|&k| sel[k]).map(move |k| k - pm);
        let mut drift: Vec<usize> = (0..nv).collect();
        drift.extend(
            (0..nin)
                .filter(|&k| ctx.input_src[k].is_some())
                .map(|k| nv + k),
        );
        drift.extend(model_p.clone().map(|k| nv + nin + k));
        let mut sent: Vec<usize> = (0..nv).collect();
        sent.extend(model_p.map(|k| nv + k));
        let mut post = vec![0];
        if ctx.n_sums == 2 {
            post.push(1);
        }
        post.push(2);
        post.extend(cpl_p().map(|k| 3 + k));
        let mut pre = vec![0];
        pre.extend(cpl_p().map(|k| 1 + k));
        Self {
            sel,
            drift,
            sent,
            post,
            pre,
            proj: (0..nv).collect(),
        }
    }
}

fn run_model<M: Model, T: Real>(
    m: &M,
    fr: &FusedRun<'_>,
    opts: &GradOptions,
    loss: &HostLoss<'_>,
) -> Result<FusedValueAndGrad> {
    let run = fr.run;
    // One row per thread at least: the workers run the forward pass and the backward sweep
    // independently from start to end, so even a batch of 2 restarts uses 2 cores.
    let (ctx, mut workers) = setup::<M, T>(m, fr, 1)?;
    let (n, pt, batch) = (ctx.n, ctx.pt, fr.batch);
    let sel: Vec<bool> = match &opts.wrt {
        None => vec![true; pt],
        Some(names) => {
            let mut sel = vec![false; pt];
            for name in names {
                let k = fr.params.index(name).ok_or_else(|| {
                    Error::param(name, "no such parameter to differentiate with respect to")
                })?;
                sel[k] = true;
            }
            sel
        }
    };
    let dirs = Dirs::new(&ctx, sel);
    let k_len = opts.chunk;

    // 1. Forward, keeping boundary states and samples.
    type Fwd<T> = std::result::Result<(Vec<Vec<T>>, Vec<(usize, Vec<T>)>), Blowup>;
    let fwd: Vec<Fwd<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .map(|w| {
                let ctx = &ctx;
                s.spawn(move || -> Fwd<T> {
                    let mut bounds = Vec::new();
                    let mut samples = Vec::new();
                    let mut start = 0;
                    while start < run.steps {
                        let len = k_len.min(run.steps - start);
                        bounds.push(w.x.clone());
                        samples.extend(chunk_dispatch(m, ctx, w, start, len)?);
                        start += len;
                    }
                    Ok((bounds, samples))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("adjoint worker panicked"))
            .collect()
    });
    let per_worker = earliest(fwd).map_err(|b| diverged(m, &ctx, b, run.dt))?;

    // 2. The loss and its gradient with respect to the samples.
    let nrec = ctx.obs.n_out();
    let ns = per_worker[0].1.len();
    let shape = [ns, batch, nrec, n];
    let mut outputs = Vec::with_capacity(ns * batch * nrec * n);
    for k in 0..ns {
        for (_, samples) in &per_worker {
            outputs.extend(samples[k].1.iter().map(|v| v.as_f64()));
        }
    }
    let (loss_value, dy) = loss(&outputs, shape)?;
    if dy.len() != outputs.len() {
        return Err(Error::setting(
            "loss",
            format!(
                "the loss gradient has {} values for {} samples",
                dy.len(),
                outputs.len()
            ),
        ));
    }

    // 3. Backward, each worker over its own rows.
    let bounds: Vec<Vec<Vec<T>>> = per_worker.into_iter().map(|(b, _)| b).collect();
    let wide = dirs.drift.len() > 4 || dirs.post.len() > 4 || dirs.sent.len() > 4;
    // With a spare core per worker, each worker's chunks are re-run on a second thread while
    // it sweeps the previous one (the re-run is about a third of the backward pass).
    let pipeline = fr.max_threads() >= 2 * workers.len();
    let grads: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .zip(bounds)
            .map(|(w, b)| {
                let (ctx, dirs, dy) = (&ctx, &dirs, &dy[..]);
                s.spawn(move || {
                    let job = Backward {
                        ctx,
                        dirs,
                        dy,
                        shape,
                        steps: run.steps,
                        k_len,
                        pipeline,
                    };
                    if wide {
                        backward_dispatch::<M, T, 8>(m, &job, w, b)
                    } else {
                        backward_dispatch::<M, T, 4>(m, &job, w, b)
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("adjoint worker panicked"))
            .collect()
    });

    // 4. Per-node gradients [batch, nodes, params] reduced to each parameter's shape.
    let mut g = Vec::with_capacity(batch * n * pt);
    for gw in grads {
        g.extend(gw);
    }
    let grads = (0..pt)
        .map(|k| {
            if !dirs.sel[k] {
                return None;
            }
            let at = |b: usize, i: usize| g[(b * n + i) * pt + k];
            let (shape, values) = match &fr.params.values[k] {
                ParamValue::Scalar(_) => (
                    [1, 1],
                    vec![(0..batch)
                        .flat_map(|b| (0..n).map(move |i| (b, i)))
                        .map(|(b, i)| at(b, i))
                        .sum()],
                ),
                ParamValue::Batch(_) => (
                    [batch, 1],
                    (0..batch).map(|b| (0..n).map(|i| at(b, i)).sum()).collect(),
                ),
                ParamValue::Regional { rows: 1, .. } => (
                    [1, n],
                    (0..n).map(|i| (0..batch).map(|b| at(b, i)).sum()).collect(),
                ),
                ParamValue::Regional { .. } => (
                    [batch, n],
                    (0..batch)
                        .flat_map(|b| (0..n).map(move |i| (b, i)))
                        .map(|(b, i)| at(b, i))
                        .collect(),
                ),
            };
            Some(ParamGrad { shape, values })
        })
        .collect();
    Ok(FusedValueAndGrad {
        loss: loss_value,
        grads,
        outputs,
        shape,
    })
}

/// What a worker's backward sweep reads.
struct Backward<'a, T> {
    ctx: &'a Ctx<T>,
    dirs: &'a Dirs,
    /// `dL/d samples`, `[samples, batch, vars, nodes]`.
    dy: &'a [f64],
    shape: [usize; 4],
    steps: usize,
    k_len: usize,
    /// Re-run (record) the chunks on a second thread, one chunk ahead of the sweep: when the
    /// machine has a spare core per worker (a small batch).
    pipeline: bool,
}

fn backward_dispatch<M: Model, T: Real, const N: usize>(
    m: &M,
    job: &Backward<'_, T>,
    w: &mut Worker<T>,
    bounds: Vec<Vec<T>>,
) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected on this processor.
            return unsafe { backward_avx2::<M, T, N>(m, job, w, bounds) };
        }
    }
    backward::<M, T, N>(m, job, w, bounds)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_avx2<M: Model, T: Real, const N: usize>(
    m: &M,
    job: &Backward<'_, T>,
    w: &mut Worker<T>,
    bounds: Vec<Vec<T>>,
) -> Vec<f64> {
    backward::<M, T, N>(m, job, w, bounds)
}

/// The recorded values of one chunk, per step and per stage of the scheme: the state the stage
/// read (stage 0: the step's start), its coupling inputs, sums and sent quantities; for a model
/// that projects, the unprojected result (slot 0) and, for schemes that project their stages,
/// each stage's unprojected input (slot `i`).
struct Tape<T> {
    /// Sizes of a state, the inputs, the sums and the sent quantities of one stage.
    s: usize,
    c: usize,
    su: usize,
    se: usize,
    /// Stages per step, and unprojected states kept per step (0, 1 or `nst`).
    nst: usize,
    nu: usize,
    xs: Vec<T>,
    us: Vec<T>,
    cin: Vec<T>,
    sums: Vec<T>,
    sent: Vec<T>,
}

impl<T> Tape<T> {
    fn xs(&self, s: usize, i: usize) -> &[T] {
        &self.xs[(s * self.nst + i) * self.s..][..self.s]
    }
    fn cin(&self, s: usize, i: usize) -> &[T] {
        &self.cin[(s * self.nst + i) * self.c..][..self.c]
    }
    fn sums(&self, s: usize, i: usize) -> &[T] {
        &self.sums[(s * self.nst + i) * self.su..][..self.su]
    }
    fn sent(&self, s: usize, i: usize) -> &[T] {
        &self.sent[(s * self.nst + i) * self.se..][..self.se]
    }
    /// The unprojected state of slot `i` (empty for a model that does not project).
    fn u(&self, s: usize, i: usize) -> &[T] {
        if self.nu == 0 {
            return &[];
        }
        &self.us[(s * self.nu + i) * self.s..][..self.s]
    }
}

/// Records step `s` of a chunk on the tape, through the fused engine's own step.
struct Recorder<'a, T> {
    tape: &'a mut Tape<T>,
    s: usize,
    hold: bool,
}

impl<T: Real> StepTape<T> for Recorder<'_, T> {
    #[inline(always)]
    fn stage(&mut self, w: &Worker<T>, i: usize) {
        let t = &mut *self.tape;
        let at = self.s * t.nst + i;
        let x = if i == 0 { &w.x } else { &w.xi };
        t.xs[at * t.s..][..t.s].copy_from_slice(x);
        t.cin[at * t.c..][..t.c].copy_from_slice(&w.cin);
        // Held inputs are the first stage's for every stage.
        if i == 0 || !self.hold {
            t.sums[at * t.su..][..t.su].copy_from_slice(&w.sums[..t.su]);
            t.sent[at * t.se..][..t.se].copy_from_slice(&w.sent[..t.se]);
        }
    }

    #[inline(always)]
    fn unprojected(&mut self, u: &[T], i: usize) {
        let t = &mut *self.tape;
        t.us[(self.s * t.nu + i) * t.s..][..t.s].copy_from_slice(u);
    }
}

/// The scheme read backwards: per stage, its weight in the step (`dt · scale · b_i`) and the
/// earlier stages its input combined (`(j, dt · a_ij)`).
struct Reverse<T> {
    weights: Vec<T>,
    reads: Vec<Vec<(usize, T)>>,
    project_stages: bool,
}

impl<T: Real> Reverse<T> {
    fn new(t: &Tableau, dt: T) -> Self {
        Self {
            weights: t.b.iter().map(|&b| dt * T::of(t.scale * b)).collect(),
            reads: t
                .a
                .iter()
                .map(|a| {
                    a.iter()
                        .enumerate()
                        .filter(|(_, &c)| c != 0.0)
                        .map(|(j, &c)| (j, dt * T::of(c)))
                        .collect()
                })
                .collect(),
            project_stages: t.project_stages,
        }
    }
}

/// The adjoint's buffers for one worker.
struct Buffers<T, const N: usize> {
    lam: Vec<T>,
    lam_new: Vec<T>,
    mu: Vec<T>,
    /// Adjoint of each stage's drift.
    lam_k: Vec<Vec<T>>,
    /// Adjoint of a stage's input.
    lam_xi: Vec<T>,
    /// Adjoints of the first stage's coupling inputs and of a later stage's.
    lam_c: [Vec<T>; 2],
    lam_sums: Vec<T>,
    lam_pre: Vec<T>,
    lam_s: Vec<T>,
    /// Parameter gradients of the current chunk, `[rows][nodes][params]`.
    g: Vec<T>,
    /// Dual scratch: inputs and outputs of a local function.
    din: Vec<Dual<T, N>>,
    dout: Vec<Dual<T, N>>,
    /// Per-direction results of a vector-Jacobian product.
    acc: Vec<T>,
    /// Plain scratch for one node's values.
    vals: Vec<T>,
}

/// `acc[d] += Σ_o lam[o] ∂f_o / ∂in[dirs[d]]` for a local function `f` of `vals`, by forward
/// mode in passes of `N` directions.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn vjp<T: Real, const N: usize>(
    vals: &[T],
    dirs: &[usize],
    lam: &[T],
    din: &mut [Dual<T, N>],
    dout: &mut [Dual<T, N>],
    acc: &mut [T],
    f: impl Fn(&[Dual<T, N>], &mut [Dual<T, N>]),
) {
    let (ni, no) = (vals.len(), lam.len());
    for (p, pass) in dirs.chunks(N).enumerate() {
        for (d, &v) in din.iter_mut().zip(vals) {
            *d = Dual::cst(v);
        }
        for (l, &d) in pass.iter().enumerate() {
            din[d].eps[l] = T::one();
        }
        f(&din[..ni], &mut dout[..no]);
        for l in 0..pass.len() {
            let mut a = T::zero();
            for o in 0..no {
                a = a + lam[o] * dout[o].eps[l];
            }
            acc[p * N + l] = acc[p * N + l] + a;
        }
    }
}

#[inline(always)]
fn backward<M: Model, T: Real, const N: usize>(
    m: &M,
    job: &Backward<'_, T>,
    w: &mut Worker<T>,
    bounds: Vec<Vec<T>>,
) -> Vec<f64> {
    let ctx = job.ctx;
    let (n, nv, pt) = (ctx.n, ctx.nv, ctx.pt);
    let r = w.rows.len();
    let ns = ctx.sources.len();
    let nin = ctx.input_src.len();
    let tableau = ctx
        .integrator
        .tableau()
        .expect("refused by problem::adjoint_unsupported");
    let rev = Reverse::new(tableau, ctx.dt);
    let nst = tableau.b.len();
    let nu = match (M::PROJECTS, tableau.project_stages) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => nst,
    };
    let (s_len, c_len, su_len, se_len) = (r * nv * n, nin * r * n, ns * 2 * r * n, ns * r * n);
    let k = job.k_len.min(job.steps);
    let vec = |len: usize| vec![T::zero(); len];
    let new_tape = || Tape {
        s: s_len,
        c: c_len,
        su: su_len,
        se: se_len,
        nst,
        nu,
        xs: vec(k * nst * s_len),
        us: vec(k * nu * s_len),
        cin: vec(k * nst * c_len),
        sums: vec(k * nst * su_len),
        sent: vec(k * nst * se_len),
    };
    let width = nv + nin + pt + 4;
    let mut bf = Buffers::<T, N> {
        lam: vec(s_len),
        lam_new: vec(s_len),
        mu: vec(s_len),
        lam_k: vec![vec(s_len); nst],
        lam_xi: vec(s_len),
        lam_c: [vec(c_len), vec(c_len)],
        lam_sums: vec(su_len),
        lam_pre: vec(su_len),
        lam_s: vec(se_len),
        g: vec(r * n * pt),
        din: vec![Dual::cst(T::zero()); width],
        dout: vec![Dual::cst(T::zero()); 16.max(nv)],
        acc: vec(width),
        vals: vec(width),
    };
    let mut g64 = vec![0f64; r * n * pt];
    // W (row-major, target by source) for the transposed coupling sums; with sparse coupling
    // they run over the edge list instead (see `matmul_w`).
    let wmat = if ctx.sparse {
        Vec::new()
    } else {
        let mut wmat = vec![T::zero(); n * n];
        for j in 0..n {
            for i in 0..n {
                wmat[i * n + j] = ctx.wt[j * n + i];
            }
        }
        wmat
    };
    let span = |c: usize| (c * job.k_len, job.k_len.min(job.steps - c * job.k_len));
    // Sweeps chunk `c` backwards over its recorded tape.
    let mut sweep = |w: &Worker<T>, tape: &Tape<T>, c: usize| {
        let (start, len) = span(c);
        for s in (0..len).rev() {
            let step = start + s;
            add_sample_grad(job, w.rows.start, r, step + 1, &mut bf.lam);
            step_adjoint(m, job, w, tape, s, &wmat, &rev, &mut bf);
        }
        for (a, &v) in g64.iter_mut().zip(&bf.g) {
            *a += v.as_f64();
        }
        bf.g.iter_mut().for_each(|v| *v = T::zero());
    };
    let nchunks = bounds.len();
    if job.pipeline && nchunks > 1 {
        // Two tapes: the recorder fills one while the sweep reads the other.
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Tape<T>>(1);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Tape<T>>();
        for _ in 0..2 {
            empty_tx.send(new_tape()).expect("receiver alive");
        }
        let mut rec = w.clone();
        let bounds = &bounds;
        std::thread::scope(|sc| {
            sc.spawn(move || {
                for c in (0..nchunks).rev() {
                    let Ok(mut tape) = empty_rx.recv() else {
                        return;
                    };
                    let (start, len) = span(c);
                    rec.x.copy_from_slice(&bounds[c]);
                    record_dispatch(m, ctx, &mut rec, &mut tape, start, len);
                    if full_tx.send(tape).is_err() {
                        return;
                    }
                }
            });
            for c in (0..nchunks).rev() {
                let tape = full_rx.recv().expect("the recording thread stopped early");
                sweep(w, &tape, c);
                // The recorder has stopped taking tapes after the first chunk.
                let _ = empty_tx.send(tape);
            }
        });
    } else {
        let mut tape = new_tape();
        for c in (0..nchunks).rev() {
            let (start, len) = span(c);
            w.x.copy_from_slice(&bounds[c]);
            record(m, ctx, w, &mut tape, start, len);
            sweep(w, &tape, c);
        }
    }
    g64
}

/// [`record`] compiled for AVX2 and FMA when the processor has them (for the recording thread
/// of a pipelined sweep; the sweep itself runs inside [`backward_avx2`]).
fn record_dispatch<M: Model, T: Real>(
    m: &M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    tape: &mut Tape<T>,
    start: usize,
    len: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected on this processor.
            return unsafe { record_avx2(m, ctx, w, tape, start, len) };
        }
    }
    record(m, ctx, w, tape, start, len)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn record_avx2<M: Model, T: Real>(
    m: &M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    tape: &mut Tape<T>,
    start: usize,
    len: usize,
) {
    record(m, ctx, w, tape, start, len)
}

/// Re-runs steps `start..start + len` from the state in `w.x`, recording them on the tape: the
/// fused engine's own step ([`advance`]), so the same operations in the same order.
#[inline(always)]
fn record<M: Model, T: Real>(
    m: &M,
    ctx: &Ctx<T>,
    w: &mut Worker<T>,
    tape: &mut Tape<T>,
    start: usize,
    len: usize,
) {
    let plan = StepPlan::new(ctx);
    for s in 0..len {
        let mut rec = Recorder {
            tape: &mut *tape,
            s,
            hold: ctx.hold,
        };
        advance(m, ctx, w, &plan, start + s, &mut rec);
    }
}

/// Adds `dL/d x` from the samples that read the state after `done` steps.
fn add_sample_grad<T: Real>(
    job: &Backward<'_, T>,
    b0: usize,
    r: usize,
    done: usize,
    lam: &mut [T],
) {
    let ctx = job.ctx;
    let (n, nv) = (ctx.n, ctx.nv);
    let [ns, batch, nrec, _] = job.shape;
    if done <= ctx.monitor.transient {
        return;
    }
    let t = done - ctx.monitor.transient;
    let (k, scale) = if ctx.monitor.mean {
        ((t - 1) / ctx.monitor.every, 1.0 / ctx.monitor.every as f64)
    } else if t.is_multiple_of(ctx.monitor.every) {
        (t / ctx.monitor.every - 1, 1.0)
    } else {
        return;
    };
    if k >= ns {
        return;
    }
    for lb in 0..r {
        for (ri, &v) in ctx.monitor.vars.iter().enumerate() {
            let src = &job.dy[((k * batch + b0 + lb) * nrec + ri) * n..][..n];
            let dst = &mut lam[(lb * nv + v) * n..][..n];
            for (l, &d) in dst.iter_mut().zip(src) {
                *l = *l + T::of(d * scale);
            }
        }
    }
}

/// `λ ← (∂P/∂u)ᵀ λ` at the unprojected state `u`, node by node.
#[inline(always)]
fn project_adjoint<M: Model, T: Real, const N: usize>(
    m: &M,
    ctx: &Ctx<T>,
    r: usize,
    u: &[T],
    lam: &mut [T],
    bf: &mut Buffers<T, N>,
    dirs: &Dirs,
) {
    if !M::PROJECTS {
        return;
    }
    let (n, nv) = (ctx.n, ctx.nv);
    let mut lv = [T::zero(); crate::fused::MAX_VARS];
    for lb in 0..r {
        let base = lb * nv * n;
        for i in 0..n {
            for v in 0..nv {
                bf.vals[v] = u[base + v * n + i];
                lv[v] = lam[base + v * n + i];
            }
            if M::HAND_VJP {
                m.project_vjp_point(&bf.vals[..nv], &mut lv[..nv]);
                for v in 0..nv {
                    lam[base + v * n + i] = lv[v];
                }
                continue;
            }
            bf.acc[..nv].iter_mut().for_each(|a| *a = T::zero());
            vjp(
                &bf.vals[..nv],
                &dirs.proj,
                &lv[..nv],
                &mut bf.din,
                &mut bf.dout,
                &mut bf.acc,
                |x, out| {
                    out.copy_from_slice(x);
                    m.project(out);
                },
            );
            for v in 0..nv {
                lam[base + v * n + i] = bf.acc[v];
            }
        }
    }
}

/// Through `d = f(x, c)`: `λ_x += J_xᵀ λ_d`, `λ_c += J_cᵀ λ_d`, `g_p += J_pᵀ λ_d`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn drift_adjoint<M: Model, T: Real, const N: usize>(
    m: &M,
    ctx: &Ctx<T>,
    b0: usize,
    r: usize,
    x: &[T],
    cin: &[T],
    lam_d: &[T],
    lam_x: &mut [T],
    lam_c: &mut [T],
    bf: &mut Buffers<T, N>,
    dirs: &Dirs,
) {
    let (n, nv, pm, pt) = (ctx.n, ctx.nv, ctx.pm, ctx.pt);
    let nin = ctx.input_src.len();
    let nd = dirs.drift.len();
    let mut lv = [T::zero(); crate::fused::MAX_VARS];
    for lb in 0..r {
        let base = lb * nv * n;
        for i in 0..n {
            let mut any = false;
            for v in 0..nv {
                lv[v] = lam_d[base + v * n + i];
                any |= lv[v] != T::zero();
            }
            if !any {
                continue;
            }
            let p = ctx.node_params(b0 + lb, i);
            for v in 0..nv {
                bf.vals[v] = x[base + v * n + i];
            }
            for k in 0..nin {
                bf.vals[nv + k] = cin[(k * r + lb) * n + i];
            }
            if M::HAND_VJP {
                // The model's own vector-Jacobian product: all inputs at once, no duals.
                let acc = &mut bf.acc[..nv + nin + pm];
                acc.iter_mut().for_each(|a| *a = T::zero());
                let (lx, rest) = acc.split_at_mut(nv);
                let (lc, lp) = rest.split_at_mut(nin);
                m.drift_vjp_point(
                    &bf.vals[..nv],
                    &bf.vals[nv..nv + nin],
                    &p[..pm],
                    &lv[..nv],
                    lx,
                    lc,
                    lp,
                );
                for (v, &a) in lx.iter().enumerate() {
                    lam_x[base + v * n + i] = lam_x[base + v * n + i] + a;
                }
                for (k, &a) in lc.iter().enumerate() {
                    if ctx.input_src[k].is_some() {
                        lam_c[(k * r + lb) * n + i] = lam_c[(k * r + lb) * n + i] + a;
                    }
                }
                let g = &mut bf.g[(lb * n + i) * pt..][..pm];
                for (q, (g, &a)) in g.iter_mut().zip(lp.iter()).enumerate() {
                    if dirs.sel[q] {
                        *g = *g + a;
                    }
                }
                continue;
            }
            bf.vals[nv + nin..nv + nin + pm].copy_from_slice(&p[..pm]);
            bf.acc[..nd].iter_mut().for_each(|a| *a = T::zero());
            vjp(
                &bf.vals[..nv + nin + pm],
                &dirs.drift,
                &lv[..nv],
                &mut bf.din,
                &mut bf.dout,
                &mut bf.acc,
                |a, out| m.drift(&a[..nv], &a[nv..nv + nin], &a[nv + nin..], out),
            );
            let g = &mut bf.g[(lb * n + i) * pt..][..pt];
            for (d, &at) in dirs.drift.iter().enumerate() {
                let v = bf.acc[d];
                if at < nv {
                    lam_x[base + at * n + i] = lam_x[base + at * n + i] + v;
                } else if at < nv + nin {
                    let k = at - nv;
                    lam_c[(k * r + lb) * n + i] = lam_c[(k * r + lb) * n + i] + v;
                } else {
                    let k = at - nv - nin;
                    g[k] = g[k] + v;
                }
            }
        }
    }
}

/// `out = a · W` for `r` rows of length `n` (the transpose of the coupling sums): with the
/// dense `wmat`, or over the edge list of `ctx` when the coupling is sparse.
#[inline(always)]
fn matmul_w<T: Real>(ctx: &Ctx<T>, r: usize, wmat: &[T], a: &[T], out: &mut [T]) {
    let n = ctx.n;
    if ctx.sparse {
        // Each edge j → i sends a_i · W_ij back to its source j.
        for lb in 0..r {
            let ar = &a[lb * n..(lb + 1) * n];
            let cr = &mut out[lb * n..(lb + 1) * n];
            cr.iter_mut().for_each(|c| *c = T::zero());
            for (i, &ai) in ar.iter().enumerate() {
                if ai != T::zero() {
                    for e in &ctx.edges[ctx.edge_start[i]..ctx.edge_start[i + 1]] {
                        let c = &mut cr[e.source as usize];
                        *c = *c + ai * e.weight;
                    }
                }
            }
        }
    } else if r <= 4 {
        for lb in 0..r {
            let ar = &a[lb * n..(lb + 1) * n];
            let cr = &mut out[lb * n..(lb + 1) * n];
            cr.iter_mut().for_each(|c| *c = T::zero());
            for (i, &ai) in ar.iter().enumerate() {
                if ai != T::zero() {
                    let wrow = &wmat[i * n..(i + 1) * n];
                    cr.iter_mut().zip(wrow).for_each(|(c, &w)| *c = *c + ai * w);
                }
            }
        }
    } else {
        T::gemm(r, n, n, a, n, wmat, out);
    }
}

/// Through the coupling inputs `c = post(Σ_j W_ij pre(s_j), s_i)` with `s = sent(x)`: from
/// `λ_c`, adds to `λ_x` and the parameter gradients.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn coupling_adjoint<M: Model, T: Real, const N: usize>(
    m: &M,
    ctx: &Ctx<T>,
    b0: usize,
    r: usize,
    x: &[T],
    sums: &[T],
    sent: &[T],
    lam_c: &[T],
    lam_x: &mut [T],
    wmat: &[T],
    bf: &mut Buffers<T, N>,
    dirs: &Dirs,
) {
    let (n, nv, pm, pt) = (ctx.n, ctx.nv, ctx.pm, ctx.pt);
    let npc = pt - pm;
    let ns = ctx.sources.len();
    bf.lam_sums.iter_mut().for_each(|v| *v = T::zero());
    bf.lam_s.iter_mut().for_each(|v| *v = T::zero());
    // Post, at each target.
    let fast = matches!(
        ctx.coupling,
        CouplingKind::Linear | CouplingKind::Difference
    );
    let g_sel = dirs.sel[pm];
    for (k, src) in ctx.input_src.iter().enumerate() {
        let Some(si) = *src else { continue };
        for lb in 0..r {
            let p0 = pre_at(ctx, r, si, 0, lb);
            let p1 = pre_at(ctx, r, si, 1, lb);
            let b = b0 + lb;
            for i in 0..n {
                let l = lam_c[(k * r + lb) * n + i];
                if l == T::zero() {
                    continue;
                }
                let p = ctx.node_params(b, i);
                let s_i = sent[(si * r + lb) * n + i];
                if fast {
                    // Linear: G Σ; difference: G (Σ − s_i Σ_j W_ij).
                    let gg = p[pm];
                    bf.lam_sums[p0 + i] = bf.lam_sums[p0 + i] + gg * l;
                    let mut inner = sums[p0 + i];
                    if ctx.coupling == CouplingKind::Difference {
                        let ls = &mut bf.lam_s[(si * r + lb) * n + i];
                        *ls = *ls - gg * ctx.rowsum[i] * l;
                        inner = inner - s_i * ctx.rowsum[i];
                    }
                    if g_sel {
                        let g = &mut bf.g[(lb * n + i) * pt + pm];
                        *g = *g + inner * l;
                    }
                    continue;
                }
                bf.vals[0] = sums[p0 + i];
                bf.vals[1] = if ctx.n_sums == 2 {
                    sums[p1 + i]
                } else {
                    T::zero()
                };
                bf.vals[2] = s_i;
                bf.vals[3..3 + npc].copy_from_slice(&p[pm..]);
                let nd = dirs.post.len();
                bf.acc[..nd].iter_mut().for_each(|a| *a = T::zero());
                let (kind, rowsum) = (ctx.coupling, ctx.rowsum[i]);
                vjp(
                    &bf.vals[..3 + npc],
                    &dirs.post,
                    &[l],
                    &mut bf.din,
                    &mut bf.dout,
                    &mut bf.acc,
                    |a, out| {
                        out[0] = point::post(kind, [a[0], a[1]], a[2], Dual::cst(rowsum), &a[3..])
                    },
                );
                for (d, &at) in dirs.post.iter().enumerate() {
                    let v = bf.acc[d];
                    match at {
                        0 => bf.lam_sums[p0 + i] = bf.lam_sums[p0 + i] + v,
                        1 => bf.lam_sums[p1 + i] = bf.lam_sums[p1 + i] + v,
                        2 => {
                            let ls = &mut bf.lam_s[(si * r + lb) * n + i];
                            *ls = *ls + v;
                        }
                        _ => {
                            let g = &mut bf.g[(lb * n + i) * pt + pm + at - 3];
                            *g = *g + v;
                        }
                    }
                }
            }
        }
    }
    // The sums, transposed: λ_pre = λ_sums · W.
    for si in 0..ns {
        for q in 0..ctx.n_sums {
            let p0 = pre_at(ctx, r, si, q, 0);
            matmul_w(
                ctx,
                r,
                wmat,
                &bf.lam_sums[p0..p0 + r * n],
                &mut bf.lam_pre[p0..p0 + r * n],
            );
        }
    }
    // Pre, at each source; then the sent quantity.
    let identity_pre = matches!(
        ctx.coupling,
        CouplingKind::Linear | CouplingKind::Difference | CouplingKind::Sigmoidal
    );
    for (si, &(kin, custom)) in ctx.sources.iter().enumerate() {
        let var = m.spec().coupling[kin].var;
        for lb in 0..r {
            let b = b0 + lb;
            let p0 = pre_at(ctx, r, si, 0, lb);
            let p1 = pre_at(ctx, r, si, 1, lb);
            for j in 0..n {
                let sj = (si * r + lb) * n + j;
                let mut ls = bf.lam_s[sj];
                if identity_pre {
                    ls = ls + bf.lam_pre[p0 + j];
                } else {
                    let lp = [
                        bf.lam_pre[p0 + j],
                        if ctx.n_sums == 2 {
                            bf.lam_pre[p1 + j]
                        } else {
                            T::zero()
                        },
                    ];
                    if lp[0] != T::zero() || lp[1] != T::zero() {
                        let p = ctx.node_params(b, j);
                        bf.vals[0] = sent[sj];
                        bf.vals[1..1 + npc].copy_from_slice(&p[pm..]);
                        let nd = dirs.pre.len();
                        bf.acc[..nd].iter_mut().for_each(|a| *a = T::zero());
                        let kind = ctx.coupling;
                        vjp(
                            &bf.vals[..1 + npc],
                            &dirs.pre,
                            &lp[..ctx.n_sums],
                            &mut bf.din,
                            &mut bf.dout,
                            &mut bf.acc,
                            |a, out| {
                                let v = point::pre(kind, a[0], &a[1..]);
                                out.copy_from_slice(&v[..out.len()]);
                            },
                        );
                        ls = ls + bf.acc[0];
                        for (d, &at) in dirs.pre.iter().enumerate().skip(1) {
                            let g = &mut bf.g[(lb * n + j) * pt + pm + at - 1];
                            *g = *g + bf.acc[d];
                        }
                    }
                }
                if ls == T::zero() {
                    continue;
                }
                let base = lb * nv * n;
                if !custom {
                    lam_x[base + var * n + j] = lam_x[base + var * n + j] + ls;
                    continue;
                }
                let p = ctx.node_params(b, j);
                for v in 0..nv {
                    bf.vals[v] = x[base + v * n + j];
                }
                bf.vals[nv..nv + pm].copy_from_slice(&p[..pm]);
                let nd = dirs.sent.len();
                bf.acc[..nd].iter_mut().for_each(|a| *a = T::zero());
                vjp(
                    &bf.vals[..nv + pm],
                    &dirs.sent,
                    &[ls],
                    &mut bf.din,
                    &mut bf.dout,
                    &mut bf.acc,
                    |a, out| out[0] = m.coupled(kin, &a[..nv], &a[nv..]),
                );
                for (d, &at) in dirs.sent.iter().enumerate() {
                    let v = bf.acc[d];
                    if at < nv {
                        lam_x[base + at * n + j] = lam_x[base + at * n + j] + v;
                    } else {
                        let g = &mut bf.g[(lb * n + j) * pt + at - nv];
                        *g = *g + v;
                    }
                }
            }
        }
    }
}

/// One step backwards: `bf.lam` holds `dL/d x_{s+1}` and becomes `dL/d x_s`. The step is
/// `x_{s+1} = P(x_s + Σ_i w_i k_i)` with `k_i = f(ξ_i)` and `ξ_i = P(x_s + Σ_j a_ij k_j)` (see
/// [`Reverse`]); the stages are visited last to first, each passing its adjoint to the state
/// and to the earlier stages its input read.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn step_adjoint<M: Model, T: Real, const N: usize>(
    m: &M,
    job: &Backward<'_, T>,
    w: &Worker<T>,
    tape: &Tape<T>,
    s: usize,
    wmat: &[T],
    rev: &Reverse<T>,
    bf: &mut Buffers<T, N>,
) {
    let ctx = job.ctx;
    let dirs = job.dirs;
    let r = w.rows.len();
    let b0 = w.rows.start;
    // Through the final projection: μ = (∂P/∂u)ᵀ λ.
    let mut mu = std::mem::take(&mut bf.mu);
    mu.copy_from_slice(&bf.lam);
    project_adjoint(m, ctx, r, tape.u(s, 0), &mut mu, bf, dirs);
    let mut lam_new = std::mem::take(&mut bf.lam_new);
    lam_new.copy_from_slice(&mu);
    let mut lam_k = std::mem::take(&mut bf.lam_k);
    for (lk, &c) in lam_k.iter_mut().zip(&rev.weights) {
        lk.iter_mut().zip(&mu).for_each(|(d, &u)| *d = u * c);
    }
    let [mut lam_c0, mut lam_ci] = std::mem::take(&mut bf.lam_c);
    lam_c0.fill(T::zero());
    let mut lam_xi = std::mem::take(&mut bf.lam_xi);
    for i in (1..tape.nst).rev() {
        lam_xi.fill(T::zero());
        lam_ci.fill(T::zero());
        let xi = tape.xs(s, i);
        drift_adjoint(
            m,
            ctx,
            b0,
            r,
            xi,
            tape.cin(s, i),
            &lam_k[i],
            &mut lam_xi,
            &mut lam_ci,
            bf,
            dirs,
        );
        if ctx.hold {
            // The inputs are those of the step's start: their adjoints add up.
            lam_c0
                .iter_mut()
                .zip(&lam_ci)
                .for_each(|(a, &v)| *a = *a + v);
        } else {
            coupling_adjoint(
                m,
                ctx,
                b0,
                r,
                xi,
                tape.sums(s, i),
                tape.sent(s, i),
                &lam_ci,
                &mut lam_xi,
                wmat,
                bf,
                dirs,
            );
        }
        if rev.project_stages {
            project_adjoint(m, ctx, r, tape.u(s, i), &mut lam_xi, bf, dirs);
        }
        lam_new
            .iter_mut()
            .zip(&lam_xi)
            .for_each(|(l, &v)| *l = *l + v);
        for &(j, c) in &rev.reads[i] {
            lam_k[j]
                .iter_mut()
                .zip(&lam_xi)
                .for_each(|(d, &v)| *d = *d + v * c);
        }
    }
    let x = tape.xs(s, 0);
    drift_adjoint(
        m,
        ctx,
        b0,
        r,
        x,
        tape.cin(s, 0),
        &lam_k[0],
        &mut lam_new,
        &mut lam_c0,
        bf,
        dirs,
    );
    coupling_adjoint(
        m,
        ctx,
        b0,
        r,
        x,
        tape.sums(s, 0),
        tape.sent(s, 0),
        &lam_c0,
        &mut lam_new,
        wmat,
        bf,
        dirs,
    );
    bf.lam_k = lam_k;
    bf.lam_xi = lam_xi;
    bf.lam_c = [lam_c0, lam_ci];
    bf.mu = mu;
    // λ ← λ_new (keep the old buffer as the next step's scratch).
    bf.lam_new = std::mem::replace(&mut bf.lam, lam_new);
}

/// `1 − corr(triu(FC(y)), triu(FC_emp))` per batch element, with its gradient with respect to
/// the samples, for samples `y` `[T, batch, vars, nodes]` (`shape`) and the recorded variable
/// at position `var`; `emp` is the empirical FC `[nodes, nodes]`. The same definitions as
/// [`crate::observe::fc`] and `neurodiff_optim::fc_corr_loss` (population variance with
/// [`crate::observe::fc::FC_EPS`], Pearson with `PEARSON_EPS`), in `f64`.
pub fn fc_corr_loss(y: &[f64], shape: [usize; 4], var: usize, emp: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let [t, batch, nrec, n] = shape;
    assert!(t >= 2 && n >= 3, "fc_corr_loss: need 2 frames and 3 nodes");
    assert_eq!(
        emp.len(),
        n * n,
        "fc_corr_loss: empirical FC must be [nodes, nodes]"
    );
    let fc_eps = crate::observe::fc::FC_EPS;
    let pearson_eps = neurodiff_optim::loss::PEARSON_EPS;
    let tri: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    let mlen = tri.len() as f64;
    let e: Vec<f64> = tri.iter().map(|&(i, j)| emp[i * n + j]).collect();
    let emean = e.iter().sum::<f64>() / mlen;
    let ec: Vec<f64> = e.iter().map(|v| v - emean).collect();
    let se: f64 = ec.iter().map(|v| v * v).sum();
    let tf = t as f64;
    let mut losses = Vec::with_capacity(batch);
    let mut grad = vec![0.0; y.len()];
    for b in 0..batch {
        let at = |k: usize| ((k * batch + b) * nrec + var) * n;
        // Standardised series z [T, N].
        let mut z = vec![0.0; t * n];
        let mut mean = vec![0.0; n];
        for k in 0..t {
            for i in 0..n {
                mean[i] += y[at(k) + i];
            }
        }
        mean.iter_mut().for_each(|m| *m /= tf);
        let mut var_ = vec![0.0; n];
        for k in 0..t {
            for i in 0..n {
                let c = y[at(k) + i] - mean[i];
                z[k * n + i] = c;
                var_[i] += c * c;
            }
        }
        var_.iter_mut().for_each(|v| *v /= tf);
        let sd: Vec<f64> = var_.iter().map(|v| (v + fc_eps).sqrt()).collect();
        let xc = z.clone();
        for k in 0..t {
            for i in 0..n {
                z[k * n + i] /= sd[i];
            }
        }
        // FC = zᵀ z / T.
        let mut fc = vec![0.0; n * n];
        for k in 0..t {
            let zr = &z[k * n..(k + 1) * n];
            for i in 0..n {
                let zi = zr[i];
                let row = &mut fc[i * n..(i + 1) * n];
                row.iter_mut().zip(zr).for_each(|(f, &zj)| *f += zi * zj);
            }
        }
        fc.iter_mut().for_each(|f| *f /= tf);
        let s: Vec<f64> = tri.iter().map(|&(i, j)| fc[i * n + j]).collect();
        let smean = s.iter().sum::<f64>() / mlen;
        let sc: Vec<f64> = s.iter().map(|v| v - smean).collect();
        let cov: f64 = sc.iter().zip(&ec).map(|(a, b)| a * b).sum();
        let ss: f64 = sc.iter().map(|v| v * v).sum();
        let d = ss * se + pearson_eps;
        let rd = d.sqrt();
        losses.push(1.0 - cov / rd);
        // dL/d s_c, then through the centring (I − 11ᵀ/M).
        let gsc: Vec<f64> = sc
            .iter()
            .zip(&ec)
            .map(|(&a, &b)| -(b / rd - cov * se * a / (d * rd)))
            .collect();
        let gmean = gsc.iter().sum::<f64>() / mlen;
        // Symmetric A with A_ij = A_ji = dL/d FC_ij / T for i < j.
        let mut a = vec![0.0; n * n];
        for (m, &(i, j)) in tri.iter().enumerate() {
            let v = (gsc[m] - gmean) / tf;
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
        // dL/dz = 2 z A / 2 (each pair counted once in A, both orders in the product).
        let mut gz = vec![0.0; t * n];
        for k in 0..t {
            let zr = &z[k * n..(k + 1) * n];
            let gr = &mut gz[k * n..(k + 1) * n];
            for (j, &zj) in zr.iter().enumerate() {
                let arow = &a[j * n..(j + 1) * n];
                gr.iter_mut().zip(arow).for_each(|(g, &aji)| *g += zj * aji);
            }
        }
        // z = xc / sd with sd² = mean(xc²) + eps.
        let mut dvar = vec![0.0; n];
        for k in 0..t {
            for i in 0..n {
                dvar[i] += gz[k * n + i] * xc[k * n + i];
            }
        }
        for i in 0..n {
            dvar[i] *= -0.5 / (sd[i] * sd[i] * sd[i]);
        }
        let mut gxc = vec![0.0; t * n];
        let mut gmean_t = vec![0.0; n];
        for k in 0..t {
            for i in 0..n {
                let g = gz[k * n + i] / sd[i] + dvar[i] * 2.0 * xc[k * n + i] / tf;
                gxc[k * n + i] = g;
                gmean_t[i] += g / tf;
            }
        }
        for k in 0..t {
            for i in 0..n {
                grad[at(k) + i] = gxc[k * n + i] - gmean_t[i];
            }
        }
    }
    (losses, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks a model's hand-written vector-Jacobian products against dual numbers at random
    /// points (state from its range widened to negative values, parameters around their
    /// defaults); the largest error relative to `1 + |dual|`, or `None` without hand VJPs.
    struct HandVjp;

    impl neurodiff_models::ModelVisitor for HandVjp {
        type Output = Option<f64>;
        fn visit<M: Model>(self, m: M) -> Option<f64> {
            if !M::HAND_VJP {
                return None;
            }
            let spec = m.spec();
            let (nv, nin, pm) = (spec.state.len(), spec.coupling.len(), spec.params.len());
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let mut rnd = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            };
            let mut worst = 0f64;
            let mut compare = |hand: &[f64], dual: &[f64]| {
                for (h, d) in hand.iter().zip(dual) {
                    worst = worst.max((h - d).abs() / (1.0 + d.abs()));
                }
            };
            for _ in 0..500 {
                let x: Vec<f64> = spec
                    .state
                    .iter()
                    .map(|v| {
                        let (lo, hi) = v.range;
                        let mid = 0.5 * (lo + hi);
                        mid + (hi - lo).abs().max(1.0) * rnd()
                    })
                    .collect();
                let c: Vec<f64> = (0..nin).map(|_| rnd()).collect();
                let p: Vec<f64> = spec
                    .params
                    .iter()
                    .map(|q| {
                        if q.default != 0.0 {
                            q.default * (1.0 + 0.3 * rnd())
                        } else {
                            rnd()
                        }
                    })
                    .collect();
                let ld: Vec<f64> = (0..nv).map(|_| rnd()).collect();
                let mut hand = vec![0.0; nv + nin + pm];
                {
                    let (lx, rest) = hand.split_at_mut(nv);
                    let (lc, lp) = rest.split_at_mut(nin);
                    m.drift_vjp_point(&x, &c, &p, &ld, lx, lc, lp);
                }
                let vals = [x.clone(), c, p].concat();
                let dirs: Vec<usize> = (0..vals.len()).collect();
                let mut din = vec![Dual::<f64, 4>::cst(0.0); vals.len()];
                let mut dout = vec![Dual::<f64, 4>::cst(0.0); nv];
                let mut dual = vec![0.0; vals.len()];
                vjp(
                    &vals,
                    &dirs,
                    &ld,
                    &mut din,
                    &mut dout,
                    &mut dual,
                    |a, out| m.drift(&a[..nv], &a[nv..nv + nin], &a[nv + nin..], out),
                );
                compare(&hand, &dual);
                if M::PROJECTS {
                    let mut hand = ld.clone();
                    m.project_vjp_point(&x, &mut hand);
                    let mut dual = vec![0.0; nv];
                    vjp(
                        &x,
                        &dirs[..nv],
                        &ld,
                        &mut din,
                        &mut dout,
                        &mut dual,
                        |a, out| {
                            out.copy_from_slice(a);
                            m.project(out);
                        },
                    );
                    compare(&hand, &dual);
                }
            }
            Some(worst)
        }
    }

    /// Every model's hand-written drift and projection VJPs agree with dual numbers.
    #[test]
    fn hand_written_vjps_match_dual_numbers() {
        let mut checked = Vec::new();
        for spec in neurodiff_models::catalogue() {
            if let Some(err) = neurodiff_models::visit(spec.name, HandVjp).unwrap() {
                assert!(
                    err < 1e-12,
                    "{}: hand VJP differs from duals by {err:e}",
                    spec.name
                );
                checked.push(spec.name);
            }
        }
        assert!(
            checked.contains(&"mpr") && checked.contains(&"hopf"),
            "checked {checked:?}"
        );
    }

    /// The FC loss's gradient against central differences.
    #[test]
    fn fc_corr_loss_gradient_matches_finite_differences() {
        let (t, batch, nrec, n) = (12, 2, 2, 5);
        let shape = [t, batch, nrec, n];
        let len = t * batch * nrec * n;
        let y: Vec<f64> = (0..len)
            .map(|k| (k as f64 * 0.731).sin() + (k as f64 * 0.117).cos() * 0.5)
            .collect();
        let emp: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                if i == j {
                    1.0
                } else {
                    ((i + j) as f64 * 0.37).cos() * 0.5
                }
            })
            .collect();
        let (l, g) = fc_corr_loss(&y, shape, 1, &emp);
        assert_eq!(l.len(), batch);
        let h = 1e-6;
        for k in 0..len {
            let mut yp = y.clone();
            yp[k] += h;
            let mut ym = y.clone();
            ym[k] -= h;
            let lp: f64 = fc_corr_loss(&yp, shape, 1, &emp).0.iter().sum();
            let lm: f64 = fc_corr_loss(&ym, shape, 1, &emp).0.iter().sum();
            let fd = (lp - lm) / (2.0 * h);
            assert!(
                (g[k] - fd).abs() < 1e-7,
                "sample {k}: analytic {} vs finite differences {fd}",
                g[k]
            );
        }
    }
}
