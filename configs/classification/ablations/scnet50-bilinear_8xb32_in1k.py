# Variant: bilinear Up, as the paper's text says (the released code uses nearest).
_base_ = '../scnet50_8xb32_in1k.py'

model = dict(backbone=dict(upsample_mode='bilinear'))
