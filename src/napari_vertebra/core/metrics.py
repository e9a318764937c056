"""Overlap figures used by training, tests and benchmarks."""

from __future__ import annotations

import numpy as np

from .labels import SACRUM


def vertebral_bodies(labels: np.ndarray) -> np.ndarray:
    """Where a label map (VerSe IDs or 1 = body) holds a vertebral body, the sacrum left out."""
    labels = np.asarray(labels)
    return (labels > 0) & (labels != SACRUM)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 1.0 if total == 0 else 2 * np.count_nonzero(a & b) / total
