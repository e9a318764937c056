"""Segmentation: network architectures, the model format and registry, tiled inference.

Submodules that need torch (``nets``, ``inference``, loading weights) import it themselves;
importing this package does not.
"""
