"""SCNet against ResNet of the same depth, side by side in one run with
interleaved rounds: training step, inference, deploy mode, ONNX Runtime,
OpenVINO, and training memory with and without with_cp.

    # SCNet-50 vs ResNet-50 backbones
    python tools/analysis_tools/benchmark.py
    python tools/analysis_tools/benchmark.py --type mmscnet.SCNetV1d \
        --batch-size 16
    # whole models
    python tools/analysis_tools/benchmark.py \
        --config configs/detection/faster-rcnn_scnet50_fpn_1x_coco.py \
        --shape 512 512 --batch-size 1
    # the detector row: PyTorch eval against the exported graph in ONNX
    # Runtime and OpenVINO, SCNet-50 and ResNet-50, at the config's 800x1333
    python tools/analysis_tools/benchmark.py \
        --config configs/detection/faster-rcnn_scnet50_fpn_1x_coco.py \
        --export --no-train --precisions fp32

Ratios compare medians of the same run. Precisions: fp32 and bf16 on the CPU
(bf16 autocast), fp32 and fp16 on a GPU.
"""
import argparse
import copy
import json
import os
import sys
import tempfile
import time

import torch

from mmscnet.analysis import benchmark as bm
from mmscnet.deploy import optimize, stack_conv1
from mmscnet.deploy.graph.onnx import export_onnx
from mmscnet.deploy.runtime import open_session
from mmscnet.utils.misc import cpu_description, cpu_has_native_bf16


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        '--config',
        help='a whole mmdet/mmseg/mmpretrain/mmpose model with an SCNet '
        'backbone (default: the bare backbones)')
    p.add_argument(
        '--type',
        default='mmscnet.SCNet',
        choices=('mmscnet.SCNet', 'mmscnet.SCNetV1d'))
    p.add_argument('--depth', type=int, default=50, choices=(50, 101, 152))
    p.add_argument(
        '--batch-size',
        type=int,
        help='default: 8 for backbones, 1 for whole models')
    p.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help="default: 224 224 for backbones, the config's test size for "
        "whole models")
    p.add_argument('--repeat', type=int, default=10, help='timed rounds')
    p.add_argument(
        '--warmup', type=int, default=2, help='untimed rounds first')
    p.add_argument(
        '--threads',
        type=int,
        help='threads of torch, ONNX Runtime and OpenVINO')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument(
        '--precisions',
        nargs='+',
        choices=('fp32', 'bf16', 'fp16'),
        help='of the training and inference rows (the deploy rows are fp32 '
        'and bf16); default: fp32 and bf16 on a CPU with native bf16, else '
        'fp32; fp32 and fp16 on a GPU')
    p.add_argument('--no-train', action='store_true', help='inference only')
    p.add_argument(
        '--channels-last',
        action='store_true',
        help='also SCNet(channels_last=True), and SCNet and ResNet each fed '
        'a channels-last input')
    p.add_argument(
        '--stack-conv1',
        action='store_true',
        help='also the training step with mmscnet.deploy.stack_conv1 (conv1_a '
        'and conv1_b as one stacked conv; backbones only)')
    p.add_argument(
        '--no-deploy', action='store_true', help='skip the deploy-mode rows')
    p.add_argument(
        '--compile',
        action='store_true',
        help='also deploy mode compiled by torch.compile (inductor, frozen '
        'weights); prints the compile time (backbones only)')
    p.add_argument(
        '--no-onnx',
        action='store_true',
        help='skip the ONNX export and its runtimes\' rows (ONNX Runtime, '
        'OpenVINO)')
    p.add_argument(
        '--no-openvino',
        action='store_true',
        help='skip the OpenVINO rows (fp32; bf16 where OpenVINO runs it '
        'natively)')
    p.add_argument(
        '--export',
        action='store_true',
        help='with --config (an mmdet detector or mmseg segmentor): also the '
        'whole model as tools/deployment/export.py exports it, in ONNX '
        'Runtime and OpenVINO (fp32; --no-openvino leaves OpenVINO out)')
    p.add_argument(
        '--no-memory', action='store_true', help='skip the memory rows')
    p.add_argument(
        '--profile',
        type=int,
        metavar='N',
        help='instead of timing: the top N '
        'operators (self CPU time) of one training step of each backbone')
    p.add_argument('--json', help='also write the figures to this JSON file')
    args = p.parse_args(argv)
    for name in ('batch_size', 'repeat', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1, got {value}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available here')
    if args.compile and (args.config or args.no_deploy):
        p.error(
            '--compile adds a deploy-mode row of the bare backbone: not with '
            '--config or --no-deploy')
    if args.device not in ('cpu', 'cuda'):
        p.error(f'--device must be cpu or cuda, got {args.device!r}')
    if args.export and (not args.config or args.device != 'cpu'):
        p.error('--export times a whole exported model on the CPU: give '
                '--config, and no --device cuda')
    if args.precisions is None:
        args.precisions = ['fp32', 'fp16'] if args.device == 'cuda' else \
            ['fp32', 'bf16'] if cpu_has_native_bf16() else ['fp32']
    if args.device == 'cpu' and 'fp16' in args.precisions:
        p.error('fp16 is for GPUs; on the CPU use bf16')
    return args


def backbone_cases(args, x):
    scnet, resnet = bm.build_backbones(args.type, args.depth)
    sc, rn = f'SCNet-{args.depth}' + ('-v1d' if 'V1d' in args.type else
                                      ''), f'ResNet-{args.depth}'
    scnet, resnet = scnet.to(x.device), resnet.to(x.device)
    cases, pairs = {}, []
    for prec in args.precisions:
        if not args.no_train:
            cases[f'train {prec} {sc}'] = bm.train_step(
                copy.deepcopy(scnet), x, prec)
            cases[f'train {prec} {rn}'] = bm.train_step(
                copy.deepcopy(resnet), x, prec)
            pairs.append((f'train {prec} {sc}', f'train {prec} {rn}'))
        cases[f'infer {prec} {sc}'] = bm.inference(scnet, x, prec)
        cases[f'infer {prec} {rn}'] = bm.inference(resnet, x, prec)
        pairs.append((f'infer {prec} {sc}', f'infer {prec} {rn}'))
    if args.stack_conv1 and not args.no_train:
        # The opt-in transform (mmscnet.deploy.stack_conv1), against the
        # plain SCNet and against ResNet.
        for prec in args.precisions:
            name = f'train {prec} {sc} stack_conv1'
            stacked = copy.deepcopy(scnet)
            stack_conv1(stacked)
            cases[name] = bm.train_step(stacked, x, prec)
            pairs += [(name, f'train {prec} {rn}'),
                      (name, f'train {prec} {sc}')]
    if args.channels_last:
        # SCNet(channels_last=True) takes and returns NCHW (so mmdet's heads
        # get what they expect) and pays two layout conversions for it;
        # against mmdet's ResNet as it is, and as both fed an NHWC batch.
        # The NHWC pair gives each backbone the same treatment: unchanged
        # model, NHWC input, NHWC outputs.
        x_cl = x.contiguous(memory_format=torch.channels_last)
        sc_cl = bm.clone_with(scnet, channels_last=True)
        for kind in ('train', 'infer'):
            if kind == 'train' and args.no_train:
                continue
            make = bm.train_step if kind == 'train' else bm.inference
            a = f'{kind} fp32 {sc} channels_last'
            b = f'{kind} fp32 {rn} channels_last'
            c = f'{kind} fp32 {sc} NHWC input'
            cases[a] = make(copy.deepcopy(sc_cl), x, 'fp32')
            cases[b] = make(copy.deepcopy(resnet), x_cl, 'fp32')
            cases[c] = make(copy.deepcopy(scnet), x_cl, 'fp32')
            pairs += [(a, f'{kind} fp32 {rn}'), (a, b),
                      (a, f'{kind} fp32 {sc}'), (c, b)]
    if not args.no_deploy:
        for prec in ('fp32', 'bf16'):
            name = f'deploy {prec} {sc}'
            cases[name] = bm.inference(optimize(copy.deepcopy(scnet), prec), x)
            pairs.append((name, f'infer fp32 {sc}'))
    if args.compile:
        name = f'deploy+compile fp32 {sc}'
        run = bm.inference(
            optimize(copy.deepcopy(scnet), 'fp32', compile=True), x)
        start = time.perf_counter()
        run()  # compiles
        print(
            f'{name}: compiled in {time.perf_counter() - start:.0f} s (first '
            'call)')
        cases[name] = run
        pairs += [(name, f'infer fp32 {sc}'), (name, f'deploy fp32 {sc}')]
    if not args.no_onnx and x.device.type == 'cpu':
        path = os.path.join(
            tempfile.mkdtemp(prefix='mmscnet-bench-'), 'scnet.onnx')
        export_onnx(copy.deepcopy(scnet).eval(), path, x)
        runtimes = {
            'onnxruntime fp32':
            open_session(path, 'onnxruntime', 'fp32', args.threads)
        }
        if not args.no_openvino:
            from mmscnet.deploy.graph.openvino import convert_to_openvino
            from mmscnet.deploy.runtime.session import openvino_has_native_bf16
            ir = convert_to_openvino(path)
            for prec in ('fp32',
                         'bf16') if openvino_has_native_bf16() else ('fp32', ):
                runtimes[f'openvino {prec}'] = open_session(
                    ir, 'openvino', prec, args.threads)
        xn = x.numpy()
        for rt, run in runtimes.items():
            cases[f'{rt} {sc}'] = lambda run=run: run({'input': xn})
            pairs.append((f'{rt} {sc}', f'infer fp32 {sc}'))
    return cases, pairs, (scnet, resnet, sc, rn)


def memory_rows(scnet, resnet, sc, rn, x):
    rows = {}
    for name, model in ((sc, scnet), (rn, resnet)):
        rows[f'{name}'] = bm.peak_training_memory(copy.deepcopy(model), x)
        rows[f'{name} with_cp'] = bm.peak_training_memory(
            bm.clone_with(model, with_cp=True), x)
    return rows


def profile(args, x):
    scnet, resnet = bm.build_backbones(args.type, args.depth)
    result = {}
    for name, model in (('SCNet', scnet), ('ResNet', resnet)):
        rows, total = bm.profile_ops(
            bm.train_step(model.to(x.device), x, args.precisions[0]),
            args.profile)
        result[name] = dict(total_ms=total, top=rows)
        print(
            f'{name}-{args.depth} training step, {args.precisions[0]}, batch '
            f'{x.shape[0]}, '
            f'{x.shape[2]}x{x.shape[3]}: {total:.0f} ms of operator self time')
        for op, ms, calls in rows:
            print(f'  {op:<48} {ms:>9.1f} ms {100 * ms / total:>5.1f}%  '
                  f'{calls:>5} calls')
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.config:
        cfg, scnet, resnet = bm.build_config_pair(args.config)
        shape = tuple(args.shape or bm.config_test_shape(cfg))
        batch = args.batch_size or 1
        scope = cfg.default_scope
        cases, pairs = {}, []
        models = (('SCNet', scnet.to(device)), ('ResNet', resnet.to(device)))
        # One eval batch for every row, so that each times the same images.
        data = bm.packed_batch(scope, scnet, batch, shape, False)
        for prec in args.precisions:
            for label, model in models:
                for kind, fn in bm.whole_model_cases(scope, model, batch,
                                                     shape, prec,
                                                     not args.no_train,
                                                     data).items():
                    cases[f'{kind} {prec} {label}'] = fn
            for kind in ('train', 'inference') if not args.no_train else (
                    'inference', ):
                pairs.append((f'{kind} {prec} SCNet', f'{kind} {prec} ResNet'))
        if args.export:
            workdir = tempfile.mkdtemp(prefix='mmscnet-bench-')
            for label, model in models:
                for rt, fn in bm.exported_cases(scope, model, data,
                                                tempfile.mkdtemp(dir=workdir),
                                                args.threads,
                                                not args.no_openvino).items():
                    cases[f'{rt} {label}'] = fn
                    if label == 'SCNet':
                        pairs += [(f'{rt} SCNet', 'inference fp32 SCNet'),
                                  (f'{rt} SCNet', f'{rt} ResNet')]
        what = (f'{args.config} (SCNet and its ResNet twin), batch {batch}, '
                f'{shape[0]}x{shape[1]}')
        mem = None
    else:
        shape = tuple(args.shape or (224, 224))
        batch = args.batch_size or 8
        x = torch.randn(batch, 3, *shape, device=device)
        if args.profile:
            return profile(args, x)
        cases, pairs, (scnet, resnet, sc, rn) = backbone_cases(args, x)
        what = f'backbones {sc} vs {rn}, batch {batch}, {shape[0]}x{shape[1]}'
        mem = None if args.no_memory else memory_rows(scnet, resnet, sc, rn, x)

    cpu = cpu_description()
    print(f'CPU: {cpu}')  # every figure below is this machine's
    print(f'{what}; device {args.device}, {torch.get_num_threads()} threads, '
          f'torch {torch.__version__}; {args.repeat} interleaved rounds after '
          f'{args.warmup} warm-up')
    if device.type == 'cpu' and not cpu_has_native_bf16():
        print('note: this CPU has no AVX512-BF16/AMX: bf16 runs emulated, '
              'slower than fp32 (bf16 training/inference rows only with '
              '--precisions fp32 bf16)')
    times = bm.timed_rounds(cases, args.repeat, args.warmup, device)
    stats = {k: bm.summarize(v) for k, v in times.items()}
    per_image = batch
    print(f'{"case":<34} {"median ms":>10} {"min":>9} {"max":>9} {"img/s":>8}')
    for name, s in stats.items():
        print(f'{name:<34} {s["median"] * 1e3:>10.1f} {s["min"] * 1e3:>9.1f} '
              f'{s["max"] * 1e3:>9.1f} {per_image / s["median"]:>8.1f}')
    ratios = {}
    print('ratios of medians (time of the first / time of the second):')
    for a, b in pairs:
        if a not in stats or b not in stats:
            continue  # e.g. a runtime against an fp32 row not asked for
        ratios[f'{a} / {b}'] = r = stats[a]['median'] / stats[b]['median']
        print(f'  {a} / {b}: {r:.2f}x' +
              (f'  (speed-up {1 / r:.2f}x)' if r < 1 else ''))
    if mem:
        print('training activation memory' +
              (' (allocator peak)' if device.type ==
               'cuda' else ' (tensors saved for backward)') + ':')
        base_name = [
            k for k in mem if k.startswith('ResNet') and 'with_cp' not in k
        ][0]
        for name, b in mem.items():
            print(f'  {name:<24} {b / 2**20:>9.1f} MiB  '
                  f'{b / mem[base_name]:.2f}x {base_name}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    what=what,
                    cpu=cpu,
                    device=args.device,
                    threads=torch.get_num_threads(),
                    torch=torch.__version__,
                    stats=stats,
                    ratios=ratios,
                    memory=mem),
                f,
                indent=1)
    return dict(cpu=cpu, stats=stats, ratios=ratios, memory=mem)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
