"""convert_to_self_calibrated on other people's networks (torchvision's)."""
import pytest
import torch
import torch.nn as nn
import torchvision

import mmscnet
from mmscnet.models import SCNet, SelfCalibratedConv2d


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('arch,replaced,first,kept', [
    ('resnet18', 16, 'layer1.0.conv1', ['conv1', 'layer2.0.downsample.0']),
    ('vgg11', 7, 'features.3', ['features.0']),
])
def test_torchvision_models_convert_in_place(arch, replaced, first, kept):
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(num_classes=10)
    before = n_params(model)
    x = torch.randn(2, 3, 64, 64)
    shape = model(x).shape
    names = mmscnet.convert_to_self_calibrated(model, pooling_r=2)
    assert len(names) == replaced and names[0] == first
    modules = dict(model.named_modules())
    assert all(isinstance(modules[n], SelfCalibratedConv2d) for n in names)
    assert all(modules[n].scconv.k2[0].pooling_r == 2 for n in names)
    assert all(type(modules[n]) is nn.Conv2d for n in kept)
    after = n_params(model)
    # The parameter count, as the docs report it: fewer weights where a conv
    # widens (K2 and K3 keep the input width), plus K2's and K3's norms.
    print(f'{arch}: {before:,} -> {after:,} parameters, {len(names)} convs')
    assert 0.9 * before < after < before
    out = model(x)
    assert out.shape == shape
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    # Nothing left to convert, and the calibrated convs are not split again.
    assert mmscnet.convert_to_self_calibrated(model) == []


def test_keeps_dtype_mode_and_leaves_other_convs():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1),
        nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, padding=0),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=False)).double().eval()
    names = mmscnet.convert_to_self_calibrated(model)
    assert names == ['1', '5']
    assert not model[1].training and model[1].k1.weight.dtype == torch.float64
    assert model[1].k1.bias is not None and model[5].k1.bias is None
    assert model[5].dilation == (2, 2)
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    assert model(x).shape == (1, 8, 14, 14)
    with pytest.raises(TypeError, match='must be a torch.nn.Module'):
        mmscnet.convert_to_self_calibrated('resnet18')


def test_scnet18_has_nothing_to_convert_outside_its_stem():
    # Its calibrated convs' K1..K4 are inside SelfCalibratedConv2d: skipped.
    assert mmscnet.convert_to_self_calibrated(SCNet(depth=18)) == []
