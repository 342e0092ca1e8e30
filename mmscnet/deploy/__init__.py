"""Deployment, in three parts:

- :mod:`.graph`: what an exported graph computes (PyTorch, for torch's
  exporter); :func:`export` (:mod:`.export_model`) writes and checks one;
- :mod:`.runtime`: what runs around it without PyTorch (numpy, cv2, ONNX
  Runtime or OpenVINO): :class:`ExportedModel`;
- in-PyTorch transforms, each explicit: deploy mode for inference
  (:mod:`.optimize`: BN folded, channels_last, bf16, compiled; run by
  ``tools/test.py --deploy`` through ``mmscnet.DeployHook``) and the stacked
  1x1 projections for training (:mod:`.speed`).

Where torch is missing, ``from mmscnet.deploy import ExportedModel`` still
works: it needs neither torch nor mmengine."""
import importlib

from .. import _torch_stack_missing

if not _torch_stack_missing():
    # As before the runtime could import alone: the transforms bound here,
    # the function ``optimize`` in place of its module's name.
    from .optimize import PRECISIONS, optimize, unfused_batchnorms
    from .speed import stack_conv1

# The rest is imported on first use: the runtime without torch, the
# exporter only when exporting.
_NAMES = {
    'ExportedModel': '.runtime',
    'open_session': '.runtime',
    'export': '.export_model',
    'ExportCheckError': '.export_model',
}
__all__ = list(_NAMES) + [
    'PRECISIONS', 'optimize', 'unfused_batchnorms', 'stack_conv1'
]


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
