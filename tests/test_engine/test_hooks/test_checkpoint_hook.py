"""A training killed at any moment resumes from its last complete checkpoint;
seeded deterministic training repeats bit for bit."""
import copy
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import train as train_tool  # noqa: E402
from conftest import REPO, TOY_CONFIG, cfg_options_argv, data_options
from mmengine.hooks import Hook

from mmscnet.apis.tool_setup import apply_train_args, build_runner, load_config
from mmscnet.testing.toy_data import generate_toy_coco
from mmscnet.utils.checkpoint_io import load_from_local

# 4 images at batch 2: 2 iterations an epoch, a checkpoint after each epoch,
# no validation (it would only add time).
SCHEDULE = {
    'train_cfg.max_epochs': 3,
    'train_dataloader.batch_size': 2,
    'default_hooks.checkpoint.interval': 1,
    'val_dataloader': None,
    'val_cfg': None,
    'val_evaluator': None
}


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_coco')
    generate_toy_coco(str(root), num_train=4, num_val=2, image_size=(96, 96))
    return str(root)


def options(toy, **extra):
    return {
        **data_options(TOY_CONFIG, toy, scale=(96, 96)),
        **SCHEDULE,
        **extra
    }


def start_training(work, opts, prelude=''):
    """tools/train.py in its own process; ``prelude`` runs first (fault
    injection)."""
    code = (
        f'import sys; sys.path.insert(0, {str(REPO / "tools")!r})\n{prelude}\n'
        'import train; train.main(sys.argv[1:])')
    return subprocess.Popen(
        [sys.executable, '-c', code, TOY_CONFIG, '--work-dir',
         str(work)] + cfg_options_argv(opts),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True)


class ResumedState(Hook):
    """What the runner holds when training restarts (after mmengine's resume).
    """

    def before_train(self, runner):
        self.epoch, self.iter = runner.epoch, runner.iter
        self.optimizer = copy.deepcopy(
            runner.optim_wrapper.optimizer.state_dict())
        self.schedulers = [s.state_dict() for s in runner.param_schedulers]
        self.loss_history = runner.message_hub.get_scalar(
            'train/loss').data[0].tolist()


def resume_and_check(toy, work, opts, expect_epoch):
    """--resume in this process: every piece of training state equals the saved
    file's when training restarts, and the training finishes."""
    saved = load_from_local(str(work / f'epoch_{expect_epoch}.pth'))
    cfg = load_config(TOY_CONFIG, opts)
    apply_train_args(cfg, TOY_CONFIG, work_dir=str(work), resume='auto')
    runner = build_runner(cfg)
    state = ResumedState()
    runner.register_hook(state)
    runner.train()
    assert state.epoch == expect_epoch == saved['meta']['epoch']
    assert state.iter == 2 * expect_epoch == saved['meta']['iter']
    assert state.optimizer['param_groups'] == saved['optimizer'][
        'param_groups']
    assert state.optimizer['state'].keys() == saved['optimizer']['state'].keys(
    )
    for idx, st in saved['optimizer']['state'].items():
        assert torch.equal(state.optimizer['state'][idx]['momentum_buffer'],
                           st['momentum_buffer'])
    assert state.schedulers == saved['param_schedulers']
    saved_losses = saved['message_hub']['log_scalars']['train/loss'].data[
        0].tolist()
    assert state.loss_history == saved_losses and len(
        saved_losses) == 2 * expect_epoch
    assert runner.iter == 6 and runner.epoch == 3
    assert (work / 'last_checkpoint').read_text().strip() == str(work /
                                                                 'epoch_3.pth')


def test_sigkill_after_first_checkpoint_then_resume(toy, tmp_path):
    work = tmp_path / 'work'
    proc = start_training(work, options(toy))
    deadline = time.time() + 300
    while not (work / 'last_checkpoint').exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, 'no checkpoint within 300 s'
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (work / 'epoch_3.pth').exists()
    last = int(
        re.search(r"epoch_(\d+)\.pth$",
                  (work / "last_checkpoint").read_text()).group(1))
    resume_and_check(toy, work, options(toy), expect_epoch=last)


def test_sigkill_while_a_checkpoint_is_written(toy, tmp_path):
    # The process kills itself halfway through writing epoch_2.pth: half the
    # bytes are on disk, then SIGKILL, before the file is complete. With
    # max_keep_ckpts=1, mmengine's own hook would have deleted epoch_1.pth
    # before writing epoch_2.pth, leaving nothing to resume from.
    prelude = '\n'.join([
        'import os, signal', 'real_fsync = os.fsync', 'def fsync(fd):',
        '    if "epoch_2.pth" in os.readlink(f"/proc/self/fd/{fd}"):',
        '        os.ftruncate(fd, os.fstat(fd).st_size // 2)',
        '        os.kill(os.getpid(), signal.SIGKILL)', '    real_fsync(fd)',
        'os.fsync = fsync'
    ])
    work = tmp_path / 'work'
    opts = options(toy, **{'default_hooks.checkpoint.max_keep_ckpts': 1})
    proc = start_training(work, opts, prelude)
    proc.wait(timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-3000:]
    partial = [
        p.name for p in work.iterdir()
        if p.name.startswith('.epoch_2.pth.partial-')
    ]
    assert len(partial) == 1 and not (work / 'epoch_2.pth').exists()
    assert (work / 'last_checkpoint').read_text().strip() == str(work /
                                                                 'epoch_1.pth')
    resume_and_check(toy, work, opts, expect_epoch=1)
    # The half-written file is gone; max_keep_ckpts=1 keeps only the newest.
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_3.pth']
    assert not list(work.glob('.*partial*'))


def test_truncated_newest_checkpoint_is_reported_by_name(toy, tmp_path):
    from mmscnet.models import SCNet
    work = tmp_path / 'work'
    work.mkdir()
    torch.save({'state_dict': SCNet(depth=50).state_dict()},
               work / 'epoch_1.pth')
    data = (work / 'epoch_1.pth').read_bytes()
    (work / 'epoch_2.pth').write_bytes(data[:len(data) //
                                            2])  # a writer killed mid-way
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    argv = [TOY_CONFIG, '--work-dir', str(work)] + cfg_options_argv(
        options(toy))
    with pytest.raises(
            ValueError,
            match=r'newest checkpoint .*last_checkpoint\) .*epoch_2\.pth '
            r'is truncated.*complete checkpoints beside it: epoch_1\.pth; '
            r'resume from one with --resume .*epoch_1\.pth'):
        train_tool.main(argv + ['--resume'])
    with pytest.raises(
            ValueError,
            match=r'cannot load checkpoint .*epoch_2\.pth: the file is '
            'truncated'):
        train_tool.main(argv + ['--resume', str(work / 'epoch_2.pth')])
    # Refused: a new training into that work dir would overwrite the
    # checkpoints there.
    with pytest.raises(
            FileExistsError,
            match=r'holds the checkpoints of an earlier training '
            r'\(last: .*epoch_2\.pth\).*--resume'):
        train_tool.main(argv)
    assert (work / 'epoch_2.pth').read_bytes() == data[:len(data) // 2]


def test_seeded_deterministic_training_repeats_bit_for_bit(toy, tmp_path):
    opts = options(
        toy, **{
            'train_cfg.max_epochs': 1,
            'randomness.seed': 0,
            'randomness.deterministic': True,
            'default_hooks.logger.interval': 1,
            'train_dataloader.num_workers': 1
        })  # seeded worker processes too
    runs = [start_training(tmp_path / f'run{i}', opts) for i in (0, 1)]
    for proc in runs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]

    def losses(work):
        scalars = next(
            work.glob('*/vis_data/scalars.json')).read_text().splitlines()
        return [{
            k: v
            for k, v in json.loads(line).items() if k.startswith('loss')
        } for line in scalars]

    def weights(work):
        return load_from_local(str(work / 'epoch_1.pth'))['state_dict']

    first, second = (tmp_path / 'run0', tmp_path / 'run1')
    assert len(losses(first)) == 2 and losses(first) == losses(second)
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
