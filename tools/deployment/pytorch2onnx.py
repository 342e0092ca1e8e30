"""Export the bare SCNet backbone (four stage outputs) to ONNX (and with
--openvino to OpenVINO IR beside it), check each runtime against PyTorch at
two input sizes, and time them: the graph for a network of your own built
on SCNet's stage maps.

    python tools/deployment/pytorch2onnx.py --type mmscnet.SCNet --depth 50
    --out scnet50.onnx
    python tools/deployment/pytorch2onnx.py --type mmscnet.SCNet --checkpoint
    scnet50-dc6a7e87.pth --out scnet50.onnx
    python tools/deployment/pytorch2onnx.py --depth 50 --out scnet50.onnx \
        --openvino   # also scnet50.xml + scnet50.bin (OpenVINO IR, fp32)

The input is the normalised image batch (N, 3, H, W), i.e. after the data
preprocessor (ImageNet mean/std, RGB); batch size and image size are dynamic
unless --static. Whole models (classifiers, detectors, segmentors, with the
runtime spec that infer.py and test.py --backend read):
tools/deployment/export.py.
"""
import argparse
import os.path as osp

import torch

from mmscnet.analysis import benchmark as bm
from mmscnet.deploy import optimize
from mmscnet.deploy.graph.onnx import export_onnx
from mmscnet.deploy.runtime import open_session
from mmscnet.deploy.runtime.parity import max_rel_diff


def build(args):
    from mmscnet.registry import MODELS
    model = MODELS.build(dict(type=args.type, depth=args.depth))
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(
            model,
            args.checkpoint,
            map_location='cpu',
            strict=False,
            revise_keys=[(r'^backbone\.', '')])
    return model.eval()


def latency(fn, repeat):
    """Median seconds per call after one warm-up call."""
    return bm.summarize(bm.timed_rounds({'run': fn}, repeat,
                                        warmup=1)['run'])['median']


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        '--config',
        help='no longer here: whole models (an mmpretrain classifier too) '
        'export with tools/deployment/export.py CONFIG [CHECKPOINT]')
    p.add_argument(
        '--type',
        default='mmscnet.SCNet',
        choices=('mmscnet.SCNet', 'mmscnet.SCNetV1d'))
    p.add_argument('--depth', type=int, default=50, choices=(50, 101, 152))
    p.add_argument(
        '--checkpoint',
        help='weights (released, mmengine, or a whole model whose '
        'backbone.* keys are taken); default: random')
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument(
        '--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'))
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument(
        '--static', action='store_true', help='fix batch and image size')
    p.add_argument(
        '--deploy',
        action='store_true',
        help='fold BatchNorm into the convs first')
    p.add_argument(
        '--repeat',
        type=int,
        default=10,
        help='timed runs for the latency figures')
    p.add_argument(
        '--openvino',
        action='store_true',
        help='also convert to OpenVINO IR (OUT with .xml and .bin) and check '
        "and time it in OpenVINO's CPU plugin (fp32)")
    p.add_argument(
        '--threads', type=int, help='threads of every runtime (default: all)')
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args(argv)
    if args.config:
        p.error(f'--config {args.config}: whole models export with '
                'tools/deployment/export.py CONFIG [CHECKPOINT] --out F.onnx '
                '(with the runtime spec that tools/infer.py and tools/test.py '
                '--backend read); this tool exports the bare backbone')
    if not args.out.endswith('.onnx'):
        p.error(f'--out must end in .onnx, got {args.out!r}')
    outs = [args.out]
    if args.openvino:
        stem = args.out[:-len('.onnx')]
        outs += [stem + '.xml', stem + '.bin']
    for path in outs:
        if osp.exists(path) and not args.overwrite:
            p.error(f'{path} exists: pass --overwrite to replace it')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        p.error(f'checkpoint not found: {args.checkpoint}')

    model = build(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.deploy:
        optimize(model, channels_last=False)
    h, w = args.shape
    x = torch.randn(args.batch_size, 3, h, w)
    names = export_onnx(model, args.out, x, dynamic=not args.static)
    runtimes = {
        'ONNX Runtime': open_session(args.out, 'onnxruntime', 'fp32',
                                     args.threads)
    }
    print(f'wrote {args.out}: input (N, 3, H, W), outputs {names}' +
          ('' if args.static else ', dynamic batch and image size'))
    if args.openvino:
        from mmscnet.deploy.graph.openvino import convert_to_openvino
        ir = convert_to_openvino(args.out, outs[1])
        runtimes['OpenVINO'] = open_session(ir, 'openvino', 'fp32',
                                            args.threads)
        print(f'wrote {outs[1]} and {outs[2]}: OpenVINO IR, fp32 weights')
    sizes = [(args.batch_size, h, w)]
    if not args.static:
        sizes.append(
            (args.batch_size + 1, h + 32, w - 32 if w > 64 else w + 64))
    result = {}
    for n, hh, ww in sizes:
        xi = torch.randn(n, 3, hh, ww)
        with torch.no_grad():
            t_torch = latency(lambda: model(xi), args.repeat)
        row = dict(torch_s=t_torch)
        line = [f'  input {n}x3x{hh}x{ww}: PyTorch {t_torch * 1e3:.1f} ms']
        for rt, run in runtimes.items():
            key = rt.lower().replace(' ', '')
            with torch.no_grad():
                ref = model(xi)
            ref = ref if isinstance(ref, (tuple, list)) else [ref]
            feeds = {'input': xi.numpy()}
            diff = max_rel_diff([r.numpy() for r in ref], run(feeds))
            t = latency(lambda: run(feeds), args.repeat)
            row[f'{key}_max_rel_diff'], row[f'{key}_s'] = diff, t
            line.append(f'{rt} {t * 1e3:.1f} ms ({t_torch / t:.2f}x), max '
                        f'relative difference to PyTorch {diff:.2e}')
        result[(n, hh, ww)] = row
        print('; '.join(line))
    return result


if __name__ == '__main__':
    main()
