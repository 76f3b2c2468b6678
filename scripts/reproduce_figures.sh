#!/usr/bin/env bash
# Draws every paper's figures from run records (runs/, else the committed store results/records/); trains nothing.
#
#   bash scripts/reproduce_figures.sh
#
# Environment:
#   SEEDS=1-3        seeds drawn (default 1-3, the seeds this repository has run; SEEDS= for each study's own)
#   OUT_DIR=runs     root of the run records
# Writes results/<paper>/figures/<name>.png and .pdf and a README.md per paper (the command, the commits of the
# runs); each figure says on it which of its runs are missing, and each command ends with the sweeps that make them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
SEEDS=${SEEDS-1-3}
ARGS=()
[[ -n "$SEEDS" ]] && ARGS+=(--seeds "$SEEDS")
[[ -n "${OUT_DIR:-}" ]] && ARGS+=(out_dir="$OUT_DIR")
for paper in adahat fg_adahat amnesiachat; do
  echo "== $paper"
  $PY -m "$paper.make_figures" "${ARGS[@]}"
done
