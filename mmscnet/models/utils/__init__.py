from .self_calibrate import convert_to_self_calibrated

__all__ = ['convert_to_self_calibrated']
