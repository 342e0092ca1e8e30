# The authors' ImageNet recipe, which is mmpretrain's ResNet-50 "lbs" config:
# SGD lr 0.1 per 256 images, 100 epochs, lr x0.1 at epochs 30/60/90, label
# smoothing 0.1, RandomResizedCrop 224 + flip. Only the backbone changes.
_base_ = 'mmpretrain::resnet/resnet50_8xb32-lbs_in1k.py'

# mmscnet imported with the config: the libraries' own tools and inferencers
# (mmdet's DetInferencer, image_demo.py, tools/test.py) then load its models
# and checkpoints without an `import mmscnet` in the calling code.
custom_imports = dict(imports=['mmscnet'], allow_failed_imports=False)

# Written out, so that mmdet's own tools run what mmscnet's run: mmengine's
# CheckpointHook made safe to kill while it saves (same arguments).
default_hooks = dict(checkpoint=dict(type='mmscnet.CheckpointHook'))

model = dict(backbone=dict(type='mmscnet.SCNet'))
