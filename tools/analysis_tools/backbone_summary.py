"""Build an SCNet backbone through a downstream library's registry and print
its stage shapes, parameter count and FLOPs.

    python tools/analysis_tools/backbone_summary.py                       #
    SCNet-50 via mmdet
    python tools/analysis_tools/backbone_summary.py --type mmscnet.SCNetV1d
    --depth 50
"""
import argparse

from mmscnet.utils.analysis import backbone_summary


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--type',
        default='mmscnet.SCNet',
        choices=('mmscnet.SCNet', 'mmscnet.SCNetV1d'))
    parser.add_argument(
        '--depth', type=int, default=50, choices=(50, 101, 152))
    parser.add_argument(
        '--registry',
        default='mmdet',
        choices=('mmdet', 'mmseg', 'mmpretrain'))
    parser.add_argument(
        '--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'))
    args = parser.parse_args(argv)

    cfg = dict(type=args.type, depth=args.depth)
    s = backbone_summary(cfg, tuple(args.shape), args.registry)
    print(f'{cfg} built by {args.registry}.registry.MODELS, input '
          f'1x3x{args.shape[0]}x{args.shape[1]}')
    for i, shape in enumerate(s['stages']):
        print(f'  stage {i + 1}: {shape}')
    print(f'  parameters: {s["params"]:,}')
    print(f'  FLOPs (multiply-adds): {s["flops"] / 1e9:.2f} G')


if __name__ == '__main__':
    main()
