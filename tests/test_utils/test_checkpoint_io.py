"""mmengine checkpoints load under weights_only=True; nothing else gets
through. What ``import mmscnet`` changes (a fallback that acts only where
mmengine's own load fails) and what mmscnet's tools change (weights-only
loading on every torch), each announced once.

Each loader test runs with both mechanisms this torch has: PyTorch's
weights-only unpickler with safe_globals (torch >= 2.5) and mmscnet's
restricted unpickler (the default below 2.5, usable on any torch), so the
suite on the newest torch also checks the old-torch path. The compatibility
job (tools/compat_env.sh) runs this file on the oldest supported torch.
"""
import builtins
import os
import pickle
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmscnet.utils import checkpoint_io
from mmscnet.utils.checkpoint_io import load_from_local

# torch >= 2.6 loads weights-only by default: mmengine's own load then fails
# on the checkpoints it writes.
WEIGHTS_ONLY_DEFAULT = tuple(
    int(v) for v in torch.__version__.split('+')[0].split('.')[:2]) >= (2, 6)

MECHANISMS = ['restricted'] + (['torch'] if hasattr(torch.serialization,
                                                    'safe_globals') else [])
mechanism = pytest.mark.parametrize('mechanism', MECHANISMS)


def _mmengine_like_checkpoint(path):
    hub = MessageHub.get_instance('test_checkpoint_hub')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_scalar('train/lr', 0.01)
    torch.save(
        {
            'meta': {
                'epoch': 1,
                'iter': 10,
                'seed': np.int64(3),
                'dataset_meta': {
                    'classes': ('a', 'b')
                }
            },
            'state_dict': {
                'w': torch.ones(2)
            },
            'message_hub': hub.state_dict(),
            'optimizer': {
                'state': {
                    0: {
                        'momentum_buffer': torch.zeros(2)
                    }
                },
                'param_groups': [{
                    'lr': 0.01,
                    'params': [0]
                }]
            },
            'extra': {
                'array': np.arange(3, dtype=np.float32)
            }
        }, path)


def test_plain_torch_load_refuses_mmengine_checkpoint(tmp_path):
    # The problem being solved: weights_only=True (torch >= 2.6's default)
    # refuses mmengine's own checkpoint, on every torch that has the flag.
    path = tmp_path / 'c.pth'
    _mmengine_like_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_default_mechanism_follows_torch():
    expected = 'torch' if hasattr(torch.serialization,
                                  'safe_globals') else 'restricted'
    assert checkpoint_io._torch_has_safe_globals() == (expected == 'torch')
    with pytest.raises(
            ValueError, match="mechanism must be 'torch' or 'restricted'"):
        load_from_local(__file__, mechanism='pickle')


@mechanism
def test_mmengine_checkpoint_loads(tmp_path, mechanism):
    path = tmp_path / 'c.pth'
    _mmengine_like_checkpoint(path)
    ckpt = load_from_local(str(path), mechanism=mechanism)
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(
        buf, HistoryBuffer) and buf.current() == 0.5 and buf.mean() == 0.5
    assert ckpt['meta']['seed'] == 3 and ckpt['meta']['dataset_meta'][
        'classes'] == ('a', 'b')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    np.testing.assert_array_equal(ckpt['extra']['array'],
                                  np.arange(3, dtype=np.float32))


def test_mmengine_checkpoint_loads_through_the_tools_loader(tmp_path):
    checkpoint_io.use_weights_only_loading()  # as mmscnet's tools do
    path = tmp_path / 'c.pth'
    _mmengine_like_checkpoint(path)
    assert CheckpointLoader._get_checkpoint_loader(
        str(path)) is checkpoint_io._strict_local
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(
        buf, HistoryBuffer) and buf.current() == 0.5 and buf.mean() == 0.5
    assert ckpt['meta']['seed'] == 3
    np.testing.assert_array_equal(ckpt['extra']['array'],
                                  np.arange(3, dtype=np.float32))


_IMPORT_PROBE = textwrap.dedent("""
    import os, sys, torch
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    before = CheckpointLoader._get_checkpoint_loader('x.pth')
    import mmscnet
    after = CheckpointLoader._get_checkpoint_loader('x.pth')
    print('WRAPPED', after is not before and
          getattr(after, '__wrapped__', None) is before)
    print('URL UNCHANGED', CheckpointLoader._get_checkpoint_loader(
        'https://x/y.pth').__module__.startswith('mmengine'))
    for path in sys.argv[1:]:
        try:
            ckpt = _load_checkpoint(path, map_location='cpu')
            print('LOADED', os.path.basename(path), sorted(ckpt))
        except Exception as e:
            print('REFUSED', os.path.basename(path), type(e).__name__)
""")


def _python(code, *args, env=None):
    """Output (stdout and stderr as one stream, in the order written) of
    ``code`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, '-c', code, *map(str, args)],
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True,
                         env={
                             **os.environ,
                             **(env or {})
                         },
                         timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
    return out.stdout


def _probe(*paths, env=None):
    return _python(_IMPORT_PROBE, *paths, env=env)


def test_import_changes_loading_only_where_mmengine_fails(tmp_path):
    """``import mmscnet`` wraps mmengine's local-file loader and leaves its
    URL loader alone. A file that mmengine loads by itself loads as before,
    with no word from mmscnet. A checkpoint that mmengine wrote loads too: on
    torch >= 2.6 (where mmengine alone fails) through the fallback, which
    says so once per process; on older torch mmengine loads it itself."""
    plain, written = tmp_path / 'plain.pth', tmp_path / 'written.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}}, plain)
    _mmengine_like_checkpoint(written)
    log = _probe(plain, written, written)
    assert 'WRAPPED True' in log and 'URL UNCHANGED True' in log
    assert "LOADED plain.pth ['state_dict']" in log
    assert log.count('LOADED written.pth') == 2, log
    announced = [line for line in log.splitlines() if 'mmscnet:' in line]
    if WEIGHTS_ONLY_DEFAULT:
        assert len(announced) == 1, log
        assert 'mmengine could not load' in announced[0]
        assert 'MMSCNET_CHECKPOINT_FALLBACK=0' in announced[0]
    else:
        assert announced == [], log


def test_tools_loading_is_announced_once(tmp_path):
    """What the tools set up (weights-only on every torch) says so once per
    process, at the first checkpoint it loads."""
    written = tmp_path / 'written.pth'
    _mmengine_like_checkpoint(written)
    code = textwrap.dedent(f"""
        from mmengine.runner.checkpoint import _load_checkpoint
        from mmscnet.utils import checkpoint_io
        checkpoint_io.use_weights_only_loading()
        print('BEFORE LOADING', flush=True)
        for _ in range(2):
            _load_checkpoint({str(written)!r}, map_location='cpu')
    """)
    log = _python(code)
    lines = [line for line in log.splitlines() if 'mmscnet:' in line]
    assert len(lines) == 1, log
    assert 'checkpoints load weights-only, with the types mmengine writes ' \
        'allowed' in lines[0]
    assert log.index('BEFORE LOADING') < log.index(lines[0])


def test_fallback_can_be_turned_off(tmp_path):
    written = tmp_path / 'written.pth'
    _mmengine_like_checkpoint(written)
    log = _probe(written, env={'MMSCNET_CHECKPOINT_FALLBACK': '0'})
    assert 'WRAPPED False' in log and 'mmscnet:' not in log
    # mmengine alone: it fails where torch loads weights-only by default.
    assert ('REFUSED written.pth'
            if WEIGHTS_ONLY_DEFAULT else 'LOADED written.pth') in log


@pytest.mark.skipif(
    not WEIGHTS_ONLY_DEFAULT,
    reason='on torch < 2.6 mmengine alone unpickles any file, and importing '
    'mmscnet does not change that (tools/ refuse it there: the Runner test '
    'below)')
def test_payload_is_refused_through_any_tool_on_weights_only_torch(tmp_path):
    marker = tmp_path / 'ran'
    evil = tmp_path / 'evil.pth'
    torch.save({
        'state_dict': {
            'w': torch.ones(1)
        },
        'x': _Payload(marker)
    }, evil)
    log = _probe(evil)
    assert 'REFUSED evil.pth' in log and not marker.exists()


@mechanism
def test_allowlist_is_scoped_to_the_load(tmp_path, mechanism):
    path = tmp_path / 'c.pth'
    _mmengine_like_checkpoint(path)
    load_from_local(str(path), mechanism=mechanism)
    with pytest.raises(
            pickle.UnpicklingError):  # no global change to torch.load
        torch.load(path, weights_only=True)


def _pickle_with_getattr(tmp_path, target, name):

    class Evil:

        def __reduce__(self):
            return (builtins.getattr, (target, name))

    path = tmp_path / f'getattr_{name}.pth'
    torch.save({'x': Evil()}, path)
    return str(path)


@mechanism
def test_getattr_is_restricted_to_history_buffer_methods(tmp_path, mechanism):
    ok = load_from_local(
        _pickle_with_getattr(tmp_path, HistoryBuffer, 'mean'),
        mechanism=mechanism)
    assert ok['x'] is HistoryBuffer.mean
    for target, name in ((HistoryBuffer, '__init__'),
                         (HistoryBuffer, '__reduce_ex__'), (np.ndarray,
                                                            'tofile')):
        with pytest.raises(ValueError, match='cannot load checkpoint'):
            load_from_local(
                _pickle_with_getattr(tmp_path, target, name),
                mechanism=mechanism)


@mechanism
def test_unknown_class_is_refused(tmp_path, mechanism):
    path = tmp_path / 'cls.pth'
    torch.save({'x': MessageHub}, path)
    with pytest.raises(
            ValueError, match='objects outside the allowed checkpoint types'):
        load_from_local(str(path), mechanism=mechanism)


class _Payload:
    """Unpickling it would run `touch marker`: the file shows whether it ran.
    """

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@mechanism
@pytest.mark.parametrize('legacy_format', [False, True])
def test_code_payload_is_refused_before_it_runs(tmp_path, mechanism,
                                                legacy_format):
    marker = tmp_path / 'ran'

    path = tmp_path / 'evil.pth'
    torch.save({
        'state_dict': {
            'w': torch.ones(1)
        },
        'x': _Payload(marker)
    },
               path,
               _use_new_zipfile_serialization=not legacy_format)
    with pytest.raises(
            ValueError, match='objects outside the allowed checkpoint types'):
        load_from_local(str(path), mechanism=mechanism)
    assert not marker.exists()
    # The same file without the payload loads in both formats.
    torch.save({'state_dict': {
        'w': torch.ones(1)
    }},
               path,
               _use_new_zipfile_serialization=not legacy_format)
    assert torch.equal(
        load_from_local(str(path), mechanism=mechanism)['state_dict']['w'],
        torch.ones(1))


def test_missing_file():
    with pytest.raises(
            FileNotFoundError, match='checkpoint not found: /no/such.pth'):
        load_from_local('/no/such.pth')


def _runner(work_dir, max_epochs, **kwargs):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Tiny(BaseModel):

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.fc(
                torch.stack(inputs) if isinstance(inputs, list) else inputs)
            return {'loss': out.pow(2).mean()} if mode == 'loss' else out

    data = [dict(inputs=torch.randn(4)) for _ in range(8)]
    return Runner(
        model=Tiny(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data,
            batch_size=4,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        default_scope='mmengine',
        experiment_name=f'tiny-{uuid.uuid4().hex}',
        **kwargs)


def test_runner_resume_and_load_from_go_through_the_loader(tmp_path):
    # mmengine's Runner itself (no downstream library) with the loading that
    # mmscnet's tools set up, as the compatibility job runs it on the oldest
    # torch too: resume restores the epoch, the optimizer and the message
    # hub's HistoryBuffers; a checkpoint with a code payload given as
    # load_from is refused before the payload runs, on every torch.
    checkpoint_io.use_weights_only_loading()
    first = _runner(tmp_path / 'a', max_epochs=2)
    first.train()
    ckpt = tmp_path / 'a' / 'epoch_2.pth'
    assert CheckpointLoader._get_checkpoint_loader(
        str(ckpt)) is checkpoint_io._strict_local
    saved = torch.load(ckpt, weights_only=False)
    second = _runner(
        tmp_path / 'a', max_epochs=3, resume=True, load_from=str(ckpt))
    second.train()
    assert second.epoch == 3 and second.iter == 6
    assert isinstance(
        second.message_hub.get_scalar('train/loss'), HistoryBuffer)
    assert saved['meta']['epoch'] == 2 and saved['meta']['iter'] == 4

    marker = tmp_path / 'ran'

    saved['meta']['x'] = _Payload(marker)
    evil = tmp_path / 'evil.pth'
    torch.save(saved, evil)
    third = _runner(tmp_path / 'b', max_epochs=3, load_from=str(evil))
    with pytest.raises(
            ValueError, match='objects outside the allowed checkpoint types'):
        third.train()
    assert not marker.exists()
