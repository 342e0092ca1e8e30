import logging
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # reference_scnet and other test helpers


@pytest.fixture(autouse=True)
def _quiet_and_deterministic():
    # mmengine logs one line per parameter on init_weights; keep test output readable.
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    torch.manual_seed(0)
    yield
    logger.setLevel(level)


def rel_diff(a, b):
    """max |a - b| / max |b|: the relative max difference the parity items use."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def cfg_options_argv(opts):
    """--cfg-options arguments as a user would type them (tuples as (a,b))."""
    def fmt(v):
        return '(' + ','.join(map(str, v)) + ')' if isinstance(v, tuple) else str(v)
    return ['--cfg-options'] + [f'{k}={fmt(v)}' for k, v in opts.items()]
