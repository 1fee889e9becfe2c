#!/usr/bin/env bash
# Reference comparison: official mama-synth (gc_upload) preprocessing + evaluator vs dcesynth.challenge
# on one phantom cohort. Usage: MAMA_SYNTH_SRC=<checkout of gc_upload>/src compare_all.sh PHANTOM_NIFTI_DIR WORKDIR
# (the official source is read and run from its own checkout; nothing of it is copied here)
set -euo pipefail
SRC=$(realpath "$1"); W=$(realpath -m "$2"); HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-$HERE/../../../.venv/bin/python}; OFF=${MAMA_SYNTH_SRC:?set MAMA_SYNTH_SRC to the official src folder}
rm -rf "$W"; mkdir -p "$W"
# 1. official preprocessing (scratch copy of the fetched source, run via its own CLI)
nice -n 10 $PY $OFF/preprocessing/preprocess.py --image_dir "$SRC/images" --seg_dir "$SRC/masks" \
  --output_dir "$W/official_prep" --global_stats $OFF/preprocessing/training_pre_stats.json > "$W/official_prep.log" 2>&1
# 2. ours
nice -n 10 $PY -c "
from pathlib import Path
from dcesynth.challenge.prepare import prepare
prepare(Path('$SRC'), Path('$W/ours_prep'))"
$PY $HERE/compare_prepare.py "$W/ours_prep" "$W/official_prep" | tail -1 | tee "$W/prepare_compare.json"
# 3. predictions: identity baseline (= pre-contrast input) and a noisy version of the ground truth
$PY $HERE/make_predictions.py "$W/official_prep/mha" "$W/preds"
# 4. official evaluator (local mode; downloads blocked: LPIPS will be skipped by it)
for s in identity noisy; do
  mkdir -p "$W/official_eval/$s"
  ( cd $OFF/evaluation && TORCH_HOME=$W/torch_home https_proxy=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 \
    MAMA_INPUT_DIR=$W/preds/$s MAMA_OUTPUT_DIR=$W/official_eval/$s MAMA_GT_DIR=$W/official_prep/mha \
    MAMA_MASKS_DIR=$W/official_prep/mha/mask MAMA_MODELS_DIR=$W/no_models PYTHONPATH=. \
    nice -n 10 $PY evaluate.py > "$W/official_eval/$s/log.txt" 2>&1 )
done
# 5. ours on the same files, compared
nice -n 10 $PY $HERE/compare_metrics.py "$W" | tee "$W/metrics_compare.txt"
