"""What tools/train.py and tools/test.py do to a config and a runner, as
functions the tests cover.

They serve configs of mmdet, mmseg, mmpretrain and mmpose alike: the config's
``default_scope`` says which library's registries build its parts, and
mmscnet/adapters/ holds everything in which the four libraries differ for
the tools (painting, TTA, dumping predictions, the released checkpoints).
Every change to the config beyond what a flag asks for is recorded with
:func:`mmscnet.utils.config.record_rewrite` and logged when the Runner starts
(tools/README.md lists them).
"""
import os
import os.path as osp
from pathlib import Path

from mmengine.config import Config, ConfigDict

from mmscnet.adapters import SCOPES, get_adapter
from mmscnet.utils import checkpoint_io
from mmscnet.utils.config import (log_rewrites, pop_rewrites, record_rewrite,
                                  swap_types)


def add_common_args(parser):
    """--cfg-options, --launcher and --local-rank, shared by tools/train.py and
    tools/test.py."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (e.g. '
        'train_dataloader.batch_size=4)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torchrun: LOCAL_RANK).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_tool_args(parser, argv):
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path, cfg_options=None, launcher='none'):
    """Read a config file with a clear error for a missing or unknown file.
    From here on checkpoints load weights-only on every torch
    (:func:`~mmscnet.utils.checkpoint_io.use_weights_only_loading`)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    if osp.splitext(path)[1] not in ('.py', '.json', '.yaml', '.yml'):
        raise ValueError(
            f'unknown config file type {path!r}: expected .py, .json, .yaml '
            'or .yml')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(
            f'{path}: default_scope must be one of {SCOPES} (inherit a config '
            f'of mmdet, mmseg, mmpretrain or mmpose), got {scope!r}')
    cfg.launcher = launcher
    checkpoint_io.use_weights_only_loading()
    return cfg


def _set_work_dir(cfg, config_path, work_dir):
    # CLI > config > ./work_dirs/<config name>, as in mmdet.
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def apply_train_args(cfg,
                     config_path,
                     work_dir=None,
                     amp=False,
                     auto_scale_lr=False,
                     resume=None):
    """``resume``: None (no resume), 'auto' (latest checkpoint in the work dir)
    or a path."""
    _set_work_dir(cfg, config_path, work_dir)
    if amp:
        use_amp(cfg)
    if auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(
                f'{config_path}: --auto-scale-lr needs '
                'auto_scale_lr=dict(base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        # mmengine reads work_dir/last_checkpoint; a newest checkpoint that is
        # cut short is named here, with the complete ones to choose from.
        from mmengine.runner import find_latest_checkpoint

        from mmscnet.utils.checkpoint_io import check_complete
        last = find_latest_checkpoint(cfg.work_dir) if osp.isdir(
            cfg.work_dir) else None
        if last:
            check_complete(
                last, 'the newest checkpoint (named in '
                f'{cfg.work_dir}/last_checkpoint)')
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        if '://' not in resume and not osp.isfile(resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {resume}')
        cfg.resume, cfg.load_from = True, resume
    else:
        last = Path(cfg.work_dir, 'last_checkpoint')
        if last.is_file():
            raise FileExistsError(
                f'{cfg.work_dir} holds the checkpoints of an earlier training '
                f'(last: {last.read_text().strip()}); a new training would '
                'overwrite them. Continue it with --resume, or give a new '
                '--work-dir')
    _use_crash_safe_checkpoints(cfg)
    from mmscnet.datasets.datacheck import (check_annotation_files,
                                            check_class_counts,
                                            use_data_checks)
    use_data_checks(cfg)
    check_annotation_files(
        cfg, ('train_dataloader', 'val_dataloader', 'val_evaluator'))
    if cfg.get('val_cfg') and cfg.get('val_dataloader'):
        check_class_counts(cfg, ('val_evaluator', ))
    return cfg


def use_amp(cfg):
    """``--amp``, as mmdet's tools/train.py does it, on a GPU: OptimWrapper
    becomes AmpOptimWrapper with dynamic loss scaling; a wrapper that is
    already AMP-capable is kept; any other type is refused, naming it.

    mmengine's AmpOptimWrapper asserts a GPU (NPU, MLU), so on a machine
    without one ``--amp`` means bf16 autocast through
    ``mmscnet.CPUAmpOptimWrapper``: OptimWrapper and AmpOptimWrapper (its
    loss scale dropped: bf16 needs none) become it, fp16 is refused."""
    from mmengine.device import get_device
    from mmengine.logging import print_log
    from mmengine.optim import AmpOptimWrapper
    from mmengine.registry import OPTIM_WRAPPERS

    from mmscnet.engine.optimizers import CPUAmpOptimWrapper
    kind = cfg.optim_wrapper.get('type', 'OptimWrapper')
    cls = OPTIM_WRAPPERS.get(kind) if isinstance(kind, str) else kind
    amp_capable = (AmpOptimWrapper, CPUAmpOptimWrapper)
    if get_device() == 'cpu' and not (isinstance(cls, type)
                                      and issubclass(cls, CPUAmpOptimWrapper)):
        if isinstance(cls, type) and issubclass(cls, AmpOptimWrapper):
            dtype = cfg.optim_wrapper.get('dtype')
            if dtype not in (None, 'bfloat16', 'bf16'):
                raise ValueError(
                    f'--amp: the config\'s optim_wrapper ({kind}) asks for '
                    f'dtype={dtype!r}, but this machine has no GPU: fp16 '
                    'mixed precision needs one. On the CPU set '
                    "dtype='bfloat16' (mmscnet.CPUAmpOptimWrapper), or train "
                    'without --amp')
        elif kind not in ('OptimWrapper', 'mmengine.OptimWrapper'):
            raise ValueError(
                '--amp turns OptimWrapper into mmscnet.CPUAmpOptimWrapper on '
                'a machine without a GPU, but the config\'s optim_wrapper.type'
                f' is {kind!r}: set an AMP-capable wrapper in the config '
                'instead of --amp')
        for key in ('loss_scale', 'use_fsdp'):
            cfg.optim_wrapper.pop(key, None)
        cfg.optim_wrapper.type = 'mmscnet.CPUAmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
        record_rewrite(
            cfg, kind, 'mmscnet.CPUAmpOptimWrapper',
            'asked for by --amp on a machine without a GPU: bf16 autocast '
            "(mmengine's AmpOptimWrapper needs a GPU)")
        return
    if isinstance(cls, type) and issubclass(cls, amp_capable):
        print_log(
            f'--amp: the config\'s optim_wrapper ({kind}) already does AMP; '
            'kept',
            logger='current')
        return
    if kind not in ('OptimWrapper', 'mmengine.OptimWrapper'):
        raise ValueError(
            '--amp turns OptimWrapper into AmpOptimWrapper, but the '
            f'config\'s optim_wrapper.type is {kind!r}: set an AMP-capable '
            'wrapper in the config instead of --amp')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    record_rewrite(cfg, 'OptimWrapper', 'AmpOptimWrapper',
                   'asked for by --amp (dynamic loss scale)')


def _use_crash_safe_checkpoints(cfg):
    """mmengine's CheckpointHook -> mmscnet.CheckpointHook (same arguments; see
    mmscnet/engine/hooks/checkpoint_hook.py)."""
    swap_types(
        cfg,
        cfg.get('default_hooks', {}).get('checkpoint'),
        ('CheckpointHook', 'mmengine.CheckpointHook'),
        'mmscnet.CheckpointHook',
        'the same hook, safe to kill while it saves (default_hooks.checkpoint)'
    )


def apply_test_args(cfg,
                    config_path,
                    checkpoint,
                    work_dir=None,
                    out=None,
                    show_dir=None,
                    tta=False,
                    deploy=None,
                    compile=False):
    """Point ``cfg`` at ``checkpoint`` and turn on the requested outputs."""
    if '://' not in checkpoint and not osp.isfile(
            checkpoint):  # URLs: mmengine's loaders
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    if out is not None and not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl or .pickle file, got {out!r}')
    _set_work_dir(cfg, config_path, work_dir)
    cfg.load_from = checkpoint
    from mmscnet.datasets.datacheck import (check_annotation_files,
                                            check_class_counts,
                                            use_data_checks)
    use_data_checks(cfg)
    check_annotation_files(cfg, ('test_dataloader', 'test_evaluator'))
    check_class_counts(cfg, ('test_evaluator', ))
    adapter = get_adapter(cfg.default_scope)
    if show_dir is not None:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise ValueError(
                f'{config_path}: --show-dir needs default_hooks.visualization')
        adapter.show(cfg, hook, show_dir)
    if tta:
        adapter.tta(cfg, config_path)
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        record_rewrite(cfg, 'model / test pipeline',
                       f'{cfg.tta_model.type} / tta_pipeline',
                       'asked for by --tta')
    if compile and deploy is None:
        raise ValueError(
            '--compile compiles the deployed backbone: give --deploy too '
            '(--deploy --compile, or --deploy bf16 --compile)')
    if deploy is not None:
        from mmscnet.deploy import PRECISIONS
        if deploy not in PRECISIONS:
            raise ValueError(
                f'--deploy must be one of {PRECISIONS}, got {deploy!r}')
        # Once the checkpoint is loaded: fold BN into convs, channels_last,
        # maybe bf16.
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='mmscnet.DeployHook', precision=deploy, compile=compile)
        ]
        record_rewrite(
            cfg, 'custom_hooks', 'custom_hooks + mmscnet.DeployHook',
            f'asked for by --deploy {deploy}' +
            (' --compile' if compile else ''))
    if out is not None:
        metrics = cfg.test_evaluator
        metrics = list(metrics) if isinstance(metrics,
                                              (list, tuple)) else [metrics]
        cfg.test_evaluator = metrics + [
            dict(type=adapter.dump_metric, out_file_path=out)
        ]
        record_rewrite(cfg, 'test_evaluator',
                       f'test_evaluator + {adapter.dump_metric}',
                       f'asked for by --out {out}')
    return cfg


BACKENDS = ('pytorch', 'onnxruntime', 'openvino')


def apply_backend_test_args(cfg,
                            config_path,
                            graph_path,
                            backend,
                            work_dir=None,
                            out=None,
                            show_dir=None):
    """``tools/test.py CONFIG GRAPH --backend onnxruntime|openvino``: the
    config's test loop and evaluator on the exported graph at
    ``graph_path`` (tools/deployment/export.py). Returns the model the
    Runner is to test (:class:`mmscnet.deploy.runtime_model.RuntimeModel`)
    in place of the config's, which stays in the config as it is."""
    if backend not in BACKENDS[1:]:
        raise ValueError(
            f'--backend must be one of {BACKENDS}, got {backend!r}')
    if cfg.get('runner_type'):
        raise ValueError(f'{config_path}: --backend runs mmengine\'s Runner; '
                         f'the config asks for runner_type '
                         f'{cfg.runner_type!r}')
    if cfg.launcher != 'none':
        raise ValueError('--backend runs in one process on the CPU: drop '
                         f'--launcher {cfg.launcher}')
    adapter = get_adapter(cfg.default_scope)
    apply_test_args(cfg, config_path, graph_path, work_dir, out, show_dir)
    cfg.load_from = None  # the graph carries the weights
    from mmscnet.deploy.runtime_model import RuntimeModel
    model = RuntimeModel(adapter, cfg, graph_path, backend)
    record_rewrite(
        cfg, 'model', f'{graph_path} in {backend}',
        f'asked for by --backend {backend}: the test loop runs the exported '
        "graph through the runtime's own preprocessing")
    return model


def build_runner(cfg, model=None):
    """mmengine's Runner for ``cfg``; with ``model``, that module in place
    of the one the config builds (the config itself is saved unchanged)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmscnet.utils.dist_utils import setup_distributed
    setup_distributed(cfg)
    if model is not None:

        class _Runner(Runner):

            def build_model(self, _):
                return model

        return _finish_runner(cfg, _Runner.from_cfg)
    return _finish_runner(
        cfg, Runner.from_cfg if 'runner_type' not in cfg else RUNNERS.build)


def _finish_runner(cfg, make):
    if cfg.get('randomness', {}).get('deterministic'):
        # cuBLAS refuses deterministic mode without a fixed workspace.
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    rewrites = pop_rewrites(cfg)  # never into the config the Runner saves
    runner = make(cfg)
    log_rewrites(rewrites, runner.logger)
    get_adapter(cfg.default_scope).prepare_model(runner.model)
    return runner
