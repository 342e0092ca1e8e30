"""`type='mmscnet.SCNet'` builds from each downstream library's registry, no
custom_imports."""
import importlib
import json
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


@pytest.mark.slow
@pytest.mark.parametrize('lib', LIBS)
def test_fresh_process_needs_no_import_of_mmscnet(lib):
    # A new interpreter in which nothing imported mmscnet: mmengine must find
    # the scope from the type prefix alone, as a user's config does.
    code = (f'import sys; from {lib}.registry import MODELS; '
            f'assert "mmscnet" not in sys.modules; '
            f'm = MODELS.build(dict(type="mmscnet.SCNet", depth=50)); '
            f'print(type(m).__module__)')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'mmscnet.models.backbones.scnet'


def test_mmdet_own_scnet_is_untouched():
    from mmdet.models.detectors import SCNet as SampleConsistencyNet
    from mmdet.registry import MODELS

    import mmscnet.models  # noqa: F401
    assert MODELS.get('SCNet') is SampleConsistencyNet


def test_import_mmscnet_is_light():
    code = (
        'import sys, mmscnet, mmscnet.models; heavy = [m for m in ("mmdet", '
        '"mmseg", "mmpretrain", "mmpose") if m in sys.modules]; print(heavy)')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'


# Every name registered in an mmscnet registry, with the arguments that build
# it. A class registered without an entry here fails the first test below.
BUILD_ARGS = {
    'model': {
        'SCNet': dict(depth=50),
        'SCNetV1d': dict(depth=50),
        # SCNet-18/34's block, which SCNet finds by this name.
        'SCBasicBlock': dict(inplanes=8, planes=8),
        'SelfCalibratedConv2d': dict(in_channels=8, out_channels=8),
        # The conv factory build_conv_layer calls: an eligible 3x3 conv.
        'SCConv2d':
        dict(in_channels=8, out_channels=8, kernel_size=3, padding=1)
    },
    'transform': {
        'LoadImageFromFile': {}
    },
    'visualizer': {
        'PoseLocalVisualizer': dict(name='registry-test')
    },
    'hook': {
        'CheckpointHook': dict(interval=1),
        'DataCheckHook': {},
        'DeployHook': {},
        'PoseVisualizationHook': {}
    },
    # 'OPTIMIZER': an SGD optimizer made in the fresh process.
    'optim_wrapper': {
        'CPUAmpOptimWrapper': dict(optimizer='OPTIMIZER')
    },
}

# Names that build an object of another class: a factory's product.
BUILT_AS = {'SCConv2d': 'SelfCalibratedConv2d'}


def _run(code):
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_build_args_cover_every_registered_name():
    # Import every module of the package, then list what each registry holds.
    registered = _run(
        'import json, pkgutil, importlib, mmscnet\nfor m in '
        'pkgutil.walk_packages(mmscnet.__path__, "mmscnet."):\n    '
        'importlib.import_module(m.name)\nfrom mmscnet import '
        'registry\nprint(json.dumps({r.name: sorted(r.module_dict) for r in '
        '(registry.MODELS, registry.HOOKS, registry.TRANSFORMS, '
        'registry.VISUALIZERS, registry.OPTIM_WRAPPERS)}))')
    assert registered == {
        name: sorted(table)
        for name, table in BUILD_ARGS.items()
    }


@pytest.mark.parametrize('registry', sorted(BUILD_ARGS))
def test_every_registered_name_builds_from_a_fresh_process(registry):
    """As a config names it: ``type='mmscnet.X'`` through mmengine's root
    registry, in a process that imported nothing but mmengine, one registry
    per process (a lookup in another registry can import the module that
    registers a name; within one registry the first lookup imports its
    locations, whichever name it is for). Works only if each registry's
    locations cover every module that registers into it."""
    built = _run(
        'import json, sys, mmengine.registry as R\n'
        'from mmengine.visualization import Visualizer\n'
        'Visualizer.get_instance("current")  # painting hooks take the '
        'current one\n'
        'assert not [m for m in sys.modules if m.startswith("mmscnet")]\n'
        f'root = getattr(R, {registry.upper() + "S"!r})\n'
        'import torch\n'
        'sgd = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)\n'
        'built = {}\n'
        f'for name, args in {BUILD_ARGS[registry]!r}.items():\n'
        '    args = {k: sgd if v == "OPTIMIZER" else v for k, v in '
        'args.items()}\n'
        '    obj = root.build(dict(type="mmscnet." + name, **args))\n'
        '    built[name] = type(obj).__module__ + "." + type(obj).__name__\n'
        'print(json.dumps(built))')
    assert sorted(built) == sorted(BUILD_ARGS[registry])
    for name, where in built.items():
        assert where.startswith('mmscnet.') and where.endswith(
            '.' + BUILT_AS.get(name, name)), where


def test_pose_names_without_mmpose_say_what_to_install():
    # Without mmpose the hooks' registry still imports its locations (every
    # mmscnet hook resolves), and the two pose names explain themselves.
    code = ('import sys; sys.modules["mmpose"] = None  # as if not installed\n'
            'import mmengine.registry as R\n'
            'hook = R.HOOKS.build(dict(type="mmscnet.DataCheckHook"))\n'
            'assert type(hook).__name__ == "DataCheckHook"\n'
            'R.HOOKS.build(dict(type="mmscnet.PoseVisualizationHook"))\n')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True)
    assert out.returncode == 1
    assert ('ImportError: mmscnet.PoseVisualizationHook needs mmpose: '
            'pip install --no-deps mmpose==1.3.2'
            ) in out.stderr, out.stderr[-2000:]
