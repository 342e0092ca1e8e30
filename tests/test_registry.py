"""`type='mmscnet.SCNet'` builds from each downstream library's registry, no custom_imports."""
import importlib
import subprocess
import sys

import pytest

LIBS = ['mmdet', 'mmseg', 'mmpretrain', 'mmpose']


@pytest.mark.parametrize('lib', LIBS)
@pytest.mark.parametrize('type_', ['mmscnet.SCNet', 'mmscnet.SCNetV1d'])
def test_build_from_downstream_registry(lib, type_):
    from mmscnet.models import SCNet
    MODELS = importlib.import_module(f'{lib}.registry').MODELS
    model = MODELS.build(dict(type=type_, depth=50))
    assert isinstance(model, SCNet)
    assert model.out_channels == (256, 512, 1024, 2048)


@pytest.mark.parametrize('lib', LIBS)
def test_fresh_process_needs_no_import_of_mmscnet(lib):
    # A new interpreter in which nothing imported mmscnet: mmengine must find
    # the scope from the type prefix alone, as a user's config does.
    code = (f'import sys; from {lib}.registry import MODELS; '
            f'assert "mmscnet" not in sys.modules; '
            f'm = MODELS.build(dict(type="mmscnet.SCNet", depth=50)); '
            f'print(type(m).__module__)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'mmscnet.models.backbones.scnet'


def test_mmdet_own_scnet_is_untouched():
    from mmdet.registry import MODELS
    from mmdet.models.detectors import SCNet as SampleConsistencyNet
    import mmscnet.models  # noqa: F401
    assert MODELS.get('SCNet') is SampleConsistencyNet


def test_import_mmscnet_is_light():
    code = ('import sys, mmscnet, mmscnet.models; '
            'heavy = [m for m in ("mmdet", "mmseg", "mmpretrain", "mmpose") if m in sys.modules]; '
            'print(heavy)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'
