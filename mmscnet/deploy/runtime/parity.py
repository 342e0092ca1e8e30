"""The one parity metric of exported models: the runtime's predictions for
some images against the library's own ``predict`` on the same images, both
in the runtime's result format (:mod:`mmscnet.deploy.runtime`). numpy only.

Detections are matched one to one. A PyTorch detection and a runtime one
match exactly when they have the same label, box IoU >= ``iou``, scores
within ``score`` and, with masks, mask IoU >= ``mask_iou``. Both sides must
have as many detections. Where they do not all match, each detection left
over on either side must be a *near-tie*:

- the other side has a detection of the same label with IoU >= 0.5 and a
  score within ``tie_score`` (1e-5) of it: in a cluster of boxes whose
  scores differ by about 1e-6, NMS kept that neighbour instead; or
- the list is full (``max_per_img`` detections) and its score is within
  ``tie_score`` of the other side's lowest: which of two equal scores makes
  the cut is a matter of order; or
- PyTorch's proposal list (the RPN's, two-stage detectors) was full and cut
  within ``tie_score`` of a tie (``proposal_cut_gap`` in PyTorch's results,
  from the library's adapter), and a detection left over on the other side
  has the same label and IoU >= 0.5: rounding decided which of the two
  proposals at the cut reached the second stage, and the detection is the
  other proposal's, whose score may differ more than ``tie_score``.

At least ``min_exact`` (98.5%) of the detections must match exactly, and
with fewer than 1 / (1 - min_exact) detections (67) all of them must.

Classification: every score within ``score`` (1e-5) of PyTorch's and the
same top-1 label, except where PyTorch's two labels' scores are within
twice that of each other (a near-tie, which rounding may turn).

Raw outputs (the backbone's stage maps):
:func:`max_rel_diff`, ``max |runtime - library| / max |library|``.

Segmentation: the logits (or the binary head's probabilities) within
``rel`` of the largest, relative; a pixel whose label differs is allowed
only where PyTorch's scores of the two labels are within twice that
tolerance of each other (or a probability that close to the threshold).
"""
import numpy as np

DET_BOUNDS = dict(
    iou=0.99,
    score=1e-4,
    mask_iou=0.99,
    tie_score=1e-5,
    tie_iou=0.5,
    min_exact=0.985)
SEG_BOUNDS = dict(rel=1e-4)
CLS_BOUNDS = dict(score=1e-5)


def box_iou(box, boxes):
    """IoU of one (x1, y1, x2, y2) box with each of ``boxes`` (K, 4)."""
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(np.clip(box[2:] - box[:2], 0, None))
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    return inter / np.maximum(area + areas - inter, 1e-12)


def mask_iou(a, b):
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _empty_report():
    """A detection report before any detection: counts zero, the worst
    differences at their best values."""
    return dict(
        count=0,
        exact=0,
        near_ties=0,
        score_diff=0.0,
        box_iou=1.0,
        mask_iou=1.0,
        problems=[])


def match_detections(ref, got, max_per_img=None, bounds=DET_BOUNDS):
    """Matches one image's detections (dicts of labels, scores, bboxes and
    optionally masks). Returns a report dict: ``count`` (PyTorch's),
    ``exact``, ``near_ties``, the worst ``score_diff``, ``box_iou`` and
    ``mask_iou`` of the exact matches, and ``problems``, a list of what
    breaks the rule (empty when the image passes)."""
    b = bounds
    r_lab, g_lab = np.asarray(ref['labels']), np.asarray(got['labels'])
    r_sc = np.asarray(ref['scores'], np.float64)
    g_sc = np.asarray(got['scores'], np.float64)
    r_box = np.asarray(ref['bboxes'], np.float64).reshape(-1, 4)
    g_box = np.asarray(got['bboxes'], np.float64).reshape(-1, 4)
    masks = 'masks' in ref and 'masks' in got
    report = dict(_empty_report(), count=len(r_sc), runtime_count=len(g_sc))
    problems = report['problems']
    if len(r_sc) != len(g_sc):
        problems.append(f'{len(r_sc)} detections in PyTorch, {len(g_sc)} in '
                        'the runtime')
    taken = np.zeros(len(g_sc), dtype=bool)
    ref_left = []
    for i in np.argsort(-r_sc, kind='stable'):
        iou = box_iou(r_box[i], g_box)
        ok = (~taken) & (g_lab == r_lab[i]) & (iou >= b['iou']) & (
            np.abs(g_sc - r_sc[i]) <= b['score'])
        cand = np.flatnonzero(ok)
        if masks:
            cand = [
                j for j in cand
                if mask_iou(ref['masks'][i], got['masks'][j]) >= b['mask_iou']
            ]
        if not len(cand):
            ref_left.append(i)
            continue
        j = max(cand, key=lambda j: iou[j])
        taken[j] = True
        report['exact'] += 1
        report['score_diff'] = max(report['score_diff'],
                                   abs(float(g_sc[j] - r_sc[i])))
        report['box_iou'] = min(report['box_iou'], float(iou[j]))
        if masks:
            report['mask_iou'] = min(
                report['mask_iou'], mask_iou(ref['masks'][i], got['masks'][j]))
    got_left = list(np.flatnonzero(~taken))
    cut_tie = ref.get('proposal_cut_gap', np.inf) <= b['tie_score']

    def near_tie(score, label, box, o_sc, o_lab, o_box, o_left):
        same = (o_lab == label) & (np.abs(o_sc - score) <= b['tie_score'])
        if same.any() and (box_iou(box, o_box[same]) >= b['tie_iou']).any():
            return True
        if cut_tie and len(o_left):
            o_left = np.asarray(o_left)
            swapped = o_left[o_lab[o_left] == label]
            if (box_iou(box, o_box[swapped]) >= b['tie_iou']).any():
                return True
        full = max_per_img is not None and len(o_sc) >= max_per_img
        return bool(
            full and len(o_sc) and score <= o_sc.min() + b['tie_score'])

    for side, left, sc, lab, box, o in (('PyTorch', ref_left, r_sc, r_lab,
                                         r_box, (g_sc, g_lab, g_box,
                                                 got_left)),
                                        ('runtime', got_left, g_sc, g_lab,
                                         g_box, (r_sc, r_lab, r_box,
                                                 ref_left))):
        for i in left:
            if near_tie(sc[i], lab[i], box[i], *o):
                report['near_ties'] += 1
            else:
                problems.append(
                    f'{side} detection label {int(lab[i])} score '
                    f'{sc[i]:.6f} box {np.round(box[i], 2).tolist()} has no '
                    'match and is no near-tie')
    return report


def detection_parity(refs, gots, max_per_img=None, bounds=DET_BOUNDS):
    """:func:`match_detections` over images, summed: the report of the
    whole set, whose ``problems`` name the image index."""
    total = dict(_empty_report(), images=len(refs))
    if len(refs) != len(gots):
        total['problems'].append(
            f'{len(refs)} images in PyTorch, {len(gots)} in the runtime')
    for k, (ref, got) in enumerate(zip(refs, gots)):
        r = match_detections(ref, got, max_per_img, bounds)
        for key in ('count', 'exact', 'near_ties'):
            total[key] += r[key]
        total['score_diff'] = max(total['score_diff'], r['score_diff'])
        total['box_iou'] = min(total['box_iou'], r['box_iou'])
        total['mask_iou'] = min(total['mask_iou'], r['mask_iou'])
        total['problems'] += [f'image {k}: {p}' for p in r['problems']]
    count = total['count']
    if count and total['exact'] < bounds['min_exact'] * count:
        total['problems'].append(
            f'{total["exact"]} of {total["count"]} detections matched '
            f'exactly, fewer than {bounds["min_exact"]:.1%}')
    return total


def segmentation_parity(refs, gots, threshold=None, bounds=SEG_BOUNDS):
    """The report of segmentation results (dicts of logits (C, H, W) and
    sem_seg (H, W)): ``rel`` (largest logit difference relative to the
    largest logit), ``agree`` (fraction of equal labels) and
    ``problems``. ``threshold``: the binary head's."""
    total = dict(images=len(refs), rel=0.0, agree=1.0, problems=[])
    if len(refs) != len(gots):
        total['problems'].append(
            f'{len(refs)} images in PyTorch, {len(gots)} in the runtime')
    pixels = same = 0
    for k, (ref, got) in enumerate(zip(refs, gots)):
        r, g = np.asarray(ref['logits']), np.asarray(got['logits'])
        if r.shape != g.shape:
            total['problems'].append(
                f'image {k}: logits of shape {r.shape} in PyTorch, '
                f'{g.shape} in the runtime')
            continue
        scale = max(float(np.abs(r).max()), 1e-12)
        rel = float(np.abs(g - r).max()) / scale
        total['rel'] = max(total['rel'], rel)
        if rel > bounds['rel']:
            total['problems'].append(
                f'image {k}: logits differ by {rel:.2e} of the largest, more '
                f'than {bounds["rel"]:.0e}')
        r_lab, g_lab = np.asarray(ref['sem_seg']), np.asarray(got['sem_seg'])
        differ = r_lab != g_lab
        pixels += differ.size
        same += int((~differ).sum())
        if not differ.any():
            continue
        tol = 2 * bounds['rel'] * scale
        if r.shape[0] == 1:  # probabilities against the threshold
            gap = np.abs(r[0][differ] - threshold)
        else:
            ys, xs = np.nonzero(differ)
            gap = np.abs(r[r_lab[differ], ys, xs] - r[g_lab[differ], ys, xs])
        if (gap > tol).any():
            total['problems'].append(
                f'image {k}: {int((gap > tol).sum())} pixels labelled '
                'otherwise where PyTorch is not near a tie')
    total['agree'] = same / pixels if pixels else 1.0
    return total


def classification_parity(refs, gots, bounds=CLS_BOUNDS):
    """The report of classification results (dicts of scores (C, ) and
    label): ``score_diff`` (the largest score difference), ``same_label``
    (images of equal top-1) and ``problems``."""
    total = dict(images=len(refs), score_diff=0.0, same_label=0, problems=[])
    if len(refs) != len(gots):
        total['problems'].append(
            f'{len(refs)} images in PyTorch, {len(gots)} in the runtime')
    for k, (ref, got) in enumerate(zip(refs, gots)):
        r, g = np.asarray(ref['scores']), np.asarray(got['scores'])
        if r.shape != g.shape:
            total['problems'].append(
                f'image {k}: {r.shape[0]} scores in PyTorch, {g.shape[0]} in '
                'the runtime')
            continue
        diff = float(np.abs(g - r).max())
        total['score_diff'] = max(total['score_diff'], diff)
        if diff > bounds['score']:
            total['problems'].append(
                f'image {k}: scores differ by {diff:.2e}, more than '
                f'{bounds["score"]:.0e}')
        a, b = int(ref['label']), int(got['label'])
        if a == b:
            total['same_label'] += 1
        elif abs(float(r[a]) - float(r[b])) > 2 * bounds['score']:
            total['problems'].append(
                f'image {k}: top-1 label {b} in the runtime, {a} in PyTorch, '
                f'whose scores of the two ({r[a]:.6f}, {r[b]:.6f}) are not '
                'a near-tie')
    return total


def summary(report):
    """One line of a parity report."""
    if 'same_label' in report:
        return (f'{report["images"]} images: scores within '
                f'{report["score_diff"]:.2e}, top-1 equal in '
                f'{report["same_label"]}')
    if 'agree' in report:
        return (f'{report["images"]} images: logits within '
                f'{report["rel"]:.2e} of the largest, labels '
                f'{report["agree"]:.4%} equal')
    return (f'{report["images"]} images, {report["count"]} detections: '
            f'{report["exact"]} matched exactly, {report["near_ties"]} '
            f'near-ties; scores within {report["score_diff"]:.2e}, box IoU '
            f'>= {report["box_iou"]:.4f}, mask IoU >= '
            f'{report["mask_iou"]:.4f}')


def max_rel_diff(ref, got):
    """Largest ``max |got - ref| / max |ref|`` over paired output arrays (the
    library's ``ref``, a runtime's ``got``)."""
    if len(got) != len(ref):
        raise ValueError(f'the runtime gave {len(got)} outputs, the library '
                         f'{len(ref)}: not the same model')
    worst = 0.0
    for g, r in zip(got, ref):
        g, r = np.asarray(g, np.float64), np.asarray(r, np.float64)
        if g.shape != r.shape:
            raise ValueError(f'output shapes differ: runtime {g.shape}, '
                             f'library {r.shape}')
        worst = max(worst,
                    float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-12)))
    return worst
