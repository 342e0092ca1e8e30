"""What tools/train.py and tools/test.py do, as functions the tests cover.

They serve configs of mmdet, mmseg and mmpretrain alike: the config's
``default_scope`` says which library's registries build its parts.
"""
import os
import os.path as osp
import warnings
from copy import deepcopy
from pathlib import Path

from mmengine.config import Config, ConfigDict

SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


def add_common_args(parser):
    """--cfg-options, --launcher and --local-rank, shared by tools/train.py and tools/test.py."""
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. '
                        'train_dataloader.batch_size=4)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK itself.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_tool_args(parser, argv):
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path, cfg_options=None, launcher='none'):
    """Read a config file with a clear error for a missing or unknown file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    if osp.splitext(path)[1] not in ('.py', '.json', '.yaml', '.yml'):
        raise ValueError(f'unknown config file type {path!r}: expected .py, .json, .yaml or .yml')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(f'{path}: default_scope must be one of {SCOPES} (inherit a config of '
                         f'mmdet, mmseg or mmpretrain), got {scope!r}')
    cfg.launcher = launcher
    return cfg


def _set_work_dir(cfg, config_path, work_dir):
    # CLI > config > ./work_dirs/<config name>, as in mmdet.
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def apply_train_args(cfg, config_path, work_dir=None, amp=False, auto_scale_lr=False,
                     resume=None):
    """``resume``: None (no resume), 'auto' (latest checkpoint in the work dir) or a path."""
    _set_work_dir(cfg, config_path, work_dir)
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(f'{config_path}: --auto-scale-lr needs '
                             'auto_scale_lr=dict(base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        # mmengine reads work_dir/last_checkpoint; a newest checkpoint that is
        # cut short is named here, with the complete ones to choose from.
        from mmengine.runner import find_latest_checkpoint
        from mmscnet.checkpoint import check_complete
        last = find_latest_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
        if last:
            check_complete(last, f'the newest checkpoint (named in {cfg.work_dir}/last_checkpoint)')
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        if '://' not in resume and not osp.isfile(resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {resume}')
        cfg.resume, cfg.load_from = True, resume
    else:
        last = Path(cfg.work_dir, 'last_checkpoint')
        if last.is_file():
            raise FileExistsError(
                f'{cfg.work_dir} holds the checkpoints of an earlier training (last: '
                f'{last.read_text().strip()}); a new training would overwrite them. Continue '
                'it with --resume, or give a new --work-dir')
    _use_crash_safe_checkpoints(cfg)
    from mmscnet.datacheck import check_annotation_files, use_data_checks
    use_data_checks(cfg)
    check_annotation_files(cfg, ('train_dataloader', 'val_dataloader', 'val_evaluator'))
    return cfg


def _use_crash_safe_checkpoints(cfg):
    """mmengine's CheckpointHook -> mmscnet.CheckpointHook (same arguments; see mmscnet/hooks.py)."""
    hook = cfg.get('default_hooks', {}).get('checkpoint')
    if hook is not None and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        hook.type = 'mmscnet.CheckpointHook'


def _default_det_tta(cfg):
    # mmdet's own default: horizontal-flip TTA merged by NMS.
    if 'tta_model' not in cfg:
        warnings.warn('no tta_model in the config: using flip TTA with NMS (mmdet default)')
        cfg.tta_model = dict(type='DetTTAModel',
                             tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                          max_per_img=100))
    if 'tta_pipeline' not in cfg:
        warnings.warn('no tta_pipeline in the config: flipping the test pipeline')
        data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in data_cfg:
            data_cfg = data_cfg['dataset']
        cfg.tta_pipeline = deepcopy(data_cfg.pipeline)
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                        [dict(type='PackDetInputs',
                              meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                         'scale_factor', 'flip', 'flip_direction'))]])


def apply_test_args(cfg, config_path, checkpoint, work_dir=None, out=None, show_dir=None,
                    tta=False):
    """Point ``cfg`` at ``checkpoint`` and turn on the requested outputs."""
    if '://' not in checkpoint and not osp.isfile(checkpoint):  # URLs: mmengine's loaders
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    if out is not None and not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl or .pickle file, got {out!r}')
    _set_work_dir(cfg, config_path, work_dir)
    cfg.load_from = checkpoint
    from mmscnet.datacheck import check_annotation_files, use_data_checks
    use_data_checks(cfg)
    check_annotation_files(cfg, ('test_dataloader', 'test_evaluator'))
    scope = cfg.default_scope
    if show_dir is not None:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise ValueError(f'{config_path}: --show-dir needs default_hooks.visualization')
        if scope == 'mmdet':
            hook.update(draw=True, test_out_dir=show_dir)  # the hook puts it under work_dir/<time>/
        else:
            # Relative paths go under the work dir here too, never into the cwd.
            show_dir = osp.join(cfg.work_dir, show_dir)
            if scope == 'mmseg':
                # mmseg's hook otherwise paints only every 50th image
                hook.update(draw=True, interval=1)
                cfg.visualizer.save_dir = show_dir
            else:
                hook.update(enable=True, interval=1, out_dir=show_dir)
    if tta:
        if scope == 'mmdet':
            _default_det_tta(cfg)
        elif 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError(f'{config_path}: --tta needs tta_model and tta_pipeline in the config')
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg


def released_classifier_state(cfg, checkpoint):
    """For an mmpretrain config, a checkpoint in the authors' layout mapped to
    mmpretrain's keys (backbone.*, head.fc.*); None for any other checkpoint."""
    if cfg.default_scope != 'mmpretrain':
        return None
    from mmscnet.converters import is_released_layout, load_state_dict_file, \
        released_to_mmpretrain
    state_dict = load_state_dict_file(checkpoint)
    return released_to_mmpretrain(state_dict) if is_released_layout(state_dict) else None


def load_released_classifier(runner, state_dict):
    """Load a mapped released checkpoint into the runner's model. mmengine logs
    every key it could not place (missing or unexpected)."""
    from mmengine.runner.checkpoint import load_state_dict
    runner.logger.info('checkpoint in the SCNet release layout: mapped to backbone.* / head.fc.*')
    model = getattr(runner.model, 'module', runner.model)  # a TTA wrapper holds it as .module
    load_state_dict(model, state_dict, strict=False, logger=runner.logger)


def build_runner(cfg):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmscnet.distributed import setup_distributed
    setup_distributed(cfg)
    if cfg.get('randomness', {}).get('deterministic'):
        # cuBLAS refuses PyTorch's deterministic mode without a fixed workspace.
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def add_dump_metric(runner, scope, out):
    """Save the raw predictions of a test run to ``out`` (a pickle)."""
    if scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        metric = DumpDetResults(out_file_path=out)
    else:
        from mmengine.evaluator import DumpResults
        metric = DumpResults(out_file_path=out)
    runner.test_evaluator.metrics.append(metric)
