# SCNet-34: mmpretrain's ResNet-34 recipe with the self-calibrated basic
# block (mmscnet.SCBasicBlock). Beyond the authors' release: no released
# weights, train from scratch.
_base_ = 'mmpretrain::resnet/resnet34_8xb32_in1k.py'

# mmscnet imported with the config: the libraries' own tools and inferencers
# (mmdet's DetInferencer, image_demo.py, tools/test.py) then load its models
# and checkpoints without an `import mmscnet` in the calling code.
custom_imports = dict(imports=['mmscnet'], allow_failed_imports=False)

# Written out, so that mmdet's own tools run what mmscnet's run: mmengine's
# CheckpointHook made safe to kill while it saves (same arguments).
default_hooks = dict(checkpoint=dict(type='mmscnet.CheckpointHook'))

model = dict(backbone=dict(type='mmscnet.SCNet'))
