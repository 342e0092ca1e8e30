#!/usr/bin/env bash
# Creates the project's virtual environment (default .venv) with the pinned
# OpenMMLab 2.x stack on current PyTorch, then installs mmscnet in editable mode.
# Pins and traps: see the README's "Environment" section.
#   VENV=path      where to create the environment (default: .venv)
#   PIP_FIND_LINKS a folder with a prebuilt mmcv-2.1.0 wheel makes setup take seconds;
#                  without one, mmcv 2.1.0 is compiled from its PyPI sdist (~25 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }

pip install -q --upgrade 'pip>=24' 'setuptools>=77,<81' wheel
# torch 2.14.1 + torchvision 0.29.1: the pair that runs mmpretrain on the CPU (see README).
pip install -q torch==2.14.1 torchvision==0.29.1
pip install -q 'mmengine==0.10.7' 'numpy>=1.24' ninja

if ! "$VENV/bin/python" -c 'import mmcv, mmcv.ops' 2>/dev/null; then
  # A prebuilt wheel offered through PIP_FIND_LINKS is taken as is.
  if ! pip install -q --no-index mmcv==2.1.0 2>/dev/null; then
    echo "[setup] no prebuilt mmcv 2.1.0 wheel offered: building it from source (about 25 minutes on 2 cores)"
    build=$(mktemp -d)
    pip download -q --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 -d "$build"
    tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build"
    # torch >= 2.10 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$build"/mmcv-2.1.0/setup.py
    # --no-build-isolation: setup.py imports torch; isolated, it silently drops mmcv._ext.
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip install --no-build-isolation "$build"/mmcv-2.1.0
    rm -rf "$build"
  fi
  "$VENV/bin/python" -c 'import mmcv.ops' || { echo "[setup] mmcv installed without its ops (mmcv._ext)" >&2; exit 1; }
fi

# mmpose 1.3.2 (keypoint configs): PyPI's xtcocotools wheel is built against
# numpy 1 ("numpy.dtype size changed"), so it is compiled here against numpy 2;
# mmpose goes in without its dependencies (chumpy does not build), its real
# needs come with the `pose` extra below.
if ! "$VENV/bin/python" -c 'import xtcocotools._mask' 2>/dev/null; then
  pip install -q cython
  pip install -q --no-binary xtcocotools --no-build-isolation 'xtcocotools>=1.12'
fi
pip install -q --no-deps mmpose==1.3.2
pip install -q -e '.[all,tests]'
echo "[setup] environment ready in $VENV"
