#!/usr/bin/env bash
# neurodiff's DLAG on V1/V2 under mbrila's co-smoothing protocol (BENCHMARKS.md, "latent: V1/V2
# co-smoothing side by side with mbrila"): for each of mbrila's three train/test partitions
# (300 training and 50 test trials of the 400; `benches/mbrila/v1v2.py prepare` writes them
# and the three held-out-neuron masks), fit DLAG on the training trials and score held-out-neuron
# PSTH RMSE on the test trials with mbrila's masks. Usage:
#   python3 benches/mbrila/v1v2.py prepare --out out/v1v2_mbrila
#   examples/latent_v1v2_mbrila.sh out/v1v2_mbrila
#   python3 benches/mbrila/v1v2.py table --out out/v1v2_mbrila
# ACROSS / WITHIN / MAXIT / AR choose the model (default: mbrila's notebook, 2 across + 2,2
# within; our default AR(4) lift).
set -euo pipefail
BIN=${BIN:-target/release/neurodiff}
OUT=${1:-out/v1v2_mbrila}
ACROSS=${ACROSS:-2}
WITHIN=${WITHIN:-2,2}
MAXIT=${MAXIT:-500}
AR=${AR:-4}
for s in 0 1 2; do
  d="$OUT/split$s"
  "$BIN" latent fit --method dlag --data "$d/train_v1.npy,$d/train_v2.npy" --across "$ACROSS" \
    --within "$WITHIN" --ar-order "$AR" --test-frac 0 --max-iter "$MAXIT" -q -o "$d/fit"
  "$BIN" latent eval --fit "$d/fit/latent.json" --data "$d/test_v1.npy,$d/test_v2.npy" \
    --all-trials --holdout-file "$d/masks.json" -q -o "$d/eval"
done
