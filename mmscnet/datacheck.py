"""Clear messages for bad training data, in place of silent wrong results.

What the OpenMMLab stack does on its own, and what this module adds:

- A missing annotation file: a FileNotFoundError that names it (kept).
  A truncated or invalid JSON one: a bare JSONDecodeError that names no
  file; :func:`annotation_errors_named` finds the file and says so.
- A missing, corrupt or truncated image: mmcv's loader asserts "failed to
  load image" for some, and decodes a truncated JPEG into a half-grey
  picture without a word. :class:`LoadImageFromFile` (mmcv's, with a check
  of the bytes) names the file and what is wrong with it; with
  ``ignore_empty=True`` it skips the image with a warning instead.
- Grayscale and 4-channel images: converted to 3-channel BGR by the decoder
  (``color_type='color'``), as in mmcv; nothing to add.
- A detector whose ``num_classes`` differs from the categories of its COCO
  evaluation file (a custom dataset without ``metainfo.classes`` and
  ``num_classes`` changed): mmdet's CocoMetric fails with an IndexError
  after the whole inference pass; :func:`check_class_counts` says so before.
- Images that mmdet's ``filter_cfg`` leaves out of training (no objects,
  ``filter_empty_gt``; a side under ``min_size``, e.g. a 1x1 or very
  elongated image): silently dropped upstream; :class:`DataCheckHook`
  logs how many and which.

tools/train.py and tools/test.py switch these on with :func:`use_data_checks`.
"""
import json
import os.path as osp
import struct
from contextlib import contextmanager

import mmcv
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine import fileio
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmscnet.registry import HOOKS, TRANSFORMS
from mmscnet.tool_setup import replace_types

_JPEG, _PNG = b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n'


def _jpeg_is_truncated(data):
    """True if no end-of-image marker follows the first scan. Walks the marker
    segments up to the scan, so an EXIF thumbnail's own end marker does not count."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False  # not a layout we can follow: let the decoder judge
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the entropy-coded data follows
            return data.find(b'\xff\xd9', pos) == -1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2  # markers without a length
            continue
        pos += 2 + struct.unpack('>H', data[pos + 2:pos + 4])[0]
    return True  # ended before the scan


def image_problem(data):
    """What is wrong with the bytes of an image file, or None."""
    if not data:
        return 'is empty (0 bytes)'
    if data.startswith(_JPEG) and _jpeg_is_truncated(data):
        return f'is a truncated JPEG (no end-of-image marker; {len(data)} bytes)'
    if data.startswith(_PNG) and data.rfind(b'IEND') == -1:
        return f'is a truncated PNG (no IEND chunk; {len(data)} bytes)'
    return None


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same arguments and results) whose errors
    name the file and what is wrong with it."""

    def transform(self, results):
        if self.file_client_args is not None:  # mmcv's deprecated path, as it is
            return super().transform(results)
        filename = results['img_path']
        try:
            data = fileio.get(filename, backend_args=self.backend_args)
            problem = image_problem(data)
        except FileNotFoundError:
            data, problem = None, 'does not exist'
        img = None
        if problem is None:
            img = mmcv.imfrombytes(data, flag=self.color_type, backend=self.imdecode_backend)
            if img is None:
                problem = (f'cannot be decoded by {self.imdecode_backend}: not an image, or '
                           f'corrupt ({len(data)} bytes)')
        if problem is not None:
            if self.ignore_empty:
                print_log(f'skipped image {filename}: it {problem}', logger='current', level=30)
                return None
            raise ValueError(f'image {filename} {problem}; fix or remove it (or set '
                             'ignore_empty=True in LoadImageFromFile to skip such images)')
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


def _datasets(node):
    """The innermost dataset configs of a dataloader's dataset (wrappers unwrapped)."""
    if 'dataset' in node:
        yield from _datasets(node['dataset'])
    elif 'datasets' in node:
        for child in node['datasets']:
            yield from _datasets(child)
    else:
        yield node


def annotation_files(cfg):
    """(where, path) of every annotation file the config reads, as the datasets resolve them."""
    found = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if not cfg.get(loader):
            continue
        for ds in _datasets(cfg[loader]['dataset']):
            ann = ds.get('ann_file')
            if ann:
                root = ds.get('data_root') or ''
                found.append((loader, ann if osp.isabs(ann) or '://' in ann else
                              osp.join(root, ann)))
    for ev in ('val_evaluator', 'test_evaluator'):
        metrics = cfg.get(ev) or []
        for metric in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
            if isinstance(metric, dict) and metric.get('ann_file'):
                found.append((ev, metric['ann_file']))
    return list(dict.fromkeys(found))


def check_annotation_files(cfg, loaders=None):
    """FileNotFoundError naming each missing annotation file (a stat, no read)."""
    missing = [f'{where}: {path}' for where, path in annotation_files(cfg)
               if (loaders is None or where in loaders) and '://' not in path
               and not osp.isfile(path)]
    if missing:
        raise FileNotFoundError('annotation file not found: ' + '; '.join(missing))


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
        from mmdet.registry import DATASETS
        dataset_cls = DATASETS.get(ds.get('type', ''))
        classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
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
        for metric in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
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
            matched = [c['name'] for c in categories if c.get('name') in classes]
            wrong = [f'{key}={n}' for key, n in heads if n != len(matched)]
            if not wrong:
                continue
            names = tuple(c.get('name') for c in categories)
            shown = (names[:10] + ('...', )) if len(names) > 10 else names
            raise ValueError(
                f'{ev}: the model predicts {heads[0][1]} classes ({", ".join(wrong)}), but '
                f'{ann} has {len(categories)} categories {shown}, of which {len(matched)} are '
                f'among the {len(classes)} classes of {loader} (metainfo.classes or the '
                f"dataset's default); mmdet would fail after the whole inference pass. For "
                f'a dataset of your own, set metainfo=dict(classes=...) on the datasets to '
                f"the file's category names and num_classes={len(names)} in the heads")


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
            return ValueError(f'annotation file {path} ({where}) is not valid JSON, truncated '
                              f'or corrupt ({osp.getsize(path)} bytes): {e}')
    return None


@HOOKS.register_module()
class DataCheckHook(Hook):
    """Logs the training images that the dataset's ``filter_cfg`` left out.

    mmdet drops images without objects (``filter_empty_gt``) and images with a
    side under ``min_size`` from training without a word; this names them.
    """

    def before_train(self, runner):
        if not is_main_process():
            return
        dataset = runner.train_dataloader.dataset
        while hasattr(dataset, 'dataset'):  # RepeatDataset, ClassBalancedDataset, ...
            dataset = dataset.dataset
        filter_cfg = getattr(dataset, 'filter_cfg', None)
        ann_file = getattr(dataset, 'ann_file', '')
        if not filter_cfg or not str(ann_file).endswith('.json') or '://' in ann_file:
            return
        # mmdet drops its COCO index after loading, so the file is read once
        # more here (main process, once a run) to name what was filtered out.
        with open(ann_file) as f:
            coco = json.load(f)
        kept = {dataset.get_data_info(i)['img_id'] for i in range(len(dataset))}
        with_objects = {a['image_id'] for a in coco.get('annotations', [])}
        min_size = filter_cfg.get('min_size', 0)
        skipped = []
        for img in coco.get('images', []):
            if img['id'] in kept:
                continue
            if filter_cfg.get('filter_empty_gt') and img['id'] not in with_objects:
                reason = 'no objects'
            elif min(img['width'], img['height']) < min_size:
                reason = f"{img['width']}x{img['height']}, a side under min_size={min_size}"
            else:
                reason = 'no object of the configured classes'
            skipped.append(f"{img['file_name']} ({reason})")
        if skipped:
            shown = ', '.join(skipped[:10]) + (', ...' if len(skipped) > 10 else '')
            runner.logger.warning(
                f'{len(skipped)} of {len(coco.get("images", []))} training images in {ann_file} '
                f'are skipped, as filter_cfg={dict(filter_cfg)} asks: {shown}')


def use_data_checks(cfg):
    """Swap mmcv's LoadImageFromFile for :class:`LoadImageFromFile` in every
    pipeline of ``cfg`` and add :class:`DataCheckHook` (same results on good data)."""

    replace_types(cfg._cfg_dict, ('LoadImageFromFile', ), 'mmscnet.LoadImageFromFile')
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') in ('DataCheckHook', 'mmscnet.DataCheckHook') for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='mmscnet.DataCheckHook')]
    return cfg
