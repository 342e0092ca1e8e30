# SimpleBaseline SCNet-101 at 384x288 (mmpose's config; backbone and its weights changed).
_base_ = 'mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_scnet101_8xb48-210e_coco-384x288.py'

model = dict(
    backbone=dict(
        type='mmscnet.SCNet',
        init_cfg=dict(type='Pretrained', checkpoint='https://backseason.oss-cn-beijing.aliyuncs.com/scnet/scnet101-44c5b751.pth')))
