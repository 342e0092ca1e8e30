"""Mixed-precision training on the CPU: bf16 autocast.

mmengine's ``AmpOptimWrapper`` asserts a GPU (or NPU, MLU, MUSA): its loss
scaler is CUDA's. bf16 keeps fp32's exponent range, so gradients do not
underflow and no loss scaling is needed; what is left of AMP is the
autocast. This wrapper is mmengine's ``OptimWrapper`` with the forward (and
the loss) under ``torch.autocast('cpu', dtype=torch.bfloat16)``. Weights,
gradients and optimizer state stay fp32, so its checkpoints are plain fp32
checkpoints that resume and evaluate like any other.

mmcv's CPU kernels (NMS, RoIAlign and the other ops of ``mmcv.ops``) take
fp32 only, and autocast cannot reach into them as it does into torch's own
ops. So the wrapper marks each autograd Function of ``mmcv.ops`` as fp32
under CPU autocast, as ``torch.amp.custom_fwd(cast_inputs=torch.float32)``
does for custom Functions: under autocast its inputs (and in backward its
gradients) are cast to fp32 and it runs with autocast off, and its floating
outputs (gradients) come back in its inputs' dtype, as a bf16 kernel's would
(mmdet writes RoIAlign's output into a bf16 buffer). Outside autocast
nothing changes.
"""
import functools
import inspect
import logging
import sys
from contextlib import contextmanager

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from mmscnet.registry import OPTIM_WRAPPERS
from mmscnet.utils.misc import cpu_has_native_bf16

BF16 = ('bfloat16', 'bf16', torch.bfloat16)


def _cpu_autocast_on():
    try:
        return torch.is_autocast_enabled('cpu')
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _floating(x):
    return isinstance(x, torch.Tensor) and x.is_floating_point()


def _cast(x, dtype):
    if _floating(x):
        return x.to(dtype)
    if isinstance(x, (tuple, list)):
        return type(x)(_cast(v, dtype) for v in x)
    return x


def _fp32_forward(forward):

    @functools.wraps(forward)
    def wrapped(ctx, *args, **kwargs):
        if not _cpu_autocast_on():
            ctx._mmscnet_dtypes = None
            return forward(ctx, *args, **kwargs)
        # The input dtypes, for backward's gradients; floating outputs come
        # back in the first floating input's dtype, as a bf16 kernel's would.
        ctx._mmscnet_dtypes = [a.dtype if _floating(a) else None for a in args]
        back = next((d for d in ctx._mmscnet_dtypes if d), torch.float32)
        with torch.autocast('cpu', enabled=False):
            out = forward(ctx, *_cast(args, torch.float32),
                          **_cast(kwargs, torch.float32))
        return _cast(out, back)

    return wrapped


def _fp32_backward(backward):

    @functools.wraps(backward)
    def wrapped(ctx, *grads):
        dtypes = getattr(ctx, '_mmscnet_dtypes', None)
        if dtypes is None:
            return backward(ctx, *grads)
        with torch.autocast('cpu', enabled=False):
            out = backward(ctx, *_cast(grads, torch.float32))
        single = not isinstance(out, tuple)
        out = (out, ) if single else out
        out = tuple(
            g.to(d) if _floating(g) and d is not None else g
            for g, d in zip(out, dtypes + [None] * len(out)))
        return out[0] if single else out

    return wrapped


def fp32_mmcv_ops_under_cpu_autocast():
    """Mark every autograd Function of ``mmcv.ops`` as fp32 under CPU autocast
    (see the module docstring); returns how many were newly marked."""
    try:
        import mmcv.ops  # noqa: F401
    except ImportError:  # mmcv-lite: no compiled ops to protect
        return 0
    marked = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith('mmcv.ops') or module is None:
            continue
        for fn in list(vars(module).values()):
            if not (inspect.isclass(fn)
                    and issubclass(fn, torch.autograd.Function)
                    and fn.__module__.startswith('mmcv.ops')
                    and '_mmscnet_fp32_on_cpu' not in vars(fn)):
                continue
            fn.forward = staticmethod(_fp32_forward(fn.forward))
            if 'backward' in vars(fn):
                fn.backward = staticmethod(_fp32_backward(fn.backward))
            fn._mmscnet_fp32_on_cpu = True
            marked += 1
    return marked


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``optim_context`` autocasts to bf16 on the CPU.

    Args:
        dtype: only ``'bfloat16'``. fp16 autocast needs a GPU's loss scaling
            and fp16 kernels; it is refused here, naming what to use.
        **kwargs: as for ``OptimWrapper`` (optimizer, accumulative_counts,
            clip_grad).

    On a CPU without native bf16 (AVX512-BF16 or AMX) oneDNN emulates bf16,
    slower than fp32: the wrapper says so in the log, and trains all the same.
    """

    def __init__(self, dtype='bfloat16', **kwargs):
        if dtype not in BF16:
            raise ValueError(
                f'CPUAmpOptimWrapper trains under bf16 autocast only, got '
                f'dtype={dtype!r}: fp16 mixed precision needs a GPU (mmengine'
                "'s AmpOptimWrapper); on the CPU use dtype='bfloat16'")
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16
        fp32_mmcv_ops_under_cpu_autocast()
        if not cpu_has_native_bf16():
            # Into the run's log: the Runner builds its logger first.
            print_log(
                'CPUAmpOptimWrapper: this CPU has no native bf16 (neither '
                'avx512_bf16 nor amx_bf16 in /proc/cpuinfo); bf16 is '
                'emulated and training runs slower than in fp32',
                logger='current',
                level=logging.WARNING)

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=self.cast_dtype):
            yield
