# Cascade R-CNN R-50-FPN 1x with SCNet-50: only the backbone's type and ImageNet weights change
# (the families that Res2Net, ResNeSt, HRNet and RegNet ship in mmdetection).
_base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'

# mmscnet imported with the config: the libraries' own tools and inferencers
# (mmdet's DetInferencer, image_demo.py, tools/test.py) then load its models
# and checkpoints without an `import mmscnet` in the calling code.
custom_imports = dict(imports=['mmscnet'], allow_failed_imports=False)

# Written out, so that mmdet's own tools run what mmscnet's run: mmengine's
# CheckpointHook made safe to kill while it saves (same arguments).
default_hooks = dict(checkpoint=dict(type='mmscnet.CheckpointHook'))
# Names the training images that filter_cfg leaves out.
custom_hooks = [dict(type='mmscnet.DataCheckHook')]

model = dict(
    backbone=dict(
        type='mmscnet.SCNet',
        init_cfg=dict(type='Pretrained', checkpoint='https://backseason.oss-cn-beijing.aliyuncs.com/scnet/scnet50-dc6a7e87.pth')))
