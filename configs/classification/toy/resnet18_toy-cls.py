# scnet18_toy-cls.py with mmpretrain's ResNet-18 in SCNet-18's place: the same
# data, recipe and seed.
_base_ = './scnet18_toy-cls.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'))
