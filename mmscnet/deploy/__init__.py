"""Deploy: deploy mode for inference (:mod:`.optimize`: BN folded,
channels_last, bf16, compiled), ONNX export and ONNX Runtime (:mod:`.onnx`),
OpenVINO IR and its CPU plugin (:mod:`.openvino`). ``tools/test.py --deploy``
runs :func:`optimize` through ``mmscnet.DeployHook`` (engine/hooks)."""
from .optimize import PRECISIONS, optimize, unfused_batchnorms

__all__ = ['PRECISIONS', 'optimize', 'unfused_batchnorms']
