import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import rel_diff
from reference_scnet import RefSCNet
from torch.nn.modules.batchnorm import _BatchNorm

from mmscnet.models import SCBottleneck, SCConv, SCNet, SCNetV1d
from mmscnet.models.backbones.scnet import POOLING_TYPES, CalibrationPool


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- sizes
def test_scnet50_parameter_count_matches_release():
    assert n_params(SCNet(depth=50)) == 23_515_584


@pytest.mark.downstream
def test_scnet50_with_imagenet_head_parameter_count():
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='mmscnet.SCNet', depth=50),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead', num_classes=1000, in_channels=2048)))
    assert n_params(classifier) == 25_564_584


@pytest.mark.parametrize('cls,depth,ref_kwargs', [
    (SCNet, 101, dict(layers=(3, 4, 23, 3))),
    (SCNetV1d, 50, dict(layers=(3, 4, 6, 3), v1d=True, stem_width=32)),
    (SCNetV1d, 101, dict(layers=(3, 4, 23, 3), v1d=True, stem_width=64)),
])
def test_parameter_counts_match_reference(cls, depth, ref_kwargs):
    ref = RefSCNet(**ref_kwargs)
    assert n_params(cls(depth=depth)) == n_params(ref) - n_params(ref.fc)


def test_flops_match_authors_figures():
    from mmscnet.utils.analysis import backbone_summary

    # Authors' MAdds at 224x224 (with the 2 MFLOP head): 4.0 G, 4.7 G, 7.2 G.
    for cfg, gflops in ((dict(type='mmscnet.SCNet', depth=50),
                         4.0), (dict(type='mmscnet.SCNetV1d', depth=50), 4.7),
                        (dict(type='mmscnet.SCNet', depth=101), 7.2)):
        summary = backbone_summary(cfg, (224, 224), registry='mmscnet')
        assert abs(summary['flops'] / 1e9 - gflops) < 0.06, (cfg,
                                                             summary['flops'])


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize('hw', [(224, 224), (320, 480), (97, 131)])
def test_stage_shapes_and_metadata(hw):
    model = SCNet(depth=50).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *hw))
    assert model.out_channels == (256, 512, 1024, 2048)
    assert model.out_strides == (4, 8, 16, 32)
    for out, c, s in zip(outs, model.out_channels, model.out_strides):
        # conv/pool arithmetic with padding rounds up
        assert out.shape == (1, c, -(-hw[0] // s), -(-hw[1] // s))


def test_out_indices_selects_stages():
    model = SCNet(depth=50, out_indices=(1, 3)).eval()
    outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [512, 2048]
    assert model.out_channels == (512, 2048)
    # Given out of order, the maps still come in stage order (as from mmdet's
    # ResNet), and out_channels / out_strides describe them in that order.
    unsorted = SCNet(depth=50, out_indices=(3, 1)).eval()
    unsorted.load_state_dict(model.state_dict())
    with torch.no_grad():
        got = unsorted(torch.rand(1, 3, 64, 64))
    assert [o.shape[1]
            for o in got] == list(unsorted.out_channels) == [512, 2048]
    assert unsorted.out_indices == (1, 3) and unsorted.out_strides == (8, 32)


def test_narrowest_width_that_builds_runs():
    # base_channels=2, base_width=32: layer1's branches have exactly 1 channel.
    model = SCNet(depth=50, base_channels=2).eval()
    assert model.layer1[0].conv1_a.out_channels == 1
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [8, 16, 32, 64]


@pytest.mark.parametrize('strides,dilations,out_stride', [
    ((1, 2, 1, 1), (1, 1, 2, 4), 8),
    ((1, 2, 2, 1), (1, 1, 1, 2), 16),
])
def test_dilated_mode(strides, dilations, out_stride):
    model = SCNet(
        depth=50, strides=strides, dilations=dilations,
        contract_dilation=True).eval()
    outs = model(torch.rand(1, 3, 128, 96))
    assert outs[-1].shape[-2:] == (128 // out_stride, 96 // out_stride)
    assert model.out_strides[-1] == out_stride
    layer4 = model.layer4
    last = dilations[-1]
    # mmseg's contract_dilation: the first block of a dilated stage uses half.
    assert layer4[0].k1[0].dilation == (max(last // 2, 1), ) * 2
    assert layer4[1].k1[0].dilation == (last, last)
    assert layer4[1].scconv.k2[1].dilation == (last, last)
    assert layer4[1].scconv.k4[0].stride == (1, 1)


def test_v1d_structure():
    model = SCNetV1d(depth=50)
    assert isinstance(model.conv1,
                      nn.Sequential) and model.conv1[0].out_channels == 32
    assert model.conv1[6].out_channels == 64
    assert SCNetV1d(depth=101).conv1[0].out_channels == 64
    # avd only in the first block of stages 2-4; K1/K4 then keep stride 1.
    assert not model.layer1[0].avd
    for i in (2, 3, 4):
        block = getattr(model, f'layer{i}')[0]
        assert block.avd and block.k1[0].stride == (
            1, 1) and block.scconv.k4[0].stride == (1, 1)
        assert isinstance(block.downsample[0], nn.AvgPool2d)
        assert block.downsample[1].stride == (1, 1)


def test_scnext_groups():
    model = SCNet(depth=50, groups=32, base_width=4).eval()
    block = model.layer1[0]
    assert block.k1[0].groups == 32 and block.k1[0].out_channels == 128
    assert block.scconv.k3[0].groups == 32
    outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [256, 512, 1024, 2048]


# ---------------------------------------------------------------- SCConv
def _manual_scconv(m, x, r, pool, up, identity=True):
    t = pool(x, r, r)
    x_prime = F.interpolate(
        m.k2[2](m.k2[1](t)),
        x.shape[-2:],
        mode=up,
        **({} if up == 'nearest' else dict(align_corners=False)))
    gate = torch.sigmoid(x + x_prime) if identity else torch.sigmoid(x_prime)
    return m.k4(m.k3(x) * gate)


@pytest.mark.parametrize('r', [2, 4, 8])
@pytest.mark.parametrize('pooling_type,pool', [('avg', F.avg_pool2d),
                                               ('max', F.max_pool2d)])
@pytest.mark.parametrize('identity', [True, False])
@pytest.mark.parametrize('up', ['nearest', 'bilinear'])
def test_scconv_equations(r, pooling_type, pool, identity, up):
    m = SCConv(
        8,
        pooling_r=r,
        pooling_type=pooling_type,
        with_identity=identity,
        upsample_mode=up).eval()
    x = torch.randn(2, 8, 16, 24)
    with torch.no_grad():
        assert torch.allclose(
            m(x), _manual_scconv(m, x, r, pool, up, identity), atol=1e-6)


def test_scconv_knobs_change_the_result():
    torch.manual_seed(0)
    base = SCConv(8).eval()
    x = torch.randn(1, 8, 16, 16)
    variants = [
        dict(pooling_r=2),
        dict(pooling_type='max'),
        dict(with_identity=False),
        dict(upsample_mode='bilinear')
    ]
    with torch.no_grad():
        y = base(x)
        for kw in variants:
            other = SCConv(8, **kw).eval()
            other.load_state_dict(base.state_dict())
            assert not torch.allclose(other(x), y), kw


# ------------------------------------------------------ small and odd inputs
def test_calibration_pool_matches_released_pool_when_map_is_large_enough():
    x = torch.randn(2, 4, 13, 9)
    assert torch.equal(CalibrationPool(4)(x), nn.AvgPool2d(4, 4)(x))
    assert torch.equal(CalibrationPool(4, 'max')(x), nn.MaxPool2d(4, 4)(x))


@pytest.mark.parametrize('pooling_type', POOLING_TYPES)
def test_calibration_pool_pools_short_sides_whole(pooling_type):
    """A side shorter than r is one window (the map is padded to r, and the
    mean divided by the map's share of the window); sides of r or more keep
    windows of r. Against the pooling with the window shrunk to the map."""
    pool = CalibrationPool(4, pooling_type)
    reference = F.avg_pool2d if pooling_type == 'avg' else F.max_pool2d
    for hw in ((13, 9), (8, 8), (4, 5), (3, 9), (2, 2), (1, 1), (7, 3)):
        x = torch.randn(2, 3, *hw) - 0.5  # negative values: -inf pads 'max'
        window = (min(4, hw[0]), min(4, hw[1]))
        expected = reference(x, window, window)
        got = pool(x)
        assert got.shape == expected.shape, hw
        if min(hw) >= 4:
            assert torch.equal(got, expected), hw
        assert torch.allclose(got, expected, rtol=1e-6, atol=1e-7), hw


def _conv_out(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


@pytest.mark.parametrize('hw', [(1, 1), (16, 16), (33, 7), (64, 17)])
@pytest.mark.parametrize('cls', [SCNet, SCNetV1d])
def test_tiny_and_odd_images_give_each_stage_its_shape(cls, hw):
    """Each stage's channels, and H and W as the stem (a stride-2 conv, a
    3x3 stride-2 max pool, both padded) and the stride-2 convs (or avd
    pools) of stages 2-4 give them, down to 1x1 at a 1x1 image."""
    torch.manual_seed(0)
    model = cls(depth=50).eval()
    with torch.no_grad():
        outs = model(torch.rand(2, 3, *hw))
    stem = (7, 2, 3) if cls is SCNet else (3, 2, 1)
    size = [_conv_out(_conv_out(s, *stem), 3, 2, 1) for s in hw]
    for i, out in enumerate(outs):
        if i:
            size = [_conv_out(s, 3, 2, 1) for s in size]
        assert out.shape == (2, 256 * 2**i, *size), (i, hw)
        assert torch.isfinite(out).all()
    if hw == (1, 1):
        assert all(out.shape[-2:] == (1, 1) for out in outs)


# ------------------------------------------------------ training behaviour
def test_frozen_stages():
    model = SCNet(depth=50, frozen_stages=1, norm_eval=False)
    model.train()
    for m in (model.conv1, model.bn1, model.layer1):
        assert all(not p.requires_grad for p in m.parameters())
        assert all(not mod.training for mod in m.modules())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert model.layer2.training and model.layer2[0].bn3.training
    outs = model(torch.rand(2, 3, 64, 64))
    sum(o.sum() for o in outs).backward()
    assert model.layer1[0].conv1_a.weight.grad is None
    assert model.layer2[0].conv1_a.weight.grad is not None


def test_frozen_stem_only():
    model = SCNetV1d(depth=50, frozen_stages=0).train()
    assert all(not p.requires_grad for p in model.conv1.parameters())
    assert all(p.requires_grad for p in model.layer1.parameters())


def test_norm_eval_keeps_bn_statistics():
    model = SCNet(depth=50, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    before = model.layer3[0].bn3.running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert torch.equal(before, model.layer3[0].bn3.running_mean)
    model = SCNet(depth=50, norm_eval=False).train()
    model(torch.rand(2, 3, 64, 64))
    assert not torch.equal(
        torch.zeros_like(before), model.layer3[0].bn3.running_mean)


def test_with_cp_gives_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = SCNet(depth=50, norm_eval=False, zero_init_residual=False)
    plain.init_weights()
    cp = SCNet(depth=50, norm_eval=False, with_cp=True)
    cp.load_state_dict(plain.state_dict())
    assert all(block.with_cp for block in cp.layer3)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    for model in (plain, cp):
        model.train()
        sum(o.square().mean() for o in model(x)).backward()
    for (name, p), q in zip(plain.named_parameters(), cp.parameters()):
        assert rel_diff(q.grad, p.grad) <= 1e-5, name


def test_one_forward_path_in_training_and_inference(monkeypatch):
    """conv1_a and conv1_b run as their own modules, each once per block,
    in training and in inference alike: the authors' computation."""
    model = SCNet(depth=50, norm_eval=False)
    calls = []
    monkeypatch.setattr(
        nn.Conv2d,
        'forward',
        lambda self, x, _f=nn.Conv2d.forward: calls.append(self) or _f(
            self, x))
    blocks = [b for b in model.modules() if isinstance(b, SCBottleneck)]
    x = torch.rand(2, 3, 64, 64)
    for mode, context in ((True, torch.enable_grad()), (False,
                                                        torch.no_grad())):
        calls.clear()
        with context:
            model.train(mode)(x)
        for b in blocks:
            assert calls.count(b.conv1_a) == calls.count(b.conv1_b) == 1


def test_zero_init_residual():
    model = SCNet(depth=50, zero_init_residual=True)
    model.init_weights()
    bn3s = [m.bn3 for m in model.modules() if isinstance(m, SCBottleneck)]
    assert len(bn3s) == 16 and all((bn.weight == 0).all() for bn in bn3s)
    model = SCNet(depth=50, zero_init_residual=False)
    model.init_weights()
    assert (model.layer1[0].bn3.weight == 1).all()


def test_group_norm_builds_and_trains():
    model = SCNet(
        depth=50, norm_cfg=dict(type='GN', num_groups=32, requires_grad=True))
    assert isinstance(model.layer2[0].scconv.k2[2], nn.GroupNorm)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    model.train()
    outs = model(torch.rand(1, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    assert model.layer4[2].scconv.k3[0].weight.grad is not None


def test_syncbn_builds():
    model = SCNet(depth=50, norm_cfg=dict(type='SyncBN', requires_grad=True))
    assert isinstance(model.layer1[0].bn1_a, nn.SyncBatchNorm)


def test_deprecated_pretrained_argument(tmp_path):
    ckpt = tmp_path / 'w.pth'
    src = SCNet(depth=50)
    torch.save(src.state_dict(), ckpt)
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        model = SCNet(depth=50, pretrained=str(ckpt))
    assert model.init_cfg == dict(type='Pretrained', checkpoint=str(ckpt))
    model.init_weights()
    assert torch.equal(model.layer4[0].conv3.weight,
                       src.layer4[0].conv3.weight)


@pytest.mark.parametrize('form', ['dict', 'list', 'pretrained='])
def test_zero_init_never_touches_loaded_weights(form, tmp_path):
    # Saved BN weights of 0.5 (not 0, not 1): whatever form names the file,
    # they arrive as they are, bn3 included.
    source = SCNet(depth=50)
    for m in source.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.fill_(0.5)
    path = str(tmp_path / 'weights.pth')
    torch.save(source.state_dict(), path)
    pretrained = dict(type='Pretrained', checkpoint=path)
    kwargs = {
        'dict': dict(init_cfg=pretrained),
        'list': dict(init_cfg=[pretrained]),
        'pretrained=': dict(pretrained=path)
    }[form]
    model = SCNet(depth=50, zero_init_residual=True, **kwargs)
    model.init_weights()
    bn3s = [m.bn3 for m in model.modules() if isinstance(m, SCBottleneck)]
    assert len(bn3s) == 16 and all((bn.weight == 0.5).all() for bn in bn3s)
    assert (model.layer1[0].bn1_a.weight == 0.5).all()


def test_unfit_weights_are_refused_by_the_load_hook(tmp_path):
    # The pre-hook goes through torch's public or (torch < 2.5) private
    # name; the compatibility job runs this on the oldest supported torch.
    deeper = SCNet(depth=101).state_dict()
    with pytest.raises(
            ValueError,
            match=r'the checkpoint has 23 blocks in layer3, SCNet-50 has 6'):
        SCNet(depth=50).load_state_dict(deeper, strict=False)
    path = tmp_path / 'scnet101.pth'
    torch.save(deeper, path)
    model = SCNet(
        depth=50, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match='the weights do not fit SCNet-50'):
        model.init_weights()
    fitting = SCNet(depth=50).state_dict()
    SCNet(depth=50).load_state_dict(fitting)  # a fitting state dict loads
