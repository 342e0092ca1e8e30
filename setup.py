"""Packaging for mmscnet: Self-Calibrated Convolutions (SCNet) for OpenMMLab 2.x."""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'mmscnet', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


# The ranges say what this project is tested against. mmcv is capped below 2.2
# because mmdet 3.3 and mmseg 1.2 assert mmcv<2.2.0 at import time.
core = ['torch>=2.0', 'mmengine>=0.10.0,<1.0', 'mmcv>=2.0.0,<2.2.0', 'numpy']
extras = {
    'detection': ['mmdet>=3.0.0,<4.0.0', 'pycocotools'],
    'segmentation': ['mmsegmentation>=1.0.0,<2.0.0', 'ftfy', 'regex'],
    'classification': ['mmpretrain>=1.0.0,<2.0.0', 'torchvision'],
    # mmpose itself is installed with --no-deps (tools/setup_env.sh, README): its
    # requirement chumpy does not build. These are its real needs; xtcocotools
    # must be built against the installed numpy (PyPI's wheel is numpy 1's).
    'pose': ['json_tricks', 'munkres', 'xtcocotools>=1.12', 'scipy', 'matplotlib', 'torchvision'],
    # ONNX export (tools/deployment/pytorch2onnx.py) and its ONNX Runtime check;
    # torch's exporter (dynamo=True, the default since torch 2.9) needs onnxscript.
    'deploy': ['onnx', 'onnxruntime', 'onnxscript'],
    'tests': ['pytest>=7'],
}
extras['all'] = sorted({r for k in ('detection', 'segmentation', 'classification', 'pose', 'deploy')
                        for r in extras[k]})
extras['dev'] = extras['tests']

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
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
