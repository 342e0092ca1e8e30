"""mmdet: painting, flip TTA, ``DumpDetResults``, ``DetInferencer``, demo
batches."""
import os.path as osp
import warnings
from copy import deepcopy

import numpy as np

from .base import Adapter, build_visualizer, check_config_for_runtime


class DetAdapter(Adapter):
    scope = 'mmdet'
    dump_metric = 'DumpDetResults'
    runtime_task = 'detection'

    def runtime_samples(self, samples, results):
        import torch
        from mmengine.structures import InstanceData
        for sample, r in zip(samples, results):
            sample.pred_instances = InstanceData(
                **{
                    k: torch.from_numpy(np.asarray(v))
                    for k, v in r.items()
                })
            sample.pred_instances.labels = sample.pred_instances.labels.long()
        return samples

    def sample_results(self, samples):
        results = []
        for sample in samples:
            inst = sample.pred_instances
            r = dict(
                labels=inst.labels.numpy(),
                scores=inst.scores.numpy(),
                bboxes=inst.bboxes.numpy())
            if 'masks' in inst:
                r['masks'] = inst.masks.numpy().astype(bool)
            results.append(r)
        return results

    def add_tie_margins(self, model, batch, results):
        # How far the RPN's proposal list, when full, is from a tie at its
        # cut: PyTorch's proposals are asked for one more than the config
        # keeps, and the gap is the last kept score less the first dropped.
        # Within the tie tolerance, rounding decides which of the two
        # proposals reaches the R-CNN stage.
        rpn_cfg = getattr(model.test_cfg, 'rpn', None)
        if rpn_cfg is None or not hasattr(model, 'rpn_head'):
            return
        import copy
        rpn_cfg = copy.deepcopy(rpn_cfg)
        keep = rpn_cfg.max_per_img
        rpn_cfg.max_per_img = keep + 1
        data = model.data_preprocessor(batch, False)
        feats = model.extract_feat(data['inputs'])
        metas = [s.metainfo for s in data['data_samples']]
        proposals = model.rpn_head.predict_by_feat(
            *model.rpn_head(feats),
            batch_img_metas=metas,
            cfg=rpn_cfg,
            rescale=False)
        for r, p in zip(results, proposals):
            if len(p.scores) > keep:
                r['proposal_cut_gap'] = float(p.scores[keep - 1] -
                                              p.scores[keep])

    def dataset_classes(self, dataset_type):
        from mmdet.registry import DATASETS
        dataset_cls = DATASETS.get(dataset_type)
        return getattr(dataset_cls, 'METAINFO', {}).get('classes')

    def show(self, cfg, hook, show_dir):
        hook.update(
            draw=True,
            test_out_dir=show_dir)  # the hook puts it under work_dir/<time>/

    def tta(self, cfg, config_path):
        # mmdet's own default: horizontal-flip TTA merged by NMS.
        if 'tta_model' not in cfg:
            warnings.warn(
                'no tta_model in the config: using flip TTA with NMS (mmdet '
                'default)')
            cfg.tta_model = dict(
                type='DetTTAModel',
                tta_cfg=dict(
                    nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
        if 'tta_pipeline' not in cfg:
            warnings.warn(
                'no tta_pipeline in the config: flipping the test pipeline')
            data_cfg = cfg.test_dataloader.dataset
            while 'dataset' in data_cfg:
                data_cfg = data_cfg['dataset']
            cfg.tta_pipeline = deepcopy(data_cfg.pipeline)
            cfg.tta_pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[[
                    dict(type='RandomFlip', prob=1.),
                    dict(type='RandomFlip', prob=0.)
                ],
                            [
                                dict(
                                    type='PackDetInputs',
                                    meta_keys=('img_id', 'img_path',
                                               'ori_shape', 'img_shape',
                                               'scale_factor', 'flip',
                                               'flip_direction'))
                            ]])

    def inferencer(self, cfg, checkpoint, device, score_thr=0.3, **kwargs):
        return _DetInfer(cfg, checkpoint, device, score_thr)

    def export_module(self, model):
        from mmscnet.deploy.graph import single_stage
        if type(model).__name__ in single_stage.SUPPORTED:
            return single_stage.SingleStageExport(model)
        from mmscnet.deploy.graph.detector import DetectorExport
        return DetectorExport(model)

    def runtime_inferencer(self,
                           cfg,
                           graph_path,
                           backend,
                           score_thr=0.3,
                           threads=None):
        return _DetRuntimeInfer(cfg, graph_path, backend, score_thr, threads)

    def packed_batch(self, model, batch_size, shape, training):
        from mmdet.testing import demo_mm_inputs
        h, w = shape
        roi_head = getattr(model, 'roi_head', None)
        head = (
            getattr(roi_head, 'bbox_head', None)
            or getattr(model, 'bbox_head', None))
        with_mask = getattr(
            getattr(model, 'roi_head', None), 'with_mask', False)
        packed = demo_mm_inputs(
            batch_size, [(3, h, w)] * batch_size,
            num_items=[3] * batch_size,
            num_classes=getattr(head, 'num_classes', 80),
            with_mask=with_mask)
        return model.data_preprocessor(packed, training)


class _DetInfer:

    def __init__(self, cfg, checkpoint, device, score_thr):
        from mmdet.apis import DetInferencer
        self.inferencer = DetInferencer(
            model=cfg, weights=checkpoint, device=device, show_progress=False)
        self.classes = self.inferencer.model.dataset_meta.get('classes')
        self.score_thr = score_thr

    def __call__(self, paths):
        out = self.inferencer(
            paths,
            return_vis=True,
            no_save_vis=True,
            no_save_pred=True,
            pred_score_thr=self.score_thr,
            batch_size=len(paths))
        preds = out['predictions']
        if self.classes:
            for p in preds:  # mmdet's JSON has label indices only
                p['label_names'] = [self.classes[i] for i in p['labels']]
        return preds, out['visualization']


def det_prediction(result, classes):
    """A runtime result as DetInferencer's ``pred2dict`` writes it (masks as
    COCO RLE), with label names."""
    pred = dict(
        labels=result['labels'].tolist(),
        scores=result['scores'].tolist(),
        bboxes=result['bboxes'].tolist())
    if 'masks' in result:
        import pycocotools.mask as mask_util
        pred['masks'] = []
        for m in result['masks']:
            rle = mask_util.encode(
                np.array(m[:, :, None], order='F', dtype='uint8'))[0]
            rle['counts'] = rle['counts'].decode()
            pred['masks'].append(rle)
    if classes:
        pred['label_names'] = [classes[i] for i in pred['labels']]
    return pred


class _DetRuntimeInfer:
    """The exported detector in ONNX Runtime or OpenVINO, painted by the
    config's DetLocalVisualizer as DetInferencer paints."""

    def __init__(self, cfg, graph_path, backend, score_thr, threads):
        from mmdet.registry import VISUALIZERS

        from mmscnet.deploy.runtime import ExportedModel
        self.model = ExportedModel(graph_path, backend, threads, 'detection')
        spec = self.model.spec
        check_config_for_runtime(DetAdapter(), cfg, spec, graph_path)
        self.classes = spec.get('classes')
        self.visualizer = build_visualizer(cfg, VISUALIZERS, self.classes,
                                           spec.get('palette'))
        self.score_thr = score_thr

    def __call__(self, paths):
        import torch
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        from mmscnet.utils.image_file import read_image
        images = [read_image(p) for p in paths]
        preds, vis = [], []
        for path, img, result in zip(paths, images, self.model(images)):
            preds.append(det_prediction(result, self.classes))
            sample = DetDataSample(
                pred_instances=InstanceData(**{
                    k: torch.from_numpy(v)
                    for k, v in result.items()
                }))
            self.visualizer.add_datasample(
                osp.basename(path),
                img[:, :, ::-1],
                sample,
                draw_gt=False,
                pred_score_thr=self.score_thr)
            vis.append(self.visualizer.get_image())
        return preds, vis
