#!/usr/bin/env bash
# Testing on a Slurm cluster, as mmdetection ships it:
#   [GPUS=8] tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]
# GPUS tasks, GPUS_PER_NODE (8) per node; SRUN_ARGS for srun (see slurm_launch.sh).
exec "$(dirname "$0")/slurm_launch.sh" "$1" "$2" test.py "$3" "$4" --launcher="slurm" "${@:5}"
