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
#   JOBS_PER_GPU=K                            with DEVICE=cuda: K runs at once on every visible GPU (instead of JOBS)
#   LAUNCHER=local|slurm  SLURM_ARGS="..."    where the runs go (slurm: e.g. SLURM_ARGS="--partition gpu --time 240
#                                             --gpus-per-job 1 --jobs-per-gpu 4"; the tables are then made by
#                                             running this script again once the arrays have finished)
#   OUT_DIR=runs  DATA_DIR=data               root of the run records; where the datasets are
#   QUICK=1                                   smoke test: Permuted MNIST, 5 tasks, 1 epoch, full data, seed 1,
#                                             every row but the three costliest importances (FA, II, GS); writes to
#                                             runs_quick/ and results/quick/, never over published-size runs
#   DRY_RUN=1                                 summarise the runs and their state (and a time estimate); touches no
#                                             data and no network, runs nothing; VERBOSE=1 lists every run
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
WHICH=${1:-both}
DEVICE=${DEVICE:-cpu}
JOBS=${JOBS:-$(nproc)}
THREADS=${THREADS:-1}
EXTRA=(device="$DEVICE")
GPU_ARGS=()
[[ $DEVICE == cuda && -n "${JOBS_PER_GPU:-}" ]] && GPU_ARGS=(--jobs-per-gpu "$JOBS_PER_GPU")
[[ -n "${OUT_DIR:-}" ]] && EXTRA+=(out_dir="$OUT_DIR")
DATA_DIR=${DATA_DIR:-data}
EXTRA+=(data_dir="$DATA_DIR")
RESULTS=results/fg_adahat
COMPARE=()
METHODS=()
if [[ "${QUICK:-0}" == 1 ]]; then
  BENCHMARKS=${BENCHMARKS:-pmnist}
  [[ -z "${OUT_DIR:-}" ]] && EXTRA+=(out_dir=runs_quick)
  EXTRA+=(num_tasks=5 epochs=1)
  RESULTS=results/quick/fg_adahat
  SEEDS=${SEEDS:-1}
  METHODS=(--methods finetuning,lwf,hat,adahat_research,adahat,fgadahat_ig,fgadahat_og,fgadahat_cu,fgadahat_icu,fgadahat_afi,fgadahat_dl)
  COMPARE=(--smoke-test)  # quick runs are not comparable with the published numbers
fi
BENCHMARKS=${BENCHMARKS:-pmnist,scifar100,combined20}
IFS=',' read -ra ALL <<< "$BENCHMARKS"

if [[ "${DRY_RUN:-0}" == 1 ]]; then  # plan only: no data is read, nothing is downloaded
  READY=("${ALL[@]}")
  DRY=(--dry-run)
  [[ "${VERBOSE:-0}" == 1 ]] && DRY+=(--verbose)
else
  READY=()
  DRY=()
  for b in "${ALL[@]}"; do
    if $PY -m scripts.check_data "$b" --data-dir "$DATA_DIR"; then READY+=("$b"); fi
  done
fi
[[ ${#READY[@]} == 0 ]] && { echo "no benchmark has its data; nothing to run"; exit 1; }

# published seeds: 10 on Permuted MNIST, 5 elsewhere
SEED_ARG=${SEEDS:-"pmnist=1-10 scifar100=1-5 combined20=1-5"}
BENCH_ARG=$(IFS=','; echo "${READY[*]}")
echo "== ${BENCH_ARG}: seeds ${SEED_ARG}"
$PY -m scripts.sweep --package fg_adahat --study main --benchmarks "$BENCH_ARG" --seeds "$SEED_ARG" \
    --launcher "${LAUNCHER:-local}" ${SLURM_ARGS:-} --jobs "$JOBS" --threads "$THREADS" \
    ${GPU_ARGS[@]+"${GPU_ARGS[@]}"} ${METHODS[@]+"${METHODS[@]}"} ${DRY[@]+"${DRY[@]}"} "${EXTRA[@]}" || status=$?
[[ "${DRY_RUN:-0}" == 1 ]] && exit "${status:-0}"
[[ "${status:-0}" == 2 ]] && exit 2  # bad input: already explained
[[ "${status:-0}" != 0 ]] && echo "some runs failed (see the .out files)"
[[ "${LAUNCHER:-local}" == slurm ]] && { echo "submitted; run this script again for the tables once they finished"; exit 0; }

TABLE_SEEDS=${SEEDS:-1-10}
$PY -m fg_adahat.make_tables --benchmarks "$BENCHMARKS" --seeds "$TABLE_SEEDS" --out "$RESULTS" \
    --tables "$WHICH" ${COMPARE[@]+"${COMPARE[@]}"} ${METHODS[@]+"${METHODS[@]}"} "${EXTRA[@]}"
