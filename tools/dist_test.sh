#!/usr/bin/env bash
# Distributed testing with torchrun, as mmdetection ships it:
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
# GPUS processes on this node: one per GPU (NCCL), or CPU processes (gloo) on
# a machine without CUDA. Several nodes: NNODES, NODE_RANK, MASTER_ADDR, PORT.
exec "$(dirname "$0")/dist_launch.sh" test.py "$3" "$1" "$2" --launcher pytorch "${@:4}"
