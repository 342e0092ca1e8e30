"""Speed and memory of SCNet beside ResNet of the same depth, measured in one
process with interleaved rounds: what tools/analysis_tools/benchmark.py runs.

Each *case* is a callable doing one unit of work (a training step, a forward
pass); :func:`timed_rounds` calls all cases once per round, in a rotating
order, so that the machine's drift (other jobs, clock changes) hits every case
alike. Figures are medians with min/max; ratios are taken between medians of
the same run.
"""
import copy
import inspect
import statistics
import time

import torch

# Keyword arguments of SCNet that ResNet does not take.
SCNET_ONLY = ('pooling_r', 'pooling_type', 'with_identity', 'upsample_mode',
              'avd')


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed_rounds(cases, repeat=10, warmup=2, device='cpu'):
    """``{name: [seconds per call, one per round]}`` for ``{name: callable}``.
    """
    device = torch.device(device)
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    times = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            _sync(device)
            start = time.perf_counter()
            cases[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def summarize(samples):
    return dict(
        median=statistics.median(samples), min=min(samples), max=max(samples))


def autocast(device, precision):
    """fp32: nothing; bf16 (CPU or GPU) / fp16 (GPU): torch.autocast."""
    device = torch.device(device)
    if precision == 'fp32':
        return torch.autocast(device.type, enabled=False)
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}[precision]
    if device.type == 'cpu' and precision == 'fp16':
        raise ValueError('fp16 autocast is for GPUs; on the CPU use bf16')
    return torch.autocast(device.type, dtype=dtype)


def resnet_twin(backbone_cfg, library='mmdet'):
    """The ResNet config of the same depth and layout as an SCNet config:
    SCNet -> ResNet, SCNetV1d -> ResNetV1d, SCNet-only arguments dropped."""
    import importlib
    cfg = dict(backbone_cfg)
    kind = cfg.pop('type').split('.')[-1]
    name = {'SCNet': 'ResNet', 'SCNetV1d': 'ResNetV1d'}.get(kind)
    if name is None:
        raise ValueError(
            f'no ResNet twin for backbone type {kind!r}: expected SCNet or '
            'SCNetV1d')
    registry = importlib.import_module(f'{library}.registry').MODELS
    cls = registry.get(name)
    accepted = set(inspect.signature(cls.__init__).parameters)
    for base in cls.__mro__[1:]:  # ResNetV1d passes **kwargs on to ResNet
        if base.__init__ is not object.__init__:
            accepted |= set(inspect.signature(base.__init__).parameters)
    cfg = {
        k: v
        for k, v in cfg.items() if k not in SCNET_ONLY and k in accepted
    }
    return dict(type=f'{library}.{name}', **cfg)


def build_backbones(type_='mmscnet.SCNet', depth=50, **kwargs):
    """SCNet and mmdet's ResNet of the same depth, both random-initialised."""
    from mmengine.registry import MODELS
    scnet_cfg = dict(type=type_, depth=depth, **kwargs)
    scnet = MODELS.build(scnet_cfg)
    resnet = MODELS.build(resnet_twin(scnet_cfg))
    return scnet, resnet


def train_step(model, x, precision='fp32'):
    """One SGD step of ``model`` on ``x`` (forward, a scalar loss over all
    outputs, backward, update) as a callable."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(x.device, precision):
            outs = model(x)
        loss = sum(o.float().mean() for o in outs)
        loss.backward()
        optimizer.step()

    return step


def inference(model, x, precision='fp32'):
    model.eval()

    def run():
        with torch.no_grad(), autocast(x.device, precision):
            model(x)

    return run


def saved_activation_bytes(model, x):
    """Bytes of activations a training forward keeps for backward: the
    tensors autograd saves, parameters excluded, each storage counted once.
    (With ``with_cp`` the checkpointed blocks' own tensors are recomputed in
    backward and are not kept, so they are not counted.)"""
    model.train()
    params = {p.data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        if t.data_ptr() not in params:
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outs = model(x)
    del outs
    return sum(seen.values())


def peak_training_memory(model, x):
    """Peak memory of a training step: allocator peak on a GPU; on the CPU,
    which has no allocator statistics, :func:`saved_activation_bytes`."""
    if x.device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        train_step(model, x)()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    return saved_activation_bytes(model, x)


def clone_with(model, **attrs):
    m = copy.deepcopy(model)
    for mod in m.modules():
        for k, v in attrs.items():
            if hasattr(mod, k):
                setattr(mod, k, v)
    return m


def profile_ops(step, top=10):
    """``[(operator, self CPU ms, calls)]``: where one call of ``step`` spends
    its time."""
    from torch.profiler import ProfilerActivity, profile
    step()  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    rows = [(e.key, e.self_cpu_time_total / 1e3, e.count)
            for e in prof.key_averages()]
    rows.sort(key=lambda r: -r[1])
    return rows[:top], sum(r[1] for r in rows)


# ---------------------------------------------------------------- whole models


def build_config_pair(config, cfg_options=None):
    """The model of an mmdet/mmseg/mmpretrain/mmpose config, and the same
    model with the ResNet twin as backbone; random weights, nothing downloaded.
    """
    import importlib

    from mmengine.registry import init_default_scope

    from mmscnet.apis.tool_setup import load_config
    cfg = load_config(config, cfg_options)
    scope = cfg.default_scope
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.get('backbone', {}).pop('init_cfg', None)
    model_cfg.pop('pretrained', None)
    if 'backbone' not in model_cfg or not str(
            model_cfg.backbone.type).startswith('mmscnet.'):
        raise ValueError(
            f'{config}: the model has no mmscnet backbone to compare')
    scnet = registry.build(model_cfg)
    twin_cfg = copy.deepcopy(model_cfg)
    twin_cfg.backbone = resnet_twin(model_cfg.backbone, scope)
    resnet = registry.build(twin_cfg)
    return cfg, scnet, resnet


def config_test_shape(cfg):
    """(H, W) the config tests at: its Resize scale, long side first for mmdet.
    """
    for t in cfg.get('test_pipeline',
                     cfg.test_dataloader.dataset.get('pipeline', [])):
        if t['type'] in ('Resize', 'RandomResize') and 'scale' in t:
            w, h = t['scale']
            return (min(w, h), max(w, h)) if t.get('keep_ratio') else (h, w)
        if t['type'] == 'ResizeEdge':
            return (t['scale'], t['scale'])
        if t['type'] == 'TopdownAffine':
            w, h = t['input_size']
            return (h, w)
    if 'crop_size' in cfg:
        return tuple(cfg.crop_size)
    raise ValueError(
        'cannot tell the test size of this config: give --shape H W')


def packed_batch(scope, model, batch_size, shape, training):
    """A batch in the library's packed format, through the model's data
    preprocessor (mmscnet/adapters/ packs it for each library)."""
    from mmscnet.adapters import get_adapter
    return get_adapter(scope).packed_batch(model, batch_size, shape, training)


def whole_model_cases(scope,
                      model,
                      batch_size,
                      shape,
                      precision,
                      train,
                      data=None):
    """``predict`` (and with ``train`` a training iteration) of a whole model;
    ``data``: the packed eval batch (default: a random one)."""
    device = next(model.parameters()).device
    cases = {}
    model.eval()
    if data is None:
        data = packed_batch(scope, model, batch_size, shape, False)

    def predict():
        with torch.no_grad(), autocast(device, precision):
            model(**data, mode='predict')

    cases['inference'] = predict
    if train:
        train_data = packed_batch(scope, model, batch_size, shape, True)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=1e-5, momentum=0.9)

        def step():
            model.train()
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, precision):
                losses = model(**train_data, mode='loss')
            loss, _ = model.parse_losses(losses)
            loss.backward()
            optimizer.step()
            model.eval()

        cases['train'] = step
    return cases


def exported_cases(scope, model, data, workdir, threads=None, openvino=True):
    """The whole model as tools/deployment/export.py exports it, run on the
    packed eval batch ``data`` in ONNX Runtime and OpenVINO (fp32): the
    graph only, as ``predict`` times the network and its post-processing."""
    import os.path as osp

    import numpy as np

    from mmscnet.adapters import get_adapter
    from mmscnet.deploy.graph.onnx import export_graph
    from mmscnet.deploy.runtime import open_session
    module = get_adapter(scope).export_module(model)
    h, w = data['inputs'].shape[2:]
    path = osp.join(workdir, 'model.onnx')
    export_graph(module, module.example(2, h, w), path, module.input_names,
                 module.output_names, module.dynamic_shapes())
    feeds = {'images': data['inputs'].cpu().numpy()}
    if 'img_shape' in module.input_names:
        feeds['img_shape'] = np.array(
            [s.img_shape for s in data['data_samples']], np.float32)
    cases = {}
    for backend in ('onnxruntime',
                    'openvino') if openvino else ('onnxruntime', ):
        run = open_session(path, backend, 'fp32', threads)
        cases[f'{backend} fp32'] = lambda run=run: run(feeds)
    return cases
