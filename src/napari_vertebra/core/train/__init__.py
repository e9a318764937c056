"""Training the project's segmentation models (``napari-vertebra train``); no napari, no Qt."""

from .loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]
