_base_ = 'mmpretrain::resnet/resnet50_8xb32-lbs_in1k.py'

model = dict(backbone=dict(type='mmscnet.SCNet', depth=101))
