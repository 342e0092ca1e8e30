"""What tools/train.py and tools/test.py do to a config and a runner, as
functions the tests cover.

They serve configs of mmdet, mmseg, mmpretrain and mmpose alike: the config's
``default_scope`` says which library's registries build its parts, and
:data:`ADAPTERS` holds everything in which the four libraries differ for
the tools (painting, TTA, dumping predictions, the released checkpoints).
"""
import os
import os.path as osp
import warnings
from copy import deepcopy
from pathlib import Path

from mmengine.config import Config, ConfigDict



def replace_types(node, old_types, new_type):
    """Set ``type=new_type`` on every dict of a config tree (nested dicts,
    lists, tuples) whose ``type`` is in ``old_types``; return how many."""
    changed = 0
    if isinstance(node, dict):
        if node.get('type') in old_types:
            node['type'] = new_type
            changed += 1
        for value in node.values():
            changed += replace_types(value, old_types, new_type)
    elif isinstance(node, (list, tuple)):
        for value in node:
            changed += replace_types(value, old_types, new_type)
    return changed


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
                         f'mmdet, mmseg, mmpretrain or mmpose), got {scope!r}')
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
        from mmscnet.checkpoint_io import check_complete
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
    from mmscnet.datacheck import check_annotation_files, check_class_counts, use_data_checks
    use_data_checks(cfg)
    check_annotation_files(cfg, ('train_dataloader', 'val_dataloader', 'val_evaluator'))
    if cfg.get('val_cfg') and cfg.get('val_dataloader'):
        check_class_counts(cfg, ('val_evaluator', ))
    return cfg


def _use_crash_safe_checkpoints(cfg):
    """mmengine's CheckpointHook -> mmscnet.CheckpointHook (same arguments; see mmscnet/hooks.py)."""
    replace_types(cfg.get('default_hooks', {}).get('checkpoint'),
                  ('CheckpointHook', 'mmengine.CheckpointHook'), 'mmscnet.CheckpointHook')


def _det_tta(cfg, config_path):
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


def _config_tta(cfg, config_path):
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise ValueError(f'{config_path}: --tta needs tta_model and tta_pipeline in the config')


def _det_show(cfg, hook, show_dir):
    hook.update(draw=True, test_out_dir=show_dir)  # the hook puts it under work_dir/<time>/


def _seg_show(cfg, hook, show_dir):
    hook.update(draw=True, interval=1)  # mmseg's hook otherwise paints every 50th image
    cfg.visualizer.save_dir = osp.join(cfg.work_dir, show_dir)  # never into the cwd


def _cls_show(cfg, hook, show_dir):
    hook.update(enable=True, interval=1, out_dir=osp.join(cfg.work_dir, show_dir))


def _pose_show(cfg, hook, show_dir):
    # One PNG per image with all its persons, ground truth beside prediction.
    hook.update(type='mmscnet.PoseVisualizationHook', enable=True, out_dir=show_dir)
    # mmpose's own visualizer fails on every keypoint under NumPy 2.
    replace_types(cfg.visualizer, ('PoseLocalVisualizer', ), 'mmscnet.PoseLocalVisualizer')


def accept_released_classifier(model):
    """Let an mmpretrain classifier load the authors' released checkpoints
    (``conv1.*``, ``fc.*``) as well as its own layout."""
    from mmscnet.checkpoint_io import register_load_pre_hook
    from mmscnet.converters import rename_released_classifier
    register_load_pre_hook(model, rename_released_classifier)


# default_scope -> how that library paints test images (--show-dir), does TTA
# without a config entry (--tta), dumps raw predictions (--out), and what its
# models need to load the authors' checkpoints.
ADAPTERS = {
    'mmdet': dict(show=_det_show, tta=_det_tta, dump='DumpDetResults', model=None),
    'mmseg': dict(show=_seg_show, tta=_config_tta, dump='DumpResults', model=None),
    'mmpretrain': dict(show=_cls_show, tta=_config_tta, dump='DumpResults',
                       model=accept_released_classifier),
    # mmpose flips at test time through the model's test_cfg (flip_test), not a TTA model.
    'mmpose': dict(show=_pose_show, tta=_config_tta, dump='DumpResults', model=None),
}
SCOPES = tuple(ADAPTERS)


def apply_test_args(cfg, config_path, checkpoint, work_dir=None, out=None, show_dir=None,
                    tta=False, deploy=None, compile=False):
    """Point ``cfg`` at ``checkpoint`` and turn on the requested outputs."""
    if '://' not in checkpoint and not osp.isfile(checkpoint):  # URLs: mmengine's loaders
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    if out is not None and not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl or .pickle file, got {out!r}')
    _set_work_dir(cfg, config_path, work_dir)
    cfg.load_from = checkpoint
    from mmscnet.datacheck import check_annotation_files, check_class_counts, use_data_checks
    use_data_checks(cfg)
    check_annotation_files(cfg, ('test_dataloader', 'test_evaluator'))
    check_class_counts(cfg, ('test_evaluator', ))
    adapter = ADAPTERS[cfg.default_scope]
    if show_dir is not None:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise ValueError(f'{config_path}: --show-dir needs default_hooks.visualization')
        adapter['show'](cfg, hook, show_dir)
    if tta:
        adapter['tta'](cfg, config_path)
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    if compile and deploy is None:
        raise ValueError('--compile compiles the deployed backbone: give --deploy too '
                         '(--deploy --compile, or --deploy bf16 --compile)')
    if deploy is not None:
        from mmscnet.deploy import PRECISIONS
        if deploy not in PRECISIONS:
            raise ValueError(f'--deploy must be one of {PRECISIONS}, got {deploy!r}')
        # Once the checkpoint is loaded: fold BN into convs, channels_last, maybe bf16.
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='mmscnet.DeployHook', precision=deploy, compile=compile)]
    if out is not None:
        metrics = cfg.test_evaluator
        metrics = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
        cfg.test_evaluator = metrics + [dict(type=adapter['dump'], out_file_path=out)]
    return cfg


def build_runner(cfg):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmscnet.distributed import setup_distributed
    setup_distributed(cfg)
    if cfg.get('randomness', {}).get('deterministic'):
        # cuBLAS refuses PyTorch's deterministic mode without a fixed workspace.
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    prepare_model = ADAPTERS[cfg.default_scope]['model']
    if prepare_model is not None:
        prepare_model(runner.model)
    return runner
