"""Checkpoint layouts in the wild, mapped onto the released SCNet layout.

mmscnet's backbone uses the authors' key names, so their checkpoints need no
conversion. mmpose's SCNet (top-down keypoint models) names the two 1x1
projections after its ResNet: ``conv1/bn1`` (branch a) and ``conv2/bn2``
(branch b), under a ``backbone.`` prefix.

Pure key mappings: reading files is :mod:`mmscnet.utils.checkpoint_io`'s.
"""
import re
from collections import OrderedDict

from mmengine.logging import print_log

# Blocks per stage of the released SCNets.
RELEASED_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def released_layout(depth):
    """Key -> shape of a released SCNet backbone (plain stem, BN, 1000-class
    training without the fc), written out from the paper's architecture: what
    a converted checkpoint must fill, with no model built."""
    layout = OrderedDict()

    def conv(name, out, inp, k):
        layout[f'{name}.weight'] = (out, inp, k, k)

    def bn(name, c):
        for p in ('weight', 'bias', 'running_mean', 'running_var'):
            layout[f'{name}.{p}'] = (c, )
        layout[f'{name}.num_batches_tracked'] = ()

    conv('conv1', 64, 3, 7)
    bn('bn1', 64)
    inplanes = 64
    for i, blocks in enumerate(RELEASED_DEPTHS[depth]):
        planes = 64 * 2**i
        width = planes // 2  # each branch: half of ResNet's 3x3 width
        for j in range(blocks):
            b = f'layer{i + 1}.{j}'
            conv(f'{b}.conv1_a', width, inplanes, 1)
            bn(f'{b}.bn1_a', width)
            conv(f'{b}.conv1_b', width, inplanes, 1)
            bn(f'{b}.bn1_b', width)
            for k, norm in (('k1.0', 'k1.1'), ('scconv.k2.1', 'scconv.k2.2'),
                            ('scconv.k3.0', 'scconv.k3.1'), ('scconv.k4.0',
                                                             'scconv.k4.1')):
                conv(f'{b}.{k}', width, width, 3)
                bn(f'{b}.{norm}', width)
            conv(f'{b}.conv3', planes * 4, width * 2, 1)
            bn(f'{b}.bn3', planes * 4)
            if j == 0:
                conv(f'{b}.downsample.0', planes * 4, inplanes, 1)
                bn(f'{b}.downsample.1', planes * 4)
            inplanes = planes * 4
    return layout


# mmpose block key -> released block key (inside layerN.i.)
_MMPOSE_BLOCK_KEYS = {
    'conv1.': 'conv1_a.',
    'bn1.': 'bn1_a.',
    'conv2.': 'conv1_b.',
    'bn2.': 'bn1_b.'
}
_BLOCK = re.compile(r'^(layer\d+\.\d+\.)(conv1\.|bn1\.|conv2\.|bn2\.)(.*)$')


def infer_depth(state_dict):
    """Depth from the number of blocks in stage 3: 6 -> 50, 23 -> 101, 36 ->
    152."""
    blocks = {
        int(m.group(1))
        for k in state_dict
        for m in [re.match(r'^layer3\.(\d+)\.', k)] if m
    }
    depth = {
        stages[2]: d
        for d, stages in RELEASED_DEPTHS.items()
    }.get(len(blocks))
    if depth is None:
        raise ValueError(
            f'cannot infer the SCNet depth: stage 3 has {len(blocks)} blocks '
            '(expected 6, 23 or 36 for depth 50, 101 or 152)')
    return depth


def convert_mmpose_scnet(state_dict, depth=None):
    """Map an mmpose SCNet state dict onto mmscnet's (released) layout.

    Args:
        state_dict (dict): The mmpose model's state dict (``backbone.*`` keys
            and head keys) or a bare backbone state dict.
        depth (int, optional): SCNet depth; inferred from the keys when None.

    Returns:
        tuple(OrderedDict, dict): the converted backbone state dict and a
        report with ``skipped`` (keys outside the backbone, e.g. the
        keypoint head), ``unmapped`` (backbone keys with no place in SCNet, or
        whose shape differs) and ``missing`` (SCNet keys left unfilled).
    """
    has_prefix = any(k.startswith('backbone.') for k in state_dict)
    converted, skipped = OrderedDict(), []
    for key, value in state_dict.items():
        if has_prefix:
            if not key.startswith('backbone.'):
                skipped.append(key)
                continue
            key = key[len('backbone.'):]
        m = _BLOCK.match(key)
        if m:
            key = m.group(1) + _MMPOSE_BLOCK_KEYS[m.group(2)] + m.group(3)
        converted[key] = value

    target = released_layout(depth or infer_depth(converted))
    unmapped = [
        k for k, v in converted.items()
        if k not in target or tuple(v.shape) != target[k]
    ]
    for k in unmapped:
        del converted[k]
    missing = [k for k in target if k not in converted]
    return converted, dict(skipped=skipped, unmapped=unmapped, missing=missing)


def convert_mmpose_topdown(state_dict, depth=None):
    """A whole mmpose top-down SCNet model (``backbone.*`` and ``head.*``) for
    the same model with ``backbone=dict(type='mmscnet.SCNet')``: the backbone
    mapped by :func:`convert_mmpose_scnet` under its ``backbone.`` prefix,
    every
    other key (the head) kept as it is. Returns the state dict and the report
    (``kept`` lists the keys outside the backbone)."""
    if not any(k.startswith('backbone.') for k in state_dict):
        raise ValueError(
            'not a whole mmpose model: no backbone.* keys (a bare backbone '
            'converts without keeping a head)')
    backbone, report = convert_mmpose_scnet(state_dict, depth)
    converted = OrderedDict(('backbone.' + k, v) for k, v in backbone.items())
    kept = report.pop('skipped')
    converted.update((k, state_dict[k]) for k in kept)
    return converted, dict(report, kept=kept)


# The authors' full ImageNet classifier (conv1 ... layer4, fc) inside
# mmpretrain's ImageClassifier: backbone.* and head.fc.*. Applied in order.
RELEASED_TO_MMPRETRAIN = ((r'^fc\.', 'head.fc.'), (r'^(?!head\.)',
                                                   'backbone.'))


def is_released_layout(state_dict):
    """True for a state dict in the authors' layout (top-level conv1 and
    layer1..)."""
    stem = ('conv1.weight', 'conv1.0.weight')
    return (any(k in state_dict for k in stem)
            and any(k.startswith('layer1.0.scconv.') for k in state_dict))


def rename_released_classifier(module, state_dict, prefix, *args):
    """``load_state_dict`` pre-hook of an mmpretrain classifier (or a TTA model
    around one): a checkpoint in the authors' layout (``conv1.*``,
    ``layer*.*``, ``fc.*``) is renamed to ``backbone.*`` / ``head.fc.*`` as it
    loads, so that ``load_from`` reads it once, as it is. Other checkpoints
    pass untouched."""
    if prefix or not is_released_layout(state_dict):
        return
    # Where the classifier sits in ``module``: '' or 'module.' in a TTA one.
    inner = next(k[:k.index('backbone.')] for k in module.state_dict()
                 if 'backbone.layer1.0.' in k)
    renamed = {
        inner + k: v
        for k, v in released_to_mmpretrain(state_dict).items()
    }
    state_dict.clear()
    state_dict.update(renamed)
    print_log(
        'checkpoint in the SCNet release layout: mapped to backbone.* / '
        'head.fc.*',
        logger='current')


def released_to_mmpretrain(state_dict):
    """Rename a released SCNet classifier's keys to mmpretrain's
    ImageClassifier."""
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in RELEASED_TO_MMPRETRAIN:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
