"""Write one of the small, deterministic toy datasets (person / ball / box)
used
by the demo and the tests.

    python tools/misc/generate_toy_data.py coco data/toy_coco   # boxes,
    polygon masks, keypoints
    python tools/misc/generate_toy_data.py pose data/toy_pose   # persons in
    varied poses, keypoints only
    python tools/misc/generate_toy_data.py seg data/toy_seg     # mmseg folder
    layout
    python tools/misc/generate_toy_data.py cls data/toy_cls     # mmpretrain
    CustomDataset layout
"""
import argparse
import os.path as osp
import shutil

from mmscnet.testing import toy_data as synthetic

GENERATORS = {
    'coco': (synthetic.generate_toy_coco, 240, 48, 160),
    'pose': (synthetic.generate_toy_keypoints, 400, 60, 160),
    'seg': (synthetic.generate_toy_segmentation, 64, 16, 128),
    'cls': (synthetic.generate_toy_classification, 60, 30, 64),
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('kind', choices=sorted(GENERATORS))
    parser.add_argument('out_dir')
    parser.add_argument(
        '--num-train',
        type=int,
        help='default: 240 coco, 400 pose, 64 seg, 60 cls')
    parser.add_argument(
        '--num-val',
        type=int,
        help='default: 48 coco, 60 pose, 16 seg, 30 cls')
    parser.add_argument(
        '--size',
        type=int,
        help='image side; default: 160 coco and pose, 128 seg, 64 cls')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite', action='store_true', help='replace an existing OUT_DIR')
    args = parser.parse_args(argv)
    generate, num_train, num_val, size = GENERATORS[args.kind]
    size = args.size or size
    if size < 32:
        parser.error(f'--size must be at least 32 pixels, got {size}')
    if osp.exists(args.out_dir):
        if not args.overwrite:
            parser.error(
                f'{args.out_dir} exists; pass --overwrite to replace it')
        shutil.rmtree(args.out_dir)
    generate(
        args.out_dir,
        num_train=args.num_train or num_train,
        num_val=args.num_val or num_val,
        image_size=(size, size),
        seed=args.seed)
    print(f'wrote the toy {args.kind} set to {args.out_dir}')


if __name__ == '__main__':
    main()
