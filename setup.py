"""Packaging for mmscnet: Self-Calibrated Convolutions (SCNet) for OpenMMLab 2.x."""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
# What OpenMMLab packages ship as <package>/.mim/: mmengine's `mmscnet::` config
# lookup reads .mim/configs, mim reads .mim/model-index.yml and .mim/tools.
MIM_FILES = ['configs', 'tools', 'model-index.yml']


def read_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'mmscnet', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


# The ranges say what this project is tested against: torch 2.1 and 2.15 by the
# compatibility job (tools/compat_env.sh), 2.14 by the whole suite. mmcv is capped below 2.2
# because mmdet 3.3 and mmseg 1.2 assert mmcv<2.2.0 at import time.
core = ['torch>=2.1,<2.16', 'mmengine>=0.10.0,<1.0', 'mmcv>=2.0.0,<2.2.0', 'numpy']
extras = {
    'detection': ['mmdet>=3.0.0,<4.0.0', 'pycocotools'],
    'segmentation': ['mmsegmentation>=1.0.0,<2.0.0', 'ftfy', 'regex'],
    'classification': ['mmpretrain>=1.0.0,<2.0.0', 'torchvision'],
    # mmpose itself is installed with --no-deps (tools/setup_env.sh, README): its
    # requirement chumpy does not build. These are its real needs; xtcocotools
    # must be built against the installed numpy (PyPI's wheel is numpy 1's).
    'pose': ['json_tricks', 'munkres', 'xtcocotools>=1.12', 'scipy', 'matplotlib', 'torchvision'],
    # ONNX export (tools/deployment/) and its ONNX Runtime and OpenVINO
    # runs; torch's exporter (dynamo=True, the default since torch 2.9) needs
    # onnxscript, and the whole-detector graph torchvision's NMS and RoIAlign.
    'deploy': ['onnx', 'onnxruntime', 'onnxscript', 'openvino>=2024.0',
               'torchvision'],
    # The linters as mmdet pins them in spirit (setup.cfg; `make lint`).
    # docker: its SDK's own .dockerignore matching, for tests/test_docker.py.
    'tests': ['pytest>=7', 'pytest-xdist>=3', 'flake8==7.1.1', 'isort==5.13.2', 'yapf==0.40.2',
              'docker>=7'],
}
extras['all'] = sorted({r for k in ('detection', 'segmentation', 'classification', 'pose', 'deploy')
                        for r in extras[k]})
extras['dev'] = extras['tests']


class BuildPyWithMim(build_py):
    """Copies configs/, tools/ and model-index.yml into the built package as
    mmscnet/.mim/. An editable install needs no copy: the source tree's
    mmscnet/.mim holds links to them (committed)."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = osp.join(self.build_lib, 'mmscnet', '.mim')
        if osp.isdir(target) and not osp.islink(target):
            shutil.rmtree(target)  # a stale copy from an earlier build
        elif osp.lexists(target):
            os.remove(target)
        os.makedirs(target)
        junk = shutil.ignore_patterns('__pycache__', '*.pyc')
        for name in MIM_FILES:
            src = osp.join(HERE, name)
            if osp.isdir(src):
                shutil.copytree(src, osp.join(target, name), ignore=junk)
            else:
                shutil.copy2(src, osp.join(target, name))


setup(
    name='mmscnet',
    version=read_version(),
    description='Self-Calibrated Convolutions (SCNet, CVPR 2020) as an OpenMMLab 2.x backbone',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['mmscnet', 'mmscnet.*']),
    install_requires=core,
    extras_require=extras,
    cmdclass={'build_py': BuildPyWithMim},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
