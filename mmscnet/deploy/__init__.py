"""Deploy and speed transforms, each explicit: deploy mode for inference
(:mod:`.optimize`: BN folded, channels_last, bf16, compiled), the stacked
1x1 projections for training (:mod:`.speed`), ONNX export and ONNX Runtime
(:mod:`.onnx`), OpenVINO IR and its CPU plugin (:mod:`.openvino`), and the
numpy runtime around an exported detector or segmentor (:mod:`.runtime`;
the export forwards themselves are mmdet- and mmseg-specific, in
``mmscnet/adapters/``).
``tools/test.py --deploy`` runs :func:`optimize` through
``mmscnet.DeployHook`` (engine/hooks)."""
from .optimize import PRECISIONS, optimize, unfused_batchnorms
from .speed import stack_conv1

__all__ = ['PRECISIONS', 'optimize', 'unfused_batchnorms', 'stack_conv1']
