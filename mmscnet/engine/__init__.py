from .hooks import (CheckpointHook, DataCheckHook, DeployHook,
                    PoseVisualizationHook)

__all__ = [
    'CheckpointHook', 'DataCheckHook', 'DeployHook', 'PoseVisualizationHook'
]
