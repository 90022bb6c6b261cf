"""Delay recovery, mbrila's DLAG-SSM on neurodiff's synthetic draws (the same data for both tools).

    BIN=target/release/neurodiff SEEDS=0 examples/latent_delay_recovery.sh   # writes out/latent_recovery/data0
    python benches/mbrila/synthetic.py --data out/latent_recovery/data0 --mbrila-src PATH

fits mbrila's DLAG-SSM (the settings of its `examples/synthetic/demo_dlag_ssm.py`: AR(2) lift,
MOSE kernels, pCCA initialisation, AdamW with cosine learning rate, float64, CPU) with the
latent counts of truth.json (across latents and within latents per region) to the regions of
`--data` (region0.npy, region1.npy, … as `neurodiff latent synth` writes them) and prints the
delay-recovery RMSE against truth.json (bins; fitted latents matched to true ones by the best
permutation, delays relative to region 0), the wall and CPU time, as one JSON line (also
written to DATA/mbrila.json). PATH is a checkout of mbrila's repository (for the examples'
helpers, which are not in the wheel); mbrila itself comes from the Python package index
(see v1v2.py for the one-line patch it needs on Python 3.11).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--mbrila-src", type=Path, required=True)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--lag", type=int, default=2)
    a = p.parse_args()
    if sys.version_info < (3, 12):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import v1v2

        v1v2.patch_registry()
    sys.path.insert(0, str(a.mbrila_src / "examples" / "synthetic"))
    import demo_common
    import torch
    from mbrila import DLAG, KalmanEMEngine, LatentSpec, MOSEKernel
    from mbrila.core.data import MultiRegionData

    truth = json.loads((a.data / "truth.json").read_text())
    true_delays = np.asarray(truth["delays"], dtype=float)  # [latent][region]
    regions = sorted(a.data.glob("region*.npy"), key=lambda q: int(q.stem[6:]))
    ys = [np.load(q) for q in regions]
    dims = tuple(int(y.shape[2]) for y in ys)
    T = int(ys[0].shape[1])
    n_across = true_delays.shape[0]
    # Columns of each region's loadings: the across latents, then the region's within latents.
    within = [len(c[0]) - n_across for c in truth["obs"]["c"]]
    if len(set(within)) != 1:
        raise SystemExit(f"mbrila's LatentSpec wants one within count for all regions; truth has {within}")
    y = torch.tensor(np.concatenate(ys, axis=2), dtype=torch.float64)
    data = MultiRegionData(y=y, y_dims=dims, bin_width=1.0)
    torch.manual_seed(0)
    engine = KalmanEMEngine(lr=1e-2, lr_min=1e-3, weight_decay=1e-2, log_every=0)
    model = DLAG(
        latent_spec=LatentSpec(n_across=n_across, n_within=(within[0],) * len(ys)),
        y_dims=dims,
        T=T,
        kernel_factory_across=lambda: MOSEKernel(num_regions=len(ys), init_sigma=0.1),
        kernel_factory_within=lambda: MOSEKernel(num_regions=1, init_sigma=0.1),
        engine="kalman",
        engine_override=engine,
        lag_across=a.lag,
        lag_within=a.lag,
        device="cpu",
        dtype=torch.float64,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    model.initialize_from_data(data, mode="pcca")
    model.fit(data, max_iter=a.iters, tol=1e-8)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    est = demo_common.extract_delay(model, T)[0]  # (R-1, n_across), region 0 dropped
    rel_true = true_delays[:, 1:] - true_delays[:, :1]  # [latent][region-1]
    best = min(
        itertools.permutations(range(n_across)),
        key=lambda perm: float(np.sum((est[:, list(perm)].T - rel_true) ** 2)),
    )
    err = est[:, list(best)].T - rel_true
    out = {
        "tool": "mbrila 0.1.0 DLAG-SSM",
        "data": str(a.data),
        "lag": a.lag,
        "iterations": a.iters,
        "delays_fitted": est[:, list(best)].T.tolist(),
        "delays_true": rel_true.tolist(),
        "delay_rmse": float(np.sqrt(np.mean(err**2))),
        "wall_s": wall,
        "cpu_s": cpu,
        "threads": torch.get_num_threads(),
    }
    (a.data / "mbrila.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
