#!/usr/bin/env bash
# The detector's training recipe sized for a small CPU (issue 21), staged and resumable: run it again after
# any stop (a kill, a reboot, a budget that ran out) and each stage skips what is done or resumes it.
#   bash benchmarks/train_cpu.sh WORK_DIR                 # WORK_DIR/model is the new two-stage model
# Stages (STAGES, default "synth finetune verifier evaluate"):
#   synth     randomised wide-world subjects, one folder per generator line, named by its seed and a hash of
#             its settings: a folder already there is skipped (made in a hidden folder, then renamed)
#   finetune  the shipped default's U-Net fine-tuned with modality dropout (--resume after a kill, from the trainer's
#             checkpoint of every 50 steps); WORK_DIR/unet
#   verifier  its second stage retrained on the fine-tuned U-Net's lesions (--examples-cache WORK_DIR/examples:
#             a rerun reuses each subject's examples); WORK_DIR/model
#   evaluate  WORK_DIR/model and the shipped default on held-out subjects whose settings the training never
#             drew (1.5 T and 7 T: benchmarks/bench_detection.py --stress), into WORK_DIR/eval-*.md
# Settings (environment): SUBJECTS (16: generator lines x 2 subjects), SEED (52000), FINE_VOXEL ("0.7 0.7 1.2"),
#   JOBS (1: generators at once), THREADS (1: torch/OMP threads), STEPS (600), BATCH (8), PATCH (64),
#   MINUTES (25: the fine-tune's wall-time budget, per invocation), EVAL_EVERY (200),
#   DROPOUT (0.3: modality dropout), VERIFIER_STEPS (300), STRESS_CACHE (WORK_DIR/stress), STRESS_SUBJECTS (2; a cached set keeps its own count),
#   PYTHON (python3).
# Each finished stage leaves WORK_DIR/STAGE.done and its time in WORK_DIR/times.tsv.
set -euo pipefail
work=$1
python=${PYTHON:-python3}
threads=${THREADS:-1}
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
mkdir -p "$work/train"
stage_done() { [ -e "$work/$1.done" ]; }
finish() { # stage, start second
  echo -e "$1\t$(($(date +%s) - $2))\t$(date -u +%FT%TZ)" >>"$work/times.tsv"
  touch "$work/$1.done"
}
wants() { [[ " ${STAGES:-synth finetune verifier evaluate} " == *" $1 "* ]]; }

if wants synth && ! stage_done synth; then
  start=$(date +%s)
  seed=${SEED:-52000}
  n_lines=$((${SUBJECTS:-16} / 2))
  fields=(2.0 2.5 3.0 3.5 4.0)
  for ((j = 0; j < n_lines; j++)); do
    burden=default
    [ $((j % 4)) = 3 ] && burden=cohort
    echo "$((seed + j)) --subjects 2 --randomize --world wide --lesion-burden $burden --field-strength ${fields[j % 5]} --fine-voxel ${FINE_VOXEL:-0.7 0.7 1.2}"
  done >"$work/generators.txt"
  # shellcheck disable=SC2016  # expanded by the inner bash
  xargs -P "${JOBS:-1}" -L 1 bash -c \
    'seed=$1; shift; key=$(printf "%s " "$@" | sha1sum | cut -c1-8); folder="'"$work"'/train/wide-$seed-$key"
     [ -d "$folder" ] && exit 0; rm -rf "$folder.part"
     '"$python"' -m napari_deepmir.cli synth "$folder.part" --seed "$seed" "$@" >"'"$work"'/synth-$seed-$key.log" 2>&1 && mv "$folder.part" "$folder"' \
    _ <"$work/generators.txt"
  finish synth "$start"
fi

if wants finetune && ! stage_done finetune; then
  start=$(date +%s)
  again=()
  if [ -d "$work/.unet.checkpoint" ]; then again=(--resume); elif [ -d "$work/unet" ]; then again=(--overwrite); fi
  $python -m napari_deepmir.cli finetune --data "$work"/train/wide-* --base "${BASE:-default}" --out "$work/unet" \
    --name deepmir-default-cpu-recipe --steps "${STEPS:-600}" --batch-size "${BATCH:-8}" --patch-size "${PATCH:-64}" \
    --lr 5e-4 --val-share 0.2 --eval-every "${EVAL_EVERY:-200}" \
    --max-minutes "${MINUTES:-25}" --modality-dropout "${DROPOUT:-0.3}" --seed 0 --bf16 --device cpu \
    --verifier-steps 0 --registration off "${again[@]}" 2>&1 | tee -a "$work/finetune.log"
  finish finetune "$start"
fi

if wants verifier && ! stage_done verifier; then
  start=$(date +%s)
  again=()
  [ -d "$work/model" ] && again=(--overwrite) # an earlier try of this stage that did not finish
  $python -m napari_deepmir.cli train-verifier --data "$work"/train/wide-* --base "$work/unet" --out "$work/model" \
    --steps "${VERIFIER_STEPS:-300}" --val-share 0.2 --seed 0 --bf16 --device cpu --registration off \
    --examples-cache "$work/examples" "${again[@]}" 2>&1 | tee -a "$work/verifier.log"
  finish verifier "$start"
fi

if wants evaluate && ! stage_done evaluate; then
  start=$(date +%s)
  here=$(cd "$(dirname "$0")" && pwd)
  for model in "$work/model" default; do
    table="$work/eval-$(basename "$model").md"
    [ -s "$table" ] && continue # this model's table is done
    $python "$here/bench_detection.py" --stress --model "$model" --threads "$threads" \
      --subjects "${STRESS_SUBJECTS:-2}" --fine-voxel 0.7 0.7 1.2 --cache "${STRESS_CACHE:-$work/stress}" \
      --variants "wide, 1.5 T" "wide, 7 T" >"$table.part"
    mv "$table.part" "$table"
  done
  finish evaluate "$start"
fi
cat "$work/times.tsv" 2>/dev/null || true
