"""mmscnet.utils.analysis and its tools: the effective receptive field
(tools/analysis_tools/erf.py) and backbone_summary.py."""
import re

import cv2
import pytest
import torch
from conftest import run_tool
from torch import nn

from mmscnet.utils.analysis import effective_receptive_field, mass_radius


def conv_stack(dilation):
    torch.manual_seed(0)
    return nn.Sequential(*[
        nn.Conv2d(1, 1, 3, padding=dilation, dilation=dilation)
        for _ in range(3)
    ])


def test_erf_is_normalised_and_ranks_known_receptive_fields():
    images = torch.randn(4, 1, 33, 33)
    plain = effective_receptive_field(conv_stack(1), images)
    dilated = effective_receptive_field(conv_stack(2), images)
    for erf in (plain, dilated):
        assert erf.shape == (33, 33) and (erf >= 0).all()
        assert erf.sum().item() == pytest.approx(1.0)
    # Three 3x3 convs see 3 pixels each way (6 with dilation 2), no further.
    assert mass_radius(plain, 1.0) == 3 and mass_radius(dilated, 1.0) == 6
    assert mass_radius(dilated, 0.9) > mass_radius(plain, 0.9)
    assert mass_radius(dilated, 0.5) >= mass_radius(plain, 0.5)


def test_mass_radius_of_a_point_and_a_square():
    point = torch.zeros(9, 9, dtype=torch.float64)
    point[4, 4] = 1
    assert mass_radius(point, 0.5) == 0
    square = torch.zeros(9, 9, dtype=torch.float64)
    square[2:7, 2:7] = 1 / 25
    assert mass_radius(square, 0.3) == 1 and mass_radius(square, 1.0) == 2


def test_erf_refuses_a_constant_output():
    with pytest.raises(ValueError, match='does not depend on the input'):
        effective_receptive_field(
            lambda x: torch.zeros(1, 1, 3, 3) + 0 * x.sum(),
            torch.randn(1, 1, 8, 8))


@pytest.mark.slow
def test_erf_tool_random_and_checkpoint(tmp_path):
    from mmscnet.models import SCNet
    ckpt = tmp_path / 'toy_detector.pth'
    torch.save(
        {
            'state_dict': {
                'backbone.' + k: v
                for k, v in SCNet(depth=50).state_dict().items()
            }
        }, ckpt)
    photos = tmp_path / 'photos'
    photos.mkdir()
    cv2.imwrite(
        str(photos / 'a.png'), (torch.rand(80, 50, 3) * 255).byte().numpy())
    out = tmp_path / 'erf.png'
    res = run_tool([
        'tools/analysis_tools/erf.py', '--size', '64', '--num-images', '1',
        '--stage', '3', '--scnet-checkpoint',
        str(ckpt), '--images',
        str(photos), '--out',
        str(out)
    ],
                   fresh=True)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = re.findall(
        r'^(SCNet|ResNet)-50 stage 3 \((.*)\): 50% of the ERF within (\d+) px '
        r'of the centre, 90% within (\d+) px', res.stdout, re.M)
    assert [(n, w) for n, w, _, _ in lines] == [('SCNet', 'toy_detector.pth'),
                                                ('ResNet', 'random init')]
    assert all(int(r50) <= int(r90) <= 32 for _, _, r50, r90 in lines)
    assert cv2.imread(str(out)).shape[:2] == (520, 1000)
    # A checkpoint that does not fill the backbone is refused, not drawn as
    # random weights.
    res = run_tool([
        'tools/analysis_tools/erf.py', '--size', '64', '--num-images', '1',
        '--resnet-checkpoint',
        str(ckpt), '--out',
        str(tmp_path / 'x.png')
    ])
    assert res.returncode == 2
    assert 'does not fill the ResNet-50 backbone' in res.stderr
    res = run_tool([
        'tools/analysis_tools/erf.py', '--images',
        str(tmp_path / 'none'), '--out',
        str(tmp_path / 'x.png')
    ])
    assert res.returncode != 0 and 'no .jpg/.jpeg/.png images in' in res.stderr


@pytest.mark.downstream
@pytest.mark.parametrize('args,rows', [
    (['--depth', '18', '--registry', 'mmpretrain'
      ], [("{'type': 'mmscnet.SCNet', 'depth': 18}", '10,796,224', '1.47'),
          ("{'type': 'ResNet', 'depth': 18, 'out_indices': (0, 1, 2, 3)}",
           '11,176,512', '1.82')]),
    (['--groups', '32', '--base-width', '2'], [
        ("{'type': 'mmscnet.SCNet', 'depth': 50, 'groups': 32, 'base_width': "
         "2}", '22,995,008', '4.24'),
        ("{'type': 'ResNeXt', 'depth': 50, 'out_indices': (0, 1, 2, 3), "
         "'groups': 32, 'base_width': 4}", '22,979,904', '4.26')
    ]),
])
def test_backbone_summary_compares_with_resnet(args, rows):
    res = run_tool(['tools/analysis_tools/backbone_summary.py', '--compare'] +
                   args)
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.findall(
        r'^(\{.*\}) built by .*\n(?:  stage .*\n){4}  parameters: (.*)\n'
        r'  FLOPs \(multiply-adds\): (.*) G$', res.stdout, re.M)
    assert found == rows
    assert re.search(
        r'^mmscnet.SCNet / ResNe\w+: parameters \d\.\d{3}x, '
        r'FLOPs 0\.\d{3}x$', res.stdout, re.M), res.stdout
