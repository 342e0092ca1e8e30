"""Self-calibration beyond the authors' release, for training from scratch:

- :class:`SelfCalibratedConv2d`, the paper's general form of the layer: the
  input's channels split in two halves, K1 on one and the released
  calibration (:class:`~mmscnet.models.backbones.scnet.SCConv`: K2, K3, K4)
  on the other. A drop-in for a 3x3 conv.
- ``conv_cfg=dict(type='mmscnet.SCConv2d')`` (:func:`sc_conv2d`): the conv
  factory that makes the 3x3 convs of any mmcv-built network
  self-calibrated.
- :func:`convert_to_self_calibrated`: the same for any torch model.
- :class:`SCBasicBlock`: SCNet-18/34's block, registered so that ``SCNet``
  finds it by name (this module builds on ``SCConv``, so the backbone file
  cannot import it back).
"""
import warnings

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule

from mmscnet.registry import MODELS
from ..backbones.scnet import SCBottleneck, SCConv


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def calibration_problem(in_channels,
                        out_channels,
                        kernel_size,
                        padding,
                        dilation,
                        groups,
                        padding_mode='zeros'):
    """Why a conv cannot become a :class:`SelfCalibratedConv2d`, or None if
    it can. The rule: a 3x3 conv padded by its dilation (its output keeps
    the input's size at stride 1, which the gate's ``X2 + Up(K2(T))``
    needs), zero padding, and channels that split in two halves: even
    ``in_channels`` and ``out_channels``, each half divisible by
    ``groups`` (each half keeps the conv's groups, as SCNeXt's branches do;
    then the four convs hold as many weights as the conv they replace)."""
    if _pair(kernel_size) != (3, 3):
        return f'kernel_size is {kernel_size}, not 3'
    if isinstance(padding, str) or _pair(padding) != _pair(dilation):
        return (f'padding {padding!r} is not its dilation {dilation!r} '
                '(the gate needs K3 to keep the input size)')
    if padding_mode != 'zeros':
        return f"padding_mode is {padding_mode!r}, not 'zeros'"
    for name, width in (('in_channels', in_channels), ('out_channels',
                                                       out_channels)):
        if width < 2 or width % 2 or (width // 2) % groups:
            return (f'{name}={width} does not split in two halves of a '
                    f'multiple of groups={groups} channels (needs an even '
                    f'width with width / 2 divisible by groups)')
    return None


@MODELS.register_module()
class SelfCalibratedConv2d(nn.Module):
    """A self-calibrated 3x3 conv, in the paper's general form: the input's
    channels split in two halves X1, X2; ``Y1 = K1(X1)``, ``Y2 =`` the
    calibration of X2 (:class:`SCConv`: K2, K3 with their norms, then K4);
    the output is ``[Y1, Y2]``. It takes the place of a 3x3 conv: same
    arguments, output shape and stride. K1 and K4 are bare convs (no norm,
    no activation), so the norm and activation the host puts after its conv
    follow this one the same way.

    Channels: K1 maps ``in_channels / 2`` to ``out_channels / 2``; K2 and K3
    keep ``in_channels / 2`` (the gate adds X2 to K2's output); K4 maps
    ``in_channels / 2`` to ``out_channels / 2`` and carries the stride, as
    in the bottleneck. Each half keeps the conv's ``groups``. So both widths
    must be even, and each half divisible by groups: anything else raises a
    ValueError (:func:`calibration_problem` gives the rule). With
    ``in_channels == out_channels`` the four convs hold exactly the weights
    of the conv replaced, and K2 runs at 1/r^2 of the resolution.

    Unlike the bottleneck (two 1x1 projections make X1, X2), the halves here
    are slices of the input, as the paper defines the split; so weights are
    new: train from scratch (no released checkpoint has this layout).

    Args:
        in_channels, out_channels (int): As nn.Conv2d's; even.
        kernel_size (int): 3 (the argument exists for the conv signature).
        stride (int): Carried by K1 and K4.
        padding (int, optional): Must equal dilation (default: dilation).
        dilation (int): Of K1..K4.
        groups (int): Of each half's convs.
        bias (bool): A bias in K1 and K4, the convs that make the output.
        pooling_r, pooling_type, with_identity, upsample_mode: see
            :class:`SCConv`.
        conv_cfg (dict, optional): Conv type of K1..K4 (not SCConv2d again).
        norm_cfg (dict): Norm of K2 and K3. Default: BN.
    """

    transposed = False

    def __init__(self,
                 in_channels,
                 out_channels,
                 kernel_size=3,
                 stride=1,
                 padding=None,
                 dilation=1,
                 groups=1,
                 bias=False,
                 padding_mode='zeros',
                 pooling_r=4,
                 pooling_type='avg',
                 with_identity=True,
                 upsample_mode='nearest',
                 conv_cfg=None,
                 norm_cfg=dict(type='BN')):
        super().__init__()
        padding = dilation if padding is None else padding
        problem = calibration_problem(in_channels, out_channels, kernel_size,
                                      padding, dilation, groups, padding_mode)
        if problem:
            raise ValueError(
                f'SelfCalibratedConv2d({in_channels}, {out_channels}): '
                f'{problem}')
        inner = str((conv_cfg or {}).get('type', ''))
        if inner.endswith(('SCConv2d', 'SelfCalibratedConv2d')):
            raise ValueError('conv_cfg gives the type of K1..K4; they cannot '
                             'be self-calibrated again')
        # What ConvModule and other hosts read off their conv.
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = (3, 3), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.groups, self.output_padding = groups, (0, 0)
        self.padding_mode = padding_mode
        half_in, half_out = in_channels // 2, out_channels // 2
        self.k1 = build_conv_layer(
            conv_cfg,
            half_in,
            half_out,
            3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            groups=groups,
            bias=bias)
        self.scconv = SCConv(
            half_in,
            stride,
            dilation,
            groups,
            pooling_r=pooling_r,
            pooling_type=pooling_type,
            with_identity=with_identity,
            upsample_mode=upsample_mode,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            out_planes=half_out,
            k4_norm=False,
            bias=bias)

    def forward(self, x):
        x1, x2 = x.split(self.in_channels // 2, dim=1)
        return torch.cat([self.k1(x1), self.scconv(x2)], dim=1)

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, stride='
                f'{self.stride}, dilation={self.dilation}, groups='
                f'{self.groups}')


@MODELS.register_module(name='SCConv2d')
def sc_conv2d(in_channels,
              out_channels,
              kernel_size,
              stride=1,
              padding=0,
              dilation=1,
              groups=1,
              bias=True,
              padding_mode='zeros',
              **calibration):
    """The conv factory behind ``conv_cfg=dict(type='mmscnet.SCConv2d')``,
    which ``mmcv.cnn.build_conv_layer`` calls with nn.Conv2d's arguments for
    every conv of a network built through it: stems, 1x1 projections and
    shortcuts as well as the 3x3 convs. Only the convs
    :func:`calibration_problem` accepts become a
    :class:`SelfCalibratedConv2d`; every other conv is built as the
    nn.Conv2d asked for, so a network keeps its shape. A 3x3 conv left
    plain for its channel count (e.g. a 3-channel image in) is warned
    about; 1x1, 7x7 and other kernels stay plain silently.

    ``calibration`` takes SelfCalibratedConv2d's own arguments from the
    conv_cfg (``pooling_r``, ``norm_cfg``, ...).
    """
    problem = calibration_problem(in_channels, out_channels, kernel_size,
                                  padding, dilation, groups, padding_mode)
    if problem is None:
        return SelfCalibratedConv2d(in_channels, out_channels, 3, stride,
                                    padding, dilation, groups, bias,
                                    padding_mode, **calibration)
    if _pair(kernel_size) == (3, 3):
        warnings.warn(f'mmscnet.SCConv2d: a 3x3 conv {in_channels}->'
                      f'{out_channels} stays a plain Conv2d: {problem}')
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                     dilation, groups, bias, padding_mode)


@MODELS.register_module()
class SCBasicBlock(BaseModule):
    """SCNet-18/34's block: ResNet's basic block with both 3x3 convs made
    :class:`SelfCalibratedConv2d` (conv -> norm -> ReLU -> conv -> norm,
    plus the shortcut). Beyond the authors' release, which has bottlenecks
    only.

    Why both convs, and why the paper's channel split: the paper defines
    self-calibration for a conv layer (split its input in two halves, K1 on
    one, K2..K4 on the other) and the released bottleneck calibrates its one
    3x3 conv, fed by two 1x1 projections. A basic block has no 1x1 convs to
    project with, so the halves are the input's own channels, and each of
    its two 3x3 convs is calibrated. With ``inplanes == planes`` each
    calibrated conv has the plain conv's weights (plus K2's and K3's norms)
    and about (3 + 1/r^2) / 4 of its multiply-adds; the first block of a
    stage, whose conv1 widens, has fewer (K2/K3 keep the input width).

    Args: as the bottleneck's (``SCBottleneck``). ``groups`` must be 1 and
    ``avd`` off (both belong to the bottleneck); ``base_width`` is unused.
    """

    expansion = 1
    last_norm = 'bn2'

    def __init__(self,
                 inplanes,
                 planes,
                 stride=1,
                 dilation=1,
                 groups=1,
                 base_width=32,
                 avd=False,
                 downsample=None,
                 with_cp=False,
                 conv_cfg=None,
                 norm_cfg=dict(type='BN'),
                 init_cfg=None,
                 **calibration):
        super().__init__(init_cfg)
        if groups != 1 or avd:
            raise ValueError(
                f'SCBasicBlock takes groups=1 and avd=False (SCNet-18/34), '
                f'got groups={groups}, avd={avd}')
        self.with_cp = with_cp
        self.conv1 = SelfCalibratedConv2d(
            inplanes,
            planes,
            stride=stride,
            dilation=dilation,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            **calibration)
        self.bn1 = build_norm_layer(norm_cfg, planes)[1]
        self.conv2 = SelfCalibratedConv2d(
            planes,
            planes,
            dilation=dilation,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            **calibration)
        self.bn2 = build_norm_layer(norm_cfg, planes)[1]
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def _inner_forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return out

    forward = SCBottleneck.forward  # with_cp and the final ReLU alike


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
