"""Visualizers: ``mmscnet.PoseLocalVisualizer`` (:mod:`.pose`, for mmpose
configs). ``mmscnet.registry.VISUALIZERS`` names this package as its
location, so it must import without mmpose; without it the name still
resolves, to a class whose construction says what to install."""
try:
    import mmpose  # noqa: F401
except ImportError:
    from mmscnet.registry import VISUALIZERS
    from mmscnet.utils.misc import needs_package
    PoseLocalVisualizer = needs_package(
        VISUALIZERS, 'PoseLocalVisualizer', 'mmpose',
        'pip install --no-deps mmpose==1.3.2 (see tests/README.md, '
        '"Environment")')
else:
    from .pose import PoseLocalVisualizer

__all__ = ['PoseLocalVisualizer']
