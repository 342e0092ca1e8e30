"""Export a whole detector (Faster R-CNN, Mask R-CNN, Cascade (Mask) R-CNN,
RetinaNet, FCOS, ATSS), segmentor (mmseg EncoderDecoder) or classifier
(mmpretrain ImageClassifier) to ONNX, with torch's exporter, and check the
graph, run through the runtime, against the library's own predict on real
images at two input sizes (mmscnet.deploy.export_model).

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
import os.path as osp


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='an mmdet, mmseg or mmpretrain config')
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
        help='the export size (the graph takes others too)')
    p.add_argument(
        '--check-images',
        metavar='DIR',
        help='check the graph on the first images of DIR (default: of the '
        "config's val set)")
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args(argv)
    if not args.out.endswith('.onnx'):
        p.error(f'--out must end in .onnx, got {args.out!r}')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        p.error(f'checkpoint not found: {args.checkpoint}')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmscnet.deploy.export_model import ExportCheckError, export
    try:
        return export(
            args.config,
            args.checkpoint,
            args.out,
            openvino=args.openvino,
            shape=tuple(args.shape),
            check_images=args.check_images,
            overwrite=args.overwrite)
    except (ValueError, FileExistsError, FileNotFoundError,
            ExportCheckError) as e:
        raise SystemExit(str(e))


if __name__ == '__main__':
    main()
