"""mmpretrain: painting, the authors' released classifier checkpoints,
``ImageClassificationInferencer``, the exported classifier, benchmark
batches."""
import os.path as osp

import numpy as np
import torch

from .base import Adapter, check_config_for_runtime, random_images


def accept_released_classifier(model):
    """Let an mmpretrain classifier load the authors' released checkpoints
    (``conv1.*``, ``fc.*``) as well as its own layout."""
    from mmscnet.utils.converters import rename_released_classifier
    from mmscnet.utils.misc import register_load_pre_hook
    register_load_pre_hook(model, rename_released_classifier)


class ClsAdapter(Adapter):
    scope = 'mmpretrain'
    runtime_task = 'classification'

    def export_module(self, model):
        from mmscnet.deploy.graph.classifier import ClassifierExport
        return ClassifierExport(model)

    def runtime_inferencer(self,
                           cfg,
                           graph_path,
                           backend,
                           score_thr=0.3,
                           threads=None):
        return _ClsRuntimeInfer(cfg, graph_path, backend, threads)

    def runtime_samples(self, samples, results):
        for sample, r in zip(samples, results):
            sample.set_pred_score(torch.from_numpy(r['scores']))
            sample.set_pred_label(torch.tensor([r['label']]))
        return samples

    def sample_results(self, samples):
        return [
            dict(scores=s.pred_score.numpy(), label=int(s.pred_label.item()))
            for s in samples
        ]

    def dataset_classes(self, dataset_type):
        from mmpretrain.registry import DATASETS
        dataset_cls = DATASETS.get(dataset_type)
        return getattr(dataset_cls, 'METAINFO', {}).get('classes')

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
            # 1000 numbers per image: keep the top 5
            pred['top5'] = top5(pred.pop('pred_scores'), inf.classes)
        return preds, vis


def top5(scores, classes):
    top = np.argsort(-scores, kind='stable')[:5]
    return [
        dict(
            label=int(i),
            score=float(scores[i]),
            **({
                'class': classes[i]
            } if classes else {})) for i in top
    ]


class _ClsRuntimeInfer:
    """The exported classifier in ONNX Runtime or OpenVINO, with what
    ImageClassificationInferencer gives (label, score, class, the top 5) and
    paints (mmpretrain's UniversalVisualizer)."""

    def __init__(self, cfg, graph_path, backend, threads):
        from mmscnet.deploy.runtime import ExportedModel
        self.model = ExportedModel(graph_path, backend, threads,
                                   'classification')
        check_config_for_runtime(ClsAdapter(), cfg, self.model.spec,
                                 graph_path)
        self.classes = self.model.classes

    def __call__(self, paths):
        from mmpretrain.structures import DataSample
        from mmpretrain.visualization import UniversalVisualizer

        from mmscnet.utils.image_file import read_image
        images = [read_image(p) for p in paths]
        visualizer = UniversalVisualizer()
        preds, vis = [], []
        for img, r in zip(images, self.model(images)):
            label = r['label']
            pred = dict(pred_label=label, pred_score=float(r['scores'][label]))
            if self.classes:
                pred['pred_class'] = self.classes[label]
            pred['top5'] = top5(r['scores'], self.classes)
            preds.append(pred)
            sample = DataSample().set_pred_score(
                torch.from_numpy(r['scores'])).set_pred_label(
                    torch.tensor([label]))
            visualizer.visualize_cls(
                img[:, :, ::-1].copy(),
                sample,
                classes=self.classes,
                draw_gt=False,
                draw_pred=True)
            vis.append(visualizer.get_image())
        return preds, vis
