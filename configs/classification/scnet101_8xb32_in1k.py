_base_ = 'mmpretrain::resnet/resnet50_8xb32-lbs_in1k.py'

# mmscnet imported with the config: the libraries' own tools and inferencers
# (mmdet's DetInferencer, image_demo.py, tools/test.py) then load its models
# and checkpoints without an `import mmscnet` in the calling code.
custom_imports = dict(imports=['mmscnet'], allow_failed_imports=False)

model = dict(backbone=dict(type='mmscnet.SCNet', depth=101))
