"""Effective receptive field (Luo et al. 2016) of SCNet beside ResNet of the
same depth: the paper's claim that self-calibration widens each location's
field of view, as a picture and as radii.

    python tools/analysis_tools/erf.py --depth 50 --stage 4 --out erf.png
    # random init
    python tools/analysis_tools/erf.py --scnet-checkpoint scnet50-dc6a7e87.pth
    \\
        --resnet-checkpoint resnet50.pth --images data/coco/val2017 --out
        erf.png

Inputs are Gaussian noise unless --images gives a folder (resized to
--size, ImageNet mean/std). Checkpoints: a backbone state dict, or a whole
model whose backbone.* keys are taken (e.g. a toy-trained detector).
"""
import argparse
import glob
import os.path as osp

import torch

from mmscnet.utils.analysis import effective_receptive_field, mass_radius

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def load_images(folder, size, num):
    import cv2
    paths = sorted(
        p for ext in ('jpg', 'jpeg', 'png')
        for p in glob.glob(osp.join(folder, f'*.{ext}')))
    if not paths:
        raise FileNotFoundError(f'no .jpg/.jpeg/.png images in {folder}')
    out = []
    for p in paths[:num]:
        img = cv2.imread(p)
        if img is None:
            raise ValueError(f'cannot read image {p}')
        img = cv2.resize(img, (size, size))[..., ::-1].astype(
            'float32')  # BGR -> RGB
        out.append(torch.from_numpy((img - MEAN) / STD).permute(2, 0, 1))
    return torch.stack(out).float()


def build(name, depth, checkpoint):
    if name == 'SCNet':
        from mmscnet.models import SCNet
        model = SCNet(depth=depth)
    else:
        from mmdet.models.backbones import ResNet
        model = ResNet(depth=depth)
    if checkpoint:
        from mmscnet.utils.checkpoint_io import load_state_dict_file
        state = {
            k[len('backbone.'):] if k.startswith('backbone.') else k: v
            for k, v in load_state_dict_file(checkpoint).items()
        }
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        # a map of random weights must not pass for the checkpoint's
        if missing:
            raise ValueError(
                f'{checkpoint} does not fill the {name}-{depth} backbone: '
                f'{len(missing)} of {len(own)} tensors missing, e.g. '
                f'{missing[:3]}')
        model.load_state_dict({k: state[k]
                               for k in own})  # heads (fc.*, neck...) left out
    model.eval()  # mmdet's ResNet.train() returns None, so no chaining
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--depth', type=int, default=50, choices=(50, 101))
    parser.add_argument('--stage', type=int, default=4, choices=(1, 2, 3, 4))
    parser.add_argument(
        '--size', type=int, default=224, help='input side in pixels')
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument(
        '--images', help='folder of images (default: Gaussian noise)')
    parser.add_argument('--scnet-checkpoint')
    parser.add_argument('--resnet-checkpoint')
    parser.add_argument('--out', required=True, help='output image (.png)')
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error(f'--size must be at least 32 pixels, got {args.size}')
    torch.manual_seed(0)
    try:
        if args.images:
            images = load_images(args.images, args.size, args.num_images)
        else:
            images = torch.randn(args.num_images, 3, args.size, args.size)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))

    maps, titles = [], []
    for name, ckpt in (('SCNet', args.scnet_checkpoint),
                       ('ResNet', args.resnet_checkpoint)):
        try:
            model = build(name, args.depth, ckpt)
        except (FileNotFoundError, ValueError) as e:
            parser.error(str(e))
        erf = effective_receptive_field(
            lambda x, m=model: m(x)[args.stage - 1], images)
        r50, r90 = mass_radius(erf, 0.5), mass_radius(erf, 0.9)
        weights = 'random init' if not ckpt else osp.basename(ckpt)
        print(
            f'{name}-{args.depth} stage {args.stage} ({weights}): 50% of the '
            f'ERF within {r50} px of the centre, 90% within {r90} px (input '
            f'{args.size}x{args.size})')
        maps.append(erf)
        titles.append(f'{name}-{args.depth} stage {args.stage} ({weights})\n'
                      f'r50 = {r50} px, r90 = {r90} px')

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    top = max(float(m.max()) for m in maps)
    for ax, erf, title in zip(axes, maps, titles):
        # A square root shows the tails; one colour scale for both panels.
        ax.imshow(erf.sqrt().numpy(), cmap='viridis', vmin=0, vmax=top**0.5)
        ax.set_title(title, fontsize=10)
        ax.axis('off')
    fig.suptitle(
        'effective receptive field of the centre unit (sqrt of gradient mass)')
    fig.tight_layout(rect=(0, 0, 1, 0.94))  # room for the suptitle
    fig.savefig(args.out, dpi=100)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
