"""A whole mmdet single-stage detector (RetinaNet, FCOS, ATSS) as one
exportable graph, with the inputs and outputs of the two-stage export
(:mod:`mmscnet.deploy.graph.detector`):

    images (N, 3, H, W), img_shape (N, 2: valid h, w)
        -> boxes (K, 4), scores (K,), labels (K,), batch_index (K,)

The network is mmdet's own modules (backbone, neck, head convs, prior
generator); the post-processing is rewritten in tensor form, step for step
as mmdet's ``BaseDenseHead._predict_by_feat_single`` and
``_bbox_post_process`` compute it for each image:

- per FPN level, the sigmoid scores of every (prior, class) pair above
  ``score_thr``, the ``nms_pre`` best of them (a top-k over all pairs, so
  that several classes of one prior can pass), their boxes decoded;
- FCOS's and ATSS's centerness multiplied into the scores after the top-k;
- boxes of zero width or height dropped (``min_bbox_size=0``);
- mmcv's ``batched_nms`` over the image's levels: one NMS with the boxes
  of each class offset by ``label * (largest coordinate + 1)``, the
  offsets of one image only (so no image depends on its batch), then the
  first ``max_per_img``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .detector import (WH_RATIO_CLIP, DetectorExport, _nms_problems, decode,
                       nms_groups, rank_in_image)

SUPPORTED = {
    'RetinaNet': ('RetinaHead', 'DeltaXYWHBBoxCoder'),
    'FCOS': ('FCOSHead', 'DistancePointBBoxCoder'),
    'ATSS': ('ATSSHead', 'DeltaXYWHBBoxCoder'),
}


def check_exportable(detector):
    """Raise a ValueError naming what is supported unless ``detector`` is a
    single-stage detector that :class:`SingleStageExport` computes as mmdet
    does."""
    name = type(detector).__name__
    problems = []
    if name not in SUPPORTED:
        problems.append(f'detector type {name}')
    else:
        head_type, coder_type = SUPPORTED[name]
        head, cfg = detector.bbox_head, detector.test_cfg
        coder = head.bbox_coder
        checks = [
            (type(head).__name__ == head_type,
             f'{name} head {type(head).__name__} ({head_type})'),
            (head.use_sigmoid_cls, 'softmax class scores (sigmoid)'),
            (not getattr(head.loss_cls, 'custom_cls_channels', False),
             'a custom classification activation'),
            (type(coder).__name__ == coder_type and coder.clip_border
             and not getattr(coder, 'add_ctr_clamp', False),
             f'box coder {type(coder).__name__} ({coder_type}, clipped to '
             'the image)'),
            # mmdet compares it with the boxes in original image pixels,
            # which the graph does not see; 0 (positive size) holds in both.
            (cfg.get('min_bbox_size', -1) in (-1, 0),
             f'min_bbox_size={cfg.get("min_bbox_size")} (0 or none)'),
        ]
        problems += _nms_problems('test_cfg', cfg.get('nms'))
        problems += [what for ok, what in checks if not ok]
    if problems:
        raise ValueError(
            f'cannot export {"; ".join(problems)}: the single-stage export '
            'handles ' + ', '.join(f'{d} ({h}, {c})'
                                   for d, (h, c) in SUPPORTED.items()) +
            ' with sigmoid scores and plain NMS, as in mmdet\'s and this '
            "project's configs")


class SingleStageExport(nn.Module):
    """The detector as ``(images, img_shape) -> boxes, scores, labels,
    batch_index`` (module docstring); ``detector`` in eval mode."""

    task = 'detection'
    input_names = ['images', 'img_shape']
    output_names = ['boxes', 'scores', 'labels', 'batch_index']
    # The stride-64 level is 2x2 there, as in the two-stage export.
    min_size = 96

    def __init__(self, detector):
        super().__init__()
        check_exportable(detector)
        self.detector = detector.eval()

    # The two-stage export's inputs.
    example = DetectorExport.example
    dynamic_shapes = DetectorExport.dynamic_shapes

    def spec(self):
        return dict(
            task=self.task,
            max_per_img=self.detector.test_cfg.get('max_per_img'))

    def decode(self, priors, preds, img_shape):
        coder = self.detector.bbox_head.bbox_coder
        if type(coder).__name__ == 'DistancePointBBoxCoder':
            # mmdet's distance2bbox: (left, top, right, bottom) from a point
            xy = priors[..., :2]
            boxes = torch.cat([xy - preds[..., :2], xy + preds[..., 2:]], -1)
            wh = img_shape[:, None].flip(-1)
            return torch.minimum(boxes.clamp(min=0), torch.cat([wh, wh], -1))
        return decode(priors, preds, coder.means, coder.stds, WH_RATIO_CLIP,
                      img_shape[:, None])

    def forward(self, images, img_shape):
        det = self.detector
        head, cfg = det.bbox_head, det.test_cfg
        feats = det.extract_feat(images)
        outs = head(feats)
        cls_scores, preds = outs[0], outs[1]
        factors = outs[2] if len(outs) > 2 else [None] * len(cls_scores)
        priors = head.prior_generator.grid_priors(
            [s.shape[-2:] for s in cls_scores], device=images.device)
        n, num_classes = images.shape[0], head.cls_out_channels
        k = cfg.get('nms_pre', -1)
        score_thr = cfg.get('score_thr', 0)
        levels = []
        for score, pred, factor, prior in zip(cls_scores, preds, factors,
                                              priors):
            score = score.permute(0, 2, 3, 1).reshape(n, -1).sigmoid()
            pred = pred.permute(0, 2, 3, 1).reshape(n, -1, 4)
            top = score.shape[1] if k <= 0 else torch.sym_min(
                k, score.shape[1])
            score, index = score.topk(top, dim=1)
            valid = score > score_thr
            prior_index = torch.div(index, num_classes, rounding_mode='floor')
            label = index % num_classes
            pred = pred.gather(1, prior_index[..., None].expand(-1, -1, 4))
            if factor is not None:
                factor = factor.permute(0, 2, 3, 1).reshape(n, -1).sigmoid()
                score = score * factor.gather(1, prior_index)
            levels.append((score, valid, label,
                           self.decode(prior[prior_index], pred, img_shape)))
        # The levels side by side in one row per image (N, L * R).
        size = levels[0][0].shape[1]

        def row(i):
            return torch.cat([
                F.pad(lv[i],
                      (0, 0) * (lv[i].dim() - 2) + (0, size - lv[i].shape[1]))
                for lv in levels
            ], 1)

        scores, valid, labels, boxes = row(0), row(1), row(2), row(3)
        if cfg.get('min_bbox_size', -1) == 0:
            valid = valid & (boxes[..., 2:] > boxes[..., :2]).all(-1)
        nms = cfg.nms
        if nms.get('class_agnostic', False):
            shifted = boxes
        else:
            # batched_nms's offsets, from the image's own largest coordinate
            # over the boxes that take part.
            top = torch.where(valid[..., None], boxes, boxes.new_zeros(
                ())).amax(dim=(1, 2))
            shifted = boxes + (labels.to(boxes) *
                               (top[:, None] + 1))[..., None]
        image, entry = nms_groups(shifted, scores, valid, nms.iou_threshold)
        first = rank_in_image(image, n) < cfg.max_per_img
        image, entry = image[first], entry[first]
        return (boxes[image, entry], scores[image,
                                            entry], labels[image,
                                                           entry], image)
