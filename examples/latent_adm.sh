#!/usr/bin/env bash
# ADM against DLAG on data with a time-varying delay (BENCHMARKS.md, "latent: ADM"): 2 regions
# × 30 neurons, 60 trials × 100 bins, one across-region RBF latent (timescale 4 bins) delayed in
# region 1 by 2 + 1.5·sin(2π t/99) bins, SNR 2; seeds 0, 1, 2; ADM (--delay-basis 4) and DLAG,
# 1 across latent, default split (20 % of trials held out). The trajectory RMSE of DLAG is that
# of its constant delay against the true trajectory.
set -euo pipefail
BIN=${BIN:-target/release/neurodiff}
OUT=${OUT:-out/latent_adm}
for seed in 0 1 2; do
  "$BIN" latent synth --neurons 30,30 --delays 0,2 --delay-sway 0,1.5 --timescales 4 \
    --within 0,0 --trials 60 --bins 100 --snr 2 --seed "$seed" -o "$OUT/data$seed" >/dev/null
  data="$OUT/data$seed/region0.npy,$OUT/data$seed/region1.npy"
  for m in adm dlag; do
    o="$OUT/fit$seed-$m"
    "$BIN" latent fit --method "$m" --across 1 --data "$data" -q -o "$o"
    python3 - "$o" "$OUT/data$seed/truth.json" "$m" <<'PY'
import json, math, sys
f = json.load(open(sys.argv[1] + "/latent.json")); t = json.load(open(sys.argv[2]))["delay_paths"][0]
p = f["processes"][0]
path = p.get("delay_path") or [[d] * len(t[0]) for d in p["delays"]]
e = [(a1 - a0) - (b1 - b0) for a0, a1, b0, b1 in zip(path[0], path[1], t[0], t[1])]
print(f"{sys.argv[3]:5s} trajectory RMSE {math.sqrt(sum(x * x for x in e) / len(e)):.3f} bins  "
      f"train LL {f['loglik'][-1]:.1f}  held-out LL/trial {f['test_loglik_per_trial']:.1f}  "
      f"{f['iterations']} it  {f['wall_s']:.1f} s")
PY
  done
done
