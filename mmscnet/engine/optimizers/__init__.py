"""Optimizer wrappers. ``mmscnet.registry.OPTIM_WRAPPERS`` names this package
as its location, so ``optim_wrapper=dict(type='mmscnet.CPUAmpOptimWrapper')``
resolves without ``custom_imports``."""
from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper

__all__ = ['CPUAmpOptimWrapper']
