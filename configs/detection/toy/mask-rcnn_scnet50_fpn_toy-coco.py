# The real Mask R-CNN SCNet-50 config, pointed at the generated toy COCO set
# (tools/misc/generate_toy_data.py coco) so that it trains on a CPU in minutes.
# Changed: data paths and classes, image scale (160), schedule, and -- since
# no ImageNet weights can be downloaded offline -- the backbone trains from
# scratch with all stages and BN statistics trainable.
_base_ = '../mask-rcnn_scnet50_fpn_1x_coco.py'

data_root = 'data/toy_coco/'
metainfo = dict(classes=('person', 'ball', 'box'),
                palette=[(220, 20, 60), (0, 0, 230), (0, 160, 60)])
image_scale = (160, 160)

model = dict(
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None),
    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# Schedule: 60 iterations per epoch (240 images, batch 4), about 3.5 min each on 2 CPU cores;
# validated after each epoch, so that the demo's AP curves have a point per epoch.
max_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[2],
         gamma=0.1),
]
# From scratch at lr 0.02 the loss can blow up in the second epoch (it did, to NaN,
# on a run whose random draws differed only by the validations): gradients are
# clipped, at the max_norm=35 of mmdet's FCOS, FoveaBox and SSD recipes.
optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(checkpoint=dict(interval=max_epochs), logger=dict(interval=10))

# Fewer proposals and sampled RoIs than COCO needs for 1-3 objects per image:
# the RoI heads dominate a CPU step otherwise.
model.update(
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=300),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

# A fixed seed, so that a rerun of the demo reproduces its numbers closely.
randomness = dict(seed=0)
