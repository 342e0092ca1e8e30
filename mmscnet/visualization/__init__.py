"""Visualizers and painting hooks: ``mmscnet.PoseLocalVisualizer`` and
``mmscnet.PoseVisualizationHook`` (:mod:`.pose`, for mmpose configs).

Both registries name this package as a location, so mmengine imports it on
the first lookup of any ``mmscnet.`` hook or visualizer: it must import
without mmpose. Without it, the two names still resolve, to classes whose
construction says what to install.
"""
try:
    import mmpose  # noqa: F401
except ImportError:
    from mmscnet.registry import HOOKS, VISUALIZERS

    def _needs_mmpose(name):
        def __init__(self, *args, **kwargs):
            raise ImportError(f'mmscnet.{name} paints mmpose results and needs mmpose: '
                              'pip install --no-deps mmpose==1.3.2 (README, "Environment")')
        return type(name, (), {'__init__': __init__, '__doc__': f'{name}: needs mmpose.'})

    PoseVisualizationHook = HOOKS.register_module(module=_needs_mmpose('PoseVisualizationHook'))
    PoseLocalVisualizer = VISUALIZERS.register_module(module=_needs_mmpose('PoseLocalVisualizer'))
else:
    from .pose import PoseLocalVisualizer, PoseVisualizationHook

__all__ = ['PoseLocalVisualizer', 'PoseVisualizationHook']
