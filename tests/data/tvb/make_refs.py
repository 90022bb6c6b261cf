#!/usr/bin/env python3
"""Regenerate the TVB reference trajectories in tests/data/tvb/.

One command (from the repository root, with a venv that has tvb-library):

    python3 -m venv /work/tvb-venv
    /work/tvb-venv/bin/pip install tvb-library==2.10.0 numpy scipy
    /work/tvb-venv/bin/python tests/data/tvb/make_refs.py            # all cases
    /work/tvb-venv/bin/python tests/data/tvb/make_refs.py mpr_nodelay  # some cases
    /work/tvb-venv/bin/python tests/data/tvb/make_refs.py --check-only # no writes

For every case this script

  1. builds a TVB ``Connectivity`` from the plain-text files of
     ``data/tvb/connectivity_76`` (a subset of regions, see REGIONS),
  2. runs TVB's ``Simulator`` with ``HeunDeterministic`` and a ``Raw`` monitor
     from a constant initial history, and writes ``<case>/traj.npy``
     (float64, shape [steps, n_svar, n_node], TVB state-variable order;
     ``traj[k]`` is the state after k+1 integration steps) and
     ``<case>/case.json`` (everything needed to rerun it elsewhere),
  3. re-integrates the same case with an independent NumPy implementation of
     the equations documented in README.md (``own_*`` below: written from the
     formulas, no TVB code is called) and asserts that it matches TVB to
     ~1e-10 over the first CHECK_STEPS steps (and reports the error over the
     whole trajectory).  This is the proof that README.md's conventions
     (weight orientation, delay indexing, Heun with held coupling, bounds,
     coupling functions, model equations) are the ones TVB uses.

The equations are described in README.md in our own words; no TVB source is
copied here (TVB is GPL).
"""

import json
import math
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CONN_DIR = os.path.join(REPO, "data", "tvb", "connectivity_76")

# 0-based indices into connectivity_76 (rCCA, rCCS, rIP, rTCPOL, rTCV, lCCA):
# 24 of the 30 off-diagonal weights are nonzero, the matrix is asymmetric,
# 5 of 6 self-weights are nonzero, one region is in the left hemisphere,
# tract lengths range 4.9 .. 80.1 mm.
REGIONS = [3, 6, 11, 32, 34, 41]
NO_DELAY_SPEED = 1.0e10      # mm/ms: every idelay rounds to 0
TARGET_MAX_DELAY = 40        # steps, for the delayed cases
CHECK_STEPS = 50             # steps compared at 1e-10 by the self-check
CHECK_TOL = 1e-10


# --------------------------------------------------------------------------
# connectome
# --------------------------------------------------------------------------

def load_connectome(regions=REGIONS):
    w = np.loadtxt(os.path.join(CONN_DIR, "weights.txt"))
    tl = np.loadtxt(os.path.join(CONN_DIR, "tract_lengths.txt"))
    labels, centres = [], []
    with open(os.path.join(CONN_DIR, "centres.txt")) as f:
        for line in f:
            parts = line.split()
            if parts:
                labels.append(parts[0])
                centres.append([float(v) for v in parts[1:4]])
    ix = np.ix_(regions, regions)
    return (w[ix].copy(), tl[ix].copy(), np.array(centres)[regions],
            np.array([labels[i] for i in regions]))


def make_connectivity(weights, tract_lengths, speed, centres=None, labels=None):
    from tvb.datatypes.connectivity import Connectivity
    n = weights.shape[0]
    if centres is None:
        centres = np.zeros((n, 3))
    if labels is None:
        labels = np.array(["n%d" % i for i in range(n)])
    conn = Connectivity(weights=np.array(weights, dtype=float),
                        tract_lengths=np.array(tract_lengths, dtype=float),
                        centres=np.array(centres, dtype=float),
                        region_labels=np.array(labels),
                        speed=np.array([float(speed)]))
    conn.configure()
    return conn


def expected_idelays(tract_lengths, speed, dt):
    """Our reading of TVB: round-half-to-even of tract/speed/dt (numpy.rint)."""
    return np.rint(tract_lengths / speed / dt).astype(int)


# --------------------------------------------------------------------------
# running TVB
# --------------------------------------------------------------------------

def run_tvb(model, coupling, weights, tract_lengths, speed, dt, n_steps,
            init_state, centres=None, labels=None, history=None):
    """Run TVB; returns (traj [n_steps, n_svar, n_node], times, sim).

    init_state: [n_svar, n_node]; the whole initial history is set to it
    (unless ``history`` [horizon, n_svar, n_node] is given explicitly).
    """
    from tvb.simulator import simulator, integrators, monitors
    conn = make_connectivity(weights, tract_lengths, speed, centres, labels)
    model.variables_of_interest = tuple(model.state_variables)
    horizon = int(expected_idelays(tract_lengths, speed, dt).max()) + 1
    n_svar = len(model.state_variables)
    n_node = weights.shape[0]
    if history is None:
        ic = np.broadcast_to(np.asarray(init_state, float)[None, :, :, None],
                             (horizon, n_svar, n_node, 1)).copy()
    else:
        ic = np.asarray(history, float)[..., None].copy()
    sim = simulator.Simulator(
        model=model, connectivity=conn, coupling=coupling,
        integrator=integrators.HeunDeterministic(dt=dt),
        monitors=(monitors.Raw(),), initial_conditions=ic)
    sim.configure()
    assert sim.connectivity.horizon == horizon, (sim.connectivity.horizon, horizon)
    assert np.array_equal(sim.connectivity.idelays,
                          expected_idelays(tract_lengths, speed, dt))
    (t, y), = sim.run(n_steps=int(n_steps))
    assert y.shape == (n_steps, n_svar, n_node, 1), y.shape
    return y[..., 0].astype(np.float64), t, sim


# --------------------------------------------------------------------------
# our own NumPy implementation (from README.md's formulas)
# --------------------------------------------------------------------------

PI = np.pi


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def own_dfun(name, p, x, c):
    """Right-hand side f(x, c) of model ``name``.

    x: [n_svar, n_node]; c: [n_coupling_rows, n_node] as produced by own_coupling.
    """
    if name == "MontbrioPazoRoxin":
        r, V = x
        tau = p["tau"]
        dr = (p["Delta"] / (PI * tau) + 2.0 * V * r) / tau
        dV = (V * V - (PI * tau * r) ** 2 + p["eta"] + p["J"] * tau * r + p["I"]
              + p["cr"] * c[0] + p["cv"] * c[1]) / tau
        return np.array([dr, dV])
    if name == "CoombesByrne":
        r, V, g, q = x
        dr = p["Delta"] / PI + 2.0 * V * r - g * r
        dV = V * V - (PI * r) ** 2 + p["eta"] + (p["v_syn"] - V) * g + c[0]
        dg = p["alpha"] * q
        dq = p["alpha"] * (p["k"] * PI * r - g - 2.0 * q)
        return np.array([dr, dV, dg, dq])
    if name == "JansenRit":
        y0, y1, y2, y3, y4, y5 = x

        def S(v):
            return 2.0 * p["nu_max"] / (1.0 + np.exp(p["r"] * (p["v0"] - v)))
        A, B, a, b, J = p["A"], p["B"], p["a"], p["b"], p["J"]
        return np.array([
            y3, y4, y5,
            A * a * S(y1 - y2) - 2.0 * a * y3 - a * a * y0,
            A * a * (p["mu"] + p["a_2"] * J * S(p["a_1"] * J * y0) + c[0])
            - 2.0 * a * y4 - a * a * y1,
            B * b * p["a_4"] * J * S(p["a_3"] * J * y0) - 2.0 * b * y5 - b * b * y2,
        ])
    if name == "WilsonCowan":
        E, I = x
        ue = p["alpha_e"] * (p["c_ee"] * E - p["c_ei"] * I + p["P"] - p["theta_e"] + c[0])
        ui = p["alpha_i"] * (p["c_ie"] * E - p["c_ii"] * I + p["Q"] - p["theta_i"])
        if p["shift_sigmoid"]:
            se = p["c_e"] * (sig(p["a_e"] * (ue - p["b_e"])) - sig(-p["a_e"] * p["b_e"]))
            si = p["c_i"] * (sig(p["a_i"] * (ui - p["b_i"])) - sig(-p["a_i"] * p["b_i"]))
        else:
            se = p["c_e"] * sig(p["a_e"] * (ue - p["b_e"]))
            si = p["c_i"] * sig(p["a_i"] * (ui - p["b_i"]))
        return np.array([(-E + (p["k_e"] - p["r_e"] * E) * se) / p["tau_e"],
                         (-I + (p["k_i"] - p["r_i"] * I) * si) / p["tau_i"]])
    if name == "ReducedWongWang":
        S, = x
        u = p["a"] * (p["w"] * p["J_N"] * S + p["I_o"] + p["J_N"] * c[0]) - p["b"]
        H = u / (1.0 - np.exp(-p["d"] * u))
        return np.array([-S / p["tau_s"] + (1.0 - S) * H * p["gamma"]])
    if name == "ReducedWongWangExcInh":
        Se, Si = x
        cc = p["G"] * p["J_N"] * c[0]
        ue = p["a_e"] * (p["w_p"] * p["J_N"] * Se - p["J_i"] * Si + p["W_e"] * p["I_o"]
                         + cc + p["I_ext"]) - p["b_e"]
        ui = p["a_i"] * (p["J_N"] * Se - Si + p["W_i"] * p["I_o"] + p["lamda"] * cc) - p["b_i"]
        He = ue / (1.0 - np.exp(-p["d_e"] * ue))
        Hi = ui / (1.0 - np.exp(-p["d_i"] * ui))
        return np.array([-Se / p["tau_e"] + (1.0 - Se) * He * p["gamma_e"],
                         -Si / p["tau_i"] + Hi * p["gamma_i"]])
    if name == "SupHopf":
        X, Y = x
        rad = p["a"] - X * X - Y * Y
        return np.array([rad * X - p["omega"] * Y + c[0],
                         rad * Y + p["omega"] * X + c[1]])
    if name == "Generic2dOscillator":
        V, W = x
        dV = p["d"] * p["tau"] * (p["alpha"] * W - p["f"] * V ** 3 + p["e"] * V ** 2
                                  + p["g"] * V + p["gamma"] * p["I"] + p["gamma"] * c[0])
        dW = p["d"] * (p["a"] + p["b"] * V + p["c"] * V ** 2 - p["beta"] * W) / p["tau"]
        return np.array([dV, dW])
    if name == "Kuramoto":
        return np.array([p["omega"] + c[0]])
    if name == "Epileptor":
        x1, y1, z, x2, y2, g = x
        c1, c2 = c[0], c[1]
        f1 = np.where(x1 < 0.0, -p["a"] * x1 ** 2 + p["b"] * x1,
                      p["slope"] - x2 + 0.6 * (z - 4.0) ** 2)
        zcorr = np.where(z < 0.0, -0.1 * z ** 7, 0.0)
        if p["modification"]:
            h = p["x0"] + 3.0 / (1.0 + np.exp(-(x1 + 0.5) / 0.1))
        else:
            h = 4.0 * (x1 - p["x0"]) + zcorr
        f2 = np.where(x2 < -0.25, 0.0, p["aa"] * (x2 + 0.25))
        tt = p["tt"]
        return np.array([
            tt * (y1 - z + p["Iext"] + p["Kvf"] * c1 + f1 * x1),
            tt * (p["c"] - p["d"] * x1 ** 2 - y1),
            tt * (p["r"] * (h - z + p["Ks"] * c1)),
            tt * (-y2 + x2 - x2 ** 3 + p["Iext2"] + p["bb"] * g - 0.3 * (z - 3.5) + p["Kf"] * c2),
            tt * ((-y2 + f2) / p["tau"]),
            tt * (-0.01 * (g - 0.1 * x1)),
        ])
    if name == "Epileptor2D":
        x1, z = x
        f = np.where(x1 < 0.0, p["a"] * x1 ** 2 + (p["d"] - p["b"]) * x1,
                     -p["slope"] - 0.6 * (z - 4.0) ** 2 + p["d"] * x1)
        zcorr = np.where(z < 0.0, -0.1 * z ** 7, 0.0)
        if p["modification"]:
            h = p["x0"] + 3.0 / (1.0 + np.exp(-(x1 + 0.5) / 0.1))
        else:
            h = 4.0 * (x1 - p["x0"]) + zcorr
        tt = p["tt"]
        return np.array([tt * (p["c"] - z + p["Iext"] + p["Kvf"] * c[0] - f * x1),
                         tt * (p["r"] * (h - z + p["Ks"] * c[0]))])
    if name == "LarterBreakspear":
        V, W, Z = x
        mCa = 0.5 * (1.0 + np.tanh((V - p["TCa"]) / p["d_Ca"]))
        mNa = 0.5 * (1.0 + np.tanh((V - p["TNa"]) / p["d_Na"]))
        mK = 0.5 * (1.0 + np.tanh((V - p["TK"]) / p["d_K"]))
        QV = 0.5 * p["QV_max"] * (1.0 + np.tanh((V - p["VT"]) / p["d_V"]))
        QZ = 0.5 * p["QZ_max"] * (1.0 + np.tanh((Z - p["ZT"]) / p["d_Z"]))
        C, aee, rN = p["C"], p["aee"], p["rNMDA"]
        dV = (-(p["gCa"] + (1 - C) * rN * aee * QV + C * rN * aee * c[0]) * mCa * (V - p["VCa"])
              - p["gK"] * W * (V - p["VK"]) - p["gL"] * (V - p["VL"])
              - (p["gNa"] * mNa + (1 - C) * aee * QV + C * aee * c[0]) * (V - p["VNa"])
              - p["aie"] * Z * QZ + p["ane"] * p["Iext"])
        dW = p["phi"] * (mK - W) / p["tau_K"]
        dZ = p["b"] * (p["ani"] * p["Iext"] + p["aei"] * V * QV)
        return p["t_scale"] * np.array([dV, dW, dZ])
    if name == "Linear":
        return np.array([p["gamma"] * x[0] + c[0]])
    raise KeyError(name)


def _wsum(W, pre):
    """sum_j W[i, j] * pre[k, i, j] over the nonzero weights of row i.

    Products and sums are done in the operands' dtype (float32 for float32
    inputs, as in TVB). To reproduce TVB bit for bit, the terms are laid out
    row-major over the nonzero weights and summed with numpy.add.reduceat
    (numpy's reduceat does not add strictly left to right, so a plain loop
    differs from TVB by one float32 ulp now and then).
    """
    rows, cols = np.nonzero(W)
    terms = W[rows, cols][None, :] * pre[:, rows, cols]
    acc = np.zeros(pre.shape[:2], dtype=terms.dtype)
    if rows.size:
        starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
        acc[:, np.unique(rows)] = np.add.reduceat(terms, starts, axis=1)
    return acc


def _wsum_dense(W, pre):
    """sum_j W[i, j] * pre[k, i, j] as a numpy reduction over an axis laid
    out [target, k, source, mode] (TVB's dense coupling layout)."""
    prod = W[:, None, :, None] * np.transpose(pre, (1, 0, 2))[..., None]
    return prod.sum(axis=2)[..., 0].T


def own_coupling(name, q, W32, x_now32, x_del32):
    """Coupling c[k, i] for coupling function ``name`` with parameters q.

    W32[i, j]: TVB weights (i = target, j = source) rounded to float32.
    x_now32[k, i]: coupled variable k of node i at the current step n (float32).
    x_del32[k, i, j]: coupled variable k of node j at step n - D[i, j] (float32).
    TVB keeps weights and the history buffer in float32, so the weighted sum is
    a float32 computation; the post-function is evaluated in float64.
    """
    f64 = np.float64
    if name == "Linear":
        return q["a"] * _wsum(W32, x_del32).astype(f64) + q["b"]
    if name == "Difference":
        return q["a"] * _wsum(W32, x_del32 - x_now32[:, :, None]).astype(f64)
    if name == "Kuramoto":
        # no 1/N: TVB 2.10 divides by the number of coupled variables (1)
        return q["a"] * _wsum(W32, np.sin(x_del32 - x_now32[:, :, None])).astype(f64)
    if name == "Sigmoidal":
        g = _wsum_dense(W32, x_del32).astype(f64)
        return q["cmin"] + (q["cmax"] - q["cmin"]) / (
            1.0 + np.exp(-q["a"] * ((g - q["midpoint"]) / q["sigma"])))
    if name == "SigmoidalJansenRit":
        # x_del rows are the model's cvars (y1, y2); pre-function in float64
        v = (x_del32[0] - x_del32[1]).astype(f64)
        pre = q["cmin"] + (q["cmax"] - q["cmin"]) / (1.0 + np.exp(q["r"] * (q["midpoint"] - v)))
        return q["a"] * _wsum_dense(W32, pre[None])
    raise KeyError(name)


def own_simulate(model_name, p, cvar, coupling_name, q, W, D, dt, n_steps, x0,
                 bounds, stats=None, coupling_dtype=np.float32):
    """Heun with coupling computed once per step from the history and held for
    both stages; bounds clipped after the predictor and after the corrector.

    D: integer delays [n, n]; history before step 0 is constant = x0.
    coupling_dtype: float32 reproduces TVB (float32 weights and history);
    float64 is what a straightforward double-precision implementation does.
    """
    x = np.array(x0, dtype=float)
    n_svar, n_node = x.shape
    H = int(D.max()) + 1
    buf = np.empty((H + n_steps, len(cvar), n_node), dtype=coupling_dtype)
    buf[:H] = x[cvar]                       # buf[H-1+n] holds step n
    jj = np.arange(n_node)[None, :]
    W32 = np.asarray(W, dtype=coupling_dtype)
    out = np.empty((n_steps, n_svar, n_node))

    def clip(y, stage):
        for k, (lo, hi) in bounds.items():
            if stats is not None:
                stats[stage] = stats.get(stage, 0) + int(((y[k] < lo) | (y[k] > hi)).sum())
            y[k] = np.minimum(np.maximum(y[k], lo), hi)
        return y

    for n in range(n_steps):
        xd = buf[H - 1 + n - D, :, jj]      # [i, j, k]
        xd = np.transpose(xd, (2, 0, 1))    # [k, i, j]
        c = own_coupling(coupling_name, q, W32, buf[H - 1 + n], xd)
        k1 = own_dfun(model_name, p, x, c)
        xp = clip(x + dt * k1, "predictor")
        k2 = own_dfun(model_name, p, xp, c)
        x = clip(x + 0.5 * dt * (k1 + k2), "corrector")
        out[n] = x
        buf[H + n] = x[cvar]
    return out


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

def _n(v):
    return np.array([float(v)])


def model_params(model):
    """All numeric declarative parameters of a TVB model as plain python."""
    skip = {"state_variable_range", "state_variable_boundaries",
            "variables_of_interest", "noise", "parameter_names",
            "state_variable_dfuns", "coupling_terms"}
    out = {}
    for name in sorted(type(model).declarative_attrs):
        if name in skip:
            continue
        v = getattr(model, name)
        if isinstance(v, np.ndarray) and v.dtype.kind in "fbiu":
            vals = v.ravel().tolist()
            out[name] = vals[0] if len(vals) == 1 else vals
    return out


def coupling_params(cpl):
    out = {}
    for name in sorted(type(cpl).declarative_attrs):
        v = getattr(cpl, name)
        if isinstance(v, np.ndarray):
            vals = v.ravel().tolist()
            out[name] = vals[0] if len(vals) == 1 else vals
    return out


def node_init(*rows):
    return np.array(rows, dtype=float)


# Each spec: model class name, overrides of model parameters (anything not
# listed is TVB's default), coupling class + parameters, dt, steps and the
# initial state [n_svar, 6 nodes].  "delay": False -> speed NO_DELAY_SPEED;
# True -> speed chosen so that the largest idelay is TARGET_MAX_DELAY.
BASE = {
    "mpr": dict(model="MontbrioPazoRoxin", params={}, coupling=("Linear", {"a": 0.2, "b": 0.0}),
                dt=0.01, steps=1000,
                x0=node_init([0.1, 0.5, 1.0, 0.2, 0.8, 0.05],
                             [-2.0, -1.0, -0.5, -1.5, 0.0, -2.0])),
    "jr": dict(model="JansenRit", params={},
               coupling=("SigmoidalJansenRit", {"a": 10.0}),
               dt=0.1, steps=400,
               x0=node_init([0.05, 0.10, 0.00, 0.08, 0.02, 0.12],
                            [15.0, 20.0, 10.0, 25.0, 18.0, 12.0],
                            [10.0, 12.0, 8.0, 15.0, 11.0, 9.0],
                            [0.0, 0.1, -0.1, 0.2, 0.0, -0.2],
                            [1.0, -1.0, 0.5, 2.0, 0.0, -0.5],
                            [0.0, 0.5, -0.5, 1.0, 0.2, 0.0])),
    # TVB's default WilsonCowan parameters sit at a fixed point; these are the
    # classic Wilson-Cowan limit-cycle values (P = 1.25)
    "wc": dict(model="WilsonCowan",
               params={"c_ee": 16.0, "c_ei": 12.0, "c_ie": 15.0, "c_ii": 3.0,
                       "a_e": 1.3, "b_e": 4.0, "a_i": 2.0, "b_i": 3.7, "P": 1.25},
               coupling=("Linear", {"a": 0.1, "b": 0.0}),
               dt=0.1, steps=1000,
               x0=node_init([0.1, 0.3, 0.5, 0.2, 0.4, 0.05],
                            [0.05, 0.2, 0.1, 0.3, 0.0, 0.15])),
    "rww": dict(model="ReducedWongWang", params={}, coupling=("Linear", {"a": 0.1, "b": 0.0}),
                dt=0.1, steps=1000,
                x0=node_init([0.1, 0.3, 0.5, 0.7, 0.9, 0.2])),
    "rwwei": dict(model="ReducedWongWangExcInh", params={}, coupling=("Linear", {"a": 0.1, "b": 0.0}),
                  dt=0.1, steps=1000,
                  x0=node_init([0.1, 0.3, 0.5, 0.7, 0.9, 0.2],
                               [0.05, 0.1, 0.2, 0.3, 0.4, 0.5])),
    "suphopf": dict(model="SupHopf", params={"a": 0.2}, coupling=("Difference", {"a": 0.1}),
                    dt=0.01, steps=1000,
                    x0=node_init([0.5, -0.3, 0.1, 0.4, -0.5, 0.2],
                                 [0.0, 0.4, -0.5, 0.2, 0.1, -0.3])),
    "g2d": dict(model="Generic2dOscillator", params={}, coupling=("Linear", {"a": 0.05, "b": 0.0}),
                dt=0.1, steps=1000,
                x0=node_init([1.5, -1.0, 0.5, 2.0, -0.5, 0.0],
                             [-2.0, 1.0, 0.0, -3.0, 2.0, -1.0])),
    "kuramoto": dict(model="Kuramoto", params={}, coupling=("Kuramoto", {"a": 0.2}),
                     dt=0.05, steps=1000,
                     x0=node_init([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
    "epileptor": dict(model="Epileptor", params={"Ks": -0.2, "Kvf": 0.1, "Kf": 0.1},
                      coupling=("Difference", {"a": 0.1}),
                      dt=0.05, steps=400,
                      x0=node_init([-1.5, -1.0, 0.2, -1.2, 0.5, -0.8],
                                   [-10.0, -8.0, -5.0, -12.0, -3.0, -9.0],
                                   [3.0, 3.5, 3.2, 2.8, 3.7, 4.0],
                                   [-0.5, -0.8, 0.1, -1.0, 0.2, -0.3],
                                   [0.1, 0.5, 0.3, 0.0, 0.8, 0.2],
                                   [0.0, 0.05, -0.05, 0.1, 0.0, -0.1])),
    "epileptor2d": dict(model="Epileptor2D", params={"Ks": -0.2, "Kvf": 0.1},
                        coupling=("Difference", {"a": 0.1}),
                        dt=0.05, steps=1000,
                        x0=node_init([-1.5, -1.0, 0.2, -1.2, 0.5, -0.8],
                                     [3.0, 3.5, 3.2, 2.8, 3.7, 4.0])),
    "lb": dict(model="LarterBreakspear", params={}, coupling=("Linear", {"a": 0.1, "b": 0.0}),
               dt=0.1, steps=700,
               x0=node_init([-0.3, 0.1, 0.2, -0.1, 0.3, 0.0],
                            [0.1, 0.2, 0.0, 0.3, 0.15, 0.05],
                            [0.0, 0.1, -0.1, 0.05, 0.2, -0.05])),
    "cb": dict(model="CoombesByrne", params={}, coupling=("Linear", {"a": 0.1, "b": 0.0}),
               dt=0.005, steps=500,
               x0=node_init([0.5, 1.0, 2.0, 0.2, 1.5, 0.8],
                            [-2.0, 0.0, 1.0, -3.0, 2.0, -1.0],
                            [1.0, 1.5, 1.2, 1.8, 1.1, 1.4],
                            [0.0, 0.2, -0.2, 0.4, -0.4, 0.1])),
    "linear": dict(model="Linear", params={}, coupling=("Linear", {"a": 0.9, "b": 0.0}),
                   dt=0.005, steps=1000,
                   x0=node_init([1.0, -0.5, 0.3, 0.8, -1.0, 0.1])),
}

CASES = {}
for _k, _v in BASE.items():
    CASES[_k + "_nodelay"] = dict(_v, delay=False)
    CASES[_k + "_delay"] = dict(_v, delay=True)
# extra coupling-function coverage
CASES["jr_linear_nodelay"] = dict(BASE["jr"], coupling=("Linear", {"a": 0.0005, "b": 0.0}), delay=False)
CASES["g2d_difference_delay"] = dict(BASE["g2d"], coupling=("Difference", {"a": 0.05}), steps=500,
                                     delay=True)
CASES["mpr_sigmoidal_nodelay"] = dict(BASE["mpr"], coupling=("Sigmoidal", {}), delay=False)
# MPR with a step large enough that r is clipped at 0 (predictor and corrector)
CASES["mpr_bounds_nodelay"] = dict(BASE["mpr"], dt=0.05, steps=400, delay=False,
                                   x0=node_init([0.3, 0.5, 1.0, 0.2, 0.6, 0.4],
                                                [-25.0, -30.0, -0.5, -28.0, -2.0, -22.0]))

# Epileptor2D where it coincides with vbjax's 2D Epileptor (neurodiff's `bvep`): no coupling
# into x1 (Kvf = 0), every x1 < 0 and z >= 0 throughout (asserted by tests/tvb.rs), a faster
# slow variable (r = 0.01) so that dz/dt weighs in, and a healthy excitability
CASES["epileptor2d_bvep_delay"] = dict(BASE["epileptor2d"], delay=True,
                                       params={"Ks": -0.2, "Kvf": 0.0, "r": 0.01, "x0": -2.5},
                                       x0=node_init([-1.9, -2.2, -1.7, -2.0, -1.6, -2.1],
                                                    [4.0, 3.8, 4.2, 3.9, 4.1, 3.7]))


def build(spec):
    from tvb.simulator import models, coupling as cpl_mod
    model = getattr(models, spec["model"])(**{k: _n(v) for k, v in spec["params"].items()})
    cname, cpars = spec["coupling"]
    cpl = getattr(cpl_mod, cname)(**{k: _n(v) for k, v in cpars.items()})
    return model, cpl


def case_speed(spec, tract_lengths):
    if not spec["delay"]:
        return NO_DELAY_SPEED
    # choose speed so that the largest delay is TARGET_MAX_DELAY steps
    # (a round number of mm/ms with 3 significant digits)
    v = tract_lengths.max() / (TARGET_MAX_DELAY * spec["dt"])
    return float("%.3g" % v)


def run_case(name, spec, write=True):
    import tvb
    from importlib.metadata import version
    weights, tract, centres, labels = load_connectome()
    model, cpl = build(spec)
    speed = case_speed(spec, tract)
    dt, n_steps, x0 = spec["dt"], spec["steps"], spec["x0"]
    traj, times, sim = run_tvb(model, cpl, weights, tract, speed, dt, n_steps, x0,
                               centres, labels)
    D = np.asarray(sim.connectivity.idelays, dtype=int)
    H = int(sim.connectivity.horizon)
    if not spec["delay"]:
        assert not D.any(), "no-delay case must have all-zero idelays"
    # TVB's Raw monitor time stamps: t_k = (H + k) * dt for traj[k]
    assert np.allclose(times, (H + np.arange(n_steps)) * dt)

    p = model_params(model)
    q = coupling_params(cpl)
    cvar = [int(v) for v in model.cvar]
    bounds = {}
    if model.state_variable_boundaries is not None:
        for sv, (lo, hi) in model.state_variable_boundaries.items():
            bounds[list(model.state_variables).index(sv)] = (float(lo), float(hi))
    clips = {}
    own = own_simulate(spec["model"], p, cvar, spec["coupling"][0], q, weights, D, dt,
                       n_steps, x0, bounds, clips)
    scale = np.maximum(1.0, np.abs(traj))
    err = np.abs(own - traj) / scale
    err_head = float(err[:CHECK_STEPS].max())
    err_all = float(err.max())
    own64 = own_simulate(spec["model"], p, cvar, spec["coupling"][0], q, weights, D, dt,
                         n_steps, x0, bounds, coupling_dtype=np.float64)
    err64 = np.abs(own64 - traj) / scale
    ok = err_head < CHECK_TOL
    moving = float(np.abs(np.diff(traj[-50:], axis=0)).max())
    print("%-26s svar=%d steps=%4d H=%3d speed=%-10.4g head_err=%.1e all_err=%.1e "
          "f64-coupling err: first10=%.1e all=%.1e "
          "range=[%.3g, %.3g] last-50-step max|dx|=%.2e clips=%s %s"
          % (name, traj.shape[1], n_steps, H, speed, err_head, err_all,
             float(err64[:10].max()), float(err64.max()),
             traj.min(), traj.max(), moving, clips or "-", "OK" if ok else "MISMATCH"))
    assert np.isfinite(traj).all(), name
    if not ok:
        raise AssertionError("%s: own NumPy Heun differs from TVB (%.3e)" % (name, err_head))
    if not write:
        return
    sv_bounds = None
    if model.state_variable_boundaries is not None:
        sv_bounds = {k: [float(v[0]) if np.isfinite(v[0]) and abs(v[0]) < 1e300 else None,
                         float(v[1]) if np.isfinite(v[1]) and abs(v[1]) < 1e300 else None]
                     for k, v in model.state_variable_boundaries.items()}
    meta = {
        "case": name,
        "tvb_library_version": version("tvb-library"),
        "numpy_version": np.__version__,
        "model": {
            "class": "tvb.simulator.models.%s" % spec["model"],
            "state_variables": list(model.state_variables),
            "cvar": cvar,
            "number_of_modes": int(model.number_of_modes),
            "parameters": p,
            "non_default_parameters": spec["params"],
            "state_variable_boundaries": sv_bounds,
        },
        "coupling": {"class": "tvb.simulator.coupling.%s" % spec["coupling"][0],
                     "parameters": q,
                     "non_default_parameters": spec["coupling"][1]},
        "integrator": {"class": "tvb.simulator.integrators.HeunDeterministic", "dt": dt},
        "n_steps": n_steps,
        "connectivity": {
            "source": "data/tvb/connectivity_76 (weights.txt, tract_lengths.txt, centres.txt)",
            "region_indices": REGIONS,
            "region_labels": [str(s) for s in labels],
            "weights_tvb_orientation": "weights[i][j] = weight of the connection FROM region j TO region i",
            "weights": weights.tolist(),
            "tract_lengths_mm": tract.tolist(),
            "speed_mm_per_ms": speed,
            "idelays": D.tolist(),
            "idelays_formula": "numpy.rint(tract_lengths / speed / dt) (round half to even)",
            "horizon": H,
        },
        "initial_state": np.asarray(x0).tolist(),
        "history": "constant: all %d history entries equal initial_state "
                   "(initial_conditions array of shape [horizon, n_svar, n_node, 1])" % H,
        "monitor": {"class": "tvb.simulator.monitors.Raw",
                    "variables_of_interest": list(model.state_variables),
                    "traj_file": "traj.npy",
                    "traj_shape": list(traj.shape),
                    "traj_dtype": "float64",
                    "sample_meaning": "traj[k] = state after k+1 Heun steps from initial_state",
                    "tvb_time_of_traj_k": "(horizon + k) * dt  (TVB starts counting at step "
                                          "horizon because the history occupies steps 0..horizon-1)",
                    "tvb_first_time": float(times[0])},
        "self_check": {"own_numpy_heun_max_rel_err_first_%d_steps" % CHECK_STEPS: err_head,
                       "bound_clip_events": clips,
                       "float64_coupling_max_rel_err_first_10_steps": float(err64[:10].max()),
                       "float64_coupling_max_rel_err_all_steps": float(err64.max()),
                       "float64_coupling_note": "error of the same NumPy Heun with the coupling "
                                                "computed in float64 instead of TVB's float32",
                       "own_numpy_heun_max_rel_err_all_steps": err_all},
    }
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "traj.npy"), traj)
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def main(argv):
    write = "--check-only" not in argv
    names = [a for a in argv if not a.startswith("--")] or list(CASES)
    for name in names:
        run_case(name, CASES[name], write=write)
    if write and len(names) == len(CASES):
        with open(os.path.join(HERE, "index.json"), "w") as f:
            json.dump({"cases": sorted(CASES)}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
