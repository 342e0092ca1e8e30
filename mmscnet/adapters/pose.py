"""mmpose: painting (one picture per image, ground truth beside prediction),
``MMPoseInferencer``, benchmark batches. mmpose flips at test time through
the model's ``test_cfg`` (``flip_test``), not a TTA model, so ``--tta``
needs the config's own ``tta_model``."""
from mmscnet.utils.config import pop_rewrites, swap_types
from .base import Adapter

# mmpose 1.3.2's visualizer cannot draw a keypoint under NumPy 2
# (visualization/pose.py).
_VISUALIZER_WHY = ("mmpose 1.3.2's visualizer fails on every keypoint under "
                   'NumPy 2')


class PoseAdapter(Adapter):
    scope = 'mmpose'

    def show(self, cfg, hook, show_dir):
        # One PNG per image with all its persons, truth beside prediction.
        swap_types(
            cfg, hook,
            ('PoseVisualizationHook', 'mmpose.PoseVisualizationHook'),
            'mmscnet.PoseVisualizationHook',
            'paints each image once, all its persons, ground truth beside '
            'prediction (--show-dir)')
        hook.update(enable=True, out_dir=show_dir)
        swap_types(cfg, cfg.visualizer,
                   ('PoseLocalVisualizer', 'mmpose.PoseLocalVisualizer'),
                   'mmscnet.PoseLocalVisualizer', _VISUALIZER_WHY)

    def inferencer(self,
                   cfg,
                   checkpoint,
                   device,
                   score_thr=0.3,
                   det_config=None,
                   det_checkpoint=None,
                   det_cat_id=0,
                   **kwargs):
        return _PoseInfer(cfg, checkpoint, device, score_thr, det_config,
                          det_checkpoint, det_cat_id)

    def packed_batch(self, model, batch_size, shape, training):
        from mmpose.testing import get_packed_inputs
        h, w = shape
        heatmap = (
            model.head.decoder.heatmap_size
            if hasattr(model.head, 'decoder') else (w // 4, h // 4))
        packed = get_packed_inputs(
            batch_size,
            img_shape=(h, w),
            input_size=(w, h),
            heatmap_size=tuple(heatmap),
            with_simcc_label=False)
        return model.data_preprocessor(packed, training)


class _PoseInfer:

    def __init__(self, cfg, checkpoint, device, kpt_thr, det_config,
                 det_checkpoint, det_cat_id):
        from mmpose.apis import MMPoseInferencer
        swap_types(cfg, cfg.visualizer,
                   ('PoseLocalVisualizer', 'mmpose.PoseLocalVisualizer'),
                   'mmscnet.PoseLocalVisualizer', _VISUALIZER_WHY)
        # Printed when made; no Runner will log or pop it: keep the config
        # the inferencer reads free of the bookkeeping key.
        pop_rewrites(cfg)
        # Without a person detector each image is one person box (no
        # download of mmpose's default detector).
        self.inferencer = MMPoseInferencer(
            pose2d=cfg,
            pose2d_weights=checkpoint,
            device=device,
            det_model=det_config or 'whole_image',
            det_weights=det_checkpoint,
            det_cat_ids=det_cat_id)
        self.kpt_thr = kpt_thr

    def __call__(self, paths):
        preds, vis = [], []
        for out in self.inferencer(
                paths,
                return_vis=True,
                kpt_thr=self.kpt_thr,
                batch_size=len(paths)):
            preds += [{'instances': p} for p in out['predictions']]
            vis += out['visualization']
        return preds, vis
