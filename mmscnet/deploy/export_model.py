"""Export a whole detector, segmentor or classifier and check it:
:func:`export`, the library-level form of ``tools/deployment/export.py``.

The check runs the written graph in each runtime through the runtime's own
pre- and post-processing (:class:`~mmscnet.deploy.runtime.ExportedModel`)
and compares what comes out with the library's own ``predict`` on the same
image files (:mod:`mmscnet.deploy.runtime.parity`), at two input sizes. A graph
that fails is removed with every file written beside it.
"""
import os
import os.path as osp
import sys
import tempfile
import warnings

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
CHECK_IMAGES = 2  # real images per check, besides the cropped copy
SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


class ExportCheckError(RuntimeError):
    """The exported graph does not compute what the library's predict
    computes; its files were removed."""


def outputs_of(out, openvino):
    stem = out[:-len('.onnx')]
    return [out, stem + '.json'
            ] + ([stem + '.xml', stem + '.bin'] if openvino else [])


def build(cfg, checkpoint, log=print):
    """The config's model in eval mode with ``checkpoint`` loaded strictly,
    its adapter, class names and palette."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    from mmscnet.adapters import get_adapter
    init_default_scope(cfg.default_scope)
    if checkpoint is None:
        log('no checkpoint given: exporting random weights')
        cfg.model.get('backbone', {}).pop('init_cfg', None)
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') and 'data_preprocessor' not in model_cfg:
        # mmpretrain's configs keep it at the top level; mmengine's Runner
        # gives it to the model so.
        model_cfg['data_preprocessor'] = cfg.data_preprocessor
    model = MODELS.build(model_cfg)
    adapter = get_adapter(cfg.default_scope)
    # As tools/test.py builds it (the authors' released classifier layout).
    adapter.prepare_model(model)
    meta = {}
    if checkpoint:
        ckpt = load_checkpoint(
            model, checkpoint, map_location='cpu', strict=True)
        meta = ckpt.get('meta', {}).get('dataset_meta', {})
    else:
        model.init_weights()
    data_cfg = _dataset(cfg, 'test_dataloader')
    metainfo = data_cfg.get('metainfo', {})
    classes = (
        meta.get('classes') or metainfo.get('classes')
        or data_cfg.get('classes')  # mmpretrain's CustomDataset
        or adapter.dataset_classes(data_cfg['type']))
    if isinstance(classes, str):  # mmpretrain: a file of class names
        from mmengine.fileio import list_from_file
        classes = list_from_file(classes)
    palette = meta.get('palette') or metainfo.get('palette')
    return model.eval(), adapter, list(classes or []), palette


def _dataset(cfg, loader):
    data_cfg = cfg[loader].dataset
    while 'dataset' in data_cfg:
        data_cfg = data_cfg['dataset']
    return data_cfg


def _image_files(folder):
    """The images of ``folder``, sorted; where it has none, those of its
    subfolders (mmpretrain's CustomDataset keeps a folder per class)."""
    if not osp.isdir(folder):
        return []
    names = sorted(os.listdir(folder))
    files = [
        osp.join(folder, n) for n in names
        if osp.splitext(n)[1].lower() in IMAGE_EXTS
    ]
    if files:
        return files
    return [
        f for n in names if osp.isdir(osp.join(folder, n))
        for f in _image_files(osp.join(folder, n))
    ]


def val_image_folder(cfg):
    """The image folder of the config's val set (data_root joined with
    data_prefix's image entry), or None."""
    if 'val_dataloader' not in cfg or not cfg.val_dataloader:
        return None
    data_cfg = _dataset(cfg, 'val_dataloader')
    prefix = data_cfg.get('data_prefix') or {}
    sub = prefix if isinstance(prefix, str) else prefix.get(
        'img', prefix.get('img_path', ''))
    return osp.join(data_cfg.get('data_root') or '', sub)


def check_batches(cfg, check_images, shape, work, log=print):
    """Two batches of image files for the check, and where they came from:
    the first images of ``check_images`` or of the val set, then the first
    of them cropped to 60% of its width (so the graph sees a second input
    size); random images of ``shape`` and a second size where neither
    folder has images, with a warning."""
    import cv2
    import numpy as np
    if check_images is not None:
        files = _image_files(check_images)[:CHECK_IMAGES]
        if not files:
            raise FileNotFoundError(
                f'--check-images {check_images}: no images there (looked '
                f'for {", ".join(IMAGE_EXTS)})')
        source = check_images
    else:
        source = val_image_folder(cfg)
        files = _image_files(source)[:CHECK_IMAGES] if source else []
    if files:
        from mmscnet.utils.image_file import read_image
        first = read_image(files[0])
        crop = osp.join(work, 'crop_' + osp.basename(files[0]) + '.png')
        cv2.imwrite(crop, first[:, :max(int(first.shape[1] * 0.6), 1)])
        return [files, [crop]], source
    msg = ('no images to check the graph on (neither --check-images nor the '
           f'val set {source!r}): checking on random images, on which a '
           'trained detector may detect little or nothing, so that little '
           'is compared. Pass --check-images DIR to check on real images.')
    warnings.warn(msg)
    log('warning: ' + msg)
    rng = np.random.default_rng(0)
    h, w = shape
    batches = []
    for k, (hh, ww) in enumerate(((h, w), (h + 64, max(w - 64, 32)))):
        path = osp.join(work, f'random_{k}.png')
        cv2.imwrite(path, rng.integers(0, 256, (hh, ww, 3), dtype=np.uint8))
        batches.append([path])
    return batches, 'random'


def without_center_crop(cfg, runtime):
    """``cfg`` and ``runtime`` (an ExportedModel) with the test pipeline's
    CenterCrop left out: a classifier's pipeline gives every image the crop
    size, and the check's second batch is to run the graph at another."""
    import copy
    cfg = copy.deepcopy(cfg)
    data_cfg = _dataset(cfg, 'test_dataloader')
    data_cfg.pipeline = [
        t for t in data_cfg.pipeline
        if t['type'].split('.')[-1] != 'CenterCrop'
    ]
    runtime = copy.copy(runtime)
    pre = dict(runtime.spec['preprocess'])
    del pre['center_crop']
    runtime.spec = dict(runtime.spec, preprocess=pre)
    return cfg, runtime


def parity_report(adapter, model, cfg, spec, runtime, paths):
    """The parity report (:mod:`mmscnet.deploy.runtime.parity`) of
    ``runtime`` (an ExportedModel) against the library's predict on
    ``paths``."""
    from .runtime import parity
    ref = adapter.predict_files(model, cfg, paths)
    got = runtime(paths)
    if spec['task'] == 'detection':
        return parity.detection_parity(ref, got, spec.get('max_per_img'))
    if spec['task'] == 'classification':
        return parity.classification_parity(ref, got)
    return parity.segmentation_parity(ref, got, spec.get('threshold'))


def export(config,
           checkpoint=None,
           out='model.onnx',
           openvino=False,
           shape=(320, 320),
           check_images=None,
           overwrite=False,
           log=None):
    """Export ``config`` (a path) with ``checkpoint`` (None: random weights)
    to ``out`` (.onnx) and its runtime spec (.json), with ``openvino`` also
    to OpenVINO IR (.xml, .bin); trace at ``shape`` (H, W), then check (see
    the module's doc). Returns the parity reports by (backend, batch index).
    Raises ValueError for what cannot be exported right, and
    :class:`ExportCheckError` (after removing the files) for a graph that
    fails its check."""
    from mmscnet.adapters.base import export_preprocess
    from mmscnet.apis.tool_setup import load_config
    from .graph.onnx import export_graph
    from .runtime import ExportedModel, parity
    from .runtime.spec import plain, write_spec
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if not str(out).endswith('.onnx'):
        raise ValueError(f'out must end in .onnx, got {out!r}')
    out = str(out)
    outs = outputs_of(out, openvino)
    for path in outs:
        if osp.exists(path) and not overwrite:
            raise FileExistsError(
                f'{path} exists: pass --overwrite (overwrite=True) to '
                'replace it')
    cfg = load_config(config)
    if cfg.default_scope not in SCOPES:
        raise ValueError(
            f'{config}: default_scope {cfg.default_scope!r}; export takes '
            f'{", ".join(SCOPES)} configs (the bare backbone: '
            'tools/deployment/pytorch2onnx.py)')
    model, adapter, classes, palette = build(cfg, checkpoint, log)
    try:
        module = adapter.export_module(model)
        spec = dict(
            module.spec(),
            config=config,
            checkpoint=checkpoint,
            classes=classes,
            palette=palette,
            baked=adapter.baked(cfg),
            preprocess=export_preprocess(cfg, module.min_size))
    except ValueError as e:
        raise ValueError(f'{config}: {e}') from None
    h, w = shape
    if min(h, w) < module.min_size:
        raise ValueError(f'shape must be at least {module.min_size} a side, '
                         f'got {h}x{w}')
    # Batch 2: a batch of one would be exported as a fixed size.
    export_graph(module, module.example(2, h, w), out, module.input_names,
                 module.output_names, module.dynamic_shapes())
    write_spec(outs[1], plain(spec))
    print(f'wrote {out} (inputs {module.input_names}, outputs '
          f'{module.output_names}; batch, height and width free) and '
          f'{outs[1]}')
    graphs = {'onnxruntime': out}
    if openvino:
        from .graph.openvino import convert_to_openvino
        convert_to_openvino(out, outs[2])
        graphs['openvino'] = outs[2]
        print(f'wrote {outs[2]} and {outs[3]}: OpenVINO IR, fp32 weights')
    reports = {}
    with tempfile.TemporaryDirectory() as work:
        batches, source = check_batches(cfg, check_images, (h, w), work, log)
        print(f'checking against {type(model).__name__}.predict on images '
              f'of {source}')
        for name, graph in graphs.items():
            runtime = ExportedModel(graph, name)
            for k, paths in enumerate(batches):
                run_cfg, run, note = cfg, runtime, ''
                if k and 'center_crop' in runtime.spec['preprocess']:
                    run_cfg, run = without_center_crop(cfg, runtime)
                    note = ', CenterCrop left out on both sides'
                report = parity_report(adapter, model, run_cfg, run.spec, run,
                                       paths)
                reports[(name, k)] = report
                print(f'  {name}, batch {k} ({len(paths)} images{note}): '
                      f'{parity.summary(report)}')
    problems = [
        f'{name}, batch {k}: {p}' for (name, k), r in reports.items()
        for p in r['problems']
    ]
    if problems:
        # A graph that computes something else is not left to be deployed.
        for path in outs:
            if osp.exists(path):
                os.remove(path)
        shown = '\n  '.join(problems[:20])
        more = f'\n  ({len(problems) - 20} more)' if len(problems) > 20 else ''
        raise ExportCheckError(
            'the exported graph differs from the library\'s predict:\n  '
            f'{shown}{more}\nremoved {", ".join(outs)}')
    if all(r.get('count') == 0 and 'agree' not in r for r in reports.values()):
        # Passed, but on nothing: say so rather than let it read as proof.
        log('warning: the model made no detection on the check images, so '
            'the check compared no boxes or masks; pass --check-images DIR '
            'with images on which it detects')
    return reports
