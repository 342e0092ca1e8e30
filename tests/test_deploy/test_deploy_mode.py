"""Deploy mode (BN folded into convs, channels_last, bf16), ONNX export and the
benchmark tool."""
import copy
import pickle
import test as test_tool  # noqa: E402

import numpy as np
import pytest
import torch
from conftest import (REPO, TOY_CONFIG, cfg_options_argv, data_options,
                      rel_diff, run_tool)
from reference_scnet import calibrate_

from mmscnet.deploy import optimize, unfused_batchnorms
from mmscnet.models import SCNet, SCNetV1d

CLS_CONFIG = str(REPO / 'configs/classification/scnet50_8xb32_in1k.py')


def randomize_bn(model, seed=0):
    """BN statistics and affine terms far from their init, so folding them
    matters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model


@pytest.mark.parametrize(
    'cls,depth', [(SCNet, 50), (SCNet, 101), (SCNetV1d, 50)],
    ids=['scnet50', 'scnet101', 'scnet50-v1d'])
def test_fused_fp32_equals_unfused(cls, depth):
    # BN statistics measured from data (far from 0 and 1, so folding them
    # matters), activations O(1) as in a trained network: see calibrate_.
    model = calibrate_(cls(depth=depth), key=f'{cls.__name__}-{depth}')
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        ref = model(x)
    fused = optimize(copy.deepcopy(model))
    assert unfused_batchnorms(fused) == [
    ]  # stem (v1d deep stem too), K1..K4, conv1_a/b, conv3, shortcut
    if depth == 50 and cls is SCNet:
        assert fused.conv1.weight.is_contiguous(
            memory_format=torch.channels_last)
    with torch.no_grad():
        out = fused(x)
    worst = max(rel_diff(a, b) for a, b in zip(out, ref))
    print(
        f'[parity] {cls.__name__}-{depth} BN folded into the convs: worst rel '
        f'diff {worst:.2e} ({torch.get_num_threads()} threads)')
    assert worst <= 1e-5
    with pytest.raises(
            RuntimeError,
            match='optimized for deployment .* cannot be trained'):
        fused.train()
    fused.eval()  # still allowed
    with pytest.raises(
            ValueError, match=r"precision must be one of \('fp32', 'bf16'\)"):
        optimize(cls(depth=depth), 'fp16')


@pytest.fixture
def fresh_dynamo():
    """Compile as a fresh process does: dynamo remembers the input shapes of
    code it compiled (SCNet.forward), and a later compile of another model
    starts from shape-generic graphs (slower to compile: 155 s instead of 54
    s for the tools run below after the test before it)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_deploy_equals_deploy_across_shapes(monkeypatch,
                                                     fresh_dynamo):
    """optimize(compile=True): inductor with frozen weights computes what eager
    deploy mode computes, also after a new input shape recompiles it -- one
    small enough that CalibrationPool shrinks its window (stage 2 is 2x3 < r),
    Python-side shape logic the compiled graph must guard on."""
    import torch._inductor.freezing as freezing
    frozen = []
    monkeypatch.setattr(
        freezing,
        'freeze',
        lambda *a, _f=freezing.freeze, **k: frozen.append(1) or _f(*a, **k))
    # Two stages keep the two compiles short (the CI machine has 2 cores);
    # tools/test.py --deploy --compile below compiles a whole SCNet-50.
    model = randomize_bn(
        SCNet(
            depth=50,
            num_stages=2,
            strides=(1, 2),
            dilations=(1, 1),
            out_indices=(0, 1))).eval()
    eager = optimize(copy.deepcopy(model))
    compiled = optimize(copy.deepcopy(model), compile=True)
    assert compiled._mmscnet_deployed == 'fp32+compile'
    with torch.no_grad():
        for i, shape in enumerate(((2, 3, 96, 64), (1, 3, 16, 24))):
            x = torch.randn(*shape)
            got, ref = compiled(x), eager(x)
            # Each shape compiled with weight freezing on (the whole point).
            assert len(frozen) == i + 1
            assert [o.shape for o in got] == [o.shape for o in ref]
            for a, b in zip(got, ref):
                assert a.is_contiguous() and rel_diff(a, b) < 1e-5
    with pytest.raises(RuntimeError, match='cannot be trained'):
        compiled.train()
    with pytest.raises(ValueError, match='compile must be True or False'):
        optimize(SCNet(depth=50), compile='yes')


def test_channels_last_scnet_computes_the_same():
    model = randomize_bn(SCNet(depth=50)).eval()
    cl = copy.deepcopy(model)
    cl.channels_last = True
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        for a, b in zip(cl(x), model(x)):
            assert a.is_contiguous()  # NCHW again for the necks and heads
            assert rel_diff(a, b) < 1e-5


def test_channels_last_scnet_in_a_detector_predicts_the_same_and_trains():
    from mmscnet.analysis import benchmark as bm
    _, det, _ = bm.build_config_pair(TOY_CONFIG,
                                     {'model.test_cfg.rcnn.score_thr': 0.0})
    randomize_bn(det.backbone)
    det.eval()
    det_cl = copy.deepcopy(det)
    det_cl.backbone.channels_last = True
    data = bm.packed_batch('mmdet', det, 2, (96, 128), False)
    with torch.no_grad():
        ref = det(**data, mode='predict')
        out = det_cl(**data, mode='predict')
    for a, b in zip(out, ref):  # RoIAlign and the heads see the same features
        k = min(5, len(b.pred_instances))
        assert k > 0
        assert torch.allclose(
            a.pred_instances.scores[:k],
            b.pred_instances.scores[:k],
            atol=1e-4)
    bm.whole_model_cases(
        'mmdet', det_cl, 2, (64, 96), 'fp32', train=True)['train']()


def test_bf16_deploy_classifier_keeps_the_class():
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(CLS_CONFIG)
    torch.manual_seed(0)
    model = randomize_bn(MODELS.build(cfg.model)).eval()
    torch.nn.init.normal_(model.head.fc.weight, std=0.05)
    x = torch.randn(64, 3, 112, 112)
    with torch.no_grad():
        ref_feats = model.backbone(x)
        ref = model(x, mode='tensor')
    deployed = optimize(copy.deepcopy(model), 'bf16')
    with torch.no_grad():
        feats = deployed.backbone(x)
        out = deployed(x, mode='tensor')
    assert all(f.dtype == torch.float32 for f in feats)  # the head gets fp32
    for a, b in zip(feats, ref_feats):
        assert rel_diff(a, b) < 3e-2
    assert rel_diff(out, ref) < 3e-2
    same = (out.argmax(1) == ref.argmax(1)).float().mean().item()
    assert same >= 0.95, same


def test_tools_test_deploy_matches_plain(toy_detector, tmp_path, fresh_dynamo):
    root, ckpt = toy_detector  # 2 epochs on 8 images (conftest)
    opts = cfg_options_argv(
        dict(
            data_options(TOY_CONFIG, root),
            **{'model.test_cfg.rcnn.score_thr': 0.0}))
    runs = {}
    for mode in (None, 'fp32', 'bf16', 'compile'):
        out = tmp_path / f'{mode}.pkl'
        argv = [
            TOY_CONFIG, ckpt, '--work-dir',
            str(tmp_path / str(mode)), '--out',
            str(out)
        ]
        argv += {
            None: [],
            'compile': ['--deploy', '--compile']
        }.get(mode, ['--deploy', mode])
        metrics = test_tool.main(argv + opts)
        with open(out, 'rb') as f:
            runs[mode] = (metrics, pickle.load(f))
    plain_metrics, plain = runs[None]
    for mode, tol in (('fp32', 1e-3), ('bf16', 5e-2), ('compile', 1e-3)):
        metrics, preds = runs[mode]
        assert abs(metrics['coco/bbox_mAP'] -
                   plain_metrics['coco/bbox_mAP']) <= 0.01
        for p, q in zip(preds, plain):
            s, t = p['pred_instances']['scores'], q['pred_instances']['scores']
            # The best detections of each image agree (order and scores).
            k = min(5, len(s), len(t))
            assert k > 0
            assert torch.allclose(s[:k], t[:k], atol=tol), (mode, s[:k], t[:k])
    # The fp32 deploy run really folded the BNs (its log says so).
    log = next((tmp_path / 'fp32').glob('*/*.log')).read_text()
    assert ('deploy mode (fp32): BatchNorm folded into the convs, '
            'channels_last') in log
    log = next((tmp_path / 'compile').glob('*/*.log')).read_text()
    assert 'channels_last; backbone compiled (inductor, frozen weights)' in log
    with pytest.raises(
            ValueError,
            match='--compile compiles the deployed backbone: give '
            '--deploy too'):
        test_tool.main([TOY_CONFIG, ckpt, '--compile'] + opts)


def test_onnx_and_openvino_backbone_match_pytorch(tmp_path):
    """One dynamic ONNX export of the backbone, checked in ONNX Runtime and,
    converted to IR, in OpenVINO's CPU plugin at two input sizes."""
    import pytorch2onnx
    model = randomize_bn(SCNet(depth=50)).eval()
    torch.save(model.state_dict(), tmp_path / 'scnet50.pth')
    res = pytorch2onnx.main([
        '--type', 'mmscnet.SCNet', '--depth', '50', '--checkpoint',
        str(tmp_path / 'scnet50.pth'), '--out',
        str(tmp_path / 'scnet50.onnx'), '--shape', '128', '96', '--repeat',
        '1', '--openvino'
    ])
    assert len(res) == 2  # two input sizes on one dynamic export
    for r in res.values():
        assert r['onnxruntime_max_rel_diff'] < 1e-4
        assert r['openvino_max_rel_diff'] < 1e-4
    # fp32 weights in the IR (not OpenVINO's default fp16 compression): the
    # .bin holds 4 bytes per parameter.
    params = sum(p.numel() for p in SCNet(depth=50).parameters())
    assert (tmp_path / 'scnet50.bin').stat().st_size >= 4 * params * 0.99
    # Sizes far from the export's: the calibration windows are not frozen at
    # the export size (there stage 4 was 4x3, here 7x5, and 2x2 and 1x2,
    # both < r).
    from mmscnet.deploy.runtime import open_session
    from mmscnet.deploy.runtime.parity import max_rel_diff
    runs = (open_session(str(tmp_path / 'scnet50.onnx'), 'onnxruntime'),
            open_session(str(tmp_path / 'scnet50.xml'), 'openvino'))
    for shape in ((1, 3, 224, 160), (2, 3, 64, 64), (1, 3, 32, 48)):
        x = torch.randn(shape)
        with torch.no_grad():
            ref = [r.numpy() for r in model(x)]
        for run in runs:
            assert max_rel_diff(ref, run({'input': x.numpy()})) < 1e-4, shape
    # Never overwrites without --overwrite: the .onnx, nor the IR beside it.
    for argv in (['--out', str(tmp_path / 'scnet50.onnx')],
                 ['--out', str(tmp_path / 'new.onnx'), '--openvino']):
        (tmp_path / 'new.xml').write_text('mine')
        with pytest.raises(SystemExit):
            pytorch2onnx.main(argv)
    assert (tmp_path / 'new.xml').read_text() == 'mine'
    assert not (tmp_path / 'new.onnx').exists()
    # Whole models have one command, which writes the runtime spec.
    res = run_tool([
        'tools/deployment/pytorch2onnx.py', '--config', CLS_CONFIG, '--out',
        str(tmp_path / 'cls.onnx')
    ])
    assert res.returncode == 2 and 'whole models export with tools/deploy' \
        'ment/export.py' in res.stderr, res.stderr
    assert not (tmp_path / 'cls.onnx').exists()


def test_session_opener_errors(tmp_path):
    from mmscnet.deploy.graph.openvino import convert_to_openvino
    from mmscnet.deploy.runtime import open_session
    from mmscnet.deploy.runtime.parity import max_rel_diff
    from mmscnet.deploy.runtime.session import openvino_has_native_bf16
    with pytest.raises(
            ValueError,
            match=r"precision for openvino must be one of \('fp32', 'bf16'\)"):
        open_session(str(tmp_path / 'x.xml'), 'openvino', 'fp16')
    with pytest.raises(
            ValueError,
            match=r"precision for onnxruntime must be one of "
            r"\('fp32',\)"):
        open_session(str(tmp_path / 'x.onnx'), 'onnxruntime', 'bf16')
    with pytest.raises(FileNotFoundError, match='exported model not found'):
        open_session(str(tmp_path / 'missing.xml'), 'openvino')
    if not openvino_has_native_bf16():
        with pytest.raises(ValueError, match='OpenVINO bf16 needs a CPU'):
            open_session(str(tmp_path / 'x.xml'), 'openvino', 'bf16')
    with pytest.raises(
            ValueError, match='the runtime gave 1 outputs, the '
            'library 2'):
        max_rel_diff([np.zeros(2), np.zeros(2)], [np.zeros(2)])
    with pytest.raises(ValueError, match='output shapes differ'):
        max_rel_diff([np.zeros(2)], [np.zeros(3)])
    with pytest.raises(ValueError, match='ends in .xml'):
        convert_to_openvino(str(tmp_path / 'x.onnx'), str(tmp_path / 'x.ir'))


def test_benchmark_smoke(tmp_path, capsys):
    import benchmark
    out = benchmark.main([
        '--batch-size', '2', '--shape', '64', '64', '--repeat', '1',
        '--warmup', '0', '--precisions', 'fp32', 'bf16', '--channels-last',
        '--stack-conv1', '--json',
        str(tmp_path / 'b.json')
    ])
    # The machine is named: its model and which of the flags that decide
    # the kernels it has ('-' for one it lacks).
    from mmscnet.utils.misc import SPEED_FLAGS, cpu_info
    model, flags = cpu_info()
    assert out['cpu'] == model + '; ' + ' '.join(f if f in flags else '-' + f
                                                 for f in SPEED_FLAGS)
    assert f'CPU: {out["cpu"]}\n' in capsys.readouterr().out
    names = set(out['stats'])
    for case in ('train fp32 SCNet-50', 'train fp32 ResNet-50',
                 'infer bf16 SCNet-50', 'deploy fp32 SCNet-50',
                 'deploy bf16 SCNet-50', 'train fp32 SCNet-50 channels_last',
                 'infer fp32 ResNet-50 channels_last',
                 'train bf16 SCNet-50 stack_conv1',
                 'onnxruntime fp32 SCNet-50', 'openvino fp32 SCNet-50'):
        assert case in names
    assert 'train fp32 SCNet-50 / train fp32 ResNet-50' in out['ratios']
    assert ('train fp32 SCNet-50 stack_conv1 / train fp32 SCNet-50'
            in out['ratios'])
    assert 'openvino fp32 SCNet-50 / infer fp32 SCNet-50' in out['ratios']
    assert ('train fp32 SCNet-50 NHWC input / train fp32 ResNet-50 '
            'channels_last') in out['ratios']
    mem = out['memory']
    assert mem['SCNet-50 with_cp'] < mem['SCNet-50'] and mem['ResNet-50'] > 0
    assert (tmp_path / 'b.json').stat().st_size > 0
    # --compile (its row times optimize(compile=True), tested above) is left
    # out of this run: a cold compile of SCNet-50 costs 1-2 minutes on 2 cores.
    with pytest.raises(SystemExit):  # --compile is a backbone row only
        benchmark.main(['--compile', '--config', TOY_CONFIG])
    # Whole-model mode on a detector config.
    out = benchmark.main([
        '--config', TOY_CONFIG, '--shape', '64', '64', '--batch-size', '2',
        '--repeat', '1', '--warmup', '0', '--precisions', 'fp32'
    ])
    assert set(out['stats']) == {
        'inference fp32 SCNet', 'train fp32 SCNet', 'inference fp32 ResNet',
        'train fp32 ResNet'
    }
    assert np.isfinite(list(out['ratios'].values())).all()


def test_benchmark_detector_row(capsys, monkeypatch):
    """--export: the whole detector exported as tools/deployment/export.py
    exports it, SCNet and its ResNet twin, each runtime against PyTorch's
    predict and against the other backbone's graph, in one run. Every
    median, ratio and speed-up it prints comes from the times it measured
    (recorded here as the timer returns them)."""
    import re
    import statistics

    import benchmark

    from mmscnet.analysis import benchmark as bm
    measured = {}
    timer = bm.timed_rounds

    def recorded(*args, **kwargs):
        measured.update(timer(*args, **kwargs))
        return measured

    monkeypatch.setattr(bm, 'timed_rounds', recorded)
    out = benchmark.main([
        '--config', TOY_CONFIG, '--shape', '128', '160', '--repeat', '3',
        '--warmup', '0', '--precisions', 'fp32', '--no-train', '--export'
    ])
    for rt in ('onnxruntime fp32', 'openvino fp32'):
        for label in ('SCNet', 'ResNet'):
            assert f'{rt} {label}' in out['stats']
        assert f'{rt} SCNet / inference fp32 SCNet' in out['ratios']
        assert f'{rt} SCNet / {rt} ResNet' in out['ratios']
    printed = capsys.readouterr().out
    assert 'openvino fp32 SCNet / openvino fp32 ResNet: ' in printed
    median = {k: statistics.median(v) for k, v in measured.items()}
    assert set(median) == set(out['stats']) and all(
        len(v) == 3 for v in measured.values())
    for name, m in median.items():
        row = re.search(rf'^{re.escape(name)} +([\d.]+) ', printed, re.M)
        assert row and row[1] == f'{m * 1e3:.1f}', (name, m, printed)
    lines = re.findall(
        r'^  (.+?) / (.+?): ([\d.]+)x(?:  \(speed-up '
        r'([\d.]+)x\))?$', printed, re.M)
    assert len(lines) == len(out['ratios']) == 5, printed
    for a, b, ratio, speedup in lines:
        r = median[a] / median[b]
        assert out['ratios'][f'{a} / {b}'] == r
        assert ratio == f'{r:.2f}', (a, b, ratio, r)
        assert speedup == (f'{1 / r:.2f}' if r < 1 else ''), (a, b, speedup)
    with pytest.raises(SystemExit):  # a whole exported model needs a config
        benchmark.main(['--export'])
