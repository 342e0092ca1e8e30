"""A whole mmseg EncoderDecoder as one exportable graph:

    images (N, 3, H, W) -> logits (N, num_classes, H, W)

the decode head's logits resized to the input as mmseg's ``predict`` resizes
them (bilinear, the head's ``align_corners``); cropping to each image and
resizing to its original size happen at run time
(:mod:`mmscnet.deploy.runtime`). H and W are free.

Adaptive average pooling (PSPNet's pyramid pooling, the image pool of ASPP)
is the one layer that exports wrong: the exporters freeze its windows to
the export size, and the graph silently computes other windows at any other
size. The export copy computes it as two averaging matrices built from the
input's size at run time, the windows ``AdaptiveAvgPool2d`` uses
(``floor(i * H / s)`` to ``ceil((i + 1) * H / s)``).
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


def check_exportable(segmentor):
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


def _window_means(size, bins, like):
    """(bins, size): row i averages AdaptiveAvgPool's window i."""
    i = torch.arange(bins, device=like.device)
    j = torch.arange(size, device=like.device)
    start = torch.div(i * size, bins, rounding_mode='floor')
    stop = -torch.div(-(i + 1) * size, bins, rounding_mode='floor')
    inside = (j[None] >= start[:, None]) & (j[None] < stop[:, None])
    return inside.to(like.dtype) / (stop - start).to(like.dtype)[:, None]


class AdaptiveAvgPool2dExport(nn.Module):
    """``nn.AdaptiveAvgPool2d`` with its windows computed from the input's
    size in the graph, not frozen at export."""

    def __init__(self, output_size):
        super().__init__()
        size = output_size
        self.output_size = (size, size) if isinstance(size, int) else size

    def forward(self, x):
        bh, bw = (s if s is not None else x.shape[2 + k]
                  for k, s in enumerate(self.output_size))
        ph = _window_means(x.shape[2], bh, x)
        pw = _window_means(x.shape[3], bw, x)
        return torch.einsum('ih,nchw,jw->ncij', ph, x, pw)


def exportable_copy(segmentor):
    """A copy of ``segmentor`` with every AdaptiveAvgPool2d in its export
    form; the given model is left as it is."""
    model = copy.deepcopy(segmentor)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(module, child_name,
                        AdaptiveAvgPool2dExport(child.output_size))
    return model


class SegmentorExport(nn.Module):
    """The segmentor as ``images -> logits`` at the input's size."""

    task = 'segmentation'
    input_names = ['images']
    output_names = ['logits']
    min_size = 32

    def __init__(self, segmentor):
        super().__init__()
        check_exportable(segmentor)
        self.segmentor = exportable_copy(segmentor).eval()
        self.align_corners = segmentor.decode_head.align_corners

    def example(self, n, h, w):
        return (torch.randn(n, 3, h, w), )

    def dynamic_shapes(self, max_batch=64, max_size=4096):
        dim = torch.export.Dim
        return ({
            0: dim('batch', min=1, max=max_batch),
            2: dim('height', min=self.min_size, max=max_size),
            3: dim('width', min=self.min_size, max=max_size)
        }, )

    def spec(self):
        return dict(task=self.task, align_corners=self.align_corners)

    def forward(self, images):
        logits = self.segmentor(images, mode='tensor')
        return F.interpolate(
            logits,
            size=images.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
