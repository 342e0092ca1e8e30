# mmseg's UPerNet R-50 recipe on ADE20K with the non-dilated SCNet-50.
_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'

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
