#!/usr/bin/env bash
# The papers' claims at (near) paper scale on one large GPU, in about 8 minutes: every paper spec at
# its paper scale (the papers' models, tasks and sequence lengths), with the budget of every run cut
# to UPDATES updates so that the five specs fit, many runs side by side on the one GPU. Writes the
# sweeps, their archived outputs and a results page under OUT (default $OUT, else gpu-claims/).
#
#   bash benchmarks/gpu_claims.sh                          # on a machine with CUDA
#   DEVICE=cpu DRY_RUN=1 bash benchmarks/gpu_claims.sh     # list the runs without a GPU
#
# The embedded 5,000-digit MNIST is allowed (--allow-subset) unless MEMENVS_DATA holds full MNIST;
# tasks whose data is not there (the aux paper's StanfordDogs and DBpedia) are left out
# (--skip-missing-data), and the results page says which data each run read and which tasks did not run. A claim's verdict at this budget is about this
# budget: the papers train 10-100x longer. Not yet run on a GPU: UPDATES (default 300) and WORKERS are
# estimates; the per-spec start times it prints calibrate them (SPECS="kaf aux" runs a subset).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-gpu-claims}
UPDATES=${UPDATES:-300}
WORKERS=${WORKERS:-12}
SEEDS=${SEEDS:-3}
DRY=${DRY_RUN:+--dry-run}
mkdir -p "$OUT"
for spec in ${SPECS:-chrono glstm kaf aux nru}; do
  echo "=== $spec $(date +%T)"
  "$BIN/memory-bench" suite "$spec" --scale paper --device "$DEVICE" --allow-subset --skip-missing-data --workers "$WORKERS" \
    --set "supervised.updates=$UPDATES" --set "supervised.eval_every=$((UPDATES / 4))" --set "seeds=$SEEDS" \
    --out "$OUT/$spec-paper" --no-progress $DRY || echo "=== $spec: exit status $? (see $OUT/$spec-paper)"
done
if [ -z "$DRY" ]; then
  "$BIN/memory-bench" results "$OUT"/*-paper --archive "$OUT/results" --out "$OUT/results.md"
fi
