"""What tools/deployment/export.py accepts it computes as mmdet and mmseg
compute it, or it refuses: the class-agnostic variants of the detector's
heads and NMS, NMS per image whatever else is in the batch, binary
segmentation, the decode heads whose predict is not their forward, the
image loader's arguments, and the runtime's own inputs.

Not in the compatibility job (torch's exporter of old releases differs).
"""
import glob
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, TOY_CONFIG, run_tool
from test_export_models import (BACKENDS, SEG_CONFIGS, assert_all_exact,
                                export, infer, predict_against_graph)

pytestmark = pytest.mark.downstream


def build(config, scope, **changes):
    """The model of ``config`` in eval mode, with ``changes`` (dotted keys)
    merged into its config; random weights, seeded."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(scope)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(changes)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def test_class_agnostic_heads_and_nms_computed_as_mmdet(tmp_path):
    """A random-weight Mask R-CNN with a class-agnostic mask head, box
    regression and NMS (in the RPN, whose levels then merge, and in the
    R-CNN), whose classifier is scaled to make up to 100 detections per
    image: exported, then against mmdet's predict on batches of images of
    two other sizes."""
    model = build(
        TOY_CONFIG, 'mmdet', **{
            'model.roi_head.mask_head.class_agnostic': True,
            'model.roi_head.bbox_head.reg_class_agnostic': True,
            'model.test_cfg.rpn.nms.class_agnostic': True,
            'model.test_cfg.rcnn.nms.class_agnostic': True,
            'model.test_cfg.rcnn.max_per_img': 100
        })
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.weight.mul_(50)
    assert model.roi_head.mask_head.conv_logits.out_channels == 1
    reports, counts = predict_against_graph(model,
                                            str(tmp_path / 'agnostic.onnx'),
                                            [[(160, 224),
                                              (128, 96)], [(224, 160)]])
    assert min(counts) >= 20, counts
    assert_all_exact(reports)


def test_grouped_nms_does_not_depend_on_the_other_groups(tmp_path):
    """NMS of one image's boxes (one group) keeps the same boxes alone and
    beside 63 other groups, in PyTorch and in both runtimes: no offsets
    that grow with the batch. The boxes are near-ties: pairs whose IoU is
    within 1e-6 of the threshold, at coordinates up to 1333 px, where an
    offset of 850,000 (8 images of 80 classes) would round them by 0.06 px.
    """
    from mmscnet.deploy.graph.onnx import export_graph
    from mmscnet.deploy.graph.ops import grouped_nms
    from mmscnet.deploy.runtime import open_session

    class NMS(torch.nn.Module):
        input_names, output_names = ['boxes', 'scores'], ['keep']

        def forward(self, boxes, scores):
            return grouped_nms(boxes, scores, 0.5)

    g = torch.Generator().manual_seed(0)
    r = 200
    xy = torch.rand(64, r, 2, generator=g) * 1200
    wh = torch.rand(64, r, 2, generator=g) * 100 + 20
    boxes = torch.cat([xy, xy + wh], -1)
    # Every other box: the one before it shifted so that their IoU is 0.5
    # up to rounding (w * h overlap of a box shifted by a third of its width
    # is 2/3 / (4/3) = 0.5).
    shifted = boxes[:, ::2].clone()
    shifted[..., [0, 2]] += (boxes[:, ::2, 2:3] - boxes[:, ::2, 0:1]) / 3
    boxes[:, 1::2] = shifted
    scores = torch.rand(64, r, generator=g)
    module = NMS()
    path = str(tmp_path / 'nms.onnx')
    dim = torch.export.Dim
    shapes = ({
        0: dim('g', min=1, max=4096),
        1: dim('r', min=2, max=10**5)
    }, {
        0: dim('g', min=1, max=4096),
        1: dim('r', min=2, max=10**5)
    })
    export_graph(module, (boxes[:3], scores[:3]), path, module.input_names,
                 module.output_names, shapes)

    def kept_of_group_0(run, b, s):
        keep = run(b, s)
        return sorted(keep[keep[:, 0] == 0][:, 1].tolist())

    runs = dict(
        pytorch=lambda b, s: module(b, s).numpy(),
        **{
            name: (lambda sess: lambda b, s: sess(
                dict(boxes=b.numpy(), scores=s.numpy()))[0])(open_session(
                    path, name))
            for name in BACKENDS
        })
    for name, run in runs.items():
        alone = kept_of_group_0(run, boxes[:1], scores[:1])
        together = kept_of_group_0(run, boxes, scores)
        assert alone == together and 0 < len(alone) < r, name


def _detector_config(tmp_path, name, body):
    path = tmp_path / f'{name}.py'
    path.write_text(f'_base_ = {TOY_CONFIG!r}\n{body}\n')
    return str(path)


REFUSED = {
    'roialign-max':
    ("model = dict(roi_head=dict(bbox_roi_extractor=dict(roi_layer=dict("
     "type='RoIAlign', output_size=7, sampling_ratio=0, pool_mode='max'))))",
     "RoIAlign pool_mode='max' (pool_mode='avg')"),
    'nms-offset':
    ("model = dict(test_cfg=dict(rcnn=dict(nms=dict(type='nms', "
     'iou_threshold=0.5, offset=1))))',
     'rcnn NMS argument offset=1 (the graph takes type, iou_threshold, '
     'class_agnostic, split_thr)'),
    'soft-nms':
    ("model = dict(test_cfg=dict(rpn=dict(nms=dict(type='soft_nms', "
     'iou_threshold=0.7))))', "rpn NMS type 'soft_nms' (nms)"),
    'soft-masks':
    ('model = dict(test_cfg=dict(rcnn=dict(mask_thr_binary=-1)))',
     'mask_thr_binary=-1 (at least 0: binary masks)'),
    'grayscale-loader':
    ("test_dataloader = dict(dataset=dict(pipeline=[dict(type="
     "'LoadImageFromFile', color_type='grayscale'), dict(type='Resize', "
     "scale=(160, 160), keep_ratio=True), dict(type='PackDetInputs')]))",
     "test pipeline LoadImageFromFile(color_type='grayscale') is not "
     "repeated by the exported model's runtime, which reads images as "
     "color_type='color', imdecode_backend='cv2'"),
    'pillow-loader':
    ("test_dataloader = dict(dataset=dict(pipeline=[dict(type="
     "'LoadImageFromFile', imdecode_backend='pillow'), dict(type='Resize', "
     "scale=(160, 160), keep_ratio=True), dict(type='PackDetInputs')]))",
     "LoadImageFromFile(imdecode_backend='pillow') is not repeated"),
}


@pytest.mark.parametrize('case', sorted(REFUSED))
def test_export_refuses_what_it_would_compute_otherwise(case, tmp_path):
    body, message = REFUSED[case]
    config = _detector_config(tmp_path, case, body)
    out = tmp_path / 'm.onnx'
    res = run_tool(['tools/deployment/export.py', config, '--out', str(out)])
    assert res.returncode != 0 and message in res.stderr, res.stderr[-2000:]
    assert not out.exists()


# A small segmentor (ResNet-18, 16 channels) to export in seconds, with the
# decode head given.
SMALL_SEG = (
    "model = dict(backbone=dict(_delete_=True, type='ResNetV1c', depth=18, "
    'dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True, '
    "norm_cfg=dict(type='BN')), decode_head=dict(_delete_=True, {head}, "
    "norm_cfg=dict(type='BN'), align_corners=False, loss_decode=dict("
    "type='CrossEntropyLoss', use_sigmoid={sigmoid}, loss_weight=1.0)), "
    'auxiliary_head=None)\n')
SEG_HEADS = {
    # forward returns (logits, SE-loss logits); predict takes the first
    'enc-se-loss': ("type='EncHead', in_channels=[128, 256, 512], "
                    'in_index=(1, 2, 3), channels=16, num_codes=8, '
                    'use_se_loss=True, add_lateral=False, num_classes=4, '
                    "loss_se_decode=dict(type='CrossEntropyLoss', "
                    'use_sigmoid=True, loss_weight=0.2)'),
    # forward returns three logits; predict takes the first
    'da': ("type='DAHead', in_channels=512, in_index=3, channels=16, "
           'pam_channels=8, num_classes=4'),
    # F.adaptive_avg_pool2d called directly, not through a module
    'apc': ("type='APCHead', in_channels=512, in_index=3, channels=16, "
            'pool_scales=(1, 2, 3, 6), num_classes=4'),
    # one output channel: sigmoid > threshold
    'binary': ("type='ASPPHead', in_channels=512, in_index=3, channels=16, "
               'dilations=(1, 12, 24, 36), num_classes=2, out_channels=1, '
               'threshold=0.3'),
}


@pytest.fixture(scope='module')
def seg_images(tmp_path_factory):
    """Two toy images of two sizes."""
    from mmscnet.testing.toy_data import generate_toy_segmentation
    root = tmp_path_factory.mktemp('seg_cases')
    generate_toy_segmentation(
        str(root), num_train=0, num_val=1, image_size=(96, 128))
    src = osp.join(root, 'img_dir', 'val')
    img = cv2.imread(osp.join(src, sorted(os.listdir(src))[0]))
    out = root / 'images'
    out.mkdir()
    cv2.imwrite(str(out / 'a.png'), img)
    cv2.imwrite(str(out / 'b.png'), cv2.resize(img, (80, 112)))
    return str(out)


def small_segmentor(tmp_path, head):
    """(config, checkpoint, model) of the small segmentor with ``head``."""
    binary = 'out_channels=1' in SEG_HEADS[head]
    config = tmp_path / f'seg-{head}.py'
    config.write_text(f"_base_ = {SEG_CONFIGS['deeplabv3']!r}\n" +
                      SMALL_SEG.format(head=SEG_HEADS[head], sigmoid=binary))
    model = build(str(config), 'mmseg')
    ckpt = str(tmp_path / f'seg-{head}.pth')
    # the class names a trained checkpoint carries (the toy set's)
    meta = dict(
        dataset_meta=dict(
            classes=('background', 'person'),
            palette=[[0, 0, 0], [220, 20, 60]]))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), ckpt)
    return str(config), ckpt, model


def threshold_at_median(config, model, image):
    """Sets the binary head's threshold, in the config file and the model,
    to the median probability on ``image``, so that both classes appear."""
    from mmengine.config import Config
    from mmseg.apis import inference_model
    model.cfg = Config.fromfile(config)
    probs = inference_model(model, image).seg_logits.data.numpy()
    threshold = round(float(np.median(probs)), 6)
    text = open(config).read().replace('threshold=0.3',
                                       f'threshold={threshold}')
    assert text != open(config).read()
    with open(config, 'w') as f:
        f.write(text)
    model.decode_head.threshold = threshold
    return threshold


@pytest.mark.parametrize('head', sorted(SEG_HEADS))
def test_segmentor_heads_computed_as_mmseg(head, seg_images, tmp_path):
    from mmengine.config import Config
    from mmseg.apis import inference_model

    from mmscnet.deploy.runtime import ExportedModel
    config, ckpt, model = small_segmentor(tmp_path, head)
    binary = head == 'binary'
    if binary:  # a random head's probabilities cluster far from 0.3
        threshold_at_median(
            config, model,
            osp.join(seg_images,
                     sorted(os.listdir(seg_images))[0]))
    graph = export(config, ckpt, tmp_path / 'seg.onnx', shape=('64', '96'))
    model.cfg = Config.fromfile(config)
    for backend in BACKENDS:
        runtime = ExportedModel(
            graph if backend == 'onnxruntime' else graph.replace(
                '.onnx', '.xml'), backend)
        for name in sorted(os.listdir(seg_images)):
            path = osp.join(seg_images, name)
            ref = inference_model(model, path)
            got = runtime([path])[0]
            logits = ref.seg_logits.data.numpy()  # sigmoid for binary
            assert got['logits'].shape == logits.shape
            rel = np.abs(got['logits'] - logits).max() / np.abs(logits).max()
            assert rel <= 1e-4, (backend, name, rel)
            labels = ref.pred_sem_seg.data[0].numpy()
            agree = (got['sem_seg'] == labels).mean()
            assert agree >= 0.999, (backend, name, agree)
            if binary:  # both classes present: the threshold decides
                assert set(np.unique(labels)) == {0, 1}, np.unique(labels)
    if binary:
        # The PyTorch inferencer's label map of floats is named by class.
        res = infer(seg_images, config, ckpt, tmp_path / 'pytorch', 'pytorch')
        present = res['results'][0]['classes_present']
        assert set(present) == {'background', 'person'}, present
        got = infer(seg_images, config, graph, tmp_path / 'ort', 'onnxruntime')
        assert got['results'][0]['classes_present'].keys() == present.keys()


def test_segmentor_head_whose_predict_differs_is_refused():
    from mmscnet.deploy.graph.segmentor import SegmentorExport
    model = build(_maskformer_config(), 'mmseg')
    with pytest.raises(
            ValueError,
            match='cannot export decode head MaskFormerHead: its predict is '
            'not its forward followed by the resize and decision of '
            'BaseDecodeHead'):
        SegmentorExport(model)


def _maskformer_config():
    import tempfile
    path = osp.join(tempfile.mkdtemp(), 'maskformer.py')
    with open(path, 'w') as f:
        f.write("_base_ = 'mmseg::maskformer/"
                "maskformer_r50-d32_8xb2-160k_ade20k-512x512.py'\n"
                'model = dict(backbone=dict(init_cfg=None))\n')
    return path


def test_runtime_takes_what_cv2_reads_and_names_what_it_cannot(
        seg_images, tmp_path):
    """Grayscale and colour-and-alpha arrays are converted as cv2 converts
    such files when it reads them in colour; an RGB array is read as RGB
    when told; a float array, an odd shape, a corrupt or missing file are
    refused with what is wrong."""
    from mmscnet.deploy.runtime import ExportedModel
    config, ckpt, _ = small_segmentor(tmp_path, 'apc')
    graph = export(config, ckpt, tmp_path / 'seg.onnx', shape=('64', '96'))
    model = ExportedModel(graph)
    bgr = cv2.imread(osp.join(seg_images, 'a.png'))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / 'gray.png'), gray)
    bgra = np.concatenate([bgr, np.full_like(bgr[:, :, :1], 7)], axis=2)
    cv2.imwrite(str(tmp_path / 'bgra.png'), bgra)

    def logits(x, **kw):
        return model([x], **kw)[0]['logits']

    # As cv2 reads the same pixels from a file.
    for array, path in ((gray, 'gray.png'), (gray[:, :, None], 'gray.png'),
                        (bgra, 'bgra.png')):
        assert np.array_equal(logits(array), logits(str(tmp_path / path)))
    assert np.array_equal(logits(bgr), logits(bgra))
    assert np.array_equal(
        logits(bgr), logits(bgr[:, :, ::-1].copy(), channel_order='rgb'))
    assert not np.array_equal(logits(bgr), logits(bgr[:, :, ::-1].copy()))
    with pytest.raises(
            ValueError,
            match='image 0 is float32: the runtime '
            'takes uint8 arrays'):
        model([bgr.astype(np.float32)])
    with pytest.raises(ValueError, match=r'image 0 has shape \(96, 128, 2\)'):
        model([bgr[:, :, :2]])
    with pytest.raises(
            ValueError,
            match="channel_order must be one of "
            r"\('bgr', 'rgb'\), got 'BGR'"):
        model([bgr], channel_order='BGR')
    corrupt = tmp_path / 'corrupt.jpg'
    jpeg = cv2.imencode('.jpg', bgr)[1].tobytes()
    corrupt.write_bytes(jpeg[:len(jpeg) // 2])  # a download cut short
    with pytest.raises(
            ValueError, match=f'image {corrupt} is a truncated JPEG'):
        model([str(corrupt)])
    not_image = tmp_path / 'notes.png'
    not_image.write_text('not an image')
    with pytest.raises(ValueError, match='cannot be decoded by cv2'):
        model([str(not_image)])
    with pytest.raises(FileNotFoundError, match='missing.png does not exist'):
        model([str(tmp_path / 'missing.png')])
    # tools/infer.py --backend names the corrupt file too.
    folder = tmp_path / 'inputs'
    folder.mkdir()
    (folder / 'corrupt.jpg').write_bytes(corrupt.read_bytes())
    res = run_tool([
        'tools/infer.py',
        str(folder), config, graph, '--out-dir',
        str(tmp_path / 'o'), '--backend', 'onnxruntime'
    ])
    assert res.returncode != 0 and 'corrupt.jpg' in res.stderr and (
        'truncated JPEG' in res.stderr), res.stderr[-2000:]


def test_export_check_fails_a_rewrite_that_agrees_with_itself(
        toy_detector, tmp_path, monkeypatch):
    """A rewrite that is wrong in PyTorch and in the graph alike (boxes
    shifted by 4 px in the export forward) agrees with itself, so only a
    check against mmdet's predict finds it: export.py fails with the
    numbers and removes what it wrote. (The same export unshifted passes on
    these images: test_runtime_eval.py's dense_toy_detector.)"""
    from mmscnet.deploy.graph.detector import DetectorExport
    root, ckpt = toy_detector
    forward = DetectorExport.forward

    def shifted(self, images, img_shape):
        boxes, *rest = forward(self, images, img_shape)
        return (boxes + 4, *rest)

    args = [
        'tools/deployment/export.py', TOY_CONFIG, ckpt, '--out',
        str(tmp_path / 'det.onnx'), '--check-images',
        osp.join(root, 'val')
    ]
    monkeypatch.setattr(DetectorExport, 'forward', shifted)
    res = run_tool(args)
    assert res.returncode != 0
    assert f'images of {osp.join(root, "val")}' in res.stdout
    assert ("the exported graph differs from the library's predict"
            in res.stderr and 'has no match and is no near-tie'
            in res.stderr), res.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == []


def test_export_refuses_below_the_graphs_smallest_side(toy_detector, tmp_path):
    """Below the graph's smallest side (96) export.py refuses, naming it.
    (At 96x128, where SCNet's stage-4 calibration pools are 1x1 when traced,
    it exports: test_runtime_eval.py's dense_toy_detector, whose graph runs
    an input of its smallest side as predict computes it.)"""
    _, ckpt = toy_detector
    out = tmp_path / 'det.onnx'
    res = run_tool([
        'tools/deployment/export.py', TOY_CONFIG, ckpt, '--out',
        str(out), '--shape', '64', '128'
    ])
    assert res.returncode != 0 and (
        'shape must be at least 96 a side, got 64x128' in res.stderr), \
        res.stderr[-2000:]
    assert not out.exists()


SHIPPED = sorted(
    glob.glob(osp.join(REPO, 'configs', 'detection', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'segmentation', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', 'classification', '*.py')))


def test_every_shipped_detector_segmentor_and_classifier_is_accepted():
    """Each detection, segmentation and classification config under
    configs/ (the toy ones aside) builds a model that its adapter's export
    takes, with a test pipeline that the runtime repeats, as the README
    says. What each export computes is checked above, in
    test_export_models.py and in test_classifier_deploy.py by family."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from mmscnet.adapters import get_adapter
    from mmscnet.adapters.base import export_preprocess
    assert len(SHIPPED) == 34, SHIPPED
    refused = {}
    for path in SHIPPED:
        cfg = Config.fromfile(path)
        cfg.model.backbone.init_cfg = None  # no download
        adapter = get_adapter(cfg.default_scope)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            model = MODELS.build(cfg.model)
        try:
            module = adapter.export_module(model)
            export_preprocess(cfg, module.min_size)
        except ValueError as e:
            refused[osp.basename(path)] = str(e)
    assert not refused, refused
