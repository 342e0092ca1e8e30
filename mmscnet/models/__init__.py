from .backbones import (SCBasicBlock, SCBottleneck, SCConv, SCNet, SCNetV1d,
                        SelfCalibratedConv2d, calibration_problem, sc_conv2d)
from .utils import convert_to_self_calibrated

__all__ = [
    'SCConv', 'SCBottleneck', 'SCBasicBlock', 'SCNet', 'SCNetV1d',
    'SelfCalibratedConv2d', 'sc_conv2d', 'calibration_problem',
    'convert_to_self_calibrated'
]
