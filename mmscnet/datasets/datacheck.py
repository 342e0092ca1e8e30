"""Clear messages for bad training data, in place of silent wrong results.

What the OpenMMLab stack does on its own, and what this module adds:

- A missing annotation file: a FileNotFoundError that names it (kept).
  A truncated or invalid JSON one: a bare JSONDecodeError that names no
  file; :func:`annotation_errors_named` finds the file and says so.
- A missing, corrupt or truncated image: mmcv's loader asserts "failed to
  load image" for some, and decodes a truncated JPEG into a half-grey
  picture without a word. ``mmscnet.LoadImageFromFile`` (mmcv's, with a check
  of the bytes; mmscnet/datasets/transforms/) names the file and what is wrong
  with it; with
  ``ignore_empty=True`` it skips the image with a warning instead.
- Grayscale and 4-channel images: converted to 3-channel BGR by the decoder
  (``color_type='color'``), as in mmcv; nothing to add.
- A detector whose ``num_classes`` differs from the categories of its COCO
  evaluation file (a custom dataset without ``metainfo.classes`` and
  ``num_classes`` changed): mmdet's CocoMetric fails with an IndexError
  after the whole inference pass; :func:`check_class_counts` says so before.
- Images that mmdet's ``filter_cfg`` leaves out of training (no objects,
  ``filter_empty_gt``; a side under ``min_size``, e.g. a 1x1 or very
  elongated image): silently dropped upstream; ``mmscnet.DataCheckHook``
  (mmscnet/engine/hooks/) logs how many and which.

tools/train.py and tools/test.py switch these on with :func:`use_data_checks`.
"""
import json
import os.path as osp
from contextlib import contextmanager

from mmscnet.utils.config import record_rewrite, swap_types


def _datasets(node):
    """The innermost dataset configs of a dataloader's dataset (wrappers
    unwrapped)."""
    if 'dataset' in node:
        yield from _datasets(node['dataset'])
    elif 'datasets' in node:
        for child in node['datasets']:
            yield from _datasets(child)
    else:
        yield node


def annotation_files(cfg):
    """(where, path) of every annotation file the config reads, as the datasets
    resolve them."""
    found = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if not cfg.get(loader):
            continue
        for ds in _datasets(cfg[loader]['dataset']):
            ann = ds.get('ann_file')
            if ann:
                root = ds.get('data_root') or ''
                found.append((loader, ann if osp.isabs(ann) or '://' in ann
                              else osp.join(root, ann)))
    for ev in ('val_evaluator', 'test_evaluator'):
        metrics = cfg.get(ev) or []
        for metric in metrics if isinstance(metrics,
                                            (list, tuple)) else [metrics]:
            if isinstance(metric, dict) and metric.get('ann_file'):
                found.append((ev, metric['ann_file']))
    return list(dict.fromkeys(found))


def check_annotation_files(cfg, loaders=None):
    """FileNotFoundError naming each missing annotation file (a stat, no read).
    """
    missing = [
        f'{where}: {path}' for where, path in annotation_files(cfg)
        if (loaders is None or where in loaders) and '://' not in path
        and not osp.isfile(path)
    ]
    if missing:
        raise FileNotFoundError('annotation file not found: ' +
                                '; '.join(missing))


def model_num_classes(node, key='model'):
    """(dotted key, value) of every ``num_classes`` in a model config; RPN
    heads (one class, objectness) are left out."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == 'num_classes' and isinstance(v, int):
                yield f'{key}.{k}', v
            elif k != 'rpn_head':
                yield from model_num_classes(v, f'{key}.{k}')
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from model_num_classes(v, f'{key}.{i}')


def _dataset_classes(ds):
    """The class names a dataset config ends up with: its metainfo's, else its
    class's default (mmdet's CocoDataset: the 80 COCO classes)."""
    classes = (ds.get('metainfo') or {}).get('classes')
    if classes is None:
        from mmscnet.adapters import get_adapter
        classes = get_adapter('mmdet').dataset_classes(ds.get('type', ''))
    return None if classes is None else tuple(classes)


def check_class_counts(cfg, evaluators):
    """Before any inference: the detector's ``num_classes`` against the
    categories of each COCO evaluation file, as mmdet's CocoMetric will map
    them (the dataset's class names looked up among the file's categories).
    A mismatch otherwise crashes only after the whole inference pass
    (IndexError in CocoMetric.results2json) or, with fewer model classes,
    scores the wrong categories."""
    if cfg.get('default_scope') != 'mmdet':
        return
    heads = list(model_num_classes(cfg.get('model') or {}))
    for ev in evaluators:
        loader = ev.replace('_evaluator', '_dataloader')
        metrics = cfg.get(ev) or []
        for metric in metrics if isinstance(metrics,
                                            (list, tuple)) else [metrics]:
            ann = metric.get('ann_file') if isinstance(metric, dict) else None
            if (not heads or not cfg.get(loader) or not ann or '://' in ann
                    or not str(metric.get('type', '')).endswith('CocoMetric')
                    or not osp.isfile(ann)):
                continue
            classes = _dataset_classes(next(_datasets(cfg[loader]['dataset'])))
            if classes is None:
                continue
            with open(ann) as f:
                categories = json.load(f).get('categories', [])
            matched = [
                c['name'] for c in categories if c.get('name') in classes
            ]
            wrong = [f'{key}={n}' for key, n in heads if n != len(matched)]
            if not wrong:
                continue
            names = tuple(c.get('name') for c in categories)
            shown = (names[:10] + ('...', )) if len(names) > 10 else names
            raise ValueError(
                f'{ev}: the model predicts {heads[0][1]} classes '
                f'({", ".join(wrong)}), but {ann} has {len(categories)} '
                f'categories {shown}, of which {len(matched)} are among the '
                f'{len(classes)} classes of {loader} (metainfo.classes or '
                "the dataset's default); mmdet would fail after the whole "
                'inference pass. For a dataset of your own, set '
                'metainfo=dict(classes=...) on the datasets to the file\'s '
                f'category names and num_classes={len(names)} in the heads')


@contextmanager
def annotation_errors_named(cfg):
    """Re-raise a bare JSONDecodeError from building the datasets as a
    ValueError that names the broken annotation file. Costs nothing unless
    that error happens: the files are read again only then."""
    try:
        yield
    except json.JSONDecodeError as e:
        named = _broken_annotation_file(cfg)
        if named is None:
            raise
        raise named from e


def _broken_annotation_file(cfg):
    for where, path in annotation_files(cfg):
        if not path.endswith('.json') or not osp.isfile(path):
            continue
        try:
            with open(path) as f:
                json.load(f)
        except json.JSONDecodeError as e:
            return ValueError(
                f'annotation file {path} ({where}) is not valid JSON, '
                f'truncated or corrupt ({osp.getsize(path)} bytes): {e}')
    return None


def use_data_checks(cfg):
    """Swap mmcv's LoadImageFromFile for ``mmscnet.LoadImageFromFile`` in every
    pipeline of ``cfg`` and add ``mmscnet.DataCheckHook`` (same results on
    good data), each recorded as a config rewrite."""
    swap_types(
        cfg, cfg._cfg_dict, ('LoadImageFromFile', 'mmcv.LoadImageFromFile'),
        'mmscnet.LoadImageFromFile',
        "mmcv's loader whose errors name a missing, "
        'corrupt or truncated image')
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(
            h.get('type') in ('DataCheckHook', 'mmscnet.DataCheckHook')
            for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='mmscnet.DataCheckHook')]
        record_rewrite(
            cfg, 'custom_hooks', 'custom_hooks + mmscnet.DataCheckHook',
            "names the training images that the datasets' filter_cfg skips")
    return cfg
