"""Make any torch network self-calibrated, for training from scratch."""
import torch.nn as nn

from ..backbones.scnet import SCConv, SelfCalibratedConv2d, calibration_problem


def convert_to_self_calibrated(model, **calibration):
    """Replace, in place, each ``nn.Conv2d`` of ``model`` that
    :func:`calibration_problem` accepts (3x3, padded by its dilation, zero
    padding, even widths whose halves divide by groups) by a
    :class:`SelfCalibratedConv2d` with the same channels, stride, dilation,
    groups and bias, on the conv's device and dtype and in its train/eval
    mode. Other convs (1x1, 7x7, a 3-channel image in, depthwise) and the
    convs already inside a self-calibrated conv are left as they are.

    The new convs have new weights (PyTorch's default init, K2/K3 norms at
    1 and 0): whatever the replaced convs had learnt is gone, so train the
    converted model from scratch. ``calibration`` passes SelfCalibratedConv2d's
    own arguments (``pooling_r``, ``norm_cfg``, ...).

    Returns:
        list[str]: The names of the convs replaced, in module order.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f'model must be a torch.nn.Module, got {type(model)}')
    inside = {
        id(m)
        for sc in model.modules()
        if isinstance(sc, (SelfCalibratedConv2d, SCConv))
        for m in sc.modules()
    }
    replaced = []
    for parent_name, parent in list(model.named_modules()):
        if id(parent) in inside:
            continue
        for name, conv in list(parent.named_children()):
            # Exactly nn.Conv2d: a subclass (a DCN, a quantised conv) does
            # something the replacement would not.
            if type(conv) is not nn.Conv2d or calibration_problem(
                    conv.in_channels, conv.out_channels, conv.kernel_size,
                    conv.padding, conv.dilation, conv.groups,
                    conv.padding_mode):
                continue
            new = SelfCalibratedConv2d(
                conv.in_channels,
                conv.out_channels,
                3,
                conv.stride,
                conv.padding,
                conv.dilation,
                conv.groups,
                bias=conv.bias is not None,
                **calibration).to(conv.weight.device, conv.weight.dtype)
            setattr(parent, name, new.train(conv.training))
            replaced.append(f'{parent_name}.{name}' if parent_name else name)
    return replaced
