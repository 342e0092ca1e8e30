from .scnet import SCBottleneck, SCConv, SCNet, SCNetV1d

__all__ = ['SCConv', 'SCBottleneck', 'SCNet', 'SCNetV1d']
