"""The Docker build context: what docker/Dockerfile.dockerignore keeps out,
matched by the Docker SDK for Python (``docker.utils.build.exclude_paths``,
the implementation of Docker's ignore rules that ``docker-py`` builds its
contexts with), on a tree laid out like a working copy after ``make demo``.

What this cannot check without a Docker daemon (none runs in the test
environment): that BuildKit picks ``Dockerfile.dockerignore`` for
``docker/Dockerfile``, and that the image builds. docker/README.md says how
the CPU image was built and run by hand.
"""
import subprocess
import tempfile
from pathlib import Path

from conftest import REPO
from docker.utils.build import exclude_paths

OUT = ('.venv/lib/python3.11/site-packages/torch/__init__.py', '.git/HEAD',
       'work_dirs/demo/epoch_3.pth', 'data/coco/train2017/1.jpg',
       'mmscnet/__pycache__/x.pyc', 'mmscnet.egg-info/PKG-INFO', 'scnet50.pth',
       'scnet50.onnx', '.venv-torch2.1.2/bin/python',
       'configs/__pycache__/a.cpython-311.pyc')
IN = ('setup.py', 'README.md', 'tools/setup_env.sh', 'mmscnet/__init__.py',
      'configs/detection/faster-rcnn_scnet50_fpn_1x_coco.py',
      'model-index.yml', 'MANIFEST.in', 'docker/Dockerfile',
      'tests/data/README.md')


def _patterns():
    text = (REPO / 'docker' / 'Dockerfile.dockerignore').read_text()
    return [
        line.strip() for line in text.splitlines()
        if line.strip() and not line.startswith('#')
    ]


def test_dockerignore_keeps_environments_and_outputs_out(tmp_path):
    for path in OUT + IN:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text('x')
    context = exclude_paths(str(tmp_path), _patterns())
    assert not context & set(OUT), sorted(context & set(OUT))
    assert set(IN) <= context, sorted(set(IN) - context)


def test_every_tracked_file_the_image_needs_is_in_the_context():
    """The repository itself: everything under mmscnet/, configs/ and tools/,
    setup.py and the files setup.py reads reach the build."""
    tracked = subprocess.run(['git', 'ls-files'],
                             capture_output=True,
                             text=True,
                             cwd=REPO,
                             check=True).stdout.split()
    needed = {
        p
        for p in tracked if p.split('/')[0] in ('mmscnet', 'configs', 'tools')
    } | {'setup.py', 'README.md', 'MANIFEST.in', 'model-index.yml'}
    assert len(needed) > 100
    # exclude_paths walks the whole tree, the real .venv included: give it
    # the tracked files only, in a copy of their layout.
    with tempfile.TemporaryDirectory() as root:
        for p in tracked:
            (Path(root) / p).parent.mkdir(parents=True, exist_ok=True)
            (Path(root) / p).touch()
        context = exclude_paths(root, _patterns())
    assert needed <= context, sorted(needed - context)[:10]


def test_cpu_image_shares_the_setup_and_the_ignore_file():
    # The CPU variant differs only in its base image: same context rules
    # (BuildKit reads Dockerfile.cpu.dockerignore for it), same setup script.
    docker = REPO / 'docker'
    assert (docker / 'Dockerfile.cpu.dockerignore').read_text() == \
        (docker / 'Dockerfile.dockerignore').read_text()
    for name in ('Dockerfile', 'Dockerfile.cpu'):
        text = (docker / name).read_text()
        assert text.count('COPY . /mmscnet') == 1
        assert 'RUN VENV=/opt/venv ./tools/setup_env.sh' in text
    assert 'FROM python:3.11' in (docker / 'Dockerfile.cpu').read_text()
