"""Model-zoo metadata (model-index.yml and configs/*/metafile.yml) in
OpenMMLab's format."""
import glob
import importlib
import os.path as osp
import re
from collections import defaultdict

import modelindex
import pytest
import yaml
from conftest import REPO
from mmengine.config import Config

# The library whose model zoo names each task's metrics, and its config scope.
TASK_LIB = {
    'Object Detection': 'mmdet',
    'Instance Segmentation': 'mmdet',
    'Semantic Segmentation': 'mmseg',
    'Image Classification': 'mmpretrain',
    'Body 2D Keypoint': 'mmpose',
}
FOLDER_LIB = {
    'detection': 'mmdet',
    'segmentation': 'mmseg',
    'classification': 'mmpretrain',
    'keypoint': 'mmpose'
}
AUTHORS = 'https://backseason.oss-cn-beijing.aliyuncs.com/scnet/'


def load_index():
    index = modelindex.load(str(REPO / 'model-index.yml'))
    return index, list(index.models)


INDEX, MODELS = load_index()


def library_metric_names(lib):
    """{(task, dataset): metric names} over every metafile the installed
    library ships."""
    root = osp.join(
        osp.dirname(importlib.import_module(lib).__file__), '.mim', 'configs')
    names = defaultdict(set)
    files = glob.glob(osp.join(root, '**', '*.yml'), recursive=True) + \
        glob.glob(osp.join(root, '**', '*.yaml'), recursive=True)
    for path in files:
        with open(path) as f:
            doc = yaml.safe_load(f)
        for model in (doc or {}).get('Models', []) if isinstance(doc,
                                                                 dict) else []:
            results = model.get('Results') or []
            for r in results if isinstance(results, list) else [results]:
                names[(r.get('Task'),
                       r.get('Dataset'))].update(r.get('Metrics') or {})
    return names


def test_model_index_is_valid_and_imports_every_task_folder():
    assert INDEX.check(silent=True) == []
    with open(REPO / 'model-index.yml') as f:
        imports = yaml.safe_load(f)['Import']
    assert sorted(imports) == sorted(f'configs/{d}/metafile.yml'
                                     for d in FOLDER_LIB)
    assert len({m.name
                for m in MODELS}) == len(MODELS), 'model names must be unique'
    collections = {c.name for c in INDEX.collections}
    for m in MODELS:
        assert m.in_collection in collections, m.name
        assert m.name == osp.splitext(osp.basename(m.config))[0]


def test_every_config_has_a_model_and_every_model_a_config():
    shipped = {
        osp.relpath(p, REPO)
        for p in glob.glob(str(REPO / 'configs/**/*.py'), recursive=True)
        if '/toy/' not in p
    }
    listed = [m.config for m in MODELS]
    assert len(listed) == len(set(listed))
    assert set(listed) == shipped, (set(listed) ^ shipped)


def test_metric_names_are_the_libraries_own():
    for lib in sorted(set(TASK_LIB.values())):
        known = library_metric_names(lib)
        for m in MODELS:
            for r in m.results or []:
                if TASK_LIB[r.task] != lib:
                    continue
                assert (
                    r.task, r.dataset
                ) in known, f'{m.name}: {lib} has no {r.task} on {r.dataset}'
                unknown = set(r.metrics) - known[(r.task, r.dataset)]
                assert not unknown, \
                    f'{m.name}: {lib} does not name metrics {unknown}'


def test_keypoint_figures_are_mmposes():
    root = osp.join(
        osp.dirname(importlib.import_module('mmpose').__file__), '.mim')
    with open(
            osp.join(
                root,
                'configs/body_2d_keypoint/topdown_heatmap/coco/scnet_coco.yml')
    ) as f:
        published = {
            osp.basename(m['Config']): m
            for m in yaml.safe_load(f)['Models']
        }
    checked = 0
    for m in MODELS:
        if m.results and m.results[0].task == 'Body 2D Keypoint':
            src = published[osp.basename(m.config)]
            assert m.results[0].metrics == src['Results'][0]['Metrics']
            assert m.data['Converted From']['Weights'] == src['Weights']
            checked += 1
    # mmpose publishes four SCNet COCO models; v1d has none
    assert checked == 4


@pytest.mark.parametrize('model', MODELS, ids=[m.name for m in MODELS])
def test_entry_config_builds_with_the_listed_weights(model):
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(str(REPO / model.config))
    lib = FOLDER_LIB[model.config.split('/')[1]]
    assert cfg.default_scope == lib
    for r in model.results or []:
        assert TASK_LIB[r.task] == lib
    with DefaultScope.overwrite_default_scope(lib):
        net = importlib.import_module(f'{lib}.registry').MODELS.build(
            cfg.model)
    backbone = cfg.model.backbone
    if 'Parameters' in model.metadata.data:  # as counted here, not copied
        assert model.metadata.data['Parameters'] == sum(
            p.numel() for p in net.parameters()), model.name
    if 'beyond the release' in model.in_collection:
        _check_beyond_the_release(model, cfg, net)
        return
    assert type(net.backbone).__module__ == 'mmscnet.models.backbones.scnet'
    # The ImageNet weights named in the entry are the ones of this backbone.
    expected = AUTHORS + {
        ('mmscnet.SCNet', 50): 'scnet50-dc6a7e87.pth',
        ('mmscnet.SCNetV1d', 50): 'scnet50_v1d-4109d1e1.pth',
        ('mmscnet.SCNet', 101): 'scnet101-44c5b751.pth'
    }[(backbone.type, backbone.get('depth', 50))]
    if lib == 'mmpretrain':
        if 'ablations' not in model.config:
            assert model.weights == expected
    else:
        assert model.metadata.data[
            'Pretrained'] == expected == backbone.init_cfg.checkpoint


def _check_beyond_the_release(model, cfg, net):
    """No released weights and no figures; a detector starts from the
    checkpoint its classification config writes."""
    from mmscnet.models import SelfCalibratedConv2d
    assert model.weights is None and not model.results, model.name
    assert any(isinstance(m, SelfCalibratedConv2d) for m in net.modules()) \
        or type(net.backbone).__module__ == 'mmscnet.models.backbones.scnet'
    pretrained = model.metadata.data.get('Pretrained')
    if pretrained is not None:
        assert pretrained == cfg.model.backbone.init_cfg.checkpoint
        work_dir, ckpt = pretrained.split('/')[-2:]
        source = Config.fromfile(
            str(REPO / 'configs/classification' / (work_dir + '.py')))
        assert ckpt == f'epoch_{source.train_cfg.max_epochs}.pth'
        assert source.model.backbone.type == cfg.model.backbone.type
        for key in ('depth', 'groups', 'base_width'):
            assert source.model.backbone[key] == cfg.model.backbone[key], key


def _flat(node, prefix=''):
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return {prefix[:-1]: node}
    out = {}
    for k, v in items:
        out.update(_flat(v, f'{prefix}{k}.'))
    return out


def test_scnet101_configs_differ_from_their_twin_in_depth_only():
    """Each SCNet-101 config left out of the per-config trainings
    (conftest.trained_configs) is its SCNet-50 twin with depth 101: the whole
    resolved config (bases, pipelines, heads, schedule) differs only in
    conftest.TWIN_KEYS. A config that changes more must be trained itself:
    rename it or drop it from the twins."""
    from conftest import TWIN_KEYS, scnet50_twin, trained_configs
    configs = sorted(glob.glob(str(REPO / 'configs/*/*.py')))
    deep = [
        c for c in configs if re.search(r'sc(net|next)101', osp.basename(c))
        and scnet50_twin(c) is not None
    ]
    left_out = sorted(set(configs) - set(trained_configs(configs)))
    # SCNeXt-101's detector has no SCNeXt-50 twin: it is trained itself.
    assert left_out == deep and len(deep) == 13
    for config in deep:
        twin = scnet50_twin(config)
        a = _flat(Config.fromfile(config).to_dict())
        b = _flat(Config.fromfile(twin).to_dict())
        differ = sorted(k for k in a.keys() | b.keys()
                        if a.get(k, KeyError) != b.get(k, KeyError))
        assert a['model.backbone.depth'] == 101, config
        assert b['model.backbone.depth'] == 50, twin
        assert [k for k in differ if not TWIN_KEYS.fullmatch(k)
                ] == [], (osp.basename(config), osp.basename(twin))
