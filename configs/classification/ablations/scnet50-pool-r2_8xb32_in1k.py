# Ablation (paper, Sec. 4): down-sampling rate r of the calibration path, 2 instead of 4.
_base_ = '../scnet50_8xb32_in1k.py'

model = dict(backbone=dict(pooling_r=2))
