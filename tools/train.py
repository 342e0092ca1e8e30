"""Train a model from an mmdet, mmseg, mmpretrain or mmpose config
(mmdetection's interface).

    python tools/train.py configs/detection/faster-rcnn_scnet50_fpn_1x_coco.py
"""
import argparse

from mmscnet.apis.tool_setup import (add_common_args, apply_train_args,
                                     build_runner, load_config,
                                     parse_tool_args)
from mmscnet.datasets.datacheck import annotation_errors_named
from mmscnet.utils.dist_utils import close_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the LR by the actual batch size (auto_scale_lr in the '
        'config)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a path from the latest '
        'checkpoint in the work dir')
    add_common_args(parser)
    return parse_tool_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.launcher)
    apply_train_args(cfg, args.config, args.work_dir, args.amp,
                     args.auto_scale_lr, args.resume)
    with annotation_errors_named(cfg):
        build_runner(cfg).train()
    close_distributed(cfg)


if __name__ == '__main__':
    main()
