"""The opt-in speed transform: conv1_a and conv1_b stacked into one conv
(``mmscnet.deploy.stack_conv1``) computes the plain path's function."""
import copy

import pytest
import torch
import torch.nn as nn
from conftest import rel_diff

from mmscnet.deploy import optimize, stack_conv1
from mmscnet.models import SCBottleneck, SCNet, SCNetV1d


def _pair(cls=SCNet):
    torch.manual_seed(0)
    plain = cls(depth=50, norm_eval=False, zero_init_residual=False)
    plain.init_weights()
    stacked = copy.deepcopy(plain)
    return plain, stacked


def _conv_calls(monkeypatch):
    calls = []
    forward = nn.Conv2d.forward
    monkeypatch.setattr(nn.Conv2d, 'forward',
                        lambda self, x: calls.append(self) or forward(self, x))
    return calls


@pytest.mark.parametrize('layout', ['nchw', 'nhwc'])
@pytest.mark.parametrize('cls', [SCNet, SCNetV1d])
def test_stacked_training_step_equals_the_plain_one(monkeypatch, cls, layout):
    """In float64, so that the comparison sees the function and not fp32
    summation order: outputs, every gradient and the BN statistics within
    1e-9, on NCHW and NHWC input."""
    plain, stacked = _pair(cls)
    names = stack_conv1(stacked)
    assert len(names) == 16 and names[0] == 'layer1.0'
    assert stacked.state_dict().keys() == plain.state_dict().keys()
    plain.double().train(), stacked.double().train()
    x = torch.rand(2, 3, 96, 96, dtype=torch.float64)
    if layout == 'nhwc':
        x = x.contiguous(memory_format=torch.channels_last)
    calls = _conv_calls(monkeypatch)
    outs = {}
    for key, model in (('plain', plain), ('stacked', stacked)):
        calls.clear()
        outs[key] = model(x)
        sum(o.square().mean() for o in outs[key]).backward()
        blocks = [m for m in model.modules() if isinstance(m, SCBottleneck)]
        ran_apart = [b for b in blocks if b.conv1_a in calls]
        assert len(ran_apart) == (16 if key == 'plain' else 0)
    for a, b in zip(outs['plain'], outs['stacked']):
        assert rel_diff(b, a) <= 1e-9
    for (name, p), q in zip(plain.named_parameters(), stacked.parameters()):
        assert rel_diff(q.grad, p.grad) <= 1e-9, name
    for (name, p), q in zip(plain.named_buffers(), stacked.buffers()):
        assert rel_diff(q.double(), p.double()) <= 1e-9, name


def test_stacked_inference_and_deploy_mode():
    plain, stacked = _pair()
    stack_conv1(stacked)
    plain.eval(), stacked.eval()
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        expected = plain(x)
        for a, b in zip(expected, stacked(x)):
            assert rel_diff(b, a) <= 1e-5
        # BN folded into conv1_a/b after stacking: the biases are stacked
        # too. Against deploy mode without stacking, the same folded weights.
        optimize(plain), optimize(stacked)
        for a, b in zip(plain(x), stacked(x)):
            assert rel_diff(b, a) <= 1e-5


def test_other_conv_types_stay_apart():

    class OtherConv(nn.Conv2d):
        pass

    model = SCNet(depth=50)
    old = model.layer2[1].conv1_a
    model.layer2[1].conv1_a = OtherConv(
        old.in_channels, old.out_channels, 1, bias=False)
    names = stack_conv1(model)
    assert 'layer2.1' not in names and len(names) == 15
    with pytest.raises(TypeError, match='must be a torch.nn.Module'):
        stack_conv1('SCNet')
