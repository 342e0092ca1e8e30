# Ablation: max pooling instead of average pooling in the calibration path.
_base_ = '../scnet50_8xb32_in1k.py'

model = dict(backbone=dict(pooling_type='max'))
