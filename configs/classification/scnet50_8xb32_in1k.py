# The authors' ImageNet recipe, which is mmpretrain's ResNet-50 "lbs" config:
# SGD lr 0.1 per 256 images, 100 epochs, lr x0.1 at epochs 30/60/90, label
# smoothing 0.1, RandomResizedCrop 224 + flip. Only the backbone changes.
_base_ = 'mmpretrain::resnet/resnet50_8xb32-lbs_in1k.py'

model = dict(backbone=dict(type='mmscnet.SCNet'))
