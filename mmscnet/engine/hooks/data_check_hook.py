"""``type='mmscnet.DataCheckHook'``: names the training images that mmdet's
``filter_cfg`` leaves out."""
import json

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmscnet.registry import HOOKS


@HOOKS.register_module()
class DataCheckHook(Hook):
    """Logs the training images that the dataset's ``filter_cfg`` left out.

    mmdet drops images without objects (``filter_empty_gt``) and images with a
    side under ``min_size`` from training without a word; this names them.
    """

    def before_train(self, runner):
        if not is_main_process():
            return
        dataset = runner.train_dataloader.dataset
        while hasattr(dataset,
                      'dataset'):  # RepeatDataset, ClassBalancedDataset, ...
            dataset = dataset.dataset
        filter_cfg = getattr(dataset, 'filter_cfg', None)
        ann_file = getattr(dataset, 'ann_file', '')
        if not filter_cfg or not str(ann_file).endswith(
                '.json') or '://' in ann_file:
            return
        # mmdet drops its COCO index after loading, so the file is read once
        # more here (main process, once a run) to name what was filtered out.
        with open(ann_file) as f:
            coco = json.load(f)
        kept = {
            dataset.get_data_info(i)['img_id']
            for i in range(len(dataset))
        }
        with_objects = {a['image_id'] for a in coco.get('annotations', [])}
        min_size = filter_cfg.get('min_size', 0)
        skipped = []
        for img in coco.get('images', []):
            if img['id'] in kept:
                continue
            if filter_cfg.get(
                    'filter_empty_gt') and img['id'] not in with_objects:
                reason = 'no objects'
            elif min(img['width'], img['height']) < min_size:
                reason = (f"{img['width']}x{img['height']}, a side under "
                          f'min_size={min_size}')
            else:
                reason = 'no object of the configured classes'
            skipped.append(f"{img['file_name']} ({reason})")
        if skipped:
            shown = ', '.join(
                skipped[:10]) + (', ...' if len(skipped) > 10 else '')
            runner.logger.warning(
                f'{len(skipped)} of {len(coco.get("images", []))} training '
                f'images in {ann_file} '
                f'are skipped, as filter_cfg={dict(filter_cfg)} asks: {shown}')
