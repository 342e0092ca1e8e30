"""Argument checks of the SCNet backbones: a wrong value stops at build time
with a message that names the argument and the accepted values, instead of
failing in forward far from its cause."""
import warnings


def check_choice(name, value, accepted):
    if value not in accepted:
        raise ValueError(f'{name} must be one of {accepted}, got {value!r}')


def check_style(style):
    """SCNet is pytorch style only: the released ImageNet weights are, and
    the stride sits in the self-calibration branches, not in a 1x1 conv.
    mmdet's caffe-style configs (FCOS, CenterNet ...) also normalise in BGR
    with caffe's mean and unit std, so say what to change besides style."""
    if style != 'pytorch':
        raise ValueError(
            f"style must be one of ('pytorch',), got {style!r}: the authors' "
            'SCNet weights are pytorch style (ImageNet RGB mean and std), and '
            'the stride is in the self-calibration branches. For a '
            "caffe-style config set backbone.style='pytorch' and the "
            'pytorch-style data preprocessor: mean=[123.675, 116.28, 103.53], '
            'std=[58.395, 57.12, 57.375], bgr_to_rgb=True')


def check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f'{name} must be an integer >= 1, got {value!r}')


def check_stages(num_stages, strides, dilations, out_indices, frozen_stages):
    """Returns ``out_indices`` sorted: the maps come back in stage order
    whatever the order given, as from mmdet's ResNet."""
    if not 1 <= num_stages <= 4:
        raise ValueError(f'num_stages must be in [1, 4], got {num_stages!r}')
    for name, value in (('strides', strides), ('dilations', dilations)):
        if len(value) != num_stages:
            raise ValueError(
                f'{name} must have num_stages={num_stages} entries, '
                f'got {len(value)}: {tuple(value)}')
    out_indices = tuple(out_indices)
    if not out_indices or any(not 0 <= i < num_stages for i in out_indices):
        raise ValueError('out_indices must be non-empty and within [0, '
                         f'{num_stages - 1}] (num_stages={num_stages}), '
                         f'got {out_indices}')
    if len(set(out_indices)) != len(out_indices):
        raise ValueError(
            f'out_indices must not repeat a stage, got {out_indices}')
    if not -1 <= frozen_stages <= num_stages:
        raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got '
                         f'{frozen_stages!r}')
    return tuple(sorted(out_indices))


def check_widths(depth, base_channels, base_width, groups, stem_channels,
                 deep_stem, layer1_width):
    """``layer1_width``: the branch width of the narrowest stage. A branch of
    0 channels builds (with only a torch warning) and then fails in
    forward."""
    for name, value in (('base_channels', base_channels), ('base_width',
                                                           base_width),
                        ('groups', groups), ('stem_channels', stem_channels)):
        check_positive_int(name, value)
    if deep_stem and stem_channels < 2:
        raise ValueError(
            f'deep_stem needs stem_channels >= 2 (its first convs have '
            f'stem_channels // 2 channels), got {stem_channels}')
    if layer1_width < 1:
        raise ValueError(
            f'base_channels={base_channels}, base_width={base_width}, '
            f'groups={groups} give SCNet-{depth} branches of 0 channels in '
            'layer1 (each branch has int(planes * base_width / 64) * groups '
            'channels, planes = base_channels at layer1): raise '
            'base_channels or base_width (released: 64 and 32)')


def check_basic(depth, base_channels, stem_channels, groups, base_width, avd):
    """SCNet-18/34: the bottleneck's arguments at their defaults, and widths
    that split in two halves."""
    if groups != 1 or base_width != 32 or avd:
        raise ValueError(
            f'groups, base_width and avd shape the bottleneck (depth 50, 101, '
            f'152); SCNet-{depth} has basic blocks: leave them at groups=1, '
            f'base_width=32, avd=False, got {groups}, {base_width}, {avd}')
    for name, value in (('base_channels', base_channels), ('stem_channels',
                                                           stem_channels)):
        if value % 2:
            raise ValueError(
                f'SCNet-{depth} splits each 3x3 conv\'s channels in two '
                f'halves: {name} must be even, got {value}')


def pretrained_init_cfg(pretrained, init_cfg):
    """The deprecated ``pretrained=PATH`` as mmdet's ResNet takes it."""
    if init_cfg is not None:
        raise ValueError(
            'init_cfg and pretrained cannot be set at the same time')
    if not isinstance(pretrained, str):
        raise TypeError(
            f'pretrained must be a str or None, got {type(pretrained)}')
    warnings.warn('DeprecationWarning: pretrained is deprecated, '
                  'please use "init_cfg" instead')
    return dict(type='Pretrained', checkpoint=pretrained)


def check_branch_width(width, planes, base_width, groups):
    if width < 1:
        raise ValueError(
            f'planes={planes}, base_width={base_width}, groups={groups} give '
            f'branches of {width} channels (int(planes * base_width / 64) * '
            'groups); raise planes or base_width')


def check_v1d(depth, is_bottleneck_depth, kwargs):
    """SCNetV1d: a released bottleneck depth, and its three parts on (each
    popped from ``kwargs``)."""
    if not is_bottleneck_depth:
        raise ValueError(
            f'SCNetV1d is the released bottleneck network (depth 50, 101 or '
            f'152), got depth={depth}: for SCNet-{depth} use SCNet, which '
            'takes deep_stem and avg_down too')
    for key in ('deep_stem', 'avg_down', 'avd'):
        if not kwargs.pop(key, True):
            raise ValueError(
                f'SCNetV1d always uses {key}=True; use SCNet to turn it off')
