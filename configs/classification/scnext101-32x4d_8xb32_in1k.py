# SCNeXt-101 (32x4d): scnext50-32x4d_8xb32_in1k.py at depth 101, on
# mmpretrain's ResNeXt-101 32x4d recipe. Its checkpoint is what
# configs/detection/faster-rcnn_scnext101-32x4d_fpn_1x_coco.py starts from.
# Beyond the authors' release: no released weights, train from scratch.
_base_ = 'mmpretrain::resnext/resnext101-32x4d_8xb32_in1k.py'

# mmscnet imported with the config: the libraries' own tools and inferencers
# (mmdet's DetInferencer, image_demo.py, tools/test.py) then load its models
# and checkpoints without an `import mmscnet` in the calling code.
custom_imports = dict(imports=['mmscnet'], allow_failed_imports=False)

# Written out, so that mmdet's own tools run what mmscnet's run: mmengine's
# CheckpointHook made safe to kill while it saves (same arguments).
default_hooks = dict(checkpoint=dict(type='mmscnet.CheckpointHook'))

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmscnet.SCNet',
        depth=101,
        num_stages=4,
        out_indices=(3, ),
        groups=32,
        base_width=2,
        style='pytorch'))
