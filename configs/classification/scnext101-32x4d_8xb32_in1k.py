# SCNeXt-101 (32x4d): scnext50-32x4d_8xb32_in1k.py at depth 101. mmpretrain's
# ResNeXt-101 32x4d recipe is its ResNeXt-50 one at depth 101, so inheriting
# the SCNeXt-50 config runs the same thing (tests/test_configs/
# test_metafile.py checks the two differ in depth only). Its checkpoint is
# what configs/detection/faster-rcnn_scnext101-32x4d_fpn_1x_coco.py starts
# from. Beyond the authors' release: no released weights, train from scratch.
_base_ = './scnext50-32x4d_8xb32_in1k.py'

model = dict(backbone=dict(depth=101))
