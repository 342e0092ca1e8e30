"""Bad data and wrong weights: each gives a message that names the file and
what
is wrong, or (where mmdet skips) trains on with a warning that names what it
skipped."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
import train as train_tool  # noqa: E402
from conftest import REPO, TOY_CONFIG, cfg_options_argv, data_options

from mmscnet.models import SCNet
from mmscnet.testing.toy_data import generate_toy_coco
from mmscnet.utils.checkpoint_io import load_from_local

SCALE = (96, 96)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_coco')
    generate_toy_coco(str(root), num_train=4, num_val=2, image_size=SCALE)
    return root


def copy_of(toy, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(toy, root)
    return root


def train(root, work, **extra):
    # One epoch, with no validation unless ``extra`` asks for it.
    opts = data_options(TOY_CONFIG, str(root), scale=SCALE)
    opts.update({
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 2,
        'train_dataloader.batch_size': 2
    })
    opts.update(extra)
    train_tool.main(
        [TOY_CONFIG, '--work-dir', str(work)] + cfg_options_argv(opts))


def set_image(root, split, index, img, boxes=None, file_name=None):
    """Replace image ``index`` of ``split`` (its file, size and objects)."""
    ann_path = root / 'annotations' / f'instances_{split}.json'
    ann = json.loads(ann_path.read_text())
    info = ann['images'][index]
    if file_name:
        os.remove(root / split / info['file_name'])
        info['file_name'] = file_name
    cv2.imwrite(str(root / split / info['file_name']), img)
    info.update(height=img.shape[0], width=img.shape[1])
    if boxes is not None:
        ann['annotations'] = [
            a for a in ann['annotations'] if a['image_id'] != info['id']
        ]
        for x, y, w, h in boxes:
            ann['annotations'].append(
                dict(
                    id=max([a['id'] for a in ann['annotations']] + [0]) + 1,
                    image_id=info['id'],
                    category_id=2,
                    bbox=[x, y, w, h],
                    area=w * h,
                    iscrowd=0,
                    segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
    ann_path.write_text(json.dumps(ann))
    return root / split / info['file_name']


def image_file(root, index=1):
    return root / 'train' / f'{index:06d}.png'


def _missing_ann(root):
    os.remove(root / 'annotations' / 'instances_train.json')


def _truncated_ann(root):
    path = root / 'annotations' / 'instances_train.json'
    path.write_text(path.read_text()[:3000])


def _missing_image(root):
    os.remove(image_file(root))


def _corrupt_image(root):
    image_file(root).write_bytes(np.random.RandomState(0).bytes(1000))


def _truncated_png(root):
    data = image_file(root).read_bytes()
    image_file(root).write_bytes(data[:len(data) // 2])


def _truncated_jpeg(root):
    img = cv2.imread(str(image_file(root)))
    path = set_image(root, 'train', 1, img, file_name='000001.jpg')
    data = path.read_bytes()
    path.write_bytes(data[:len(data) //
                          2])  # OpenCV decodes this into a half-grey picture


def _empty_image(root):
    image_file(root).write_bytes(b'')


def _fewer_categories(root):
    # A person-only evaluation file for a 3-class detector (num_classes and
    # metainfo.classes not changed): mmdet fails only after the inference pass.
    path = root / 'annotations' / 'instances_val.json'
    ann = json.loads(path.read_text())
    ann['categories'] = [c for c in ann['categories'] if c['name'] == 'person']
    ann['annotations'] = [
        a for a in ann['annotations']
        if a['category_id'] in {c['id']
                                for c in ann['categories']}
    ]
    path.write_text(json.dumps(ann))


FEWER_CATEGORIES = (
    r'the model predicts 3 classes '
    r'\(model\.roi_head\.bbox_head\.num_classes=3, '
    r'model\.roi_head\.mask_head\.num_classes=3\), but .*instances_val\.json '
    r"has 1 categories \('person',\), of which 1 are among the 3 classes of "
    r'{loader}.*set metainfo=dict\(classes=\.\.\.\) on the datasets to the '
    r'file\'s '
    r'category names and num_classes=1 in the heads')

BAD_DATA = {
    'missing annotation JSON':
    (_missing_ann, FileNotFoundError,
     r'annotation file not found: train_dataloader: '
     r'.*annotations/instances_train\.json'),
    'truncated annotation JSON':
    (_truncated_ann, ValueError,
     r'annotation file .*instances_train\.json \(train_dataloader\) '
     r'is not valid JSON, truncated or corrupt \(3000 bytes\)'),
    'missing image': (_missing_image, ValueError,
                      r'image .*train/000001\.png does not exist'),
    'corrupt image':
    (_corrupt_image, ValueError,
     r'image .*train/000001\.png cannot be decoded by cv2: not an image, or '
     r'corrupt \(1000 bytes\); fix or remove it \(or set ignore_empty=True'),
    'truncated PNG':
    (_truncated_png, ValueError,
     r'image .*train/000001\.png is a truncated PNG \(no IEND chunk'),
    'truncated JPEG':
    (_truncated_jpeg, ValueError,
     r'image .*train/000001\.jpg is a truncated JPEG \(no end-of-image marker'
     ),
    'empty image file': (_empty_image, ValueError,
                         r'image .*train/000001\.png is empty \(0 bytes\)'),
    'fewer categories than num_classes':
    (_fewer_categories, ValueError,
     r'val_evaluator: ' + FEWER_CATEGORIES.format(loader='val_dataloader')),
}


@pytest.mark.parametrize('case', list(BAD_DATA))
def test_bad_data_is_named(case, toy, tmp_path):
    corrupt, error, message = BAD_DATA[case]
    root = copy_of(toy, tmp_path)
    corrupt(root)
    with pytest.raises(error, match=message):
        train(root, tmp_path / 'work')
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()


def test_class_count_mismatch_stops_tools_test_before_inference(
        toy, tmp_path, monkeypatch):
    """tools/test.py: the same mistake, and the issue's own case (mmdet's
    80-class COCO config against a file whose categories are fewer), are
    named before any checkpoint is read or image is seen."""
    import test as test_tool

    from mmengine.runner import Runner
    monkeypatch.setattr(Runner, 'from_cfg',
                        lambda cfg: pytest.fail('inference started'))
    root = copy_of(toy, tmp_path)
    _fewer_categories(root)
    ckpt = tmp_path / 'never_read.pth'
    ckpt.write_bytes(b'')
    opts = data_options(TOY_CONFIG, str(root), scale=SCALE)
    with pytest.raises(
            ValueError,
            match='test_evaluator: ' +
            FEWER_CATEGORIES.format(loader='test_dataloader')):
        test_tool.main(
            [TOY_CONFIG,
             str(ckpt), '--work-dir',
             str(tmp_path / 'w')] + cfg_options_argv(opts))
    coco80 = str(REPO / 'configs/detection/mask-rcnn_scnet50_fpn_1x_coco.py')
    opts = {
        k: v
        for k, v in data_options(coco80, str(toy), scale=SCALE).items()
        if not k.endswith(('metainfo.classes', 'num_classes'))
    }  # COCO's own 80 classes
    with pytest.raises(
            ValueError,
            match=r"test_evaluator: the model predicts 80 classes .*"
            r"has 3 categories \('person', 'ball', 'box'\), of which 1 are "
            r"among "
            r'the 80 classes of test_dataloader.*num_classes=3 in the heads'):
        test_tool.main(
            [coco80, str(ckpt), '--work-dir',
             str(tmp_path / 'w80')] + cfg_options_argv(opts))


def test_ignore_empty_skips_a_corrupt_image_with_a_warning(toy, tmp_path):
    root = copy_of(toy, tmp_path)
    _corrupt_image(root)
    train(root, tmp_path / 'work',
          **{'train_dataloader.dataset.pipeline.0.ignore_empty': True})
    assert (tmp_path / 'work' / 'epoch_1.pth').exists()
    log = next((tmp_path / 'work').glob('*/*.log')).read_text()
    assert 'skipped image' in log
    assert 'train/000001.png: it cannot be decoded' in log


def test_odd_images_train_or_are_skipped_by_name(toy, tmp_path):
    root = copy_of(toy, tmp_path)
    rng = np.random.RandomState(0)
    colour = rng.randint(0, 255, (96, 96, 3), np.uint8)
    more = [  # train images 4.. : (image, boxes)
        (rng.randint(0, 255, (1, 1, 3),
                     np.uint8), [(0, 0, 1, 1)]),  # 1x1: under min_size
        (rng.randint(0, 255, (20, 600, 3),
                     np.uint8), [(10, 2, 100, 16)]),  # 30:1, 20 px high
        (colour, []),  # no objects
        (rng.randint(0, 255, (40, 640, 3),
                     np.uint8), [(300, 5, 200, 30)]),  # 16:1, kept
        (colour, [(20, 20, 30, 30)
                  ]),  # a sixth kept image: two images in every batch
    ]
    ann_path = root / 'annotations' / 'instances_train.json'
    ann = json.loads(ann_path.read_text())
    for i in range(len(more)):
        ann['images'].append(
            dict(ann['images'][0], id=5 + i, file_name=f'{4 + i:06d}.png'))
    ann_path.write_text(json.dumps(ann))
    for i, (img, boxes) in enumerate(more):
        set_image(root, 'train', 4 + i, img, boxes)
    set_image(root, 'train', 0, cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY),
              [(10, 10, 40, 40)])
    set_image(root, 'train', 1, cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA),
              [(10, 10, 40, 40)])
    # Validation runs on every image (no filtering in test mode): a 1x1 one and
    # a 1:30 one go through the whole detector.
    set_image(root, 'val', 0, rng.randint(0, 255, (1, 1), np.uint8),
              [(0, 0, 1, 1)])
    set_image(root, 'val', 1, rng.randint(0, 255, (600, 20, 4), np.uint8),
              [(2, 10, 16, 100)])

    work = tmp_path / 'work'
    train(root, work, **{'train_cfg.val_interval': 1})
    log = next(work.glob('*/*.log')).read_text()
    assert (
        '3 of 9 training images in ' in log
        and 'are skipped, as filter_cfg=' in log and
        '000004.png (1x1, a side under min_size=32), 000005.png (600x20, a '
        'side under min_size=32), 000006.png (no objects)' in log)
    # 6 images kept (gray, RGBA, three plain, 16:1) at batch 2: 3 iterations.
    # (A batch of one thin image alone would stop BatchNorm in training mode,
    # see the README's "Small and odd inputs"; norm_eval=True, mmdet's default,
    # has no such limit.)
    assert 'Epoch(train) [1][3/3]' in log
    assert 'Epoch(val) [1][2/2]' in log or 'Epoch(val) [1][1/1]' in log
    state = load_from_local(str(work / 'epoch_1.pth'))['state_dict']
    assert all(
        torch.isfinite(v).all() for v in state.values()
        if v.is_floating_point())


# --- weights that do not fit the backbone ---


def _pretrained(path, **kwargs):
    model = SCNet(
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint=str(path), **kwargs))
    model.init_weights()
    return model


def test_torchvision_resnet_as_pretrained_is_refused(tmp_path):
    import torchvision
    path = tmp_path / 'resnet50.pth'
    torch.save(torchvision.models.resnet50().state_dict(),
               path)  # random init, no download
    with pytest.raises(
            ValueError,
            match=r'the weights do not fit SCNet-50: 105 of its 585 '
            r'tensors would load \(480 missing, 0 of another shape\).*'
            r"e\.g\. \['conv1\.weight', 'bn1\.weight', 'bn1\.bias'\]"):
        _pretrained(path)


def test_deeper_scnet_as_pretrained_is_refused(tmp_path):
    path = tmp_path / 'scnet101.pth'
    torch.save(SCNet(depth=101).state_dict(), path)
    with pytest.raises(
            ValueError,
            match=r'the checkpoint has 23 blocks in layer3, SCNet-50 has 6 '
            r'\(weights of another depth\?\)'):
        _pretrained(path)


def test_shape_mismatches_are_named(tmp_path):
    path = tmp_path / 'scnext.pth'
    torch.save(SCNet(depth=50, groups=32, base_width=4).state_dict(), path)
    with pytest.raises(
            ValueError,
            match=r'89 of its 585 tensors would load \(0 missing, 496 of '
            r'another shape: layer1\.0\.conv1_a\.weight: \(128, 64, 1, 1\) in '
            r'the checkpoint, \(32, 64, 1, 1\) here; layer1\.0\.bn1_a\.weight'
    ):
        _pretrained(path)


def test_whole_model_checkpoint_needs_the_prefix(tmp_path):
    source = SCNet(depth=50)
    for m in source.modules():  # non-trivial values, to see that they arrive
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
    path = tmp_path / 'detector.pth'
    torch.save(
        {
            'state_dict': {
                f'backbone.{k}': v
                for k, v in source.state_dict().items()
            }
        }, path)
    with pytest.raises(
            ValueError, match=r"set prefix='backbone\.' in init_cfg"):
        _pretrained(path)
    loaded = _pretrained(path, prefix='backbone.')
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_wrong_pretrained_weights_stop_tools_train(toy, tmp_path):
    import torchvision
    path = tmp_path / 'resnet50.pth'
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(ValueError, match='the weights do not fit SCNet-50'):
        train(
            toy, tmp_path / 'work', **{
                'model.backbone.init_cfg._delete_': True,
                'model.backbone.init_cfg.type': 'Pretrained',
                'model.backbone.init_cfg.checkpoint': str(path)
            })


def test_image_checks_accept_complete_files_and_see_through_thumbnails():
    from mmscnet.datasets.transforms import image_problem
    img = np.random.RandomState(0).randint(0, 255, (64, 48, 3), np.uint8)
    jpeg = cv2.imencode('.jpg', img)[1].tobytes()
    png = cv2.imencode('.png', img)[1].tobytes()
    assert image_problem(jpeg) is None and image_problem(png) is None
    assert image_problem(jpeg +
                         b'\0' * 100) is None  # padding after the end marker
    # An EXIF-like APP1 segment holding a whole thumbnail (with its own end
    # marker) before the image: cutting the main image is still seen.
    thumb = cv2.imencode('.jpg', img[:8, :8])[1].tobytes()
    app1 = b'\xff\xe1' + (len(thumb) + 2).to_bytes(2, 'big') + thumb
    with_thumb = jpeg[:2] + app1 + jpeg[2:]
    assert cv2.imdecode(np.frombuffer(with_thumb, np.uint8),
                        1).shape == img.shape
    assert image_problem(with_thumb) is None
    assert 'truncated JPEG' in image_problem(with_thumb[:len(with_thumb) -
                                                        200])
