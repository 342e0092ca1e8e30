# The real DeepLabV3 dilated SCNet-50 config, pointed at the generated toy
# segmentation set (tools/misc/generate_toy_data.py seg): data paths and classes,
# image scale (64), a short schedule, and a backbone trained from scratch
# (no ImageNet weights offline).
_base_ = '../deeplabv3_scnet50-d8_4xb4-160k_ade20k-512x512.py'

data_root = 'data/toy_seg/'
metainfo = dict(classes=('background', 'person', 'ball', 'box'),
                palette=[[0, 0, 0], [220, 20, 60], [0, 0, 230], [0, 160, 60]])
crop_size = (64, 64)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None),
    decode_head=dict(num_classes=4),
    auxiliary_head=dict(num_classes=4))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.5, 1.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.png', seg_map_suffix='.png')
train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=False,
    dataset=dict(**dataset, data_prefix=dict(img_path='img_dir/train',
                                             seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=False,
    dataset=dict(**dataset, data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=200)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=200, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=200), logger=dict(interval=10))
