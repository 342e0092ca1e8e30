"""Convert an mmpose SCNet checkpoint to mmscnet's (the authors' released)
layout.

    python tools/model_converters/mmpose2mmscnet.py SRC.pth DST.pth
        the backbone alone; loads with init_cfg=dict(type='Pretrained',
        checkpoint='DST.pth')
    python tools/model_converters/mmpose2mmscnet.py SRC.pth DST.pth --keep-head
        a whole top-down model (e.g. mmpose's published SCNet keypoint
        checkpoints):
        backbone mapped, head kept; evaluates with configs/keypoint/ through
        tools/test.py CONFIG DST.pth
"""
import argparse
import os
import sys

import torch

from mmscnet.utils.checkpoint_io import load_state_dict_file
from mmscnet.utils.converters import (convert_mmpose_scnet,
                                      convert_mmpose_topdown)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'src', help='mmpose checkpoint (top-down model or bare backbone)')
    parser.add_argument(
        'dst', help='where to write the converted backbone state dict')
    parser.add_argument(
        '--depth',
        type=int,
        choices=(50, 101, 152),
        help='SCNet depth (default: inferred from the keys)')
    parser.add_argument(
        '--keep-head',
        action='store_true',
        help='convert the whole top-down model: backbone.* mapped, the head '
        'kept')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace DST if it exists')
    args = parser.parse_args(argv)
    if os.path.exists(args.dst) and not args.overwrite:
        parser.error(f'{args.dst} exists; pass --overwrite to replace it')

    source = load_state_dict_file(args.src)
    if args.keep_head:
        try:
            state_dict, report = convert_mmpose_topdown(source, args.depth)
        except ValueError as e:
            parser.error(f'{args.src}: {e}')
    else:
        state_dict, report = convert_mmpose_scnet(source, args.depth)
    for name, keys in report.items():
        if keys:
            print(f'{name} ({len(keys)}): ' + ', '.join(keys[:20]) +
                  (' ...' if len(keys) > 20 else ''))
    # A whole model is saved as mmengine saves one, so that load_from reads it.
    torch.save(
        dict(state_dict=state_dict) if args.keep_head else state_dict,
        args.dst)
    print(f'wrote {len(state_dict)} tensors to {args.dst}')
    return 1 if report['unmapped'] or report['missing'] else 0


if __name__ == '__main__':
    sys.exit(main())
