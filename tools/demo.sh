#!/usr/bin/env bash
# The demos, trained and evaluated on CPU on a generated toy set through
# tools/train.py and tools/test.py, with the predictions painted on the val
# images as PNG files:
#   tools/demo.sh det    (`make demo`)      Mask R-CNN with SCNet-50: box and mask AP,
#                        then exported: the same AP from ONNX Runtime and OpenVINO
#   tools/demo.sh pose   (`make demo-pose`) top-down keypoints with SCNet-50: keypoint AP
#   tools/demo.sh cls    (`make demo-cls`)  SCNet-18 against ResNet-18, same recipe
#                        and seed: top-1 and time per iteration side by side
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
case "${1:-det}" in
  det) CONFIG=configs/detection/toy/mask-rcnn_scnet50_fpn_toy-coco.py
       KIND=coco; DATA=data/toy_coco/annotations/instances_val.json; WHAT='COCO box and mask AP'
       CURVES='loss coco/bbox_mAP coco/segm_mAP' ;;
  pose) CONFIG=configs/keypoint/toy/td-hm_scnet50_toy-pose-96x64.py
       KIND=pose; DATA=data/toy_pose/annotations/person_keypoints_val.json
       WHAT='COCO keypoint AP (ground-truth person boxes)'; CURVES='loss coco/AP' ;;
  cls) KIND=cls; DATA=data/toy_cls/train ;;
  *) echo "usage: tools/demo.sh [det|pose|cls]" >&2; exit 2 ;;
esac
# A new work dir per run: an earlier run's checkpoints are never overwritten.
WORK_DIR=${WORK_DIR:-work_dirs/demo-${1:-det}-$(date +%Y%m%d-%H%M%S)}

if [ "$KIND" = cls ]; then
  [ -d "$DATA" ] || $PY tools/misc/generate_toy_data.py cls data/toy_cls
  start=$(date +%s)
  for net in scnet18 resnet18; do
    $PY tools/train.py "configs/classification/toy/${net}_toy-cls.py" --work-dir "$WORK_DIR/$net"
  done
  echo
  $PY tools/analysis_tools/compare_runs.py "$WORK_DIR/scnet18" "$WORK_DIR/resnet18" \
      --legend SCNet-18 ResNet-18 --metric accuracy/top1
  echo "demo finished in $(( ($(date +%s) - start) / 60 )) min: top-1 on the toy val set"
  echo "A toy set of 3 generated classes shows that the path works (build, train,"
  echo "evaluate, same recipe and seed); it does not show the paper's accuracy gain,"
  echo "which needs ImageNet (configs/classification/scnet18_8xb32_in1k.py)."
  exit 0
fi

[ -f "$DATA" ] || $PY tools/misc/generate_toy_data.py "$KIND" "$(dirname "$(dirname "$DATA")")"
start=$(date +%s)
$PY tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
CKPT=$(cat "$WORK_DIR/last_checkpoint")
$PY tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR" --show-dir predictions \
    2>&1 | tee "$WORK_DIR/test_pytorch.log"
# shellcheck disable=SC2086  # CURVES is a list of keys
$PY tools/analysis_tools/plot_logs.py "$WORK_DIR" --keys $CURVES --out "$WORK_DIR/curves.png"
shown=$(ls -d "$WORK_DIR"/*/predictions | tail -n 1)

if [ "$KIND" = coco ]; then
  # Deployed: the trained detector exported (checked against its predict on
  # the val images), then the same test set through each runtime.
  mkdir -p "$WORK_DIR/deploy"
  $PY tools/deployment/export.py "$CONFIG" "$CKPT" --out "$WORK_DIR/deploy/mask-rcnn.onnx" --openvino
  for backend in onnxruntime openvino; do
    graph=$WORK_DIR/deploy/mask-rcnn.onnx
    [ "$backend" = openvino ] && graph=$WORK_DIR/deploy/mask-rcnn.xml
    $PY tools/test.py "$CONFIG" "$graph" --backend "$backend" \
        --work-dir "$WORK_DIR/deploy/test_$backend" 2>&1 | tee "$WORK_DIR/test_$backend.log"
  done
  echo
  echo "COCO AP on the toy val set, the trained checkpoint and its exported graph:"
  for run in pytorch onnxruntime openvino; do
    # The last test metrics line of each run's log: box, then mask AP.
    { grep -o 'coco/\(bbox\|segm\)_mAP: [0-9.]*' "$WORK_DIR/test_$run.log" || true; } | tail -n 2 |
      awk -v run="$run" '{ap[NR] = $2} END {printf "  %-12s box AP %s  mask AP %s\n", run,
        NR ? ap[1] : "(none: see its log)", NR ? ap[2] : ""}'
  done
fi
echo
echo "demo finished in $(( ($(date +%s) - start) / 60 )) min; $WHAT is printed above"
echo "predictions painted on the $(ls "$shown" | wc -l) val images: $shown/*.png"
echo "training curves: $WORK_DIR/curves.png"
