#!/usr/bin/env bash
# Reproduce the shipped models (issues 11 and 14): training subjects from the default world and the wide world,
# then the SWI+QSM+T2, SWI+QSM and SWI models, each fine-tuned from the previous default on the same subjects.
#   bash benchmarks/train_shipped_models.sh WORK_DIR OUT_DIR        # OUT_DIR gets default/, swi-qsm/, swi/
# Settings (environment):
#   JOBS (parallel generators, default: all cores), SUBJECTS_PER_JOB (3), FINE_VOXEL ("0.7 0.7 1.2");
#   MODELS ("default swi-qsm swi": which to fine-tune), BASE (the model to start from, default: the shipped
#   default), STEPS (8000), BATCH (48), LR (1e-3; SWI_LR 2e-3 for the SWI model, which starts far from its
#   task), EVAL_EVERY (1500), VAL_SHARE (0.1), MAX_MINUTES (6, per model), DATA_WORKERS (default: the
#   trainer's choice), PARALLEL (1: the fine-tunes at once, for a GPU host; default 0: one after another),
#   VERIFIER_STEPS (0: none; else a second stage is trained for each model after its fine-tune, to
#   OUT_DIR/NAME-2stage), REGISTRATION (auto; the phantom's T2 is in register, so off gives the same inputs
#   without SimpleITK), PYTHON (python3).
# docs/model.md gives the hardware and figures of the shipped run.
set -euo pipefail
work=$1 out=$2
python=${PYTHON:-python3}
per_job=${SUBJECTS_PER_JOB:-3}
mkdir -p "$work/train" "$out"

# One generator per line: folder, seed, options. Field strengths 2-4 T; 1.5 T and 7 T stay outside training
# (the stress sets of benchmarks/bench_detection.py), as do CG inversion, boxy heads and 3x veins.
{
  for j in 0 1 2 3 4 5; do echo "default$j $((100 + j)) --randomize"; done
  fields=(2.0 2.5 3.0 3.0 3.5 4.0 3.0)
  for j in "${!fields[@]}"; do
    echo "wide$j $((40000 + j)) --randomize --world wide --lesion-burden default --field-strength ${fields[j]}"
  done
  fields=(2.5 3.0 3.5)
  for j in "${!fields[@]}"; do
    echo "cohort$j $((41000 + j)) --randomize --world wide --lesion-burden cohort --field-strength ${fields[j]}"
  done
} >"$work/generators.txt"

export OMP_NUM_THREADS=1 # many processes share the cores: one thread each, no oversubscription
# shellcheck disable=SC2016  # expanded by the inner bash
xargs -P "${JOBS:-$(nproc)}" -L 1 bash -c \
  'folder=$1 seed=$2; shift 2; [ -d "'"$work"'/train/$folder" ] && exit 0
   '"$python"' -m napari_deepmir.cli synth "'"$work"'/train/.$folder" --subjects '"$per_job"' --seed "$seed" \
     --fine-voxel '"${FINE_VOXEL:-0.7 0.7 1.2}"' "$@" >"'"$work"'/synth-$folder.log" 2>&1 \
   && mv "'"$work"'/train/.$folder" "'"$work"'/train/$folder"' _ <"$work/generators.txt" ||
  echo "a generator failed (its subjects are left out): see $work/synth-*.log" >&2
echo "training subjects: $(find "$work/train" -mindepth 2 -maxdepth 2 -name 'sub-*' -not -path '*/.*' | wc -l)"

base=${BASE:-default}
fine_tune() { # name, card name, extra options
  local name=$1 card=$2
  shift 2
  OMP_NUM_THREADS=${TRAIN_THREADS:-2} $python -m napari_deepmir.cli finetune --data "$work"/train/* --base "$base" \
    --out "$out/$name" --name "$card" --steps "${STEPS:-8000}" --lr "${LR:-1e-3}" --batch-size "${BATCH:-48}" \
    --patch-size 64 --val-share "${VAL_SHARE:-0.1}" --eval-every "${EVAL_EVERY:-1500}" --max-minutes "${MAX_MINUTES:-6}" --seed 0 \
    --bf16 --registration "${REGISTRATION:-auto}" ${DATA_WORKERS:+--data-workers "$DATA_WORKERS"} "$@" \
    >"$work/finetune-$name.log" 2>&1
  if [ "${VERIFIER_STEPS:-0}" -gt 0 ] && [ -d "$out/$name" ]; then
    OMP_NUM_THREADS=${TRAIN_THREADS:-2} $python -m napari_deepmir.cli train-verifier --data "$work"/train/* \
      --base "$out/$name" --out "$out/$name-2stage" --steps "$VERIFIER_STEPS" --val-share "${VAL_SHARE:-0.1}" \
      --seed 0 --registration "${REGISTRATION:-auto}" >"$work/verifier-$name.log" 2>&1
  fi
}
declare -A options=(
  [default]="deepmir-default-synthetic"
  [swi-qsm]="deepmir-swi-qsm-synthetic --modalities swi qsm"
  [swi]="deepmir-swi-synthetic --modalities swi --lr ${SWI_LR:-2e-3}"
)
models=()
for name in ${MODELS:-default swi-qsm swi}; do models+=("$name ${options[$name]}"); done
if [ "${PARALLEL:-0}" = 1 ]; then
  pids=()
  for model in "${models[@]}"; do
    # shellcheck disable=SC2086  # the line splits into name, card name and options
    fine_tune $model &
    pids+=($!)
  done
  failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || echo "a fine-tune failed: see $work/finetune-*.log" >&2
else
  # shellcheck disable=SC2086
  for model in "${models[@]}"; do fine_tune $model; done
fi
for model in "${models[@]}"; do tail -n 8 "$work/finetune-${model%% *}.log"; done # this run's models only
