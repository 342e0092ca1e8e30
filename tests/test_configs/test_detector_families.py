"""SCNet swapped into mmdet's own packaged configs of detector families this
project ships no config for: each builds, takes one training step on mmdet's
demo inputs and predicts."""
import pytest
import torch
from mmengine.config import Config

pytestmark = pytest.mark.downstream

PYTORCH_STYLE = ("data_preprocessor=dict(mean=[123.675, 116.28, 103.53], "
                 "std=[58.395, 57.12, 57.375], bgr_to_rgb=True), ")
FAMILIES = {
    # caffe style in mmdet: the two changes the backbone's error names
    'fcos': ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', PYTORCH_STYLE, ''),
    'atss': ('atss/atss_r50_fpn_1x_coco.py', '', ''),
    # DETR-like: one stage map into the transformer
    'conditional-detr':
    ('conditional_detr/conditional-detr_r50_8xb2-50e_coco.py', '',
     'out_indices=(3, ), '),
}


def swapped(tmp_path,
            base,
            model_extra='',
            backbone_extra='',
            backbone_keep=False):
    path = tmp_path / 'swapped.py'
    delete = '' if backbone_keep else '_delete_=True, '
    path.write_text(f"_base_ = 'mmdet::{base}'\n"
                    f'model = dict({model_extra}backbone=dict({delete}'
                    f"type='mmscnet.SCNet', depth=50, {backbone_extra}"
                    'frozen_stages=1, norm_eval=True))\n')
    return Config.fromfile(str(path))


def build(cfg):
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_scnet_swapped_into_mmdet_family_trains_and_predicts(family, tmp_path):
    from mmscnet.adapters import get_adapter
    base, model_extra, backbone_extra = FAMILIES[family]
    model = build(swapped(tmp_path, base, model_extra, backbone_extra))
    assert type(model.backbone).__name__ == 'SCNet'
    adapter = get_adapter('mmdet')
    model.train()
    batch = adapter.packed_batch(model, 2, (128, 160), training=True)
    losses = model(**batch, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss.backward()
    grad = model.backbone.layer4[0].scconv.k4[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    optimizer.step()
    model.eval()
    batch = adapter.packed_batch(model, 1, (128, 160), training=False)
    with torch.no_grad():
        pred = model(**batch, mode='predict')[0].pred_instances
    assert pred.bboxes.shape[1] == 4 and len(pred.scores) == len(pred.labels)


def test_caffe_style_config_is_refused_with_what_to_change(tmp_path):
    cfg = swapped(tmp_path, FAMILIES['fcos'][0], backbone_keep=True)
    assert cfg.model.backbone['style'] == 'caffe'  # from mmdet's FCOS
    with pytest.raises(ValueError) as e:
        build(cfg)
    for part in ("style must be one of ('pytorch',), got 'caffe'",
                 'weights are pytorch style', "style='pytorch'",
                 'bgr_to_rgb=True', 'std=[58.395, 57.12, 57.375]'):
        assert part in str(e.value), str(e.value)
