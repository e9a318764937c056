"""Training pairs on the model's grid: the card's preprocessing for the image, classes for labels.

Classes of a body model: 0 background, 1 vertebral body (any VerSe ID 1–25 or 28), 2 sacrum (26).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..image import SpineImage
from ..labels import SACRUM
from ..metrics import vertebral_bodies
from ..preprocess import preprocess

#: Output channels of the body models, in order.
BODY_CLASSES = ("background", "vertebral_body", "sacrum")


@dataclass
class Pair:
    """A training image (channels first, model grid) with its class map and where it came from."""

    image: np.ndarray
    target: np.ndarray
    origin: str


def class_map(labels: np.ndarray) -> np.ndarray:
    """VerSe-ID label map → classes (0 background, 1 body, 2 sacrum)."""
    labels = np.asarray(labels)
    classes = np.zeros(labels.shape, dtype=np.int64)
    classes[vertebral_bodies(labels)] = 1
    classes[labels == SACRUM] = 2
    return classes


def to_model_grid(
    image: SpineImage, labels: SpineImage, preprocessing: Sequence[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessed image and its class map on the same (model) grid.

    Geometric steps are applied to the classes as one-hot channels with linear interpolation,
    then the most likely class is kept, so thin structures are not lost to nearest-neighbour
    decimation.
    """
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
    prepared = preprocess(image.array, preprocessing, spacing=image.spacing)
    geometric = [step for step in preprocessing if step["op"] in ("letterbox", "resample")]
    classes = class_map(labels.array)
    channels = []
    for value in range(len(BODY_CLASSES)):
        onehot = (classes == value).astype(np.float32)
        channels.append(preprocess(onehot, geometric, spacing=image.spacing).array)
    target = np.argmax(np.stack(channels), axis=0).astype(np.int64)
    if target.shape != prepared.array.shape:
        raise ValueError("labels and image ended on different model grids")
    return prepared.array.astype(np.float32), target
