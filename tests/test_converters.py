import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmscnet.converters import convert_mmpose_scnet, infer_depth, load_state_dict_file
from mmscnet.models import SCNet

REPO = Path(__file__).resolve().parents[1]
TO_MMPOSE = {'conv1_a.': 'conv1.', 'bn1_a.': 'bn1.', 'conv1_b.': 'conv2.', 'bn1_b.': 'bn2.'}


def mmpose_layout(state_dict):
    """The key layout of mmpose's SCNet inside a top-down model (written from its source)."""
    out = {}
    for key, value in state_dict.items():
        m = re.match(r'^(layer\d+\.\d+\.)(conv1_a\.|bn1_a\.|conv1_b\.|bn1_b\.)(.*)$', key)
        if m:
            key = m.group(1) + TO_MMPOSE[m.group(2)] + m.group(3)
        out['backbone.' + key] = value
    out['keypoint_head.final_layer.weight'] = torch.randn(17, 256, 1, 1)
    out['keypoint_head.final_layer.bias'] = torch.randn(17)
    return out


@pytest.mark.parametrize('depth', [50, 101])
def test_mmpose_checkpoint_converts_to_identical_model(depth, tmp_path):
    src = SCNet(depth=depth, zero_init_residual=False)
    src.init_weights()
    src_sd = src.state_dict()
    converted, report = convert_mmpose_scnet(mmpose_layout(src_sd))
    assert report == dict(skipped=['keypoint_head.final_layer.weight',
                                   'keypoint_head.final_layer.bias'],
                          unmapped=[], missing=[])
    assert list(converted) == list(src_sd)
    assert all(torch.equal(converted[k], v) for k, v in src_sd.items())


def test_unmappable_and_missing_keys_are_reported():
    sd = mmpose_layout(SCNet(depth=50).state_dict())
    sd['backbone.layer1.0.plugin.weight'] = torch.zeros(3)
    sd['backbone.layer2.0.conv3.weight'] = torch.zeros(1)  # wrong shape
    del sd['backbone.layer4.2.bn3.running_mean']
    converted, report = convert_mmpose_scnet(sd)
    assert sorted(report['unmapped']) == ['layer1.0.plugin.weight', 'layer2.0.conv3.weight']
    assert report['missing'] == ['layer2.0.conv3.weight', 'layer4.2.bn3.running_mean']
    assert 'layer1.0.plugin.weight' not in converted


def test_infer_depth():
    assert infer_depth(SCNet(depth=101).state_dict()) == 101
    with pytest.raises(ValueError, match='stage 3 has 0 blocks'):
        infer_depth({'fc.weight': torch.zeros(1)})


def test_converter_tool_end_to_end(tmp_path):
    src = SCNet(depth=50)
    src.init_weights()
    mmpose_ckpt = tmp_path / 'pose.pth'
    torch.save({'meta': {'mmpose_version': '0.x'}, 'state_dict': mmpose_layout(src.state_dict())},
               mmpose_ckpt)
    dst = tmp_path / 'scnet50.pth'
    tool = [sys.executable, str(REPO / 'tools/model_converters/mmpose2mmscnet.py')]
    out = subprocess.run(tool + [str(mmpose_ckpt), str(dst)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'skipped (2)' in out.stdout and 'unmapped' not in out.stdout
    model = SCNet(depth=50, init_cfg=dict(type='Pretrained', checkpoint=str(dst))).eval()
    model.init_weights()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), src.eval()(x)))
    # An existing output is never replaced silently.
    before = dst.read_bytes()
    out = subprocess.run(tool + [str(mmpose_ckpt), str(dst)], capture_output=True, text=True)
    assert out.returncode == 2 and 'exists; pass --overwrite' in out.stderr
    assert dst.read_bytes() == before


def test_load_state_dict_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        load_state_dict_file(str(tmp_path / 'nope.pth'))
    good = tmp_path / 'good.pth'
    torch.save(SCNet(depth=50).state_dict(), good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match='cannot load checkpoint .*truncated.pth: the file is truncated'):
        load_state_dict_file(str(truncated))
    marker = tmp_path / 'marker'

    class Payload:  # unpickling it would run code that writes the marker file
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')", ))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': Payload()}, evil)
    with pytest.raises(ValueError, match='cannot load checkpoint .*evil.pth: it contains objects outside'):
        load_state_dict_file(str(evil))
    assert not marker.exists()
    not_sd = tmp_path / 'list.pth'
    torch.save([1, 2], not_sd)
    with pytest.raises(ValueError, match='does not hold a state dict'):
        load_state_dict_file(str(not_sd))
