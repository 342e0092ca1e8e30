# SimpleBaseline SCNet-50-v1d (deep stem, average-pool shortcut) at 256x192: mmpose's
# SCNet-50 config and schedule, so that it compares with that row; no published result.
_base_ = 'mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_scnet50_8xb64-210e_coco-256x192.py'

# mmscnet imported with the config: the libraries' own tools and inferencers
# (mmdet's DetInferencer, image_demo.py, tools/test.py) then load its models
# and checkpoints without an `import mmscnet` in the calling code.
custom_imports = dict(imports=['mmscnet'], allow_failed_imports=False)

# Written out, so that mmdet's own tools run what mmscnet's run: mmengine's
# CheckpointHook made safe to kill while it saves (same arguments).
default_hooks = dict(checkpoint=dict(type='mmscnet.CheckpointHook'))

model = dict(
    backbone=dict(
        type='mmscnet.SCNetV1d',
        init_cfg=dict(type='Pretrained', checkpoint='https://backseason.oss-cn-beijing.aliyuncs.com/scnet/scnet50_v1d-4109d1e1.pth')))
