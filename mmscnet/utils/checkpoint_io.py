"""Every checkpoint file mmscnet reads or checks goes through here.

- :func:`load_from_local` / :func:`load_from_url`: weights-only loading that
  accepts the checkpoints mmengine writes.
- :func:`use_weights_only_loading`: mmengine's loaders for local files and
  http(s) URLs become those two; mmscnet's tools call it.
- :func:`use_fallback`: what ``import mmscnet`` does to checkpoint loading:
  only where mmengine's own load of a local file fails on torch's
  weights-only check, the file is read again by :func:`load_from_local`.
- :func:`load_state_dict_file`: a state dict for the converter tools.
- :func:`check_complete`: is a zip checkpoint cut short (before resuming).

Why: mmengine 0.10.7 calls ``torch.load`` without ``weights_only``. PyTorch
>= 2.6 treats that as ``weights_only=True`` and refuses the non-tensor
objects that mmengine itself writes into a checkpoint (the message hub's
HistoryBuffers, which hold numpy arrays and scalars), so ``--resume``,
``load_from`` and ``tools/test.py`` fail on mmengine's own files. On older
PyTorch, mmengine unpickles any file, code included.

Instead of switching the safety check off, :func:`load_from_local` allows
exactly those types for the duration of one load:

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
"""
import functools
import os
import os.path as osp
import pickle
import types

import numpy as np
import torch
from mmengine.logging import print_log
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
    # numpy 2 renamed numpy.core to numpy._core (1.26 has only a stub).
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
        # numpy 2 renamed numpy.core to numpy._core: either spelling loads.
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
    # weights_only=False only hands the file to RESTRICTED_PICKLE, which does
    # the refusing (torch takes no pickle_module with weights_only=True).
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
    if path.startswith(('http://', 'https://')):
        ckpt = load_from_url(path, map_location='cpu')
    else:
        ckpt = load_from_local(path, map_location='cpu')
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict) or not all(
            isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(
            f'{path} does not hold a state dict (a mapping of names to '
            'tensors)')
    return ckpt


_announced = set()
_STRICT = ('checkpoints load weights-only, with the types mmengine writes '
           'allowed (mmscnet.utils.checkpoint_io)')


def _announce(what):
    """One log line per process and kind of change, the first time it acts."""
    if what not in _announced:
        _announced.add(what)
        print_log(f'mmscnet: {what}', logger='current')


def _strict_local(filename, map_location=None):
    _announce(_STRICT)
    return load_from_local(filename, map_location)


def _strict_url(url, map_location=None, model_dir=None):
    _announce(_STRICT)
    return load_from_url(url, map_location, model_dir)


def use_weights_only_loading():
    """Route mmengine's local-file and URL checkpoint loading, for the rest
    of the process, through :func:`load_from_local` and
    :func:`load_from_url`: weights-only on every supported torch. mmscnet's
    tools call this when they read a config; it is logged the first time a
    checkpoint loads through it."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=_strict_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=_strict_url, force=True)


def _weights_only_refusal(error):
    return isinstance(error, pickle.UnpicklingError) and \
        'weights only load failed' in str(error).lower()


def _with_fallback(mmengine_load):

    @functools.wraps(mmengine_load)
    def load(filename, map_location=None):
        try:
            return mmengine_load(filename, map_location)
        except Exception as e:
            if not _weights_only_refusal(e):
                raise
        _announce(f'mmengine could not load {filename} under torch.load\'s '
                  'weights-only default; it is loaded weights-only again with '
                  'the types mmengine writes allowed (mmscnet.utils.'
                  'checkpoint_io; MMSCNET_CHECKPOINT_FALLBACK=0 turns this '
                  'off)')
        return load_from_local(filename, map_location)

    load.mmscnet_fallback = True
    return load


def use_fallback():
    """What ``import mmscnet`` does: mmengine's local-file checkpoint loader
    runs as before, and only where torch's weights-only check refuses the
    file (torch >= 2.6 on a checkpoint that mmengine wrote) is it read again
    by :func:`load_from_local`, with one log line the first time. Loads that
    work without mmscnet give the same result; a file with anything beyond
    mmengine's own types is still refused. ``MMSCNET_CHECKPOINT_FALLBACK=0``
    in the environment turns it off."""
    if os.environ.get('MMSCNET_CHECKPOINT_FALLBACK', '1') == '0':
        return
    current = CheckpointLoader._get_checkpoint_loader('checkpoint.pth')
    if getattr(current, 'mmscnet_fallback', False) or current is _strict_local:
        return
    CheckpointLoader.register_scheme(
        prefixes='', loader=_with_fallback(current), force=True)


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
