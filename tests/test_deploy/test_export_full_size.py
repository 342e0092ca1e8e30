"""The shipped Mask R-CNN SCNet-50 at its config's own size (800x1333, 80
classes, 1000 proposals per image), exported by tools/deployment/export.py
and run by tools/infer.py --backend, against PyTorch.

The weights are random, with the classifier scaled so that every image gets
the full 100 detections: dense clusters of boxes whose scores differ by
about 1e-6, where NMS near-ties occur (tools/deployment/README.md, "The
check"). The bounds are the parity rule's (mmscnet/deploy/runtime/parity.py):
one to one, label, IoU >= 0.99, score within 1e-4, mask IoU >= 0.99 for at
least 98.5% of the detections, every other one a near-tie.

Not in the compatibility job (torch's exporter of old releases differs).
"""
import json
import re

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, run_tool
from test_export_models import BACKENDS

from mmscnet.deploy.runtime.parity import DET_BOUNDS, detection_parity

pytestmark = pytest.mark.downstream

CONFIG = str(REPO / 'configs/detection/mask-rcnn_scnet50_fpn_1x_coco.py')


def scene(h, w, seed):
    """A BGR image with structure at every scale: a gradient, rectangles and
    discs from a few pixels to half the image, and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h),
                    ((xx + yy) * 127 // (h + w))],
                   axis=2).astype(np.uint8)
    for _ in range(60):
        size = int(min(h, w) * rng.uniform(0.01, 0.5))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + size, y + size // 2), color, -1)
        else:
            cv2.circle(img, (x, y), size // 2, color, -1)
    noise = rng.integers(-12, 13, img.shape)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def dense_mask_rcnn(tmp_path_factory):
    """(checkpoint, image folder): the shipped config's model with random
    weights, its classifier scaled by 50 and its proposals widened, saved
    as tools/train.py would save weights; two images, one scaled up by the
    test pipeline (300x400) and one scaled down (1500x2000)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    work = tmp_path_factory.mktemp('dense_mask_rcnn')
    init_default_scope('mmdet')
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.init_cfg = None  # no ImageNet weights here
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.weight.mul_(50)
        # Random weights propose boxes of about their anchors' size, and the
        # best scores come from the finest levels: RoIs of FPN levels 0 and 1
        # only. Each anchor's proposals are widened (dw, dh) by its own
        # factor (1, 3.3, 9), so that P2 and P3 alone propose boxes of all
        # four RoI levels (32 to 580 px).
        bias = model.rpn_head.rpn_reg.bias
        for a, grow in enumerate((0.0, 1.2, 2.2)):
            bias[4 * a + 2:4 * a + 4] += grow
    ckpt = str(work / 'dense.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    images = work / 'images'
    images.mkdir()
    cv2.imwrite(str(images / 'a_up.png'), scene(300, 400, 1))
    cv2.imwrite(str(images / 'b_down.png'), scene(1500, 2000, 2))
    return ckpt, str(images)


def infer(images, weights, out_dir, backend):
    res = run_tool([
        'tools/infer.py', images, CONFIG, weights, '--out-dir',
        str(out_dir), '--backend', backend, '--batch-size', '2'
    ])
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out_dir / 'predictions.json').read_text())


def decoded(result):
    import pycocotools.mask as mask_util
    return dict(
        labels=result['labels'],
        scores=result['scores'],
        bboxes=result['bboxes'],
        masks=[mask_util.decode(m).astype(bool) for m in result['masks']])


@pytest.mark.slow
def test_shipped_mask_rcnn_at_its_size(dense_mask_rcnn, tmp_path, monkeypatch):
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    ckpt, images = dense_mask_rcnn
    # The RoI levels PyTorch's predict maps its RoIs to, call by call.
    levels = []
    mapped = SingleRoIExtractor.map_roi_levels

    def recorded(self, rois, num_levels):
        out = mapped(self, rois, num_levels)
        # The box stage's extractor pools 7x7, the mask stage's 14x14.
        stage = self.roi_layers[0].output_size
        levels.append((stage, len(rois), set(out.tolist())))
        return out

    monkeypatch.setattr(SingleRoIExtractor, 'map_roi_levels', recorded)
    out = tmp_path / 'mask-rcnn.onnx'
    res = run_tool([
        'tools/deployment/export.py', CONFIG, ckpt, '--out',
        str(out), '--openvino', '--check-images', images
    ])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # The box stage's RoIs (the proposals) on all four levels, in each of
    # PyTorch's predicts (the batch of both images, the crop).
    box_stage = [s for stage, n, s in levels if stage == (7, 7)]
    assert box_stage and set().union(*box_stage) == {0, 1, 2, 3}, levels
    # The tool's check: the batch of both images and the crop, in each
    # runtime, every image with 100 detections.
    checks = re.findall(
        r'^  (\w+), batch (\d) \((\d) images\): \d images, (\d+) detections: '
        r'(\d+) matched exactly, (\d+) near-ties', res.stdout, re.M)
    assert len(checks) == 4, res.stdout
    for backend, k, n, count, exact, ties in checks:
        count, exact, ties = int(count), int(exact), int(ties)
        assert count == 100 * int(n), (backend, k, count)
        assert exact >= DET_BOUNDS['min_exact'] * count, (backend, k, exact)
    # infer.py: a batch of two images through each runtime's preprocessing,
    # against PyTorch's inferencer on the same batch.
    ref = infer(images, ckpt, tmp_path / 'pytorch', 'pytorch')
    refs = [decoded(r) for r in ref['results']]
    assert [len(r['scores']) for r in refs] == [100, 100]
    for backend in BACKENDS:
        graph = str(out) if backend == 'onnxruntime' else str(out).replace(
            '.onnx', '.xml')
        got = infer(images, graph, tmp_path / backend, backend)
        assert [r['input'] for r in got['results']
                ] == [r['input'] for r in ref['results']]
        report = detection_parity(refs, [decoded(g) for g in got['results']],
                                  100)
        print(f'[full size] {backend}: {report["exact"]} of '
              f'{report["count"]} matched exactly, {report["near_ties"]} '
              f'near-ties, scores within {report["score_diff"]:.2e}')
        assert not report['problems'], report['problems']
        assert report['count'] == 200
