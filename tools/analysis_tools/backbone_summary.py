"""Build an SCNet backbone through a downstream library's registry and print
its stage shapes, parameter count and FLOPs; with --compare, beside the
library's own ResNet (or ResNeXt, with --groups) of the same depth and width.

    python tools/analysis_tools/backbone_summary.py         # SCNet-50, mmdet
    python tools/analysis_tools/backbone_summary.py --type mmscnet.SCNetV1d
    python tools/analysis_tools/backbone_summary.py --depth 18 --compare
    python tools/analysis_tools/backbone_summary.py --groups 32 \\
        --base-width 2 --compare      # SCNeXt-50 (32x4d) against ResNeXt-50
"""
import argparse

from mmscnet.utils.analysis import backbone_summary


def baseline(args):
    """The library's ResNet/ResNeXt whose 3x3 width equals SCNet's two
    branches together: ResNeXt's width per group is 2 x SCNet's base_width
    (each SCNet branch has the groups)."""
    cfg = dict(type='ResNet', depth=args.depth, out_indices=(0, 1, 2, 3))
    if args.groups > 1:
        # mmdet's ResNeXt names the width per group base_width, mmpretrain's
        # width_per_group; mmseg has mmdet's.
        width = ('width_per_group'
                 if args.registry == 'mmpretrain' else 'base_width')
        cfg.update(type='ResNeXt', groups=args.groups)
        cfg[width] = 2 * args.base_width
    return cfg


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--type',
        default='mmscnet.SCNet',
        choices=('mmscnet.SCNet', 'mmscnet.SCNetV1d'))
    parser.add_argument(
        '--depth', type=int, default=50, choices=(18, 34, 50, 101, 152))
    parser.add_argument(
        '--groups', type=int, default=1, help='cardinality (SCNeXt)')
    parser.add_argument(
        '--base-width',
        type=int,
        default=32,
        help="width per group of each of the bottleneck's two branches "
        '(released: 32; SCNeXt 32x4d: 2)')
    parser.add_argument(
        '--registry',
        default='mmdet',
        choices=('mmdet', 'mmseg', 'mmpretrain'))
    parser.add_argument(
        '--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'))
    parser.add_argument(
        '--compare',
        action='store_true',
        help="also the registry's ResNet/ResNeXt of the same depth and width")
    args = parser.parse_args(argv)

    cfg = dict(type=args.type, depth=args.depth)
    if args.groups != 1 or args.base_width != 32:
        cfg.update(groups=args.groups, base_width=args.base_width)
    rows = [(cfg, backbone_summary(cfg, tuple(args.shape), args.registry))]
    if args.compare:
        other = baseline(args)
        rows.append(
            (other, backbone_summary(other, tuple(args.shape), args.registry)))
    for c, s in rows:
        print(f'{c} built by {args.registry}.registry.MODELS, input '
              f'1x3x{args.shape[0]}x{args.shape[1]}')
        for i, shape in enumerate(s['stages']):
            print(f'  stage {i + 1}: {shape}')
        print(f'  parameters: {s["params"]:,}')
        print(f'  FLOPs (multiply-adds): {s["flops"] / 1e9:.2f} G')
    if args.compare:
        (_, a), (other, b) = rows
        print(f'{args.type} / {other["type"]}: parameters '
              f'{a["params"] / b["params"]:.3f}x, FLOPs '
              f'{a["flops"] / b["flops"]:.3f}x')


if __name__ == '__main__':
    main()
