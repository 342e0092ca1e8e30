import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmscnet.models import SCNet
from mmscnet.utils.checkpoint_io import load_state_dict_file
from mmscnet.utils.converters import convert_mmpose_scnet, infer_depth

REPO = Path(__file__).resolve().parents[2]
MMPOSE_KEYS = REPO / 'tests/data/mmpose-1.3.2_td-hm_scnet50_keys.txt'


def mmpose_checkpoint(seed=0):
    """A state dict in the layout of mmpose's own top-down SCNet-50 model (keys
    and
    shapes dumped from mmpose 1.3.2, see the file's header), with random
    values."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for line in MMPOSE_KEYS.read_text().splitlines():
        if line.startswith('#'):
            continue
        key, _, shape = line.partition(' ')
        if key.endswith('num_batches_tracked'):
            out[key] = torch.tensor(100)
        else:
            out[key] = torch.rand(
                tuple(map(int, shape.split(','))), generator=gen)
    return out


def test_mmpose_checkpoint_converts_to_the_released_layout():
    sd = mmpose_checkpoint()
    converted, report = convert_mmpose_scnet(sd)
    head = [k for k in sd if k.startswith('head.')]
    assert len(head) == 20 and report == dict(
        skipped=head, unmapped=[], missing=[])
    model = SCNet(depth=50)
    model.load_state_dict(converted, strict=True)
    # mmpose's block: conv1 -> norm1 -> K1 and conv2 -> norm2 -> SCConv (its
    # forward), i.e. our branch a (conv1_a/bn1_a) and branch b (conv1_b/bn1_b).
    pairs = {
        'layer1.0.conv1_a.weight': 'layer1.0.conv1.weight',
        'layer1.0.bn1_a.running_var': 'layer1.0.bn1.running_var',
        'layer2.3.conv1_b.weight': 'layer2.3.conv2.weight',
        'layer4.2.bn1_b.weight': 'layer4.2.bn2.weight',
        'layer3.0.scconv.k2.1.weight': 'layer3.0.scconv.k2.1.weight',
        'layer3.0.downsample.1.bias': 'layer3.0.downsample.1.bias',
        'conv1.weight': 'conv1.weight'
    }
    state = model.state_dict()
    for ours, theirs in pairs.items():
        assert torch.equal(state[ours], sd['backbone.' + theirs]), ours
    # Every backbone tensor of the mmpose file arrives exactly once.
    arrived = sorted(v.sum().item() for k, v in state.items()
                     if v.is_floating_point())
    sent = sorted(v.sum().item() for k, v in sd.items()
                  if k.startswith('backbone.') and v.is_floating_point())
    assert arrived == sent


def test_unmappable_and_missing_keys_are_reported():
    sd = mmpose_checkpoint()
    sd['backbone.layer1.0.plugin.weight'] = torch.zeros(3)
    sd['backbone.layer2.0.conv3.weight'] = torch.zeros(1)  # wrong shape
    del sd['backbone.layer4.2.bn3.running_mean']
    converted, report = convert_mmpose_scnet(sd)
    assert sorted(report['unmapped']) == [
        'layer1.0.plugin.weight', 'layer2.0.conv3.weight'
    ]
    assert report['missing'] == [
        'layer2.0.conv3.weight', 'layer4.2.bn3.running_mean'
    ]
    assert 'layer1.0.plugin.weight' not in converted


def test_infer_depth():
    assert infer_depth(SCNet(depth=101).state_dict()) == 101
    with pytest.raises(ValueError, match='stage 3 has 0 blocks'):
        infer_depth({'fc.weight': torch.zeros(1)})


@pytest.mark.slow
def test_converter_tool_end_to_end(tmp_path):
    sd = mmpose_checkpoint()
    mmpose_ckpt = tmp_path / 'pose.pth'
    torch.save({
        'meta': {
            'mmpose_version': '1.3.2'
        },
        'state_dict': sd
    }, mmpose_ckpt)
    dst = tmp_path / 'scnet50.pth'
    tool = [
        sys.executable,
        str(REPO / 'tools/model_converters/mmpose2mmscnet.py')
    ]
    out = subprocess.run(
        tool + [str(mmpose_ckpt), str(dst)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'skipped (20)' in out.stdout and 'unmapped' not in out.stdout
    model = SCNet(
        depth=50, init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    expected, _ = convert_mmpose_scnet(sd)
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    # An existing output is never replaced silently.
    before = dst.read_bytes()
    out = subprocess.run(
        tool + [str(mmpose_ckpt), str(dst)], capture_output=True, text=True)
    assert out.returncode == 2 and 'exists; pass --overwrite' in out.stderr
    assert dst.read_bytes() == before


@pytest.mark.slow
def test_keep_head_needs_a_whole_model(tmp_path):
    bare = tmp_path / 'bare.pth'
    torch.save(SCNet(depth=50).state_dict(), bare)
    tool = [
        sys.executable,
        str(REPO / 'tools/model_converters/mmpose2mmscnet.py')
    ]
    out = subprocess.run(
        tool + [str(bare), str(tmp_path / 'out.pth'), '--keep-head'],
        capture_output=True,
        text=True)
    assert out.returncode == 2
    assert 'not a whole mmpose model: no backbone.* keys' in out.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_load_state_dict_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        load_state_dict_file(str(tmp_path / 'nope.pth'))
    good = tmp_path / 'good.pth'
    torch.save(SCNet(depth=50).state_dict(), good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(
            ValueError,
            match='cannot load checkpoint .*truncated.pth: the file is '
            'truncated'):
        load_state_dict_file(str(truncated))
    marker = tmp_path / 'marker'

    class Payload:  # unpickling it would run code that writes the marker file

        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')", ))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': Payload()}, evil)
    with pytest.raises(
            ValueError,
            match='cannot load checkpoint .*evil.pth: it contains objects '
            'outside'):
        load_state_dict_file(str(evil))
    assert not marker.exists()
    not_sd = tmp_path / 'list.pth'
    torch.save([1, 2], not_sd)
    with pytest.raises(ValueError, match='does not hold a state dict'):
        load_state_dict_file(str(not_sd))


@pytest.mark.parametrize('depth', [50, 101, 152])
def test_released_layout_describes_the_backbone(depth):
    from mmscnet.utils.converters import released_layout
    model = {
        k: tuple(v.shape)
        for k, v in SCNet(depth=depth).state_dict().items()
    }
    assert released_layout(depth) == model
