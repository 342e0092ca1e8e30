"""Parity with an independent plain-torch reference in the released key layout.

Random weights are saved to a .pth and loaded into mmscnet through
init_cfg=dict(type='Pretrained'), the path users take with the released
checkpoints.
"""
import copy

import pytest
import torch
from conftest import assert_fp32_parity, rel_diff
from reference_scnet import RefSCNet, randomize_

from mmscnet.models import SCNet, SCNetV1d

VARIANTS = {
    'scnet50': (dict(layers=(3, 4, 6, 3)), SCNet, dict(depth=50)),
    'scnet101': (dict(layers=(3, 4, 23, 3)), SCNet, dict(depth=101)),
    'scnet50_v1d': (dict(layers=(3, 4, 6, 3), v1d=True, stem_width=32), SCNetV1d, dict(depth=50)),
}
# The released code needs every calibrated map >= r (4): the last stage at >= 4x4.
INPUTS = {'square': (2, 3, 128, 128), 'non_square': (1, 3, 160, 224)}


def _pair(name, tmp_path):
    ref_kwargs, cls, kwargs = VARIANTS[name]
    ref = randomize_(RefSCNet(**ref_kwargs), seed=1)
    ckpt = tmp_path / f'{name}.pth'
    torch.save(ref.state_dict(), ckpt)
    model = cls(**kwargs, norm_eval=False,
                init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    model.init_weights()
    return ref, model


@pytest.mark.parametrize('name', VARIANTS)
def test_pretrained_fills_every_backbone_tensor(name, tmp_path):
    ref, model = _pair(name, tmp_path)
    ref_sd, sd = ref.state_dict(), model.state_dict()
    assert set(ref_sd) - set(sd) == {'fc.weight', 'fc.bias'}  # only the head is left over
    assert set(sd) <= set(ref_sd)
    for key, value in sd.items():
        assert torch.equal(value, ref_sd[key]), key


@pytest.mark.parametrize('shape', INPUTS.values(), ids=list(INPUTS))
@pytest.mark.parametrize('name', VARIANTS)
def test_eval_outputs_match_reference(name, shape, tmp_path):
    ref, model = _pair(name, tmp_path)
    ref.eval(), model.eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        expected, got = ref.features(x), model(x)
        exact = copy.deepcopy(ref).double().features(x.double())
    assert len(got) == 4
    for i, (e, e64, g) in enumerate(zip(expected, exact, got)):
        assert g.shape == e.shape
        assert_fp32_parity(g, e, e64, f'stage {i + 1}')


@pytest.mark.parametrize('name', VARIANTS)
def test_train_mode_outputs_and_gradients_match_reference(name, tmp_path):
    """Training mode (batch statistics), forward and backward, in float64: the
    same function and the same gradients, with no fp32 rounding in the way.
    (In fp32 the BN weights' gradients are sums that cancel: the reference
    itself is up to 5e-2 from its own float64 result, so two fp32 codes that
    order a sum differently cannot agree to 1e-5 there.)"""
    ref, model = _pair(name, tmp_path)
    ref.double().train(), model.double().train()
    x = torch.randn(2, 3, 128, 160, dtype=torch.float64)
    weights = [torch.randn_like(o[0]) for o in ref.features(x)]  # shapes only
    ref.zero_grad()
    expected = ref.features(x)
    sum((o * w).sum() for o, w in zip(expected, weights)).backward()
    got = model(x)
    sum((o * w).sum() for o, w in zip(got, weights)).backward()
    for e, g in zip(expected, got):
        assert g.dtype == torch.float64
        assert rel_diff(g.detach(), e.detach()) <= 1e-9
    ref_params = dict(ref.named_parameters())
    checked = 0
    for key, p in model.named_parameters():
        assert p.grad is not None, key
        assert rel_diff(p.grad, ref_params[key].grad) <= 1e-9, key
        checked += 1
    assert checked == len(ref_params) - 2  # every backbone parameter (fc excluded)
