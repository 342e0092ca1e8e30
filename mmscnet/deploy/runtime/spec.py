"""The runtime spec: the JSON file beside an exported graph (``model.json``
beside ``model.onnx`` or ``model.xml``) that says what runs around the graph.
This module writes it, reads it and checks a config against it; it needs
nothing but the standard library.

Keys (``FORMAT`` names this layout; a file of another format is refused):

- ``format``: ``FORMAT``.
- ``task``: ``'detection'``, ``'segmentation'`` or ``'classification'``.
- ``config``, ``checkpoint``: what was exported (informational).
- ``classes``, ``palette``: the dataset's class names and colours.
- ``preprocess``: what the test pipeline and the data preprocessor do to an
  image before the network: ``scale`` ([w, h] limits or None),
  ``keep_ratio``, ``mean``, ``std``, ``bgr_to_rgb``, ``pad_size_divisor``,
  ``pad_value`` and ``min_size`` (the graph's smallest side); where the
  pipeline has them, ``resize_edge`` (mmpretrain's ``ResizeEdge``: ``scale``,
  ``edge`` and ``backend``) and ``center_crop`` ([w, h]).
- ``baked``: what the graph and the runtime fixed from the config, by its
  key in the config: ``model.test_cfg`` (``score_thr``, the NMS IoU,
  ``max_per_img``, ``nms_pre``...) and, for a segmentor,
  ``model.decode_head.threshold``. A config that says otherwise is refused.
- detection: ``mask_thr_binary``; segmentation: ``align_corners`` and
  ``threshold`` (the sigmoid threshold of a one-channel head, or None).
"""
import json
import os.path as osp

FORMAT = 'mmscnet-deploy/1'
TASKS = ('detection', 'segmentation', 'classification')


def spec_path(graph_path):
    """``model.json`` for ``model.onnx`` or ``model.xml``."""
    return osp.splitext(graph_path)[0] + '.json'


def plain(value):
    """``value`` as JSON writes and reads it back (tuples become lists)."""
    return json.loads(json.dumps(value))


def write_spec(path, spec):
    spec = dict(spec, format=FORMAT)
    if spec.get('task') not in TASKS:
        raise ValueError(
            f'spec task must be one of {TASKS}, got {spec.get("task")!r}')
    with open(path, 'w') as f:
        json.dump(spec, f, indent=1)
    return spec


def read_spec(graph_path):
    """The spec beside ``graph_path``, with clear errors for a missing,
    unreadable or old file."""
    path = spec_path(graph_path)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: it is written beside {graph_path} by '
            'tools/deployment/export.py and says how to preprocess images')
    try:
        with open(path) as f:
            spec = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f'{path} is not a readable runtime spec (JSON): '
                         f'{e}') from e
    found = spec.get('format') if isinstance(spec, dict) else None
    if found != FORMAT:
        raise ValueError(
            f'{path} is a runtime spec of format {found!r}, this runtime '
            f'reads {FORMAT!r}: export the model again with '
            'tools/deployment/export.py')
    return spec


def _differences(exported, given, prefix):
    if isinstance(exported, dict) and isinstance(given, dict):
        out = []
        for k in sorted(set(exported) | set(given)):
            out += _differences(exported.get(k), given.get(k), f'{prefix}.{k}')
        return out
    return [] if exported == given else [(prefix, exported, given)]


def check_config(spec, graph_path, config_path, baked, preprocess):
    """Raise a ValueError naming each difference unless a config's ``baked``
    values and image preparation (``preprocess``, as
    :func:`mmscnet.adapters.base.export_preprocess` makes it) are those the
    graph at ``graph_path`` was exported with."""
    diffs = []
    for key in sorted(set(spec.get('baked', {})) | set(baked)):
        diffs += _differences(
            spec.get('baked', {}).get(key), plain(baked.get(key)), key)
    diffs += _differences(
        spec.get('preprocess'), plain(preprocess), 'preprocess')
    if diffs:
        lines = '; '.join(f'{k}: exported {a!r}, config {b!r}'
                          for k, a, b in diffs)
        raise ValueError(
            f'{config_path} differs from what {graph_path} was exported '
            f'with, and the graph computes what it was exported with: '
            f'{lines}. Export again with this config, or give the config it '
            'was exported from')
