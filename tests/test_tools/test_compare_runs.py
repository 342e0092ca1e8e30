"""tools/analysis_tools/compare_runs.py and the demo that uses it,
`make demo-cls` (tools/demo.sh cls)."""
import json
import os
import re
import subprocess

import pytest
from conftest import REPO, run_tool


def _run_dir(root, top1, times):
    d = root / '20261202_000000' / 'vis_data'
    d.mkdir(parents=True)
    records = [
        dict(iter=i + 1, epoch=1, time=t, loss=1.0)
        for i, t in enumerate(times)
    ]
    records.append({'accuracy/top1': 10.0, 'step': 1})
    records.append({'accuracy/top1': top1, 'step': 2})
    (d / 'scalars.json').write_text('\n'.join(map(json.dumps, records)))
    return str(root)


def test_table_takes_last_val_and_median_time(tmp_path):
    a = _run_dir(tmp_path / 'a', 75.0, [0.3, 0.2, 9.0])
    b = _run_dir(tmp_path / 'b', 50.0, [0.1, 0.1, 0.1, 0.1])
    res = run_tool(
        ['tools/analysis_tools/compare_runs.py', a, b, '--legend', 'SC', 'R'])
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        'run   accuracy/top1    s/iter  iters',
        'SC            75.00     0.300      3',
        'R             50.00     0.100      4',
        'SC / R time per iteration: 3.00x',
    ]
    res = run_tool([
        'tools/analysis_tools/compare_runs.py', a, '--metric', 'coco/bbox_mAP'
    ])
    assert res.returncode == 1
    assert "no validation record has 'coco/bbox_mAP'" in res.stderr
    res = run_tool(
        ['tools/analysis_tools/compare_runs.py', a, b, '--legend', 'SC'])
    assert res.returncode == 2 and '--legend has 1 names for 2 runs' in \
        res.stderr


@pytest.mark.slow
def test_demo_cls_trains_both_and_prints_them_side_by_side(tmp_path):
    """The README's `make demo-cls`, as tools/demo.sh cls (what make runs),
    in a work dir of the test's own."""
    env = dict(
        os.environ,
        WORK_DIR=str(tmp_path / 'demo'),
        PY=str(REPO / '.venv/bin/python') if
        (REPO / '.venv/bin/python').exists() else 'python')
    out = subprocess.run(['tools/demo.sh', 'cls'],
                         cwd=REPO,
                         env=env,
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = re.findall(r'^(SCNet-18|ResNet-18) +(\d+\.\d\d) +(\d\.\d{3}) +40$',
                      out.stdout, re.M)
    assert [r[0] for r in rows] == ['SCNet-18', 'ResNet-18'], out.stdout
    assert all(0 <= float(r[1]) <= 100 and float(r[2]) > 0 for r in rows)
    assert 'SCNet-18 / ResNet-18 time per iteration:' in out.stdout
    assert "does not show the paper's accuracy gain" in out.stdout
    for net in ('scnet18', 'resnet18'):
        assert (tmp_path / 'demo' / net / 'epoch_10.pth').is_file()
