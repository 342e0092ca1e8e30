# Faster R-CNN X-101 32x4d FPN 1x with SCNeXt-101 (32x4d): mmdet's ResNeXt
# config with SCNet's bottleneck at the same width (32 groups in each of the
# two branches, base_width=2 per branch: configs/classification/README.md).
# Beyond the authors' release: no ImageNet weights are released for it. The
# checkpoint below is the one configs/classification/
# scnext101-32x4d_8xb32_in1k.py writes; train that first, or point init_cfg
# at your own.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_x101-32x4d_fpn_1x_coco.py'

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
        base_width=2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/scnext101-32x4d_8xb32_in1k/epoch_100.pth')))
