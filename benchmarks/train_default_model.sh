#!/usr/bin/env bash
# Reproduce the shipped default model: randomised training subjects made in parallel, then `deepmir train`.
#   bash benchmarks/train_default_model.sh WORK_DIR MODEL_DIR
# Settings (environment): JOBS (parallel generators, default: all cores), SUBJECTS_PER_JOB (3), STEPS (8000),
# BATCH (48), MAX_MINUTES (10), DATA_WORKERS (default: the trainer's choice), PYTHON (python3).
# The shipped model was made on one H200 GPU with 16 cores; docs/model.md gives the figures.
set -euo pipefail
work=$1 out=$2
jobs=${JOBS:-$(nproc)} per_job=${SUBJECTS_PER_JOB:-3}
python=${PYTHON:-python3}
mkdir -p "$work"
export OMP_NUM_THREADS=1  # many processes share the cores: one thread each, no oversubscription

seq 0 $((jobs - 1)) | xargs -P "$jobs" -I{} sh -c \
  "$python -m napari_deepmir.cli synth '$work/train/part{}' --subjects $per_job --seed \$((100 + {})) --randomize --fine-voxel 0.7 0.7 1.2 > '$work/synth{}.log' 2>&1"
echo "training subjects: $(ls -d "$work"/train/part*/sub-* | wc -l)"

OMP_NUM_THREADS=${TRAIN_THREADS:-2} $python -m napari_deepmir.cli train --data "$work"/train/part* --out "$out" \
  --base-filters 16 --depth 5 --context-slices 1 --steps "${STEPS:-8000}" --lr 2e-3 --batch-size "${BATCH:-48}" \
  --patch-size 64 --val-share "${VAL_SHARE:-0.1}" --eval-every "${EVAL_EVERY:-1000}" --max-minutes "${MAX_MINUTES:-10}" --seed 0 --bf16 \
  ${DATA_WORKERS:+--data-workers "$DATA_WORKERS"}
