_base_ = './deeplabv3plus_scnet50-d8_4xb2-80k_cityscapes-512x1024.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained', checkpoint='https://backseason.oss-cn-beijing.aliyuncs.com/scnet/scnet101-44c5b751.pth')))
