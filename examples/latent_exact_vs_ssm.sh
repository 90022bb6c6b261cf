#!/usr/bin/env bash
# The exact dense-GP engine against the state-space engine (AR(4) and AR(8) lifts) on the same
# synthetic draws (BENCHMARKS.md, "latent: exact engine, LDS"): 2 regions × 30 neurons, 40
# trials × 60 bins (short, so that the O((T·latents)³) exact engine stays cheap), two
# across-region RBF latents (timescales 5 and 8 bins, delays 2.3 and −1.6 bins in region 1),
# one within-region latent per region (3 bins), SNR 1; seeds 0, 1, 2; DLAG 2 across + 1,1
# within on all trials. `latent eval --truth` gives each fit's delay-recovery RMSE.
set -euo pipefail
BIN=${BIN:-target/release/neurodiff}
OUT=${OUT:-out/latent_engines}
for seed in 0 1 2; do
  "$BIN" latent synth --trials 40 --bins 60 --neurons 30,30 --delays "0,2.3;0,-1.6" \
    --timescales 5,8 --within 1,1 --within-timescale 3 --snr 1 --seed "$seed" -o "$OUT/data$seed" >/dev/null
  data="$OUT/data$seed/region0.npy,$OUT/data$seed/region1.npy"
  for cfg in "ssm 4" "ssm 8" "exact 4"; do
    set -- $cfg
    o="$OUT/fit$seed-$1-ar$2"
    "$BIN" latent fit --method dlag --engine "$1" --ar-order "$2" --data "$data" --across 2 \
      --within 1,1 --test-frac 0 --max-iter 150 -q -o "$o"
    "$BIN" latent eval --fit "$o/latent.json" --data "$data" --truth "$OUT/data$seed/truth.json" \
      --all-trials --cosmooth-frac 0 -q -o "$o/eval"
    python3 - "$o" "$cfg" <<'PY'
import json, sys
f = json.load(open(sys.argv[1] + "/latent.json")); e = json.load(open(sys.argv[1] + "/eval/eval.json"))
ts = " ".join(f"{p['timescale']:.2f}" for p in f["processes"])
se = " ".join(f"{s:.3f}" for p in f["processes"] if p["kind"] == "across" for s in p["delay_se"][1:])
print(f"{sys.argv[2]:8s} delay RMSE {e['delay_rmse']:.4f}  s.e. {se}  timescales {ts}  "
      f"{f['iterations']} it  {f['wall_s']:.1f} s")
PY
  done
done
