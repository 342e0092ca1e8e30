"""mmscnet inside an existing environment: configs shipped as mmscnet/.mim,
`_base_ = 'mmscnet::...'` from a user's own project, the wheel's contents."""
import glob
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

USER_CONFIG = """
_base_ = 'mmscnet::detection/faster-rcnn_scnet50_fpn_1x_coco.py'
model = dict(roi_head=dict(bbox_head=dict(num_classes=3)))
"""

# Builds the user's config in a fresh process and prints what it resolved to.
BUILD = """
import mmscnet, os
from mmengine.config import Config
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
register_all_modules()
cfg = Config.fromfile('my_config.py')
model = MODELS.build(cfg.model)
print('PACKAGE', os.path.dirname(mmscnet.__file__))
print('BACKBONE', type(model.backbone).__module__, model.backbone.depth)
print('CLASSES', model.roi_head.bbox_head.num_classes)
"""


def _build_user_config(project, env=None):
    (project / 'my_config.py').write_text(USER_CONFIG)
    r = subprocess.run([sys.executable, '-c', BUILD],
                       cwd=project,
                       capture_output=True,
                       text=True,
                       env={
                           **os.environ,
                           **(env or {})
                       })
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(
        line.split(' ', 1) for line in r.stdout.splitlines() if ' ' in line)


def test_mmscnet_base_from_a_config_outside_the_repository_builds(tmp_path):
    out = _build_user_config(tmp_path)
    assert Path(
        out['PACKAGE']).resolve() == (REPO /
                                      'mmscnet').resolve()  # this checkout
    assert out['BACKBONE'] == 'mmscnet.models.backbones.scnet 50'
    assert out['CLASSES'] == '3'


def test_unknown_mmscnet_base_names_the_folder_searched(tmp_path):
    (tmp_path / 'my_config.py'
     ).write_text("_base_ = 'mmscnet::detection/no-such-config.py'\n")
    r = subprocess.run([
        sys.executable, '-c',
        'import mmscnet\nfrom mmengine.config import Config\n'
        'Config.fromfile("my_config.py")'
    ],
                       cwd=tmp_path,
                       capture_output=True,
                       text=True)
    assert r.returncode != 0
    assert 'mmscnet/.mim/configs/detection/no-such-config.py' in r.stderr


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    # --no-build-isolation: the environment's setuptools, no download.
    r = subprocess.run([
        sys.executable, '-m', 'pip', 'wheel',
        str(REPO), '--no-deps', '--no-build-isolation', '-q', '-w',
        str(out)
    ],
                       capture_output=True,
                       text=True,
                       cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    wheels = glob.glob(str(out / 'mmscnet-*.whl'))
    assert len(wheels) == 1, wheels
    return Path(wheels[0])


def test_wheel_ships_configs_tools_and_model_index(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {
        str(p.relative_to(REPO))
        for p in (REPO / 'configs').rglob('*')
        if p.is_file() and '__pycache__' not in p.parts
    }
    assert len(configs) > 40
    missing = {c for c in configs if f'mmscnet/.mim/{c}' not in names}
    assert not missing, f'configs not in the wheel: {sorted(missing)}'
    for f in ('mmscnet/.mim/model-index.yml', 'mmscnet/.mim/tools/train.py',
              'mmscnet/.mim/tools/test.py', 'mmscnet/.mim/tools/infer.py',
              'mmscnet/__init__.py', 'mmscnet/models/backbones/scnet.py'):
        assert f in names, f
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    assert not [
        n for n in names if n.startswith(('tests/', 'data/', 'work_dirs/'))
    ]


def test_installed_wheel_resolves_mmscnet_base_and_model_index(
        wheel, tmp_path):
    target = tmp_path / 'site'
    r = subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target',
        str(target),
        str(wheel)
    ],
                       capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    project = tmp_path / 'project'
    project.mkdir()
    # The installed copy comes first on the path, ahead of this checkout's
    # editable install.
    out = _build_user_config(project, env={'PYTHONPATH': str(target)})
    assert Path(out['PACKAGE']) == target / 'mmscnet'
    assert out['BACKBONE'] == 'mmscnet.models.backbones.scnet 50'
    # mim reads <package>/.mim/model-index.yml; every listed config is there.
    from modelindex.load_model_index import load
    mim = target / 'mmscnet' / '.mim'
    index = load(str(mim / 'model-index.yml'))
    assert index.check(silent=True) == []
    # The same models as the checkout's index lists, none lost in the copy.
    assert len(index.models) == len(load(str(REPO / 'model-index.yml')).models)
    assert all((mim / m.config).is_file() for m in index.models)
