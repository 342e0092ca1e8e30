"""Inference on a user's images, folders and videos through each library's
own inferencer (DetInferencer, MMSegInferencer, ImageClassificationInferencer,
MMPoseInferencer): what tools/infer.py does, as functions the tests cover.

The inferencers predict and paint; this module only chooses the one the
config's ``default_scope`` names, feeds it, and saves what it returns:
``OUT_DIR/vis/`` (painted images, or one painted video per input video) and
``OUT_DIR/predictions.json``.
"""
import itertools
import json
import os
import os.path as osp
import shutil
import tempfile
import warnings

import numpy as np

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')


def collect_inputs(path):
    """``[(name, image_path)]`` for an image or a folder of images, or
    ``('video', path)`` for a video; a clear error for anything else."""
    if not osp.exists(path):
        raise FileNotFoundError(f'input not found: {path}')
    if osp.isdir(path):
        names = sorted(n for n in os.listdir(path)
                       if n.lower().endswith(IMAGE_EXTS) and osp.isfile(osp.join(path, n)))
        if not names:
            raise ValueError(f'no images in folder {path} (accepted: {", ".join(IMAGE_EXTS)})')
        return [(n, osp.join(path, n)) for n in names]
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTS:
        return [(osp.basename(path), path)]
    if ext in VIDEO_EXTS:
        return 'video', path
    raise ValueError(f'unknown input {path!r}: expected an image ({", ".join(IMAGE_EXTS)}), '
                     f'a folder of images, or a video ({", ".join(VIDEO_EXTS)})')


def check_out_dir(out_dir, overwrite=False):
    """Path of the predictions.json to write; refuses to replace one silently."""
    json_path = osp.join(out_dir, 'predictions.json')
    if osp.exists(json_path) and not overwrite:
        raise FileExistsError(f'{json_path} exists: choose another --out-dir or pass --overwrite')
    return json_path


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class _Det:
    def __init__(self, cfg, checkpoint, device, score_thr, **_):
        from mmdet.apis import DetInferencer
        self.inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device,
                                        show_progress=False)
        self.classes = self.inferencer.model.dataset_meta.get('classes')
        self.score_thr = score_thr

    def __call__(self, paths):
        out = self.inferencer(paths, return_vis=True, no_save_vis=True, no_save_pred=True,
                              pred_score_thr=self.score_thr, batch_size=len(paths))
        preds = out['predictions']
        if self.classes:
            for p in preds:  # mmdet's JSON has label indices only
                p['label_names'] = [self.classes[i] for i in p['labels']]
        return preds, out['visualization']


class _Seg:
    def __init__(self, cfg, checkpoint, device, **_):
        from mmseg.apis import MMSegInferencer
        self.inferencer = MMSegInferencer(model=cfg, weights=checkpoint, device=device)
        self.classes = self.inferencer.model.dataset_meta.get('classes')

    def __call__(self, paths):
        out = self.inferencer(paths, return_vis=True, batch_size=len(paths))
        preds = []
        for p in _as_list(out['predictions']):
            label_map = p['sem_seg'] if isinstance(p, dict) else p
            ids, counts = np.unique(label_map, return_counts=True)
            names = [self.classes[i] if self.classes and i < len(self.classes) else int(i)
                     for i in ids]
            # The label map itself goes to a PNG beside the JSON (see save_prediction).
            preds.append({'sem_seg': label_map,
                          'classes_present': {str(n): round(c / label_map.size, 6)
                                              for n, c in zip(names, counts)}})
        return preds, _as_list(out['visualization'])


class _Cls:
    def __init__(self, cfg, checkpoint, device, **_):
        from mmengine.runner import load_checkpoint
        from mmpretrain.apis import ImageClassificationInferencer, get_model

        from mmscnet.tool_setup import accept_released_classifier
        model = get_model(cfg, pretrained=False, device='cpu')
        classes = None
        if checkpoint:
            # The authors' released checkpoints (conv1.*, fc.*) load as tools/test.py loads them.
            accept_released_classifier(model)
            ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
            classes = ckpt.get('meta', {}).get('dataset_meta', {}).get('classes')
        self.inferencer = ImageClassificationInferencer(model, pretrained=False, device=device,
                                                        classes=classes)

    def __call__(self, paths):
        import mmcv
        from mmpretrain.visualization import UniversalVisualizer
        inf = self.inferencer
        samples = inf(paths, return_datasamples=True, batch_size=len(paths))
        preds = inf.postprocess(samples, None)
        if inf.visualizer is None:
            inf.visualizer = UniversalVisualizer()
        vis = []
        for path, sample, pred in zip(paths, samples, preds):
            inf.visualizer.visualize_cls(mmcv.imread(path, channel_order='rgb'), sample,
                                         classes=inf.classes, draw_gt=False, draw_pred=True)
            vis.append(inf.visualizer.get_image())
            scores = pred.pop('pred_scores')  # 1000 numbers per image: keep the top 5
            top = np.argsort(-scores)[:5]
            pred['top5'] = [{'label': int(i), 'score': float(scores[i]),
                             **({'class': inf.classes[i]} if inf.classes else {})} for i in top]
        return preds, vis


class _Pose:
    def __init__(self, cfg, checkpoint, device, kpt_thr, det_config=None, det_checkpoint=None,
                 det_cat_id=0, **_):
        from mmpose.apis import MMPoseInferencer

        from mmscnet.tool_setup import replace_types
        # mmpose 1.3.2's visualizer cannot draw a keypoint under NumPy 2 (visualization/pose.py).
        replace_types(cfg.visualizer, ('PoseLocalVisualizer', ), 'mmscnet.PoseLocalVisualizer')
        # Without a person detector each image is one person box (no download of
        # mmpose's default detector).
        self.inferencer = MMPoseInferencer(
            pose2d=cfg, pose2d_weights=checkpoint, device=device,
            det_model=det_config or 'whole_image', det_weights=det_checkpoint,
            det_cat_ids=det_cat_id)
        self.kpt_thr = kpt_thr

    def __call__(self, paths):
        preds, vis = [], []
        for out in self.inferencer(paths, return_vis=True, kpt_thr=self.kpt_thr,
                                   batch_size=len(paths)):
            preds += [{'instances': p} for p in out['predictions']]
            vis += out['visualization']
        return preds, vis


INFERENCERS = {'mmdet': _Det, 'mmseg': _Seg, 'mmpretrain': _Cls, 'mmpose': _Pose}


def build_inferencer(cfg, checkpoint, device='cpu', score_thr=0.3, **kwargs):
    """The library's own inferencer for ``cfg`` (by its ``default_scope``), wrapped
    so that it takes image paths and returns (predictions, painted RGB images)."""
    import torch
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: no CUDA device is available here; use --device cpu')
    if checkpoint is None:
        warnings.warn('no checkpoint given: the model runs with random weights')
        if cfg.model.get('backbone', {}).get('init_cfg'):
            cfg.model.backbone.init_cfg = None  # nothing to download for a random model
    elif '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)  # not all inferencers set it for their pipeline
    return INFERENCERS[cfg.default_scope](cfg, checkpoint, device, score_thr=score_thr,
                                          kpt_thr=score_thr, **kwargs)


def _save_image(rgb, path):
    import mmcv
    mmcv.imwrite(np.ascontiguousarray(rgb[..., ::-1]), path)


def _save_prediction(pred, out_dir, name):
    if 'sem_seg' in pred:  # a label map: PNG beside the JSON, as mmseg saves it
        from PIL import Image
        rel = osp.join('preds', name + '.png')
        os.makedirs(osp.join(out_dir, 'preds'), exist_ok=True)
        label_map = pred['sem_seg']
        Image.fromarray(label_map.astype(np.uint8 if label_map.max() < 256 else np.uint16)).save(
            osp.join(out_dir, rel))
        pred = dict(pred, sem_seg=rel)
    return _jsonable(pred)


def run(input_path, inferencer, out_dir, batch_size=4, overwrite=False, meta=None):
    """Predict ``input_path`` (image, folder or video) and save painted images
    and predictions.json under ``out_dir``; return the JSON written."""
    inputs = collect_inputs(input_path)
    json_path = check_out_dir(out_dir, overwrite)
    os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
    results = []
    if inputs[0] == 'video':
        results = _run_video(inputs[1], inferencer, out_dir, batch_size)
    else:
        for i in range(0, len(inputs), batch_size):
            chunk = inputs[i:i + batch_size]
            preds, vis = inferencer([p for _, p in chunk])
            for (name, _), pred, image in zip(chunk, preds, vis):
                # Painted image under the input's own name (and format), as mmdet saves it.
                _save_image(image, osp.join(out_dir, 'vis', name))
                results.append({'input': name, 'vis': osp.join('vis', name),
                                **_save_prediction(pred, out_dir, name)})
    doc = dict(meta or {}, input=input_path, results=results)
    with open(json_path, 'w') as f:
        json.dump(doc, f)
    return doc


def _run_video(path, inferencer, out_dir, batch_size):
    """Frames go through the inferencer as image files (so that each library
    reads and paints them as it reads images); painted frames become a video."""
    import cv2
    import mmcv
    video = mmcv.VideoReader(path)
    if len(video) == 0:
        raise ValueError(f'video {path} has no readable frames')
    stem = osp.splitext(osp.basename(path))[0]
    vis_rel = osp.join('vis', stem + '.mp4')
    writer, results = None, []
    tmp = tempfile.mkdtemp(prefix='mmscnet-frames-')
    try:
        frames = (frame for frame in video)  # mmcv's reader rewinds on each iter()
        index = 0
        while True:
            paths = []
            for frame in itertools.islice(frames, batch_size):
                paths.append(osp.join(tmp, f'{index + len(paths):06d}.png'))
                cv2.imwrite(paths[-1], frame)
            if not paths:
                break
            preds, vis = inferencer(paths)
            for pred, image in zip(preds, vis):
                if writer is None:
                    h, w = image.shape[:2]
                    writer = cv2.VideoWriter(osp.join(out_dir, vis_rel),
                                             cv2.VideoWriter_fourcc(*'mp4v'), video.fps or 25, (w, h))
                writer.write(np.ascontiguousarray(image[..., ::-1]))
                results.append({'input': osp.basename(path), 'frame': index, 'vis': vis_rel,
                                **_save_prediction(pred, out_dir, f'{stem}_{index:06d}')})
                index += 1
            for p in paths:
                os.remove(p)
    finally:
        if writer is not None:
            writer.release()
        shutil.rmtree(tmp, ignore_errors=True)
    return results
