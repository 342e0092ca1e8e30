"""Detection end to end on the generated toy COCO set, through tools/train.py
and tools/test.py."""
import glob
import os
import os.path as osp
import re
from pathlib import Path

import pytest
import torch
from conftest import (REPO, TOY_CONFIG, cfg_options_argv, data_options,
                      dataset_keys, run_tool, trained_configs)
from mmengine.config import Config

from mmscnet.testing.toy_data import generate_toy_coco
from mmscnet.utils.checkpoint_io import load_from_local

DET_CONFIGS = sorted(glob.glob(str(REPO / 'configs/detection/*.py')))
import test as test_tool  # noqa: E402

import train as train_tool  # noqa: E402


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_coco')
    generate_toy_coco(str(root), num_train=4, num_val=2, image_size=(128, 128))
    return str(root)


def test_every_config_builds_its_model():
    """Every shipped config builds with an mmscnet backbone. Those listed in
    model-index.yml are built by test_metafile.py's
    test_entry_config_builds_with_the_listed_weights (with the same check);
    this test builds the rest, the toy configs, and checks that nothing is
    left out between the two."""
    import modelindex
    from mmengine.registry import DefaultScope
    configs = sorted(
        str(p.relative_to(REPO)) for p in (REPO / 'configs').rglob('*.py'))
    listed = {
        m.config
        for m in modelindex.load(str(REPO / 'model-index.yml')).models
    }
    rest = [c for c in configs if c not in listed]
    assert len(configs) >= 39 and set(listed) <= set(configs)
    assert rest and all('/toy/' in c for c in rest), rest
    for path in rest:
        cfg = Config.fromfile(str(REPO / path))
        registry = __import__(
            f'{cfg.default_scope}.registry', fromlist=['MODELS']).MODELS
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            model = registry.build(cfg.model)  # no init_weights: no download
        if path.endswith('toy/resnet18_toy-cls.py'):
            # make demo-cls's baseline: mmpretrain's own ResNet-18.
            assert type(model.backbone).__name__ == 'ResNet', path
            continue
        assert type(model.backbone
                    ).__module__ == 'mmscnet.models.backbones.scnet', path


@pytest.mark.parametrize(
    'config',
    trained_configs(DET_CONFIGS),
    ids=[osp.basename(c) for c in trained_configs(DET_CONFIGS)])
def test_detection_config_trains_one_iteration_and_validates(
        config, toy, tmp_path):
    opts = data_options(config, toy)
    # Two training images at batch size 2 (one iteration), then one
    # validation pass.
    key, _ = dataset_keys(Config.fromfile(config), 'train_dataloader')
    cfg_path_opts = dict(
        opts, **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            f'{key}.indices': 2
        })
    if 'RepeatDataset' in str(
            Config.fromfile(config).train_dataloader.dataset.type):
        cfg_path_opts['train_dataloader.dataset.times'] = 1
    # The released ImageNet weights cannot be downloaded here: start from
    # random init.
    cfg_path_opts['model.backbone.init_cfg'] = None
    train_tool.main([config, '--work-dir', str(tmp_path)] +
                    cfg_options_argv(cfg_path_opts))
    ckpt = (tmp_path / 'last_checkpoint').read_text().strip()
    assert ckpt.endswith('epoch_1.pth')
    state = load_from_local(ckpt)['state_dict']
    assert any(k.startswith('backbone.layer4.0.scconv.k2') for k in state)
    # The validation pass ran over both val images (an untrained model's COCO
    # result may be empty, so the log line is what shows it).
    logs = glob.glob(str(tmp_path / '*' / '*.log'))
    assert logs and re.search(r'Epoch\(val\) \[1\]\[(\d+)/\1\]',
                              Path(logs[0]).read_text())


def test_train_checkpoint_test_resume_end_to_end(toy, tmp_path):
    work = tmp_path / 'work'
    opts = data_options(TOY_CONFIG, toy)
    # 4 images at batch 2: 2 iterations an epoch.
    sched = {
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1,
        'train_dataloader.batch_size': 2
    }
    out = run_tool(['tools/train.py', TOY_CONFIG, '--work-dir',
                    str(work)] + cfg_options_argv(dict(opts, **sched)))
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()

    # tools/test.py on mmengine's own checkpoint (weights_only loading), COCO
    # metrics printed.
    out = run_tool(
        [
            'tools/test.py', TOY_CONFIG,
            str(ckpt), '--work-dir',
            str(work), '--out',
            str(tmp_path / 'preds.pkl'), '--show-dir', 'painted'
        ] + cfg_options_argv(opts),
        fresh=True)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert 'coco/bbox_mAP_50' in log and 'coco/segm_mAP' in log
    assert (tmp_path / 'preds.pkl').stat().st_size > 0
    painted = glob.glob(str(work / '*' / 'painted' / '*.png'))
    assert len(painted) == 2

    # --resume: continue to epoch 2 from the last checkpoint.
    saved = load_from_local(str(ckpt))
    from mmscnet.apis.tool_setup import (apply_train_args, build_runner,
                                         load_config)
    cfg = load_config(TOY_CONFIG,
                      dict(opts, **dict(sched, **{'train_cfg.max_epochs': 2})))
    apply_train_args(cfg, TOY_CONFIG, work_dir=str(work), resume='auto')
    runner = build_runner(cfg)
    runner.load_or_resume()
    assert runner.iter == saved['meta']['iter'] == 2 and runner.epoch == 1
    restored = runner.optim_wrapper.optimizer.state_dict()['state']
    assert len(restored) == len(saved['optimizer']['state']) > 0
    for idx, st in saved['optimizer']['state'].items():
        assert torch.equal(restored[idx]['momentum_buffer'],
                           st['momentum_buffer'])
    runner.train()
    assert runner.iter == 4
    assert (work / 'epoch_2.pth').is_file()


def test_swap_backbone_in_mmdet_packaged_config(toy, tmp_path):
    config = tmp_path / 'faster-rcnn_swapped.py'
    config.write_text(
        "_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'\n"
        "model = dict(backbone=dict(_delete_=True, type='mmscnet.SCNet', "
        "depth=50,\n"
        "                           frozen_stages=1, norm_eval=True))\n")
    opts = dict(
        data_options(str(config), toy), **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 2
        })
    train_tool.main([str(config), '--work-dir',
                     str(tmp_path / 'w')] + cfg_options_argv(opts))
    state = load_from_local(str(tmp_path / 'w' / 'epoch_1.pth'))['state_dict']
    assert 'backbone.layer1.0.scconv.k3.0.weight' in state
    # The run's log names every type the tools put in place of the config's,
    # one line each, and the config the Runner saved carries no trace of it.
    log = '\n'.join(
        open(f).read() for f in glob.glob(str(tmp_path / 'w' / '*' / '*.log')))
    rewrites = sorted(
        re.sub(r' \(\d+ places\)', '',
               line.split('config rewrite: ', 1)[1])
        for line in log.splitlines() if 'config rewrite: ' in line)
    assert rewrites == sorted([
        'CheckpointHook/mmengine.CheckpointHook -> mmscnet.CheckpointHook: '
        'the same hook, safe to kill while it saves '
        '(default_hooks.checkpoint)',
        'LoadImageFromFile/mmcv.LoadImageFromFile -> '
        'mmscnet.LoadImageFromFile: '
        "mmcv's loader whose errors name a missing, corrupt or truncated "
        "image",
        'custom_hooks -> custom_hooks + mmscnet.DataCheckHook: names the '
        'training images '
        "that the datasets' filter_cfg skips"
    ]), rewrites
    saved = (tmp_path / 'w' / config.name).read_text()
    assert '_mmscnet_rewrites' not in saved
    assert 'mmscnet.CheckpointHook' in saved


def test_checkpoint_with_pickle_payload_is_refused(toy, tmp_path):
    marker = tmp_path / 'payload_ran'

    class Payload:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': Payload()}, evil)
    with pytest.raises(
            ValueError,
            match=r'cannot load checkpoint .*evil.pth: it contains '
            r'objects outside the allowed checkpoint types'):
        test_tool.main(
            [TOY_CONFIG,
             str(evil), '--work-dir',
             str(tmp_path / 'w')] +
            cfg_options_argv(data_options(TOY_CONFIG, toy)))
    assert not marker.exists()


def test_truncated_and_missing_checkpoints_give_clear_errors(toy, tmp_path):
    from mmscnet.models import SCNet
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': SCNet(depth=50).state_dict()}, good)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[:4096])
    argv = ['--work-dir', str(tmp_path / 'w')] + cfg_options_argv(
        data_options(TOY_CONFIG, toy))
    with pytest.raises(
            ValueError,
            match=r'cannot load checkpoint .*cut.pth: the file is truncated'):
        test_tool.main([TOY_CONFIG, str(cut)] + argv)
    with pytest.raises(
            FileNotFoundError, match='checkpoint not found: .*nope.pth'):
        test_tool.main([TOY_CONFIG, str(tmp_path / 'nope.pth')] + argv)


def test_tool_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='config file not found'):
        train_tool.main([str(tmp_path / 'missing.py')])
    bad = tmp_path / 'cfg.txt'
    bad.write_text('x = 1')
    with pytest.raises(
            ValueError, match=r'unknown config file type .*expected .py'):
        train_tool.main([str(bad)])
    plain = tmp_path / 'plain.py'
    plain.write_text('x = 1\n')
    with pytest.raises(
            ValueError, match="default_scope must be one of .*got None"):
        train_tool.main([str(plain)])
    with pytest.raises(
            FileNotFoundError, match='--resume checkpoint not found'):
        train_tool.main([
            TOY_CONFIG, '--resume',
            str(tmp_path / 'none.pth'), '--work-dir',
            str(tmp_path)
        ])
