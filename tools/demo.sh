#!/usr/bin/env bash
# The main job (`make demo`): Mask R-CNN with the SCNet-50 architecture trained
# and evaluated on CPU on the generated toy COCO set, through tools/train.py and
# tools/test.py, with the predictions painted on the val images as PNG files.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CONFIG=configs/detection/toy/mask-rcnn_scnet50_fpn_toy-coco.py
# A new work dir per run: an earlier run's checkpoints are never overwritten.
WORK_DIR=${WORK_DIR:-work_dirs/demo-$(date +%Y%m%d-%H%M%S)}

[ -f data/toy_coco/annotations/instances_val.json ] || $PY tools/misc/generate_toy_data.py coco data/toy_coco
start=$(date +%s)
$PY tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
$PY tools/test.py "$CONFIG" "$(cat "$WORK_DIR/last_checkpoint")" --work-dir "$WORK_DIR" \
    --show-dir predictions
shown=$(ls -d "$WORK_DIR"/*/predictions | tail -n 1)
echo
echo "demo finished in $(( ($(date +%s) - start) / 60 )) min; COCO box and mask AP are printed above"
echo "predictions painted on the $(ls "$shown" | wc -l) val images: $shown/*.png"
