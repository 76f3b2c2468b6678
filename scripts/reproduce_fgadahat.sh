#!/usr/bin/env bash
# Runs (or resumes) every run of the FG-AdaHAT main study that Tables 1 and 2 need -- all methods, the published
# seeds, the joint / independent / random references -- then writes the tables.
#
#   bash scripts/reproduce_fgadahat.sh table1|table2|both
#
# Environment:
#   BENCHMARKS=pmnist,scifar100,combined20   benchmarks to run (a benchmark whose data is missing is reported,
#                                            skipped, and shown as missing in the table)
#   SEEDS=1-3                                 seeds (default: 10 on pmnist, 5 elsewhere, as published)
#   DEVICE=cpu|cuda  JOBS=N  THREADS=N        where and how many runs at once (default: one per core, 1 thread)
#   QUICK=1                                   smoke mode: 3 tasks, 1 epoch, 5000 training samples per task, seed 1;
#                                             writes to runs_quick/ and results/quick/, never over published-size runs
#   DRY_RUN=1                                 list the runs and their state, run nothing
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
WHICH=${1:-both}
BENCHMARKS=${BENCHMARKS:-pmnist,scifar100,combined20}
DEVICE=${DEVICE:-cpu}
JOBS=${JOBS:-$(nproc)}
THREADS=${THREADS:-1}
EXTRA=(device="$DEVICE")
RESULTS=results/fg_adahat
COMPARE=()
if [[ "${QUICK:-0}" == 1 ]]; then
  EXTRA+=(out_dir=runs_quick num_tasks=3 epochs=1 train_subset=5000)
  RESULTS=results/quick/fg_adahat
  SEEDS=${SEEDS:-1}
  COMPARE=(--no-published)  # quick runs are not comparable with the published numbers
fi
DRY=()
[[ "${DRY_RUN:-0}" == 1 ]] && DRY=(--dry-run)

READY=()
IFS=',' read -ra ALL <<< "$BENCHMARKS"
for b in "${ALL[@]}"; do
  if $PY -m scripts.check_data "$b"; then READY+=("$b"); fi
done

for b in "${READY[@]}"; do
  seeds=${SEEDS:-$([[ $b == pmnist ]] && echo 1-10 || echo 1-5)}
  echo "== $b: seeds $seeds"
  $PY -m scripts.sweep --package fg_adahat --study main --benchmarks "$b" --seeds "$seeds" \
      --jobs "$JOBS" --threads "$THREADS" "${DRY[@]}" "${EXTRA[@]}" || echo "some $b runs failed (see the .out files)"
done
[[ "${DRY_RUN:-0}" == 1 ]] && exit 0

TABLE_SEEDS=${SEEDS:-1-10}
$PY -m fg_adahat.make_tables --benchmarks "$BENCHMARKS" --seeds "$TABLE_SEEDS" --out "$RESULTS" \
    --tables "$WHICH" ${COMPARE[@]+"${COMPARE[@]}"} "${EXTRA[@]}"
