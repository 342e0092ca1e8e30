"""Export a whole detector (Faster R-CNN, Mask R-CNN) or segmentor (mmseg
EncoderDecoder) to ONNX, with torch's exporter, and check the graph against
PyTorch at two input sizes.

    python tools/deployment/export.py \\
        configs/detection/mask-rcnn_scnet50_fpn_1x_coco.py epoch_12.pth \\
        --out mask-rcnn.onnx --openvino

Writes OUT (.onnx), OUT's stem + .json (task, classes and the test
pipeline's preprocessing, which the runtime repeats) and, with --openvino,
OpenVINO IR (.xml + .bin, fp32). Run them on images with
``tools/infer.py IMAGE CONFIG OUT --backend onnxruntime|openvino``.
Batch size, height and width of the graph are free.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np
import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='an mmdet or mmseg config')
    p.add_argument(
        'checkpoint', nargs='?', help='weights (without: random weights)')
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument(
        '--openvino',
        action='store_true',
        help='also write OpenVINO IR (OUT with .xml and .bin)')
    p.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=(320, 320),
        metavar=('H', 'W'),
        help='the export and first check size (the graph takes others too)')
    p.add_argument(
        '--check-shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='the second check size (default: 64 pixels off --shape)')
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args(argv)
    if not args.out.endswith('.onnx'):
        p.error(f'--out must end in .onnx, got {args.out!r}')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        p.error(f'checkpoint not found: {args.checkpoint}')
    return args


def outputs_of(args):
    stem = args.out[:-len('.onnx')]
    return [args.out, stem + '.json'
            ] + ([stem + '.xml', stem + '.bin'] if args.openvino else [])


def build(cfg, checkpoint):
    """The config's model in eval mode with ``checkpoint`` loaded strictly,
    and its class names and palette."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    from mmscnet.adapters import get_adapter
    init_default_scope(cfg.default_scope)
    if checkpoint is None:
        print('no checkpoint given: exporting random weights', file=sys.stderr)
        cfg.model.get('backbone', {}).pop('init_cfg', None)
    model = MODELS.build(cfg.model)
    meta = {}
    if checkpoint:
        ckpt = load_checkpoint(
            model, checkpoint, map_location='cpu', strict=True)
        meta = ckpt.get('meta', {}).get('dataset_meta', {})
    else:
        model.init_weights()
    data_cfg = cfg.test_dataloader.dataset
    while 'dataset' in data_cfg:
        data_cfg = data_cfg['dataset']
    metainfo = data_cfg.get('metainfo', {})
    adapter = get_adapter(cfg.default_scope)
    classes = (
        meta.get('classes') or metainfo.get('classes')
        or adapter.dataset_classes(data_cfg['type']))
    palette = meta.get('palette') or metainfo.get('palette')
    return model.eval(), adapter, list(classes or []), palette


def check(module, run, example):
    """Largest difference between the graph and PyTorch on ``example``: for
    logits relative to their largest; for detections the larger of the
    largest score difference and a tenth of the largest box difference in
    pixels, or inf unless the same detections (count, labels) come out."""
    with torch.no_grad():
        ref = module(*example)
    ref = [o.numpy() for o in (ref if isinstance(ref, tuple) else (ref, ))]
    got = run({n: x.numpy() for n, x in zip(module.input_names, example)})
    if module.task == 'segmentation':
        return float(
            np.abs(got[0] - ref[0]).max() / max(np.abs(ref[0]).max(), 1e-12))
    if got[0].shape != ref[0].shape or (got[2] != ref[2]).any():
        return float('inf')
    return float(
        max(
            np.abs(got[0] - ref[0]).max(initial=0) / 10,
            np.abs(got[1] - ref[1]).max(initial=0)))


def main(argv=None):
    args = parse_args(argv)
    for path in outputs_of(args):
        if osp.exists(path) and not args.overwrite:
            raise SystemExit(f'{path} exists: pass --overwrite to replace it')
    from mmscnet.adapters.base import export_preprocess
    from mmscnet.apis.tool_setup import load_config
    from mmscnet.deploy.onnx import export_graph
    from mmscnet.deploy.runtime import open_session
    cfg = load_config(args.config)
    if cfg.default_scope not in ('mmdet', 'mmseg'):
        raise SystemExit(
            f'{args.config}: default_scope {cfg.default_scope!r}; this tool '
            'exports mmdet detectors and mmseg segmentors (mmpretrain '
            'classifiers and the backbone: tools/deployment/pytorch2onnx.py)')
    model, adapter, classes, palette = build(cfg, args.checkpoint)
    try:
        module = adapter.export_module(model)
        spec = dict(
            module.spec(),
            config=args.config,
            checkpoint=args.checkpoint,
            classes=classes,
            palette=palette,
            preprocess=export_preprocess(cfg, module.min_size))
    except ValueError as e:
        raise SystemExit(f'{args.config}: {e}')
    h, w = args.shape
    if min(h, w) < module.min_size:
        raise SystemExit(f'--shape must be at least {module.min_size} a '
                         f'side, got {h}x{w}')
    # Batch 2: a batch of one would be exported as a fixed size.
    export_graph(module, module.example(2, h, w), args.out, module.input_names,
                 module.output_names, module.dynamic_shapes())
    outs = outputs_of(args)
    with open(outs[1], 'w') as f:
        json.dump(spec, f, indent=1)
    print(f'wrote {args.out} (inputs {module.input_names}, outputs '
          f'{module.output_names}; batch, height and width free) and '
          f'{outs[1]}')
    runtimes = {'onnxruntime': open_session(args.out, 'onnxruntime')}
    if args.openvino:
        from mmscnet.deploy.openvino import convert_to_openvino
        convert_to_openvino(args.out, outs[2])
        runtimes['openvino'] = open_session(outs[2], 'openvino')
        print(f'wrote {outs[2]} and {outs[3]}: OpenVINO IR, fp32 weights')
    second = args.check_shape or (h + 64, max(w - 64, module.min_size))
    report = {}
    for n, (hh, ww) in ((2, (h, w)), (1, tuple(second))):
        example = module.example(n, hh, ww)
        for name, run in runtimes.items():
            diff = check(module, run, example)
            report[(name, n, hh, ww)] = diff
            print(f'  {name}, input {n}x3x{hh}x{ww}: largest difference to '
                  f'PyTorch {diff:.2e}')
    worst = max(report.values())
    if not worst <= 1e-3:
        # A graph that computes something else is not left to be deployed.
        for path in outs:
            if osp.exists(path):
                os.remove(path)
        raise SystemExit(f'the exported graph differs from PyTorch ({worst}):'
                         f' removed {", ".join(outs)}')
    return report


if __name__ == '__main__':
    main()
