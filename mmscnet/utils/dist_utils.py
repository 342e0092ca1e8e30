"""Multi-process training and testing on GPUs (NCCL) and on CPU-only machines
(gloo).

The processes are started by torchrun (tools/dist_train.sh, dist_test.sh) or
srun (tools/slurm_*.sh) and joined by mmengine's Runner, as in mmdetection.
On GPUs nothing changes: the Runner calls mmengine's ``init_dist`` with the
config's ``env_cfg.dist_cfg`` (NCCL in every packaged config).

mmengine 0.10.7 cannot do the same on a machine without CUDA: its launchers
call ``torch.cuda.set_device``, and its DDP wrapper pins ``device_ids`` to a
GPU. :func:`setup_distributed` fills those two gaps and nothing else: it
creates the process group with torch.distributed's own ``env://`` rendezvous
(the variables torchrun sets), after which the Runner sees an initialised
group and skips its own, and it asks for a CPU DDP wrapper.
:func:`close_distributed` destroys the group once a run has finished, which
neither the Runner nor torchrun does.
"""
from datetime import timedelta

import torch
import torch.distributed as torch_dist

from mmscnet.utils.config import record_rewrite, replace_types

# Backends that need CUDA tensors; on a CPU machine they become gloo.
_GPU_BACKENDS = ('nccl', )


def setup_distributed(cfg):
    """Prepare ``cfg`` (and, on CPU, the process group) for ``cfg.launcher``.

    A no-op for ``launcher='none'`` and on machines with CUDA. On a CPU
    machine with ``launcher='pytorch'``: NCCL in ``env_cfg.dist_cfg`` becomes
    gloo (any other backend the config names is kept), the process group is
    created from torchrun's environment, DDP gets ``device_ids=None`` and
    SyncBN (CUDA-only in PyTorch) becomes BN, each recorded as a config
    rewrite.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return cfg
    if launcher != 'pytorch':
        raise ValueError(
            f'--launcher {launcher} needs CUDA GPUs (mmengine calls '
            'torch.cuda.set_device); on a machine without GPUs start the '
            'processes with torchrun: tools/dist_train.sh / '
            'tools/dist_test.sh (--launcher pytorch)')
    env_cfg = dict(cfg.get('env_cfg') or {})
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    backend = dist_cfg.pop('backend', 'nccl')
    dist_cfg.pop('init_backend',
                 None)  # deepspeed/colossalai rendezvous: GPU only
    if backend in _GPU_BACKENDS:
        record_rewrite(
            cfg, f'env_cfg.dist_cfg.backend={backend}', 'gloo',
            f'no CUDA device: {backend} needs GPUs; gloo runs CPU processes')
        backend = 'gloo'
    cfg.env_cfg = dict(env_cfg, dist_cfg=dict(dist_cfg, backend=backend))
    if 'timeout' in dist_cfg:
        dist_cfg['timeout'] = timedelta(seconds=dist_cfg['timeout'])
    if not torch_dist.is_initialized():
        # rank, world size and rendezvous from
        # RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT.
        torch_dist.init_process_group(
            backend=backend, init_method='env://', **dist_cfg)

    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if 'device_ids' not in wrapper:
        wrapper['device_ids'] = None
        record_rewrite(
            cfg, f'model_wrapper_cfg ({wrapper["type"]})', 'device_ids=None',
            'no CUDA device: DDP wraps a CPU module, with no device to pin')
    cfg.model_wrapper_cfg = wrapper

    reverted = replace_types(cfg.model, ('SyncBN', 'MMSyncBN'), 'BN')
    if cfg.get('sync_bn'):
        cfg.sync_bn = None
        reverted += 1
    record_rewrite(
        cfg, 'SyncBN', 'BN', 'no CUDA device: PyTorch\'s SyncBN is CUDA-only; '
        'batch statistics are per process', reverted)
    return cfg


def close_distributed(cfg):
    """Destroy the process group of a ``--launcher`` run that has finished.

    A gloo group left to the interpreter's exit can abort the process after
    its work is done: its worker threads outlive Python (SIGABRT, "terminate
    called without an active exception"), and torchrun then fails the whole
    job. Call it only after success: after an error, another rank may still
    be waiting in a collective and the process exits anyway.
    """
    if cfg.get('launcher', 'none') != 'none' and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
