"""Reference traces from NEURON for neurodiff's cable solver (tests/integration/cell.rs).

Run:  python3 -m venv /work/venv-neuron && /work/venv-neuron/bin/pip install neuron numpy
      /work/venv-neuron/bin/python tests/data/neuron/make_reference.py

Writes next to this script, for each case, `<case>.npy` (float64, [samples, records]: the
voltage in mV at t = k dt, k = 0 .. steps, every `stride`-th step; with a voltage clamp, the
clamp current `SEClamp.i` in nA as one more, last column) and `<case>.json` (the settings, so
that the Rust test builds the same cell). Fixed step dt = 0.025 ms, backward Euler
(h.secondorder = 0) unless the case says otherwise, celsius = 6.3, v_init = -65 mV,
h.usetable_hh = 0 (hh's rates from their formulas instead of its default lookup table with 1 mV
steps). Geometry is given by L and diam (cylinders, no 3-D points), every child attached to its
parent's 1-end.

Cases:
  hh_single  - one compartment (L = diam = 20 um) with NEURON's `hh`, IClamp at the centre.
  branched   - a soma with `hh` and four dendrites with `pas` (g = 1e-3 S/cm2, e = -65 mV),
               two of them meeting at the soma's 1-end with a third joining the first
               dendrite's 1-end with a fourth (junctions of three cables), IClamp on the soma.
  hh_single_cn - hh_single with h.secondorder = 2 (Crank-Nicolson for v, gates staggered).
  hh_vclamp  - the hh_single compartment under an SEClamp at its centre (rs 1 MOhm; -70 mV for
               5 ms, 0 mV for 10 ms, -65 mV for 10 ms, then off): v and the clamp current.
  branched_vclamp - the branched cell under an SEClamp on dend0(0.3) (rs 5 MOhm; -65 mV for
               2 ms, 0 mV for 15 ms, -75 mV for 8 ms, then off; the soma spikes during the
               step): v at the five records and the clamp current.
"""

import json
import os

import numpy as np
from neuron import h

h.load_file("stdrun.hoc")

HERE = os.path.dirname(os.path.abspath(__file__))
DT = 0.025


def run(case, sections, stim, records, tstop, stride, vclamp=None, secondorder=0):
    """sections: list of dicts (name, parent, L, diam, nseg, mech); stim: (section, x, amp nA,
    delay ms, dur ms) or None; records: list of (section, x); vclamp: None or a dict (section,
    x, rs MOhm, amp1..3 mV, dur1..3 ms) for an SEClamp whose current is recorded last."""
    secs = {}
    for s in sections:
        sec = h.Section(name=s["name"])
        sec.L, sec.diam, sec.nseg = s["L"], s["diam"], s["nseg"]
        sec.cm, sec.Ra = s["cm"], s["Ra"]
        if s["mech"] == "hh":
            sec.insert("hh")
        else:
            sec.insert("pas")
            for seg in sec:
                seg.pas.g = 1e-3
                seg.pas.e = -65.0
        if s["parent"] is not None:
            sec.connect(secs[s["parent"]](1), 0)
        secs[s["name"]] = sec
    if stim is not None:
        ic = h.IClamp(secs[stim[0]](stim[1]))
        ic.amp, ic.delay, ic.dur = stim[2], stim[3], stim[4]
    vecs = []
    for name, x in records:
        v = h.Vector()
        v.record(secs[name](x)._ref_v)
        vecs.append(v)
    if vclamp is not None:
        vc = h.SEClamp(secs[vclamp["section"]](vclamp["x"]))
        for k in ("rs", "amp1", "amp2", "amp3", "dur1", "dur2", "dur3"):
            setattr(vc, k, vclamp[k])
        i = h.Vector()
        i.record(vc._ref_i)
        vecs.append(i)
    h.dt = DT
    h.steps_per_ms = 1.0 / DT
    h.secondorder = secondorder
    h.celsius = 6.3
    h.usetable_hh = 0  # exact rate functions, not hh.mod's 1-mV lookup table
    h.finitialize(-65.0)
    h.continuerun(tstop)
    data = np.array([np.array(v) for v in vecs]).T  # [samples, records]
    data = data[::stride]
    np.save(os.path.join(HERE, case + ".npy"), data.astype(np.float64))
    meta = {
        "simulator": "NEURON " + h.nrnversion(),
        "dt_ms": DT,
        "stride": stride,
        "tstop_ms": tstop,
        "secondorder": secondorder,
        "usetable_hh": 0,
        "celsius": 6.3,
        "v_init_mV": -65.0,
        "shape": list(data.shape),
        "sections": sections,
        "hh": {"gnabar": 0.12, "gkbar": 0.036, "gl": 0.0003, "el": -54.3,
               "ena": 50.0, "ek": -77.0, "units": "S/cm2, mV"},
        "pas": {"g": 1e-3, "e": -65.0, "units": "S/cm2, mV"},
        "stim": None if stim is None else {"section": stim[0], "x": stim[1], "amp_nA": stim[2],
                                           "delay_ms": stim[3], "dur_ms": stim[4]},
        "records": [{"section": n, "x": x} for n, x in records],
        "vclamp": None if vclamp is None else dict(vclamp, units="MOhm, mV, ms; the last "
                                                  "column is SEClamp.i, nA"),
        "samples": "row k is t = k * stride * dt",
    }
    with open(os.path.join(HERE, case + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    for sec in secs.values():
        h.delete_section(sec=sec)
    print(case, data.shape, "max", data.max(axis=0), "min", data.min(axis=0))


def sec(name, parent, L, diam, nseg, mech, Ra=100.0, cm=1.0):
    return dict(name=name, parent=parent, L=L, diam=diam, nseg=nseg, mech=mech, Ra=Ra, cm=cm)


run(
    "hh_single",
    [sec("soma", None, 20.0, 20.0, 1, "hh")],
    ("soma", 0.5, 0.1, 5.0, 40.0),
    [("soma", 0.5)],
    tstop=60.0,
    stride=1,
)

run(
    "branched",
    [
        sec("soma", None, 20.0, 20.0, 1, "hh"),
        sec("dend0", "soma", 200.0, 2.0, 11, "pas"),
        sec("dend1", "soma", 150.0, 1.0, 7, "pas"),
        sec("dend2", "dend0", 150.0, 1.0, 7, "pas"),
        sec("dend3", "dend0", 100.0, 1.5, 5, "pas"),
    ],
    ("soma", 0.5, 0.5, 5.0, 30.0),
    [("soma", 0.5), ("dend0", 0.5), ("dend1", 0.95), ("dend2", 0.95), ("dend3", 0.5)],
    tstop=50.0,
    stride=2,
)

run(
    "hh_single_cn",
    [sec("soma", None, 20.0, 20.0, 1, "hh")],
    ("soma", 0.5, 0.1, 5.0, 40.0),
    [("soma", 0.5)],
    tstop=60.0,
    stride=1,
    secondorder=2,
)

run(
    "hh_vclamp",
    [sec("soma", None, 20.0, 20.0, 1, "hh")],
    None,
    [("soma", 0.5)],
    tstop=30.0,
    stride=1,
    vclamp=dict(section="soma", x=0.5, rs=1.0, amp1=-70.0, dur1=5.0, amp2=0.0, dur2=10.0,
                amp3=-65.0, dur3=10.0),
)

run(
    "branched_vclamp",
    [
        sec("soma", None, 20.0, 20.0, 1, "hh"),
        sec("dend0", "soma", 200.0, 2.0, 11, "pas"),
        sec("dend1", "soma", 150.0, 1.0, 7, "pas"),
        sec("dend2", "dend0", 150.0, 1.0, 7, "pas"),
        sec("dend3", "dend0", 100.0, 1.5, 5, "pas"),
    ],
    None,
    [("soma", 0.5), ("dend0", 0.5), ("dend1", 0.95), ("dend2", 0.95), ("dend3", 0.5)],
    tstop=30.0,
    stride=2,
    vclamp=dict(section="dend0", x=0.3, rs=5.0, amp1=-65.0, dur1=2.0, amp2=0.0, dur2=15.0,
                amp3=-75.0, dur3=8.0),
)
