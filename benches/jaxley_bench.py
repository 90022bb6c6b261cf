"""Jaxley reference timings for issue 14's speed table (BENCHMARKS.md, "cell: neurodiff vs Jaxley").

The same cells, steps and losses as `neurodiff bench --case cell_hh` and `--case cell_hh_grad`
(src/bench.rs), on Jaxley 0.14 (Deistler et al., Nature Methods 2025), CPU only:

  hh        HH point cell (one compartment, L = 20 um, radius 10 um, NEURON's `hh` values),
            8,000 steps of 0.025 ms, a 0.1 nA step into the soma, soma V recorded every step;
            batch 1 and 1,000 (jax.vmap over a parameter set, here HH_gNa)
  branched  the 100-compartment cell of cell_hh: that soma (HH) and three passive dendrites
            (300 um, radius 1 um, 33 compartments each, leak 0.1 mS/cm2 at -65 mV, cm 1 uF/cm2,
            Ra 100 Ohm cm) on the soma; batch 1 and 100
  grad      the gradient of the windowed-statistics loss (normalised MAE of the mean and s.d. of
            soma V in 10 equal windows, against the same cell with gNa = 0.1 S/cm2) with respect
            to all 6 HH parameters, through 8,000 steps, batch 1
  memory    the same gradient through 200,000 steps, each checkpointing choice in a fresh
            process; peak RSS (getrusage ru_maxrss) of that process

Each case is JIT-compiled once (`jit(...).lower(...).compile()`, timed separately as
`compile_s`), then run `--repeats` times; `seconds` is the median of those runs (block_until_ready).
One JSON line per row, with the fields of `neurodiff bench`.

Run (CPU): JAX_PLATFORMS=cpu /work/venv-jaxley/bin/python benches/jaxley_bench.py --case all
`--threads 1` restricts XLA to one thread (neurodiff's cell benches run on one thread).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DT = 0.025


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="all", choices=["hh", "branched", "grad", "memory", "all"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="both", choices=["f32", "f64", "both"])
    ap.add_argument("--threads", type=int, default=0, help="0: XLA's default (all cores)")
    ap.add_argument("--memory-steps", type=int, default=200_000)
    # internal: one memory row in this process ("none" or comma-separated checkpoint lengths)
    ap.add_argument("--memory-child", default=None)
    return ap.parse_args()


ARGS = parse()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if ARGS.threads == 1:
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxley as jx  # noqa: E402
from jaxley.channels import HH, Leak  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(dends: bool):
    """The cell of neurodiff's cell_hh case (src/bench.rs `cell_case`)."""
    comp = jx.Compartment()
    soma = jx.Branch(comp, ncomp=1)
    if dends:
        dend = jx.Branch(comp, ncomp=33)
        cell = jx.Cell([soma, dend, dend, dend], parents=[-1, 0, 0, 0])
    else:
        cell = jx.Cell([soma], parents=[-1])
    cell.set("capacitance", 1.0)
    cell.set("axial_resistivity", 100.0)
    # Jaxley's `length` is per compartment (um), its `radius` in um.
    cell.branch(0).set("length", 20.0)
    cell.branch(0).set("radius", 10.0)
    cell.branch(0).insert(HH())
    if dends:
        for b in (1, 2, 3):
            cell.branch(b).set("length", 300.0 / 33)
            cell.branch(b).set("radius", 1.0)
            cell.branch(b).insert(Leak())
            cell.branch(b).set("Leak_gLeak", 1e-4)
            cell.branch(b).set("Leak_eLeak", -65.0)
    cell.set("v", -65.0)
    cell.init_states()
    return cell


def stimulate(cell, steps: int):
    # exactly `steps` samples: Jaxley runs one step per stimulus sample
    cell.delete_stimuli()
    cell.delete_recordings()
    cell.branch(0).comp(0).stimulate(jnp.full((steps,), 0.1), verbose=False)
    cell.branch(0).comp(0).record("v", verbose=False)


def timed(fn, args, repeats):
    """(compile seconds, median run seconds, output) of jit(fn) on args."""
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t
    out = jax.block_until_ready(compiled(*args))  # first run (not timed)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t)
    return compile_s, float(np.median(times)), out


def emit(**row):
    row = {"tool": "jaxley", "version": jx.__version__, "device": "cpu", **row}
    row["xla_threads"] = ARGS.threads or os.cpu_count()
    print(json.dumps(row), flush=True)


def dtypes():
    return {"f32": [False], "f64": [True], "both": [False, True]}[ARGS.dtype]


def forward_case(dends: bool, batches):
    steps = 8000
    for x64 in dtypes():
        jax.config.update("jax_enable_x64", x64)
        cell = build(dends)
        stimulate(cell, steps)
        cell.make_trainable("HH_gNa", verbose=False)
        params = cell.get_parameters()

        def sim(p):
            return jx.integrate(cell, params=p, delta_t=DT)

        for batch in batches:
            pb = jax.tree_util.tree_map(lambda a: jnp.repeat(a[None], batch, axis=0), params)
            compile_s, sec, v = timed(jax.vmap(sim), (pb,), ARGS.repeats)
            v0 = np.asarray(v[0, 0, 1:])
            spikes = int(np.sum((v0[1:] >= 0.0) & (v0[:-1] < 0.0)))
            emit(
                backend="f64" if x64 else "f32", case="cell_hh",
                nodes=100 if dends else 1, batch=batch, steps=steps, seconds=sec,
                compile_s=compile_s, us_per_step=sec * 1e6 / steps,
                cell_steps_per_s=batch * steps / sec, soma_spikes=spikes,
                peak_rss_mb=peak_rss_mb(),
            )


def stats(v, windows=10):
    n = v.shape[-1] // windows
    w = v[..., : n * windows].reshape(v.shape[:-1] + (windows, n))
    return jnp.concatenate([w.mean(-1), w.std(-1)], axis=-1)


GRAD_PARAMS = ["HH_gNa", "HH_gK", "HH_gLeak", "HH_eNa", "HH_eK", "HH_eLeak"]


def grad_setup(steps: int, checkpoint):
    cell = build(False)
    stimulate(cell, steps)
    # target: the same cell with gNa = 0.1 S/cm2 (neurodiff: hh_na.gbar = 100 mS/cm2)
    cell.set("HH_gNa", 0.1)
    # all steps + 1 samples, the initial one included, as neurodiff's recording; 10 windows of
    # (steps + 1) // 10 samples from the first (neurodiff's Windows::split)
    target = jx.integrate(cell, delta_t=DT)[0]
    cell.set("HH_gNa", 0.12)
    for name in GRAD_PARAMS:
        cell.make_trainable(name, verbose=False)
    params = cell.get_parameters()
    target_stats = stats(target)

    def loss(p):
        v = jx.integrate(cell, params=p, delta_t=DT, checkpoint_lengths=checkpoint)[0]
        return jnp.mean(jnp.abs(stats(v) - target_stats))

    return params, jax.value_and_grad(loss)


def grad_case():
    steps = 8000
    for x64 in dtypes():
        jax.config.update("jax_enable_x64", x64)
        params, vg = grad_setup(steps, None)
        compile_s, sec, (l, g) = timed(vg, (params,), ARGS.repeats)
        emit(
            backend="f64" if x64 else "f32", case="cell_hh_grad", nodes=1, batch=1,
            steps=steps, checkpoint=None, seconds=sec, compile_s=compile_s, loss=float(l),
            grad={k: float(np.ravel(v)[0]) for d in g for k, v in d.items()},
            peak_rss_mb=peak_rss_mb(),
        )


def memory_child(spec: str):
    steps = ARGS.memory_steps
    checkpoint = None if spec == "none" else [int(s) for s in spec.split(",")]
    jax.config.update("jax_enable_x64", True)
    base = peak_rss_mb()
    params, vg = grad_setup(steps, checkpoint)
    compile_s, sec, (l, _) = timed(vg, (params,), 1)
    emit(
        backend="f64", case="cell_hh_grad", nodes=1, batch=1, steps=steps,
        checkpoint=checkpoint, seconds=sec, compile_s=compile_s, loss=float(l),
        peak_rss_mb=peak_rss_mb(), rss_after_import_mb=base,
    )


def memory_case():
    steps = ARGS.memory_steps
    side2 = int(np.ceil(steps ** 0.5))
    side3 = int(np.ceil(steps ** (1 / 3)))
    for spec in ["none", f"{side2},{side2}", f"{side3},{side3},{side3}"]:
        cmd = [sys.executable, __file__, "--memory-child", spec, "--memory-steps", str(steps),
               "--threads", str(ARGS.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            emit(case="cell_hh_grad", steps=steps, checkpoint=spec, error=out.stderr[-2000:])
        else:
            sys.stdout.write(out.stdout)
            sys.stdout.flush()


def main():
    if ARGS.memory_child is not None:
        memory_child(ARGS.memory_child)
        return
    c = ARGS.case
    if c in ("hh", "all"):
        forward_case(False, [1, 1000])
    if c in ("branched", "all"):
        forward_case(True, [1, 100])
    if c in ("grad", "all"):
        grad_case()
    if c in ("memory", "all"):
        memory_case()


if __name__ == "__main__":
    main()
