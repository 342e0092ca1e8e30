"""Bad arguments and inputs raise errors that name the argument and the
accepted values."""
import pytest
import torch

from mmscnet.models import SCConv, SCNet, SCNetV1d


@pytest.mark.parametrize(
    'kwargs,match',
    [
        (dict(depth=42),
         r'depth must be one of \(18, 34, 50, 101, 152\), got 42'),
        (dict(depth=18, groups=32), r'SCNet-18 has basic blocks: leave them '
         r'at groups=1, base_width=32, avd=False, got 32, 32, False'),
        (dict(depth=34, base_width=4), r'got 1, 4, False'),
        (dict(depth=18, avd=True), r'got 1, 32, True'),
        (dict(depth=18, base_channels=33),
         r'SCNet-18 splits .* base_channels must be even, got 33'),
        (dict(depth=34, stem_channels=31), r'stem_channels must be even'),
        (dict(depth=50, out_indices=(0, 4)),
         r'out_indices .*within \[0, 3\].*got \(0, 4\)'),
        (dict(depth=50, out_indices=(-1, )), r'out_indices'),
        (dict(depth=50, out_indices=()), r'out_indices must be non-empty'),
        (dict(
            depth=50,
            num_stages=2,
            out_indices=(0, 1, 2),
            strides=(1, 2),
            dilations=(1, 1)), r'within \[0, 1\]'),
        (dict(depth=50,
              frozen_stages=5), r'frozen_stages must be in \[-1, 4\], got 5'),
        (dict(depth=50, frozen_stages=-2),
         r'frozen_stages must be in \[-1, 4\], got -2'),
        (dict(depth=50, num_stages=5), r'num_stages must be in \[1, 4\]'),
        (dict(depth=50,
              pooling_r=0), r'pooling_r must be an integer >= 1, got 0'),
        (dict(depth=50,
              pooling_r=2.5), r'pooling_r must be an integer >= 1, got 2.5'),
        (dict(depth=50, pooling_type='median'),
         r"pooling_type must be one of \('avg', 'max'\)"),
        (dict(depth=50, upsample_mode='bicubic'),
         r"upsample_mode must be one of \('nearest', 'bilinear'\), got "
         r"'bicubic'"),
        (dict(depth=50, strides=(1, 2, 2)),
         r'strides must have num_stages=4 entries, got 3'),
        (dict(depth=50, dilations=(1, 1, 2, 4, 8)),
         r'dilations must have num_stages=4 entries'),
        (dict(depth=50,
              style='caffe'), r"style must be one of \('pytorch',\)"),
        (dict(depth=50, out_indices=(1, 1)),
         r'out_indices must not repeat a stage, got \(1, 1\)'),
        # Branches of int(planes * base_width / 64) * groups channels: 0 here.
        (dict(depth=50, base_channels=1),
         r'base_channels=1, base_width=32, groups=1 give SCNet-50 '
         r'branches of 0 channels in layer1 .*raise base_channels or '
         r'base_width'),
        (dict(depth=50, base_channels=32, base_width=1),
         r'base_channels=32, base_width=1, groups=1 give .*0 channels'),
        (dict(depth=50,
              base_width=0), r'base_width must be an integer >= 1, got 0'),
        (dict(depth=50, groups=0), r'groups must be an integer >= 1, got 0'),
        (dict(depth=50, base_channels=0),
         r'base_channels must be an integer >= 1, got 0'),
        (dict(depth=50, deep_stem=True,
              stem_channels=1), r'deep_stem needs stem_channels >= 2'),
    ])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SCNet(**kwargs)


def test_bad_scconv_arguments():
    with pytest.raises(ValueError, match='pooling_r must be an integer >= 1'):
        SCConv(8, pooling_r=-1)
    with pytest.raises(ValueError, match='pooling_type must be one of'):
        SCConv(8, pooling_type='min')


def test_v1d_is_for_the_bottleneck_depths():
    with pytest.raises(
            ValueError,
            match=r'SCNetV1d is the released bottleneck'
            r' network .*got depth=18: for SCNet-18 use SCNet'):
        SCNetV1d(depth=18)


def test_v1d_refuses_turning_off_its_parts():
    with pytest.raises(ValueError, match='SCNetV1d always uses avd=True'):
        SCNetV1d(depth=50, avd=False)


def test_pretrained_and_init_cfg_together():
    with pytest.raises(
            ValueError, match='init_cfg and pretrained cannot be set'):
        SCNet(
            depth=50,
            pretrained='a.pth',
            init_cfg=dict(type='Pretrained', checkpoint='a.pth'))


@pytest.mark.parametrize('shape', [(1, 1, 64, 64), (1, 4, 64, 64),
                                   (3, 64, 64)])
def test_input_channels_mismatch(shape):
    model = SCNet(depth=50).eval()
    with pytest.raises(
            ValueError,
            match=r'expects input of shape \(N, 3, H, W\).*in_channels=3'):
        model(torch.rand(*shape))


def test_in_channels_other_than_three():
    model = SCNet(depth=50, in_channels=1).eval()
    assert model(torch.rand(1, 1, 64, 64))[0].shape[1] == 256
