"""Data transforms; ``mmscnet.registry.TRANSFORMS`` names this package as
its location."""
from .loading import LoadImageFromFile, image_problem

__all__ = ['LoadImageFromFile', 'image_problem']
