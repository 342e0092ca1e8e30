"""Inference on a user's images, folders and videos through each library's
own inferencer (DetInferencer, MMSegInferencer, ImageClassificationInferencer,
MMPoseInferencer): what tools/infer.py does, as functions the tests cover.

The inferencers predict and paint (mmscnet/adapters/ wraps each); this
module only chooses the one the config's ``default_scope`` names, feeds it, and
saves what it returns:
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
        names = sorted(
            n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTS)
            and osp.isfile(osp.join(path, n)))
        if not names:
            raise ValueError(f'no images in folder {path} (accepted: '
                             f'{", ".join(IMAGE_EXTS)})')
        return [(n, osp.join(path, n)) for n in names]
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTS:
        return [(osp.basename(path), path)]
    if ext in VIDEO_EXTS:
        return 'video', path
    raise ValueError(
        f'unknown input {path!r}: expected an image '
        f'({", ".join(IMAGE_EXTS)}), a folder of images, or a video '
        f'({", ".join(VIDEO_EXTS)})')


def check_out_dir(out_dir, overwrite=False):
    """Path of the predictions.json to write; refuses to replace one silently.
    """
    json_path = osp.join(out_dir, 'predictions.json')
    if osp.exists(json_path) and not overwrite:
        raise FileExistsError(
            f'{json_path} exists: choose another --out-dir or pass --overwrite'
        )
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


def build_inferencer(cfg, checkpoint, device='cpu', score_thr=0.3, **kwargs):
    """The library's own inferencer for ``cfg`` (by its ``default_scope``),
    wrapped
    so that it takes image paths and returns (predictions, painted RGB images).
    """
    import torch
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(
            f'--device {device}: no CUDA device is available here; use '
            '--device cpu')
    if checkpoint is None:
        warnings.warn(
            'no checkpoint given: the model runs with random weights')
        if cfg.model.get('backbone', {}).get('init_cfg'):
            # nothing to download for a random model
            cfg.model.backbone.init_cfg = None
    elif '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    from mmengine.registry import init_default_scope

    from mmscnet.adapters import get_adapter
    init_default_scope(
        cfg.default_scope)  # not all inferencers set it for their pipeline
    return get_adapter(cfg.default_scope).inferencer(
        cfg, checkpoint, device, score_thr=score_thr, **kwargs)


def _save_image(rgb, path):
    import mmcv
    mmcv.imwrite(np.ascontiguousarray(rgb[..., ::-1]), path)


def _save_prediction(pred, out_dir, name):
    # a label map: PNG beside the JSON, as mmseg saves it
    if 'sem_seg' in pred:
        from PIL import Image
        rel = osp.join('preds', name + '.png')
        os.makedirs(osp.join(out_dir, 'preds'), exist_ok=True)
        label_map = pred['sem_seg']
        Image.fromarray(
            label_map.astype(np.uint8 if label_map.max() <
                             256 else np.uint16)).save(osp.join(out_dir, rel))
        pred = dict(pred, sem_seg=rel)
    return _jsonable(pred)


def run(input_path,
        inferencer,
        out_dir,
        batch_size=4,
        overwrite=False,
        meta=None):
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
                # Painted image under the input's own name (and format), as
                # mmdet saves it.
                _save_image(image, osp.join(out_dir, 'vis', name))
                results.append({
                    'input': name,
                    'vis': osp.join('vis', name),
                    **_save_prediction(pred, out_dir, name)
                })
    doc = dict(meta or {}, input=input_path, results=results)
    with open(json_path, 'w') as f:
        json.dump(doc, f)
    return doc


def _run_video(path, inferencer, out_dir, batch_size):
    """Frames go through the inferencer as image files (so that each library
    reads and paints them as it reads images); painted frames become a video.
    """
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
        frames = (frame
                  for frame in video)  # mmcv's reader rewinds on each iter()
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
                    writer = cv2.VideoWriter(
                        osp.join(out_dir, vis_rel),
                        cv2.VideoWriter_fourcc(*'mp4v'), video.fps or 25,
                        (w, h))
                writer.write(np.ascontiguousarray(image[..., ::-1]))
                results.append({
                    'input':
                    osp.basename(path),
                    'frame':
                    index,
                    'vis':
                    vis_rel,
                    **_save_prediction(pred, out_dir, f'{stem}_{index:06d}')
                })
                index += 1
            for p in paths:
                os.remove(p)
    finally:
        if writer is not None:
            writer.release()
        shutil.rmtree(tmp, ignore_errors=True)
    return results
