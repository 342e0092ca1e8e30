# SCNeXt-50 (32x4d): mmpretrain's ResNeXt-50 32x4d recipe with SCNet's
# bottleneck. As ResNeXt-50 32x4d, each block's 3x3 width is 32 groups x 4
# channels at layer1 (128); SCNet splits it in two branches (K1 and the
# calibration) of 64, each with 32 groups: base_width=2 in SCNet's per-branch
# terms, as the released SCNet-50's base_width=32 is half of ResNet's 64.
# Same parameters as ResNeXt-50 32x4d (configs/classification/README.md).
# Beyond the authors' release: no released weights, train from scratch.
_base_ = 'mmpretrain::resnext/resnext50-32x4d_8xb32_in1k.py'

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
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        groups=32,
        base_width=2,
        style='pytorch'))
