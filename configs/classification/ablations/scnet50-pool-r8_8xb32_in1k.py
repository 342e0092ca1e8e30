# Ablation: down-sampling rate r = 8.
_base_ = '../scnet50_8xb32_in1k.py'

model = dict(backbone=dict(pooling_r=8))
