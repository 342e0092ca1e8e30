#!/usr/bin/env bash
# Distributed training with torchrun, as mmdetection ships it:
#   tools/dist_train.sh CONFIG GPUS [train.py options]
# GPUS processes on this node: one per GPU (NCCL), or CPU processes (gloo) on
# a machine without CUDA. Several nodes: run it on each node with NNODES,
# NODE_RANK, MASTER_ADDR (node 0's address) and PORT set as torchrun takes them.
exec "$(dirname "$0")/dist_launch.sh" train.py "$2" "$1" --launcher pytorch "${@:3}"
