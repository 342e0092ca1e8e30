"""Semantic segmentation (mmseg) and ImageNet classification (mmpretrain)
configs on generated toy data, released-checkpoint evaluation, and the
paper's ablations."""
import glob
import os
import os.path as osp
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (REPO, cfg_options_argv, rel_diff, run_tool,
                      trained_configs)
from mmengine.config import Config
from reference_scnet import RefSCNet, calibrate_

from mmscnet.testing.toy_data import (generate_toy_classification,
                                      generate_toy_segmentation)

SEG_CONFIGS = sorted(glob.glob(str(REPO / 'configs/segmentation/*.py')))
# (The conv_cfg swap config is trained by its own test, which checks more.)
CLS_CONFIGS = sorted(
    c for c in glob.glob(
        str(REPO / 'configs/classification/**/*_in1k.py'), recursive=True)
    if 'scconv2d' not in c)
SEG_TOY = str(REPO /
              'configs/segmentation/toy/deeplabv3_scnet50-d8_toy-seg.py')
CLS_TOY = str(REPO / 'configs/classification/toy/scnet50_toy-cls.py')
import train as train_tool  # noqa: E402


@pytest.fixture(scope='module')
def toy_seg(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_seg')
    generate_toy_segmentation(
        str(root), num_train=4, num_val=2, image_size=(96, 96))
    return str(root)


@pytest.fixture(scope='module')
def toy_cls(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_cls')
    generate_toy_classification(
        str(root), num_train=6, num_val=6, image_size=(64, 64))
    return str(root)


def _in_process(loader):
    # Worker processes cost more than they save on a few tiny images, and
    # persistent ones outlive each test.
    return {f'{loader}.num_workers': 0, f'{loader}.persistent_workers': False}


def seg_options(config, root, size=64):
    """Data paths, file suffixes and image size only; the dataset class stays.
    """
    cfg = Config.fromfile(config)
    opts = {'model.data_preprocessor.size': (size, size)}
    for loader, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'val'), ('test_dataloader',
                                                      'val')):
        ds = cfg[loader]['dataset']
        key = f'{loader}.dataset'
        opts.update(_in_process(loader))
        opts.update({
            f'{key}.data_root': root,
            f'{key}.img_suffix': '.png',
            f'{key}.seg_map_suffix': '.png',
            f'{key}.data_prefix.img_path': f'img_dir/{split}',
            f'{key}.data_prefix.seg_map_path': f'ann_dir/{split}'
        })
        for i, t in enumerate(ds['pipeline']):
            if t['type'] in ('RandomResize', 'Resize'):
                opts[f'{key}.pipeline.{i}.scale'] = (2 * size, 2 * size)
            if t['type'] == 'RandomCrop':
                opts[f'{key}.pipeline.{i}.crop_size'] = (size, size)
    return opts


def cls_options(config, root, size=64):
    cfg = Config.fromfile(config)
    opts = {}
    for loader, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'val'), ('test_dataloader',
                                                      'val')):
        key = f'{loader}.dataset'
        opts.update(_in_process(loader))
        # ImageNet names its folder by `split`, CustomDataset by `data_prefix`.
        folder = 'split' if cfg[loader]['dataset'][
            'type'] == 'ImageNet' else 'data_prefix'
        opts.update({
            f'{key}.data_root': root,
            f'{key}.{folder}': split,
            f'{key}.classes': ('person', 'ball', 'box')
        })
        for i, t in enumerate(cfg[loader]['dataset']['pipeline']):
            if t['type'] in ('RandomResizedCrop', 'ResizeEdge'):
                opts[f'{key}.pipeline.{i}.scale'] = size
            if t['type'] == 'CenterCrop':
                opts[f'{key}.pipeline.{i}.crop_size'] = size
    return opts


def _val_ran(work_dir):
    logs = glob.glob(str(Path(work_dir) / '*' / '*.log'))
    return logs and re.search(r'(Iter|Epoch)\(val\) (\[\d+\])?\[(\d+)/\3\]',
                              Path(logs[0]).read_text())


@pytest.mark.parametrize(
    'config',
    trained_configs(SEG_CONFIGS),
    ids=[osp.basename(c) for c in trained_configs(SEG_CONFIGS)])
def test_segmentation_config_trains_one_iteration_and_validates(
        config, toy_seg, tmp_path):
    opts = seg_options(config, toy_seg)
    opts.update({
        'train_cfg.max_iters': 1,
        'train_cfg.val_interval': 1,
        'model.backbone.init_cfg': None
    })  # no ImageNet download here
    train_tool.main([config, '--work-dir', str(tmp_path)] +
                    cfg_options_argv(opts))
    assert (tmp_path / 'iter_1.pth').is_file() or (
        tmp_path / 'last_checkpoint').is_file()
    assert _val_ran(tmp_path)


def _train_one_iteration(config, toy_cls, work_dir):
    """tools/train.py (in this process) for one iteration of 2 toy images,
    then validation."""
    opts = cls_options(config, toy_cls)
    opts.update({
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1,
        'train_dataloader.dataset.indices': 2,
        'train_dataloader.batch_size': 2
    })
    train_tool.main([config, '--work-dir', str(work_dir)] +
                    cfg_options_argv(opts))


@pytest.mark.parametrize(
    'config',
    trained_configs(CLS_CONFIGS),
    ids=[osp.basename(c) for c in trained_configs(CLS_CONFIGS)])
def test_classification_config_trains_one_iteration_and_validates(
        config, toy_cls, tmp_path):
    _train_one_iteration(config, toy_cls, tmp_path)
    assert (tmp_path / 'epoch_1.pth').is_file()
    assert _val_ran(tmp_path)


def test_conv_cfg_swap_trains_a_self_calibrated_mmpretrain_resnet18(
        toy_cls, tmp_path):
    """configs/classification/resnet18-scconv2d_8xb32_in1k.py: mmpretrain's
    ResNet-18 config with conv_cfg=dict(type='mmscnet.SCConv2d') only. One
    iteration through tools/train.py; the saved network has its 16 3x3
    convs self-calibrated (counted in the checkpoint) and the rest plain."""
    config = str(REPO / 'configs/classification/'
                 'resnet18-scconv2d_8xb32_in1k.py')
    _train_one_iteration(config, toy_cls, tmp_path)
    assert _val_ran(tmp_path)
    state = torch.load(
        tmp_path / 'epoch_1.pth', map_location='cpu',
        weights_only=False)['state_dict']
    calibrated = sorted(k[:-len('.scconv.k2.1.weight')] for k in state
                        if k.endswith('.scconv.k2.1.weight'))
    assert calibrated == sorted(f'backbone.layer{i}.{b}.conv{c}'
                                for i in range(1, 5) for b in range(2)
                                for c in (1, 2))
    assert state['backbone.conv1.weight'].shape == (64, 3, 7, 7)
    assert state['backbone.layer2.0.downsample.0.weight'].shape == (128, 64, 1,
                                                                    1)


def _train_then_test(config, opts, schedule, checkpoint, show_dir, work_dir,
                     fresh):
    """tools/train.py with a short schedule (in a fresh interpreter if
    ``fresh``), then tools/test.py on its checkpoint with ``--out``; the test
    log and the dumped predictions."""
    out = run_tool(
        ['tools/train.py', config, '--work-dir',
         str(work_dir)] + cfg_options_argv(dict(opts, **schedule)),
        fresh=fresh)
    assert out.returncode == 0, out.stderr[-3000:]
    preds = work_dir / 'preds.pkl'
    out = run_tool([
        'tools/test.py', config,
        str(work_dir / checkpoint), '--work-dir',
        str(work_dir), '--show-dir', show_dir, '--out',
        str(preds)
    ] + cfg_options_argv(opts))
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    # The metric comes from the checkpoint just trained, and from no other.
    loads = re.findall(r'Load checkpoint from (\S+)', log)
    assert loads == [str(work_dir / checkpoint)], loads
    with open(preds, 'rb') as f:
        return log, pickle.load(f)


def _logged(log, name):
    """The value of metric ``name`` in the test log's final line."""
    values = re.findall(rf'{re.escape(name)}: (\d+\.\d+)', log)
    assert values, f'{name} not in the log'
    return float(values[-1])


def _miou(samples):
    """mIoU (%) over the dataset as mmseg's IoUMetric defines it: per class,
    intersections and unions summed over all images; classes that occur in
    neither prediction nor ground truth left out; pixels labelled 255
    ignored."""
    pairs = []
    for s in samples:
        pred = np.asarray(s['pred_sem_seg']['data']).reshape(-1)
        gt = np.asarray(s['gt_sem_seg']['data']).reshape(-1)
        pairs.append((pred[gt != 255], gt[gt != 255]))
    # Classes beyond the largest label seen have no union: left out anyway.
    n = 1 + max(int(max(p.max(), g.max())) for p, g in pairs)
    inter, union = np.zeros(n), np.zeros(n)
    for pred, gt in pairs:
        for c in range(n):
            inter[c] += np.sum((pred == c) & (gt == c))
            union[c] += np.sum((pred == c) | (gt == c))
    with np.errstate(invalid='ignore', divide='ignore'):
        return float(np.nanmean(inter / union) * 100)


def test_segmentation_train_then_test_gives_the_miou_of_its_predictions(
        toy_seg, tmp_path):
    log, samples = _train_then_test(
        SEG_TOY,
        seg_options(SEG_TOY, toy_seg), {
            'train_cfg.max_iters': 4,
            'train_cfg.val_interval': 4,
            'default_hooks.checkpoint.interval': 4
        },
        'iter_4.pth',
        str(tmp_path / 'painted'),
        tmp_path,
        fresh=True)  # mmseg's one run in a fresh interpreter
    miou = _logged(log, 'mIoU')
    assert 0 <= miou <= 100
    assert len(samples) == 2
    assert abs(miou - _miou(samples)) <= 0.01, (miou, _miou(samples))
    assert len(
        glob.glob(str(tmp_path / 'painted' / '**' / '*.png'),
                  recursive=True)) == 2


def test_classification_train_then_test_gives_the_top1_of_its_predictions(
        toy_cls, tmp_path):
    log, samples = _train_then_test(
        CLS_TOY,
        cls_options(CLS_TOY, toy_cls), {
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            'default_hooks.checkpoint.interval': 1
        },
        'epoch_1.pth',
        'painted',
        tmp_path,
        fresh=False)
    top1 = _logged(log, 'accuracy/top1')
    assert 0 <= top1 <= 100
    assert len(samples) == 6
    hits = [int(s['pred_label'][0]) == int(s['gt_label'][0]) for s in samples]
    assert abs(top1 - 100 * sum(hits) / len(hits)) <= 0.01, (top1, hits)
    assert len(glob.glob(str(
        tmp_path / 'painted' / '*.png'))) == 6  # under the work dir


RELEASED = {
    'scnet50_8xb32_in1k.py':
    dict(layers=(3, 4, 6, 3)),
    'scnet50-v1d_8xb32_in1k.py':
    dict(layers=(3, 4, 6, 3), v1d=True, stem_width=32),
}


def released_classifier(name, tmp_path):
    """The authors' classifier (RefSCNet with its fc) with weights that behave
    like trained ones, saved in their layout (conv1.*, layer*, fc.*)."""
    ref = calibrate_(
        RefSCNet(**RELEASED[name]), seed=2, key=f'released-{name}')
    ckpt = tmp_path / 'released.pth'
    torch.save(ref.state_dict(), ckpt)
    return ref, ckpt


def loaded_by_the_tools(name, toy_cls, tmp_path):
    """The reference classifier, and the model tools/test.py builds from our
    config and fills with the reference's checkpoint (strict: every tensor of
    the file placed, fc -> head.fc, nothing left over)."""
    from mmscnet.apis.tool_setup import (apply_test_args, build_runner,
                                         load_config)
    config = str(REPO / 'configs/classification' / name)
    ref, ckpt = released_classifier(name, tmp_path)
    cfg = load_config(config, cls_options(config, toy_cls))
    apply_test_args(cfg, config, str(ckpt), work_dir=str(tmp_path))
    runner = build_runner(cfg)
    runner.load_checkpoint(str(ckpt), strict=True)
    return ref, runner.model.eval()


@pytest.mark.parametrize('name', RELEASED)
def test_released_classifier_logits_match_reference(name, toy_cls, tmp_path):
    ref, model = loaded_by_the_tools(name, toy_cls, tmp_path)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        logits, expected = model(x, mode='tensor'), ref(x)
    assert logits.shape == (2, 1000)
    worst = rel_diff(logits, expected)
    print(f'[parity] {name} released classifier logits: worst rel diff '
          f'{worst:.2e} ({torch.get_num_threads()} threads)')
    assert worst <= 1e-5


def test_released_classifier_loads_on_torch_before_2_5(toy_cls, tmp_path,
                                                       monkeypatch):
    """torch < 2.5 has no public register_load_state_dict_pre_hook: with it
    hidden, the tools still map the authors' checkpoint (through the private
    method) and the logits are the reference's."""
    monkeypatch.delattr(torch.nn.Module, 'register_load_state_dict_pre_hook')
    ref, model = loaded_by_the_tools('scnet50_8xb32_in1k.py', toy_cls,
                                     tmp_path)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert rel_diff(model(x, mode='tensor'), ref(x)) <= 1e-5


def test_tools_test_evaluates_released_checkpoint(toy_cls, tmp_path):
    config = str(REPO / 'configs/classification/scnet50_8xb32_in1k.py')
    ref = calibrate_(RefSCNet(), seed=3, key='ref-scnet50')
    ckpt = tmp_path / 'scnet50-release-layout.pth'
    torch.save(ref.state_dict(), ckpt)
    out = run_tool(
        ['tools/test.py', config,
         str(ckpt), '--work-dir',
         str(tmp_path)] + cfg_options_argv(cls_options(config, toy_cls)),
        fresh=True)  # mmpretrain's one run in a fresh interpreter
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'mapped to backbone.* / head.fc.*' in log
    assert 'missing keys' not in log and 'unexpected key' not in log
    assert re.search(r'accuracy/top1: \d+\.\d+', log)


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server (127.0.0.1 only) serving tmp_path/'served'."""
    import functools
    import http.server
    import threading
    served = tmp_path / 'served'
    served.mkdir()
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    thread.join()


def test_tools_test_takes_a_checkpoint_url(toy_cls, tmp_path, http_server):
    served, url = http_server
    config = str(REPO / 'configs/classification/scnet50_8xb32_in1k.py')
    torch.save(
        calibrate_(RefSCNet(), seed=3, key='ref-scnet50').state_dict(),
        served / 'scnet50-release.pth')
    out = run_tool(
        [
            'tools/test.py', config, f'{url}/scnet50-release.pth',
            '--work-dir',
            str(tmp_path / 'w')
        ] + cfg_options_argv(cls_options(config, toy_cls)),
        env={'TORCH_HOME': str(tmp_path / 'torch_home')})
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'mapped to backbone.* / head.fc.*' in log and re.search(
        r'accuracy/top1: \d', log)
    cached = tmp_path / 'torch_home/hub/checkpoints/scnet50-release.pth'
    assert cached.read_bytes() == (served / 'scnet50-release.pth').read_bytes()


def test_checkpoint_url_gets_the_weights_only_check(tmp_path, http_server,
                                                    monkeypatch):
    from mmengine.runner import CheckpointLoader
    served, url = http_server
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    marker = tmp_path / 'payload_ran'

    class Payload:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    torch.save({'state_dict': {}, 'meta': Payload()}, served / 'evil.pth')
    with pytest.raises(
            ValueError,
            match=r'cannot load checkpoint .*evil\.pth: it contains '
            'objects outside the allowed checkpoint types'):
        CheckpointLoader.load_checkpoint(f'{url}/evil.pth')
    assert not marker.exists()
    with pytest.raises(
            ValueError,
            match=r'cannot download checkpoint http://127\.0\.0\.1:\d+/'
            r'nope\.pth: HTTP Error 404'):
        CheckpointLoader.load_checkpoint(f'{url}/nope.pth')


def test_released_to_mmpretrain_converter_tool(tmp_path):
    ref = RefSCNet()
    src, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    torch.save(ref.state_dict(), src)
    out = run_tool(
        ['tools/model_converters/scnet2mmpretrain.py',
         str(src),
         str(dst)],
        fresh=True)
    assert out.returncode == 0, out.stderr
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert torch.equal(converted['head.fc.weight'], ref.fc.weight)
    assert torch.equal(converted['backbone.layer3.5.scconv.k4.1.running_var'],
                       ref.layer3[5].scconv.k4[1].running_var)
    out = run_tool([
        'tools/model_converters/scnet2mmpretrain.py',
        str(dst),
        str(tmp_path / 'x.pth')
    ])
    assert out.returncode == 2
    assert 'not in the released SCNet layout' in out.stderr


ABLATIONS = {
    'scnet50_8xb32_in1k.py': (4, 'avg', True, 'nearest'),
    'ablations/scnet50-pool-r2_8xb32_in1k.py': (2, 'avg', True, 'nearest'),
    'ablations/scnet50-pool-r8_8xb32_in1k.py': (8, 'avg', True, 'nearest'),
    'ablations/scnet50-maxpool_8xb32_in1k.py': (4, 'max', True, 'nearest'),
    'ablations/scnet50-noidentity_8xb32_in1k.py': (4, 'avg', False, 'nearest'),
    'ablations/scnet50-bilinear_8xb32_in1k.py': (4, 'avg', True, 'bilinear'),
}


@pytest.mark.parametrize('name', ABLATIONS)
def test_ablation_configs_build_the_named_scconv(name):
    from mmpretrain.registry import MODELS

    from mmscnet.models import SCConv
    model = MODELS.build(
        Config.fromfile(str(REPO / 'configs/classification' / name)).model)
    scconvs = [m for m in model.modules() if isinstance(m, SCConv)]
    assert len(scconvs) == 16
    r, pooling_type, identity, up = ABLATIONS[name]
    for m in scconvs:
        pool = m.k2[0]
        assert (pool.pooling_r, pool.pooling_type) == (r, pooling_type)
        assert m.with_identity is identity and m.upsample_mode == up
    # and the difference shows in the computation: r sets the size of the
    # calibration map.
    with torch.no_grad():
        assert scconvs[0].k2(torch.rand(1, 32, 16, 16)).shape[-1] == 16 // r
