"""mmscnet: Self-Calibrated Convolutions (SCNet) for OpenMMLab 2.x.

Importing this package is light: torch, mmengine and mmcv only. The
downstream libraries (mmdet, mmseg, mmpretrain) are imported where used.
What the import changes in mmengine is listed in the README ("What importing
mmscnet changes"). Where torch or mmengine is not installed (a deploy image
with ONNX Runtime or OpenVINO alone), the package still imports, changes
nothing, and gives the runtime: ``from mmscnet.deploy import
ExportedModel``.
"""
from .version import __version__  # noqa: F401


def _torch_stack_missing():
    """Whether torch or mmengine cannot be imported: then only the runtime
    around exported graphs (mmscnet.deploy.runtime) is there to import.
    Any other import error is raised as it is."""
    try:
        import mmengine.config  # noqa: F401
        import torch  # noqa: F401
    except ModuleNotFoundError as e:
        if (e.name or '').split('.')[0] in ('torch', 'mmengine'):
            return True
        raise
    return False


if not _torch_stack_missing():
    from mmengine.config import utils as _config_utils

    from .utils import checkpoint_io

    # A checkpoint that mmengine wrote fails to load under torch >= 2.6
    # (weights-only by default). mmscnet is imported by every config that
    # names an mmscnet.* type, so mmdet's own tools reach this too: only
    # where mmengine's load fails that way is the file read again
    # weights-only, with mmengine's own types allowed, and logged.
    checkpoint_io.use_fallback()

    # `_base_ = 'mmscnet::detection/...'`: mmengine resolves `pkg::` only
    # for the packages in its MODULE2PACKAGE table, at <installed
    # path>/.mim/configs. The value names a module, not the distribution:
    # mmengine then takes the folder of mmscnet/version.py, the package
    # actually imported, right for a wheel and an editable install alike
    # (an editable install's distribution lives in site-packages, where no
    # mmscnet/ folder is).
    _config_utils.MODULE2PACKAGE.setdefault('mmscnet', 'mmscnet.version')

# mmscnet.convert_to_self_calibrated(model) and mmscnet.SelfCalibratedConv2d,
# for users' own networks: imported on first use, so that `import mmscnet`
# stays light.
_MODEL_NAMES = ('convert_to_self_calibrated', 'SelfCalibratedConv2d')


def __getattr__(name):
    if name in _MODEL_NAMES:
        from . import models
        return getattr(models, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
