"""The ``mmscnet`` registry scope.

``MODELS`` is a child of mmengine's root registry, so every downstream
library (mmdet, mmseg, mmpretrain, mmpose) resolves ``type='mmscnet.SCNet'``
without ``custom_imports``: mmengine imports ``mmscnet.registry`` on seeing
the ``mmscnet.`` prefix, and this registry imports ``mmscnet.models`` lazily.
Nothing is registered into mmdet's own registry, which already has an
unrelated ``SCNet`` (Sample Consistency Network).

``HOOKS``, ``TRANSFORMS``, ``VISUALIZERS`` and ``OPTIM_WRAPPERS`` resolve
the same way. Each registry's ``locations`` is the one package that registers
into it, as in mmdet (``mmscnet.engine.hooks``,
``mmscnet.datasets.transforms``, ``mmscnet.visualization``,
``mmscnet.engine.optimizers``); mmengine imports it on the first lookup.
tests/test_registry.py builds every registered name from a fresh process to
keep it so.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

MODELS = Registry(
    'model',
    parent=MMENGINE_MODELS,
    scope='mmscnet',
    locations=['mmscnet.models'])
HOOKS = Registry(
    'hook',
    parent=MMENGINE_HOOKS,
    scope='mmscnet',
    locations=['mmscnet.engine.hooks'])
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    scope='mmscnet',
    locations=['mmscnet.datasets.transforms'])
VISUALIZERS = Registry(
    'visualizer',
    parent=MMENGINE_VISUALIZERS,
    scope='mmscnet',
    locations=['mmscnet.visualization'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper',
    parent=MMENGINE_OPTIM_WRAPPERS,
    scope='mmscnet',
    locations=['mmscnet.engine.optimizers'])
