# mmseg's deeplabv3 R-50-D8 recipe with a dilated SCNet-50 (output stride 8).
# mmseg's base loads ResNetV1c weights through model.pretrained; SCNet takes
# the authors' ImageNet weights through the backbone's init_cfg instead.
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-160k_ade20k-512x512.py'

# mmscnet imported with the config: the libraries' own tools and inferencers
# (mmdet's DetInferencer, image_demo.py, tools/test.py) then load its models
# and checkpoints without an `import mmscnet` in the calling code.
custom_imports = dict(imports=['mmscnet'], allow_failed_imports=False)

# Written out, so that mmdet's own tools run what mmscnet's run: mmengine's
# CheckpointHook made safe to kill while it saves (same arguments).
default_hooks = dict(checkpoint=dict(type='mmscnet.CheckpointHook'))

model = dict(
    pretrained=None,
    backbone=dict(
        type='mmscnet.SCNet',
        init_cfg=dict(type='Pretrained', checkpoint='https://backseason.oss-cn-beijing.aliyuncs.com/scnet/scnet50-dc6a7e87.pth')))
