from .self_calibrated_conv import (SCBasicBlock, SelfCalibratedConv2d,
                                   calibration_problem,
                                   convert_to_self_calibrated, sc_conv2d)

__all__ = [
    'SCBasicBlock', 'SelfCalibratedConv2d', 'calibration_problem',
    'convert_to_self_calibrated', 'sc_conv2d'
]
