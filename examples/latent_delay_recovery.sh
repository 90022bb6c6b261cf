#!/usr/bin/env bash
# Delay recovery of DLAG on synthetic data drawn from exact GPs (the numbers in BENCHMARKS.md,
# "latent: DLAG delay recovery"): 2 regions × 100 neurons, 100 trials × 200 bins, two
# across-region latents (RBF, timescales 5 and 8 bins, delays 2.3 and −1.6 bins in region 1),
# one within-region latent per region, SNR 1; three seeds. Prints one line per seed with the
# estimated delays and the wall time, and the RMSE over all delays and seeds.
set -euo pipefail
BIN=${BIN:-target/release/neurodiff}
OUT=${OUT:-out/latent_recovery}
AR=${AR:-4}
ENGINE=${ENGINE:-ssm}   # ssm or exact (the dense GP; AR is then unused)
SEEDS=${SEEDS:-0 1 2}
MAXIT=${MAXIT:-150}
sq=0; n=0
for seed in $SEEDS; do
  "$BIN" latent synth --trials 100 --bins 200 --neurons 100,100 --delays "0,2.3;0,-1.6" \
    --timescales 5,8 --within 1,1 --within-timescale 3 --snr 1 --seed "$seed" -o "$OUT/data$seed" >/dev/null
  "$BIN" latent fit --method dlag --data "$OUT/data$seed/region0.npy,$OUT/data$seed/region1.npy" \
    --across 2 --within 1,1 --ar-order "$AR" --engine "$ENGINE" --test-frac 0 --max-iter "$MAXIT" -q -o "$OUT/fit$seed"
  line=$(python3 - "$OUT/fit$seed/latent.json" <<'PY'
import json, sys, itertools
d = json.load(open(sys.argv[1]))
est = [p["delays"][1] for p in d["processes"] if p["kind"] == "across"]
true = [2.3, -1.6]
# Latents are exchangeable: match estimated to true by the best permutation.
best = min(itertools.permutations(est), key=lambda e: sum((a - b) ** 2 for a, b in zip(e, true)))
print(" ".join(f"{a - b:.6f}" for a, b in zip(best, true)), f"{d['wall_s']:.1f}", d["iterations"],
      " ".join(f"{p['timescale']:.3f}" for p in d["processes"]))
PY
)
  echo "seed $seed: errors, wall s, iterations, timescales: $line"
  for e in $(echo "$line" | cut -d' ' -f1-2); do sq=$(python3 -c "print($sq + ($e)**2)"); n=$((n + 1)); done
done
python3 -c "import math; print(f'delay RMSE over {$n} delays: {math.sqrt($sq / $n):.4f} bins')"
