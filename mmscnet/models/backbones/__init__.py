from .scnet import (SCBasicBlock, SCBottleneck, SCConv, SCNet, SCNetV1d,
                    SelfCalibratedConv2d, calibration_problem, sc_conv2d)

__all__ = [
    'SCConv', 'SCBottleneck', 'SCBasicBlock', 'SCNet', 'SCNetV1d',
    'SelfCalibratedConv2d', 'sc_conv2d', 'calibration_problem'
]
