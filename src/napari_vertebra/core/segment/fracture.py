"""Running seed 003's fracture classifier on the vertebrae of an analysed image."""

from __future__ import annotations

import numpy as np

from ..image import SpineImage
from .card import FRACTURE_TASK, ModelCard


def classify_vertebrae(
    image: SpineImage, level_map: np.ndarray, card: ModelCard, device: str = "cpu"
) -> dict[int, float]:
    """Fracture probability of each vertebra of ``level_map`` (on ``image``'s grid), by label.

    Each vertebra's probability is its largest slice probability: seed 003 calls a vertebra
    fractured when any of its sagittal slices is (one slice on a radiograph).
    """
    from ..preprocess import preprocess
    from ..train.classifier import model_grid_bodies, predict_vertebrae, vertebra_windows
    from .registry import get_network

    if card.task != FRACTURE_TASK:
        raise ValueError(f"{card.name} is a {card.task} model, not a fracture classifier")
    if card.modality != image.modality:
        raise ValueError(f"{card.name} is a {card.modality} model; the image is {image.modality}")
    if level_map.shape != image.shape:
        raise ValueError(f"labels {level_map.shape} are not on the image's grid {image.shape}")
    prepared = preprocess(image.array, card.preprocessing, spacing=image.spacing).array
    grid = model_grid_bodies(np.asarray(level_map), prepared.shape)
    options = card.input
    windows = vertebra_windows(
        prepared,
        grid,
        int(options.get("window_size", 96)),
        float(options.get("window_factor", 2.5)),
        float(options.get("shave_fraction", 0.2)),
    )
    return predict_vertebrae(get_network(card, device), windows, device)
