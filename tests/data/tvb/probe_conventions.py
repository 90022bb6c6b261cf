#!/usr/bin/env python3
"""Empirical probes of TVB's simulator conventions (results in README.md).

    /work/tvb-venv/bin/python tests/data/tvb/probe_conventions.py

Each probe runs TVB on a tiny hand-made network and asserts the outcome, so
this script fails loudly if a future tvb-library changes a convention.
Its printed output is kept in probe_output.txt.
"""

import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_refs as M  # noqa: E402


def tvb_models():
    from tvb.simulator import models, coupling
    return models, coupling


def probe_orientation():
    """weights[0, 1] = 1 only: who receives?"""
    models, coupling = tvb_models()
    w = np.zeros((3, 3))
    w[0, 1] = 1.0
    x0 = np.array([[10.0, 20.0, 30.0]])
    traj, _, _ = M.run_tvb(models.Linear(gamma=np.array([0.0])),
                           coupling.Linear(a=np.array([1.0]), b=np.array([0.0])),
                           w, np.zeros((3, 3)), 1.0, 0.5, 1, x0)
    dx = (traj[0] - x0)[0] / 0.5
    print("orientation: weights[0,1]=1, x=[10,20,30], dx/dt after one step =", dx)
    assert np.allclose(dx, [20.0, 0.0, 0.0])
    print("  -> node 0 receives x_1: weights[i, j] is FROM j TO i "
          "(c_i = sum_j weights[i, j] x_j), same as neurodiff W[target][source]; no transpose")


def probe_delay_rounding():
    from tvb.simulator import simulator, integrators, monitors
    models, coupling = tvb_models()
    # delays in steps: 0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001 (dt = 1 ms, speed = 1 mm/ms)
    lengths = [0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001]
    n = len(lengths) + 1
    w = np.zeros((n, n))
    tl = np.zeros((n, n))
    for k, L in enumerate(lengths):
        w[0, k + 1] = 1.0
        tl[0, k + 1] = L
    conn = M.make_connectivity(w, tl, 1.0)
    sim = simulator.Simulator(model=models.Linear(), connectivity=conn,
                              coupling=coupling.Linear(),
                              integrator=integrators.HeunDeterministic(dt=1.0),
                              monitors=(monitors.Raw(),),
                              conduction_speed=1000.0)
    sim.configure()
    got = sim.connectivity.idelays[0, 1:].tolist()
    print("delay rounding: tract/speed/dt =", lengths, "-> idelays", got,
          "horizon", sim.connectivity.horizon)
    assert got == [0, 2, 2, 4, 2, 3]
    print("  -> numpy.rint: round half to EVEN (0.5->0, 1.5->2, 2.5->2, 3.5->4); "
          "horizon = max(idelays over ALL pairs, zero weights and diagonal included) + 1")
    print("  -> Simulator.conduction_speed=1000 was ignored: only Connectivity.speed "
          "(mm/ms, default 3.0) sets the delays in tvb-library 2.10")


def probe_which_past_state():
    """Ramp history on node 1, integrator node 0 (dx0/dt = c0): read c0 per step."""
    models, coupling = tvb_models()
    d = 3
    w = np.array([[0.0, 1.0], [0.0, 0.0]])
    tl = np.array([[0.0, float(d)], [float(d), 0.0]])
    H = d + 1
    hist = np.zeros((H, 1, 2))
    hist[:, 0, 1] = 100.0 + np.arange(H)      # hist[H-1] is the initial state
    traj, times, sim = M.run_tvb(models.Linear(gamma=np.array([0.0])),
                                 coupling.Linear(a=np.array([1.0]), b=np.array([0.0])),
                                 w, tl, 1.0, 1.0, 6, None, history=hist)
    x0 = np.concatenate([[0.0], traj[:, 0, 0]])
    c = np.diff(x0)                             # dt = 1
    print("which past state: node-1 history (oldest..current) =", hist[:, 0, 1].tolist(),
          "delay d =", d)
    print("  coupling seen by node 0 at steps n = 0..5:", c.tolist())
    # state index: x_1[n] for n = -(H-1)..0 is the history, x_1[n>0] = x_1[0] = 103
    x1 = lambda n: 100.0 + (H - 1) + min(n, 0)  # noqa: E731
    assert np.allclose(c, [x1(n - d) for n in range(6)])
    print("  -> step n -> n+1 uses x_j[n - d] (d = 0: the current state); "
          "coupling constant over both Heun stages (a ramp would otherwise give half-integers)")
    print("  -> Raw times:", times.tolist(), "= (horizon + k) * dt for traj[k]")
    assert np.allclose(times, (H + np.arange(6)) * 1.0)


def probe_heun_bounds():
    """MPR single uncoupled node with a step large enough to drive r < 0."""
    models, coupling = tvb_models()
    x0 = np.array([[0.05], [-50.0]])
    dt = 0.1
    traj, _, sim = M.run_tvb(models.MontbrioPazoRoxin(),
                             coupling.Linear(a=np.array([0.0])),
                             np.zeros((1, 1)), np.zeros((1, 1)), 1.0, dt, 3, x0)
    p = M.model_params(sim.model)
    res = {}
    for name, pred, corr in [("both", True, True), ("corrector only", False, True),
                             ("none", False, False), ("predictor only", True, False)]:
        x = x0.copy()
        out = []
        c = np.zeros((2, 1))
        for _ in range(3):
            k1 = M.own_dfun("MontbrioPazoRoxin", p, x, c)
            xp = x + dt * k1
            if pred:
                xp[0] = np.maximum(xp[0], 0.0)
            k2 = M.own_dfun("MontbrioPazoRoxin", p, xp, c)
            x = x + 0.5 * dt * (k1 + k2)
            if corr:
                x[0] = np.maximum(x[0], 0.0)
            out.append(x.copy())
        res[name] = float(np.abs(np.array(out) - traj).max())
    print("Heun bounds (MPR r>=0, r0=0.05, V0=-50, dt=0.1): max |own - TVB| per variant:", res)
    assert res["both"] < 1e-12 and min(v for k, v in res.items() if k != "both") > 1e-3
    print("  -> bounds are clipped after the predictor AND after the corrector")


def probe_kuramoto():
    models, coupling = tvb_models()
    n = 4
    w = np.ones((n, n)) - np.eye(n)
    x0 = np.array([[0.0, 0.5, 1.0, 2.0]])
    dt = 0.1
    traj, _, sim = M.run_tvb(models.Kuramoto(), coupling.Kuramoto(a=np.array([1.0])),
                             w, np.zeros((n, n)), 1.0, dt, 1, x0)
    th = x0[0]
    s = (np.sin(th[None, :] - th[:, None]) * w).sum(1)
    errs = {}
    for norm in (1.0, float(n)):
        # coupling held for both Heun stages and d(theta)/dt = omega + c does not
        # depend on theta itself, so one step is exactly theta + dt * (omega + c)
        errs["1/%g" % norm] = float(np.abs(th + dt * (1.0 + s / norm) - traj[0, 0]).max())
    print("Kuramoto coupling (4 nodes, all-to-all, a=1): max |variant - TVB| =", errs)
    assert errs["1/1"] < 1e-6 and errs["1/4"] > 1e-3
    print("  -> coupling.Kuramoto does NOT divide by N: its post-function divides by "
          "gx.shape[0], which in the sparse implementation is the number of coupled "
          "variables (1), not the number of nodes")


def probe_float32():
    from tvb.simulator import simulator, integrators, monitors
    models, coupling = tvb_models()
    w, tl, _, _ = M.load_connectome()
    conn = M.make_connectivity(w, tl, 3.0)
    sim = simulator.Simulator(model=models.Generic2dOscillator(), connectivity=conn,
                              coupling=coupling.Linear(),
                              integrator=integrators.HeunDeterministic(dt=0.1),
                              monitors=(monitors.Raw(),))
    sim.configure()
    h = sim.history
    print("history buffer dtype:", h.buffer.dtype, "| nnz_weights dtype:", h.nnz_weights.dtype,
          "| state dtype:", sim.current_state.dtype)
    assert h.buffer.dtype == np.float32 and h.nnz_weights.dtype == np.float32
    print("  -> delayed states and weights are float32 in TVB, the weighted sum is a float32 "
          "sum; the state and the model equations are float64")


def probe_short_ic():
    """initial_conditions shorter than the horizon -> padded with random model.initial()."""
    from tvb.simulator import simulator, integrators, monitors
    models, coupling = tvb_models()
    w, tl, _, _ = M.load_connectome()
    outs = []
    for _ in range(2):
        conn = M.make_connectivity(w, tl, 20.0)
        sim = simulator.Simulator(model=models.Generic2dOscillator(), connectivity=conn,
                                  coupling=coupling.Linear(),
                                  integrator=integrators.HeunDeterministic(dt=0.1),
                                  monitors=(monitors.Raw(),),
                                  initial_conditions=np.zeros((1, 2, 6, 1)))
        sim.configure()
        outs.append(sim.run(n_steps=60)[0][1])
    same = np.array_equal(outs[0], outs[1])
    print("initial_conditions of length 1 < horizon 41: two runs identical?", same)
    assert not same
    print("  -> pass all `horizon` history entries (TVB pads missing ones with random values)")


def probe_delay_effect():
    """The delayed reference cases really depend on the delays (and on n-d, not n-d-1)."""
    for case in ["mpr_delay", "g2d_difference_delay", "jr_delay"]:
        spec = M.CASES[case]
        w, tl, c, lab = M.load_connectome()
        model, cpl = M.build(spec)
        speed = M.case_speed(spec, tl)
        traj, _, sim = M.run_tvb(model, cpl, w, tl, speed, spec["dt"], spec["steps"], spec["x0"])
        D = np.asarray(sim.connectivity.idelays, int)
        p, q = M.model_params(model), M.coupling_params(cpl)
        cvar = [int(v) for v in model.cvar]
        bounds = {list(model.state_variables).index(k): tuple(v) for k, v in
                  (model.state_variable_boundaries or {}).items()}
        errs = {}
        for lab_, DD in [("D", D), ("D+1", D + 1), ("0", 0 * D)]:
            o = M.own_simulate(spec["model"], p, cvar, spec["coupling"][0], q, w, DD,
                               spec["dt"], spec["steps"], spec["x0"], bounds)
            errs[lab_] = float(np.abs(o - traj).max())
        print("%s: max |own - TVB| with delays D: %.1e, D+1: %.1e, none: %.1e"
              % (case, errs["D"], errs["D+1"], errs["0"]))
        assert errs["D"] < 1e-9 and errs["D+1"] > 1e-6 and errs["0"] > 1e-6


if __name__ == "__main__":
    import importlib.metadata as md
    print("tvb-library", md.version("tvb-library"), "numpy", np.__version__)
    probe_orientation()
    probe_delay_rounding()
    probe_which_past_state()
    probe_heun_bounds()
    probe_kuramoto()
    probe_float32()
    probe_short_ic()
    probe_delay_effect()
    print("all probes passed")
