"""tools/test.py CONFIG GRAPH --backend onnxruntime|openvino: the config's
test loop and evaluator on an exported graph, against the same command on
the PyTorch checkpoint.

The toy detector is exported with the score threshold at 0 and 100
detections per image (a config of its own, which export and test share),
so that every detection of the graph counts in the comparison.
Not in the compatibility job (torch's exporter of old releases differs).
"""
import json
import os
import os.path as osp
import pickle
import test as test_tool  # noqa: E402
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, TOY_CONFIG, cfg_options_argv, data_options
from test_export_models import BACKENDS, SEG_CONFIGS, export

pytestmark = pytest.mark.downstream

DET_METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP',
               'coco/segm_mAP_50')


def data_only(opts):
    """The toy set's paths and classes; the test pipeline stays the
    config's, as the graph was exported with it."""
    return {k: v for k, v in opts.items() if '.pipeline.' not in k}


def graph_of(onnx_path, backend):
    return onnx_path if backend == 'onnxruntime' else onnx_path.replace(
        '.onnx', '.xml')


@pytest.fixture(scope='module')
def dense_toy_detector(toy_detector, tmp_path_factory):
    """(config, checkpoint, toy root, exported .onnx)."""
    root, ckpt = toy_detector
    work = tmp_path_factory.mktemp('dense_toy_detector')
    config = work / 'mask-rcnn_scnet50_fpn_toy-coco_all-scores.py'
    config.write_text(f'_base_ = {TOY_CONFIG!r}\n'
                      'model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0, '
                      'max_per_img=100)))\n')
    # Checked on the toy val images the model was trained for. Traced at the
    # graph's smallest side, where SCNet's stage-4 calibration pools are 1x1.
    graph = export(
        str(config),
        ckpt,
        work / 'det.onnx',
        shape=('96', '128'),
        check_images=f'{root}/val')
    return str(config), ckpt, root, graph


def test_graph_traced_at_its_smallest_size_runs_it_as_predict(
        dense_toy_detector, tmp_path):
    """The graph exported at 96x128 takes an input of its smallest side
    (a 256x150 image: 96x160 after the resize and padding) and computes
    there what mmdet's predict does, all 100 detections matched exactly,
    in both runtimes."""
    from mmscnet.apis.tool_setup import load_config
    from mmscnet.deploy.export_model import build
    from mmscnet.deploy.runtime import ExportedModel
    from mmscnet.deploy.runtime.model import preprocess
    from mmscnet.deploy.runtime.parity import detection_parity
    config, ckpt, root, graph = dense_toy_detector
    first = sorted(os.listdir(osp.join(root, 'val')))[0]
    wide = str(tmp_path / 'wide.png')
    cv2.imwrite(
        wide, cv2.resize(cv2.imread(osp.join(root, 'val', first)), (256, 150)))
    cfg = load_config(config)
    model, adapter, _, _ = build(cfg, ckpt, log=lambda msg: None)
    ref = adapter.predict_files(model, cfg, [wide])
    assert len(ref[0]['scores']) == 100
    for backend in BACKENDS:
        runtime = ExportedModel(graph_of(graph, backend), backend)
        assert preprocess([cv2.imread(wide)],
                          runtime.spec)[0].shape[2:] == (96, 160)
        report = detection_parity(ref, runtime([wide]), 100)
        assert not report['problems'] and report['exact'] == 100, (backend,
                                                                   report)


def pytorch_and_backends(config, ckpt, graph, opts, work):
    """tools/test.py's metrics for ``config`` on the checkpoint, then on the
    exported ``graph`` in each runtime (by backend), with the --cfg-options
    ``opts``; each run's work dir under ``work``."""
    ref = test_tool.main([config, ckpt, '--work-dir',
                          str(work / 'pytorch')] + opts)
    runs = {
        backend:
        test_tool.main([
            config,
            graph_of(graph, backend), '--backend', backend, '--work-dir',
            str(work / backend)
        ] + opts)
        for backend in BACKENDS
    }
    return ref, runs


def pseudo_ground_truth(root, dumped, path, per_image=5):
    """A COCO annotation file of the toy val images whose objects are the
    ``per_image`` highest-scoring detections of PyTorch's ``dumped`` test
    results (boxes, labels and RLE masks)."""
    with open(f'{root}/annotations/instances_val.json') as f:
        doc = json.load(f)
    ids = {im['file_name']: im['id'] for im in doc['images']}
    cat_ids = [c['id'] for c in doc['categories']]
    anns = []
    for res in dumped:
        inst = res['pred_instances']
        image_id = ids[osp.basename(res['img_path'])]
        for i in inst['scores'].argsort(descending=True)[:per_image].tolist():
            x1, y1, x2, y2 = inst['bboxes'][i].tolist()
            ann = dict(
                id=len(anns) + 1,
                image_id=image_id,
                category_id=cat_ids[int(inst['labels'][i])],
                bbox=[x1, y1, x2 - x1, y2 - y1],
                area=(x2 - x1) * (y2 - y1),
                iscrowd=0)
            if 'masks' in inst:
                rle = dict(inst['masks'][i])
                rle['counts'] = rle['counts'].decode()
                ann['segmentation'] = rle
            anns.append(ann)
    doc['annotations'] = anns
    with open(path, 'w') as f:
        json.dump(doc, f)
    return len(anns)


def test_backend_gives_pytorch_detection_metrics(dense_toy_detector, tmp_path):
    """COCO box and mask AP of the graph in each runtime against PyTorch's,
    on the toy val images. A detector trained for seconds has an AP of 0 on
    the toy set's own objects, so they are scored against PyTorch's five
    best detections per image instead: AP well above 0 that each missing,
    extra or reordered detection of the graph would change."""
    config, ckpt, root, graph = dense_toy_detector
    opts = data_only(data_options(TOY_CONFIG, root))
    dumped = tmp_path / 'pytorch.pkl'
    test_tool.main([
        config, ckpt, '--work-dir',
        str(tmp_path / 'pytorch0'), '--out',
        str(dumped)
    ] + cfg_options_argv(opts))
    with open(dumped, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 4
    ann = str(tmp_path / 'pseudo_val.json')
    assert pseudo_ground_truth(root, results, ann) == 20
    opts['test_dataloader.dataset.ann_file'] = ann
    opts['test_evaluator.ann_file'] = ann
    opts = cfg_options_argv(opts)
    ref = test_tool.main(
        [config, ckpt, '--work-dir',
         str(tmp_path / 'pytorch')] + opts)
    assert ref['coco/bbox_mAP'] > 0.3 and ref['coco/segm_mAP'] > 0.3, ref
    for backend in BACKENDS:
        out = tmp_path / f'{backend}.pkl'
        got = test_tool.main([
            config,
            graph_of(graph, backend), '--backend', backend, '--work-dir',
            str(tmp_path / backend), '--out',
            str(out)
        ] + opts)
        for key in DET_METRICS:
            assert abs(got[key] - ref[key]) <= 1e-3, (backend, key, got, ref)
        # --out dumps the runtime's predictions as mmdet dumps its own.
        with open(out, 'rb') as f:
            dumped = pickle.load(f)
        assert len(dumped) == 4
        assert {'bboxes', 'scores', 'labels',
                'masks'} <= set(dumped[0]['pred_instances'])


def toy_of(shipped, root, work, masks):
    """The shipped detection config ``shipped`` pointed at the toy set at
    ``root`` (its 3 classes, images at 160 pixels and proposal counts as the
    toy Mask R-CNN config has them), with random weights whose classifiers
    are scaled so that scores spread: (config path, checkpoint path)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(shipped)
    toy = Config.fromfile(TOY_CONFIG)
    cfg.model.backbone.init_cfg = None
    if 'roi_head' in cfg.model:
        bbox = cfg.model.roi_head.bbox_head  # a list in a cascade
        heads = list(bbox) if isinstance(bbox, list) else [bbox]
        if masks:
            heads.append(cfg.model.roi_head.mask_head)
    else:
        heads = [cfg.model.bbox_head]
    for head in heads:
        head.num_classes = 3
    if 'roi_head' in cfg.model:  # the toy config's proposal counts
        cfg.model.test_cfg.rpn.update(toy.model.test_cfg.rpn)
        rcnn = cfg.model.test_cfg.rcnn
        rcnn.max_per_img = toy.model.test_cfg.rcnn.max_per_img
    pipeline = [
        t for t in toy.test_pipeline if masks or t['type'] != 'LoadAnnotations'
    ]
    if not masks:
        pipeline.insert(2, dict(type='LoadAnnotations', with_bbox=True))
    loader = toy.test_dataloader
    loader.dataset.pipeline = pipeline
    loader.dataset.data_root = root + '/'
    loader.num_workers, loader.persistent_workers = 0, False
    cfg.test_dataloader = cfg.val_dataloader = loader
    cfg.test_evaluator = cfg.val_evaluator = dict(
        cfg.test_evaluator, ann_file=f'{root}/annotations/instances_val.json')
    config = str(work / f'{osp.basename(shipped)[:-3]}_toy.py')
    cfg.dump(config)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        if 'roi_head' in cfg.model:
            for head in model.roi_head.bbox_head:
                head.fc_cls.weight.mul_(50)
        else:
            model.bbox_head.retina_cls.weight.mul_(50)
            model.bbox_head.retina_cls.bias.zero_()
    ckpt = str(work / 'random.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(loader.dataset.metainfo))), ckpt)
    return config, ckpt


NEW_ROUTES = {
    'retinanet': ('retinanet_scnet50_fpn_1x_coco.py', False),
    'cascade-mask-rcnn': ('cascade-mask-rcnn_scnet50_fpn_1x_coco.py', True),
}


def noisy_copy(root, dst):
    """The toy COCO set's val split at ``root`` copied to ``dst`` with
    seeded pixel noise. The generated images' flat backgrounds give RPN
    anchors exactly equal scores, and which of a tie reaches the cascade's
    refinement is the sort's choice; noise breaks such ties, as a photo's
    own noise does."""
    import shutil

    shutil.copytree(
        osp.join(root, 'annotations'), osp.join(dst, 'annotations'))
    os.makedirs(osp.join(dst, 'val'))
    rng = np.random.default_rng(0)
    for name in sorted(os.listdir(osp.join(root, 'val'))):
        img = cv2.imread(osp.join(root, 'val', name)).astype(np.int16)
        img += rng.integers(-20, 21, img.shape, dtype=np.int16)
        cv2.imwrite(
            osp.join(dst, 'val', name),
            img.clip(0, 255).astype(np.uint8))
    return dst


@pytest.mark.parametrize('kind', sorted(NEW_ROUTES))
def test_backend_metrics_of_retinanet_and_cascade_mask_rcnn(
        kind, toy_detector, tmp_path):
    """The shipped RetinaNet and Cascade Mask R-CNN configs on the toy val
    images with noise (random weights, scores spread): exported with
    export.py's check on those images, then COCO AP of the graph in each
    runtime against PyTorch's, scored against PyTorch's five best
    detections per image."""
    root = noisy_copy(toy_detector[0], str(tmp_path / 'noisy'))
    name, masks = NEW_ROUTES[kind]
    config, ckpt = toy_of(
        str(REPO / 'configs' / 'detection' / name), root, tmp_path, masks)
    graph = export(
        config, ckpt, tmp_path / f'{kind}.onnx', check_images=f'{root}/val')
    dumped = tmp_path / 'pytorch.pkl'
    test_tool.main([
        config, ckpt, '--work-dir',
        str(tmp_path / 'pytorch0'), '--out',
        str(dumped)
    ])
    with open(dumped, 'rb') as f:
        results = pickle.load(f)
    ann = str(tmp_path / 'pseudo_val.json')
    assert pseudo_ground_truth(root, results, ann) == 20
    opts = cfg_options_argv({
        'test_dataloader.dataset.ann_file': ann,
        'test_evaluator.ann_file': ann
    })
    ref, runs = pytorch_and_backends(config, ckpt, graph, opts, tmp_path)
    metrics = [k for k in DET_METRICS if masks or 'segm' not in k]
    assert all(ref[k] > 0.3 for k in metrics if k.endswith('mAP')), ref
    for backend, got in runs.items():
        for key in metrics:
            assert abs(got[key] - ref[key]) <= 1e-3, (backend, key, got, ref)


def test_backend_refuses_a_config_other_than_the_exported_one(
        dense_toy_detector, tmp_path):
    config, _, root, graph = dense_toy_detector
    opts = dict(
        data_only(data_options(TOY_CONFIG, root)), **{
            'model.test_cfg.rcnn.score_thr': 0.3,
            'test_dataloader.dataset.pipeline.1.scale': (128, 128)
        })
    with pytest.raises(ValueError) as e:
        test_tool.main([
            config, graph, '--backend', 'onnxruntime', '--work-dir',
            str(tmp_path)
        ] + cfg_options_argv(opts))
    msg = str(e.value)
    assert ('differs from what' in msg and
            'model.test_cfg.rcnn.score_thr: exported 0.0, config 0.3' in msg
            and 'preprocess.scale: exported [160, 160], config '
            '[128, 128]' in msg), msg


def test_backend_refuses_what_changes_the_pytorch_model(
        dense_toy_detector, tmp_path):
    config, _, root, graph = dense_toy_detector
    for flag in ('--tta', '--deploy'):
        with pytest.raises(SystemExit):
            test_tool.main([config, graph, '--backend', 'openvino', flag])
    with pytest.raises(
            ValueError, match='is OpenVINO IR: use --backend '
            'openvino'):
        test_tool.main([
            config,
            graph_of(graph, 'openvino'), '--backend', 'onnxruntime',
            '--work-dir',
            str(tmp_path)
        ] + cfg_options_argv(data_only(data_options(TOY_CONFIG, root))))


def test_backend_gives_pytorch_segmentation_metrics(tmp_path):
    """A random-weight DeepLabV3 SCNet-50 on the toy segmentation set: mIoU
    and accuracy of the graph in each runtime against PyTorch's."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from mmscnet.testing.toy_data import generate_toy_segmentation
    root = tmp_path / 'toy_seg'
    generate_toy_segmentation(
        str(root), num_train=0, num_val=3, image_size=(96, 128))
    config = SEG_CONFIGS['deeplabv3']
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    ckpt = str(tmp_path / 'seg.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    graph = export(config, ckpt, tmp_path / 'seg.onnx', shape=('64', '96'))
    opts = cfg_options_argv({
        'test_dataloader.dataset.data_root': str(root) + '/',
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False
    })
    ref, runs = pytorch_and_backends(config, ckpt, graph, opts, tmp_path)
    assert 0 < ref['mIoU'] < 100, ref
    for backend, got in runs.items():
        for key in ('aAcc', 'mIoU', 'mAcc'):
            # mmseg's metrics are percentages: 0.001 on the 0-1 scale.
            assert abs(got[key] - ref[key]) <= 0.1, (backend, key, got, ref)


# A process in which torch and the OpenMMLab packages cannot be imported, as
# in a deploy image that has numpy, cv2 and a runtime alone: a finder ahead
# of every other refuses them, as a missing package is refused.
NO_TORCH = r'''
import importlib.abc, json, sys
BLOCKED = ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet', 'mmseg',
           'mmpretrain', 'mmpose')


class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)


sys.meta_path.insert(0, Missing())
try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit('torch imported')
import numpy as np
import mmscnet
from mmscnet.deploy import ExportedModel
graph, backend, out, *images = sys.argv[1:]
results = ExportedModel(graph, backend)(images)
np.savez(out, **{f'{i}_{k}': v for i, r in enumerate(results)
                 for k, v in r.items()})
print(json.dumps(dict(
    version=mmscnet.__version__,
    loaded=sorted({m.split('.')[0] for m in sys.modules} & set(BLOCKED)))))
'''


@pytest.mark.slow
def test_runtime_runs_where_torch_cannot_be_imported(dense_toy_detector,
                                                     tmp_path):
    """`import mmscnet` and `from mmscnet.deploy import ExportedModel` in a
    process where torch, mmengine and mmcv cannot be imported; the graph
    runs there in both runtimes and gives what it gives beside torch."""
    import subprocess
    import sys

    from mmscnet.deploy import ExportedModel
    _, _, root, graph = dense_toy_detector
    images = sorted(str(p) for p in (Path(root) / 'val').iterdir())[:2]
    for backend in ('onnxruntime', 'openvino'):
        out = tmp_path / f'{backend}.npz'
        res = subprocess.run(
            [
                sys.executable, '-c', NO_TORCH,
                graph_of(graph, backend), backend,
                str(out)
            ] + images,
            capture_output=True,
            text=True,
            cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        info = json.loads(res.stdout.strip().splitlines()[-1])
        assert info['loaded'] == [], info
        got = np.load(out)
        ref = ExportedModel(graph_of(graph, backend), backend)(images)
        assert sum(len(r['scores']) for r in ref) > 0
        assert sorted(got.files) == sorted(f'{i}_{k}'
                                           for i, r in enumerate(ref)
                                           for k in r)
        for i, r in enumerate(ref):
            for k, v in r.items():
                assert np.array_equal(got[f'{i}_{k}'], v), (backend, i, k)
