"""What differs between the four downstream libraries, one module each:
:mod:`.det` (mmdet), :mod:`.seg` (mmseg), :mod:`.cls` (mmpretrain) and
:mod:`.pose` (mmpose).

tools/train.py, tools/test.py, tools/infer.py and benchmark.py pick the
adapter by the config's ``default_scope``. Each adapter says how its library
paints test images (``--show-dir``), does TTA (``--tta``), dumps raw
predictions (``--out``), loads the authors' released checkpoints, infers on
a user's images, and packs a benchmark batch. Supporting a fifth library is
one new module with an :class:`Adapter` subclass, listed here. The modules
import their library only inside their methods, so this package imports
with any subset of the four installed.
"""
from .base import Adapter
from .cls import ClsAdapter
from .det import DetAdapter
from .pose import PoseAdapter
from .seg import SegAdapter

ADAPTERS = {
    a.scope: a()
    for a in (DetAdapter, SegAdapter, ClsAdapter, PoseAdapter)
}
SCOPES = tuple(ADAPTERS)


def get_adapter(scope):
    """The adapter of ``scope`` (a config's ``default_scope``)."""
    if scope not in ADAPTERS:
        raise ValueError(
            f'default_scope must be one of {SCOPES} (inherit a config of '
            f'mmdet, mmseg, mmpretrain or mmpose), got {scope!r}')
    return ADAPTERS[scope]


__all__ = ['Adapter', 'ADAPTERS', 'SCOPES', 'get_adapter']
