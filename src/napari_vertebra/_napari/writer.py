"""napari writer contributions: label maps to NIfTI on their source geometry, tables to CSV."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.io import write_labels, write_table
from .layers import image_from_layer


def write_labels_nifti(path: str, data: Any, meta: dict) -> list[str]:
    """Write a Labels layer to ``.nii``/``.nii.gz`` with the source affine it was read with.

    napari has already asked the user before replacing an existing file, hence ``overwrite``.
    """
    labels = np.asarray(data)
    like = image_from_layer(labels, meta)
    return [str(write_labels(labels, like, path, overwrite=True))]


def write_labels_table(path: str, data: Any, meta: dict) -> list[str]:
    """Write a Labels layer's ``features`` table (one row per vertebra) to CSV."""
    features = meta.get("features")
    table = pd.DataFrame(features) if features is not None else pd.DataFrame()
    if table.empty:
        raise ValueError("this Labels layer has no features table to write; measure it first")
    return [str(write_table(table, path, overwrite=True))]
