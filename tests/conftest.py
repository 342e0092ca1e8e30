import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.path.dirname(__file__))  # reference_scnet and other test helpers
sys.path.insert(0, str(REPO / 'tools'))  # tools/train.py and tools/test.py as modules


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


def run_tool(args):
    """Run a repository tool in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, cwd=REPO)
