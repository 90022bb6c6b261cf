"""V1/V2 co-smoothing, neurodiff against mbrila on mbrila's own protocol.

mbrila's V1/V2 notebooks (BRAINML-GT/MBRILA, `notebooks/v1v2/demo_*.ipynb`) score held-out-neuron
co-smoothing PSTH RMSE on the test split of three train/val/test partitions of the 400 trials
(300/50/50, `numpy.random.default_rng(split_seed).permutation`, split seeds 0, 1, 2), each
averaged over three held-out-neuron masks (20 % of each region's neurons,
`default_rng(holdout_seed).choice`, holdout seeds 0, 1, 2). This script reproduces that protocol
exactly, so that both tools are scored on the same trials and the same hidden neurons:

    python benches/mbrila/v1v2.py prepare --out out/v1v2_mbrila
        writes, per split seed s, out/v1v2_mbrila/split{s}/{train,test}_{v1,v2}.npy and
        masks.json (per mask, per region, the hidden neurons, 0-based within the region)
    examples/latent_v1v2_mbrila.sh out/v1v2_mbrila
        fits neurodiff's DLAG on each training split and evaluates it on the test split
        with these masks (`latent eval --holdout-file`)
    python benches/mbrila/v1v2.py mbrila --out out/v1v2_mbrila --mbrila-src PATH
        runs mbrila's DLAG-SSM with the notebook's settings (2 across + 2 within latents,
        AR(2) lift, pCCA initialisation, 500 iterations, float64) on the same splits; PATH is a
        checkout of mbrila's repository (for `examples/v1v2/v1v2_common.py`, which is not in
        the wheel). mbrila itself comes from the Python package index (mbrila 0.1.0, torch).
    python benches/mbrila/v1v2.py table --out out/v1v2_mbrila
        prints the side-by-side table (Markdown).

mbrila 0.1.0 declares Python 3.12; on 3.11 its one 3.12-only line (`class Registry[T]:`, PEP 695)
must be rewritten to `typing.Generic` after installation: `patch_registry` does this and says so.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

SPLIT_SEEDS = [0, 1, 2]
HOLDOUT_SEEDS = [0, 1, 2]
HOLDOUT_FRAC = 0.20
NUM_TRAIN, NUM_VAL, NUM_TEST = 300, 50, 50
DATA = Path(__file__).resolve().parents[2] / "data" / "v1v2"


def load() -> tuple[np.ndarray, np.ndarray]:
    v1 = np.load(DATA / "v1.npy")
    v2 = np.load(DATA / "v2.npy")
    if v1.shape[:2] != v2.shape[:2]:
        raise SystemExit(f"v1 {v1.shape} and v2 {v2.shape} disagree on trials × bins")
    return v1, v2


def split(n_trials: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mbrila's `split_indices` (examples/v1v2/v1v2_common.py)."""
    perm = np.random.default_rng(seed).permutation(n_trials)
    return (
        perm[:NUM_TRAIN],
        perm[NUM_TRAIN : NUM_TRAIN + NUM_VAL],
        perm[NUM_TRAIN + NUM_VAL : NUM_TRAIN + NUM_VAL + NUM_TEST],
    )


def masks(dims: tuple[int, ...], seed: int) -> list[list[int]]:
    """mbrila's held-out neurons for one holdout seed (`co_smoothing_rmse`), within each region."""
    rng = np.random.default_rng(seed)
    out = []
    for n in dims:
        k = max(1, round(HOLDOUT_FRAC * n))
        out.append(sorted(int(i) for i in rng.choice(int(n), size=k, replace=False)))
    return out


def prepare(out: Path) -> None:
    v1, v2 = load()
    for s in SPLIT_SEEDS:
        d = out / f"split{s}"
        d.mkdir(parents=True, exist_ok=True)
        tr, _, te = split(v1.shape[0], s)
        for name, arr in (("v1", v1), ("v2", v2)):
            np.save(d / f"train_{name}.npy", arr[tr].astype(np.float64))
            np.save(d / f"test_{name}.npy", arr[te].astype(np.float64))
        m = [masks((v1.shape[2], v2.shape[2]), h) for h in HOLDOUT_SEEDS]
        (d / "masks.json").write_text(json.dumps(m))
        print(f"split {s}: {len(tr)} training and {len(te)} test trials -> {d}")


def patch_registry() -> None:
    """mbrila 0.1.0's only 3.12-only syntax, rewritten for 3.11 in the installed copy."""
    import importlib.util

    spec = importlib.util.find_spec("mbrila")
    if spec is None or spec.origin is None:
        raise SystemExit("mbrila is not installed (pip install --ignore-requires-python mbrila==0.1.0)")
    reg = Path(spec.origin).parent / "core" / "registry.py"
    text = reg.read_text()
    if "class Registry[T]:" in text:
        text = text.replace("class Registry[T]:", "class Registry(Generic[T]):")
        text = re.sub(r"^(from __future__ import annotations\n)", r"\1from typing import Generic, TypeVar\nT = TypeVar('T')\n", text, count=1, flags=re.M)
        reg.write_text(text)
        print(f"patched {reg}: `class Registry[T]` -> `class Registry(Generic[T])` (Python 3.11)")


def run_mbrila(out: Path, src: Path, iters: int, splits: list[int]) -> None:
    if sys.version_info < (3, 12):
        patch_registry()
    sys.path.insert(0, str(src / "examples" / "v1v2"))
    sys.path.insert(0, str(src / "examples" / "synthetic"))
    import torch
    import v1v2_common as v1v2
    from mbrila import DLAG, KalmanEMEngine, LatentSpec, MOSEKernel
    from mbrila.core.data import MultiRegionData

    v1, v2 = load()
    y_all = torch.tensor(np.concatenate([v1, v2], axis=2), dtype=torch.float64)
    dims = (v1.shape[2], v2.shape[2])
    T = v1.shape[1]
    path = out / "mbrila.json"
    rows = [r for r in json.loads(path.read_text())["mbrila"] if r["split_seed"] not in splits] if path.exists() else []
    for s in splits:
        torch.manual_seed(0)
        tr, _, te = split(v1.shape[0], s)
        train = MultiRegionData(y=y_all[torch.from_numpy(tr)], y_dims=dims, bin_width=1.0)
        test = MultiRegionData(y=y_all[torch.from_numpy(te)], y_dims=dims, bin_width=1.0)
        # The notebook's settings (notebooks/v1v2/demo_dlag_ssm.ipynb).
        engine = KalmanEMEngine(lr=1e-2, lr_min=1e-3, weight_decay=1e-3, cosine_anneal=False, log_every=0)
        model = DLAG(
            latent_spec=LatentSpec(n_across=2, n_within=(2, 2)),
            y_dims=dims,
            T=T,
            kernel_factory_across=lambda: MOSEKernel(num_regions=2, init_sigma=0.1),
            kernel_factory_within=lambda: MOSEKernel(num_regions=1, init_sigma=0.1),
            engine="kalman",
            engine_override=engine,
            lag_across=2,
            lag_within=2,
            device="cpu",
            dtype=torch.float64,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        model.initialize_from_data(train, mode="pcca")
        v1v2.fit_with_elbo_tracking(
            model=model, train_data=train, engine=engine, num_iters=iters, check_every=10, tol=1e-8
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        cs = v1v2.co_smoothing_eval_multiseed(
            model=model, data=test, y_dims=dims, holdout_frac=HOLDOUT_FRAC, holdout_seeds=HOLDOUT_SEEDS
        )
        pm = cs["per_region_mean"]
        # The masks must be the ones `prepare` wrote for neurodiff.
        ours = masks(dims, HOLDOUT_SEEDS[0])
        theirs = [sorted(int(i) - off for i in h) for h, off in zip(cs["holdout_indices_plot"], (0, dims[0]))]
        if ours != theirs:
            raise SystemExit(f"split {s}: mbrila's first mask {theirs} differs from ours {ours}")
        rows.append(
            {
                "split_seed": s,
                "psth_rmse": [pm[0][1], pm[1][1]],
                "single_trial_rmse": [pm[0][0], pm[1][0]],
                "wall_s": wall,
                "cpu_s": cpu,
                "iterations": iters,
                "threads": torch.get_num_threads(),
            }
        )
        print(f"mbrila split {s}: PSTH RMSE V1 {pm[0][1]:.4f} V2 {pm[1][1]:.4f}, {wall:.1f} s")
        # Written after every split: a long run stopped early keeps what it finished.
        path.write_text(json.dumps({"mbrila": rows, "torch": torch.__version__}, indent=1))


# mbrila's own figures for DLAG-SSM on this protocol, per split seed (PSTH RMSE V1, V2), as
# printed in its notebook `notebooks/v1v2/demo_dlag_ssm.ipynb` (run on a GPU).
NOTEBOOK = {0: (0.0595577258997021, 0.03800439398139179), 1: (0.05517872021873887, 0.04427186539264193), 2: (0.059310992381697424, 0.04532943856217225)}


def user_cpu(path: Path) -> float | None:
    """User CPU seconds from a `/usr/bin/time -v` report, if there is one."""
    if not path.exists():
        return None
    m = re.search(r"User time \(seconds\): ([0-9.]+)", path.read_text())
    return float(m.group(1)) if m else None


def table(out: Path) -> None:
    m = json.loads((out / "mbrila.json").read_text())["mbrila"] if (out / "mbrila.json").exists() else []
    print("| split seed | neurodiff PSTH RMSE V1 / V2 | mbrila here V1 / V2 | mbrila notebook V1 / V2 | neurodiff wall / CPU | mbrila here wall / CPU |")
    print("|---|---|---|---|---|---|")
    cols: list[list] = [[], [], []]
    for s in SPLIT_SEEDS:
        d = out / f"split{s}"
        e = json.loads((d / "eval" / "eval.json").read_text())
        f = json.loads((d / "fit" / "latent.json").read_text())
        o = e["cosmooth"]["psth_rmse"]
        row = next((r for r in m if r["split_seed"] == s), None)
        t = row["psth_rmse"] if row else None
        nb = NOTEBOOK[s]
        cols[0].append(o)
        cols[2].append(nb)
        if t:
            cols[1].append(t)
        cpu = user_cpu(d / "fit_time.txt")
        ours_t = f"{f['wall_s_total']:.0f} s / {cpu:.0f} s" if cpu else f"{f['wall_s_total']:.0f} s / —"
        ts = f"{t[0]:.4f} / {t[1]:.4f}" if t else "—"
        tw = f"{row['wall_s']:.0f} s / {row.get('cpu_s', float('nan')):.0f} s" if row else "—"
        print(f"| {s} | {o[0]:.4f} / {o[1]:.4f} | {ts} | {nb[0]:.4f} / {nb[1]:.4f} | {ours_t} | {tw} |")
    mean = [f"{np.mean(c, axis=0)[0]:.4f} / {np.mean(c, axis=0)[1]:.4f}" if c else "—" for c in cols]
    print(f"| mean | **{mean[0]}** | {mean[1]} | {mean[2]} | | |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["prepare", "mbrila", "table"])
    p.add_argument("--out", type=Path, default=Path("out/v1v2_mbrila"))
    p.add_argument("--mbrila-src", type=Path, help="a checkout of github.com/BRAINML-GT/MBRILA")
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--splits", default="0,1,2", help="split seeds to run (mbrila: 0,1,2)")
    a = p.parse_args()
    if a.command == "prepare":
        prepare(a.out)
    elif a.command == "mbrila":
        if a.mbrila_src is None:
            raise SystemExit("--mbrila-src is required (a checkout of mbrila's repository)")
        run_mbrila(a.out, a.mbrila_src, a.iters, [int(x) for x in a.splits.split(",")])
    else:
        table(a.out)


if __name__ == "__main__":
    main()
