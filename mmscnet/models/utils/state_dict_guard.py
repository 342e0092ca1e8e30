"""SCNet's guard against weights that do not fit it."""
import re


def refuse_unfit_state(module, state_dict, prefix, *args):
    """``load_state_dict`` pre-hook of SCNet: refuse weights that do not fit
    it.

    mmengine loads ``Pretrained`` weights with ``strict=False`` and only logs
    what it could not place, so a checkpoint of another architecture (a
    torchvision ResNet-50, a whole detector without ``prefix='backbone.'``)
    or depth (SCNet-101 for SCNet-50) would leave the backbone randomly
    initialised, or silently truncated, behind a warning. Raises ValueError
    when fewer than half of the backbone's tensors would load, or when a stage
    of the checkpoint has more blocks than this backbone. Partial fits above
    that (a v1d stem, another ``in_channels``) load as mmengine does, with
    every missing key and shape mismatch logged.
    """
    own = {
        k: v
        for k, v in module.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    present = [k for k in own if prefix + k in state_dict]
    mismatched = [
        k for k in present if state_dict[prefix + k].shape != own[k].shape
    ]
    loaded = len(present) - len(mismatched)
    name = f'{type(module).__name__}-{module.depth}'
    if loaded < len(own) / 2:
        theirs = [k[len(prefix):] for k in state_dict if k.startswith(prefix)]
        shapes = '; '.join(
            f'{k}: {tuple(state_dict[prefix + k].shape)} in the checkpoint, '
            f'{tuple(own[k].shape)} here' for k in mismatched[:3])
        raise ValueError(
            f'the weights do not fit {name}: {loaded} of its {len(own)} '
            f'tensors would load ({len(own) - len(present)} missing, '
            f'{len(mismatched)} of another '
            f'shape{": " + shapes if shapes else ""}). The checkpoint holds '
            f'{len(theirs)} tensors under {prefix or "the top level"!r}, e.g. '
            f'{theirs[:3]}. It is not an SCNet checkpoint in the released '
            'layout (convert an mmpose one with '
            'tools/model_converters/mmpose2mmscnet.py); for a whole model\'s '
            'checkpoint, set prefix=\'backbone.\' in init_cfg')
    for i, layer in enumerate(module.res_layers, 1):
        blocks = {
            int(m.group(1))
            for k in state_dict
            for m in
            [re.match(re.escape(f'{prefix}layer{i}.') + r'(\d+)\.', k)] if m
        }
        if blocks and max(blocks) >= len(getattr(module, layer)):
            raise ValueError(
                f'the weights do not fit {name}: the checkpoint has '
                f'{max(blocks) + 1} blocks in {layer}, {name} has '
                f'{len(getattr(module, layer))} (weights of another depth?)')
