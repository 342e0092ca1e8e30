import fcntl
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(
    0, os.path.dirname(__file__))  # reference_scnet and other test helpers
sys.path.insert(0, str(REPO /
                       'tools'))  # tools/train.py and tools/test.py as modules
sys.path.insert(0, str(REPO / 'tools' / 'analysis_tools'))  # benchmark.py
sys.path.insert(0, str(REPO / 'tools' / 'deployment'))  # pytorch2onnx.py
TOY_CONFIG = str(REPO /
                 'configs/detection/toy/mask-rcnn_scnet50_fpn_toy-coco.py')

# Set on a pytest-xdist worker (pytest_configure): its count of workers.
# Read from xdist's own config rather than the environment, which the
# processes that tests start (kernel cells running pytest) inherit.
XDIST_WORKERS = None


def worker_threads(workers):
    """Threads for one of ``workers`` pytest-xdist workers: the CPUs this
    process may use, shared out among them, so that two workers of
    compute-bound tests do not oversubscribe the cores."""
    return max(1, len(os.sched_getaffinity(0)) // int(workers))


def pytest_configure(config):
    global XDIST_WORKERS
    worker = getattr(config, 'workerinput', None)
    if worker is not None:
        XDIST_WORKERS = int(worker['workercount'])
        threads = worker_threads(XDIST_WORKERS)
        # The worker's own kernels, and the tools and fresh interpreters its
        # tests start (they inherit the environment).
        torch.set_num_threads(threads)
        for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
            os.environ[var] = str(threads)
    config.addinivalue_line(
        'markers',
        'downstream: needs a downstream library (mmdet, mmpretrain, ...); the '
        'compatibility job (tools/compat_env.sh), which installs only torch, '
        'mmengine and mmcv-lite, deselects these')
    config.addinivalue_line(
        'markers', 'quick: the unit tier (make test-quick, under 5 minutes '
        'on 2 cores): set by QUICK_MODULES below, not by hand')
    config.addinivalue_line(
        'markers', 'slow: runs a tool or a fresh interpreter; left out of '
        'the quick tier even in a quick module')


# The unit tier: the backbone, its parity and errors, the registries, the
# checkpoint loader and converters, metafiles, layout and docs. Every test of
# these modules is `quick` unless marked `slow`; everything else (trainings
# through the tools, distributed runs, deploy, the per-ISA cells) is only in
# the full suite.
QUICK_MODULES = {
    'test_scnet.py', 'test_scnet_parity.py', 'test_scnet_errors.py',
    'test_self_calibrated_conv.py', 'test_convert.py', 'test_compare_runs.py',
    'test_checkpoint_io.py', 'test_converters.py', 'test_analysis.py',
    'test_registry.py', 'test_layout.py', 'test_metafile.py',
    'test_plot_logs.py', 'test_docker.py', 'test_parity.py'
}


def pytest_report_header(config):
    workers = config.getoption('numprocesses', None)
    if workers:
        return (f'xdist: {workers} workers, each with '
                f'{worker_threads(workers)} threads (OMP_NUM_THREADS, '
                'torch.set_num_threads)')


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (item.path.name in QUICK_MODULES
                and item.get_closest_marker('slow') is None):
            item.add_marker(pytest.mark.quick)


@pytest.fixture(autouse=True)
def _quiet_and_deterministic():
    # mmengine logs a line per parameter on init_weights: keep output short.
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    torch.manual_seed(0)
    # A test that sets mmengine's default scope (init_default_scope, a
    # Runner) must not change the registry the next test's build goes to.
    from mmengine.registry import DefaultScope
    scopes = dict(DefaultScope._instance_dict)
    yield
    logger.setLevel(level)
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(scopes)


@pytest.fixture(scope='session')
def toy_detector(tmp_path_factory):
    """(toy COCO root, checkpoint): the toy Mask R-CNN trained through
    tools/train.py for 2 epochs on 8 generated images (4 for validation), a
    checkpoint as the tool writes it (message hub, optimizer, dataset meta).
    Trained once for every test that only needs some trained detector."""
    from mmscnet.testing.toy_data import generate_toy_coco

    def make(folder):
        root = str(folder / 'coco')
        generate_toy_coco(root, num_train=8, num_val=4, image_size=(128, 128))
        return root, train_toy_detector(root, folder / 'work', epochs=2)

    return tuple(once_per_run(tmp_path_factory, 'toy_detector', make))


def once_per_run(tmp_path_factory, name, make):
    """``make(folder)`` (its result JSON-serialisable) run once per pytest run
    for a session fixture: under pytest-xdist each worker is a session of
    its own, so the first worker to ask makes it under a lock in the run's
    shared temporary folder and the others take its result."""
    if XDIST_WORKERS is None:
        return make(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / name
    with open(f'{folder}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / 'result.json'
        if done.exists():
            return json.loads(done.read_text())
        if folder.exists():  # a worker that failed to make it
            import shutil
            shutil.rmtree(folder)
        folder.mkdir()
        result = make(folder)
        done.write_text(json.dumps(result))
        return result


# A depth-101 config that equals its SCNet-50 twin except in these keys (the
# depth, its ImageNet weights, loader sizes) trains on the same code path:
# its one-iteration training would prove nothing the twin's does not, so
# the per-config trainings skip it (`trained_configs`) and
# test_metafile.py's test_scnet101_configs_differ_from_their_twin_in_depth_only
# holds each such config to that.
TWIN_KEYS = re.compile(r'model\.backbone\.(depth|init_cfg\.checkpoint)'
                       r'|auto_scale_lr\.base_batch_size'
                       r'|\w+_dataloader\.(batch_size|num_workers)')


def scnet50_twin(config):
    """The SCNet-50 (SCNeXt-50) config of the same folder, recipe and dataset
    as an SCNet-101 (SCNeXt-101) config (batch sizes may differ), or None."""

    def recipe(path):
        name = re.sub(r'sc(net|next)101', r'sc\g<1>50', os.path.basename(path))
        return re.sub(r'\d+xb\d+', 'NxbM', name)

    deep = re.search(r'sc(net|next)101', os.path.basename(config))
    if not deep:
        return None
    twins = [
        str(p) for p in Path(config).parent.glob('*.py')
        if f'sc{deep[1]}50' in p.name and recipe(p) == recipe(config)
    ]
    return twins[0] if len(twins) == 1 else None


def trained_configs(configs):
    """The configs whose one-iteration training proves something: all but the
    SCNet-101 ones with an SCNet-50 twin (see TWIN_KEYS)."""
    return [c for c in configs if scnet50_twin(c) is None]


def rel_diff(a, b):
    """max |a - b| / max |b|: the relative max difference the parity items use.
    """
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def cfg_options_argv(opts):
    """--cfg-options arguments as a user would type them (tuples as (a,b))."""

    def fmt(v):
        return '(' + ','.join(map(str, v)) + ')' if isinstance(
            v, tuple) else str(v)

    return ['--cfg-options'] + [f'{k}={fmt(v)}' for k, v in opts.items()]


def run_tool(args, fresh=False, env=None):
    """Run a repository tool (``args``: its path and arguments) as
    ``python tools/...`` runs it: as ``__main__``, with this ``sys.argv``,
    its output and exit status returned as a CompletedProcess.

    By default in this process: a tool's own work takes seconds here, while
    a fresh interpreter spends 6 to 10 s importing torch and the downstream
    library first. Each tool is also run once with ``fresh=True``, in a
    fresh interpreter (tests/README.md, "Tools in this process"), which is
    what proves it runs as a program. ``env``: extra environment variables
    for the run."""
    if fresh:
        return subprocess.run(
            [sys.executable] + args,
            capture_output=True,
            text=True,
            cwd=REPO,
            env=dict(os.environ, **(env or {})))
    return _run_tool_here(args, env or {})


def _manager_classes(cls=None):
    """mmengine's global-instance classes (MMLogger, MessageHub, Visualizer
    and its subclasses, DefaultScope ...): a Runner names its instances by a
    timestamp, to the second."""
    from mmengine.utils import ManagerMixin
    cls = cls or ManagerMixin
    for sub in cls.__subclasses__():
        yield sub
        yield from _manager_classes(sub)


def _run_tool_here(args, env):
    import contextlib
    import io
    import runpy
    import traceback
    import warnings
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv = dict(os.environ), sys.argv
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    # mmengine's named instances start empty, as in a fresh interpreter:
    # configs of different libraries name their visualizers alike
    # ('visualizer'), and a hook takes the current one.
    managers = {c: dict(c._instance_dict) for c in _manager_classes()}
    for c in managers:
        c._instance_dict.clear()
    os.environ.update(env)
    sys.argv = [str(REPO / args[0])] + [str(a) for a in args[1:]]
    script_dir = os.path.dirname(sys.argv[0])
    sys.path.insert(0, script_dir)  # as python puts it
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(
                err), warnings.catch_warnings(), contextlib.chdir(REPO):
            runpy.run_path(sys.argv[0], run_name='__main__')
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None:
            code = e.code or 0
        else:
            err.write(f'{e.code}\n')
            code = 1
    except Exception:
        err.write(traceback.format_exc())
        code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        sys.path.remove(script_dir)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        # The run's loggers, message hubs and visualizers go with it (their
        # handlers write to the captured streams, and the next run in the
        # same second would get them back by name); the test's come back.
        kept = {id(i) for d in managers.values() for i in d.values()}
        for c in _manager_classes():
            for inst in c._instance_dict.values():
                if id(inst) in kept:
                    continue
                for h in getattr(inst, 'handlers', [])[:]:
                    h.close()
                    inst.removeHandler(h)
            c._instance_dict.clear()
            c._instance_dict.update(managers.get(c, {}))
    return subprocess.CompletedProcess(['python'] + list(args), code,
                                       out.getvalue(), err.getvalue())


def train_toy_detector(root, work, epochs):
    """Train the toy Mask R-CNN on the toy set at ``root`` through
    tools/train.py
    (batch 4, no validation); returns the last checkpoint's path."""
    opts = dict(
        data_options(TOY_CONFIG, root), **{
            'train_cfg.max_epochs': epochs,
            'train_cfg.val_interval': epochs + 1,
            'train_dataloader.batch_size': 4
        })
    out = run_tool(
        ['tools/train.py', TOY_CONFIG, '--work-dir',
         str(work)] + cfg_options_argv(opts),
        fresh=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return str(Path(work) / f'epoch_{epochs}.pth')


def dataset_keys(cfg, loader):
    """Dotted key of the innermost dataset of a dataloader (RepeatDataset etc.
    unwrapped)."""
    key, ds = f'{loader}.dataset', cfg[loader]['dataset']
    while 'dataset' in ds:
        key, ds = key + '.dataset', ds['dataset']
    return key, ds


TOY_CLASSES = ('person', 'ball', 'box')


def data_options(config, root, scale=(128, 128)):
    """--cfg-options that point a COCO config at the toy set: data paths, its
    classes (names and the heads' num_classes) and image size only."""
    from mmscnet.datasets.datacheck import model_num_classes
    cfg = Config.fromfile(config)
    opts = {key: len(TOY_CLASSES) for key, _ in model_num_classes(cfg.model)}
    for loader, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'val'), ('test_dataloader',
                                                      'val')):
        key, ds = dataset_keys(cfg, loader)
        # In-process loading: worker processes cost more than they save on a
        # few tiny images, and persistent ones outlive each test.
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
        opts[f'{key}.data_root'] = root + '/'
        opts[f'{key}.ann_file'] = f'annotations/instances_{split}.json'
        opts[f'{key}.data_prefix.img'] = f'{split}/'
        opts[f'{key}.metainfo.classes'] = TOY_CLASSES
        for i, t in enumerate(ds['pipeline']):
            if t['type'] in ('Resize', 'RandomResize', 'RandomChoiceResize'):
                opts[f'{key}.pipeline.{i}.type'] = 'Resize'
                opts[f'{key}.pipeline.{i}.scale'] = scale
                opts[f'{key}.pipeline.{i}.keep_ratio'] = True
    for ev in ('val_evaluator', 'test_evaluator'):
        opts[f'{ev}.ann_file'] = f'{root}/annotations/instances_val.json'
    return opts
