from .backbones import SCBottleneck, SCConv, SCNet, SCNetV1d
from .layers import (SCBasicBlock, SelfCalibratedConv2d, calibration_problem,
                     convert_to_self_calibrated, sc_conv2d)

__all__ = [
    'SCConv', 'SCBottleneck', 'SCBasicBlock', 'SCNet', 'SCNetV1d',
    'SelfCalibratedConv2d', 'sc_conv2d', 'calibration_problem',
    'convert_to_self_calibrated'
]
