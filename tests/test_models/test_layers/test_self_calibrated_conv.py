"""Self-calibration beyond the released bottlenecks: SelfCalibratedConv2d,
the ``mmscnet.SCConv2d`` conv factory and SCNet-18/34."""
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_conv_layer

from mmscnet.models import (SCBasicBlock, SCNet, SelfCalibratedConv2d,
                            calibration_problem)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def n_calibrated(module):
    return sum(isinstance(m, SelfCalibratedConv2d) for m in module.modules())


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        False, 0.0, bn.eps)


def _randomise(module):
    # Non-trivial norm statistics, so that a norm in the wrong place shows.
    torch.manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return module.eval()


# ------------------------------------------------------- the conv itself
@pytest.mark.parametrize('cin,cout,stride,dilation,groups', [
    (8, 8, 1, 1, 1),
    (8, 16, 2, 1, 1),
    (16, 8, 1, 2, 2),
    (12, 20, 2, 1, 2),
])
def test_equations_of_the_channel_split(cin, cout, stride, dilation, groups):
    """Y = [K1(X1), K4(K3(X2) * sigmoid(X2 + Up(K2(Pool_r(X2)))))], with the
    module's own weights, X1/X2 the two halves of the input's channels."""
    m = _randomise(
        SelfCalibratedConv2d(
            cin,
            cout,
            stride=stride,
            dilation=dilation,
            groups=groups,
            bias=True))
    x = torch.randn(2, cin, 13, 10)
    x1, x2 = x[:, :cin // 2], x[:, cin // 2:]

    def conv(t, c, s=1):
        return F.conv2d(t, c.weight, c.bias, s, dilation, dilation, groups)

    sc = m.scconv
    t = F.avg_pool2d(x2, 4, 4)
    x_prime = F.interpolate(_bn(conv(t, sc.k2[1]), sc.k2[2]), x2.shape[-2:])
    y_prime = _bn(conv(x2, sc.k3[0]), sc.k3[1]) * torch.sigmoid(x2 + x_prime)
    expected = torch.cat(
        [conv(x1, m.k1, stride),
         conv(y_prime, sc.k4[0], stride)], dim=1)
    with torch.no_grad():
        out = m(x)
    plain = nn.Conv2d(cin, cout, 3, stride, dilation, dilation, groups)
    assert out.shape == plain(x).shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_it_has_the_weights_of_the_conv_it_replaces():
    """in == out: K1..K4 hold the plain conv's weights exactly (plus K2's and
    K3's norms); widening (K2, K3 keep the input's width) holds fewer."""
    for groups in (1, 4):
        sc = SelfCalibratedConv2d(64, 64, groups=groups)
        convs = sum(p.numel() for n, p in sc.named_parameters()
                    if p.dim() == 4)
        assert convs == n_params(
            nn.Conv2d(64, 64, 3, groups=groups, bias=False))
        assert n_params(sc) - convs == 2 * 2 * 32  # two BNs of 32 channels
    wide = SelfCalibratedConv2d(64, 128, stride=2)
    assert [
        tuple(p.shape) for n, p in wide.named_parameters() if p.dim() == 4
    ] == [(64, 32, 3, 3), (32, 32, 3, 3), (32, 32, 3, 3), (64, 32, 3, 3)]


def test_attributes_a_host_reads_and_conv_module():
    """ConvModule (VGG's, and many heads') reads its conv's geometry and
    trains with it."""
    cm = ConvModule(
        16,
        32,
        3,
        stride=2,
        padding=1,
        conv_cfg=dict(type='mmscnet.SCConv2d'),
        norm_cfg=dict(type='BN'))
    assert isinstance(cm.conv, SelfCalibratedConv2d)
    assert (cm.in_channels, cm.out_channels, cm.kernel_size, cm.stride,
            cm.conv.padding, cm.dilation, cm.groups,
            cm.transposed) == (16, 32, (3, 3), (2, 2), (1, 1), (1, 1), 1,
                               False)
    x = torch.randn(2, 16, 16, 16)
    cm(x).square().mean().backward()
    assert cm(x).shape == (2, 32, 8, 8)
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in cm.parameters())


@pytest.mark.parametrize('kwargs,match', [
    (dict(in_channels=3, out_channels=8),
     r'SelfCalibratedConv2d\(3, 8\): in_channels=3 does not split in two '
     r'halves'),
    (dict(in_channels=8, out_channels=7), r'out_channels=7 does not split'),
    (dict(in_channels=8, out_channels=8, groups=8),
     r'in_channels=8 does not split in two halves of a multiple of '
     r'groups=8'),
    (dict(in_channels=8, out_channels=8,
          kernel_size=5), r'kernel_size is 5, not 3'),
    (dict(in_channels=8, out_channels=8,
          padding=0), r'padding 0 is not its dilation 1'),
    (dict(in_channels=8, out_channels=8,
          padding_mode='reflect'), r"padding_mode is 'reflect'"),
    (dict(
        in_channels=8, out_channels=8, conv_cfg=dict(type='mmscnet.SCConv2d')),
     r'cannot be self-calibrated again'),
    (dict(in_channels=8, out_channels=8, pooling_r=0), r'pooling_r must be'),
])
def test_what_cannot_be_split_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelfCalibratedConv2d(**kwargs)


# ------------------------------------------------------- the conv factory
def test_factory_calibrates_eligible_3x3_convs_only():
    cfg = dict(type='mmscnet.SCConv2d', pooling_r=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        sc = build_conv_layer(cfg, 8, 16, 3, stride=2, padding=1, bias=False)
        one = build_conv_layer(cfg, 8, 16, 1, bias=False)
        stem = build_conv_layer(cfg, 3, 8, 7, stride=2, padding=3)
        quiet = [str(w.message) for w in caught]
        odd = build_conv_layer(cfg, 3, 8, 3, padding=1)
        loud = [str(w.message) for w in caught][len(quiet):]
    assert isinstance(sc, SelfCalibratedConv2d)
    assert sc.scconv.k2[0].pooling_r == 2 and sc.k1.bias is None
    for conv, shape in ((one, (16, 8, 1, 1)), (stem, (8, 3, 7, 7)),
                        (odd, (8, 3, 3, 3))):
        assert type(conv) is nn.Conv2d and conv.weight.shape == shape
    assert not [w for w in quiet if 'SCConv2d' in w]
    assert [w for w in loud if 'SCConv2d' in w] == [
        'mmscnet.SCConv2d: a 3x3 conv 3->8 stays a plain Conv2d: '
        'in_channels=3 does not split in two halves of a multiple of groups=1'
        ' channels (needs an even width with width / 2 divisible by groups)'
    ]
    assert calibration_problem(8, 8, 3, 2, 2, 1) is None
    assert calibration_problem(8, 8, (3, 3), (1, 1), (1, 1), 2) is None


@pytest.mark.downstream
def test_conv_cfg_in_mmpretrain_resnet18_is_scnet18():
    """What conv_cfg reaches in mmpretrain's ResNet: every conv. The 7x7
    stem and the 1x1 shortcuts stay plain, the 16 3x3 convs of the basic
    blocks are calibrated, and the result is SCNet-18's architecture:
    the same parameter count."""
    from mmpretrain.registry import MODELS
    cfg = dict(type='ResNet', depth=18, conv_cfg=dict(type='mmscnet.SCConv2d'))
    net = MODELS.build(cfg)
    assert n_calibrated(net) == 16
    assert type(net.conv1) is nn.Conv2d
    assert type(net.layer2[0].downsample[0]) is nn.Conv2d
    assert n_params(net) == n_params(SCNet(depth=18)) == 10_796_224
    assert n_params(net) < n_params(MODELS.build(dict(cfg, conv_cfg=None)))
    net.init_weights()
    assert net(torch.randn(2, 3, 64, 64))[-1].shape == (2, 512, 2, 2)
    # ResNetV1d: conv_cfg reaches the deep stem too; its first conv reads
    # the 3-channel image and stays plain.
    with pytest.warns(UserWarning, match='a 3x3 conv 3->32 stays a plain'):
        v1d = MODELS.build(dict(cfg, type='ResNetV1d'))
    assert n_calibrated(v1d) == 16 + 2


@pytest.mark.downstream
def test_conv_cfg_in_mmdet_resnet50_reaches_1x1_and_stem():
    """mmdet's ResNet passes conv_cfg to the stem, the bottlenecks' 1x1 convs
    and the shortcuts as well as conv2: only each bottleneck's conv2 is
    calibrated, which is SCNet-50's parameter count."""
    from mmdet.registry import MODELS
    net = MODELS.build(
        dict(type='ResNet', depth=50, conv_cfg=dict(type='mmscnet.SCConv2d')))
    blocks = [b for layer in net.res_layers for b in getattr(net, layer)]
    assert n_calibrated(net) == len(blocks) == 16
    assert all(isinstance(b.conv2, SelfCalibratedConv2d) for b in blocks)
    assert all(
        type(b.conv1) is nn.Conv2d and type(b.conv3) is nn.Conv2d
        for b in blocks)
    assert type(net.conv1) is nn.Conv2d and net.conv1.kernel_size == (7, 7)
    assert n_params(net) == n_params(SCNet(depth=50))
    net.eval()  # (its train() returns None)
    outs = net(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [256, 512, 1024, 2048]


@pytest.mark.downstream
def test_conv_cfg_in_mmpretrain_vgg_through_conv_module():
    from mmpretrain.registry import MODELS
    net = MODELS.build(
        dict(
            type='VGG',
            depth=11,
            norm_cfg=dict(type='BN'),
            conv_cfg=dict(type='mmscnet.SCConv2d')))
    assert n_calibrated(net) == 7  # all but the first, which reads RGB
    net.init_weights()
    assert net(torch.randn(2, 3, 32, 32))[-1].shape == (2, 512, 1, 1)


# ------------------------------------------------------- SCNet-18/34
@pytest.mark.parametrize('depth,blocks', [(18, 8), (34, 16)])
def test_scnet18_34_structure(depth, blocks):
    net = SCNet(depth=depth)
    assert net.out_channels == (64, 128, 256, 512)
    assert net.out_strides == (4, 8, 16, 32)
    found = [m for m in net.modules() if isinstance(m, SCBasicBlock)]
    assert len(found) == blocks and n_calibrated(net) == 2 * blocks
    outs = net.eval()(torch.randn(1, 3, 97, 131))
    assert [tuple(o.shape[-2:]) for o in outs] == [(25, 33), (13, 17), (7, 9),
                                                   (4, 5)]


def test_scnet18_block_is_resnets_with_calibrated_convs():
    """conv1 -> bn1 -> ReLU -> conv2 -> bn2, plus the shortcut, then ReLU."""
    block = _randomise(
        SCBasicBlock(
            16,
            32,
            stride=2,
            downsample=nn.Sequential(
                nn.Conv2d(16, 32, 1, 2, bias=False), nn.BatchNorm2d(32))))
    block.downsample[1].running_var.fill_(1.5)
    x = torch.randn(2, 16, 12, 12)
    with torch.no_grad():
        out = block.conv2(F.relu(_bn(block.conv1(x), block.bn1)))
        expected = F.relu(
            _bn(out, block.bn2) +
            _bn(block.downsample[0](x), block.downsample[1]))
        torch.testing.assert_close(block(x), expected)


def test_scnet18_zero_init_with_cp_and_dilation():
    net = SCNet(depth=18)
    net.init_weights()
    assert all(b.bn2.weight.abs().sum() == 0 for b in net.modules()
               if isinstance(b, SCBasicBlock))
    torch.manual_seed(0)
    a = SCNet(depth=18, norm_eval=False)
    torch.manual_seed(0)
    b = SCNet(depth=18, norm_eval=False, with_cp=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    ga = torch.autograd.grad(a(x)[-1].sum(), x)[0]
    gb = torch.autograd.grad(b(x)[-1].sum(), x)[0]
    torch.testing.assert_close(ga, gb)
    dilated = SCNet(
        depth=18, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)).eval()
    assert dilated(torch.randn(1, 3, 64, 64))[-1].shape == (1, 512, 8, 8)


@pytest.mark.downstream
def test_scnet18_34_flops_against_resnet():
    """Fewer FLOPs than ResNet-18/34 (K2 runs at 1/16 of the resolution) and
    fewer parameters (the widening convs' K2/K3 keep the input width)."""
    from mmscnet.utils.analysis import backbone_summary
    for depth in (18, 34):
        sc = backbone_summary(
            dict(type='mmscnet.SCNet', depth=depth), (224, 224), 'mmpretrain')
        rn = backbone_summary(
            dict(type='ResNet', depth=depth, out_indices=(0, 1, 2, 3)),
            (224, 224), 'mmpretrain')
        assert sc['stages'] == rn['stages']
        assert 0.7 * rn['flops'] < sc['flops'] < rn['flops']
        assert 0.9 * rn['params'] < sc['params'] < rn['params']


def test_deploy_mode_keeps_scnet18_and_folds_only_true_pairs():
    """mmcv's fuse_conv_bn pairs a BN with the nn.Conv2d before it. A basic
    block's bn1/bn2 follow a SelfCalibratedConv2d (two convs' outputs
    concatenated), so they must stay; K2's and K3's norms fold."""
    from mmscnet.deploy import optimize, unfused_batchnorms
    net = _randomise(SCNet(depth=18))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = net(x)
        optimize(net, channels_last=False)
        got = net(x)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # The stem's and the shortcuts' BNs folded; the 8 blocks' bn1 and bn2
    # left; nothing inside the calibrated convs left.
    assert sorted(unfused_batchnorms(net)) == sorted(f'layer{i}.{b}.bn{n}'
                                                     for i in range(1, 5)
                                                     for b in range(2)
                                                     for n in (1, 2))
