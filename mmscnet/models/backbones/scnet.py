"""Self-Calibrated Convolutions (SCNet, Liu et al., CVPR 2020) as an OpenMMLab
backbone: the authors' released networks, in the paper's names.

A bottleneck's input X is projected by two 1x1 convs into X1 and X2. X1 goes
through a plain 3x3 conv K1; X2 goes through the self-calibration
(``SCConv``)::

    T  = Pool_r(X2)                  r = pooling_r; average pooling
    X' = Up(K2(T))                   Up: nearest resize to X2's size
    Y' = K3(X2) * sigmoid(X2 + X')
    Y2 = K4(Y')                      K4 carries the block's stride

Y1 = K1(X1) and Y2 are concatenated, projected by a 1x1 conv (x4 expansion)
and added to the shortcut, as in ResNet. Module and parameter names follow the
release (``layer1.0.conv1_a``, ``layer1.0.k1.0``, ``layer1.0.scconv.k2.1``
...), so the authors' ImageNet checkpoints load through
``init_cfg=dict(type='Pretrained')`` with no conversion.

Beyond the release, the paper's general form of the layer (a drop-in for any
3x3 conv) and SCNet-18/34's basic block built from it live in
``mmscnet/models/layers/self_calibrated_conv.py``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule, Sequential
from torch.nn.modules.batchnorm import _BatchNorm

from mmscnet.registry import MODELS
from mmscnet.utils.misc import register_load_pre_hook
from ..utils.checks import (check_basic, check_branch_width, check_choice,
                            check_positive_int, check_stages, check_style,
                            check_v1d, check_widths, pretrained_init_cfg)
from ..utils.state_dict_guard import refuse_unfit_state

POOLING_TYPES = ('avg', 'max')
UPSAMPLE_MODES = ('nearest', 'bilinear')


def _shortfall(r, side):
    """``max(r - side, 0)``, kept a function of the size in traced graphs: a
    size is an int in eager mode, a symbolic int under torch.export and a
    0-d tensor under the TorchScript ONNX exporter, and each takes its own
    max."""
    if isinstance(side, torch.Tensor):
        return (r - side).clamp(min=0)
    return torch.sym_max(r - side, 0)


class CalibrationPool(nn.Module):
    """Pool_r of the paper: a non-overlapping r x r window, exactly the
    released ``nn.AvgPool2d(r, r)`` (or ``nn.MaxPool2d``) wherever the map is
    at least r x r.

    A side shorter than r (the deep stages of a detector on a small image) is
    pooled whole instead of raising. With no shape logic in Python, so that a
    graph exported with dynamic sizes pools right at every size (an exported
    window is a constant): the short side is padded to r, with zeros divided
    by the map's share of the window for 'avg', with -inf for 'max'. Where
    both sides are at least r the padding is empty and the divisor exactly 1.
    (Training with batch statistics on ONE image whose map pools to 1x1 still
    fails in K2's BatchNorm, as it would in PyTorch.)
    """

    def __init__(self, pooling_r, pooling_type='avg'):
        super().__init__()
        self.pooling_r = pooling_r
        self.pooling_type = pooling_type

    def forward(self, x):
        r = self.pooling_r
        h, w = x.shape[-2:]
        pad = (0, _shortfall(r, w), 0, _shortfall(r, h))
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
        dilation, groups (int): Of K2, K3 and K4 (groups: SCNeXt).
        pooling_r (int): r, the down-sampling rate of the calibration path.
            Default: 4.
        pooling_type (str): 'avg' (paper) or 'max' (its ablation).
        with_identity (bool): Keep X2 inside the sigmoid. False gives the
            ablation ``Y' = K3(X2) * sigmoid(X')``. Default: True.
        upsample_mode (str): How Up resizes: 'nearest' (the released code's
            ``F.interpolate`` default) or 'bilinear' (the paper's text).
        out_planes (int, optional): Output channels of K4. Default: planes.
            K2 and K3 keep ``planes``: the gate adds X2 to K2's output and
            multiplies K3's output, so both have X2's width.
        k4_norm (bool): K4 is followed by a norm and ReLU, as in the
            bottleneck (True, released). False leaves K4 a bare conv, for the
            general layer, whose host normalises after it.
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
        check_positive_int('pooling_r', pooling_r)
        check_choice('pooling_type', pooling_type, POOLING_TYPES)
        check_choice('upsample_mode', upsample_mode, UPSAMPLE_MODES)
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
        # In place, with the same values: x_prime is Up's fresh output, which
        # no backward needs, and sigmoid's backward reads its own result.
        if self.with_identity:
            x_prime += x2
        gate = x_prime.sigmoid_()
        y_prime = self.k3(x2) * gate
        return self.k4(y_prime)


def branch_width(planes, base_width, groups):
    """Channels of each of a bottleneck's two branches (X1, X2)."""
    return int(planes * base_width / 64) * groups


class SCBottleneck(BaseModule):
    """SCNet bottleneck: two half-width branches, K1 and the self-calibration.

    Args:
        inplanes, planes (int): Input channels and stage width; the block
            outputs ``planes * 4`` channels.
        stride (int): Carried by K1 and K4 (after calibration, at full
            resolution), or by the avd pooling when ``avd`` is on.
        groups (int): Cardinality (SCNeXt). Default: 1.
        base_width (int): Width of each branch per group at ``planes=64``:
            ``int(planes * base_width / 64) * groups`` channels. Default 32:
            each branch is half of ResNet's 3x3 width.
        avd (bool): Stride by ``AvgPool2d(3, stride, 1)`` after both branches
            instead of by K1/K4 (v1d). Only acts where stride > 1.
        init_cfg (dict, optional): SCNet passes the zero init of ``bn3``
            here for ``zero_init_residual``.
        dilation, downsample, with_cp, conv_cfg, norm_cfg: as in mmdet's
            ResNet bottleneck. pooling_r, pooling_type, with_identity,
            upsample_mode: see :class:`SCConv`.
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
        check_branch_width(width, planes, base_width, groups)
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

    def _project(self, x):
        """X1 and X2: the two 1x1 projections of X, with their BN and ReLU."""
        return (self.relu(self.bn1_a(self.conv1_a(x))),
                self.relu(self.bn1_b(self.conv1_b(x))))

    def _inner_forward(self, x):
        x1, x2 = self._project(x)
        y1 = self.k1(x1)
        y2 = self.scconv(x2)
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


@MODELS.register_module()
class SCNet(BaseModule):
    """SCNet backbone, a drop-in for mmdet's ``ResNet``: the same arguments
    (``in_channels``, ``stem_channels``, ``base_channels``, ``num_stages``,
    ``strides``, ``dilations``, ``out_indices``, ``deep_stem``,
    ``avg_down``, ``frozen_stages``, ``conv_cfg``, ``norm_cfg``,
    ``norm_eval``, ``with_cp``, ``zero_init_residual``, ``pretrained``,
    ``init_cfg``), with the same meaning, so that the ``type`` is the only
    change in a config.

    Returns the feature maps of the stages in ``out_indices`` (in stage
    order): by default all four, with 256/512/1024/2048 channels at strides
    4/8/16/32. ``out_channels`` and ``out_strides`` describe them, in order,
    for code that builds necks and heads.

    Args:
        depth (int): 50, 101 or 152 (bottleneck, released), or 18 or 34
            (``SCBasicBlock`` of the general layer's module, beyond the
            release: no released weights, train from scratch).
        style (str): Only 'pytorch': SCNet carries the stride in K1/K4.
        avd (bool): Stride by average pooling after the branches in the first
            block of stages 2-4 (v1d).
        groups, base_width (int): Cardinality (SCNeXt) and branch width, see
            :class:`SCBottleneck`. Bottleneck depths only.
        pooling_r, pooling_type, with_identity, upsample_mode: see
            :class:`SCConv`.
        contract_dilation (bool): Halve the dilation of the first block of a
            dilated stage (mmseg's convention; the authors' dilated code does
            the same). Dilated mode as mmseg's ResNetV1c: ``strides=(1, 2, 1,
            1), dilations=(1, 1, 2, 4)`` (output stride 8) or ``(1, 2, 2,
            1), (1, 1, 1, 2)`` (16).
        channels_last (bool): Run the convolutions on a channels-last copy of
            the input (NHWC), which oneDNN and cuDNN (AMP) run faster; the
            maps come back NCHW (mmcv's CPU RoIAlign reads raw NCHW memory).
            Same results within fp32 rounding. Default: False.
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

    # SCNet-18/34's block is built from the general layer, which builds on
    # SCConv above: it is found by its registry name, not imported.
    arch_settings = {
        18: ('SCBasicBlock', (2, 2, 2, 2)),
        34: ('SCBasicBlock', (3, 4, 6, 3)),
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
        check_choice('depth', depth, tuple(self.arch_settings))
        out_indices = check_stages(num_stages, strides, dilations, out_indices,
                                   frozen_stages)
        check_style(style)
        block, stage_blocks = self.arch_settings[depth]
        self.block = MODELS.get(block) if isinstance(block, str) else block
        stem_channels = stem_channels or base_channels
        check_widths(depth, base_channels, base_width, groups,
                     stem_channels, deep_stem,
                     branch_width(base_channels, base_width, groups))
        if self.block is not SCBottleneck:
            check_basic(depth, base_channels, stem_channels, groups,
                        base_width, avd)
        if pretrained is not None:
            self.init_cfg = pretrained_init_cfg(pretrained, init_cfg)
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
        self.stem_channels = stem_channels
        self.num_stages = num_stages
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        self.deep_stem = deep_stem
        self.channels_last = channels_last

        self._make_stem(in_channels, stem_channels, conv_cfg, norm_cfg)
        block_kwargs = dict(
            groups=groups,
            base_width=base_width,
            avd=avd,
            with_cp=with_cp,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            init_cfg=block_init_cfg,
            pooling_r=pooling_r,
            pooling_type=pooling_type,
            with_identity=with_identity,
            upsample_mode=upsample_mode)
        inplanes = stem_channels
        self.res_layers = []
        stage_channels, stage_strides, reduction = [], [], 4
        for i, num_blocks in enumerate(stage_blocks[:num_stages]):
            planes = base_channels * 2**i
            layer = self._make_layer(inplanes, planes, num_blocks, strides[i],
                                     dilations[i], avg_down, contract_dilation,
                                     **block_kwargs)
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

        def conv(cin, cout, k, stride):
            return build_conv_layer(
                conv_cfg, cin, cout, k, stride, padding=k // 2, bias=False)

        if self.deep_stem:
            # Released v1d layout: a Sequential named conv1 whose last conv
            # has no norm/ReLU; they follow as bn1 and relu.
            mid = stem_channels // 2
            self.conv1 = nn.Sequential(
                conv(in_channels, mid, 3, 2),
                build_norm_layer(norm_cfg, mid)[1], nn.ReLU(inplace=True),
                conv(mid, mid, 3, 1),
                build_norm_layer(norm_cfg, mid)[1], nn.ReLU(inplace=True),
                conv(mid, stem_channels, 3, 1))
        else:
            self.conv1 = conv(in_channels, stem_channels, 7, 2)
        self.bn1 = build_norm_layer(norm_cfg, stem_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def _make_layer(self, inplanes, planes, num_blocks, stride, dilation,
                    avg_down, contract_dilation, **kwargs):
        out_planes = planes * self.block.expansion
        downsample = None
        if stride != 1 or inplanes != out_planes:
            # avg_down: the pool is always there (an identity at stride 1),
            # to keep the released key layout downsample.1 / downsample.2.
            pool = [
                nn.AvgPool2d(
                    stride, stride, ceil_mode=True, count_include_pad=False)
            ] if avg_down else []
            downsample = nn.Sequential(
                *pool,
                build_conv_layer(
                    kwargs['conv_cfg'],
                    inplanes,
                    out_planes,
                    1,
                    1 if avg_down else stride,
                    bias=False),
                build_norm_layer(kwargs['norm_cfg'], out_planes)[1])
        first_dilation = (
            dilation // 2 if contract_dilation and dilation > 1 else dilation)
        blocks = [
            self.block(
                inplanes,
                planes,
                stride,
                first_dilation,
                downsample=downsample,
                **kwargs)
        ] + [
            self.block(out_planes, planes, 1, dilation, **kwargs)
            for _ in range(1, num_blocks)
        ]
        # mmengine's Sequential: it initialises the blocks' init_cfg.
        return Sequential(*blocks)

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
        check_v1d(
            depth,
            self.arch_settings.get(depth, (SCBottleneck, ))[0] is SCBottleneck,
            kwargs)
        if stem_channels is None:
            stem_channels = 64 if depth == 50 else 128
        super().__init__(
            depth,
            stem_channels=stem_channels,
            deep_stem=True,
            avg_down=True,
            avd=True,
            **kwargs)
