"""mmscnet: Self-Calibrated Convolutions (SCNet) for OpenMMLab 2.x.

Importing this package is light: only mmengine and torch. The downstream
libraries (mmdet, mmseg, mmpretrain) are imported where they are used.
"""
from .version import __version__  # noqa: F401
