# SCNet-18 on the toy classification set, with the toy recipe of
# scnet50_toy-cls.py and a fixed seed; resnet18_toy-cls.py is the same run
# with ResNet-18 (tools/demo.sh cls trains both and compares them).
_base_ = './scnet50_toy-cls.py'

model = dict(backbone=dict(depth=18), head=dict(in_channels=512))
randomness = dict(seed=0)
