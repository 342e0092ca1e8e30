"""mmseg: painting, ``MMSegInferencer``, benchmark batches."""
import os.path as osp

import numpy as np
import torch

from .base import (Adapter, build_visualizer, check_config_for_runtime,
                   random_images)


class SegAdapter(Adapter):
    scope = 'mmseg'
    runtime_task = 'segmentation'

    def runtime_samples(self, samples, results):
        from mmengine.structures import PixelData
        for sample, r in zip(samples, results):
            sample.seg_logits = PixelData(data=torch.from_numpy(r['logits']))
            sample.pred_sem_seg = PixelData(
                data=torch.from_numpy(r['sem_seg'])[None])
        return samples

    def sample_results(self, samples):
        return [
            dict(
                logits=s.seg_logits.data.numpy(),
                sem_seg=s.pred_sem_seg.data[0].numpy()) for s in samples
        ]

    def show(self, cfg, hook, show_dir):
        hook.update(
            draw=True,
            interval=1)  # mmseg's hook otherwise paints every 50th image
        cfg.visualizer.save_dir = osp.join(cfg.work_dir,
                                           show_dir)  # never into the cwd

    def inferencer(self, cfg, checkpoint, device, **kwargs):
        return _SegInfer(cfg, checkpoint, device)

    def export_module(self, model):
        from mmscnet.deploy.graph.segmentor import SegmentorExport
        return SegmentorExport(model)

    def baked(self, cfg):
        return dict(
            super().baked(cfg), **{
                'model.decode_head.threshold':
                cfg.model.decode_head.get('threshold')
            })

    def runtime_inferencer(self,
                           cfg,
                           graph_path,
                           backend,
                           score_thr=0.3,
                           threads=None):
        return _SegRuntimeInfer(cfg, graph_path, backend, threads)

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
        preds = [
            seg_prediction(p['sem_seg'] if isinstance(p, dict) else p,
                           self.classes) for p in _as_list(out['predictions'])
        ]
        return preds, _as_list(out['visualization'])


def seg_prediction(label_map, classes):
    """The label map (saved as a PNG beside the JSON by apis/inference.py)
    and the share of the image each class covers."""
    # mmseg's binary heads give a float map of 0 and 1.
    ids, counts = np.unique(label_map, return_counts=True)
    ids = ids.astype(np.int64)
    names = [
        classes[i] if classes and i < len(classes) else int(i) for i in ids
    ]
    return {
        'sem_seg': label_map,
        'classes_present': {
            str(n): round(c / label_map.size, 6)
            for n, c in zip(names, counts)
        }
    }


class _SegRuntimeInfer:
    """The exported segmentor in ONNX Runtime or OpenVINO, painted by the
    config's SegLocalVisualizer as MMSegInferencer paints."""

    def __init__(self, cfg, graph_path, backend, threads):
        from mmseg.registry import VISUALIZERS

        from mmscnet.deploy.runtime import ExportedModel
        self.model = ExportedModel(graph_path, backend, threads,
                                   'segmentation')
        spec = self.model.spec
        check_config_for_runtime(SegAdapter(), cfg, spec, graph_path)
        self.classes = spec.get('classes')
        self.visualizer = build_visualizer(cfg, VISUALIZERS, self.classes,
                                           spec.get('palette'))
        self.visualizer.set_dataset_meta(**self.visualizer.dataset_meta)
        self.visualizer.alpha = 0.8  # MMSegInferencer's default opacity

    def __call__(self, paths):
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample

        from mmscnet.utils.image_file import read_image
        preds, vis = [], []
        for path in paths:  # mmseg batches only images of one size
            img = read_image(path)
            label_map = self.model([img])[0]['sem_seg']
            preds.append(seg_prediction(label_map, self.classes))
            sample = SegDataSample(
                pred_sem_seg=PixelData(data=torch.from_numpy(label_map)[None]))
            self.visualizer.add_datasample(
                osp.basename(path),
                img[:, :, ::-1],
                sample,
                draw_gt=False,
                draw_pred=True,
                with_labels=True)
            vis.append(self.visualizer.get_image())
        return preds, vis


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]
