"""Parity with an independent plain-torch reference in the released key layout.

Random weights are saved to a .pth and loaded into mmscnet through
init_cfg=dict(type='Pretrained'), the path users take with the released
checkpoints. The networks behave like trained ones (``calibrate_``: BN
statistics measured from data, activations O(1)), so fp32 keeps its digits
and the bounds below hold on every CPU; test_kernels.py beside this file
runs the eval tests again under every oneDNN kernel choice this CPU has.
"""
import copy

import pytest
import torch
from conftest import rel_diff
from reference_scnet import RefSCNet, calibrate_

from mmscnet.models import SCNet, SCNetV1d

VARIANTS = {
    'scnet50': (dict(layers=(3, 4, 6, 3)), SCNet, dict(depth=50)),
    'scnet101': (dict(layers=(3, 4, 23, 3)), SCNet, dict(depth=101)),
    'scnet50_v1d': (dict(layers=(3, 4, 6, 3), v1d=True,
                         stem_width=32), SCNetV1d, dict(depth=50)),
}
# The released code needs every calibrated map >= r (4), the last stage's
# too: at least 4x4.
INPUTS = {'square': (2, 3, 128, 128), 'non_square': (1, 3, 160, 224)}


def _pair(name, tmp_path):
    ref_kwargs, cls, kwargs = VARIANTS[name]
    ref = RefSCNet(**ref_kwargs)
    calibrate_(ref, ref.features, seed=1, key=f'ref-{name}')
    ckpt = tmp_path / f'{name}.pth'
    torch.save(ref.state_dict(), ckpt)
    model = cls(
        **kwargs,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    model.init_weights()
    return ref, model


@pytest.mark.parametrize('name', VARIANTS)
def test_pretrained_fills_every_backbone_tensor(name, tmp_path):
    ref, model = _pair(name, tmp_path)
    ref_sd, sd = ref.state_dict(), model.state_dict()
    assert set(ref_sd) - set(sd) == {'fc.weight',
                                     'fc.bias'}  # only the head is left over
    assert set(sd) <= set(ref_sd)
    for key, value in sd.items():
        assert torch.equal(value, ref_sd[key]), key


@pytest.mark.parametrize('shape', INPUTS.values(), ids=list(INPUTS))
@pytest.mark.parametrize('name', VARIANTS)
def test_eval_outputs_match_reference(name, shape, tmp_path):
    """Eval mode runs the very ops of the authors' code: bit-identical, with
    a gradient recorded or not (one forward path)."""
    ref, model = _pair(name, tmp_path)
    ref.eval(), model.eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        expected, got = ref.features(x), model(x)
    assert len(got) == 4
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g.shape == e.shape
        assert torch.equal(
            g, e), f'stage {i + 1}: {rel_diff(g, e):.2e} from the reference'
        assert 0.05 < e.abs().mean(
        ) < 20, f'stage {i + 1}: activations not O(1)'
    with_grad = model(x)
    assert with_grad[0].requires_grad
    for i, (e, g) in enumerate(zip(expected, with_grad)):
        assert torch.equal(g.detach(), e), f'stage {i + 1}, grad recorded'
    print(f'[parity] {name} {tuple(shape)} eval: torch.equal, with and '
          f'without a gradient recorded ({torch.get_num_threads()} threads)')


@pytest.mark.parametrize('name', VARIANTS)
def test_train_mode_outputs_and_gradients_match_reference(name, tmp_path):
    """Training mode (batch statistics), forward and backward, in float64: the
    same function and the same gradients, with no fp32 rounding in the way.
    (The BN weights' gradients are sums that cancel: two fp32 codes that
    order a sum differently do not agree to 1e-5 there.)"""
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
    assert checked == len(
        ref_params) - 2  # every backbone parameter (fc excluded)


def test_fp32_training_step_matches_reference(tmp_path):
    """One fp32 training forward and backward of SCNet-50 on a
    network that behaves like a trained one: outputs within 1e-5 of the
    reference. Gradients are sums that cancel, so they are held to fp32's
    own spread, measured by the reference's distance from float64."""
    ref, model = _pair('scnet50', tmp_path)
    exact = copy.deepcopy(ref).double()
    x = torch.randn(2, 3, 128, 128)
    grads = {}
    for key, net, inp in (('ref', ref, x), ('ours', model, x), ('exact', exact,
                                                                x.double())):
        net.train()
        outs = net.features(inp) if key != 'ours' else net(inp)
        sum(o.float().square().mean() for o in outs).backward()
        grads[key] = {
            n: p.grad.double()
            for n, p in net.named_parameters() if p.grad is not None
        }
        if key == 'ref':
            expected = [o.detach() for o in outs]
        elif key == 'ours':
            got = [o.detach() for o in outs]
    for e, g in zip(expected, got):
        assert rel_diff(g, e) <= 1e-5
    own = {
        name: rel_diff(grads['ref'][name], grads['exact'][name])
        for name in grads['ours']
    }
    ours = {
        name: rel_diff(g, grads['exact'][name])
        for name, g in grads['ours'].items()
    }
    worst_own, worst_ours = max(own.values()), max(ours.values())
    assert worst_ours <= 2 * worst_own
    # One sample of the reference's rounding is a noisy measure of a single
    # gradient's fp32 spread (two codes that sum in different orders can
    # land 10x apart on one tensor, both well inside the worst): each is
    # held to twice its own reference distance or to the reference's worst.
    for name in ours:
        assert ours[name] <= max(2 * own[name], worst_own, 1e-5), name
    print(f'[parity] scnet50 fp32 train step: gradients {worst_ours:.2e} from '
          f'float64, reference {worst_own:.2e}')
