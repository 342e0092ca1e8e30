"""Hooks: crash-safe checkpointing, the training-data check, deploy mode and
the pose painter. ``mmscnet.registry.HOOKS`` names this package as its
location, so a config's ``type='mmscnet.CheckpointHook'`` (and the others)
resolves without ``custom_imports``: this package must import without the
optional downstream libraries."""
from .checkpoint_hook import CheckpointHook
from .data_check_hook import DataCheckHook
from .deploy_hook import DeployHook

try:
    import mmpose  # noqa: F401
except ImportError:
    from mmscnet.registry import HOOKS
    from mmscnet.utils.misc import needs_package
    PoseVisualizationHook = needs_package(
        HOOKS, 'PoseVisualizationHook', 'mmpose',
        'pip install --no-deps mmpose==1.3.2 (see tests/README.md, '
        '"Environment")')
else:
    from .pose_visualization_hook import PoseVisualizationHook

__all__ = [
    'CheckpointHook', 'DataCheckHook', 'DeployHook', 'PoseVisualizationHook'
]
