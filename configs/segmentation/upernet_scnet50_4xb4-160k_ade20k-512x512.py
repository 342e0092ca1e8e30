# mmseg's UPerNet R-50 recipe on ADE20K with the non-dilated SCNet-50.
_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'

model = dict(
    pretrained=None,
    backbone=dict(
        type='mmscnet.SCNet',
        init_cfg=dict(type='Pretrained', checkpoint='https://backseason.oss-cn-beijing.aliyuncs.com/scnet/scnet50-dc6a7e87.pth')))
