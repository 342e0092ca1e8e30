#!/usr/bin/env bash
# The compatibility job: a small environment with another PyTorch (only what
# the backbone needs: torch, mmengine, mmcv without its compiled ops), running
# the backbone, parity and checkpoint-loader tests there. .ci/run calls it for
# the oldest and the newest torch this project supports.
#   tools/compat_env.sh TORCH_VERSION [VENV]   (VENV default: .venv-torchVERSION)
# The environment is removed afterwards unless KEEP_COMPAT_ENV=1.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${1:?usage: tools/compat_env.sh TORCH_VERSION [VENV]}
VENV=${2:-.venv-torch$TORCH}
PY=${PYTHON:-python3}
TESTS=(tests/test_models/test_backbones/test_scnet.py tests/test_models/test_backbones/test_scnet_parity.py tests/test_utils/test_checkpoint_io.py)

# A pip configuration may cap torch with a constraint file (this project's
# machines do, at 2.14.1); the job asks for one exact version on purpose.
export PIP_CONSTRAINT=/dev/null

rm -rf "$VENV"
"$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
# --no-compile: the environment lives for one test run, which compiles the
# few modules it imports; pip would compile every module of torch.
pip install -q --no-compile --upgrade 'pip>=24' 'setuptools>=64,<81' wheel
# Wheels of torch < 2.3 are built against numpy 1.
numpy='numpy'
case "$TORCH" in 2.0.*|2.1.*|2.2.*) numpy='numpy<2' ;; esac
pip install -q --no-compile "torch==$TORCH" "$numpy" 'mmengine==0.10.7' pytest
# The backbone uses mmcv.cnn only: mmcv-lite 2.1.0 (mmcv without its compiled
# ops, a wheel on PyPI) replaces compiling mmcv 2.1.0 for this torch (25 minutes).
pip install -q --no-compile mmcv-lite==2.1.0
# The checkout on the environment's path, as an editable install puts it,
# without writing build metadata into the checkout: .ci/run runs this job
# while the main suite, which builds a wheel from the same tree, runs.
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD" > "$site/mmscnet-checkout.pth"
"$VENV/bin/python" -c "import torch, numpy, mmcv, mmengine; print('[compat] torch', torch.__version__, 'numpy', numpy.__version__, 'mmcv', mmcv.__version__, 'mmengine', mmengine.__version__)"
status=0
"$VENV/bin/python" -m pytest -q -m 'not downstream' "${TESTS[@]}" || status=$?
[ "${KEEP_COMPAT_ENV:-0}" = 1 ] || rm -rf "$VENV"
exit $status
