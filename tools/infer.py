"""Run a trained model on your own images, a folder of images or a video, with
the config's library's own inferencer (mmdet, mmseg, mmpretrain or mmpose).

    python tools/infer.py demo.jpg
    configs/detection/toy/mask-rcnn_scnet50_fpn_toy-coco.py \
        work_dirs/demo-det/epoch_3.pth --out-dir outputs

Writes OUT_DIR/vis/ (painted images; a painted .mp4 per video) and
OUT_DIR/predictions.json.

A detector or segmentor exported by tools/deployment/export.py runs the same
way, in ONNX Runtime or OpenVINO, with the exported file for CHECKPOINT:

    python tools/infer.py demo.jpg CONFIG mask-rcnn.onnx \
        --backend onnxruntime --out-dir outputs
"""
import argparse
import sys

from mmscnet.apis.inference import (build_inferencer, check_out_dir,
                                    collect_inputs, run)
from mmscnet.apis.tool_setup import load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Inference on images, a folder or a video')
    parser.add_argument(
        'input', help='an image, a folder of images or a video')
    parser.add_argument(
        'config', help='an mmdet, mmseg, mmpretrain or mmpose config')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='weights (without: random weights); with --backend, the '
        'exported .onnx (or OpenVINO .xml)')
    parser.add_argument(
        '--backend',
        default='pytorch',
        choices=('pytorch', 'onnxruntime', 'openvino'),
        help='pytorch: the library\'s own inferencer; onnxruntime or '
        'openvino: the graph that tools/deployment/export.py wrote')
    parser.add_argument(
        '--out-dir', required=True, help='where vis/ and predictions.json go')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='score (mmdet) or keypoint score (mmpose) below which nothing is '
        'painted')
    parser.add_argument(
        '--det-config',
        help='mmpose top-down: a person detector config '
        '(default: each image is one person box)')
    parser.add_argument(
        '--det-checkpoint', help='mmpose top-down: the detector weights')
    parser.add_argument(
        '--det-cat-id',
        type=int,
        default=0,
        help="the detector's person class")
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an earlier predictions.json in OUT_DIR')
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if not (args.device == 'cpu' or args.device == 'cuda'
            or args.device.startswith('cuda:')):
        parser.error(
            f'--device must be cpu, cuda or cuda:N, got {args.device!r}')
    if args.backend != 'pytorch':
        if not args.checkpoint:
            parser.error(f'--backend {args.backend} needs the exported model '
                         '(.onnx or .xml) as CHECKPOINT')
        if args.device != 'cpu':
            parser.error(f'--backend {args.backend} runs on the CPU here: '
                         f'drop --device {args.device}')
    return args


def main(argv=None):
    args = parse_args(argv)
    # Bad inputs and an earlier result fail before the model is built.
    collect_inputs(args.input)
    check_out_dir(args.out_dir, args.overwrite)
    cfg = load_config(args.config)
    if args.backend != 'pytorch':
        from mmscnet.adapters import get_adapter
        inferencer = get_adapter(cfg.default_scope).runtime_inferencer(
            cfg, args.checkpoint, args.backend, score_thr=args.score_thr)
    else:
        inferencer = build_inferencer(
            cfg,
            args.checkpoint,
            args.device,
            args.score_thr,
            det_config=args.det_config,
            det_checkpoint=args.det_checkpoint,
            det_cat_id=args.det_cat_id)
    doc = run(
        args.input,
        inferencer,
        args.out_dir,
        args.batch_size,
        args.overwrite,
        meta=dict(
            library=cfg.default_scope,
            backend=args.backend,
            config=args.config,
            checkpoint=args.checkpoint))
    print(
        f'{len(doc["results"])} predictions: {args.out_dir}/predictions.json; '
        f'painted: {args.out_dir}/vis/',
        file=sys.stderr)
    return doc


if __name__ == '__main__':
    main()
