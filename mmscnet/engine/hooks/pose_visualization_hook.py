"""``mmscnet.PoseVisualizationHook``: what ``tools/test.py --show-dir`` uses
for mmpose configs.

mmpose 1.3.2's hook paints every top-down *instance* as its own file
(``000001_0.png``, ``000001_1.png``, ...), one person per picture, and never
the ground truth. This one paints each test image once, with all its persons,
ground truth (left) beside prediction (right). Top-down test loaders list the
persons of an image one after another, so the hook gathers them until the
image changes. (In a multi-process test each process sees a share of the
persons, so a picture may show only the persons its process evaluated.)
Needs mmpose.
"""
import os
import os.path as osp

import mmcv
from mmengine import fileio
from mmpose.engine.hooks import \
    PoseVisualizationHook as MMPosePoseVisualizationHook
from mmpose.structures import merge_data_samples

from mmscnet.registry import HOOKS


@HOOKS.register_module()
class PoseVisualizationHook(MMPosePoseVisualizationHook):
    """mmpose's hook (same arguments, same validation-time behaviour) plus
    ``draw_gt``; at test time one file per image, named as the image."""

    def __init__(self, draw_gt=True, **kwargs):
        super().__init__(**kwargs)
        self.draw_gt = draw_gt
        self._pending = []  # the instances of the image being gathered

    def after_test_iter(self, runner, batch_idx, data_batch, outputs):
        if not self.enable:
            return
        for sample in outputs:
            if self._pending and self._pending[0].img_path != sample.img_path:
                self._paint(runner)
            self._pending.append(sample)

    def after_test_epoch(self, runner, metrics=None):
        if self.enable and self._pending:
            self._paint(runner)

    def _paint(self, runner):
        samples, self._pending = self._pending, []
        img_path = samples[0].img_path
        out_file = None
        if self.out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.out_dir)
            os.makedirs(out_dir, exist_ok=True)
            out_file = osp.join(out_dir, osp.basename(img_path))
        self._test_index += 1
        img = mmcv.imfrombytes(
            fileio.get(img_path, backend_args=self.backend_args),
            channel_order='rgb')
        self._visualizer.set_dataset_meta(runner.test_evaluator.dataset_meta)
        self._visualizer.add_datasample(
            osp.basename(img_path) if self.show else 'test_img',
            img,
            data_sample=merge_data_samples(samples),
            draw_gt=self.draw_gt,
            draw_bbox=True,
            show=self.show,
            wait_time=self.wait_time,
            kpt_thr=self.kpt_thr,
            out_file=out_file,
            step=self._test_index)
