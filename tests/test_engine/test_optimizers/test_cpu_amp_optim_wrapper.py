"""bf16 mixed-precision training on the CPU: tools/train.py --amp without a
GPU, through mmscnet.CPUAmpOptimWrapper."""
import json
import logging

import pytest
import torch
from conftest import REPO, TOY_CONFIG, cfg_options_argv, run_tool

from mmscnet.engine.optimizers import CPUAmpOptimWrapper
from mmscnet.engine.optimizers.cpu_amp_optim_wrapper import \
    fp32_mmcv_ops_under_cpu_autocast
from mmscnet.utils.checkpoint_io import load_from_local
from mmscnet.utils.misc import cpu_has_native_bf16

CLS_TOY = str(REPO / 'configs/classification/toy/scnet50_toy-cls.py')


def _wrapper(**kwargs):
    model = torch.nn.Conv2d(3, 4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, CPUAmpOptimWrapper(optimizer=opt, **kwargs)


def test_optim_context_autocasts_to_bf16_and_keeps_fp32_weights():
    model, wrapper = _wrapper()
    x = torch.randn(2, 3, 8, 8)
    with wrapper.optim_context(model):
        y = model(x)
        loss = y.float().square().mean()
    assert y.dtype == torch.bfloat16
    before = model.weight.detach().clone()
    wrapper.backward(loss)
    assert model.weight.dtype == model.weight.grad.dtype == torch.float32
    wrapper.step()
    assert not torch.equal(model.weight, before)
    assert model(x).dtype == torch.float32  # outside the context: fp32
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state  # bf16 needs none


@pytest.mark.parametrize('native', [True, False])
def test_a_cpu_without_native_bf16_is_warned_about(monkeypatch, native):
    """The warning, whatever CPU runs the suite: the check is stubbed to each
    answer (the end-to-end test below sees the real one)."""
    import mmscnet.engine.optimizers.cpu_amp_optim_wrapper as mod
    logged = []
    monkeypatch.setattr(mod, 'cpu_has_native_bf16', lambda: native)
    monkeypatch.setattr(mod, 'print_log', lambda msg, **kw: logged.append(
        (msg, kw['level'])))
    _wrapper()
    warnings = [m for m, level in logged if level == logging.WARNING]
    assert bool(warnings) == (not native)
    if not native:
        assert 'bf16 is emulated' in warnings[0]
        assert 'avx512_bf16 nor amx_bf16' in warnings[0]


@pytest.mark.parametrize('dtype', ['float16', torch.float16, 'float32'])
def test_anything_but_bf16_is_refused(dtype):
    with pytest.raises(
            ValueError,
            match="bf16 autocast only, got dtype=.*fp16 mixed precision "
            "needs a GPU.*on the CPU use dtype='bfloat16'"):
        _wrapper(dtype=dtype)


def test_mmcv_ops_run_in_fp32_under_cpu_autocast_and_unchanged_outside():
    from mmcv.ops import RoIAlign, batched_nms
    fp32_mmcv_ops_under_cpu_autocast()
    assert fp32_mmcv_ops_under_cpu_autocast() == 0  # marked once
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(1, 8, 16, 16, generator=g, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 12.0], [0, 4.0, 2.0, 15.0, 7.0]])
    align = RoIAlign((4, 4), spatial_scale=1.0, sampling_ratio=2)
    ref = align(feats, rois)  # fp32 outside autocast: the kernel as is
    ref.sum().backward()
    ref_grad, feats.grad = feats.grad.clone(), None
    half = feats.detach().to(torch.bfloat16).requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = align(half, rois.to(torch.bfloat16))
        assert out.dtype == torch.bfloat16  # as a bf16 kernel's output
        out.float().sum().backward()
    assert half.grad.dtype == torch.bfloat16
    assert torch.allclose(out.float(), ref, atol=5e-2, rtol=2e-2)
    assert torch.allclose(half.grad.float(), ref_grad, atol=5e-2)
    boxes = torch.rand(20, 4, generator=g) * 20
    boxes[:, 2:] += boxes[:, :2]
    scores = torch.rand(20, generator=g)
    idxs = torch.zeros(20, dtype=torch.long)
    cfg = dict(iou_threshold=0.5)
    _, keep = batched_nms(boxes, scores, idxs, cfg)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        _, keep16 = batched_nms(
            boxes.to(torch.bfloat16), scores.to(torch.bfloat16), idxs, cfg)
    assert keep16.numel() > 0 and not keep16.is_floating_point()


def test_detector_trains_a_step_under_cpu_amp():
    """Mask R-CNN (RPN's NMS, RoIAlign, the mask head) through the wrapper:
    mmcv's ops need fp32 inputs, mmdet writes their outputs into bf16
    buffers; both hold, and every loss is finite."""
    from mmscnet.analysis import benchmark as bm
    _, det, _ = bm.build_config_pair(TOY_CONFIG)
    data = bm.packed_batch('mmdet', det, 2, (64, 64), True)
    det.train()
    wrapper = CPUAmpOptimWrapper(
        optimizer=torch.optim.SGD(det.parameters(), lr=0.01, momentum=0.9))
    before = det.backbone.layer4[0].scconv.k2[1].weight.detach().clone()
    with wrapper.optim_context(det):
        losses = det(**data, mode='loss')
    assert {'loss_rpn_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    loss, log_vars = det.parse_losses(losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in log_vars.values())
    wrapper.update_params(loss)
    after = det.backbone.layer4[0].scconv.k2[1].weight
    assert after.dtype == torch.float32 and not torch.equal(after, before)


def test_train_amp_on_the_cpu_trains_bf16_saves_fp32_and_resumes(tmp_path):
    """tools/train.py --amp, then --resume, on the toy classifier (SCNet-50,
    mmpretrain). Two 32x32 images at batch 2: each iteration sees the same
    batch, so the loss must fall. Small, because bf16 is emulated (slow) on
    CPUs without AVX512-BF16."""
    from mmscnet.testing.toy_data import generate_toy_classification
    root = str(tmp_path / 'toy')
    generate_toy_classification(
        root, num_train=2, num_val=1, image_size=(32, 32))
    work = tmp_path / 'work'
    opts = {
        'train_cfg.max_epochs': 2,
        'train_cfg.val_interval': 100,
        'train_dataloader.batch_size': 2,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1,
        'val_dataloader': None,
        'val_cfg': None,
        'val_evaluator': None
    }
    for loader in ('train_dataloader', ):
        opts.update({
            f'{loader}.num_workers': 0,
            f'{loader}.persistent_workers': False,
            f'{loader}.dataset.data_root': root,
            f'{loader}.dataset.data_prefix': 'train',
            f'{loader}.dataset.pipeline.1.scale': 32,
        })
    argv = ['tools/train.py', CLS_TOY, '--amp', '--work-dir', str(work)]
    out = run_tool(argv + cfg_options_argv(opts))
    assert out.returncode == 0, out.stderr[-3000:]
    opts['train_cfg.max_epochs'] = 4
    out = run_tool(argv + ['--resume'] + cfg_options_argv(opts))
    assert out.returncode == 0, out.stderr[-3000:]

    logs = sorted(work.glob('*/*.log'))
    assert len(logs) == 2
    rewrite = ('config rewrite: OptimWrapper -> mmscnet.CPUAmpOptimWrapper: '
               'asked for by --amp on a machine without a GPU')
    for log in logs:
        text = log.read_text()
        assert rewrite in text
        assert ('bf16 is emulated' in text) == (not cpu_has_native_bf16())
    assert 'resumed epoch: 2, iter: 2' in logs[1].read_text()
    # The second run went on from epoch 2: iterations 3 and 4 only.
    scalars = [
        json.loads(line)
        for log in sorted(work.glob('*/vis_data/scalars.json'))
        for line in log.read_text().splitlines()
    ]
    assert [s['iter'] for s in scalars] == [1, 2, 3, 4]
    losses = [s['loss'] for s in scalars]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses
    ckpt = load_from_local(str(work / 'epoch_4.pth'))
    assert ckpt['meta']['epoch'] == 4 and ckpt['meta']['iter'] == 4
    floats = [v for v in ckpt['state_dict'].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for v in floats)
    momenta = [
        s['momentum_buffer'] for s in ckpt['optimizer']['state'].values()
    ]
    assert momenta and all(m.dtype == torch.float32 for m in momenta)
    assert 'loss_scaler' not in ckpt['optimizer']


# tools/train.py --amp: the log line of each rewrite, written out here.
AMP_REWRITE = {
    'cpu':
    'config rewrite: {wrapper} -> mmscnet.CPUAmpOptimWrapper: asked for by '
    '--amp on a machine without a GPU: bf16 autocast (mmengine\'s '
    'AmpOptimWrapper needs a GPU)',
    'cuda':
    'config rewrite: {wrapper} -> AmpOptimWrapper: asked for by --amp '
    '(dynamic loss scale)'
}


@pytest.mark.parametrize('device,wrapper,expect', [
    ('cuda', 'OptimWrapper', 'AmpOptimWrapper'),
    ('cuda', 'AmpOptimWrapper', 'AmpOptimWrapper'),
    ('cuda', 'ApexOptimWrapper', "into AmpOptimWrapper, but the config's "
     "optim_wrapper.type is 'ApexOptimWrapper'"),
    ('cpu', 'OptimWrapper', 'mmscnet.CPUAmpOptimWrapper'),
    ('cpu', 'AmpOptimWrapper', 'mmscnet.CPUAmpOptimWrapper'),
    ('cpu', 'mmscnet.CPUAmpOptimWrapper', 'mmscnet.CPUAmpOptimWrapper'),
    ('cpu', 'fp16', r"asks for dtype='float16', but this machine has no "
     'GPU: fp16 mixed precision needs one'),
    ('cpu', 'ApexOptimWrapper', 'into mmscnet.CPUAmpOptimWrapper on a '
     "machine without a GPU, but the config's optim_wrapper.type is "
     "'ApexOptimWrapper'"),
])
def test_amp_keeps_an_amp_wrapper_and_refuses_others(monkeypatch, device,
                                                     wrapper, expect):
    # What apply_train_args(amp=True) does for tools/train.py --amp, with and
    # without a GPU (mmengine's AmpOptimWrapper asserts one).
    import mmengine.device

    from mmscnet.apis.tool_setup import load_config, use_amp
    from mmscnet.utils.config import pop_rewrites
    monkeypatch.setattr(mmengine.device, 'get_device', lambda: device)
    opts = {'optim_wrapper.type': wrapper}
    if wrapper == 'fp16':
        opts = {
            'optim_wrapper.type': 'AmpOptimWrapper',
            'optim_wrapper.dtype': 'float16'
        }
    elif wrapper == 'AmpOptimWrapper':
        opts['optim_wrapper.loss_scale'] = 'dynamic'
    cfg = load_config(TOY_CONFIG, opts)
    if ' ' in expect:
        with pytest.raises(ValueError, match=expect):
            use_amp(cfg)
        return
    use_amp(cfg)
    assert cfg.optim_wrapper.type == expect
    lines = [line for line in pop_rewrites(cfg) if 'OptimWrapper' in line]
    # A rewrite only where one happened, naming the old type, the new and
    # why, in the words the tools' README documents.
    assert lines == ([] if expect == wrapper else
                     [AMP_REWRITE[device].format(wrapper=wrapper)])
    if device == 'cpu':  # bf16 autocast needs no loss scale
        assert cfg.optim_wrapper.get('dtype') == 'bfloat16' or \
            expect == wrapper
        assert 'loss_scale' not in cfg.optim_wrapper
