"""The interface every library adapter fills in."""
import torch


class Adapter:
    """How one downstream library does what the tools need.

    ``scope`` is the library's registry scope (a config's ``default_scope``);
    ``dump_metric`` the metric type that ``tools/test.py --out`` appends.
    """

    scope = None
    dump_metric = 'DumpResults'
    # The exported model's task in the runtime, where there is one.
    runtime_task = None

    def show(self, cfg, hook, show_dir):
        """Turn on painting of every test image into ``show_dir`` through the
        config's ``default_hooks.visualization`` (``hook``, edited in place).
        """
        raise NotImplementedError

    def tta(self, cfg, config_path):
        """Make sure ``cfg`` has ``tta_model`` and ``tta_pipeline`` for
        ``--tta``.
        By default the config must carry both."""
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError(
                f'{config_path}: --tta needs tta_model and tta_pipeline in '
                'the config')

    def prepare_model(self, model):
        """Called on the Runner's model once it is built (default: nothing)."""

    def inferencer(self, cfg, checkpoint, device, score_thr=0.3, **kwargs):
        """The library's own inferencer for ``cfg``, as a callable that takes
        image paths and returns (predictions, painted RGB images)."""
        raise NotImplementedError(f'no inferencer for {self.scope}')

    def export_module(self, model):
        """The whole model as a module that exports to one graph, with its
        ``input_names``, ``output_names``, ``example(n, h, w)``,
        ``dynamic_shapes()``, ``min_size`` and ``spec()`` (what the runtime
        needs besides preprocessing)."""
        raise NotImplementedError(
            f'no whole-model export for {self.scope} (mmdet detectors, '
            'mmseg segmentors and mmpretrain classifiers export with '
            'tools/deployment/export.py; the backbone with '
            'tools/deployment/pytorch2onnx.py)')

    def baked(self, cfg):
        """What the exported graph and its runtime fix from ``cfg``, by key
        (the runtime spec's ``baked``; a config that differs is refused)."""
        return {'model.test_cfg': cfg.model.get('test_cfg')}

    def runtime_inferencer(self,
                           cfg,
                           graph_path,
                           backend,
                           score_thr=0.3,
                           threads=None):
        """Like :meth:`inferencer`, with the exported graph at
        ``graph_path`` in ``backend`` (onnxruntime or openvino)."""
        raise NotImplementedError(
            f'no exported-model inference for {self.scope}: --backend '
            'takes mmdet, mmseg and mmpretrain configs')

    def runtime_samples(self, samples, results):
        """The runtime's ``results`` (one dict per image) put into the test
        batch's data ``samples`` as the library's ``predict`` puts its
        predictions, for the evaluator and the painting hooks."""
        raise NotImplementedError(f'no exported-model test for {self.scope}')

    def sample_results(self, samples):
        """The library's predictions in ``samples`` (its data samples after
        ``test_step``) as the runtime gives them: one dict of numpy arrays
        per image (the inverse of :meth:`runtime_samples`)."""
        raise NotImplementedError(f'no exported-model check for {self.scope}')

    def predict_files(self, model, cfg, paths):
        """The library's own predictions for the image files ``paths``, as
        one batch: the config's test pipeline (its annotation loading left
        out), ``model.test_step``, then :meth:`sample_results`. The default
        scope must be the library's."""
        from mmengine.dataset import Compose, pseudo_collate
        pipeline = Compose([
            t for t in test_pipeline(cfg)
            if t['type'].split('.')[-1] != 'LoadAnnotations'
        ])
        batch = pseudo_collate([
            pipeline(dict(img_path=p, img_id=k)) for k, p in enumerate(paths)
        ])
        with torch.no_grad():
            results = self.sample_results(model.test_step(batch))
            self.add_tie_margins(model, batch, results)
        return results

    def add_tie_margins(self, model, batch, results):
        """Adds to each of :meth:`predict_files`' ``results`` what the
        parity rule needs to know of decisions inside the model that
        rounding can flip (:mod:`mmscnet.deploy.runtime.parity`)."""

    def dataset_classes(self, dataset_type):
        """The default class names of the library's dataset class
        ``dataset_type`` (its ``METAINFO``), or None."""
        return None

    def packed_batch(self, model, batch_size, shape, training):
        """A random batch of ``batch_size`` images of ``shape`` (H, W) with
        labels, in the library's packed format, through the model's data
        preprocessor (benchmark.py's whole-model rows)."""
        raise NotImplementedError(f'no benchmark batch for {self.scope}')


def random_images(batch_size, shape):
    h, w = shape
    return [
        torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
        for _ in range(batch_size)
    ]


# Transforms of a test pipeline that the exported model's runtime repeats
# (mmscnet.deploy.runtime); the Pack* ones and LoadAnnotations do nothing to
# the image.
EXPORT_TRANSFORMS = ('LoadImageFromFile', 'InferencerLoader', 'Resize',
                     'ResizeEdge', 'CenterCrop', 'LoadAnnotations',
                     'PackDetInputs', 'PackSegInputs', 'PackInputs')

# mmcv's LoadImageFromFile arguments and the values the runtime reads images
# with (cv2, BGR, EXIF orientation applied); to_float32 changes nothing there.
LOADER_ARGS = dict(color_type=('color', ), imdecode_backend=('cv2', ))
LOADER_FREE = ('type', 'to_float32', 'ignore_empty', 'backend_args',
               'file_client_args')
RESIZE_EDGES = ('short', 'long', 'width', 'height')


def check_config_for_runtime(adapter, cfg, spec, graph_path):
    """Raise a ValueError unless ``cfg`` is the config the graph at
    ``graph_path`` (runtime spec ``spec``) was exported with, in everything
    the graph and the runtime fixed."""
    from mmscnet.deploy.runtime.spec import check_config
    check_config(spec, graph_path, cfg.filename, adapter.baked(cfg),
                 export_preprocess(cfg, spec['preprocess']['min_size']))


def _check_loader(t):
    for key, value in t.items():
        if key in LOADER_FREE:
            continue
        if key not in LOADER_ARGS or value not in LOADER_ARGS[key]:
            raise ValueError(
                f'test pipeline {t["type"]}({key}={value!r}) is not repeated '
                "by the exported model's runtime, which reads images as " +
                ', '.join(f'{k}={v[0]!r}' for k, v in LOADER_ARGS.items()))


def _check_bilinear(t, args, backends=('cv2', )):
    extra = set(t) - set(args) - {'type', 'interpolation', 'backend'}
    if (t.get('interpolation', 'bilinear') != 'bilinear'
            or t.get('backend', 'cv2') not in backends or extra):
        raise ValueError(
            f'the runtime repeats {t["type"].split(".")[-1]} with '
            f'{", ".join(args)}, bilinear interpolation and the backend '
            f'{" or ".join(backends)}, got {dict(t)}')


def test_pipeline(cfg):
    """The test dataset's pipeline (inside dataset wrappers)."""
    data_cfg = cfg.test_dataloader.dataset
    while 'dataset' in data_cfg:
        data_cfg = data_cfg['dataset']
    return data_cfg.pipeline


def data_preprocessor(cfg):
    """The model's data preprocessor config; mmpretrain configs keep it at
    the top level, where mmengine's Runner takes it from."""
    return cfg.model.get('data_preprocessor') or cfg.get(
        'data_preprocessor') or {}


def export_preprocess(cfg, min_size):
    """The test pipeline's and data preprocessor's image preparation as the
    runtime's ``preprocess`` spec; a clear error for a pipeline it cannot
    repeat. The runtime resizes (``Resize``, then ``ResizeEdge``), then
    crops (``CenterCrop``), in that order."""
    resize = edge = crop = None
    for t in test_pipeline(cfg):
        kind = t['type'].split('.')[-1]
        if kind not in EXPORT_TRANSFORMS:
            raise ValueError(
                f'test pipeline transform {t["type"]} is not repeated by the '
                f'exported model\'s runtime, which does '
                f'{", ".join(EXPORT_TRANSFORMS)}')
        if kind in ('LoadImageFromFile', 'InferencerLoader'):
            _check_loader(t)
        if kind == 'Resize':
            if (t.get('scale') is None or resize is not None
                    or edge is not None or crop is not None):
                raise ValueError(
                    'the runtime repeats one Resize with a scale, before '
                    f'any ResizeEdge or CenterCrop, got {dict(t)}')
            _check_bilinear(
                t,
                ('scale', 'scale_factor', 'keep_ratio', 'clip_object_border'))
            resize = t
        if kind == 'ResizeEdge':
            if (edge is not None or crop is not None
                    or t.get('edge', 'short') not in RESIZE_EDGES):
                raise ValueError(
                    'the runtime repeats one ResizeEdge (edge one of '
                    f'{RESIZE_EDGES}) before any CenterCrop, got {dict(t)}')
            _check_bilinear(t, ('scale', 'edge'), ('cv2', 'pillow'))
            edge = dict(
                scale=int(t['scale']),
                edge=t.get('edge', 'short'),
                backend=t.get('backend', 'cv2'))
        if kind == 'CenterCrop':
            free = {'type', 'crop_size', 'clip_object_border', 'pad_cfg'}
            if crop is not None or t.get(
                    'auto_pad') or set(t) - free - {'auto_pad'}:
                raise ValueError(
                    'the runtime repeats one CenterCrop(crop_size) without '
                    f'auto_pad, got {dict(t)}')
            size = t['crop_size']
            crop = [size, size] if isinstance(size, int) else list(size)
    pre = data_preprocessor(cfg)
    test_cfg = pre.get('test_cfg') or {}
    if test_cfg.get('size'):
        raise ValueError('data_preprocessor.test_cfg.size (padding to a '
                         'fixed size) is not repeated by the runtime; '
                         'size_divisor is')
    scale = None
    if resize is not None:
        scale = resize['scale']
        scale = [scale, scale] if isinstance(scale, int) else list(scale)
    spec = dict(
        scale=scale,
        keep_ratio=bool(resize and resize.get('keep_ratio', False)),
        mean=list(pre.get('mean', (0, 0, 0))),
        std=list(pre.get('std', (1, 1, 1))),
        bgr_to_rgb=bool(pre.get('bgr_to_rgb', pre.get('to_rgb', False))),
        pad_size_divisor=pre.get('pad_size_divisor')
        or test_cfg.get('size_divisor') or 1,
        pad_value=pre.get('pad_value', pre.get('pad_val', 0)),
        min_size=min_size)
    # Only where the pipeline has them: the specs of detectors and
    # segmentors, and the configs checked against them, stay as they were.
    if edge is not None:
        spec['resize_edge'] = edge
    if crop is not None:
        spec['center_crop'] = crop
    return spec


def build_visualizer(cfg, registry, classes, palette):
    """The config's visualizer under a name of its own (as the inferencers
    build it), set to the model's classes and palette."""
    import time
    vis_cfg = dict(cfg.visualizer)
    vis_cfg['name'] = f'mmscnet_runtime_{time.time()}'
    visualizer = registry.build(vis_cfg)
    if palette is not None:  # JSON turned mmdet's colour tuples into lists
        palette = [tuple(c) for c in palette]
    visualizer.dataset_meta = dict(classes=classes, palette=palette)
    return visualizer
