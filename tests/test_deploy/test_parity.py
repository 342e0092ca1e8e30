"""The parity rule of exported detectors (mmscnet/deploy/runtime/parity.py):
one to one, exact within the bounds, and every detection left over a
near-tie by one of its three stated cases, or the report names it."""
import numpy as np

from mmscnet.deploy.runtime.parity import (DET_BOUNDS, detection_parity,
                                           match_detections)


def dets(boxes, scores, labels=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return dict(
        bboxes=boxes,
        scores=np.asarray(scores, np.float32),
        labels=np.zeros(len(boxes), np.int64)
        if labels is None else np.asarray(labels))


A = [10, 10, 50, 30]
B = [10, 14, 50, 34]  # IoU with A: 0.67
FAR = [100, 100, 140, 120]


def test_exact_and_one_to_one():
    ref = dets([A, FAR], [0.9, 0.8])
    r = match_detections(ref, dets([A, FAR], [0.9 + 5e-5, 0.8]))
    assert (r['exact'], r['near_ties'], r['problems']) == (2, 0, [])
    # A duplicate in the runtime is not matched twice: a count difference
    # and a left-over detection with no tie.
    r = match_detections(ref, dets([A, A, FAR], [0.9, 0.9, 0.8]))
    assert r['exact'] == 2
    assert r['problems'][0] == '2 detections in PyTorch, 3 in the runtime'
    # Out of the bounds: score, label, box (IoU 0.95; its score 5e-5 off,
    # beyond a tie's, since at an equal score it would be an NMS neighbour).
    for got in (dets([A, FAR], [0.9 + 2e-4, 0.8]),
                dets([A, FAR], [0.9, 0.8], labels=[1, 0]),
                dets([[10, 10, 50, 31], FAR], [0.9 + 5e-5, 0.8])):
        r = match_detections(ref, got)
        assert r['exact'] == 1 and len(r['problems']) == 2, r


def test_nms_neighbour_tie():
    # NMS kept B (score 1e-6 below A's) in the runtime, A in PyTorch.
    ref, got = dets([A], [0.5]), dets([B], [0.5 - 1e-6])
    r = match_detections(ref, got)
    assert (r['exact'], r['near_ties'], r['problems']) == (0, 2, [])
    # The same boxes 1e-4 apart in score are no tie.
    r = match_detections(ref, dets([B], [0.5 - 1e-4]))
    assert len(r['problems']) == 2 and r['near_ties'] == 0


def test_full_list_tail_tie():
    ref = dets([A, FAR], [0.9, 0.30000])
    got = dets([A, [200, 200, 240, 220]], [0.9, 0.30000 + 2e-6])
    assert match_detections(ref, got)['problems']  # the list is not full
    r = match_detections(ref, got, max_per_img=2)
    assert (r['exact'], r['near_ties'], r['problems']) == (1, 2, [])
    # Above the other side's lowest by more than the tolerance: no tie.
    got = dets([A, [200, 200, 240, 220]], [0.9, 0.3001])
    assert match_detections(ref, got, max_per_img=2)['problems']


def test_proposal_cut_tie():
    # The RPN list was cut between two proposals 1e-7 apart, and each
    # side's second stage refined another one: same label, IoU 0.67.
    ref = dict(dets([FAR, A], [0.9, 0.2176]), proposal_cut_gap=1e-7)
    got = dets([FAR, B], [0.9, 0.2171])
    r = match_detections(ref, got)
    assert (r['exact'], r['near_ties'], r['problems']) == (1, 2, [])
    # A cut far from a tie, no gap known, another label or a box apart: the
    # detections differ.
    for ref_gap, got_box, label in ((1e-3, B, 0), (None, B, 0), (1e-7, B, 1),
                                    (1e-7, FAR, 0)):
        ref = dets([FAR, A], [0.9, 0.2176])
        if ref_gap is not None:
            ref['proposal_cut_gap'] = ref_gap
        got = dets([FAR, got_box], [0.9, 0.2171], labels=[0, label])
        r = match_detections(ref, got)
        assert len(r['problems']) == 2, (ref_gap, got_box, label, r)


def test_share_of_exact_matches():
    # 65 exact detections and two near-ties (one a side): 65 of 66 is below
    # 98.5%, so the set fails although every left-over detection is a tie.
    boxes = [[i * 60, 0, i * 60 + 40, 20] for i in range(65)]
    scores = list(np.linspace(0.9, 0.2, 65))
    ref = dets(boxes + [A], scores + [0.1])
    got = dets(boxes + [B], scores + [0.1 - 1e-6])
    report = detection_parity([ref], [got])
    assert report['exact'] == 65 and report['near_ties'] == 2
    assert report['problems'] == [
        f'65 of 66 detections matched exactly, fewer than '
        f'{DET_BOUNDS["min_exact"]:.1%}'
    ]
    # With 200 the same two ties pass.
    more = [[i * 60, 100, i * 60 + 40, 120] for i in range(133)]
    ref = dets(boxes + more + [A], scores + [0.5] * 133 + [0.1])
    got = dets(boxes + more + [B], scores + [0.5] * 133 + [0.1 - 1e-6])
    assert detection_parity([ref], [got])['problems'] == []
