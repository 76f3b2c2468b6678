#!/usr/bin/env bash
# Runs (or resumes) the AmnesiacHAT study -- every method with its retrain and original references -- then writes
# the tables (main table; with PARTS also the ablation, hyperparameter and pruning studies).
#
#   bash scripts/reproduce_amnesiachat.sh [main|ablation|hparams|pruning|all]
#
# Environment:
#   COLUMNS_=pmnist-5-til,...   main-table columns to run: pmnist-5-til pmnist-5-dil rmnist-5-til rmnist-5-dil
#                               scifar10-5-til pmnist-20-til combined5-5-til (default: all; a column whose data is
#                               missing is reported, skipped, and shown as missing in the table)
#   SEEDS=1-5                   seeds (default: the published 5)
#   DEVICE=cpu|cuda  JOBS=N  THREADS=N
#   JOBS_PER_GPU=K              with DEVICE=cuda: K runs at once on every visible GPU (instead of JOBS)
#   QUICK=1                     smoke mode: 1 epoch, 2000 training samples per task, seed 1, PMNIST-5 TIL only;
#                               writes to runs_quick/ and results/quick/
#   DRY_RUN=1                   summarise the runs and their state, run nothing (no data is read)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
WHICH=${1:-main}
DEVICE=${DEVICE:-cpu}
JOBS=${JOBS:-$(nproc)}
THREADS=${THREADS:-1}
EXTRA=(device="$DEVICE")
GPU_ARGS=()
[[ $DEVICE == cuda && -n "${JOBS_PER_GPU:-}" ]] && GPU_ARGS=(--jobs-per-gpu "$JOBS_PER_GPU")
RESULTS=results/amnesiachat
ALL_COLUMNS=pmnist-5-til,pmnist-5-dil,rmnist-5-til,rmnist-5-dil,scifar10-5-til,pmnist-20-til,combined5-5-til
COLUMNS_=${COLUMNS_:-$ALL_COLUMNS}
if [[ "${QUICK:-0}" == 1 ]]; then
  EXTRA+=(out_dir=runs_quick epochs=1 train_subset=2000)
  RESULTS=results/quick/amnesiachat
  SEEDS=${SEEDS:-1}
  COLUMNS_=pmnist-5-til
fi
SEEDS=${SEEDS:-1-5}
DRY=()
[[ "${DRY_RUN:-0}" == 1 ]] && DRY=(--dry-run)

sweep() {  # study benchmark [key=value ...]
  local study=$1 bench=$2; shift 2
  $PY -m scripts.sweep --package amnesiachat --study "$study" --benchmarks "$bench" --seeds "$SEEDS" \
      --jobs "$JOBS" --threads "$THREADS" ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} "${DRY[@]}" "${EXTRA[@]}" "$@" || echo "some $study/$bench runs failed"
}

TABLE_COLUMNS=()
if [[ $WHICH == main || $WHICH == all ]]; then
  IFS=',' read -ra COLS <<< "$COLUMNS_"
  for col in "${COLS[@]}"; do
    IFS='-' read -r bench tasks setting <<< "$col"
    [[ "${DRY_RUN:-0}" == 1 ]] || $PY -m scripts.check_data "$bench" || continue  # a dry run reads no data
    study=$([[ $setting == dil ]] && echo main_dil || echo main)
    echo "== $col"
    sweep "$study" "$bench" num_tasks="$tasks"
    label="${bench^^}-$tasks ${setting^^}"
    label=${label/COMBINED5/Combined}
    TABLE_COLUMNS+=("$label")
  done
fi
for part in ablation hparams pruning; do
  if [[ $WHICH == "$part" || $WHICH == all ]]; then
    echo "== $part"
    sweep "$part" pmnist
  fi
done
[[ "${DRY_RUN:-0}" == 1 ]] && exit 0

PARTS=$([[ $WHICH == all ]] && echo main,ablation,hparams,pruning || echo "$WHICH")
COLUMN_ARG=$(IFS=','; echo "${TABLE_COLUMNS[*]:-}")
$PY -m amnesiachat.make_tables --seeds "$SEEDS" --out "$RESULTS" --parts "$PARTS" \
    ${COLUMN_ARG:+--columns "$COLUMN_ARG"} "${EXTRA[@]}"
