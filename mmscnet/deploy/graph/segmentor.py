"""A whole mmseg EncoderDecoder as one exportable graph:

    images (N, 3, H, W) -> logits (N, C, H, W)

the decode head's logits resized to the input as mmseg's ``predict`` resizes
them (bilinear, the head's ``align_corners``); cropping to each image,
resizing to its original size and the label decision (argmax, or for a
binary head with one output channel the sigmoid and ``threshold``) happen
at run time (:mod:`mmscnet.deploy.runtime`). H and W are free.

Adaptive average pooling (PSPNet's pyramid pooling, the image pool of ASPP,
APCHead's and DMHead's functional calls) is the one layer that exports
wrong: the exporters freeze its windows to the export size, and the graph
silently computes other windows at any other size. While the export forward
runs, ``F.adaptive_avg_pool2d`` (which ``nn.AdaptiveAvgPool2d`` calls too)
is computed as two averaging matrices built from the input's size at run
time, the windows it uses (``floor(i * H / s)`` to ``ceil((i + 1) * H / s)``).
"""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from .onnx import image_dims

# Decode heads whose ``predict`` differs from BaseDecodeHead's only in taking
# the first of the tensors ``forward`` returns (the others feed losses).
FIRST_OUTPUT_HEADS = ('DAHead', 'EncHead')


def check_exportable(segmentor):
    """Raise a ValueError naming what is supported unless the graph computes
    what ``segmentor.predict`` computes."""
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    name = type(segmentor).__name__
    if name != 'EncoderDecoder':
        raise ValueError(
            f'cannot export segmentor type {name}: the segmentor export '
            'handles EncoderDecoder (DeepLabV3, DeepLabV3+, PSPNet, UPerNet '
            'and the other decode heads of mmseg)')
    mode = segmentor.test_cfg.get('mode', 'whole')
    if mode != 'whole':
        raise ValueError(
            f"cannot export test_cfg.mode={mode!r}: the graph is the whole-"
            "image inference (test_cfg.mode='whole'); sliding windows are "
            'cut and merged around it by mmseg, not in the graph')
    head = segmentor.decode_head
    kind = type(head).__name__
    if (type(head).predict is not BaseDecodeHead.predict
            and kind not in FIRST_OUTPUT_HEADS):
        raise ValueError(
            f'cannot export decode head {kind}: its predict is not its '
            'forward followed by the resize and decision of BaseDecodeHead, '
            'which the graph and the runtime compute; heads that keep '
            f'BaseDecodeHead.predict, and {", ".join(FIRST_OUTPUT_HEADS)}, '
            'export')


def _window_means(size, bins, like):
    """(bins, size): row i averages AdaptiveAvgPool's window i."""
    i = torch.arange(bins, device=like.device)
    j = torch.arange(size, device=like.device)
    start = torch.div(i * size, bins, rounding_mode='floor')
    stop = -torch.div(-(i + 1) * size, bins, rounding_mode='floor')
    inside = (j[None] >= start[:, None]) & (j[None] < stop[:, None])
    return inside.to(like.dtype) / (stop - start).to(like.dtype)[:, None]


def adaptive_avg_pool2d(x, output_size):
    """``F.adaptive_avg_pool2d`` with its windows computed from the input's
    size in the graph, not frozen at export."""
    size = output_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    bh, bw = (s if s is not None else x.shape[2 + k]
              for k, s in enumerate(size))
    ph = _window_means(x.shape[2], bh, x)
    pw = _window_means(x.shape[3], bw, x)
    return torch.einsum('ih,nchw,jw->ncij', ph, x, pw)


@contextlib.contextmanager
def adaptive_pools_in_export_form():
    """``F.adaptive_avg_pool2d`` as :func:`adaptive_avg_pool2d` inside the
    block, restored after it."""
    real = F.adaptive_avg_pool2d
    F.adaptive_avg_pool2d = adaptive_avg_pool2d
    try:
        yield
    finally:
        F.adaptive_avg_pool2d = real


class SegmentorExport(nn.Module):
    """The segmentor as ``images -> logits`` at the input's size."""

    task = 'segmentation'
    input_names = ['images']
    output_names = ['logits']
    min_size = 32

    def __init__(self, segmentor):
        super().__init__()
        check_exportable(segmentor)
        self.segmentor = segmentor.eval()
        head = segmentor.decode_head
        self.align_corners = head.align_corners
        self.first_output = type(head).__name__ in FIRST_OUTPUT_HEADS
        # mmseg decides a one-channel head by sigmoid > threshold.
        self.threshold = (
            float(head.threshold) if head.out_channels == 1 else None)

    def example(self, n, h, w):
        return (torch.randn(n, 3, h, w), )

    def dynamic_shapes(self, max_batch=64, max_size=4096):
        return (image_dims(self.min_size, max_batch, max_size), )

    def spec(self):
        return dict(
            task=self.task,
            align_corners=self.align_corners,
            threshold=self.threshold)

    def forward(self, images):
        with adaptive_pools_in_export_form():
            logits = self.segmentor(images, mode='tensor')
        if self.first_output:
            logits = logits[0]
        return F.interpolate(
            logits,
            size=images.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
