#!/usr/bin/env python3
"""The STN-GPe-GPi circuit of `neurodiff circuit` in Brian2, for the side-by-side timing in
BENCHMARKS.md (issue 13, "Scale and speed").

The same network as `Circuit::default_stn_gpe_gpi` (src/spiking/circuit.rs):

* STN: Terman et al. (2002) / Rubin & Terman (2004) with the equations of
  models/src/neuron/stn.rs (g_H = 0 as there), I = 15 uA/cm^2, OU tau 5 ms sigma 3,
  g_L heterogeneous (5 %); spike = upward crossing of -20 mV, no reset.
* GPe, GPi: AdEx (models/src/neuron/adex.rs) with the pallidal parameter set, I = 30 and 62 pA,
  OU (10 ms, 30 pA) and (10 ms, 5 pA), C (10 %, 5 %) and b (10 %, GPe) heterogeneous.
* Projections (p, weight, delay ms, tau ms, E_rev mV), weights w (1 + 0.2 z) clipped at 0:
  STN->GPe (0.15, 0.05 nS, 5, 3, 0), GPe->STN (0.07, 0.005 mS/cm^2, 8, 8, -80),
  STN->GPi (0.30, 0.05 nS, 5, 3, 0), GPe->GPi (0.05, 0.03 nS, 5, 8, -80).
  Conductance synapses: g decays with tau, I_syn = g (E_rev - V), a spike adds w after the
  projection's delay.
* dt 0.025 ms; 20 ms of warm-up, then 200 ms timed (8,000 steps), spike counts recorded.

Integration differs in one respect, in Brian2's favour: Brian2's exponential Euler needs every
equation conditionally linear, which the STN's voltage equation is not (m_inf(V)^3 in I_Na), so
all groups use Brian2's forward Euler (one exp fewer per gate and step than neurodiff's
Rush-Larsen); the OU current is updated exactly as neurodiff does it (run_regularly every step).
The random streams differ, so the two simulators produce statistically, not bitwise, equal runs:
the script reports the rates to show both do the same amount of work.

Usage (one JSON line per size on stdout; needs brian2 2.9 and numpy < 2.3 in a venv, and g++):
    python benches/brian2/circuit.py --target cpp_standalone --sizes 100,200,150 1000,2000,1500
    python benches/brian2/circuit.py --target cython --sizes 100,200,150
    python benches/brian2/circuit.py --stn adex ...    # AdEx in all three populations
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import brian2 as b2
from brian2 import ms, second, NeuronGroup, Synapses, SpikeMonitor, Network, defaultclock


def stn_group(n, rng, het_gl=0.05):
    eqs = """
    dv/dt = (I0 + I_ou + I_syn - iL - iK - iNa - iT - iCa - iAHP) / Cm / ms : 1
    I_syn = g_gpe * (-80.0 - v) : 1
    dg_gpe/dt = -g_gpe / (8.0 * ms) : 1
    iL = gL * (v - EL) : 1
    iK = gK * n**4 * (v - EK) : 1
    iNa = gNa * minf**3 * h * (v - ENa) : 1
    iT = gT * ainf**3 * binf**2 * (v - ECa) : 1
    iCa = gCa * sinf**2 * (v - ECa) : 1
    iAHP = gAHP * (v - EK) * ca / (ca + k1) : 1
    minf = 1 / (1 + exp(-(v + 30.0) / 15.0)) : 1
    hinf = 1 / (1 + exp(-(v + 39.0) / -3.1)) : 1
    ninf = 1 / (1 + exp(-(v + 32.0) / 8.0)) : 1
    rinf = 1 / (1 + exp(-(v + 67.0) / -2.0)) : 1
    ainf = 1 / (1 + exp(-(v + 63.0) / 7.8)) : 1
    sinf = 1 / (1 + exp(-(v + 39.0) / 8.0)) : 1
    binf = 1 / (1 + exp((r - theta_b) / sigma_b)) - 1 / (1 + exp(-theta_b / sigma_b)) : 1
    tau_h = 1.0 + 500.0 / (1 + exp(-(v + 57.0) / -3.0)) : 1
    tau_n = 1.0 + 100.0 / (1 + exp(-(v + 80.0) / -26.0)) : 1
    tau_r = tau_r0 + 17.5 / (1 + exp(-(v - 68.0) / -2.2)) : 1
    dh/dt = 0.75 * (hinf - h) / tau_h / ms : 1
    dn/dt = 0.75 * (ninf - n) / tau_n / ms : 1
    dr/dt = phi_r * (rinf - r) / tau_r / ms : 1
    dca/dt = epsilon * (-iCa - iT - kCa * ca) / ms : 1
    I_ou : 1
    gL : 1 (constant)
    """
    consts = dict(
        I0=15.0, Cm=1.0, gK=45.0, gNa=37.5, gT=0.5, gCa=0.5, gAHP=9.0, EL=-60.0, EK=-80.0,
        ENa=55.0, ECa=140.0, tau_r0=7.1, phi_r=0.5, theta_b=0.25, sigma_b=0.07, epsilon=5e-5,
        kCa=22.5, k1=15.0,
    )
    g = NeuronGroup(n, eqs, threshold="v > -20.0", refractory="v > -20.0", method="euler",
                    namespace=consts, name="stn")
    g.gL = 2.25 * (1 + het_gl * np.clip(rng.standard_normal(n), -3, 3))
    # Rest at V = -60 mV as in stn.rs (gates at steady state there), V spread +-5 mV.
    v0 = -60.0
    sig = lambda v, th, s: 1 / (1 + np.exp(-(v - th) / s))
    a, s_ = sig(v0, -63.0, 7.8), sig(v0, -39.0, 8.0)
    r0 = sig(v0, -67.0, -2.0)
    b0 = 1 / (1 + np.exp((r0 - 0.25) / 0.07)) - 1 / (1 + np.exp(-0.25 / 0.07))
    i_t, i_ca = 0.5 * a**3 * b0**2 * (v0 - 140.0), 0.5 * s_**2 * (v0 - 140.0)
    g.h = sig(v0, -39.0, -3.1)
    g.n = sig(v0, -32.0, 8.0)
    g.r = r0
    g.ca = -(i_ca + i_t) / 22.5
    g.v = v0 + 5.0 * (2 * rng.random(n) - 1)
    g.I_ou = 3.0 * rng.standard_normal(n)
    return g, (5.0, 3.0)


def adex_group(n, rng, name, current, het, syn, ou):
    """AdEx with the pallidal set; `syn` lists (name, tau_ms, E_rev) of incoming projections."""
    syn_terms = " + ".join(f"g_{s} * ({e} - v)" for s, _, e in syn) or "0"
    syn_eqs = "\n".join(f"dg_{s}/dt = -g_{s} / ({tau} * ms) : 1" for s, tau, _ in syn)
    eqs = f"""
    dv/dt = (-gL * (v - EL) + gL * DT * exp((clip(v, -1000.0, Vpk) - VT) / DT) - w
             + I0 + I_ou + I_syn) / C / ms : 1 (unless refractory)
    dw/dt = (a * (v - EL) - w) / tauw / ms : 1
    I_syn = {syn_terms} : 1
    {syn_eqs}
    I_ou : 1
    C : 1 (constant)
    b : 1 (constant)
    """
    consts = dict(gL=1.0, EL=-55.0, VT=-54.0, DT=1.7, tauw=20.0, a=2.5, Vr=-60.0, Vpk=15.0,
                  I0=current)
    g = NeuronGroup(n, eqs, threshold="v > Vpk", reset="v = Vr; w += b", refractory=1.0 * ms,
                    method="euler", namespace=consts, name=name)
    hc, hb = het
    g.C = 40.0 * (1 + hc * np.clip(rng.standard_normal(n), -3, 3))
    g.b = 20.0 * (1 + hb * np.clip(rng.standard_normal(n), -3, 3))
    g.v = -55.0 + 5.0 * (2 * rng.random(n) - 1)
    g.w = 0.0
    g.I_ou = ou[1] * rng.standard_normal(n)
    return g, ou


def ou_update(group, tau_ms, sigma, dt_ms):
    e = np.exp(-dt_ms / tau_ms)
    amp = sigma * np.sqrt(1 - e * e)
    group.run_regularly(f"I_ou = I_ou * {float(e)!r} + {float(amp)!r} * randn()", dt=dt_ms * ms,
                        when="after_groups")


def build(sizes, stn_kind, seed, dt_ms):
    n_stn, n_gpe, n_gpi = sizes
    rng = np.random.default_rng(seed)
    b2.seed(seed)
    if stn_kind == "stn":
        stn, stn_ou = stn_group(n_stn, rng)
    else:
        stn, stn_ou = adex_group(n_stn, rng, "stn", 30.0, (0.1, 0.1), [("gpe", 8.0, -80.0)],
                                 (10.0, 30.0))
    gpe, gpe_ou = adex_group(n_gpe, rng, "gpe", 30.0, (0.1, 0.1), [("stn", 3.0, 0.0)],
                             (10.0, 30.0))
    gpi, gpi_ou = adex_group(n_gpi, rng, "gpi", 62.0, (0.05, 0.0),
                             [("stn", 3.0, 0.0), ("gpe", 8.0, -80.0)], (10.0, 5.0))
    for grp, (tau, sigma) in ((stn, stn_ou), (gpe, gpe_ou), (gpi, gpi_ou)):
        ou_update(grp, tau, sigma, dt_ms)
    syns = []
    for pre, post, p, w, delay, name in (
        (stn, gpe, 0.15, 0.05, 5.0, "stn"),
        (gpe, stn, 0.07, 0.005, 8.0, "gpe"),
        (stn, gpi, 0.30, 0.05, 5.0, "stn"),
        (gpe, gpi, 0.05, 0.03, 5.0, "gpe"),
    ):
        s = Synapses(pre, post, "wsyn : 1", on_pre=f"g_{name}_post += wsyn", delay=delay * ms,
                     name=f"{pre.name}_to_{post.name}")
        s.connect(p=p)
        s.wsyn = f"clip({w} * (1 + 0.2 * randn()), 0, inf)"
        syns.append(s)
    mons = [SpikeMonitor(g, record=False) for g in (stn, gpe, gpi)]
    return Network(stn, gpe, gpi, *syns, *mons), (stn, gpe, gpi), syns, mons


def run_standalone(sizes, stn_kind, seed, dt_ms, warm_ms, timed_ms):
    outdir = tempfile.mkdtemp(prefix="brian2_circuit_")
    b2.set_device("cpp_standalone", directory=outdir, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = 0
    # Brian2 compiles with an unbounded `make -j` by default; on this shared 2-core machine
    # that pushed the load average to 50 during other sessions' timings.
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = ['-j2']
    defaultclock.dt = dt_ms * ms
    net, groups, syns, mons = build(sizes, stn_kind, seed, dt_ms)
    net.run(warm_ms * ms)
    net.run(timed_ms * ms)
    t0 = time.time()
    b2.device.build(directory=outdir, compile=True, run=False)
    compile_s = time.time() - t0
    # The binary under GNU time, for its own peak RSS (not the compiler's).
    rss_file = os.path.join(outdir, "peak_rss_kb.txt")
    b2.prefs.devices.cpp_standalone.run_cmd_unix = ["/usr/bin/time", "-f", "%M", "-o", rss_file,
                                                    "./main"]
    t0 = time.time()
    b2.device.run(directory=outdir, with_output=False)
    wall = time.time() - t0
    run_time = b2.device._last_run_time
    with open(rss_file) as f:
        peak_kb = float(f.read().split()[-1])
    counts = [int(np.asarray(m.num_spikes)) for m in mons]
    n_syn = sum(len(s) for s in syns)
    res = dict(run_s=run_time, wall_s=wall, compile_s=compile_s,
               peak_rss_mb=peak_kb / 1024.0, counts=counts, synapses=n_syn)
    shutil.rmtree(outdir, ignore_errors=True)
    return res


def run_runtime(sizes, stn_kind, seed, dt_ms, warm_ms, timed_ms, target):
    b2.prefs.codegen.target = target
    defaultclock.dt = dt_ms * ms
    net, groups, syns, mons = build(sizes, stn_kind, seed, dt_ms)
    net.run(warm_ms * ms)  # also compiles (cython) the code objects
    t0 = time.time()
    net.run(timed_ms * ms)
    run_time = time.time() - t0
    counts = [int(m.num_spikes) for m in mons]
    import resource
    return dict(run_s=run_time, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                / 1024.0, counts=counts, synapses=sum(len(s) for s in syns))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="cpp_standalone",
                    choices=["cpp_standalone", "cython", "numpy"])
    ap.add_argument("--stn", default="stn", choices=["stn", "adex"])
    ap.add_argument("--sizes", nargs="+", default=["100,200,150", "1000,2000,1500"])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dt", type=float, default=0.025)
    ap.add_argument("--warm-ms", type=float, default=20.0)
    ap.add_argument("--timed-ms", type=float, default=200.0)
    a = ap.parse_args()
    if len(a.sizes) > 1:
        # One process per size: Brian2's standalone device builds one project per process.
        for s in a.sizes:
            argv = [x for x in sys.argv[1:]]
            i = argv.index("--sizes")
            j = i + 1
            while j < len(argv) and not argv[j].startswith("--"):
                j += 1
            argv[i:j] = ["--sizes", s]
            subprocess.run([sys.executable, __file__, *argv], check=True)
        return 0
    for s in a.sizes:
        sizes = tuple(int(x) for x in s.split(","))
        if a.target == "cpp_standalone":
            r = run_standalone(sizes, a.stn, a.seed, a.dt, a.warm_ms, a.timed_ms)
        else:
            r = run_runtime(sizes, a.stn, a.seed, a.dt, a.warm_ms, a.timed_ms, a.target)
        # Spikes counted over warm-up and timed window together.
        total_ms = a.warm_ms + a.timed_ms
        steps = round(a.timed_ms / a.dt)
        rates = {p: c / (n * total_ms * 1e-3) for p, c, n in zip(("stn", "gpe", "gpi"),
                                                                   r["counts"], sizes)}
        print(json.dumps(dict(
            tool=f"brian2-{b2.__version__}", target=a.target, stn=a.stn, sizes=list(sizes),
            synapses=r["synapses"], steps=steps, ms_per_step=r["run_s"] * 1e3 / steps,
            peak_rss_mb=round(r["peak_rss_mb"], 1),
            rate_hz={k: round(v, 2) for k, v in rates.items()},
            compile_s=round(r.get("compile_s", 0.0), 1),
        )), flush=True)


if __name__ == "__main__":
    sys.exit(main())
