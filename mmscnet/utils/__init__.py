"""Helpers without a registry of their own: config rewrites (:mod:`.config`),
checkpoint reading (:mod:`.checkpoint_io`), checkpoint converters
(:mod:`.converters`), data checks (:mod:`.datacheck`), distributed setup
(:mod:`.dist_utils`), analysis (:mod:`.analysis`) and the benchmark
(:mod:`.benchmark`). ``import mmscnet`` imports only :mod:`.checkpoint_io`
(and :mod:`.config`); import the others where they are used."""
from .config import replace_types

__all__ = ['replace_types']
