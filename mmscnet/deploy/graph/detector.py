"""A whole mmdet Faster R-CNN, Mask R-CNN or Cascade (Mask) R-CNN as one
exportable graph.

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

The steps follow mmdet's ``RPNHead``, ``StandardRoIHead`` (or
``CascadeRoIHead``), ``BBoxHead`` and ``multiclass_nms`` for the test
config's values (``nms_pre``, IoU thresholds, ``score_thr``,
``max_per_img``). NMS runs per group (an image
and an FPN level in the RPN, an image and a class in the R-CNN), as ONNX's
NonMaxSuppression runs it (:mod:`mmscnet.deploy.graph.ops`), so that no image's
detections depend on the batch it came in.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .onnx import image_dims

# DeltaXYWHBBoxCoder.decode's default, which mmdet's heads keep.
WH_RATIO_CLIP = 16 / 1000
SUPPORTED = {
    'FasterRCNN': 'Faster R-CNN',
    'MaskRCNN': 'Mask R-CNN',
    'CascadeRCNN': 'Cascade (Mask) R-CNN',
}
# The RoI head each detector type is exported with.
ROI_HEADS = {
    'FasterRCNN': 'StandardRoIHead',
    'MaskRCNN': 'StandardRoIHead',
    'CascadeRCNN': 'CascadeRoIHead',
}


def stages(module_or_list):
    """A cascade's per-stage modules (a ModuleList) or a standard head's one
    module, as a list."""
    if isinstance(module_or_list, nn.ModuleList):
        return list(module_or_list)
    return [module_or_list]


# Keys of an NMS config that mmcv's ``batched_nms`` and ``nms`` read and the
# graph computes as they do; any other (``offset``, ``max_num``, a score
# threshold of NMS's own) is refused.
NMS_KEYS = ('type', 'iou_threshold', 'class_agnostic', 'split_thr')


def _nms_problems(stage, nms):
    if not nms or nms.get('type') != 'nms':
        return [f'{stage} NMS type {(nms or {}).get("type")!r} (nms)']
    return [
        f'{stage} NMS argument {k}={nms[k]!r} (the graph takes '
        f'{", ".join(NMS_KEYS)})' for k in nms if k not in NMS_KEYS
    ]


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
        roi_type = ROI_HEADS[name]
        checks = [
            (type(rpn).__name__ == 'RPNHead' and rpn.use_sigmoid_cls,
             f'RPN head {type(rpn).__name__} (RPNHead with sigmoid scores)'),
            (type(roi).__name__ == roi_type,
             f'RoI head {type(roi).__name__} ({roi_type})'),
        ]
        problems += _nms_problems('rpn', test_cfg.rpn.get('nms'))
        problems += _nms_problems('rcnn', test_cfg.rcnn.get('nms'))
        if problems or not checks[1][0]:
            problems += [what for ok, what in checks if not ok]
            raise_problems(problems)
        bbox_heads = stages(roi.bbox_head)
        for coder in [rpn.bbox_coder] + [h.bbox_coder for h in bbox_heads]:
            checks.append(
                (type(coder).__name__ == 'DeltaXYWHBBoxCoder'
                 and not coder.add_ctr_clamp and coder.clip_border,
                 f'box coder {type(coder).__name__} (DeltaXYWHBBoxCoder)'))
        extractors = stages(roi.bbox_roi_extractor) + (
            stages(roi.mask_roi_extractor) if roi.with_mask else [])
        for ext in extractors:
            layer = ext.roi_layers[0] if hasattr(ext, 'roi_layers') else None
            checks.append((type(ext).__name__ == 'SingleRoIExtractor'
                           and type(layer).__name__ == 'RoIAlign',
                           'RoI extractor other than SingleRoIExtractor with '
                           'RoIAlign'))
            if type(layer).__name__ == 'RoIAlign':
                # torchvision's roi_align, which the graph runs, averages.
                checks.append((layer.pool_mode == 'avg',
                               f'RoIAlign pool_mode={layer.pool_mode!r} '
                               "(pool_mode='avg')"))
        if any(h.custom_cls_channels or h.custom_activation
               for h in bbox_heads):
            checks.append((False, 'a custom classification activation'))
        if roi.with_mask:
            for head in stages(roi.mask_head):
                checks.append(
                    (type(head).__name__ == 'FCNMaskHead',
                     f'mask head {type(head).__name__} (FCNMaskHead)'))
            thr = test_cfg.rcnn.get('mask_thr_binary', 0.5)
            # mmdet's negative threshold gives uint8 soft masks for debugging.
            checks.append((thr >= 0, f'mask_thr_binary={thr} (at least 0: '
                           'binary masks)'))
        problems += list(dict.fromkeys(what for ok, what in checks if not ok))
    raise_problems(problems)


def raise_problems(problems):
    if problems:
        raise ValueError(
            f'cannot export {"; ".join(problems)}: the detector export '
            f'handles {", ".join(SUPPORTED.values())} '
            f'({", ".join(SUPPORTED)}) with RPNHead, StandardRoIHead or '
            'CascadeRoIHead, DeltaXYWHBBoxCoder, RoIAlign (average pooling) '
            "and plain NMS, as in mmdet's and this project's configs; the "
            'single-stage export, RetinaNet, FCOS and ATSS')


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


def rank_in_image(batch_index, num_images):
    """Each entry's rank among the entries of its image, in the order given.
    """
    same = batch_index[:, None] == torch.arange(
        num_images, device=batch_index.device)[None]
    return same.long().cumsum(0).gather(1, batch_index[:, None])[:, 0] - 1


def nms_groups(boxes, scores, valid, iou_threshold):
    """Indices (group, entry) kept by NMS within each group of ``boxes``
    (G, R, 4) among the ``valid`` entries (G, R), in descending score order.
    Entries that are not valid take part as zero boxes, which suppress
    nothing, and are dropped after."""
    from mmscnet.deploy.graph.ops import grouped_nms
    boxes = torch.where(valid[..., None], boxes, boxes.new_zeros(()))
    keep = grouped_nms(boxes, scores, iou_threshold)
    group, entry = keep[:, 0], keep[:, 1]
    ok = valid[group, entry]
    group, entry = group[ok], entry[ok]
    # The sort makes the order the same in every runtime.
    order = scores[group, entry].argsort(descending=True)
    return group[order], entry[order]


class DetectorExport(nn.Module):
    """The detector as ``(images, img_shape) -> boxes, scores, labels,
    batch_index[, masks]`` (module docstring); ``detector`` in eval mode."""

    task = 'detection'
    input_names = ['images', 'img_shape']
    # The smallest input the graph takes: the stride-64 level is 2x2 there.
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
        images = image_dims(self.min_size, max_batch, max_size)
        return (images, {0: images[0]})  # img_shape: one row per image

    def spec(self):
        """What the runtime needs besides preprocessing."""
        rcnn = self.detector.test_cfg.rcnn
        return dict(
            task=self.task,
            mask_thr_binary=rcnn.get('mask_thr_binary', 0.5),
            max_per_img=rcnn.get('max_per_img'))

    def forward(self, images, img_shape):
        det = self.detector
        feats = det.extract_feat(images)
        rois, rank = self.proposals(feats, img_shape)
        boxes, scores, labels, batch = self.detections(feats, rois, rank,
                                                       img_shape)
        if not self.with_mask:
            return boxes, scores, labels, batch
        roi = det.roi_head
        mask_rois = torch.cat([batch[:, None].to(boxes), boxes], dim=1)
        index = torch.arange(labels.shape[0])
        # A cascade averages its stages' sigmoid masks (mmdet's
        # merge_aug_masks), here of each detection's own class only.
        masks = []
        for ext, head in zip(
                stages(roi.mask_roi_extractor), stages(roi.mask_head)):
            pred = head(self.roi_features(ext, feats, mask_rois))
            # A class-agnostic head has one mask for every class.
            pred = pred[:, 0] if head.class_agnostic else pred[index, labels]
            masks.append(pred.sigmoid())
        masks = masks[0] if len(masks) == 1 else torch.stack(masks).mean(0)
        return boxes, scores, labels, batch, masks

    def proposals(self, feats, img_shape):
        """RPNHead.predict: rois (K, 5: image, x1, y1, x2, y2) and each one's
        rank in its image, at most ``max_per_img`` per image."""
        rpn, cfg = self.detector.rpn_head, self.detector.test_cfg.rpn
        cls_scores, deltas = rpn(feats)
        priors = rpn.prior_generator.grid_priors(
            [s.shape[-2:] for s in cls_scores], device=feats[0].device)
        n = feats[0].shape[0]
        coder = rpn.bbox_coder
        levels = []
        for score, delta, prior in zip(cls_scores, deltas, priors):
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
            levels.append((score,
                           decode(prior, delta, coder.means, coder.stds,
                                  WH_RATIO_CLIP, img_shape[:, None])))
        # Levels side by side (N, L, R): the first is the largest.
        size = levels[0][0].shape[1]
        scores = torch.stack(
            [F.pad(s, (0, size - s.shape[1])) for s, _ in levels], 1)
        boxes = torch.stack(
            [F.pad(b, (0, 0, 0, size - b.shape[1])) for _, b in levels], 1)
        valid = torch.stack([
            F.pad(
                torch.ones_like(s, dtype=torch.bool), (0, size - s.shape[1]))
            for s, _ in levels
        ], 1)
        min_size = cfg.get('min_bbox_size', -1)
        if min_size >= 0:
            wh = boxes[..., 2:] - boxes[..., :2]
            valid = valid & (wh > min_size).all(dim=-1)
        num_levels = len(levels)
        if cfg.nms.get('class_agnostic', False):  # levels merged
            group_shape = (n, num_levels * size)
        else:  # mmdet's batched_nms over level ids, per image
            group_shape = (n * num_levels, size)
        group, entry = nms_groups(
            boxes.reshape(*group_shape, 4), scores.reshape(group_shape),
            valid.reshape(group_shape), cfg.nms.iou_threshold)
        flat = group * group_shape[1] + entry  # into (N, L * R)
        image = torch.div(flat, num_levels * size, rounding_mode='floor')
        rank = rank_in_image(image, n)
        first = rank < cfg.max_per_img
        flat, image, rank = flat[first], image[first], rank[first]
        rois = torch.cat(
            [image[:, None].to(boxes),
             boxes.reshape(-1, 4)[flat]], dim=1)
        return rois, rank

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

    def rcnn(self, feats, rois, img_shape):
        """The R-CNN stage on ``rois``: the RoIs the last head saw, its class
        logits and box deltas, and that head. A cascade runs as
        CascadeRoIHead._refine_roi: each stage's boxes (of its best class
        where the regression is per class) are the next stage's RoIs, and
        the logits are the mean of the stages'."""
        roi = self.detector.roi_head
        heads = stages(roi.bbox_head)
        logits = []
        for i, (head,
                ext) in enumerate(zip(heads, stages(roi.bbox_roi_extractor))):
            cls_score, bbox_pred = head(self.roi_features(ext, feats, rois))
            logits.append(cls_score)
            if i == len(heads) - 1:
                break
            if not head.reg_class_agnostic:
                label = cls_score[:, :-1].argmax(dim=1)
                bbox_pred = bbox_pred.reshape(-1, head.num_classes,
                                              4)[torch.arange(label.shape[0]),
                                                 label]
            coder = head.bbox_coder
            boxes = decode(rois[:, 1:], bbox_pred, coder.means, coder.stds,
                           WH_RATIO_CLIP, img_shape[rois[:, 0].long()])
            rois = torch.cat([rois[:, :1], boxes], dim=1)
        # mmdet's sum() / stages, from 0 as Python's sum starts.
        cls_score = logits[0] if len(logits) == 1 else sum(logits) / float(
            len(logits))
        return rois, cls_score, bbox_pred, heads[-1]

    def detections(self, feats, rois, rank, img_shape):
        """BBoxHead.predict_by_feat and multiclass_nms, per image."""
        cfg = self.detector.test_cfg.rcnn
        rois, cls_score, bbox_pred, head = self.rcnn(feats, rois, img_shape)
        scores = cls_score.softmax(-1)[:, :-1]
        num_rois, num_classes = scores.shape
        per_class = 1 if head.reg_class_agnostic else num_classes
        image = rois[:, 0].long()
        coder = head.bbox_coder
        boxes = decode(rois[:, None, 1:], bbox_pred.reshape(-1, per_class,
                                                            4), coder.means,
                       coder.stds, WH_RATIO_CLIP, img_shape[image][:, None])
        boxes = boxes.expand(-1, num_classes, -1)
        # Each image's RoIs in a row of its own (N, P, C), P the RPN's most.
        n, p = img_shape.shape[0], self.detector.test_cfg.rpn.max_per_img
        where = (image, rank)
        dense_boxes = boxes.new_zeros(n, p, num_classes,
                                      4).index_put(where, boxes)
        dense_scores = scores.new_zeros(n, p,
                                        num_classes).index_put(where, scores)
        valid = torch.zeros_like(
            dense_scores, dtype=torch.bool).index_put(where, scores
                                                      > cfg.score_thr)
        if cfg.nms.get('class_agnostic', False):  # one group per image
            group, entry = nms_groups(
                dense_boxes.reshape(n, p * num_classes, 4),
                dense_scores.reshape(n, -1), valid.reshape(n, -1),
                cfg.nms.iou_threshold)
            image, label = group, entry % num_classes
            roi = torch.div(entry, num_classes, rounding_mode='floor')
        else:  # one group per image and class
            group, entry = nms_groups(
                dense_boxes.permute(0, 2, 1, 3).reshape(-1, p, 4),
                dense_scores.permute(0, 2, 1).reshape(-1, p),
                valid.permute(0, 2, 1).reshape(-1, p), cfg.nms.iou_threshold)
            image = torch.div(group, num_classes, rounding_mode='floor')
            label, roi = group % num_classes, entry
        first = rank_in_image(image, n) < cfg.max_per_img
        image, label, roi = image[first], label[first], roi[first]
        return (dense_boxes[image, roi,
                            label], dense_scores[image, roi,
                                                 label], label, image)
