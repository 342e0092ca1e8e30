"""A hook that the distributed test loads through ``custom_imports``: each rank
writes what it trained on and the weights it ended with to $PROBE_DIR."""
import os

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DistProbeHook(Hook):

    def __init__(self):
        self.seen = {}

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        ids = [int(s.img_id) for s in data_batch['data_samples']]
        self.seen.setdefault(runner.epoch, []).extend(ids)

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        torch.save(
            dict(
                world_size=get_world_size(),
                seen=self.seen,
                iters_per_epoch=len(runner.train_dataloader),
                params={
                    k: v.detach().clone()
                    for k, v in model.named_parameters()
                }),
            os.path.join(os.environ['PROBE_DIR'], f'rank{get_rank()}.pt'))
