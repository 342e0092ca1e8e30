"""An exported detector, segmentor or classifier run without PyTorch: image
files in, the predictions mmdet's, mmseg's and mmpretrain's inferencers give
out.

``tools/deployment/export.py`` writes the graph (``model.onnx``, optionally
OpenVINO IR ``model.xml``) and beside it ``model.json``: the task, the class
names and the test pipeline's preprocessing. :class:`ExportedModel` reads
both and does around the graph what the config's test pipeline and data
preprocessor do before the network and what mmdet's and mmseg's heads do
after it, in numpy and cv2:

- resize as ``Resize`` does (mmcv's ``imrescale``/``imresize``: cv2
  bilinear, the size rounded as mmcv rounds it) or mmpretrain's
  ``ResizeEdge`` (cv2 or Pillow), crop as ``CenterCrop``, BGR to RGB,
  normalise, pad to the size divisor;
- detections: boxes divided by the scale factor, masks pasted into the
  original image as mmdet pastes them on the CPU (bilinear sampling of the
  28x28 mask over its box, one pixel of margin, threshold);
- segmentation: the logits cropped to the image, resized to the original
  size as ``torch.nn.functional.interpolate`` does, and the argmax;
- classification: the graph's softmax scores and their arg-max.
"""

import numpy as np

from .session import open_session
from .spec import read_spec

CHANNEL_ORDERS = ('bgr', 'rgb')


def as_bgr(image, index=0, channel_order='bgr'):
    """A user's image as the HxWx3 uint8 BGR array the preprocessing takes.

    A path is read as mmcv's ``LoadImageFromFile`` reads files
    (:func:`~mmscnet.utils.image_file.read_image`). Arrays are converted
    as cv2 converts such files when it reads them in colour: grayscale
    (HxW or HxWx1) replicated to three channels, the alpha channel of HxWx4
    dropped. ``channel_order`` says what the array's channels are ('bgr',
    as cv2 and mmcv read images, or 'rgb', as PIL does); anything else is
    refused with what is accepted."""
    import os
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f'channel_order must be one of {CHANNEL_ORDERS}, '
                         f'got {channel_order!r}')
    if isinstance(image, (str, os.PathLike)):
        from mmscnet.utils.image_file import read_image
        return read_image(os.fspath(image))
    what = f'image {index}'
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{what}: expected a file path or a numpy array '
                        f'(HxWx3 uint8 BGR), got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise ValueError(
            f'{what} is {image.dtype}: the runtime takes uint8 arrays (0 to '
            '255), as cv2 and mmcv read images')
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif not (image.ndim == 3 and image.shape[2] in (3, 4)):
        raise ValueError(
            f'{what} has shape {image.shape}: the runtime takes HxW or HxWx1 '
            '(grayscale), HxWx3 (colour) or HxWx4 (colour and alpha)')
    if min(image.shape[:2]) < 1:
        raise ValueError(f'{what} is empty: shape {image.shape}')
    image = image[:, :, :3]
    if channel_order == 'rgb':
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


def rescale_size(w, h, scale):
    """mmcv's ``rescale_size``: the size that fits ``scale`` (long and short
    edge limits) keeping the aspect ratio, rounded as mmcv rounds it."""
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(w * factor + 0.5), int(h * factor + 0.5)


def edge_size(w, h, scale, edge):
    """mmpretrain's ``ResizeEdge``: the (w, h) with the ``edge`` side
    ('short', 'long', 'width' or 'height') at ``scale``."""
    if ((edge == 'short' and w < h) or (edge == 'long' and w > h)
            or edge == 'width'):
        return scale, int(scale * h / w)
    return int(scale * w / h), scale


def center_crop(img, size):
    """mmcv's ``CenterCrop`` (no padding): the centre ``size`` (w, h), or
    the whole side where the image is smaller, offsets rounded as Python
    rounds them."""
    h, w = img.shape[:2]
    cw, ch = min(size[0], w), min(size[1], h)
    y = max(0, int(round((h - ch) / 2.)))
    x = max(0, int(round((w - cw) / 2.)))
    return img[y:y + ch, x:x + cw]


def resize(img, size, backend='cv2'):
    """mmcv's ``imresize`` to ``size`` (w, h), bilinear, with cv2 or, as
    some mmpretrain pipelines ask, Pillow."""
    if backend == 'pillow':
        from PIL import Image
        return np.array(Image.fromarray(img).resize(size, Image.BILINEAR))
    import cv2
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)


def preprocess(images, spec):
    """BGR uint8 images -> (batch (N, 3, H, W) float32, valid shapes (N, 2)
    float32, per-image (ori_shape, scale_factor (w, h)))."""
    import cv2
    pre = spec['preprocess']
    resized, metas = [], []
    for img in images:
        h, w = img.shape[:2]
        if pre.get('scale'):
            size = (
                rescale_size(w, h, pre['scale'])
                if pre['keep_ratio'] else tuple(pre['scale']))
            img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        if pre.get('resize_edge'):
            edge = pre['resize_edge']
            size = edge_size(img.shape[1], img.shape[0], edge['scale'],
                             edge['edge'])
            img = resize(img, size, edge['backend'])
        if pre.get('center_crop'):
            img = center_crop(img, pre['center_crop'])
        nh, nw = img.shape[:2]
        metas.append(((h, w), (nw / w, nh / h)))
        x = img[..., ::-1] if pre['bgr_to_rgb'] else img
        x = (x.astype(np.float32) - np.float32(pre['mean'])) / np.float32(
            pre['std'])
        resized.append(x.transpose(2, 0, 1))
    if spec['task'] == 'segmentation' and len({r.shape for r in resized}) > 1:
        raise ValueError('segmentation batches hold images of one size after '
                         'resizing (as mmseg requires): use batch size 1')
    d = pre.get('pad_size_divisor') or 1
    hh = max(r.shape[1] for r in resized)
    ww = max(r.shape[2] for r in resized)
    hh, ww = -(-hh // d) * d, -(-ww // d) * d
    low = pre.get('min_size', 1)
    if min(hh, ww) < low:
        raise ValueError(
            f'an image of {hh}x{ww} after resizing and padding is below the '
            f'exported graph\'s smallest input, {low} pixels a side')
    batch = np.full((len(resized), 3, hh, ww),
                    pre.get('pad_value', 0),
                    dtype=np.float32)
    for i, r in enumerate(resized):
        batch[i, :, :r.shape[1], :r.shape[2]] = r
    shapes = np.array([r.shape[1:] for r in resized], dtype=np.float32)
    return batch, shapes, metas


def _linear_taps(n_in, n_out, align_corners, offset=0.0, scale=None):
    """Source indices and weights of bilinear resampling along one axis, as
    torch's ``interpolate`` computes them."""
    dst = np.arange(n_out, dtype=np.float32)
    if align_corners:
        s = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = dst * np.float32(s)
    else:
        s = np.float32(n_in / n_out if scale is None else scale)
        src = np.maximum((dst + np.float32(0.5)) * s - np.float32(0.5), 0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, w1


def resize_bilinear(x, size, align_corners=False):
    """(C, H, W) -> (C, h, w) as ``F.interpolate(mode='bilinear')``."""
    y0, y1, wy = _linear_taps(x.shape[1], size[0], align_corners)
    x0, x1, wx = _linear_taps(x.shape[2], size[1], align_corners)
    rows = x[:, y0] * (1 - wy)[:, None] + x[:, y1] * wy[:, None]
    return rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx


def paste_mask(mask, box, h, w, threshold):
    """One RoI mask (m, m) pasted into an (h, w) image as mmdet's
    ``_do_paste_mask`` does on the CPU: ``grid_sample`` (bilinear, zero
    padding, ``align_corners=False``) over the box plus a pixel of margin."""
    x0, y0, x1, y1 = (np.float32(v) for v in box)
    out = np.zeros((h, w), dtype=bool)
    xa = int(max(np.floor(x0) - 1, 0))
    ya = int(max(np.floor(y0) - 1, 0))
    xb = int(min(np.ceil(x1) + 1, w))
    yb = int(min(np.ceil(y1) + 1, h))
    if xb <= xa or yb <= ya:
        return out
    m = mask.shape[0]

    def axis(start, stop, lo, hi):
        g = (np.arange(start, stop, dtype=np.float32) + np.float32(0.5) -
             lo) / (hi - lo) * np.float32(2) - np.float32(1)
        g = np.where(np.isinf(g), np.float32(0), g)
        src = ((g + 1) * m - 1) / 2  # grid_sample's unnormalisation
        i0 = np.floor(src)
        frac = (src - i0).astype(np.float32)
        i0 = i0.astype(np.int64)
        return i0, frac

    iy, fy = axis(ya, yb, y0, y1)
    ix, fx = axis(xa, xb, x0, x1)

    def tap(i):  # zero outside the mask, as grid_sample pads
        ok = (i >= 0) & (i < m)
        return np.clip(i, 0, m - 1), ok.astype(np.float32)

    (ty0, oy0), (ty1, oy1) = tap(iy), tap(iy + 1)
    (tx0, ox0), (tx1, ox1) = tap(ix), tap(ix + 1)
    mk = mask.astype(np.float32)
    top = (
        mk[ty0][:, tx0] * (oy0[:, None] * ox0) * (1 - fx) + mk[ty0][:, tx1] *
        (oy0[:, None] * ox1) * fx)
    bottom = (
        mk[ty1][:, tx0] * (oy1[:, None] * ox0) * (1 - fx) + mk[ty1][:, tx1] *
        (oy1[:, None] * ox1) * fx)
    value = top * (1 - fy)[:, None] + bottom * fy[:, None]
    out[ya:yb, xa:xb] = value >= threshold
    return out


def detections(outputs, metas, spec):
    """Graph outputs -> per image dict(labels, scores, bboxes[, masks]) in
    the original image's pixels, each image's in descending score order."""
    boxes, scores, labels, batch = outputs[:4]
    masks = outputs[4] if len(outputs) > 4 else None
    results = []
    for i, ((h, w), (sw, sh)) in enumerate(metas):
        sel = np.flatnonzero(batch == i)
        b = boxes[sel] / np.array([sw, sh, sw, sh], dtype=np.float32)
        r = dict(labels=labels[sel], scores=scores[sel], bboxes=b)
        if masks is not None:
            r['masks'] = np.stack([
                paste_mask(masks[j], b[k], h, w, spec['mask_thr_binary'])
                for k, j in enumerate(sel)
            ]) if len(sel) else np.zeros((0, h, w), dtype=bool)
        results.append(r)
    return results


def segmentation(outputs, shapes, metas, spec):
    """Graph logits (N, C, H, W) -> per image dict(logits at the original
    size, sem_seg label map), as mmseg's ``postprocess_result``: the argmax,
    or for one channel the sigmoid (then returned as the logits) and
    ``threshold``."""
    logits = outputs[0]
    results = []
    for i, ((h, w), _) in enumerate(metas):
        vh, vw = int(shapes[i][0]), int(shapes[i][1])
        x = resize_bilinear(logits[i, :, :vh, :vw], (h, w),
                            spec['align_corners'])
        if x.shape[0] == 1:
            x = 1 / (1 + np.exp(-x))
            label_map = (x[0] > spec['threshold']).astype(np.int64)
        else:
            label_map = x.argmax(0)
        results.append(dict(logits=x, sem_seg=label_map))
    return results


def classification(outputs):
    """Graph scores (N, C) -> per image dict(scores (C, ), label), as
    mmpretrain's ``ClsHead`` predicts: the softmax, then its arg-max."""
    return [dict(scores=s, label=int(s.argmax())) for s in outputs[0]]


class ExportedModel:
    """An exported graph and its ``model.json``: ``model(images)`` takes image
    paths or uint8 arrays (BGR, as cv2 and mmcv read them, unless
    ``channel_order='rgb'``; see :func:`as_bgr`) and returns one result dict
    per image (:func:`detections`, :func:`segmentation`,
    :func:`classification`), in the original image's pixels. ``task``: the
    one the caller expects ('detection', 'segmentation' or
    'classification'), checked."""

    def __init__(self,
                 graph_path,
                 backend='onnxruntime',
                 threads=None,
                 task=None,
                 precision='fp32'):
        self.spec = read_spec(graph_path)
        if task and self.spec['task'] != task:
            raise ValueError(f'{graph_path} is an exported '
                             f'{self.spec["task"]} model, not a {task} one: '
                             'give the config it was exported from')
        self.run = open_session(graph_path, backend, precision, threads)

    @property
    def classes(self):
        return self.spec.get('classes')

    def __call__(self, images, channel_order='bgr'):
        if isinstance(images, np.ndarray) and images.ndim != 4:
            images = [images]  # one image, not a batch of rows
        images = [as_bgr(x, i, channel_order) for i, x in enumerate(images)]
        if not images:
            return []
        batch, shapes, metas = preprocess(images, self.spec)
        if self.spec['task'] == 'detection':
            outputs = self.run({'images': batch, 'img_shape': shapes})
            return detections(outputs, metas, self.spec)
        if self.spec['task'] == 'classification':
            return classification(self.run({'images': batch}))
        return segmentation(
            self.run({'images': batch}), shapes, metas, self.spec)
