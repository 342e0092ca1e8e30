"""A whole mmdet Faster R-CNN or Mask R-CNN as one exportable graph.

mmdet's own ``predict`` does not export on today's torch: it branches on
data (``if not valid_mask.all()``), keeps sizes in Python metadata, and runs
mmcv's NMS and RoIAlign, which have no ONNX form (and which tracing silently
drops). :class:`DetectorExport` reuses mmdet's modules for the network
(backbone, neck, RPN convs, anchor generator, RoI heads) and rewrites only
the post-processing, in tensor form with ``torchvision.ops.nms`` and
``torchvision.ops.roi_align``:

    images (N, 3, H, W), img_shape (N, 2: valid h, w)
        -> boxes (K, 4), scores (K,), labels (K,), batch_index (K,)
           [, masks (K, 28, 28): each detection's own class, sigmoid]

K counts the detections of the whole batch; each image's are in score
order and at most ``max_per_img``. Boxes are in input pixels and clipped to
the image's valid shape, as mmdet clips them; rescaling to the original
image and pasting the masks happen at run time (:mod:`mmscnet.deploy.runtime`).
Batch size, H and W are free.

The steps follow mmdet's ``RPNHead``, ``StandardRoIHead``, ``BBoxHead`` and
``multiclass_nms`` for the test config's values (``nms_pre``, IoU
thresholds, ``score_thr``, ``max_per_img``); images of a batch are kept apart
by offsetting their boxes in NMS, as mmdet keeps levels and classes apart.
"""
import math

import torch
import torch.nn as nn

# DeltaXYWHBBoxCoder.decode's default, which mmdet's heads keep.
WH_RATIO_CLIP = 16 / 1000
SUPPORTED = {
    'FasterRCNN': 'Faster R-CNN',
    'MaskRCNN': 'Mask R-CNN',
}


def check_exportable(detector):
    """Raise a ValueError naming what is supported unless ``detector`` is a
    two-stage detector of the form :class:`DetectorExport` rewrites."""
    name = type(detector).__name__
    problems = []
    if name not in SUPPORTED:
        problems.append(f'detector type {name}')
    else:
        rpn, roi = detector.rpn_head, detector.roi_head
        test_cfg = detector.test_cfg
        checks = [
            (type(rpn).__name__ == 'RPNHead' and rpn.use_sigmoid_cls,
             f'RPN head {type(rpn).__name__} (RPNHead with sigmoid scores)'),
            (type(roi).__name__ == 'StandardRoIHead',
             f'RoI head {type(roi).__name__} (StandardRoIHead)'),
            (test_cfg.rpn.get('nms', {}).get('type') == 'nms'
             and test_cfg.rcnn.get('nms', {}).get('type') == 'nms',
             'NMS type other than nms'),
        ]
        for coder in (rpn.bbox_coder, roi.bbox_head.bbox_coder):
            checks.append(
                (type(coder).__name__ == 'DeltaXYWHBBoxCoder'
                 and not coder.add_ctr_clamp and coder.clip_border,
                 f'box coder {type(coder).__name__} (DeltaXYWHBBoxCoder)'))
        for ext in [roi.bbox_roi_extractor
                    ] + ([roi.mask_roi_extractor] if roi.with_mask else []):
            checks.append((type(ext).__name__ == 'SingleRoIExtractor'
                           and type(ext.roi_layers[0]).__name__ == 'RoIAlign',
                           'RoI extractor other than SingleRoIExtractor with '
                           'RoIAlign'))
        if roi.bbox_head.custom_cls_channels:
            checks.append((False, 'a custom classification activation'))
        if roi.with_mask:
            checks.append(
                (type(roi.mask_head).__name__ == 'FCNMaskHead',
                 f'mask head {type(roi.mask_head).__name__} (FCNMaskHead)'))
        problems += [what for ok, what in checks if not ok]
    if problems:
        raise ValueError(
            f'cannot export {"; ".join(problems)}: the detector export '
            f'handles {" and ".join(SUPPORTED.values())} '
            f'({", ".join(SUPPORTED)}) with RPNHead, StandardRoIHead, '
            'DeltaXYWHBBoxCoder, RoIAlign and plain NMS, as in mmdet\'s and '
            "this project's configs")


def decode(priors, deltas, means, stds, wh_ratio_clip, max_hw):
    """mmdet's ``delta2bbox`` (same operation order), broadcasting over the
    leading dims; boxes clipped to ``max_hw`` (..., 2: h, w) of each row."""
    d = deltas * deltas.new_tensor(stds) + deltas.new_tensor(means)
    pxy = (priors[..., :2] + priors[..., 2:]) * 0.5
    pwh = priors[..., 2:] - priors[..., :2]
    max_ratio = abs(math.log(wh_ratio_clip))
    gxy = pxy + pwh * d[..., :2]
    gwh = pwh * d[..., 2:].clamp(min=-max_ratio, max=max_ratio).exp()
    boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
    wh = max_hw.flip(-1)
    return torch.minimum(boxes.clamp(min=0), torch.cat([wh, wh], -1))


def nms_per_group(boxes, scores, groups, iou_threshold):
    """Indices kept by NMS within each group id, in descending score order.

    Groups are kept apart by offsetting the boxes (mmdet's ``batched_nms``);
    the sort after NMS makes the order the same in every runtime."""
    from torchvision.ops import nms
    top = torch.cat([boxes.flatten(), boxes.new_zeros(1)]).max() + 1
    keep = nms(boxes + (groups.to(boxes) * top)[:, None], scores,
               iou_threshold)
    # NMS keeps at most its input; saying so keeps the exporter's bounds on
    # later sizes finite.
    torch._check(keep.shape[0] <= boxes.shape[0])
    return keep[scores[keep].argsort(descending=True)]


def first_per_image(batch_index, num_images, k):
    """Mask of the first ``k`` entries of each image, for entries already in
    descending score order."""
    same = batch_index[:, None] == torch.arange(
        num_images, device=batch_index.device)[None]
    rank = same.long().cumsum(0).gather(1, batch_index[:, None])[:, 0] - 1
    return rank < k


class DetectorExport(nn.Module):
    """The detector as ``(images, img_shape) -> boxes, scores, labels,
    batch_index[, masks]`` (module docstring); ``detector`` in eval mode."""

    task = 'detection'
    input_names = ['images', 'img_shape']
    # The stride-64 level is 2x2 here; at 1x1 the exporter would fix sizes.
    min_size = 96

    def __init__(self, detector):
        super().__init__()
        check_exportable(detector)
        self.detector = detector.eval()
        self.with_mask = detector.roi_head.with_mask

    @property
    def output_names(self):
        return ['boxes', 'scores', 'labels', 'batch_index'
                ] + (['masks'] if self.with_mask else [])

    def example(self, n, h, w):
        return (torch.randn(n, 3, h, w),
                torch.tensor([[h, w]] * n, dtype=torch.float32))

    def dynamic_shapes(self, max_batch=64, max_size=4096):
        dim = torch.export.Dim
        batch = dim('batch', min=1, max=max_batch)
        return ({
            0: batch,
            2: dim('height', min=self.min_size, max=max_size),
            3: dim('width', min=self.min_size, max=max_size)
        }, {
            0: batch
        })

    def spec(self):
        """What the runtime needs besides preprocessing."""
        rcnn = self.detector.test_cfg.rcnn
        return dict(
            task=self.task, mask_thr_binary=rcnn.get('mask_thr_binary', 0.5))

    def forward(self, images, img_shape):
        det = self.detector
        feats = det.extract_feat(images)
        rois = self.proposals(feats, img_shape)
        boxes, scores, labels, batch = self.detections(feats, rois, img_shape)
        if not self.with_mask:
            return boxes, scores, labels, batch
        head = det.roi_head
        mask_feats = self.roi_features(
            head.mask_roi_extractor, feats,
            torch.cat([batch[:, None].to(boxes), boxes], dim=1))
        mask_pred = head.mask_head(mask_feats)
        masks = mask_pred[torch.arange(labels.shape[0]), labels].sigmoid()
        return boxes, scores, labels, batch, masks

    def proposals(self, feats, img_shape):
        """RPNHead.predict as rois (K, 5: batch index, x1, y1, x2, y2)."""
        rpn, cfg = self.detector.rpn_head, self.detector.test_cfg.rpn
        cls_scores, deltas = rpn(feats)
        priors = rpn.prior_generator.grid_priors(
            [s.shape[-2:] for s in cls_scores], device=feats[0].device)
        n = feats[0].shape[0]
        all_boxes, all_scores, all_levels = [], [], []
        coder = rpn.bbox_coder
        for level, (score, delta,
                    prior) in enumerate(zip(cls_scores, deltas, priors)):
            score = score.permute(0, 2, 3, 1).reshape(n, -1).sigmoid()
            delta = delta.permute(0, 2, 3, 1).reshape(n, -1, 4)
            k = cfg.get('nms_pre', -1)
            if k > 0:
                k = torch.sym_min(k, score.shape[1])
                score, index = score.topk(k, dim=1)
                delta = delta.gather(1, index[..., None].expand(-1, -1, 4))
                prior = prior[index]
            else:
                prior = prior.expand(n, -1, -1)
            all_boxes.append(
                decode(prior, delta, coder.means, coder.stds, WH_RATIO_CLIP,
                       img_shape[:, None]))
            all_scores.append(score)
            all_levels.append(torch.full_like(score, level, dtype=torch.long))
        boxes = torch.cat(all_boxes, 1).reshape(-1, 4)
        scores = torch.cat(all_scores, 1)
        batch = torch.arange(n)[:, None].expand_as(scores).reshape(-1)
        scores = scores.reshape(-1)
        levels = torch.cat(all_levels, 1).reshape(-1)
        min_size = cfg.get('min_bbox_size', -1)
        if min_size >= 0:
            wh = boxes[:, 2:] - boxes[:, :2]
            valid = (wh > min_size).all(dim=1)
            boxes, scores = boxes[valid], scores[valid]
            levels, batch = levels[valid], batch[valid]
        keep = nms_per_group(boxes, scores,
                             batch * len(feats) + levels,
                             cfg.nms.iou_threshold)
        keep = keep[first_per_image(batch[keep], n, cfg.max_per_img)]
        return torch.cat([batch[keep, None].to(boxes), boxes[keep]], dim=1)

    def roi_features(self, extractor, feats, rois):
        """SingleRoIExtractor's features: every RoI pooled on every level it
        could map to, then its own level's taken (no data-dependent split).
        """
        from torchvision.ops import roi_align
        num_levels = len(extractor.featmap_strides)
        wh = rois[:, 3:] - rois[:, 1:3]
        scale = torch.sqrt(wh[:, 0] * wh[:, 1])
        level = torch.floor(torch.log2(scale / extractor.finest_scale + 1e-6))
        level = level.clamp(min=0, max=num_levels - 1).long()
        out = None
        for i, layer in enumerate(extractor.roi_layers[:num_levels]):
            pooled = roi_align(feats[i], rois, layer.output_size,
                               layer.spatial_scale, layer.sampling_ratio,
                               layer.aligned)
            pick = (level == i)[:, None, None, None]
            out = pooled * pick if out is None else torch.where(
                pick, pooled, out)
        return out

    def detections(self, feats, rois, img_shape):
        """BBoxHead.predict_by_feat and multiclass_nms, for the whole batch.
        """
        head = self.detector.roi_head.bbox_head
        cfg = self.detector.test_cfg.rcnn
        cls_score, bbox_pred = head(
            self.roi_features(self.detector.roi_head.bbox_roi_extractor, feats,
                              rois))
        scores = cls_score.softmax(-1)[:, :-1]
        num_rois, num_classes = scores.shape
        per_class = 1 if head.reg_class_agnostic else num_classes
        batch = rois[:, 0].long()
        coder = head.bbox_coder
        boxes = decode(rois[:, None, 1:], bbox_pred.reshape(-1, per_class,
                                                            4), coder.means,
                       coder.stds, WH_RATIO_CLIP, img_shape[batch][:, None])
        boxes = boxes.expand(-1, num_classes, -1).reshape(-1, 4)
        labels = torch.arange(num_classes).repeat(num_rois)
        batch = batch.repeat_interleave(num_classes)
        scores = scores.reshape(-1)
        valid = scores > cfg.score_thr
        boxes, scores = boxes[valid], scores[valid]
        labels, batch = labels[valid], batch[valid]
        keep = nms_per_group(boxes, scores, batch * num_classes + labels,
                             cfg.nms.iou_threshold)
        keep = keep[first_per_image(batch[keep], img_shape.shape[0],
                                    cfg.max_per_img)]
        return boxes[keep], scores[keep], labels[keep], batch[keep]
