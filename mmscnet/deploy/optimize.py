"""Deploy mode for inference: ``optimize(model)``, which
``tools/test.py --deploy`` runs through ``mmscnet.DeployHook``.

Three changes that leave an eval-mode model's function unchanged (fp32) or
nearly so (bf16):

- every BatchNorm that follows a conv is folded into that conv (mmcv's
  ``fuse_conv_bn`` by module order, plus the v1d deep stem, whose last conv is
  inside ``conv1`` while its BN is ``bn1`` beside it, which mmcv misses);
- the backbone's weights and input in channels_last, the layout the CPU
  (oneDNN) and GPU (cuDNN) convolutions prefer;
- optionally the backbone under bf16 autocast;
- optionally (``compile=True``) the backbone compiled by ``torch.compile``
  (inductor) with weight freezing: the folded weights become constants, so
  inductor can pre-pack them for oneDNN and fuse convs with their ReLU or
  residual add, at the price of compiling on the first call and once more
  for a new input shape; it needs a C++ compiler on the CPU (Triton on a
  GPU). Measured speed-ups, with their machine: tools/README.md.

The backbone's outputs are fp32 and NCHW again, so necks and heads (NMS,
box decoding, mmcv's RoIAlign) run as before.

Running statistics are folded into the weights, so a deployed model cannot be
trained: ``model.train()`` raises.
"""
import functools
import types

import torch
import torch.nn as nn
from mmcv.cnn import fuse_conv_bn
from mmcv.cnn.utils.fuse_conv_bn import _fuse_conv_bn  # the pair arithmetic

PRECISIONS = ('fp32', 'bf16')


def _fuse_scnet_stems(model):
    """The deep stem's last conv (``conv1[-1]``) and ``bn1``: what mmcv cannot
    pair."""
    from mmscnet.models import SCNet
    for m in model.modules():
        if isinstance(m, SCNet) and isinstance(m.conv1, nn.Sequential) and \
                isinstance(m.bn1, nn.modules.batchnorm._BatchNorm):
            _fuse_conv_bn(m.conv1[-1], m.bn1)
            m.bn1 = nn.Identity()


def _refuse_training(self, mode=True):
    if mode:
        raise RuntimeError(
            f'{type(self).__name__} was optimized for deployment (BatchNorm '
            'folded into the convs): it cannot be trained. Build the model '
            'again from its config to train it.')
    return self._mmscnet_train(False)


def _deploy_forward(forward, device_type, channels_last, bf16):
    """The backbone's forward on a channels-last input, maybe under bf16
    autocast, with fp32 NCHW outputs: necks and heads get what they always got
    (mmcv's CPU RoIAlign, for one, reads raw NCHW memory)."""

    @functools.wraps(forward)
    def run(x, *args, **kwargs):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            outs = forward(x, *args, **kwargs)
        if isinstance(outs, torch.Tensor):
            return outs.float().contiguous()
        return type(outs)(o.float().contiguous() for o in outs)

    return run


def optimize(model, precision='fp32', channels_last=True, compile=False):
    """Fold BN into convs, run the backbone (or the model itself if it has
    none) in channels_last and, with ``precision='bf16'``, under bf16 autocast;
    with ``compile=True`` the backbone is also compiled (inductor, frozen
    weights: load the weights before this call; whether a later change to
    them is seen is up to inductor). In place; returns ``model``, in eval
    mode and refusing ``train()``."""
    if precision not in PRECISIONS:
        raise ValueError(
            f'precision must be one of {PRECISIONS}, got {precision!r}')
    if not isinstance(compile, bool):
        raise ValueError(f'compile must be True or False, got {compile!r}')
    if getattr(model, '_mmscnet_deployed', None):
        raise RuntimeError('this model is already optimized for deployment')
    model.eval()
    with torch.no_grad():
        _fuse_scnet_stems(model)
        fuse_conv_bn(model)
    # The backbone (also inside a TTA wrapper, ``model.module``), else the
    # whole model.
    inner = getattr(model, 'module', model)
    backbone = getattr(inner, 'backbone', model)
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    device_type = next(model.parameters()).device.type
    forward = backbone.forward
    if compile:
        # Freezing applies under no_grad (inference), as in every test loop.
        forward = torch.compile(forward, options={'freezing': True})
    backbone.forward = _deploy_forward(forward, device_type, channels_last,
                                       precision == 'bf16')
    model._mmscnet_deployed = precision + ('+compile' if compile else '')
    model._mmscnet_train = model.train
    model.train = types.MethodType(_refuse_training, model)
    return model


def unfused_batchnorms(model):
    """Names of BatchNorm layers that are still there (e.g. after a transposed
    conv)."""
    return [
        n for n, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
