"""Crash-safe checkpointing: ``type='mmscnet.CheckpointHook'``.

mmengine 0.10.7's CheckpointHook can leave a training with nothing to resume
from when the process is killed (SIGKILL, OOM killer, a preempted node)
while it saves:

- the checkpoint file is written in place, so a kill mid-write leaves a
  truncated ``epoch_N.pth``;
- ``last_checkpoint`` is rewritten in place too (truncated, then written);
- with ``max_keep_ckpts`` the oldest kept checkpoint is deleted *before* the
  new one is written: with ``max_keep_ckpts=1`` a kill during the save
  loses the only complete checkpoint.

This hook is mmengine's with three changes: every file goes to a hidden
temporary file beside its target and replaces the target only once it is
complete and flushed to disk (``os.replace`` is atomic on one file system);
``last_checkpoint`` is rewritten only after the checkpoint it names is
complete; outdated checkpoints are deleted only after that. tools/train.py
uses it in place of ``CheckpointHook`` (same arguments); a config can also
name it directly.
"""
import glob
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend, register_backend
from mmengine.hooks import CheckpointHook as MMEngineCheckpointHook

from mmscnet.registry import HOOKS

ATOMIC_BACKEND = 'mmscnet_atomic_local'
_PARTIAL = '.partial-'


def atomic_write(path, data):
    """Write ``data`` (bytes) to ``path`` all at once or not at all."""
    path = os.fspath(path)
    folder = osp.dirname(path) or '.'
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}{_PARTIAL}{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    # Make the rename itself durable (a power cut, not only a killed process).
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local-file backend with all-or-nothing writes."""

    def put(self, obj, filepath):
        atomic_write(filepath, obj)

    def put_text(self, obj, filepath, encoding='utf-8'):
        atomic_write(filepath, obj.encode(encoding))


@HOOKS.register_module()
class CheckpointHook(MMEngineCheckpointHook):
    """mmengine's CheckpointHook, safe against being killed while it saves."""

    def before_train(self, runner):
        out_dir = self.out_dir or runner.work_dir
        if (self.file_client_args is None and self.backend_args is None
                and type(get_file_backend(out_dir)) is LocalBackend):
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)
        if is_main_process():
            # Left by a process killed mid-write; never a complete checkpoint.
            for path in glob.glob(osp.join(self.out_dir, f'.*{_PARTIAL}*')):
                runner.logger.warning(
                    f'removing an incomplete file of a killed run: {path}')
                os.remove(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        # Only now that the checkpoint is complete does last_checkpoint name
        # it, and only then are the outdated ones removed.
        atomic_write(
            osp.join(runner.work_dir, 'last_checkpoint'),
            self.last_ckpt.encode())
        for old in outdated:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed saves directories
                self.file_backend.rmtree(path)
