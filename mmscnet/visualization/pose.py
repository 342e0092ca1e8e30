"""``mmscnet.PoseLocalVisualizer``: mmpose's visualizer for
``tools/test.py --show-dir`` and ``tools/infer.py`` on mmpose configs.

mmpose 1.3.2's visualizer cannot draw a keypoint under NumPy 2: it calls
``int()`` on a one-element radius array, which NumPy 2 refuses ("only
0-dimensional arrays can be converted to Python scalars"). The visualizer
here is mmpose's with that argument passed as a number. Needs mmpose.
"""
import numpy as np
from mmpose.visualization import \
    PoseLocalVisualizer as MMPosePoseLocalVisualizer

from mmscnet.registry import VISUALIZERS


@VISUALIZERS.register_module()
class PoseLocalVisualizer(MMPosePoseLocalVisualizer):
    """mmpose's visualizer whose keypoint circles draw under NumPy 2."""

    def draw_circles(self,
                     center,
                     radius,
                     face_colors='none',
                     alpha=1.0,
                     **kwargs):
        # it calls int(radius); matplotlib's takes arrays
        if self.backend == 'opencv':
            radius = float(np.asarray(radius).reshape(-1)[0])
        return super().draw_circles(
            center, radius, face_colors=face_colors, alpha=alpha, **kwargs)
