"""Top-down keypoint detection (mmpose) on the generated toy keypoint set,
through tools/train.py and tools/test.py; mmpose's own SCNet checkpoints."""
import glob
import json
import os.path as osp
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import train as train_tool  # noqa: E402
from conftest import (REPO, cfg_options_argv, rel_diff, run_tool,
                      trained_configs)
from mmengine.config import Config

from mmscnet.testing.toy_data import generate_toy_keypoints
from mmscnet.utils.checkpoint_io import load_from_local

POSE_CONFIGS = sorted(glob.glob(str(REPO / 'configs/keypoint/*.py')))
TOY_POSE = str(REPO / 'configs/keypoint/toy/td-hm_scnet50_toy-pose-96x64.py')
MMPOSE_COCO = 'mmpose::body_2d_keypoint/topdown_heatmap/coco/'


@pytest.fixture(scope='module')
def toy_pose(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_pose')
    generate_toy_keypoints(str(root), num_train=4, num_val=3)
    return str(root)


def pose_data_options(root):
    """--cfg-options that point an mmpose COCO top-down config at the toy set:
    data paths only (and the ground-truth person boxes for validation)."""
    opts = {}
    for loader, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'val'), ('test_dataloader',
                                                      'val')):
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
        opts[f'{loader}.dataset.data_root'] = root + '/'
        ann = f'annotations/person_keypoints_{split}.json'
        opts[f'{loader}.dataset.ann_file'] = ann
        opts[f'{loader}.dataset.data_prefix.img'] = f'{split}/'
    for loader in ('val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.bbox_file'] = None
    for ev in ('val_evaluator', 'test_evaluator'):
        opts[
            f'{ev}.ann_file'] = f'{root}/annotations/person_keypoints_val.json'
    return opts


def val_log(work_dir):
    logs = glob.glob(str(Path(work_dir) / '*' / '*.log'))
    assert logs, f'no log under {work_dir}'
    return Path(sorted(logs)[-1]).read_text()


def test_there_are_five_keypoint_configs():
    names = {osp.basename(c) for c in POSE_CONFIGS}
    assert names == {
        'td-hm_scnet50_8xb64-210e_coco-256x192.py',
        'td-hm_scnet50_8xb32-210e_coco-384x288.py',
        'td-hm_scnet101_8xb32-210e_coco-256x192.py',
        'td-hm_scnet101_8xb48-210e_coco-384x288.py',
        'td-hm_scnet50-v1d_8xb64-210e_coco-256x192.py'
    }


@pytest.mark.parametrize(
    'config',
    trained_configs(POSE_CONFIGS),
    ids=[osp.basename(c) for c in trained_configs(POSE_CONFIGS)])
def test_keypoint_config_trains_one_iteration_and_validates(
        config, toy_pose, tmp_path):
    cfg = Config.fromfile(config)
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__module__ == 'mmscnet.models.backbones.scnet'
    assert cfg.model.backbone.init_cfg.checkpoint.startswith(
        'https://backseason.oss-cn-beijing.aliyuncs.com/scnet/scnet')
    # The toy persons fit one batch at the config's own batch size: one
    # iteration, at the config's own input size; then one validation pass.
    opts = dict(
        pose_data_options(toy_pose), **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1
        })
    opts[
        # the ImageNet weights cannot be downloaded here
        'model.backbone.init_cfg'] = None
    train_tool.main([config, '--work-dir', str(tmp_path)] +
                    cfg_options_argv(opts))
    state = load_from_local(str(tmp_path / 'epoch_1.pth'))['state_dict']
    assert 'backbone.layer4.0.scconv.k4.0.weight' in state
    assert 'head.final_layer.weight' in state
    log = val_log(tmp_path)
    assert re.search(r'Epoch\(train\) +\[1\]\[1/1\]', log)
    assert re.search(r'Epoch\(val\) \[1\]\[(\d+)/\1\] +coco/AP: ', log)


def toy_val_dataset(root):
    from mmengine.registry import init_default_scope
    from mmpose.registry import DATASETS
    init_default_scope('mmpose')
    cfg = Config.fromfile(TOY_POSE)
    ds = cfg.val_dataloader.dataset
    ds.update(
        data_root=root + '/', ann_file='annotations/person_keypoints_val.json')
    return DATASETS.build(ds)


def coco_keypoint_ap(dataset, ann_file, shift=0.0):
    """mmpose's CocoMetric (as the configs set it up) fed each person's
    ground-truth keypoints, moved by ``shift`` pixels, as the prediction."""
    from mmpose.registry import METRICS
    metric = METRICS.build(dict(type='CocoMetric', ann_file=ann_file))
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        kpts = info['keypoints'] + shift
        metric.process([], [
            dict(
                id=info['id'],
                img_id=info['img_id'],
                category_id=1,
                gt_instances=dict(),
                pred_instances=dict(
                    keypoints=kpts, keypoint_scores=np.ones(kpts.shape[:2])))
        ])
    return metric.evaluate(len(dataset))


def test_keypoint_metric_sanity(tmp_path):
    root = str(tmp_path / 'pose')
    generate_toy_keypoints(root, num_train=1, num_val=20)
    ann_file = root + '/annotations/person_keypoints_val.json'
    dataset = toy_val_dataset(root)
    with open(ann_file) as f:
        anns = json.load(f)['annotations']
    # Ground-truth boxes, one sample per annotated person (none with 0
    # keypoints here).
    assert len(dataset) == len(anns) > 20
    exact = coco_keypoint_ap(dataset, ann_file)
    assert exact['coco/AP'] == pytest.approx(
        1.0) and exact['coco/AR'] == pytest.approx(1.0)
    shifted = coco_keypoint_ap(dataset, ann_file, shift=3.0)
    assert shifted['coco/AP'] < 0.9
    assert coco_keypoint_ap(
        dataset, ann_file, shift=8.0)['coco/AP'] < shifted['coco/AP']


def test_toy_keypoints_use_coco_visibility_flags(tmp_path):
    paths = generate_toy_keypoints(str(tmp_path), num_train=40, num_val=1)
    with open(paths['train']) as f:
        anns = json.load(f)['annotations']
    kpts = np.array([a['keypoints'] for a in anns]).reshape(len(anns), 17, 3)
    flags = kpts[..., 2]
    assert set(np.unique(flags)) == {0, 1, 2}
    assert (kpts[flags == 0][:, :2] == 0
            ).all()  # COCO: unlabelled points sit at (0, 0)
    assert all(a['num_keypoints'] == int((f > 0).sum())
               for a, f in zip(anns, flags))
    # Poses vary: the left wrist relative to the left shoulder, in units of
    # person height.
    rel = (kpts[:, 9, :2] - kpts[:, 5, :2]) / np.array(
        [a['bbox'][3] for a in anns])[:, None]
    both = (flags[:, 9] > 0) & (flags[:, 5] > 0)
    assert rel[both].std(axis=0).min() > 0.1
    # Facing the camera or away: the person's left side is on either side of
    # the image.
    left_of = kpts[both, 5, 0] < kpts[both, 6, 0]
    assert 0 < left_of.sum() < both.sum()


def test_train_then_test_prints_keypoint_ap_and_paints(toy_pose, tmp_path):
    work = tmp_path / 'work'
    opts = pose_data_options(toy_pose)
    out = run_tool(
        ['tools/train.py', TOY_POSE, '--work-dir',
         str(work)] + cfg_options_argv(
             dict(opts, **{
                 'train_cfg.max_epochs': 2,
                 'train_cfg.val_interval': 2
             })),
        fresh=True)  # mmpose's one run in a fresh interpreter
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = (work / 'last_checkpoint').read_text().strip()
    assert ckpt.endswith('epoch_2.pth')
    out = run_tool([
        'tools/test.py', TOY_POSE, ckpt, '--work-dir',
        str(work), '--out',
        str(tmp_path / 'preds.pkl'), '--show-dir', 'painted'
    ] + cfg_options_argv(opts))
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    for key in ('coco/AP:', 'coco/AP .5:', 'coco/AP .75:', 'coco/AR:'):
        assert key in log
    assert 'Evaluate annotation type *keypoints*' in log
    # One painted PNG per val image (all its persons in one picture), ground
    # truth beside prediction: twice the image's width.
    import cv2
    painted = sorted(glob.glob(str(work / '*' / 'painted' / '*.png')))
    val_images = sorted(glob.glob(toy_pose + '/val/*.png'))
    assert [osp.basename(p)
            for p in painted] == [osp.basename(p) for p in val_images]
    h, w = cv2.imread(val_images[0]).shape[:2]
    assert cv2.imread(painted[0]).shape[:2] == (h, 2 * w)
    from mmengine.fileio import load
    preds = load(str(tmp_path / 'preds.pkl'))
    assert len(preds) == len(toy_val_dataset(toy_pose))
    assert preds[0]['pred_instances']['keypoints'].shape == (1, 17, 2)


def test_swap_backbone_in_mmpose_packaged_config(toy_pose, tmp_path):
    config = tmp_path / 'td-hm_swapped.py'
    config.write_text(
        f"_base_ = '{MMPOSE_COCO}td-hm_res50_8xb64-210e_coco-256x192.py'\n"
        "model = dict(backbone=dict(_delete_=True, type='mmscnet.SCNet', "
        "depth=50))\n")
    opts = dict(
        pose_data_options(toy_pose), **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 2
        })
    train_tool.main([str(config), '--work-dir',
                     str(tmp_path / 'w')] + cfg_options_argv(opts))
    state = load_from_local(str(tmp_path / 'w' / 'epoch_1.pth'))['state_dict']
    assert 'backbone.layer1.0.scconv.k3.0.weight' in state
    assert re.search(r'Epoch\(train\) +\[1\]\[1/1\]', val_log(tmp_path / 'w'))


@pytest.fixture(scope='module')
def mmpose_checkpoint(tmp_path_factory):
    """mmpose's own SCNet-50 256x192 model, as its published checkpoints hold
    it, with weights that behave like trained ones; its checkpoint, and the
    same converted by tools/model_converters/mmpose2mmscnet.py."""
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS
    from reference_scnet import calibrate_
    tmp = tmp_path_factory.mktemp('mmpose_ckpt')
    theirs_cfg = tmp / 'theirs.py'
    theirs_cfg.write_text(
        f"_base_ = '{MMPOSE_COCO}td-hm_scnet50_8xb64-210e_coco-256x192.py'\n"
        "model = dict(backbone=dict(init_cfg=None))\n")
    # The scope only for the build: a module fixture's scope would outlive
    # the module (conftest restores it after each test, not after fixtures).
    with DefaultScope.overwrite_default_scope('mmpose'):
        theirs = MODELS.build(Config.fromfile(str(theirs_cfg)).model)
    calibrate_(
        theirs,
        lambda x: theirs(x, None, mode='tensor'),
        seed=0,
        shape=(4, 3, 128, 128),
        key='mmpose-td-hm-scnet50')
    assert type(theirs.backbone).__module__.startswith('mmpose.')
    src = tmp / 'mmpose_scnet50.pth'
    torch.save(
        dict(
            state_dict=theirs.state_dict(), meta=dict(mmpose_version='1.3.2')),
        src)
    dst = tmp / 'mmscnet_scnet50.pth'
    out = run_tool([
        'tools/model_converters/mmpose2mmscnet.py',
        str(src),
        str(dst), '--keep-head'
    ],
                   fresh=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'unmapped' not in out.stdout and 'missing' not in out.stdout
    return theirs, str(theirs_cfg), src, dst


SCNET50_POSE = 'td-hm_scnet50_8xb64-210e_coco-256x192.py'


def test_mmpose_topdown_checkpoint_converts_and_matches(mmpose_checkpoint):
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS
    theirs, _, _, dst = mmpose_checkpoint
    config = POSE_CONFIGS[[osp.basename(c)
                           for c in POSE_CONFIGS].index(SCNET50_POSE)]
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmpose'):
        ours = MODELS.build(cfg.model).eval()
    state = load_from_local(str(dst))['state_dict']
    # Every backbone and head tensor is placed: a strict load misses none.
    ours.load_state_dict(state, strict=True)
    assert len(state) == len(theirs.state_dict())
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        expected, got = theirs(
            x, None, mode='tensor'), ours(
                x, None, mode='tensor')
    worst = rel_diff(got, expected)
    print('[parity] mmpose SCNet-50 top-down heatmaps: worst rel diff '
          f'{worst:.2e} ({torch.get_num_threads()} threads)')
    assert worst <= 1e-5


def test_mmpose_topdown_checkpoint_evaluates(mmpose_checkpoint, toy_pose,
                                             tmp_path):
    _, theirs_cfg, src, dst = mmpose_checkpoint
    config = POSE_CONFIGS[[osp.basename(c)
                           for c in POSE_CONFIGS].index(SCNET50_POSE)]
    # tools/test.py with our config predicts what mmpose's own model predicts
    # on the toy val persons.
    preds = {}
    for name, cfg_path, ckpt in (('ours', config, dst), ('theirs', theirs_cfg,
                                                         src)):
        out = run_tool([
            'tools/test.py', cfg_path,
            str(ckpt), '--work-dir',
            str(tmp_path / name), '--out',
            str(tmp_path / f'{name}.pkl')
        ] + cfg_options_argv(pose_data_options(toy_pose)))
        assert out.returncode == 0, out.stderr[-3000:]
        assert 'coco/AP:' in out.stdout + out.stderr
        from mmengine.fileio import load
        preds[name] = load(str(tmp_path / f'{name}.pkl'))
    assert len(preds['ours']) == len(preds['theirs']) > 0
    for a, b in zip(preds['ours'], preds['theirs']):
        np.testing.assert_allclose(
            a['pred_instances']['keypoints'],
            b['pred_instances']['keypoints'],
            atol=1e-3)
