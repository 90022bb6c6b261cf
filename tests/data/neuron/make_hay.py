"""NEURON reference traces for the Hay et al. (2011) channels (models/src/channel/, test
`hay_channels_match_neuron` in tests/integration/cell.rs).

Needs the channels' .mod files of ModelDB 139653 (Hay, Hill, Schürmann, Markram & Segev 2011,
PLoS Comput. Biol. 7:e1002107; also in github.com/OpenSourceBrain/L5bPyrCellHayEtAl2011,
NEURON/mod/): NaTa_t, Nap_Et2, K_Tst, K_Pst, SKv3_1, Im, Ih, Ca_HVA, Ca_LVAst, SK_E2,
CaDynamics_E2. They are not
copied into this repository. Run:

    /work/venv-neuron/bin/python tests/data/neuron/make_hay.py /path/to/hay/mod

which compiles them with nrnivmodl in a temporary directory and writes next to this script
`hay_single.npy` (float64, [samples, cases]: the voltage in mV at t = k * stride * dt) and
`hay_single.json` (the settings and, per case, the channel and its conductance).

Every case is one compartment (L = diam = 20 um, cm = 1 uF/cm2) with `pas` (g = 1e-3 S/cm2,
e = -70 mV) and one Hay channel, a +0.12 nA step from 20 to 100 ms and a -0.06 nA step from 150
to 230 ms (IClamps at the centre), v_init = -70 mV (gates at their steady state there), fixed
step dt = 0.025 ms, backward Euler (secondorder = 0), celsius = 34. The reversal potentials
are fixed (ena = 50, ek = -85, eca = 132.458 mV; no mechanism writes a concentration, so NEURON
keeps them), as in neurodiff's channel defaults. Case `spiking` has NaTa_t, SKv3_1 and K_Pst
together (a cell that fires on the depolarising step); case `calcium` adds Ca_HVA, Ca_LVAst,
SK_E2 and the calcium pool CaDynamics_E2 (default parameters) to it: there NEURON computes eca
from cai (Nernst, cao = 2 mM) at every step, and SK_E2's gate follows cai.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODS = ["NaTa_t", "Nap_Et2", "K_Tst", "K_Pst", "SKv3_1", "Im", "Ih", "Ca_HVA", "Ca_LVAst",
        "SK_E2", "CaDynamics_E2"]
DT, TSTOP, STRIDE = 0.025, 250.0, 8
V_INIT, CELSIUS = -70.0, 34.0
PAS_G, PAS_E = 3e-4, -70.0  # S/cm2, mV
STEPS = [(0.12, 20.0, 80.0), (-0.06, 150.0, 80.0)]  # (nA, delay ms, dur ms)
E = {"ena": 50.0, "ek": -85.0, "eca": 132.458}

# (case, [(neurodiff channel, NEURON mechanism, conductance variable, gbar in mS/cm2)])
CASES = [
    ("pas", []),
    ("nata_t", [("nata_t", "NaTa_t", "gNaTa_tbar", 10.0)]),
    ("nap_et2", [("nap_et2", "Nap_Et2", "gNap_Et2bar", 0.3)]),
    ("k_tst", [("k_tst", "K_Tst", "gK_Tstbar", 1000.0)]),
    ("k_pst", [("k_pst", "K_Pst", "gK_Pstbar", 30.0)]),
    ("skv3_1", [("skv3_1", "SKv3_1", "gSKv3_1bar", 30.0)]),
    ("im", [("im", "Im", "gImbar", 1.0)]),
    ("ih", [("ih", "Ih", "gIhbar", 2.0)]),
    ("ca_hva", [("ca_hva", "Ca_HVA", "gCa_HVAbar", 0.3)]),
    ("ca_lva", [("ca_lva", "Ca_LVAst", "gCa_LVAstbar", 5.0)]),
    ("spiking", [("nata_t", "NaTa_t", "gNaTa_tbar", 50.0),
                 ("skv3_1", "SKv3_1", "gSKv3_1bar", 20.0),
                 ("k_pst", "K_Pst", "gK_Pstbar", 1.0)]),
    ("calcium", [("nata_t", "NaTa_t", "gNaTa_tbar", 50.0),
                 ("skv3_1", "SKv3_1", "gSKv3_1bar", 20.0),
                 ("k_pst", "K_Pst", "gK_Pstbar", 1.0),
                 ("ca_hva", "Ca_HVA", "gCa_HVAbar", 1.0),
                 ("ca_lva", "Ca_LVAst", "gCa_LVAstbar", 3.0),
                 ("sk_e2", "SK_E2", "gSK_E2bar", 10.0)]),
]
POOL = {"gamma": 0.05, "decay_ms": 80.0, "depth_um": 0.1, "min_cai_mM": 1e-4}  # .mod defaults


def main(moddir):
    build = tempfile.mkdtemp(prefix="haymod")
    for m in MODS:
        shutil.copy(os.path.join(moddir, m + ".mod"), build)
    nrnivmodl = os.path.join(os.path.dirname(sys.executable), "nrnivmodl")
    subprocess.run([nrnivmodl, "."], cwd=build, check=True, capture_output=True)
    from neuron import h

    h.nrn_load_dll(os.path.join(build, "x86_64", "libnrnmech.so"))
    h.load_file("stdrun.hoc")
    traces = []
    for case, chans in CASES:
        sec = h.Section(name="soma")
        sec.L = sec.diam = 20.0
        sec.nseg, sec.cm, sec.Ra = 1, 1.0, 100.0
        sec.insert("pas")
        sec(0.5).pas.g, sec(0.5).pas.e = PAS_G, PAS_E
        for _, mech, var, g in chans:
            sec.insert(mech)
            setattr(sec(0.5), var + "_" + mech, g * 1e-3)
        pool = case == "calcium"
        if pool:
            sec.insert("CaDynamics_E2")
            cai = h.Vector()
            cai.record(sec(0.5)._ref_cai)
        for ion, e in E.items():
            if hasattr(sec(0.5), ion):
                setattr(sec, ion, e)
        clamps = []
        for amp, delay, dur in STEPS:
            ic = h.IClamp(sec(0.5))
            ic.amp, ic.delay, ic.dur = amp, delay, dur
            clamps.append(ic)
        v = h.Vector()
        v.record(sec(0.5)._ref_v)
        h.dt = DT
        h.steps_per_ms = 1.0 / DT
        h.secondorder = 0
        h.celsius = CELSIUS
        h.finitialize(V_INIT)
        h.continuerun(TSTOP)
        traces.append(np.array(v)[::STRIDE])
        dev = np.abs(traces[-1] - traces[0]).max() if traces else 0.0
        if pool:
            print("calcium: cai from %.2e to %.2e mM" % (min(cai), max(cai)))
        print(case, "V range %.2f %.2f, max |V - V_pas| %.2f mV" % (traces[-1].min(), traces[-1].max(), dev))
        del clamps, v
        h.delete_section(sec=sec)
    data = np.array(traces).T
    np.save(os.path.join(HERE, "hay_single.npy"), data.astype(np.float64))
    meta = {
        "simulator": "NEURON " + h.nrnversion(),
        "mod_files": "ModelDB 139653 (Hay et al. 2011), OpenSourceBrain/L5bPyrCellHayEtAl2011 NEURON/mod",
        "dt_ms": DT, "stride": STRIDE, "tstop_ms": TSTOP, "secondorder": 0,
        "celsius": CELSIUS, "v_init_mV": V_INIT, "shape": list(data.shape),
        "section": {"L_um": 20.0, "diam_um": 20.0, "cm_uF_cm2": 1.0, "nseg": 1},
        "pas": {"g_mS_cm2": PAS_G * 1e3, "e_mV": PAS_E},
        "reversal_mV": E,
        "stimuli": [{"amp_nA": a, "delay_ms": d, "dur_ms": u} for a, d, u in STEPS],
        "cases": [{"name": c, "channels": [{"channel": n, "gbar_mS_cm2": g}
                                           for n, _, _, g in chans],
                   "pool": POOL if c == "calcium" else None} for c, chans in CASES],
        "samples": "row k is t = k * stride * dt; column j is cases[j]",
    }
    with open(os.path.join(HERE, "hay_single.json"), "w") as f:
        json.dump(meta, f, indent=1)
    shutil.rmtree(build)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mod")
