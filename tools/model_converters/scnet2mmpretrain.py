"""Convert an SCNet ImageNet checkpoint of the authors' release (e.g.
scnet50-dc6a7e87.pth) to mmpretrain's ImageClassifier layout (backbone.*,
head.fc.*), for ``load_from`` or a classifier-level ``init_cfg``.

    python tools/model_converters/scnet2mmpretrain.py scnet50-dc6a7e87.pth
    scnet50_mmpretrain.pth

tools/test.py needs no conversion: it maps a released checkpoint itself.
"""
import argparse
import os
import sys

import torch

from mmscnet.utils.checkpoint_io import load_state_dict_file
from mmscnet.utils.converters import is_released_layout, released_to_mmpretrain


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint in the authors\' layout')
    parser.add_argument(
        'dst', help='where to write the mmpretrain-layout checkpoint')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace DST if it exists')
    args = parser.parse_args(argv)
    if os.path.exists(args.dst) and not args.overwrite:
        parser.error(f'{args.dst} exists; pass --overwrite to replace it')
    state_dict = load_state_dict_file(args.src)
    if not is_released_layout(state_dict):
        parser.error(f'{args.src} is not in the released SCNet layout '
                     '(expected top-level conv1.* and layer1.0.scconv.* keys)')
    converted = released_to_mmpretrain(state_dict)
    torch.save(
        {
            'state_dict': converted,
            'meta': {
                'converted_from': os.path.basename(args.src)
            }
        }, args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
