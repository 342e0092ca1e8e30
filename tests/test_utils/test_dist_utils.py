"""Multi-process training and testing through tools/dist_train.sh and
dist_test.sh.

This machine has no GPU: the scripts start 2 CPU processes that mmengine joins
with the gloo backend, the same torchrun/Runner path that runs NCCL on GPUs.
"""
import glob
import os
import pickle
import re
import socket
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TOY_CONFIG, cfg_options_argv, data_options

from mmscnet.testing.toy_data import generate_toy_coco
from mmscnet.utils.checkpoint_io import load_from_local

NUM_TRAIN, BATCH = 8, 2
import test as test_tool  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def set_one_rank_env(monkeypatch):
    """torchrun's variables for one rank of world size 1, in this process."""
    for key, value in dict(
            RANK='0',
            LOCAL_RANK='0',
            WORLD_SIZE='1',
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)


def run_script(args, **env):
    """Run a tools/*.sh script as a user would, with this interpreter as
    `python`."""
    full_env = dict(
        os.environ,
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
        PORT=str(free_port()),
        PYTHONPATH=str(REPO / 'tests'),
        **env)
    return subprocess.run(
        ['bash'] + args,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full_env,
        timeout=600)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_coco')
    generate_toy_coco(
        str(root), num_train=NUM_TRAIN, num_val=4, image_size=(128, 128))
    return str(root)


def probed_config(tmp, toy):
    """The toy config with DistProbeHook, and the --cfg-options of one epoch
    of batch BATCH on the toy set; an empty folder for the probes."""
    config = tmp / 'probed.py'
    config.write_text(f"_base_ = '{TOY_CONFIG}'\n"
                      "custom_imports = dict(imports=['dist_probe'], "
                      "allow_failed_imports=False)\n"
                      "custom_hooks = [dict(type='DistProbeHook')]\n")
    probe = tmp / 'probe'
    probe.mkdir()
    opts = dict(
        data_options(str(config), toy),
        **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 2,  # training only
            'train_dataloader.batch_size': BATCH
        })
    return str(config), cfg_options_argv(opts), probe


def assert_one_job_of_two_ranks(probe):
    """Both ranks were one job of world size 2: each trained on its own half of
    the images, and DDP kept their weights equal. Returns rank 0's weights."""
    ranks = [
        torch.load(probe / f'rank{r}.pt', weights_only=True) for r in (0, 1)
    ]
    assert [r['world_size'] for r in ranks] == [2, 2]
    # Each rank trains on its own half of the 8 images: 4 images = 2 iterations
    # of batch 2 (one process would take 4 iterations).
    seen = [r['seen'][0] for r in ranks]
    assert [len(s) for s in seen] == [NUM_TRAIN // 2] * 2
    assert set(seen[0]).isdisjoint(seen[1])
    assert set(seen[0]) | set(seen[1]) == set(range(1, NUM_TRAIN + 1))
    assert [r['iters_per_epoch']
            for r in ranks] == [NUM_TRAIN // 2 // BATCH] * 2
    for name, value in ranks[0]['params'].items():
        assert torch.equal(value, ranks[1]['params'][name]), name
    return ranks[0]['params']


@pytest.fixture(scope='module')
def dist_trained(toy, tmp_path_factory):
    """One run of `tools/dist_train.sh CONFIG 2 --work-dir W --cfg-options
    ...`."""
    tmp = tmp_path_factory.mktemp('dist_train')
    config, opts, probe = probed_config(tmp, toy)
    work = tmp / 'work'
    out = run_script(
        ['tools/dist_train.sh', config, '2', '--work-dir',
         str(work)] + opts,
        PROBE_DIR=str(probe))
    assert out.returncode == 0, out.stderr[-4000:]
    return work, probe, out.stdout + out.stderr


def test_dist_train_runs_one_job_of_two_processes(dist_trained, toy):
    work, probe, log = dist_trained
    params = assert_one_job_of_two_ranks(probe)
    iters = NUM_TRAIN // 2 // BATCH
    assert f'Epoch(train) [1][{iters}/{iters}]' in log
    # Rank 0 saved the weights both ranks ended with.
    saved = load_from_local(str(work / 'epoch_1.pth'))['state_dict']
    for name, value in params.items():
        assert torch.equal(saved[name], value), name
    # Only rank 0 wrote into the work dir: one log, one checkpoint, the config.
    assert (work / 'last_checkpoint').read_text().strip() == str(work /
                                                                 'epoch_1.pth')
    assert len(glob.glob(str(work / '**' / '*.log'), recursive=True)) == 1
    assert sorted(p.name for p in work.iterdir() if p.is_file()) == \
        ['epoch_1.pth', 'last_checkpoint', 'probed.py']
    assert ('config rewrite: env_cfg.dist_cfg.backend=nccl -> gloo: '
            'no CUDA device') in log


def test_dist_train_as_two_nodes_on_loopback(toy, tmp_path):
    """tools/dist_train.sh on two nodes of one process each, as on two
    machines: NNODES=2, NODE_RANK 0 and 1, node 0's address. Each node has a
    work dir of its own (as each machine has its own disk): only node 0's
    rank 0 writes there, node 1 writes nothing."""
    config, opts, probe = probed_config(tmp_path, toy)
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = dict(
            os.environ,
            PATH=os.path.dirname(sys.executable) + os.pathsep +
            os.environ['PATH'],
            PYTHONPATH=str(REPO / 'tests'),
            PROBE_DIR=str(probe),
            # Both "machines" share this one's cores: one thread each, as
            # torchrun sets for several processes on one node.
            OMP_NUM_THREADS='1',
            NNODES='2',
            NODE_RANK=str(rank),
            MASTER_ADDR='127.0.0.1',
            PORT=port)
        procs.append(
            subprocess.Popen(
                [
                    'bash', 'tools/dist_train.sh', config, '1', '--work-dir',
                    str(tmp_path / f'node{rank}')
                ] + opts,
                cwd=REPO,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT))
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=600)[0])
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], '\n'.join(log[-3000:]
                                                              for log in logs)
    params = assert_one_job_of_two_ranks(probe)
    node0, node1 = tmp_path / 'node0', tmp_path / 'node1'
    saved = load_from_local(str(node0 / 'epoch_1.pth'))['state_dict']
    for name, value in params.items():
        assert torch.equal(saved[name], value), name
    assert (node0 / 'last_checkpoint').read_text().strip() == str(
        node0 / 'epoch_1.pth')
    written = [str(p) for p in node1.rglob('*')
               if p.is_file()] if node1.exists() else []
    assert written == []
    assert 'GPU number: 2' in logs[0], logs[0][
        -3000:]  # mmengine's name for the world size


def test_dist_test_matches_single_process(dist_trained, toy, tmp_path):
    work, _, _ = dist_trained
    ckpt = str(work / 'epoch_1.pth')
    opts = dict(
        data_options(TOY_CONFIG, toy), **{'test_dataloader.batch_size': 1})
    out = run_script([
        'tools/dist_test.sh', TOY_CONFIG, ckpt, '2', '--work-dir',
        str(tmp_path / 'dist'), '--out',
        str(tmp_path / 'dist.pkl')
    ] + cfg_options_argv(opts))
    assert out.returncode == 0, out.stderr[-4000:]
    metrics = test_tool.main([
        TOY_CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'one'), '--out',
        str(tmp_path / 'one.pkl')
    ] + cfg_options_argv(opts))
    printed = dict(
        re.findall(r'(coco/\w+): (-?[\d.]+)', out.stdout + out.stderr))
    assert len(printed) == 12 and printed == {
        k: f'{v:.4f}'
        for k, v in metrics.items()
    }
    # The predictions themselves, image by image, not only the (small) metrics.
    dist, one = (
        pickle.load(open(tmp_path / f, 'rb')) for f in ('dist.pkl', 'one.pkl'))
    assert [d['img_id'] for d in dist] == [d['img_id']
                                           for d in one] == [1, 2, 3, 4]
    for a, b in zip(dist, one):
        a, b = a['pred_instances'], b['pred_instances']
        assert len(b['scores']) > 0 and torch.equal(a['labels'], b['labels'])
        assert torch.allclose(a['bboxes'], b['bboxes'], atol=1e-3)
        assert torch.allclose(a['scores'], b['scores'], atol=1e-5)


def test_test_tool_destroys_its_process_group(dist_trained, toy, tmp_path,
                                              monkeypatch):
    # A gloo group left to the interpreter's exit can abort a finished run
    # (SIGABRT from its threads), so the tools destroy the group they
    # joined. One in-process rank stands in for torchrun's N.
    import torch.distributed as torch_dist
    work, _, _ = dist_trained
    set_one_rank_env(monkeypatch)
    opts = dict(
        data_options(TOY_CONFIG, toy), **{'test_dataloader.batch_size': 1})
    try:
        metrics = test_tool.main([
            TOY_CONFIG,
            str(work / 'epoch_1.pth'), '--launcher', 'pytorch', '--work-dir',
            str(tmp_path)
        ] + cfg_options_argv(opts))
        assert not torch_dist.is_initialized()
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    assert len(metrics) == 12 and 'coco/bbox_mAP' in metrics


def recorded_argv(tmp_path, program, script_args, **env):
    """Run a tools/*.sh script with a stand-in ``program`` (python, srun) on
    PATH
    that only records the arguments it was given; return them."""
    fake = tmp_path / 'bin'
    fake.mkdir(exist_ok=True)
    (fake / program).write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\n')
    (fake / program).chmod(0o755)
    record = tmp_path / 'argv'
    subprocess.run(
        ['bash'] + script_args,
        cwd=REPO,
        check=True,
        capture_output=True,
        env=dict(
            os.environ,
            PATH=f'{fake}:{os.environ["PATH"]}',
            RECORD=str(record),
            **env))
    argv = record.read_text().split('\n')[:-1]
    # The tool's path as the script wrote it, shown relative.
    return [
        os.path.relpath(os.path.join(REPO, a), REPO)
        if a.endswith('.py') and '/' in a else a for a in argv
    ]


def test_dist_scripts_pass_every_argument_through(tmp_path):
    nodes = dict(
        NNODES='2', NODE_RANK='1', MASTER_ADDR='10.1.2.3', PORT='29999')
    torchrun = [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
        '--master_addr=10.1.2.3', '--nproc_per_node=4', '--master_port=29999'
    ]
    argv = recorded_argv(tmp_path, 'python', [
        'tools/dist_train.sh', 'cfg.py', '4', '--work-dir', 'W',
        '--cfg-options', 'a=1', 'b=(1,2)'
    ], **nodes)
    assert argv == torchrun + [
        'tools/train.py', 'cfg.py', '--launcher', 'pytorch', '--work-dir', 'W',
        '--cfg-options', 'a=1', 'b=(1,2)'
    ]
    argv = recorded_argv(
        tmp_path, 'python',
        ['tools/dist_test.sh', 'cfg.py', 'x.pth', '4', '--out', 'p.pkl'],
        **nodes)
    assert argv == torchrun + [
        'tools/test.py', 'cfg.py', 'x.pth', '--launcher', 'pytorch', '--out',
        'p.pkl'
    ]


def test_slurm_scripts_pass_every_argument_through(tmp_path):
    srun = [
        '-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        'python', '-u'
    ]
    argv = recorded_argv(
        tmp_path,
        'srun', [
            'tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'W',
            '--cfg-options', 'a=1'
        ],
        GPUS='16')
    assert argv == srun + [
        'tools/train.py', 'cfg.py', '--work-dir=W', '--launcher=slurm',
        '--cfg-options', 'a=1'
    ]
    argv = recorded_argv(
        tmp_path,
        'srun',
        ['tools/slurm_test.sh', 'part', 'job', 'cfg.py', 'x.pth', '--tta'],
        GPUS='16')
    assert argv == srun + [
        'tools/test.py', 'cfg.py', 'x.pth', '--launcher=slurm', '--tta'
    ]


def test_slurm_launcher_without_gpus_says_what_to_use():
    from mmscnet.apis.tool_setup import build_runner, load_config
    cfg = load_config(TOY_CONFIG, launcher='slurm')
    with pytest.raises(
            ValueError,
            match='--launcher slurm needs CUDA GPUs.*dist_train.sh'):
        build_runner(cfg)


def test_cpu_process_group_and_config_for_a_syncbn_config(monkeypatch):
    # One gloo process (world size 1) makes the calls torchrun's N make.
    import torch.distributed as torch_dist

    from mmscnet.apis.tool_setup import load_config
    from mmscnet.utils.dist_utils import setup_distributed
    set_one_rank_env(monkeypatch)
    config = str(REPO / 'configs/segmentation' /
                 'pspnet_scnet50-d8_4xb2-80k_cityscapes-512x1024.py')
    cfg = load_config(config, launcher='pytorch')
    assert 'SyncBN' in str(cfg.model)
    try:
        setup_distributed(cfg)
        assert torch_dist.is_initialized() and torch_dist.get_backend(
        ) == 'gloo'
    finally:
        torch_dist.destroy_process_group()
    assert 'SyncBN' not in str(
        cfg.model) and cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.env_cfg.dist_cfg == dict(
        backend='gloo')  # was nccl in mmseg's runtime
    assert cfg.model_wrapper_cfg.device_ids is None
