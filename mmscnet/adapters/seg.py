"""mmseg: painting, ``MMSegInferencer``, benchmark batches."""
import os.path as osp

import numpy as np
import torch

from .base import Adapter, random_images


class SegAdapter(Adapter):
    scope = 'mmseg'

    def show(self, cfg, hook, show_dir):
        hook.update(
            draw=True,
            interval=1)  # mmseg's hook otherwise paints every 50th image
        cfg.visualizer.save_dir = osp.join(cfg.work_dir,
                                           show_dir)  # never into the cwd

    def inferencer(self, cfg, checkpoint, device, **kwargs):
        return _SegInfer(cfg, checkpoint, device)

    def packed_batch(self, model, batch_size, shape, training):
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        h, w = shape
        samples = []
        for _ in range(batch_size):
            s = SegDataSample(
                metainfo=dict(
                    img_shape=(h, w),
                    ori_shape=(h, w),
                    pad_shape=(h, w),
                    padding_size=[0, 0, 0, 0]))
            s.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, h, w)))
            samples.append(s)
        packed = dict(
            inputs=random_images(batch_size, shape), data_samples=samples)
        return model.data_preprocessor(packed, training)


class _SegInfer:

    def __init__(self, cfg, checkpoint, device):
        from mmseg.apis import MMSegInferencer
        self.inferencer = MMSegInferencer(
            model=cfg, weights=checkpoint, device=device)
        self.classes = self.inferencer.model.dataset_meta.get('classes')

    def __call__(self, paths):
        out = self.inferencer(paths, return_vis=True, batch_size=len(paths))
        preds = []
        for p in _as_list(out['predictions']):
            label_map = p['sem_seg'] if isinstance(p, dict) else p
            ids, counts = np.unique(label_map, return_counts=True)
            names = [
                self.classes[i]
                if self.classes and i < len(self.classes) else int(i)
                for i in ids
            ]
            # The label map itself goes to a PNG beside the JSON
            # (apis/inference.py).
            preds.append({
                'sem_seg': label_map,
                'classes_present': {
                    str(n): round(c / label_map.size, 6)
                    for n, c in zip(names, counts)
                }
            })
        return preds, _as_list(out['visualization'])


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]
