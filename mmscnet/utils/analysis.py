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
    model = models.build(cfg)
    model.eval()  # some backbones' train() returns None (mmpretrain ResNet)
    x = torch.zeros(1, 3, *hw)
    with torch.no_grad():
        stages = [tuple(o.shape) for o in model(x)]
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(
        logging.ERROR)  # pooling/BN "unsupported operator" notes: counted as 0
    try:
        flops = FlopAnalyzer(model, (x, )).total()
    finally:
        logger.setLevel(level)
    return dict(
        stages=stages,
        params=sum(p.numel() for p in model.parameters()),
        flops=flops)


def effective_receptive_field(forward, images):
    """Effective receptive field (Luo et al., NeurIPS 2016) of the centre unit
    of ``forward``'s output map.

    The gradient of the centre unit (summed over channels) with respect to
    the input, in absolute value summed over input channels, averaged over
    ``images`` (N, C, H, W) and normalised to sum 1: an (H, W) map.
    """
    total = torch.zeros(images.shape[-2:], dtype=torch.float64)
    for img in images:
        x = img[None].clone().requires_grad_(True)
        y = forward(x)
        h, w = y.shape[-2:]
        y[0, :, h // 2, w // 2].sum().backward()
        total += x.grad[0].abs().sum(0).double()
    if total.sum() == 0:
        raise ValueError(
            'the centre unit does not depend on the input (all gradients are '
            '0)')
    return total / total.sum()


def mass_radius(erf, fraction):
    """Smallest r such that the square of half-side r around the map's centre
    holds ``fraction`` of the ERF's mass (r = 0: the centre pixel alone)."""
    h, w = erf.shape
    ys = torch.arange(h).view(-1, 1) - h // 2
    xs = torch.arange(w).view(1, -1) - w // 2
    dist = torch.maximum(ys.abs(), xs.abs())
    for r in range(int(dist.max()) + 1):
        if erf[dist <= r].sum() >= fraction - 1e-9:
            return r
    return int(dist.max())
