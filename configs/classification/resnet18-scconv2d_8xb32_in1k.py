# mmpretrain's own ResNet-18, made self-calibrated by config alone: every conv
# it builds goes through conv_cfg, and mmscnet.SCConv2d calibrates the 16 3x3
# convs of its basic blocks; the 7x7 stem and the 1x1 shortcuts stay plain.
# This is SCNet-18's architecture (same parameter count) in mmpretrain's
# module layout. Beyond the authors' release: train from scratch.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

# mmscnet imported with the config: the libraries' own tools and inferencers
# (mmdet's DetInferencer, image_demo.py, tools/test.py) then load its models
# and checkpoints without an `import mmscnet` in the calling code.
custom_imports = dict(imports=['mmscnet'], allow_failed_imports=False)

# Written out, so that mmdet's own tools run what mmscnet's run: mmengine's
# CheckpointHook made safe to kill while it saves (same arguments).
default_hooks = dict(checkpoint=dict(type='mmscnet.CheckpointHook'))

model = dict(backbone=dict(conv_cfg=dict(type='mmscnet.SCConv2d')))
