"""Write the small, deterministic toy COCO set (person / ball / box) used by the
demo and the tests: images, boxes, polygon masks and person keypoints.

    python tools/misc/generate_toy_coco.py data/toy_coco
"""
import argparse
import os.path as osp
import shutil

from mmscnet.synthetic import generate_toy_coco


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', nargs='?', default='data/toy_coco')
    parser.add_argument('--num-train', type=int, default=240)
    parser.add_argument('--num-val', type=int, default=48)
    parser.add_argument('--size', type=int, nargs=2, default=(160, 160), metavar=('H', 'W'))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing OUT_DIR')
    args = parser.parse_args(argv)
    if min(args.size) < 64:
        parser.error(f'--size must be at least 64x64 pixels, got {args.size}')
    if osp.exists(args.out_dir):
        if not args.overwrite:
            parser.error(f'{args.out_dir} exists; pass --overwrite to replace it')
        shutil.rmtree(args.out_dir)
    paths = generate_toy_coco(args.out_dir, args.num_train, args.num_val, tuple(args.size),
                              seed=args.seed)
    print(f'wrote {args.num_train} train and {args.num_val} val images; annotations: '
          + ', '.join(paths.values()))


if __name__ == '__main__':
    main()
