"""Model summaries: stage shapes, parameter count and FLOPs of a backbone."""
import logging

import torch


def backbone_summary(cfg, hw=(224, 224), registry='mmdet'):
    """Build ``cfg`` through ``registry``'s MODELS and describe it.

    FLOPs are mmengine's count of multiply-adds at (3, *hw), the same unit as
    the authors' "MAdds". Returns a dict with ``stages`` (list of shapes),
    ``params`` and ``flops``.
    """
    from importlib import import_module

    from mmengine.analysis import FlopAnalyzer
    from mmengine.logging import MMLogger

    models = import_module(f'{registry}.registry').MODELS
    model = models.build(cfg).eval()
    x = torch.zeros(1, 3, *hw)
    with torch.no_grad():
        stages = [tuple(o.shape) for o in model(x)]
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # pooling/BN "unsupported operator" notes: counted as 0
    try:
        flops = FlopAnalyzer(model, (x, )).total()
    finally:
        logger.setLevel(level)
    return dict(stages=stages, params=sum(p.numel() for p in model.parameters()), flops=flops)
