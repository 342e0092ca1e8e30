"""Evaluate a checkpoint with an mmdet, mmseg, mmpretrain or mmpose config
(mmdet's interface).

    python tools/test.py \
        configs/detection/mask-rcnn_scnet50_fpn_1x_coco.py CHECKPOINT

A detector or segmentor exported by tools/deployment/export.py is evaluated
the same way, its graph in ONNX Runtime or OpenVINO in place of CHECKPOINT:

    python tools/test.py CONFIG mask-rcnn.onnx --backend onnxruntime
    python tools/test.py CONFIG mask-rcnn.xml --backend openvino
"""
import argparse

from mmscnet.apis.tool_setup import (BACKENDS, add_common_args,
                                     apply_backend_test_args, apply_test_args,
                                     build_runner, load_config,
                                     parse_tool_args)
from mmscnet.datasets.datacheck import annotation_errors_named
from mmscnet.utils.dist_utils import close_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file; with --backend, the exported .onnx (or '
        'OpenVINO .xml)')
    parser.add_argument(
        '--backend',
        default='pytorch',
        choices=BACKENDS,
        help="pytorch: the config's model with CHECKPOINT; onnxruntime or "
        'openvino: the graph that tools/deployment/export.py wrote, run '
        "through the runtime's own preprocessing")
    parser.add_argument(
        '--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images are saved '
        '(for mmdet: under WORK_DIR/TIMESTAMP/)')
    parser.add_argument(
        '--tta', action='store_true', help='test-time augmentation')
    parser.add_argument(
        '--deploy',
        nargs='?',
        const='fp32',
        choices=('fp32', 'bf16'),
        help='deploy mode: BatchNorm folded into the convs and channels_last; '
        'bf16: the backbone also under bf16 autocast')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='with --deploy: also compile the backbone (torch.compile, '
        'inductor, frozen weights); compiles on the first batch and on new '
        'input shapes')
    add_common_args(parser)
    args = parse_tool_args(parser, argv)
    if args.backend != 'pytorch':
        for flag, given in (('--tta', args.tta), ('--deploy', args.deploy),
                            ('--compile', args.compile)):
            if given:
                parser.error(f'{flag} changes the PyTorch model; the '
                             f'exported graph (--backend {args.backend}) '
                             'runs as it was exported')
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.launcher)
    model = None
    if args.backend == 'pytorch':
        apply_test_args(cfg, args.config, args.checkpoint, args.work_dir,
                        args.out, args.show_dir, args.tta, args.deploy,
                        args.compile)
    else:
        model = apply_backend_test_args(cfg, args.config, args.checkpoint,
                                        args.backend, args.work_dir, args.out,
                                        args.show_dir)
    with annotation_errors_named(cfg):
        metrics = build_runner(cfg, model).test()
    close_distributed(cfg)
    return metrics


if __name__ == '__main__':
    main()
