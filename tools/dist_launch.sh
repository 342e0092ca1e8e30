#!/usr/bin/env bash
# torchrun for tools/dist_train.sh and tools/dist_test.sh:
#   tools/dist_launch.sh SCRIPT NPROC_PER_NODE [SCRIPT arguments]
# NNODES, NODE_RANK, MASTER_ADDR (node 0's address) and PORT as torchrun takes them.
SCRIPT=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec ${PYTHON:-python} -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$(dirname "$0")/$SCRIPT" \
    "${@:3}"
