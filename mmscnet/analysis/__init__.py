"""Measurements beside ResNet: :mod:`.benchmark` (speed and memory, what
tools/analysis_tools/benchmark.py runs)."""
