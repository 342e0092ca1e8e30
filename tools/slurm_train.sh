#!/usr/bin/env bash
# Training on a Slurm cluster, as mmdetection ships it:
#   [GPUS=16] tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py options]
# GPUS tasks, GPUS_PER_NODE (8) per node; SRUN_ARGS for srun (see slurm_launch.sh).
exec "$(dirname "$0")/slurm_launch.sh" "$1" "$2" train.py "$3" --work-dir="$4" \
    --launcher="slurm" "${@:5}"
