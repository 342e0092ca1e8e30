#!/usr/bin/env bash
# Distributed training with torchrun, as mmdetection ships it:
#   tools/dist_train.sh CONFIG GPUS [train.py options]
# GPUS processes on this node: one per GPU (NCCL), or CPU processes (gloo) on
# a machine without CUDA. Several nodes: run it on each node with NNODES,
# NODE_RANK, MASTER_ADDR (node 0's address) and PORT set as torchrun takes them.
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec ${PYTHON:-python} -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch \
    "${@:3}"
