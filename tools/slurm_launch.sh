#!/usr/bin/env bash
# srun for tools/slurm_train.sh and tools/slurm_test.sh:
#   tools/slurm_launch.sh PARTITION JOB_NAME SCRIPT [SCRIPT arguments]
# GPUS tasks (default 8), GPUS_PER_NODE per node (8), CPUS_PER_TASK (5);
# SRUN_ARGS passes extra options to srun. mmengine's slurm launcher joins the tasks.
set -x
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    ${PYTHON:-python} -u "$(dirname "$0")/$SCRIPT" "${@:4}"
