"""Every checkpoint file mmscnet reads or checks goes through here.

- :func:`load_from_local` / :func:`load_from_url`: mmengine's loaders for
  local files and http(s) URLs (installed by :func:`register`), weights-only.
- :func:`load_state_dict_file`: a state dict for the converter tools.
- :func:`check_complete`: is a zip checkpoint cut short (before resuming).
- :func:`refuse_unfit_state`: SCNet's guard against weights of another
  architecture or depth.
- :func:`register_load_pre_hook`: a ``load_state_dict`` pre-hook on every
  supported torch (the public method exists only from torch 2.5).

Loading mmengine checkpoints under PyTorch >= 2.6, with weights_only kept on:

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; PyTorch >= 2.6
treats that as ``weights_only=True`` and refuses the non-tensor objects that
mmengine itself writes into a checkpoint (the message hub's HistoryBuffers,
which hold numpy arrays and scalars), so ``--resume``, ``load_from`` and
``tools/test.py`` fail on mmengine's own files.

Instead of switching the safety check off, :func:`load_from_local`
allows exactly those types for the duration of one load:

- ``mmengine.logging.history_buffer.HistoryBuffer``,
- ``numpy.ndarray``, ``numpy.dtype`` (and numpy's concrete dtype classes),
  ``numpy._core.multiarray._reconstruct`` and ``scalar``,
- ``builtins.getattr``, but only as ``getattr(HistoryBuffer, <one of its
  statistics methods>)``: a HistoryBuffer pickles its method table that way,
  and a general getattr would let a file call anything.

Everything else (a pickled ``exec``, ``os.system``, any unknown class) is
still refused by PyTorch's weights-only unpickler, before it runs.

PyTorch < 2.5 has no ``torch.serialization.safe_globals`` (and before 2.4 no
way at all to extend its weights-only unpickler, which also cannot rebuild a
HistoryBuffer there). On those versions :func:`load_from_local` reads through
:data:`RESTRICTED_PICKLE`, a pickle module whose ``find_class`` returns only
torch's own weights-only allowlist plus the types above and refuses any other
global before it is called: the restriction the Python documentation gives
for unpickling untrusted data. What it cannot promise that PyTorch's own
unpickler does: it is mmscnet's code rather than PyTorch's fuzzed one, and it
limits which globals a file may name, not which pickle opcodes it may use.
:func:`register` makes mmengine's local-file checkpoint loader use this, so
every path that loads through mmengine (Runner resume and ``load_from``,
``init_cfg`` Pretrained, ``mmengine.runner.load_checkpoint``) gets it.
"""
import functools
import os.path as osp
import pickle
import types

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

_HISTORY_BUFFER_METHODS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_getattr(obj, name):
    """``getattr`` restricted to what a pickled HistoryBuffer needs."""
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise ValueError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only '
        f'getattr(HistoryBuffer, one of {sorted(_HISTORY_BUFFER_METHODS)}) is '
        'allowed')


def _numpy_globals():
    # numpy 2 renamed numpy.core to numpy._core (numpy 1.26 has a _core stub
    # only).
    if int(np.__version__.split('.')[0]) >= 2:
        from numpy._core import multiarray
    else:
        from numpy.core import multiarray
    allowed = [
        HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct,
        multiarray.scalar
    ]
    # numpy >= 1.25 pickles a dtype's class, e.g. numpy.dtypes.Float64DType.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [
            cls for cls in vars(dtypes).values()
            if isinstance(cls, type) and issubclass(cls, np.dtype)
        ]
    return allowed


MMENGINE_SAFE_GLOBALS = _numpy_globals() + [
    (_history_buffer_getattr, 'builtins.getattr')
]


@functools.lru_cache(maxsize=None)
def _allowed_by_name():
    """``{'module.name': object}`` for the restricted unpickler: torch's own
    weights-only allowlist plus :data:`MMENGINE_SAFE_GLOBALS`."""
    import codecs

    from torch import _weights_only_unpickler
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    allowed[
        '_codecs.encode'] = codecs.encode  # how numpy pickles an array's bytes
    for obj in MMENGINE_SAFE_GLOBALS:
        if isinstance(obj, tuple):
            obj, name = obj
        else:
            name = f'{obj.__module__}.{obj.__qualname__}'
        allowed[name] = obj
        # numpy 2 renamed numpy.core to numpy._core; files of either spelling
        # load.
        for a, b in (('numpy._core.', 'numpy.core.'), ('numpy.core.',
                                                       'numpy._core.')):
            if name.startswith(a):
                allowed[b + name[len(a):]] = obj
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Returns only allowlisted globals; any other is refused before it runs.
    """

    def find_class(self, module, name):
        import _compat_pickle

        # Protocol-2 files (torch's default) name Python 2 modules, e.g.
        # __builtin__.getattr; map them as pickle's own find_class does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        allowed = _allowed_by_name()
        key = f'{module}.{name}'
        if key not in allowed:
            raise pickle.UnpicklingError(
                f'global {key} is not an allowed checkpoint type (refused '
                'without running it)')
        return allowed[key]


def _restricted_load(file, **kwargs):
    return _RestrictedUnpickler(file, **kwargs).load()


# A pickle "module" for torch.load(pickle_module=...): torch subclasses its
# Unpickler (adding storages and persistent ids) and calls its load for the
# legacy format's header.
RESTRICTED_PICKLE = types.SimpleNamespace(
    __name__='mmscnet.utils.checkpoint_io.RESTRICTED_PICKLE',
    Unpickler=_RestrictedUnpickler,
    load=_restricted_load,
    UnpicklingError=pickle.UnpicklingError)


def _torch_has_safe_globals():
    return hasattr(torch.serialization, 'safe_globals')


def _load(filename, map_location, mechanism):
    if mechanism == 'torch':
        with torch.serialization.safe_globals(MMENGINE_SAFE_GLOBALS):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    # weights_only=False only hands the file to RESTRICTED_PICKLE (torch
    # refuses
    # a pickle_module together with weights_only=True); that does the refusing.
    return torch.load(
        filename,
        map_location=map_location,
        weights_only=False,
        pickle_module=RESTRICTED_PICKLE)


def load_from_local(filename, map_location=None, mechanism=None):
    """``torch.load(filename, weights_only=True)`` that accepts mmengine
    checkpoints.

    ``mechanism``: ``'torch'`` (PyTorch's weights-only unpickler with
    :data:`MMENGINE_SAFE_GLOBALS`, the default where torch has
    ``safe_globals``) or ``'restricted'`` (:data:`RESTRICTED_PICKLE`, the
    default on older torch). Raises FileNotFoundError for a missing file and
    ValueError, naming the file and the cause, for a truncated, corrupt or
    unsafe one.
    """
    if mechanism is None:
        mechanism = 'torch' if _torch_has_safe_globals() else 'restricted'
    if mechanism not in ('torch', 'restricted'):
        raise ValueError(
            f"mechanism must be 'torch' or 'restricted', not {mechanism!r}")
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    try:
        return _load(filename, map_location, mechanism)
    except Exception as e:
        if isinstance(e,
                      RuntimeError) and 'zip archive' in str(e) or isinstance(
                          e, EOFError):
            cause = 'the file is truncated or not a PyTorch checkpoint'
        elif isinstance(
                e, (torch.serialization.pickle.UnpicklingError, ValueError)):
            cause = (
                'it contains objects outside the allowed checkpoint types '
                '(tensors, numbers, strings, containers, mmengine '
                'HistoryBuffer, numpy arrays); refused without running them')
        else:
            cause = 'it could not be read'
        first_line = str(e).strip().splitlines()[0] if str(
            e).strip() else type(e).__name__
        raise ValueError(f'cannot load checkpoint {filename}: {cause} '
                         f'({type(e).__name__}: {first_line})') from e


def load_from_url(url, map_location=None, model_dir=None):
    """A checkpoint at an http(s) URL: downloaded once into torch.hub's
    checkpoint folder (``$TORCH_HOME/hub/checkpoints``), then read by
    :func:`load_from_local`, so a downloaded file gets the same weights-only
    check as a local one (mmengine's own URL loader unpickles it unchecked).
    In a distributed run rank 0 downloads while the others wait."""
    import os
    from urllib.parse import urlparse

    from mmengine.dist import barrier, get_dist_info
    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(cached):
        os.makedirs(model_dir, exist_ok=True)
        try:
            download_url_to_file(
                url, cached, progress=False)  # temp file, then rename
        except Exception as e:
            raise ValueError(f'cannot download checkpoint {url}: {e}') from e
    if world_size > 1:
        barrier()
    return load_from_local(cached, map_location)


def load_state_dict_file(path):
    """Read a checkpoint's state dict safely, with clear errors.

    Returns the file's ``state_dict`` entry when it has one (mmengine / mmcv
    checkpoints), else the file's top-level dict.
    """
    ckpt = CheckpointLoader.load_checkpoint(
        path, map_location='cpu')  # a file or URL
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict) or not all(
            isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(
            f'{path} does not hold a state dict (a mapping of names to '
            'tensors)')
    return ckpt


def register():
    """Route mmengine's local-file and URL checkpoint loading through
    :func:`load_from_local` and :func:`load_from_url`."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=load_from_url, force=True)


def check_complete(path, what='checkpoint'):
    """Raise ValueError, naming ``path`` and the other checkpoints beside it,
    if ``path`` is a PyTorch zip checkpoint cut short (a killed writer, a full
    disk). Reads only the zip directory at the end of the file."""
    import glob
    import zipfile
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    with open(path, 'rb') as f:
        is_zip = f.read(4) == b'PK\x03\x04'
    if not is_zip or zipfile.is_zipfile(path):
        return  # complete, or the legacy format (the loader reports problems)
    others = sorted((p
                     for p in glob.glob(osp.join(osp.dirname(path), '*.pth'))
                     if p != path and zipfile.is_zipfile(p)),
                    key=osp.getmtime)
    hint = ('complete checkpoints beside it: '
            f'{", ".join(map(osp.basename, others))}; resume '
            f'from one with --resume {others[-1]}'
            if others else 'no complete checkpoint beside it')
    raise ValueError(
        f'{what} {path} is truncated (its zip directory is missing: the '
        f'writer was killed or the disk was full); {hint}')


def register_load_pre_hook(module, hook):
    """Call ``hook(module, state_dict, prefix, ...)`` before ``module`` loads
    a state dict. ``register_load_state_dict_pre_hook`` is public from torch
    2.5; before that the same hook goes through the private name, with
    ``with_module=True`` for the same signature."""
    if hasattr(module, 'register_load_state_dict_pre_hook'):
        return module.register_load_state_dict_pre_hook(hook)
    return module._register_load_state_dict_pre_hook(hook, with_module=True)


def refuse_unfit_state(module, state_dict, prefix, *args):
    """``load_state_dict`` pre-hook of SCNet: refuse weights that do not fit
    it.

    mmengine loads ``Pretrained`` weights with ``strict=False`` and only logs
    what it could not place, so a checkpoint of another architecture (a
    torchvision ResNet-50, a whole detector without ``prefix='backbone.'``)
    or depth (SCNet-101 for SCNet-50) would leave the backbone randomly
    initialised, or silently truncated, behind a warning. Raises ValueError
    when fewer than half of the backbone's tensors would load, or when a stage
    of the checkpoint has more blocks than this backbone. Partial fits above
    that (a v1d stem, another ``in_channels``) load as mmengine does, with
    every missing key and shape mismatch logged.
    """
    import re
    own = {
        k: v
        for k, v in module.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    present = [k for k in own if prefix + k in state_dict]
    mismatched = [
        k for k in present if state_dict[prefix + k].shape != own[k].shape
    ]
    loaded = len(present) - len(mismatched)
    name = f'{type(module).__name__}-{module.depth}'
    if loaded < len(own) / 2:
        theirs = [k[len(prefix):] for k in state_dict if k.startswith(prefix)]
        shapes = '; '.join(
            f'{k}: {tuple(state_dict[prefix + k].shape)} in the checkpoint, '
            f'{tuple(own[k].shape)} here' for k in mismatched[:3])
        raise ValueError(
            f'the weights do not fit {name}: {loaded} of its {len(own)} '
            f'tensors would load ({len(own) - len(present)} missing, '
            f'{len(mismatched)} of another '
            f'shape{": " + shapes if shapes else ""}). The checkpoint holds '
            f'{len(theirs)} tensors under {prefix or "the top level"!r}, e.g. '
            f'{theirs[:3]}. It is not an SCNet checkpoint in the released '
            'layout (convert an mmpose one with '
            'tools/model_converters/mmpose2mmscnet.py); for a whole model\'s '
            'checkpoint, set prefix=\'backbone.\' in init_cfg')
    for i, layer in enumerate(module.res_layers, 1):
        blocks = {
            int(m.group(1))
            for k in state_dict
            for m in
            [re.match(re.escape(f'{prefix}layer{i}.') + r'(\d+)\.', k)] if m
        }
        if blocks and max(blocks) >= len(getattr(module, layer)):
            raise ValueError(
                f'the weights do not fit {name}: the checkpoint has '
                f'{max(blocks) + 1} blocks in {layer}, {name} has '
                f'{len(getattr(module, layer))} (weights of another depth?)')
