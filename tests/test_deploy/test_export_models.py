"""Whole detectors and segmentors exported by tools/deployment/export.py and
run by tools/infer.py --backend onnxruntime|openvino, against PyTorch.

Each model is exported once per session (fixtures), at a size that no check
uses; the checks run at two other image sizes. A detection check counts
only where PyTorch makes at least 5 detections of score >= 0.05 per image.
Bounds: every such detection matched by label with box IoU >= 0.99, score
within 1e-4 and mask IoU >= 0.99; segmentation logits within 1e-4 relative
and the label maps agreeing on >= 99.9% of pixels.

Not in the compatibility job (torch's exporter of old releases differs).
"""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, TOY_CONFIG, run_tool

from mmscnet.deploy.runtime.parity import box_iou, mask_iou

pytestmark = pytest.mark.downstream

BACKENDS = ('onnxruntime', 'openvino')
EXPORT_SHAPE = ('192', '256')  # no check below runs at this size
MIN_SCORE, MIN_DETECTIONS = 0.05, 5


def export(config,
           checkpoint,
           out,
           fresh=False,
           shape=EXPORT_SHAPE,
           check_images=None):
    args = ['tools/deployment/export.py', config
            ] + ([checkpoint] if checkpoint else []) + [
                '--out', str(out), '--openvino', '--shape', *shape
            ] + (['--check-images', check_images] if check_images else [])
    res = run_tool(args, fresh=fresh)
    assert res.returncode == 0, res.stderr[-3000:]
    # The tool's own check against predict: two batches of images, in each
    # of the two runtimes.
    assert res.stdout.count(' matched exactly') + res.stdout.count(
        ' labels ') == 4, res.stdout
    return str(out)


def two_sizes(src_dir, out_dir, size=(120, 176)):
    """The images of ``src_dir`` as they are and resized to ``size`` (h, w):
    two input sizes after the test pipeline's resize."""
    os.makedirs(out_dir)
    for name in sorted(os.listdir(src_dir))[:2]:
        img = cv2.imread(osp.join(src_dir, name))
        stem = osp.splitext(name)[0]
        cv2.imwrite(osp.join(out_dir, f'{stem}_a.png'), img)
        cv2.imwrite(
            osp.join(out_dir, f'{stem}_b.png'),
            cv2.resize(img, size[::-1], interpolation=cv2.INTER_AREA))
    return out_dir


def infer(images, config, weights, out_dir, backend):
    res = run_tool([
        'tools/infer.py', images, config, weights, '--out-dir',
        str(out_dir), '--backend', backend, '--score-thr', '0.05'
    ])
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out_dir / 'predictions.json').read_text())


def assert_detections_match(ref, got, masks_of=None):
    """Every PyTorch detection with score >= MIN_SCORE has a counterpart in
    ``got``: same label, IoU >= 0.99, score within 1e-4, mask IoU >= 0.99.
    ``ref`` and ``got``: dicts of labels, scores, bboxes[, masks]."""
    keep = [i for i, s in enumerate(ref['scores']) if s >= MIN_SCORE]
    assert len(keep) >= MIN_DETECTIONS, (
        f'only {len(keep)} PyTorch detections of score >= {MIN_SCORE}: too '
        'few for the check to count')
    labels = np.asarray(got['labels'])
    for i in keep:
        iou = box_iou(np.asarray(ref['bboxes'][i], np.float64), got['bboxes'])
        iou[labels != ref['labels'][i]] = 0
        j = int(iou.argmax()) if len(iou) else -1
        assert j >= 0 and iou[j] >= 0.99, (i, ref['bboxes'][i],
                                           ref['scores'][i])
        assert abs(got['scores'][j] - ref['scores'][i]) <= 1e-4
        if masks_of is not None:
            assert mask_iou(*masks_of(i, j)) >= 0.99, i
    return len(keep)


def predict_against_graph(model, path, batches):
    """``model`` (an mmdet detector, eval mode) exported through its export
    forward (the adapter's choice) to ``path`` at 2x192x256, then run on
    each batch of (h, w) image sizes (mmdet's demo inputs) in both
    runtimes, through the runtime's post-processing, and matched one to one
    with the model's own predict (:mod:`mmscnet.deploy.runtime.parity`).
    Returns the reports by (backend, batch index) and PyTorch's detection
    counts per image."""
    from mmdet.testing import demo_mm_inputs

    from mmscnet.adapters import get_adapter
    from mmscnet.deploy.graph.onnx import export_graph
    from mmscnet.deploy.runtime import detections, open_session
    from mmscnet.deploy.runtime.parity import detection_parity
    module = get_adapter('mmdet').export_module(model)
    with_mask = 'masks' in module.output_names
    export_graph(module, module.example(2, 192, 256), path, module.input_names,
                 module.output_names, module.dynamic_shapes())
    spec = module.spec()
    runs = {b: open_session(path, b) for b in BACKENDS}
    reports, counts = {}, []
    for k, sizes in enumerate(batches):
        packed = demo_mm_inputs(
            len(sizes), [(3, h, w) for h, w in sizes],
            num_classes=3,
            with_mask=with_mask)
        data = model.data_preprocessor(packed, False)
        with torch.no_grad():
            ref = [
                dict(
                    labels=p.labels.numpy(),
                    scores=p.scores.numpy(),
                    bboxes=p.bboxes.numpy(),
                    **(dict(masks=p.masks.numpy()) if with_mask else {}))
                for p in (r.pred_instances for r in model.predict(
                    data['inputs'], data['data_samples']))
            ]
        counts += [len(r['scores']) for r in ref]
        metas = [(s.ori_shape, tuple(s.scale_factor))
                 for s in data['data_samples']]
        feeds = dict(
            images=data['inputs'].numpy(),
            img_shape=np.array([s.img_shape for s in data['data_samples']],
                               np.float32))
        for backend, run in runs.items():
            reports[(backend, k)] = detection_parity(
                ref, detections(run(feeds), metas, spec), spec['max_per_img'])
    return reports, counts


def assert_all_exact(reports):
    """Toy models have no near-ties: every detection matched exactly."""
    for key, r in reports.items():
        assert not r['problems'] and r['exact'] == r['count'], (key, r)


def rle_masks(doc_ref, doc_got):
    import pycocotools.mask as mask_util
    return lambda i, j: (mask_util.decode(doc_ref['masks'][i]).astype(bool),
                         mask_util.decode(doc_got['masks'][j]).astype(bool))


@pytest.fixture(scope='module')
def det_images(toy_detector, tmp_path_factory):
    root, _ = toy_detector
    return two_sizes(
        osp.join(root, 'val'),
        str(tmp_path_factory.mktemp('det_images') / 'images'))


@pytest.fixture(scope='module')
def faster_rcnn(toy_detector, tmp_path_factory):
    """(config, checkpoint): the toy Mask R-CNN's weights without its mask
    branch, as a Faster R-CNN of the same config."""
    work = tmp_path_factory.mktemp('faster')
    config = work / 'faster-rcnn_scnet50_fpn_toy-coco.py'
    config.write_text(
        f'_base_ = {TOY_CONFIG!r}\n'
        "model = dict(type='FasterRCNN', roi_head=dict(mask_roi_extractor="
        'None, mask_head=None))\n')
    ckpt = torch.load(toy_detector[1], map_location='cpu', weights_only=False)
    ckpt['state_dict'] = {
        k: v
        for k, v in ckpt['state_dict'].items() if '.mask_' not in k
    }
    path = work / 'faster.pth'
    torch.save(
        dict(state_dict=ckpt['state_dict'], meta=ckpt['meta']), str(path))
    return str(config), str(path)


@pytest.mark.parametrize('kind', ['mask-rcnn', 'faster-rcnn'])
def test_exported_detector_predicts_as_pytorch(kind, toy_detector, faster_rcnn,
                                               det_images, tmp_path):
    config, ckpt = ((TOY_CONFIG,
                     toy_detector[1]) if kind == 'mask-rcnn' else faster_rcnn)
    # Once in a fresh interpreter: the tool runs as a program.
    graph = export(
        config, ckpt, tmp_path / f'{kind}.onnx', fresh=kind == 'mask-rcnn')
    spec = json.loads((tmp_path / f'{kind}.json').read_text())
    assert spec['classes'] == ['person', 'ball', 'box']
    ref = infer(det_images, config, ckpt, tmp_path / 'pytorch', 'pytorch')
    for backend in BACKENDS:
        weights = graph if backend == 'onnxruntime' else graph.replace(
            '.onnx', '.xml')
        got = infer(det_images, config, weights, tmp_path / backend, backend)
        assert got['backend'] == backend
        assert [r['input'] for r in got['results']
                ] == [r['input'] for r in ref['results']]
        for r, g in zip(ref['results'], got['results']):
            assert set(g) == set(r), (set(g), set(r))
            assert_detections_match(
                r, g,
                rle_masks(r, g) if kind == 'mask-rcnn' else None)
            painted = cv2.imread(str(tmp_path / backend / g['vis']))
            assert painted.shape == cv2.imread(
                osp.join(det_images, g['input'])).shape


def test_dense_random_detector_batch_of_two_sizes(tmp_path):
    """A random-weight Mask R-CNN whose classifier is scaled to make 100
    detections per image, exported and run on a batch of two images of other
    sizes (padded as mmdet pads them), against mmdet's predict."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.model.test_cfg.rcnn.max_per_img = 100
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.weight.mul_(50)
    reports, counts = predict_against_graph(model, str(
        tmp_path / 'dense.onnx'), [[(160, 224),
                                    (128, 96)], [(224, 160), (192, 192)]])
    assert counts == [100] * 4
    assert_all_exact(reports)


# Single-stage detectors beside the shipped RetinaNet (whose whole route,
# export.py to tools/test.py --backend, test_runtime_eval.py runs): mmdet's
# FCOS and ATSS with SCNet-50, 3 classes, random weights.
SINGLE_STAGE = {
    'fcos': 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'atss': 'mmdet::atss/atss_r50_fpn_1x_coco.py',
}
RETINANET = str(REPO / 'configs/detection/retinanet_scnet50_fpn_1x_coco.py')


def single_stage_detector(kind, tmp_path):
    """The random-weight detector of SINGLE_STAGE[kind], its classifier
    scaled so that its scores spread (about 100 detections per image)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    path = tmp_path / f'{kind}.py'
    path.write_text(
        f'_base_ = {SINGLE_STAGE[kind]!r}\n'
        "model = dict(backbone=dict(_delete_=True, type='mmscnet.SCNet', "
        'depth=50, init_cfg=None), data_preprocessor=dict(mean=[123.675, '
        '116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True), '
        'bbox_head=dict(num_classes=3))\n')
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(path)).model)
    model.init_weights()
    with torch.no_grad():
        cls = (
            model.bbox_head.conv_cls
            if kind == 'fcos' else model.bbox_head.atss_cls)
        cls.weight.mul_(50)
        cls.bias.zero_()
    return model.eval()


@pytest.mark.parametrize('kind', sorted(SINGLE_STAGE))
def test_single_stage_detector_batch_of_two_sizes(kind, tmp_path):
    """FCOS and ATSS exported and run on batches of two sizes against
    mmdet's predict: per-level top-k over (prior, class) pairs, point or
    anchor decoding, centerness, per-class NMS and max_per_img, in both
    runtimes."""
    model = single_stage_detector(kind, tmp_path)
    reports, counts = predict_against_graph(model,
                                            str(tmp_path / f'{kind}.onnx'),
                                            [[(160, 224),
                                              (128, 96)], [(224, 160)]])
    assert min(counts) >= MIN_DETECTIONS, counts
    assert_all_exact(reports)


def test_zero_detections_in_both_runtimes(tmp_path):
    """A detector that detects nothing (score_thr 1.0: no softmax score is
    above it) exports, and its check passes (the graph computes what
    predict does) and says that it compared no detection. The graph gives
    no detections in both runtimes, through the RoI and mask stages with no
    RoI, on a batch of two sizes and a batch of one."""
    from mmscnet.deploy import ExportedModel, export
    config = tmp_path / 'none.py'
    config.write_text(
        f'_base_ = {TOY_CONFIG!r}\n'
        'model = dict(test_cfg=dict(rcnn=dict(score_thr=1.0)))\n')
    said = []
    reports = export(
        str(config),
        None,
        tmp_path / 'none.onnx',
        openvino=True,
        shape=(192, 256),
        log=said.append)
    assert reports and all(r['count'] == 0 for r in reports.values())
    assert any('the model made no detection on the check images' in m
               for m in said), said
    rng = np.random.default_rng(0)
    for backend in BACKENDS:
        model = ExportedModel(
            str(tmp_path /
                ('none.onnx' if backend == 'onnxruntime' else 'none.xml')),
            backend)
        for sizes in (((160, 224), (128, 96)), ((224, 160), )):
            images = [
                rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                for h, w in sizes
            ]
            for img, r in zip(images, model(images)):
                assert len(r['scores']) == len(r['labels']) == 0, backend
                assert r['bboxes'].shape == (0, 4)
                assert r['masks'].shape == (0, *img.shape[:2])


SEG_CONFIGS = {
    'deeplabv3':
    str(REPO / 'configs/segmentation/toy/deeplabv3_scnet50-d8_toy-seg.py'),
    # PSPNet's pyramid pooling: adaptive pools, exported in their export form
    'pspnet':
    None,
}


@pytest.fixture(scope='module')
def seg_images(tmp_path_factory):
    from mmscnet.testing.toy_data import generate_toy_segmentation
    root = tmp_path_factory.mktemp('toy_seg_export')
    generate_toy_segmentation(
        str(root), num_train=0, num_val=2, image_size=(96, 96))
    return two_sizes(
        str(root / 'img_dir' / 'val'), str(root / 'images'), size=(96, 160))


def _pspnet_config(tmp_path):
    path = tmp_path / 'pspnet_scnet50-d8_toy-seg.py'
    path.write_text(
        f"_base_ = {SEG_CONFIGS['deeplabv3']!r}\n"
        "model = dict(decode_head=dict(_delete_=True, type='PSPHead', "
        'in_channels=2048, in_index=3, channels=64, pool_scales=(1, 2, 3, 6), '
        'dropout_ratio=0.1, num_classes=4, norm_cfg=dict(type="BN", '
        'requires_grad=True), align_corners=False, loss_decode=dict('
        "type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))\n")
    return str(path)


@pytest.mark.parametrize('kind', sorted(SEG_CONFIGS))
def test_exported_segmentor_predicts_as_pytorch(kind, seg_images, tmp_path):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmseg.apis import inference_model

    from mmscnet.deploy.runtime import ExportedModel
    config = SEG_CONFIGS[kind] or _pspnet_config(tmp_path)
    init_default_scope('mmseg')
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = str(tmp_path / 'seg.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(
                dataset_meta=dict(cfg.test_dataloader.dataset.metainfo))),
        ckpt)
    # Smaller than the detectors' export size: the dilated backbone is
    # costly, and the checks below run at other sizes anyway.
    graph = export(config, ckpt, tmp_path / f'{kind}.onnx', shape=('64', '96'))
    model.cfg = cfg
    model.dataset_meta = dict(cfg.test_dataloader.dataset.metainfo)
    model.eval()
    ref = {}
    for name in sorted(os.listdir(seg_images)):
        path = osp.join(seg_images, name)
        ref[name] = inference_model(model, path).seg_logits.data.numpy()
    shapes = {r.shape[1:] for r in ref.values()}
    assert len(shapes) == 2, shapes
    for backend in BACKENDS:
        runtime = ExportedModel(
            graph if backend == 'onnxruntime' else graph.replace(
                '.onnx', '.xml'), backend)
        for name, logits in ref.items():
            got = runtime([cv2.imread(osp.join(seg_images, name))])[0]
            rel = np.abs(got['logits'] - logits).max() / np.abs(logits).max()
            assert rel <= 1e-4, (backend, name, rel)
            agree = (got['sem_seg'] == logits.argmax(0)).mean()
            assert agree >= 0.999, (backend, name, agree)
    if kind == 'pspnet':
        return
    # The tools, end to end: the label maps tools/infer.py saves.
    pytorch = infer(seg_images, config, ckpt, tmp_path / 'pytorch', 'pytorch')
    got = infer(seg_images, config, graph, tmp_path / 'onnxruntime',
                'onnxruntime')
    for r, g in zip(pytorch['results'], got['results']):
        a = cv2.imread(str(tmp_path / 'pytorch' / r['sem_seg']), -1)
        b = cv2.imread(str(tmp_path / 'onnxruntime' / g['sem_seg']), -1)
        assert a.shape == b.shape and (a == b).mean() >= 0.999


def test_export_removes_a_graph_that_fails_its_check(tmp_path, monkeypatch):
    """A graph that computes something else is not left to be deployed: the
    tool removes every file it wrote and says so. Here the runtime's outputs
    are shifted by 1% of their range, as an exporter or runtime bug would
    shift them; the model is a small segmentor, to export in seconds."""
    import mmscnet.deploy.runtime.model as runtime
    config = tmp_path / 'small-seg.py'
    config.write_text(
        f"_base_ = {SEG_CONFIGS['deeplabv3']!r}\n"
        "model = dict(backbone=dict(_delete_=True, type='ResNetV1c', "
        'depth=18, dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), '
        "contract_dilation=True, norm_cfg=dict(type='BN')), "
        'decode_head=dict(in_channels=512, channels=16), '
        'auxiliary_head=None)\n')
    real = runtime.open_session

    def shifted(path, backend, precision='fp32', threads=None):
        run = real(path, backend, precision, threads)
        return lambda feeds: [o + 0.01 * np.abs(o).max() for o in run(feeds)]

    monkeypatch.setattr(runtime, 'open_session', shifted)
    out = tmp_path / 'seg.onnx'
    res = run_tool([
        'tools/deployment/export.py',
        str(config), '--out',
        str(out), '--openvino', '--shape', '64', '96'
    ])
    assert res.returncode != 0
    written = [str(out)] + [
        str(out.with_suffix(ext)) for ext in ('.json', '.xml', '.bin')
    ]
    for path in written:
        assert f'wrote {path}' in res.stdout or f'and {path}' in res.stdout
    assert ('the exported graph differs from the library\'s predict'
            in res.stderr
            and f'removed {", ".join(written)}' in res.stderr), res.stderr
    assert sorted(os.listdir(tmp_path)) == ['small-seg.py']


def test_export_refuses_what_it_cannot_export_right(tmp_path):
    out = str(tmp_path / 'm.onnx')
    # mmdet compares min_bbox_size in original image pixels.
    min_size = tmp_path / 'retinanet-min-size.py'
    min_size.write_text(f'_base_ = {RETINANET!r}\n'
                        'model = dict(test_cfg=dict(min_bbox_size=2))\n')
    # mmpretrain's multi-label heads score each class by a sigmoid.
    multi_label = tmp_path / 'multi-label.py'
    multi_label.write_text(
        "_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'\n"
        "model = dict(head=dict(_delete_=True, type='MultiLabelLinearClsHead',"
        ' num_classes=3, in_channels=512))\n')
    for config, message in (
        (str(min_size), 'cannot export min_bbox_size=2 (0 or none): the '
         'single-stage export handles RetinaNet (RetinaHead, '
         'DeltaXYWHBBoxCoder), FCOS'),
        ('configs/keypoint/td-hm_scnet50_8xb64-210e_coco-256x192.py',
         "default_scope 'mmpose'; export takes mmdet, mmseg, mmpretrain "
         'configs'),
        (str(multi_label), 'cannot export head MultiLabelLinearClsHead: the '
         "graph computes ClsHead's predict"),
    ):
        res = run_tool(['tools/deployment/export.py', config, '--out', out])
        assert res.returncode != 0 and message in res.stderr, res.stderr[
            -2000:]
        assert not os.path.exists(out)
    res = run_tool(
        ['tools/deployment/export.py', TOY_CONFIG, '--out', out[:-5]])
    assert res.returncode == 2 and '--out must end in .onnx' in res.stderr
    # A test pipeline the runtime does not repeat.
    config = tmp_path / 'flip.py'
    config.write_text(
        f'_base_ = {TOY_CONFIG!r}\n'
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='LoadImageFromFile'), dict(type='RandomFlip', prob=1.0), "
        "dict(type='PackDetInputs')]))\n")
    res = run_tool(['tools/deployment/export.py', str(config), '--out', out])
    assert ('test pipeline transform RandomFlip is not repeated by the '
            "exported model's runtime, which does LoadImageFromFile"
            in res.stderr), res.stderr[-2000:]
    assert not os.path.exists(out)


def test_runtime_errors_name_the_problem(tmp_path):
    from mmscnet.deploy.runtime import ExportedModel, open_session, preprocess
    spec = dict(
        task='detection',
        preprocess=dict(
            scale=[64, 32],
            keep_ratio=True,
            mean=[0, 0, 0],
            std=[1, 1, 1],
            bgr_to_rgb=True,
            pad_size_divisor=32,
            min_size=96))
    with pytest.raises(
            ValueError,
            match=r"an image of 32x64 after resizing "
            r"and padding is below the exported graph's smallest "
            r'input, 96 pixels a side'):
        preprocess([np.zeros((50, 100, 3), np.uint8)], spec)
    with pytest.raises(
            FileNotFoundError,
            match=r'm\.json not found: it is '
            r'written beside .*m\.onnx by tools/deployment/'
            r'export\.py'):
        ExportedModel(str(tmp_path / 'm.onnx'))
    (tmp_path / 'seg.json').write_text(
        json.dumps(dict(task='segmentation', format='mmscnet-deploy/1')))
    with pytest.raises(
            ValueError,
            match=r'seg\.onnx is an exported '
            'segmentation model, not a detection one'):
        ExportedModel(str(tmp_path / 'seg.onnx'), task='detection')
    (tmp_path / 'm.xml').write_text('')
    with pytest.raises(
            ValueError, match='is OpenVINO IR: use --backend '
            'openvino'):
        open_session(str(tmp_path / 'm.xml'), 'onnxruntime')
    with pytest.raises(
            ValueError,
            match=r"backend must be one of "
            r"\('onnxruntime', 'openvino'\), got 'tensorrt'"):
        open_session(str(tmp_path / 'm.xml'), 'tensorrt')
    res = run_tool([
        'tools/infer.py',
        str(tmp_path), TOY_CONFIG, '--out-dir',
        str(tmp_path / 'o'), '--backend', 'openvino'
    ])
    assert res.returncode == 2 and ('--backend openvino needs the exported '
                                    'model (.onnx or .xml) as CHECKPOINT'
                                    in res.stderr)
