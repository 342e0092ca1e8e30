"""The Docker build context: what docker/Dockerfile.dockerignore keeps out."""
import fnmatch

from conftest import REPO


def ignored(path, patterns):
    # Docker's rules for these plain patterns: a match on the path or on any
    # of its parent folders excludes it; '**/' matches any depth.
    parts = path.split('/')
    prefixes = ['/'.join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        for p in prefixes:
            if fnmatch.fnmatch(p, pattern) or (
                    pattern.startswith('**/')
                    and fnmatch.fnmatch(p.split('/')[-1], pattern[3:])):
                return True
    return False


def test_dockerignore_keeps_environments_and_outputs_out():
    text = (REPO / 'docker' / 'Dockerfile.dockerignore').read_text()
    patterns = [
        line.strip() for line in text.splitlines()
        if line.strip() and not line.startswith('#')
    ]
    for path in ('.venv/lib/python3.11/site-packages/torch/__init__.py',
                 '.git/HEAD', 'work_dirs/demo/epoch_3.pth',
                 'data/coco/train2017/1.jpg', 'mmscnet/__pycache__/x.pyc',
                 'mmscnet.egg-info/PKG-INFO', 'scnet50.pth',
                 '.venv-torch2.1.2/bin/python'):
        assert ignored(path, patterns), path
    # What the image build needs stays in.
    for path in ('setup.py', 'README.md', 'tools/setup_env.sh',
                 'mmscnet/__init__.py',
                 'configs/detection/faster-rcnn_scnet50_fpn_1x_coco.py',
                 'model-index.yml', 'mmscnet/.mim/configs', 'MANIFEST.in'):
        assert not ignored(path, patterns), path
    assert (REPO / 'docker' /
            'Dockerfile').read_text().count('COPY . /mmscnet') == 1


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
