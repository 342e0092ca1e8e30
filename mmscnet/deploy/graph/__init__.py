"""What an exported graph computes, in PyTorch, for torch's exporter.

- :mod:`.onnx`: the one exporter (:func:`~.onnx.export_graph`);
- :mod:`.ops`: operators torch has no exportable form of (``grouped_nms``)
  with their ONNX translations;
- :mod:`.detector` and :mod:`.single_stage` (mmdet's two- and
  single-stage detectors), :mod:`.segmentor` (mmseg) and
  :mod:`.classifier` (mmpretrain): the whole model's forward, from
  normalised images to what the runtime post-processes. Each is imported
  only through its library's adapter (``mmscnet/adapters/det.py``,
  ``seg.py``, ``cls.py``);
- :mod:`.openvino`: ONNX to OpenVINO IR.

What runs around the graph is in :mod:`mmscnet.deploy.runtime`."""
