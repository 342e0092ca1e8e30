"""mmengine checkpoints load under weights_only=True; nothing else gets through."""
import builtins
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmscnet.checkpoint_io import load_from_local


def _mmengine_like_checkpoint(path):
    hub = MessageHub.get_instance('test_checkpoint_hub')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_scalar('train/lr', 0.01)
    torch.save({'meta': {'epoch': 1, 'iter': 10, 'seed': np.int64(3),
                         'dataset_meta': {'classes': ('a', 'b')}},
                'state_dict': {'w': torch.ones(2)},
                'message_hub': hub.state_dict(),
                'optimizer': {'state': {0: {'momentum_buffer': torch.zeros(2)}},
                              'param_groups': [{'lr': 0.01, 'params': [0]}]},
                'extra': {'array': np.arange(3, dtype=np.float32)}}, path)


def test_plain_torch_load_refuses_mmengine_checkpoint(tmp_path):
    # The problem being solved: torch >= 2.6 defaults to weights_only=True.
    path = tmp_path / 'c.pth'
    _mmengine_like_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_mmengine_checkpoint_loads_through_mmengine(tmp_path):
    import mmscnet  # noqa: F401  (registers the loader)
    path = tmp_path / 'c.pth'
    _mmengine_like_checkpoint(path)
    assert CheckpointLoader._get_checkpoint_loader(str(path)) is load_from_local
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.current() == 0.5 and buf.mean() == 0.5
    assert ckpt['meta']['seed'] == 3
    np.testing.assert_array_equal(ckpt['extra']['array'], np.arange(3, dtype=np.float32))


def test_allowlist_is_scoped_to_the_load(tmp_path):
    path = tmp_path / 'c.pth'
    _mmengine_like_checkpoint(path)
    load_from_local(str(path))
    with pytest.raises(pickle.UnpicklingError):  # no global change to torch.load
        torch.load(path)


def _pickle_with_getattr(tmp_path, target, name):
    class Evil:
        def __reduce__(self):
            return (builtins.getattr, (target, name))

    path = tmp_path / f'getattr_{name}.pth'
    torch.save({'x': Evil()}, path)
    return str(path)


def test_getattr_is_restricted_to_history_buffer_methods(tmp_path):
    ok = load_from_local(_pickle_with_getattr(tmp_path, HistoryBuffer, 'mean'))
    assert ok['x'] is HistoryBuffer.mean
    for target, name in ((HistoryBuffer, '__init__'), (HistoryBuffer, '__reduce_ex__'),
                         (np.ndarray, 'tofile')):
        with pytest.raises(ValueError, match='cannot load checkpoint'):
            load_from_local(_pickle_with_getattr(tmp_path, target, name))


def test_unknown_class_is_refused(tmp_path):
    path = tmp_path / 'cls.pth'
    torch.save({'x': MessageHub}, path)
    with pytest.raises(ValueError, match='objects outside the allowed checkpoint types'):
        load_from_local(str(path))


def test_missing_file():
    with pytest.raises(FileNotFoundError, match='checkpoint not found: /no/such.pth'):
        load_from_local('/no/such.pth')
