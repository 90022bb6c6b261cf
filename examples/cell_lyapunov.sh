#!/usr/bin/env bash
# The largest Lyapunov exponent of a Hodgkin–Huxley point cell (one compartment, L = diam =
# 20 µm, NEURON's hh) against the amplitude of a constant current (batch of five: 0, 0.02,
# 0.05, 0.1, 0.3 nA), by forward-mode sensitivities through the solver
# (`neurodiff cell --lyapunov`): negative at rest (the decay rate of the slowest mode), about 0
# while the cell fires periodically (a limit cycle). 2 s at dt 0.025 ms, the first 0.5 s left
# out; writes out/cell_lyapunov/lyapunov.json.
set -euo pipefail
BIN=${BIN:-target/release/neurodiff}
OUT=${OUT:-out/cell_lyapunov}
mkdir -p "$OUT"
cat > "$OUT/hh.toml" <<'TOML'
dt = 0.025          # ms
duration = 2000.0   # ms
celsius = 6.3       # °C
v_init = -65.0      # mV

[[branches]]
name = "soma"
group = "soma"
length = 20.0       # µm
radius = 10.0       # µm

[passive.all]
cm = 1.0            # µF/cm²
ra = 100.0          # Ω·cm

[[channels]]
name = "hh_na"
groups = ["soma"]

[[channels]]
name = "hh_k"
groups = ["soma"]

[[channels]]
name = "leak"
groups = ["soma"]

[[stimuli]]
branch = "soma"
x = 0.5
amp = [0.0, 0.02, 0.05, 0.1, 0.3]   # nA, one per batch element
delay = 0.0         # ms
dur = 1e9           # ms

[[record]]
branch = "soma"
x = 0.5
TOML
"$BIN" cell --config "$OUT/hh.toml" --lyapunov --transient 500 --out "$OUT/lyapunov.json"
