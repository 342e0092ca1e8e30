"""A whole mmpretrain classifier through tools/deployment/export.py,
tools/infer.py --backend and tools/test.py --backend, against PyTorch.

The model is SCNet-18 of the toy classification config with random weights,
its head made to tell the images apart: at its init (std 0.01) it scores
every image about 1/3 for each class, and scaled alone it gives every image
the same label (the pooled features of a random network share one large
direction), so its weights are made orthogonal to the val images' mean
feature, then scaled. Bounds: the same
top-1 for every image and every score within 1e-5, in ONNX Runtime and
OpenVINO. Not in the compatibility job (torch's exporter of old releases
differs).
"""
import os
import os.path as osp
import pickle
import test as test_tool  # noqa: E402

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, run_tool
from test_export_models import BACKENDS, infer

pytestmark = pytest.mark.downstream

TOY_CLS = str(REPO / 'configs/classification/toy/scnet18_toy-cls.py')
# The toy pipeline resizes the short edge to 64 and crops 64x64: traced at
# another size, checked at 64x64 and (CenterCrop left out) at 107x64.
EXPORT_SHAPE = ('96', '96')


@pytest.fixture(scope='module')
def exported_classifier(tmp_path_factory):
    """(config, checkpoint, val folder, exported .onnx, export's stdout)."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from mmscnet.apis.tool_setup import load_config
    from mmscnet.testing.toy_data import generate_toy_classification
    work = tmp_path_factory.mktemp('classifier')
    root = str(work / 'toy_cls')
    classes = generate_toy_classification(root, num_train=3, num_val=9)
    config = work / 'scnet18_toy-cls_here.py'
    data = f'dict(dataset=dict(data_root={root + "/"!r}))'
    config.write_text(f'_base_ = {TOY_CLS!r}\n'
                      f'val_dataloader = {data}\n'
                      f'test_dataloader = {data}\n')
    cfg = load_config(str(config))
    init_default_scope('mmpretrain')
    cfg.model.backbone.pop('init_cfg', None)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    with torch.no_grad():
        imgs = [
            cv2.imread(osp.join(d, n))[:, :, ::-1].copy()
            for d, _, names in os.walk(f'{root}/val') for n in names
        ]
        x = (torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() -
             torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
             ) / torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
        feats = model.extract_feat(x)[-1]
        m = feats.mean(0)
        w = model.head.fc.weight
        w -= (w @ m)[:, None] * m[None] / (m @ m)
        w *= 3 / (feats - m).std() / w.norm(dim=1, keepdim=True)
        model.head.fc.bias.zero_()
    ckpt = str(work / 'random.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=list(classes)))), ckpt)
    out = work / 'cls.onnx'
    res = run_tool([
        'tools/deployment/export.py',
        str(config), ckpt, '--out',
        str(out), '--openvino', '--shape', *EXPORT_SHAPE
    ])
    assert res.returncode == 0, res.stderr[-3000:]
    return str(config), ckpt, f'{root}/val', str(out), res.stdout


def test_export_checks_the_classifier_at_two_sizes(exported_classifier):
    """export.py's own check: the toy val images (64x64 after the crop),
    then one of them with the crop left out on both sides (another input
    size), each against ImageClassifier.predict in both runtimes."""
    import json
    config, ckpt, val, onnx_path, stdout = exported_classifier
    lines = [ln for ln in stdout.splitlines() if 'top-1 equal in' in ln]
    assert len(lines) == 4, stdout
    assert sum('CenterCrop left out' in ln for ln in lines) == 2, stdout
    with open(onnx_path.replace('.onnx', '.json')) as f:
        spec = json.load(f)
    assert spec['task'] == 'classification'
    assert spec['classes'] == ['person', 'ball', 'box']
    pre = spec['preprocess']
    assert pre['resize_edge'] == dict(scale=64, edge='short', backend='cv2')
    assert pre['center_crop'] == [64, 64] and pre['bgr_to_rgb']


def flat_images(val, out_dir):
    """The toy val images of every class folder in one folder, each also
    resized to 80x100 (the short edge then resized to 64 and cropped: other
    pixels reach the graph)."""
    os.makedirs(out_dir)
    for sub in sorted(os.listdir(val)):
        for name in sorted(os.listdir(osp.join(val, sub))):
            img = cv2.imread(osp.join(val, sub, name))
            cv2.imwrite(osp.join(out_dir, f'{sub}_{name}'), img)
            cv2.imwrite(
                osp.join(out_dir, f'{sub}_b_{name}'),
                cv2.resize(img, (100, 80), interpolation=cv2.INTER_AREA))
    return out_dir


def test_infer_backend_gives_pytorch_classes(exported_classifier, tmp_path):
    config, ckpt, val, onnx_path, _ = exported_classifier
    images = flat_images(val, tmp_path / 'images')
    ref = infer(images, config, ckpt, tmp_path / 'pytorch', 'pytorch')
    labels = {r['pred_label'] for r in ref['results']}
    assert len(ref['results']) == 18 and len(labels) >= 2, ref
    for backend in BACKENDS:
        graph = onnx_path if backend == 'onnxruntime' else onnx_path.replace(
            '.onnx', '.xml')
        got = infer(images, config, graph, tmp_path / backend, backend)
        assert got['backend'] == backend
        for r, g in zip(ref['results'], got['results']):
            assert r['input'] == g['input']
            assert g['pred_label'] == r['pred_label'], (backend, r, g)
            assert g['pred_class'] == r['pred_class']
            assert abs(g['pred_score'] - r['pred_score']) <= 1e-5
            assert [t['label']
                    for t in g['top5']] == [t['label'] for t in r['top5']]
            assert np.allclose([t['score'] for t in g['top5']],
                               [t['score'] for t in r['top5']],
                               atol=1e-5)
        assert len(os.listdir(tmp_path / backend / 'vis')) == 18


def test_backend_gives_pytorch_accuracy(exported_classifier, tmp_path):
    """tools/test.py's top-1 accuracy on the toy val set, of the graph in
    each runtime against the checkpoint's, and each image's scores."""
    config, ckpt, val, onnx_path, _ = exported_classifier

    def run(weights, backend, name):
        out = tmp_path / f'{name}.pkl'
        args = [
            config, weights, '--work-dir',
            str(tmp_path / name), '--out',
            str(out)
        ] + (['--backend', backend] if backend else [])
        metrics = test_tool.main(args)
        with open(out, 'rb') as f:
            return metrics, pickle.load(f)

    ref, ref_dump = run(ckpt, None, 'pytorch')
    assert len(ref_dump) == 9
    for backend in BACKENDS:
        graph = onnx_path if backend == 'onnxruntime' else onnx_path.replace(
            '.onnx', '.xml')
        got, dump = run(graph, backend, backend)
        assert abs(got['accuracy/top1'] - ref['accuracy/top1']) <= 1e-3
        for r, g in zip(ref_dump, dump):
            assert r['img_path'] == g['img_path']
            assert int(g['pred_label']) == int(r['pred_label'])
            assert (g['pred_score'] - r['pred_score']).abs().max() <= 1e-5


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_runtime_resizes_and_crops_as_mmpretrain(backend):
    """The runtime's ResizeEdge (each edge, both backends) and CenterCrop
    (odd margins, which Python rounds to even, and an image smaller than the
    crop) against mmpretrain's and mmcv's transforms, pixel for pixel."""
    from mmcv.transforms import CenterCrop
    from mmpretrain.datasets.transforms import ResizeEdge

    from mmscnet.deploy.runtime.model import center_crop, edge_size, resize
    rng = np.random.default_rng(0)
    for h, w in ((61, 90), (90, 61), (33, 33), (7, 200)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for edge in ('short', 'long', 'width', 'height'):
            ref = ResizeEdge(
                scale=48, edge=edge, backend=backend)(dict(img=img))['img']
            got = resize(img, edge_size(w, h, 48, edge), backend)
            assert np.array_equal(got, ref), (h, w, edge)
        for size in ((32, 32), (51, 20), (300, 5)):
            ref = CenterCrop(crop_size=size)(dict(img=img))['img']
            assert np.array_equal(center_crop(img, size), ref), (h, w, size)
