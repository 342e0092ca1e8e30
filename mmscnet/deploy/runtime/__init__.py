"""What runs around an exported graph, without PyTorch: numpy, cv2 and ONNX
Runtime or OpenVINO alone.

- :mod:`.session`: the one session opener (:func:`open_session`);
- :mod:`.model`: :class:`ExportedModel`, image files or arrays in,
  predictions out (the test pipeline's preprocessing and the heads'
  post-processing, repeated in numpy);
- :mod:`.spec`: the ``model.json`` beside each graph;
- :mod:`.parity`: the one parity metric, the runtime against the library.

What the graph itself computes is in :mod:`mmscnet.deploy.graph`."""
from .model import (ExportedModel, as_bgr, classification, detections,
                    preprocess, segmentation)
from .session import BACKENDS, open_session
from .spec import read_spec, spec_path

__all__ = [
    'ExportedModel', 'as_bgr', 'classification', 'detections', 'preprocess',
    'segmentation', 'BACKENDS', 'open_session', 'read_spec', 'spec_path'
]
