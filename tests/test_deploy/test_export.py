"""The model exports right as it is, with no preparation step of mmscnet's:
torch's own exporters (``torch.onnx.export`` with ``dynamo=False``, the
TorchScript exporter that mmdeploy uses; and ``torch.export``) on the
backbone and a whole mmpretrain classifier. Each graph is run at the export
size and at two other sizes, one with stage maps smaller than the
calibration's r (pooled whole), against eager PyTorch. ``dynamo=True`` on
the same two models: tools/deployment/pytorch2onnx.py and export.py hand
them to it as they are (``test_deploy_mode.py``, the backbone at five
sizes; ``test_classifier_deploy.py``); here only on the pooling.

Not in the compatibility job: the exporters of old torch releases differ.
"""
import warnings

import pytest
import torch
import torch.nn as nn

from mmscnet.models import SCNet

EXPORT_HW = (64, 96)
# Stage 4 is 1x1 at 32x32 and 2x3 at 40x72: smaller than r = 4.
OTHER_HW = ((32, 32), (40, 72))


def _backbone():
    torch.manual_seed(0)
    # SCNet-50 at a quarter of the width: every code path of SCNet-50 (the
    # calibration at every stage), in seconds.
    return SCNet(depth=50, base_channels=16).eval()


def _classifier():
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmscnet.deploy.graph.classifier import ClassifierExport
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(
                    type='mmscnet.SCNet', depth=50, base_channels=16),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead', num_classes=10, in_channels=512)))
    model.init_weights()
    return ClassifierExport(model).eval()


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _max_rel_diff(got, expected):
    assert len(got) == len(expected)
    worst = 0.0
    for g, e in zip(got, expected):
        g = torch.as_tensor(g)
        assert g.shape == e.shape, (g.shape, e.shape)
        worst = max(worst, float((g - e).abs().max() / e.abs().max()))
    return worst


def _onnx_export(model, path, dynamo, x, min_side=32):
    """``torch.onnx.export`` as a user calls it, with batch, height and width
    dynamic."""
    names = [f'out{i}' for i in range(len(_outputs(model(x))))]
    dims = {0: ('batch', 1), 2: ('height', min_side), 3: ('width', min_side)}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if dynamo:
            dim = torch.export.Dim
            shapes = {
                i: dim(n, min=lo, max=2048)
                for i, (n, lo) in dims.items()
            }
            torch.onnx.export(
                model, (x, ),
                path,
                input_names=['input'],
                output_names=names,
                dynamic_shapes=(shapes, ),
                dynamo=True,
                external_data=False)
        else:
            axes = {i: n for i, (n, _) in dims.items()}
            torch.onnx.export(
                model, (x, ),
                path,
                input_names=['input'],
                output_names=names,
                dynamic_axes={'input': axes},
                opset_version=17,
                dynamo=False)


@pytest.mark.parametrize('what', ['backbone', 'classifier'])
def test_torchscript_onnx_export_as_is(tmp_path, what):
    import onnxruntime as ort
    model = _backbone() if what == 'backbone' else _classifier()
    path = str(tmp_path / f'{what}.onnx')
    _onnx_export(model, path, False, torch.randn(1, 3, *EXPORT_HW))
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for batch, hw in ((1, EXPORT_HW), (2, OTHER_HW[0]), (1, OTHER_HW[1])):
        x = torch.randn(batch, 3, *hw)
        with torch.no_grad():
            expected = _outputs(model(x))
        got = session.run(None, {'input': x.numpy()})
        assert _max_rel_diff(got, expected) < 1e-4, (what, hw)


def test_torch_export_with_dynamic_sizes():
    """torch.export specialises a size that may be 1, so its range starts
    where every pooled calibration map has at least 2 pixels a side (input
    sides of 256 and more at r = 4, output stride 32), and the padding's max
    is checked at run time rather than proven at export
    (``prefer_deferred_runtime_asserts_over_guards``, torch's own flag).
    Within the range the program computes the model at any size; below it,
    its guard refuses the input instead of computing something else."""
    model = _backbone()
    dim = torch.export.Dim
    program = torch.export.export(
        model, (torch.randn(1, 3, 256, 320), ),
        dynamic_shapes=({
            2: dim('height', min=256, max=2048),
            3: dim('width', min=256, max=2048)
        }, ),
        prefer_deferred_runtime_asserts_over_guards=True)
    exported = program.module()
    for hw in ((256, 320), (288, 416), (333, 257)):
        x = torch.randn(1, 3, *hw)
        with torch.no_grad():
            expected = model(x)
        assert _max_rel_diff(exported(x), expected) < 1e-5, hw
    with pytest.raises(Exception, match='height|256|Guard|guard'):
        exported(torch.randn(1, 3, 128, 320))


class _PoolOnly(nn.Module):
    """The calibration's pooling alone, where a wrong window shows at once.
    """

    def __init__(self, pooling_type):
        super().__init__()
        from mmscnet.models.backbones.scnet import CalibrationPool
        self.pool = CalibrationPool(4, pooling_type)

    def forward(self, x):
        return self.pool(x)


@pytest.mark.parametrize('pooling_type', ['avg', 'max'])
@pytest.mark.parametrize('dynamo', [False, True], ids=['ts', 'dynamo'])
def test_pooling_graph_follows_the_size(tmp_path, pooling_type, dynamo):
    """Exported at 16x20 (every side >= r), run at sides shorter than r: an
    exported window frozen at the export size would pool wrong there."""
    import onnxruntime as ort
    model = _PoolOnly(pooling_type).eval()
    path = str(tmp_path / 'pool.onnx')
    _onnx_export(model, path, dynamo, torch.randn(1, 2, 16, 20), min_side=1)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for hw in ((16, 20), (2, 3), (1, 1), (3, 30), (9, 13)):
        x = torch.randn(1, 2, *hw) - 0.5
        got = session.run(None, {'input': x.numpy()})
        assert _max_rel_diff(got, [model(x)]) < 1e-5, hw
