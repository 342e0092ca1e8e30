"""Convert an mmpose SCNet checkpoint to mmscnet's (the authors' released) layout.

    python tools/model_converters/mmpose2mmscnet.py SRC.pth DST.pth

The result loads with ``init_cfg=dict(type='Pretrained', checkpoint='DST.pth')``.
"""
import argparse
import os
import sys

import torch

from mmscnet.checkpoint_io import load_state_dict_file
from mmscnet.converters import convert_mmpose_scnet


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='mmpose checkpoint (top-down model or bare backbone)')
    parser.add_argument('dst', help='where to write the converted backbone state dict')
    parser.add_argument('--depth', type=int, choices=(50, 101, 152),
                        help='SCNet depth (default: inferred from the keys)')
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists')
    args = parser.parse_args(argv)
    if os.path.exists(args.dst) and not args.overwrite:
        parser.error(f'{args.dst} exists; pass --overwrite to replace it')

    state_dict, report = convert_mmpose_scnet(load_state_dict_file(args.src), args.depth)
    for name, keys in report.items():
        if keys:
            print(f'{name} ({len(keys)}): ' + ', '.join(keys[:20]) +
                  (' ...' if len(keys) > 20 else ''))
    torch.save(state_dict, args.dst)
    print(f'wrote {len(state_dict)} tensors to {args.dst}')
    return 1 if report['unmapped'] or report['missing'] else 0


if __name__ == '__main__':
    sys.exit(main())
