"""Self-Calibrated Convolutions (SCNet, Liu et al., CVPR 2020) as an OpenMMLab
backbone.

The whole idea lives in this file. A bottleneck's input X is projected by two
1x1 convs into X1 and X2. X1 goes through a plain 3x3 conv K1; X2 goes through
the self-calibration (``SCConv``)::

    T  = Pool_r(X2)                       r = pooling_r, average pooling by
    default
    X' = Up(K2(T))                        Up: nearest resize back to X2's size
    (as released)
    Y' = K3(X2) * sigmoid(X2 + X')
    Y2 = K4(Y')                           K4 carries the block's stride

Y1 = K1(X1) and Y2 are concatenated, projected by a 1x1 conv (x4 expansion)
and added to the shortcut, as in ResNet.

The same calibration, in the paper's general form (the input's channels split
in two halves, K1 on one, K2..K4 on the other), is ``SelfCalibratedConv2d``:
a drop-in for any 3x3 conv, used by SCNet-18/34's basic block
(``SCBasicBlock``) and built for other networks' convs through
``conv_cfg=dict(type='mmscnet.SCConv2d')``. These go beyond the authors'
release, which has the bottleneck networks only.

Module and parameter names follow the authors' release
(``layer1.0.conv1_a``, ``layer1.0.k1.0``, ``layer1.0.scconv.k2.1`` ...), so
their ImageNet checkpoints load through ``init_cfg=dict(type='Pretrained')``
with no conversion.
"""
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule, Sequential
from torch.nn.modules.batchnorm import _BatchNorm

from mmscnet.registry import MODELS
from mmscnet.utils.checkpoint_io import (refuse_unfit_state,
                                         register_load_pre_hook)

POOLING_TYPES = ('avg', 'max')
UPSAMPLE_MODES = ('nearest', 'bilinear')


def _exporting():
    """Inside torch.export (the ONNX exporter's dynamo path) or the
    TorchScript ONNX exporter."""
    is_exporting = getattr(torch.compiler, 'is_exporting', None)  # torch>=2.3
    return torch.onnx.is_in_onnx_export() or bool(is_exporting
                                                  and is_exporting())


def _compiling():
    """Traced by torch.compile or torch.export."""
    is_compiling = getattr(torch.compiler, 'is_compiling', None)  # torch>=2.3
    if is_compiling is None:  # older torch: dynamo traces once imported
        is_compiling = getattr(
            sys.modules.get('torch._dynamo'), 'is_compiling', None)
    return bool(is_compiling and is_compiling())


def _choice(name, value, accepted):
    if value not in accepted:
        raise ValueError(f'{name} must be one of {accepted}, got {value!r}')


def _check_calibration_args(pooling_r, pooling_type, upsample_mode):
    if not isinstance(pooling_r, int) or isinstance(pooling_r,
                                                    bool) or pooling_r < 1:
        raise ValueError(
            f'pooling_r must be an integer >= 1, got {pooling_r!r}')
    _choice('pooling_type', pooling_type, POOLING_TYPES)
    _choice('upsample_mode', upsample_mode, UPSAMPLE_MODES)


def branch_width(planes, base_width, groups):
    """Channels of each of a bottleneck's two branches (X1, X2)."""
    return int(planes * base_width / 64) * groups


def _check_widths(depth, base_channels, base_width, groups, stem_channels,
                  deep_stem):
    # A 0-channel branch builds (with only a torch warning) and then fails in
    # forward far from its cause: refuse it here, naming the arguments.
    for name, value in (('base_channels', base_channels), ('base_width',
                                                           base_width),
                        ('groups', groups), ('stem_channels', stem_channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
    if deep_stem and stem_channels < 2:
        raise ValueError(
            f'deep_stem needs stem_channels >= 2 (its first convs have '
            f'stem_channels // 2 channels), got {stem_channels}')
    width = branch_width(base_channels, base_width,
                         groups)  # the narrowest stage, layer1
    if width < 1:
        raise ValueError(
            f'base_channels={base_channels}, base_width={base_width}, '
            f'groups={groups} give SCNet-{depth} branches of 0 channels in '
            'layer1 (each branch has int(planes * base_width / 64) * groups '
            'channels, planes = base_channels at layer1): raise '
            'base_channels or base_width (released: 64 and 32)')


def _check_basic(depth, base_channels, stem_channels, groups, base_width, avd):
    if groups != 1 or base_width != 32 or avd:
        raise ValueError(
            f'groups, base_width and avd shape the bottleneck (depth 50, 101, '
            f'152); SCNet-{depth} has basic blocks: leave them at groups=1, '
            f'base_width=32, avd=False, got {groups}, {base_width}, {avd}')
    for name, value in (('base_channels', base_channels), ('stem_channels',
                                                           stem_channels)):
        if value % 2:
            raise ValueError(
                f'SCNet-{depth} splits each 3x3 conv\'s channels in two '
                f'halves: {name} must be even, got {value}')


class CalibrationPool(nn.Module):
    """Pool_r of the paper: a non-overlapping r x r window (kernel = stride =
    r).

    A feature map smaller than r along a side is pooled over that whole side
    (the window shrinks to the map), so tiny maps -- the deep stages of a
    detector on a small image -- give a 1-pixel summary instead of crashing.
    Wherever the map is at least r x r this is exactly the released
    ``nn.AvgPool2d(r, r)`` (or ``nn.MaxPool2d(r, r)``).

    One case stays as in PyTorch: training with batch statistics
    (``norm_eval=False``) on a batch of ONE image whose map pools to 1x1 gives
    K2's BatchNorm a single value per channel, which it cannot normalise
    ("Expected more than 1 value per channel"). Use two or more images per
    GPU, ``norm_eval=True`` (mmdet's default) or GN there.
    """

    def __init__(self, pooling_r, pooling_type='avg'):
        super().__init__()
        self.pooling_r = pooling_r
        self.pooling_type = pooling_type

    def forward(self, x):
        if _exporting():
            return self._forward_for_export(x)
        window = (min(self.pooling_r,
                      x.shape[-2]), min(self.pooling_r, x.shape[-1]))
        if self.pooling_type == 'avg':
            return F.avg_pool2d(x, window, window)
        return F.max_pool2d(x, window, window)

    def _forward_for_export(self, x):
        """The same function with no shape logic in Python, for graphs
        exported with dynamic sizes. An exported pooling window is a
        constant: ``min(r, side)`` would stay what it was at the export size
        (an export at 128x96 pooled its stage-4 maps 4x3 at every size).
        Instead a side shorter than r is padded to r: with -inf for 'max';
        with zeros for 'avg', divided by the share of the window that is
        the map's. Where both sides are >= r nothing is padded and the
        divisor is 1. (OpenVINO refuses windows larger than the map.)"""
        r = self.pooling_r
        h, w = x.shape[-2:]
        pad = (0, torch.sym_max(r - w, 0), 0, torch.sym_max(r - h, 0))
        if self.pooling_type == 'max':
            return F.max_pool2d(F.pad(x, pad, value=float('-inf')), r, r)
        share = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), pad), r, r)
        return F.avg_pool2d(F.pad(x, pad), r, r) / share

    def extra_repr(self):
        return (f'pooling_r={self.pooling_r}, '
                f'pooling_type={self.pooling_type!r}')


class SCConv(nn.Module):
    """The self-calibration branch: X2 -> Y2 (K2, K3, K4 of the paper).

    Args:
        planes (int): Channels of X2 (in and out).
        stride (int): Stride of K4, the block's stride. Default: 1.
        dilation (int): Dilation (and padding) of K2, K3 and K4. Default: 1.
        groups (int): Groups of K2, K3 and K4 (SCNeXt). Default: 1.
        pooling_r (int): r, the down-sampling rate of the calibration path.
            Default: 4. See :class:`CalibrationPool` for maps smaller than r.
        pooling_type (str): 'avg' (paper) or 'max' (its ablation).
        with_identity (bool): Keep X2 inside the sigmoid. False gives the
            ablation ``Y' = K3(X2) * sigmoid(X')``. Default: True.
        upsample_mode (str): How Up resizes: 'nearest' (the released code's
            ``F.interpolate`` default) or 'bilinear' (the paper's text).
        out_planes (int, optional): Output channels of K4. Default: planes.
            K2 and K3 keep ``planes``: the gate adds X2 to K2's output and
            multiplies K3's output, so both have X2's width.
        k4_norm (bool): K4 is followed by a norm and ReLU, as in the
            bottleneck (True, released). False leaves K4 a bare conv, for
            :class:`SelfCalibratedConv2d`, whose host normalises after it.
        bias (bool): A bias in K4's conv; only with ``k4_norm=False``.
    """

    def __init__(self,
                 planes,
                 stride=1,
                 dilation=1,
                 groups=1,
                 pooling_r=4,
                 pooling_type='avg',
                 with_identity=True,
                 upsample_mode='nearest',
                 conv_cfg=None,
                 norm_cfg=dict(type='BN'),
                 out_planes=None,
                 k4_norm=True,
                 bias=False):
        super().__init__()
        _check_calibration_args(pooling_r, pooling_type, upsample_mode)
        if bias and k4_norm:
            raise ValueError('bias=True is for a bare K4 (k4_norm=False); a '
                             'norm follows K4 otherwise')
        self.with_identity = with_identity
        self.upsample_mode = upsample_mode
        out_planes = planes if out_planes is None else out_planes

        def conv3x3(conv_stride=1, conv_out=planes, conv_bias=False):
            return build_conv_layer(
                conv_cfg,
                planes,
                conv_out,
                3,
                stride=conv_stride,
                padding=dilation,
                dilation=dilation,
                groups=groups,
                bias=conv_bias)

        self.k2 = nn.Sequential(
            CalibrationPool(pooling_r, pooling_type), conv3x3(),
            build_norm_layer(norm_cfg, planes)[1])
        self.k3 = nn.Sequential(conv3x3(),
                                build_norm_layer(norm_cfg, planes)[1])
        if k4_norm:
            self.k4 = nn.Sequential(
                conv3x3(stride, out_planes),
                build_norm_layer(norm_cfg, out_planes)[1],
                nn.ReLU(inplace=True))
        else:
            self.k4 = nn.Sequential(conv3x3(stride, out_planes, bias))

    def forward(self, x2):
        size = x2.shape[-2:]
        if self.upsample_mode == 'nearest':
            x_prime = F.interpolate(self.k2(x2), size)
        else:
            x_prime = F.interpolate(
                self.k2(x2), size, mode='bilinear', align_corners=False)
        # In place: x_prime is Up's fresh output, which no backward needs, and
        # sigmoid's backward reads its own result. Fresh full-size tensors
        # cost page faults on CPUs (tools/README.md, "Speed"); same values.
        if self.with_identity:
            x_prime += x2
        gate = x_prime.sigmoid_()
        y_prime = self.k3(x2) * gate
        return self.k4(y_prime)


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


class SCBottleneck(BaseModule):
    """SCNet bottleneck: two half-width branches, K1 and the self-calibration.

    Args:
        inplanes (int): Input channels.
        planes (int): Stage width; the block outputs ``planes * 4`` channels.
        stride (int): Carried by K1 and K4 (after calibration, at full
            resolution), or by the avd pooling when ``avd`` is on.
        dilation (int): Dilation of the 3x3 convs.
        groups (int): Cardinality (SCNeXt). Default: 1.
        base_width (int): Width of each branch per group at ``planes=64``:
            branch width = ``int(planes * base_width / 64) * groups``.
            Default 32, i.e. each branch is half of ResNet's 3x3 width.
        avd (bool): Stride by ``AvgPool2d(3, stride, 1)`` after both branches
            instead of by K1/K4 (v1d). Only acts where stride > 1.
        downsample (nn.Module, optional): Shortcut projection.
        with_cp (bool): Gradient checkpointing of this block.
        init_cfg (dict, optional): mmengine init config of the block (SCNet
            passes the zero init of ``bn3`` here for ``zero_init_residual``).
        pooling_r, pooling_type, with_identity, upsample_mode: The
            calibration's settings, see :class:`SCConv`.
    """

    expansion = 4
    last_norm = 'bn3'

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
                 pooling_r=4,
                 pooling_type='avg',
                 with_identity=True,
                 upsample_mode='nearest'):
        super().__init__(init_cfg)
        width = branch_width(planes, base_width, groups)
        if width < 1:
            raise ValueError(
                f'planes={planes}, base_width={base_width}, groups={groups} '
                f'give branches of {width} channels (int(planes * base_width '
                '/ 64) * groups); raise planes or base_width')
        self.with_cp = with_cp
        self.avd = avd and stride > 1
        conv_stride = 1 if self.avd else stride

        self.conv1_a = build_conv_layer(
            conv_cfg, inplanes, width, 1, bias=False)
        self.bn1_a = build_norm_layer(norm_cfg, width)[1]
        self.conv1_b = build_conv_layer(
            conv_cfg, inplanes, width, 1, bias=False)
        self.bn1_b = build_norm_layer(norm_cfg, width)[1]
        self.k1 = nn.Sequential(
            build_conv_layer(
                conv_cfg,
                width,
                width,
                3,
                stride=conv_stride,
                padding=dilation,
                dilation=dilation,
                groups=groups,
                bias=False),
            build_norm_layer(norm_cfg, width)[1], nn.ReLU(inplace=True))
        self.scconv = SCConv(
            width,
            conv_stride,
            dilation,
            groups,
            pooling_r=pooling_r,
            pooling_type=pooling_type,
            with_identity=with_identity,
            upsample_mode=upsample_mode,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg)
        if self.avd:
            self.avd_layer = nn.AvgPool2d(3, stride, padding=1)
        self.conv3 = build_conv_layer(
            conv_cfg, width * 2, planes * self.expansion, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, planes * self.expansion)[1]
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def _conv1_ab(self, x):
        """conv1_a(X) and conv1_b(X). Both read the same X, so when a gradient
        is recorded one conv with the two weights stacked computes both: in
        backward one GEMM and one gradient for X instead of two summed (equal
        within fp32 rounding). Everywhere else they run apart, as the authors'
        code runs them, so inference is bit-identical with it (stacking is no
        faster there: tools/README.md, "Speed"). The two halves of the stacked
        output are channel slices, strided views that BN's kernels handle
        slower than one copy of each into the input's layout (NCHW or NHWC).
        They run apart for convs of another type or geometry, with hooks
        (each must run as itself), on input in neither layout, and once BN is
        folded into them (deploy mode: the in-place ReLU would then write into
        the shared output)."""
        a, b = self.conv1_a, self.conv1_b
        geometry = (a.kernel_size, a.stride, a.padding, a.dilation,
                    a.padding_mode)
        records_grad = torch.is_grad_enabled() and (x.requires_grad
                                                    or a.weight.requires_grad
                                                    or b.weight.requires_grad)
        layout = None
        if records_grad:
            layout = torch.contiguous_format if x.is_contiguous() else \
                torch.channels_last if x.is_contiguous(
                    memory_format=torch.channels_last) else None
        if (layout is not None and type(a) is nn.Conv2d
                and type(b) is nn.Conv2d and a.bias is None and b.bias is None
                and a.groups == b.groups == 1
                and geometry == (b.kernel_size, b.stride, b.padding,
                                 b.dilation, b.padding_mode)
                and a.padding_mode == 'zeros'
                and not (a._forward_hooks or a._forward_pre_hooks
                         or b._forward_hooks or b._forward_pre_hooks)):
            out = F.conv2d(x, torch.cat([a.weight, b.weight]), None, a.stride,
                           a.padding, a.dilation)
            halves = out.split([a.out_channels, b.out_channels], dim=1)
            if _compiling():
                # Traced graphs (compile, export) lay out their own kernels;
                # a copy's contiguity check would pin symbolic shapes there.
                return halves
            return tuple(h.contiguous(memory_format=layout) for h in halves)
        return a(x), b(x)

    def _inner_forward(self, x):
        x1, x2 = self._conv1_ab(x)
        y1 = self.k1(self.relu(self.bn1_a(x1)))
        y2 = self.scconv(self.relu(self.bn1_b(x2)))
        if self.avd:
            y1, y2 = self.avd_layer(y1), self.avd_layer(y2)
        out = self.bn3(self.conv3(torch.cat([y1, y2], dim=1)))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity  # in place, as mmdet's ResNet: no fresh tensor
        return out

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._inner_forward, x, use_reentrant=False)
        else:
            out = self._inner_forward(x)
        return self.relu(out)


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

    Args: as :class:`SCBottleneck`. ``groups`` must be 1 and ``avd`` off
    (both belong to the bottleneck); ``base_width`` is not used.
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

    forward = SCBottleneck.forward


@MODELS.register_module()
class SCNet(BaseModule):
    """SCNet backbone, a drop-in for mmdet's ``ResNet``.

    Returns the feature maps of the stages in ``out_indices``: by default all
    four, with 256/512/1024/2048 channels at strides 4/8/16/32. The attributes
    ``out_channels`` and ``out_strides`` describe the returned maps, in order,
    for code that builds necks and heads.

    Args:
        depth (int): 50, 101 or 152 (bottleneck, released), or 18 or 34
            (:class:`SCBasicBlock`, beyond the release: no released
            weights, train from scratch).
        in_channels (int): Input image channels. Default: 3.
        stem_channels (int, optional): Stem output channels. Default:
            ``base_channels``.
        base_channels (int): Width of the first stage (its output is x4).
        num_stages (int): 1 to 4.
        strides (Sequence[int]): Stride of the first block of each stage.
        dilations (Sequence[int]): Dilation of each stage. Dilated mode as
            mmseg's ResNetV1c: ``strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)``
            (output stride 8) or ``(1, 2, 2, 1), (1, 1, 1, 2)`` (16).
        out_indices (Sequence[int]): Stages whose outputs are returned, in
            stage order whatever the order given (as mmdet's ResNet); each
            stage at most once.
        style (str): Only 'pytorch': SCNet carries the stride in K1/K4.
        deep_stem (bool): Three 3x3 convs instead of the 7x7 stem (v1d).
        avg_down (bool): Shortcut downsampled by AvgPool then a 1x1 conv (v1d).
        avd (bool): Stride by average pooling after the branches in the first
            block of stages 2-4 (v1d).
        groups (int): Cardinality (SCNeXt). base_width (int): see
            :class:`SCBottleneck`. Widths that leave a branch with no
            channel are refused. Bottleneck depths only: SCNet-18/34 takes
            groups=1, the default base_width and no avd.
        pooling_r, pooling_type, with_identity, upsample_mode: see
            :class:`SCConv`.
        contract_dilation (bool): Halve the dilation of the first block of a
            dilated stage (mmseg's convention; the authors' dilated code does
            the same).
        frozen_stages (int): Stages with frozen parameters and BN in eval
            mode; 0 freezes the stem only, -1 nothing.
        conv_cfg, norm_cfg: mmcv layer configs (BN, SyncBN, GN, ...).
        norm_eval (bool): Keep norm layers in eval mode while training.
        with_cp (bool): Gradient checkpointing; saves memory, costs speed.
        channels_last (bool): Run the convolutions on a channels-last copy of
            the input (NHWC), which oneDNN (CPU) and cuDNN (GPU, AMP) run
            faster. The returned maps are made contiguous (NCHW) again, since
            some downstream ops (e.g. mmcv's CPU RoIAlign) read raw NCHW
            memory. Same results within fp32 rounding (about 1e-6 relative).
            Default: False.
        zero_init_residual (bool): Zero the last norm of each block, when the
            backbone is initialised from scratch (no ``init_cfg``, no
            ``pretrained``), as mmdet's ResNet does.
        pretrained (str, optional): Deprecated, use ``init_cfg``.
        init_cfg (dict or list[dict], optional): e.g.
            ``dict(type='Pretrained', checkpoint='scnet50-dc6a7e87.pth')``.

    Example:
        >>> import torch
        >>> from mmscnet.models import SCNet
        >>> model = SCNet(depth=50).eval()
        >>> for out in model(torch.rand(1, 3, 224, 224)):
        ...     print(tuple(out.shape))
        (1, 256, 56, 56)
        (1, 512, 28, 28)
        (1, 1024, 14, 14)
        (1, 2048, 7, 7)
    """

    arch_settings = {
        18: (SCBasicBlock, (2, 2, 2, 2)),
        34: (SCBasicBlock, (3, 4, 6, 3)),
        50: (SCBottleneck, (3, 4, 6, 3)),
        101: (SCBottleneck, (3, 4, 23, 3)),
        152: (SCBottleneck, (3, 8, 36, 3))
    }

    def __init__(self,
                 depth,
                 in_channels=3,
                 stem_channels=None,
                 base_channels=64,
                 num_stages=4,
                 strides=(1, 2, 2, 2),
                 dilations=(1, 1, 1, 1),
                 out_indices=(0, 1, 2, 3),
                 style='pytorch',
                 deep_stem=False,
                 avg_down=False,
                 avd=False,
                 groups=1,
                 base_width=32,
                 pooling_r=4,
                 pooling_type='avg',
                 with_identity=True,
                 upsample_mode='nearest',
                 contract_dilation=False,
                 frozen_stages=-1,
                 conv_cfg=None,
                 norm_cfg=dict(type='BN', requires_grad=True),
                 norm_eval=True,
                 with_cp=False,
                 zero_init_residual=True,
                 channels_last=False,
                 pretrained=None,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.channels_last = channels_last
        _choice('depth', depth, tuple(self.arch_settings))
        if not 1 <= num_stages <= 4:
            raise ValueError(
                f'num_stages must be in [1, 4], got {num_stages!r}')
        for name, value in (('strides', strides), ('dilations', dilations)):
            if len(value) != num_stages:
                raise ValueError(
                    f'{name} must have num_stages={num_stages} entries, '
                    f'got {len(value)}: {tuple(value)}')
        out_indices = tuple(out_indices)
        if not out_indices or any(not 0 <= i < num_stages
                                  for i in out_indices):
            raise ValueError('out_indices must be non-empty and within [0, '
                             f'{num_stages - 1}] '
                             f'(num_stages={num_stages}), got {out_indices}')
        if len(set(out_indices)) != len(out_indices):
            raise ValueError(
                f'out_indices must not repeat a stage, got {out_indices}')
        # The maps come back in stage order whatever the order given (as from
        # mmdet's ResNet), so out_channels / out_strides follow that order too.
        out_indices = tuple(sorted(out_indices))
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(
                f'frozen_stages must be in [-1, {num_stages}], got '
                f'{frozen_stages!r}')
        _choice('style', style, ('pytorch', ))
        self.block, stage_blocks = self.arch_settings[depth]
        _check_widths(depth, base_channels, base_width, groups, stem_channels
                      or base_channels, deep_stem)
        if self.block is SCBasicBlock:
            _check_basic(depth, base_channels, stem_channels or base_channels,
                         groups, base_width, avd)
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError(
                    'init_cfg and pretrained cannot be set at the same time')
            if not isinstance(pretrained, str):
                raise TypeError(
                    f'pretrained must be a str or None, got {type(pretrained)}'
                )
            warnings.warn('DeprecationWarning: pretrained is deprecated, '
                          'please use "init_cfg" instead')
            self.init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        block_init_cfg = None
        if pretrained is None and init_cfg is None:
            self.init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(
                    type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
            ]
            # As mmdet's ResNet: zero bn3 only in a backbone initialised from
            # scratch, through the blocks' own init_cfg, so that it can never
            # touch loaded weights.
            if zero_init_residual:
                block_init_cfg = dict(
                    type='Constant',
                    val=0,
                    override=dict(name=self.block.last_norm))

        self.depth = depth
        self.in_channels = in_channels
        self.stem_channels = stem_channels or base_channels
        self.num_stages = num_stages
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        self.deep_stem = deep_stem

        self._make_stem(in_channels, self.stem_channels, conv_cfg, norm_cfg)
        inplanes = self.stem_channels
        self.res_layers = []
        stage_channels, stage_strides, reduction = [], [], 4
        for i, num_blocks in enumerate(stage_blocks[:num_stages]):
            planes = base_channels * 2**i
            layer = self._make_layer(
                inplanes,
                planes,
                num_blocks,
                strides[i],
                dilations[i],
                groups=groups,
                base_width=base_width,
                avd=avd,
                avg_down=avg_down,
                contract_dilation=contract_dilation,
                with_cp=with_cp,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                init_cfg=block_init_cfg,
                pooling_r=pooling_r,
                pooling_type=pooling_type,
                with_identity=with_identity,
                upsample_mode=upsample_mode)
            inplanes = planes * self.block.expansion
            layer_name = f'layer{i + 1}'
            self.add_module(layer_name, layer)
            self.res_layers.append(layer_name)
            reduction *= strides[i]
            stage_channels.append(inplanes)
            stage_strides.append(reduction)
        # What each returned map is (channels, stride to the input), for necks
        # and heads.
        self.out_channels = tuple(stage_channels[i] for i in out_indices)
        self.out_strides = tuple(stage_strides[i] for i in out_indices)
        self._freeze_stages()
        # Weights of another architecture or depth stop with an error instead
        # of leaving the backbone randomly initialised behind a log line.
        register_load_pre_hook(self, refuse_unfit_state)

    def _make_stem(self, in_channels, stem_channels, conv_cfg, norm_cfg):
        if self.deep_stem:
            # Released v1d layout: a Sequential named conv1 whose last conv
            # has no norm/ReLU; they follow as bn1 and relu.
            mid = stem_channels // 2
            self.conv1 = nn.Sequential(
                build_conv_layer(
                    conv_cfg,
                    in_channels,
                    mid,
                    3,
                    stride=2,
                    padding=1,
                    bias=False),
                build_norm_layer(norm_cfg, mid)[1], nn.ReLU(inplace=True),
                build_conv_layer(
                    conv_cfg, mid, mid, 3, stride=1, padding=1, bias=False),
                build_norm_layer(norm_cfg, mid)[1], nn.ReLU(inplace=True),
                build_conv_layer(
                    conv_cfg,
                    mid,
                    stem_channels,
                    3,
                    stride=1,
                    padding=1,
                    bias=False))
        else:
            self.conv1 = build_conv_layer(
                conv_cfg,
                in_channels,
                stem_channels,
                7,
                stride=2,
                padding=3,
                bias=False)
        self.bn1 = build_norm_layer(norm_cfg, stem_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _make_layer(self, inplanes, planes, num_blocks, stride, dilation,
                    avg_down, contract_dilation, conv_cfg, norm_cfg,
                    **block_kwargs):
        out_planes = planes * self.block.expansion
        downsample = None
        if stride != 1 or inplanes != out_planes:
            layers = []
            if avg_down:
                # Always present (an identity pool at stride 1) to keep the
                # released key layout downsample.1 / downsample.2.
                layers.append(
                    nn.AvgPool2d(
                        stride,
                        stride,
                        ceil_mode=True,
                        count_include_pad=False))
            layers += [
                build_conv_layer(
                    conv_cfg,
                    inplanes,
                    out_planes,
                    1,
                    stride=1 if avg_down else stride,
                    bias=False),
                build_norm_layer(norm_cfg, out_planes)[1]
            ]
            downsample = nn.Sequential(*layers)
        first_dilation = (
            dilation // 2 if contract_dilation and dilation > 1 else dilation)
        kwargs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, **block_kwargs)
        blocks = [
            self.block(
                inplanes,
                planes,
                stride,
                first_dilation,
                downsample=downsample,
                **kwargs)
        ]
        blocks += [
            self.block(out_planes, planes, 1, dilation, **kwargs)
            for _ in range(1, num_blocks)
        ]
        return Sequential(
            *blocks)  # mmengine's: it initialises the blocks' init_cfg

    def _freeze_stages(self):
        frozen = []
        if self.frozen_stages >= 0:
            frozen += [self.conv1, self.bn1]
        frozen += [
            getattr(self, f'layer{i}')
            for i in range(1, self.frozen_stages + 1)
        ]
        for m in frozen:
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'SCNet expects input of shape (N, {self.in_channels}, H, W) '
                f'(in_channels={self.in_channels}), got {tuple(x.shape)}')
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x.contiguous() if self.channels_last else x)
        return tuple(outs)

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                # GN has no running statistics; only BN layers change in eval.
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


@MODELS.register_module()
class SCNetV1d(SCNet):
    """SCNet-v1d: deep stem, avg_down shortcut and avd, as released.

    The stem is 3x3 convs of width w, w, 2w with w = 32 for depth 50 and 64
    for deeper nets (``stem_channels`` = 2w), as in the authors' code.
    """

    def __init__(self, depth, stem_channels=None, **kwargs):
        if self.arch_settings.get(depth, (SCBottleneck, ))[0] is not \
                SCBottleneck:
            raise ValueError(
                f'SCNetV1d is the released bottleneck network (depth 50, '
                f'101 or 152), got depth={depth}: for SCNet-{depth} use '
                'SCNet, which takes deep_stem and avg_down too')
        for key in ('deep_stem', 'avg_down', 'avd'):
            if not kwargs.pop(key, True):
                raise ValueError(
                    f'SCNetV1d always uses {key}=True; use SCNet to turn it '
                    'off')
        if stem_channels is None:
            stem_channels = 64 if depth == 50 else 128
        super().__init__(
            depth,
            stem_channels=stem_channels,
            deep_stem=True,
            avg_down=True,
            avd=True,
            **kwargs)
