"""Speed transforms a user opts into: the model computes the same function
(within fp32 rounding), its parameters and state-dict keys stay as they are.

:func:`stack_conv1`: each bottleneck's two 1x1 projections (conv1_a and
conv1_b, which read the same input) run as one conv with the two weights
stacked. In training that is one GEMM instead of two, and in backward one
gradient for the input instead of two summed: a faster training step on
CPUs (tools/analysis_tools/README.md, "Speed"). The outputs differ from the
authors' computation by fp32 summation order only, so inference is no longer
bit-identical with the reference code; the float64 equality of outputs and
every gradient is tested.
"""
import types

import torch
import torch.nn as nn
import torch.nn.functional as F


def _stacked_project(self, x):
    a, b = self.conv1_a, self.conv1_b
    bias = None if a.bias is None else torch.cat([a.bias, b.bias])
    out = F.conv2d(x, torch.cat([a.weight, b.weight]), bias, a.stride,
                   a.padding, a.dilation)
    # The halves are channel slices of one tensor, which BN's kernels run
    # slower than a contiguous copy of each in the input's layout.
    layout = torch.channels_last if not x.is_contiguous() and \
        x.is_contiguous(memory_format=torch.channels_last) else \
        torch.contiguous_format
    h1, h2 = (
        h.contiguous(memory_format=layout)
        for h in out.split([a.out_channels, b.out_channels], dim=1))
    return self.relu(self.bn1_a(h1)), self.relu(self.bn1_b(h2))


def _stackable(a, b):
    same = ('kernel_size', 'stride', 'padding', 'dilation', 'groups',
            'padding_mode')
    return (type(a) is nn.Conv2d and type(b) is nn.Conv2d and a.groups == 1
            and a.padding_mode == 'zeros'
            and (a.bias is None) == (b.bias is None)
            and all(getattr(a, k) == getattr(b, k) for k in same))


def stack_conv1(model):
    """Run conv1_a and conv1_b of every SCNet bottleneck in ``model`` as one
    stacked conv, in place. Bottlenecks whose projections are not two plain
    ``nn.Conv2d`` of the same geometry (another conv type from ``conv_cfg``)
    keep running them apart. Works before or after deploy mode's BN folding,
    and before loading weights (the parameters are the same objects).

    Returns:
        list[str]: The names of the bottlenecks changed.
    """
    from mmscnet.models import SCBottleneck
    if not isinstance(model, nn.Module):
        raise TypeError(f'model must be a torch.nn.Module, got {type(model)}')
    changed = []
    for name, block in model.named_modules():
        if isinstance(block, SCBottleneck) and _stackable(
                block.conv1_a, block.conv1_b):
            block._project = types.MethodType(_stacked_project, block)
            changed.append(name)
    return changed
