_base_ = './deeplabv3_scnet50-d8_4xb4-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='https://backseason.oss-cn-beijing.aliyuncs.com/scnet/scnet101-44c5b751.pth')))
