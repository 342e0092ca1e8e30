"""tools/infer.py: a user's images, folders and videos through each library's
own inferencer."""
import json
import os

import cv2
import infer as infer_tool  # noqa: E402  (tools/ is on sys.path, see conftest)
import mmcv
import numpy as np
import pytest
from conftest import REPO, TOY_CONFIG, run_tool

from mmscnet.testing.toy_data import generate_toy_coco

TOY = {
    'mmdet': TOY_CONFIG,
    'mmseg':
    str(REPO / 'configs/segmentation/toy/deeplabv3_scnet50-d8_toy-seg.py'),
    'mmpretrain': str(REPO / 'configs/classification/toy/scnet50_toy-cls.py'),
    'mmpose':
    str(REPO / 'configs/keypoint/toy/td-hm_scnet50_toy-pose-96x64.py'),
}


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_coco')
    generate_toy_coco(str(root), num_train=4, num_val=3, image_size=(128, 128))
    return str(root)


@pytest.fixture(scope='module')
def toy_checkpoint(toy_detector):
    """A checkpoint as tools/train.py writes it (message hub, optimizer,
    dataset meta), of the same three classes as ``toy``'s images: the
    session's shared toy detector (conftest)."""
    return toy_detector[1]


@pytest.fixture(scope='module')
def video(tmp_path_factory, toy):
    path = str(tmp_path_factory.mktemp('video') / 'clip.mp4')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 5,
                             (128, 128))
    for name in sorted(os.listdir(os.path.join(toy, 'val'))):
        writer.write(cv2.imread(os.path.join(toy, 'val', name)))
    writer.release()
    return path


def test_infer_toy_detection_checkpoint_on_a_folder(toy, toy_checkpoint,
                                                    tmp_path):
    out_dir = tmp_path / 'out'
    images = sorted(os.listdir(os.path.join(toy, 'val')))
    # A fresh interpreter, the README's command line.
    out = run_tool([
        'tools/infer.py',
        os.path.join(toy, 'val'), TOY_CONFIG, toy_checkpoint, '--out-dir',
        str(out_dir), '--device', 'cpu', '--score-thr', '0.0'
    ],
                   fresh=True)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads((out_dir / 'predictions.json').read_text())
    assert doc['library'] == 'mmdet' and doc['checkpoint'] == toy_checkpoint
    assert [r['input'] for r in doc['results']] == images
    for r in doc['results']:
        painted = mmcv.imread(str(out_dir / r['vis']))
        assert painted.shape == (128, 128, 3)
        n = len(r['labels'])
        assert len(r['scores']) == len(r['bboxes']) == len(r['masks']) == len(
            r['label_names']) == n
        assert set(r['label_names']) <= {'person', 'ball',
                                         'box'}  # classes from the checkpoint
        assert all(set(m) == {'size', 'counts'} for m in r['masks'])
    # The painting differs from the input where boxes are drawn (score
    # threshold 0).
    if any(doc['results'][i]['labels'] for i in range(len(images))):
        i = next(i for i, r in enumerate(doc['results']) if r['labels'])
        original = mmcv.imread(os.path.join(toy, 'val', images[i]))
        assert not np.array_equal(
            original, mmcv.imread(str(out_dir / 'vis' / images[i])))

    # Nothing saved is overwritten silently.
    with pytest.raises(FileExistsError, match='predictions.json exists'):
        infer_tool.main([
            os.path.join(toy, 'val', images[0]), TOY_CONFIG, toy_checkpoint,
            '--out-dir',
            str(out_dir)
        ])
    doc = infer_tool.main([
        os.path.join(toy, 'val', images[0]), TOY_CONFIG, toy_checkpoint,
        '--out-dir',
        str(out_dir), '--overwrite'
    ])
    assert [r['input'] for r in doc['results']] == images[:1]


@pytest.mark.parametrize('lib', sorted(TOY))
def test_infer_video_with_each_library(lib, video, tmp_path):
    doc = infer_tool.main(
        [video, TOY[lib], '--out-dir',
         str(tmp_path), '--batch-size', '2'])
    assert doc['library'] == lib
    assert [r['frame'] for r in doc['results']] == [0, 1, 2]
    painted = mmcv.VideoReader(str(tmp_path / 'vis' / 'clip.mp4'))
    assert len(painted) == 3
    first = doc['results'][0]
    key = {
        'mmdet': 'bboxes',
        'mmseg': 'sem_seg',
        'mmpretrain': 'top5',
        'mmpose': 'instances'
    }[lib]
    assert key in first
    if lib == 'mmseg':
        label_map = cv2.imread(
            str(tmp_path / first['sem_seg']), cv2.IMREAD_UNCHANGED)
        assert label_map.shape == (128, 128)
        assert abs(sum(first['classes_present'].values()) - 1) < 1e-4
    if lib == 'mmpose':  # no detector given: the whole frame is the person box
        assert len(first['instances']) == 1
        assert len(first['instances'][0]['keypoints']) == 17
        assert first['instances'][0]['bbox'] == [[0.0, 0.0, 128.0, 128.0]]


def test_infer_bad_inputs_are_named(toy, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (tmp_path / 'notes.txt').write_text('x')
    image = os.path.join(toy, 'val',
                         sorted(os.listdir(os.path.join(toy, 'val')))[0])
    cases = [
        ([str(tmp_path / 'missing.jpg'),
          TOY_CONFIG], FileNotFoundError, 'input not found'),
        ([str(empty), TOY_CONFIG], ValueError,
         r'no images in folder .*empty \(accepted: .jpg'),
        ([str(tmp_path / 'notes.txt'),
          TOY_CONFIG], ValueError, r"unknown input .*notes.txt.*a video"),
        ([image, TOY_CONFIG, str(tmp_path / 'nope.pth')], FileNotFoundError,
         'checkpoint not found'),
        ([image, str(tmp_path / 'nope.py')], FileNotFoundError,
         'config file not found'),
    ]
    for argv, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            infer_tool.main(argv + ['--out-dir', str(tmp_path / 'o')])
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(
                ValueError,
                match='no CUDA device is available here; use --device cpu'):
            infer_tool.main([
                image, TOY_CONFIG, '--out-dir',
                str(tmp_path / 'o'), '--device', 'cuda'
            ])
    with pytest.raises(SystemExit):
        infer_tool.main([
            image, TOY_CONFIG, '--out-dir',
            str(tmp_path / 'o'), '--device', 'tpu'
        ])


def test_mmdet_detinferencer_loads_our_checkpoint_without_importing_mmscnet(
        toy, toy_checkpoint):
    # mmdet's own inferencer (what mmdet's demo/image_demo.py runs) in a fresh
    # interpreter whose code never imports mmscnet: the config's custom_imports
    # does, before the checkpoint (with mmengine's HistoryBuffers) is read.
    import subprocess
    import sys
    image = os.path.join(toy, 'val',
                         sorted(os.listdir(os.path.join(toy, 'val')))[0])
    code = ('import sys\n'
            'from mmdet.apis import DetInferencer\nassert "mmscnet" not in '
            f'sys.modules\ninf = DetInferencer(model={TOY_CONFIG!r}, '
            f'weights={toy_checkpoint!r}, device="cpu", '
            f'show_progress=False)\nout = inf({image!r}, no_save_vis=True, '
            'pred_score_thr=0.0)\nprint("predictions", '
            'len(out["predictions"]))\n')
    res = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'predictions 1' in res.stdout


def test_mmdet_own_test_tool_on_our_checkpoint(toy, toy_checkpoint, tmp_path):
    # mmdet's tools/test.py (shipped in mmdet's wheel under .mim/tools) as a
    # user runs it: it imports nothing of mmscnet itself.
    import subprocess
    import sys

    import mmdet
    from conftest import cfg_options_argv, data_options
    tool = os.path.join(
        os.path.dirname(mmdet.__file__), '.mim', 'tools', 'test.py')
    res = subprocess.run(
        [
            sys.executable, tool, TOY_CONFIG, toy_checkpoint, '--work-dir',
            str(tmp_path)
        ] + cfg_options_argv(data_options(TOY_CONFIG, toy)),
        capture_output=True,
        text=True,
        cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'coco/bbox_mAP: ' in res.stdout + res.stderr
    # The checkpoint (mmengine's HistoryBuffers inside) loads through the
    # fallback that the config's custom_imports installed, which says so.
    assert (res.stdout +
            res.stderr).count('mmscnet: mmengine could not load') == 1


def _runner_like_checkpoint(model, path, dataset_meta):
    """What mmengine's Runner writes: weights plus meta and the message hub's
    HistoryBuffers, which torch's weights-only loader refuses on its own."""
    import torch
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('runner_like_checkpoint')
    hub.update_scalar('train/loss', 0.5)
    torch.save(
        {
            'meta': {
                'epoch': 1,
                'iter': 1,
                'dataset_meta': dataset_meta
            },
            'state_dict': model.state_dict(),
            'message_hub': hub.state_dict()
        }, path)
    import pickle
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


@pytest.mark.parametrize('lib', ['mmseg', 'mmpretrain'])
def test_library_inferencer_loads_our_checkpoint_without_importing_mmscnet(
        lib, tmp_path):
    import subprocess
    import sys

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(TOY[lib])
    init_default_scope(lib)
    if lib == 'mmseg':
        from mmseg.registry import MODELS
        n = cfg.model.decode_head.num_classes
        meta = {
            'classes': tuple(f'class{i}' for i in range(n)),
            'palette': [[40 * i, 255 - 40 * i, 128] for i in range(n)]
        }
        make = ('from mmseg.apis import MMSegInferencer as I\n'
                'inf = I(model={cfg!r}, weights={w!r}, device="cpu")\n')
        count = 'print("result", tuple(out["predictions"].shape))\n'
    else:
        from mmpretrain.registry import MODELS
        meta = {
            'classes':
            tuple(f'class{i}' for i in range(cfg.model.head.num_classes))
        }
        make = (
            'from mmpretrain.apis import ImageClassificationInferencer as I\n'
            'inf = I(model={cfg!r}, pretrained={w!r}, device="cpu")\n')
        count = 'print("result", out[0]["pred_class"])\n'  # one dict per image
    model = MODELS.build(cfg.model)
    weights = str(tmp_path / 'ckpt.pth')
    _runner_like_checkpoint(model, weights, meta)
    image = str(tmp_path / 'img.png')
    cv2.imwrite(
        image,
        np.random.RandomState(0).randint(0, 255, (128, 128, 3), np.uint8))
    code = (
        'import sys\n'
        'assert "mmscnet" not in sys.modules\n' +
        make.format(cfg=TOY[lib], w=weights) +
        'assert "mmscnet" in sys.modules  # imported by the config, not by '
        'this code\n'
        f'out = inf({image!r}, return_datasamples=False)\n' + count)
    res = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'result' in res.stdout
    if lib == 'mmseg':
        assert 'result (128, 128)' in res.stdout
    else:
        assert 'result class' in res.stdout
