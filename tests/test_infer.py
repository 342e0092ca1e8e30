"""tools/infer.py: a user's images, folders and videos through each library's own inferencer."""
import json
import os

import cv2
import mmcv
import numpy as np
import pytest
from conftest import REPO, TOY_CONFIG, run_tool, train_toy_detector

from mmscnet.synthetic import generate_toy_coco

import infer as infer_tool  # noqa: E402  (tools/ is on sys.path, see conftest)

TOY = {
    'mmdet': TOY_CONFIG,
    'mmseg': str(REPO / 'configs/segmentation/toy/deeplabv3_scnet50-d8_toy-seg.py'),
    'mmpretrain': str(REPO / 'configs/classification/toy/scnet50_toy-cls.py'),
    'mmpose': str(REPO / 'configs/keypoint/toy/td-hm_scnet50_toy-pose-96x64.py'),
}


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_coco')
    generate_toy_coco(str(root), num_train=4, num_val=3, image_size=(128, 128))
    return str(root)


@pytest.fixture(scope='module')
def toy_checkpoint(toy, tmp_path_factory):
    """A checkpoint as tools/train.py writes it (message hub, optimizer, dataset meta)."""
    return train_toy_detector(toy, tmp_path_factory.mktemp('work'), epochs=1)


@pytest.fixture(scope='module')
def video(tmp_path_factory, toy):
    path = str(tmp_path_factory.mktemp('video') / 'clip.mp4')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 5, (128, 128))
    for name in sorted(os.listdir(os.path.join(toy, 'val'))):
        writer.write(cv2.imread(os.path.join(toy, 'val', name)))
    writer.release()
    return path


def test_infer_toy_detection_checkpoint_on_a_folder(toy, toy_checkpoint, tmp_path):
    out_dir = tmp_path / 'out'
    images = sorted(os.listdir(os.path.join(toy, 'val')))
    # A fresh interpreter, the README's command line.
    out = run_tool(['tools/infer.py', os.path.join(toy, 'val'), TOY_CONFIG, toy_checkpoint,
                    '--out-dir', str(out_dir), '--device', 'cpu', '--score-thr', '0.0'])
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads((out_dir / 'predictions.json').read_text())
    assert doc['library'] == 'mmdet' and doc['checkpoint'] == toy_checkpoint
    assert [r['input'] for r in doc['results']] == images
    for r in doc['results']:
        painted = mmcv.imread(str(out_dir / r['vis']))
        assert painted.shape == (128, 128, 3)
        n = len(r['labels'])
        assert len(r['scores']) == len(r['bboxes']) == len(r['masks']) == len(r['label_names']) == n
        assert set(r['label_names']) <= {'person', 'ball', 'box'}  # classes from the checkpoint
        assert all(set(m) == {'size', 'counts'} for m in r['masks'])
    # The painting differs from the input where boxes are drawn (score threshold 0).
    if any(doc['results'][i]['labels'] for i in range(len(images))):
        i = next(i for i, r in enumerate(doc['results']) if r['labels'])
        original = mmcv.imread(os.path.join(toy, 'val', images[i]))
        assert not np.array_equal(original, mmcv.imread(str(out_dir / 'vis' / images[i])))

    # Nothing saved is overwritten silently.
    with pytest.raises(FileExistsError, match='predictions.json exists'):
        infer_tool.main([os.path.join(toy, 'val', images[0]), TOY_CONFIG, toy_checkpoint,
                         '--out-dir', str(out_dir)])
    doc = infer_tool.main([os.path.join(toy, 'val', images[0]), TOY_CONFIG, toy_checkpoint,
                           '--out-dir', str(out_dir), '--overwrite'])
    assert [r['input'] for r in doc['results']] == images[:1]


@pytest.mark.parametrize('lib', sorted(TOY))
def test_infer_video_with_each_library(lib, video, tmp_path):
    doc = infer_tool.main([video, TOY[lib], '--out-dir', str(tmp_path), '--batch-size', '2'])
    assert doc['library'] == lib
    assert [r['frame'] for r in doc['results']] == [0, 1, 2]
    painted = mmcv.VideoReader(str(tmp_path / 'vis' / 'clip.mp4'))
    assert len(painted) == 3
    first = doc['results'][0]
    key = {'mmdet': 'bboxes', 'mmseg': 'sem_seg', 'mmpretrain': 'top5', 'mmpose': 'instances'}[lib]
    assert key in first
    if lib == 'mmseg':
        label_map = cv2.imread(str(tmp_path / first['sem_seg']), cv2.IMREAD_UNCHANGED)
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
    image = os.path.join(toy, 'val', sorted(os.listdir(os.path.join(toy, 'val')))[0])
    cases = [
        ([str(tmp_path / 'missing.jpg'), TOY_CONFIG], FileNotFoundError, 'input not found'),
        ([str(empty), TOY_CONFIG], ValueError, r'no images in folder .*empty \(accepted: .jpg'),
        ([str(tmp_path / 'notes.txt'), TOY_CONFIG], ValueError, r"unknown input .*notes.txt.*a video"),
        ([image, TOY_CONFIG, str(tmp_path / 'nope.pth')], FileNotFoundError, 'checkpoint not found'),
        ([image, str(tmp_path / 'nope.py')], FileNotFoundError, 'config file not found'),
    ]
    for argv, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            infer_tool.main(argv + ['--out-dir', str(tmp_path / 'o')])
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='no CUDA device is available here; use --device cpu'):
            infer_tool.main([image, TOY_CONFIG, '--out-dir', str(tmp_path / 'o'), '--device', 'cuda'])
    with pytest.raises(SystemExit):
        infer_tool.main([image, TOY_CONFIG, '--out-dir', str(tmp_path / 'o'), '--device', 'tpu'])


def test_mmdet_detinferencer_loads_our_checkpoint_without_importing_mmscnet(toy, toy_checkpoint):
    # mmdet's own inferencer (what mmdet's demo/image_demo.py runs) in a fresh
    # interpreter whose code never imports mmscnet: the config's custom_imports
    # does, before the checkpoint (with mmengine's HistoryBuffers) is read.
    import subprocess
    import sys
    image = os.path.join(toy, 'val', sorted(os.listdir(os.path.join(toy, 'val')))[0])
    code = ('import sys\n'
            'from mmdet.apis import DetInferencer\n'
            'assert "mmscnet" not in sys.modules\n'
            f'inf = DetInferencer(model={TOY_CONFIG!r}, weights={toy_checkpoint!r}, '
            'device="cpu", show_progress=False)\n'
            f'out = inf({image!r}, no_save_vis=True, pred_score_thr=0.0)\n'
            'print("predictions", len(out["predictions"]))\n')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'predictions 1' in res.stdout
