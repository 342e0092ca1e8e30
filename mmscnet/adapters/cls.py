"""mmpretrain: painting, the authors' released classifier checkpoints,
``ImageClassificationInferencer``, benchmark batches."""
import os.path as osp

import numpy as np
import torch

from .base import Adapter, random_images


def accept_released_classifier(model):
    """Let an mmpretrain classifier load the authors' released checkpoints
    (``conv1.*``, ``fc.*``) as well as its own layout."""
    from mmscnet.utils.converters import rename_released_classifier
    from mmscnet.utils.misc import register_load_pre_hook
    register_load_pre_hook(model, rename_released_classifier)


class ClsAdapter(Adapter):
    scope = 'mmpretrain'

    def show(self, cfg, hook, show_dir):
        hook.update(
            enable=True, interval=1, out_dir=osp.join(cfg.work_dir, show_dir))

    def prepare_model(self, model):
        accept_released_classifier(model)

    def inferencer(self, cfg, checkpoint, device, **kwargs):
        return _ClsInfer(cfg, checkpoint, device)

    def packed_batch(self, model, batch_size, shape, training):
        from mmpretrain.structures import DataSample
        packed = dict(
            inputs=random_images(batch_size, shape),
            data_samples=[
                DataSample().set_gt_label(torch.randint(0, 1000, (1, )))
                for _ in range(batch_size)
            ])
        return model.data_preprocessor(packed, training)


class _ClsInfer:

    def __init__(self, cfg, checkpoint, device):
        from mmengine.runner import load_checkpoint
        from mmpretrain.apis import ImageClassificationInferencer, get_model
        model = get_model(cfg, pretrained=False, device='cpu')
        classes = None
        if checkpoint:
            # The authors' released checkpoints (conv1.*, fc.*) load as
            # tools/test.py loads them.
            accept_released_classifier(model)
            ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
            classes = ckpt.get('meta', {}).get('dataset_meta',
                                               {}).get('classes')
        self.inferencer = ImageClassificationInferencer(
            model, pretrained=False, device=device, classes=classes)

    def __call__(self, paths):
        import mmcv
        from mmpretrain.visualization import UniversalVisualizer
        inf = self.inferencer
        samples = inf(paths, return_datasamples=True, batch_size=len(paths))
        preds = inf.postprocess(samples, None)
        if inf.visualizer is None:
            inf.visualizer = UniversalVisualizer()
        vis = []
        for path, sample, pred in zip(paths, samples, preds):
            inf.visualizer.visualize_cls(
                mmcv.imread(path, channel_order='rgb'),
                sample,
                classes=inf.classes,
                draw_gt=False,
                draw_pred=True)
            vis.append(inf.visualizer.get_image())
            scores = pred.pop(
                'pred_scores')  # 1000 numbers per image: keep the top 5
            top = np.argsort(-scores)[:5]
            pred['top5'] = [{
                'label':
                int(i),
                'score':
                float(scores[i]),
                **({
                    'class': inf.classes[i]
                } if inf.classes else {})
            } for i in top]
        return preds, vis
