"""mmscnet: Self-Calibrated Convolutions (SCNet) for OpenMMLab 2.x.

Importing this package is light: torch, mmengine and mmcv only. The
downstream libraries (mmdet, mmseg, mmpretrain) are imported where used.
"""
from . import checkpoint_io
from .version import __version__  # noqa: F401

# mmengine's own checkpoints load under PyTorch >= 2.6 with weights_only kept on
# (see mmscnet/checkpoint_io.py). mmscnet is imported by every config that names
# an mmscnet.* type and by tools/, so this covers resume, load_from and test.
checkpoint_io.register()
