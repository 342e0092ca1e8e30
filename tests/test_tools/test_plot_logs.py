"""tools/analysis_tools/plot_logs.py on mmengine-style scalars.json files."""
import json
import sys

import cv2
from conftest import REPO, run_tool

sys.path.insert(0, str(REPO / 'tools/analysis_tools'))
from plot_logs import curve, read_records  # noqa: E402


def fake_run(root, name, epochs=3, iters=4, resumed_at=None):
    """A work dir as mmengine writes it: <timestamp>/vis_data/scalars.json,
    train records each iteration and a validation record each epoch. With
    resumed_at, the records go to two timestamped runs (a resumed training)."""
    lines = {}
    for e in range(1, epochs + 1):
        first = resumed_at is None or e < resumed_at
        stamp = '20260101_000000' if first else '20260102_000000'
        for i in range(iters):
            it = (e - 1) * iters + i + 1
            lines.setdefault(stamp, []).append(
                dict(lr=0.01, loss=1.0 / it, epoch=e, iter=it, step=it))
        lines[stamp].append({'coco/bbox_mAP': 0.1 * e, 'step': e})
    for stamp, records in lines.items():
        folder = root / name / stamp / 'vis_data'
        folder.mkdir(parents=True)
        (folder /
         'scalars.json').write_text('\n'.join(json.dumps(r)
                                              for r in records) + '\n')
    return str(root / name)


def test_plot_logs_overlays_runs(tmp_path):
    a = fake_run(tmp_path, 'scnet50', resumed_at=2)
    b = fake_run(tmp_path, 'r50')
    out = tmp_path / 'curves.png'
    res = run_tool([
        'tools/analysis_tools/plot_logs.py', a, b, '--keys', 'loss',
        'coco/bbox_mAP', '--legend', 'SCNet-50', 'ResNet-50', '--out',
        str(out)
    ],
                   fresh=True)
    assert res.returncode == 0, res.stderr
    assert 'plotted loss, coco/bbox_mAP of 2 run(s)' in res.stdout
    img = cv2.imread(str(out))
    assert img.shape[:2] == (600, 700)  # one 300-pixel panel per key
    assert img.std() > 10  # something is drawn
    x, y, label = curve(read_records(a), 'loss')
    assert x == list(range(
        1, 13)) and label == 'iteration'  # the resumed run continues
    x, y, label = curve(read_records(a), 'coco/bbox_mAP')
    assert x == [1, 2, 3] and label == 'epoch'


def test_plot_logs_errors_name_the_problem(tmp_path):
    a = fake_run(tmp_path, 'run')
    tool = [
        'tools/analysis_tools/plot_logs.py', a, '--out',
        str(tmp_path / 'x.png')
    ]
    res = run_tool(tool + ['--keys', 'coco/segm_mAP'])
    assert res.returncode == 2
    assert "'coco/segm_mAP' is not logged in" in res.stderr
    assert 'logged: coco/bbox_mAP, loss, lr' in res.stderr
    res = run_tool(tool + ['--legend', 'a', 'b'])
    assert res.returncode == 2
    assert '--legend has 2 names for 1 runs' in res.stderr
    res = run_tool(
        ['tools/analysis_tools/plot_logs.py',
         str(tmp_path), '--out', 'x.png'])
    assert res.returncode == 2
    assert 'no */vis_data/scalars.json under' in res.stderr
    assert not (tmp_path / 'x.png').exists()
