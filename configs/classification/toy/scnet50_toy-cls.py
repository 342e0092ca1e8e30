# The real SCNet-50 ImageNet config, pointed at the generated toy
# classification set (tools/misc/generate_toy_data.py cls): data paths and
# classes, image scale (64), a short schedule.
_base_ = '../scnet50_8xb32_in1k.py'

data_root = 'data/toy_cls/'
classes = ('person', 'ball', 'box')

model = dict(head=dict(num_classes=3, topk=(1, )))
data_preprocessor = dict(num_classes=3)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=64, edge='short'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=1,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 classes=classes, pipeline=train_pipeline, _delete_=True))
val_dataloader = dict(
    batch_size=16, num_workers=1,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 classes=classes, pipeline=test_pipeline, _delete_=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.05))
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[8], gamma=0.1)
default_hooks = dict(checkpoint=dict(interval=10), logger=dict(interval=5))
