"""Checks and conversions of pixel arrays shared by all readers."""

from __future__ import annotations

import os
import warnings

import numpy as np

from .errors import SpineIOError

#: A label map has at most this many distinct values (VerSe IDs, TotalSegmentator classes …).
MAX_LABEL_VALUES = 128
#: Smallest side, in pixels, of an image worth opening.
MIN_SIDE = 8


def check_pixels(path: str | os.PathLike, array: np.ndarray, warn_list: list[str]) -> np.ndarray:
    """Validate intensities: numeric, finite where it matters, big enough.

    Non-finite values in a partly valid image (e.g. NaN outside a resampled field of view) are
    replaced by the lowest finite value and reported in ``warn_list``; an image with no finite
    value at all is refused.
    """
    if array.dtype.kind not in "biuf":
        raise SpineIOError(
            path, f"holds {array.dtype} pixel data; expected real-valued intensities"
        )
    check_size(path, array.shape)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.any():
            raise SpineIOError(path, "holds no finite intensity (all values NaN or infinite)")
        bad = int(finite.size - np.count_nonzero(finite))
        if bad:
            low = float(array[finite].min())
            array = np.where(finite, array, low).astype(array.dtype, copy=False)
            message = f"{bad} NaN or infinite values were replaced by the lowest intensity {low:g}"
            warn_list.append(message)
            warnings.warn(f"{path}: {message}", stacklevel=3)
    return array


def check_size(path: str | os.PathLike, shape: tuple[int, ...]) -> None:
    """Refuse arrays too small to hold a vertebra."""
    if sorted(shape)[-2] < MIN_SIDE or min(shape) < 2:
        raise SpineIOError(
            path,
            f"is too small to be a spine image (shape {tuple(shape)}; "
            f"an image plane needs at least {MIN_SIDE} pixels per side)",
        )


def looks_like_label_map(array: np.ndarray) -> bool:
    """Heuristic: non-negative integer values with few distinct values.

    Floats holding whole numbers count too (VerSe masks are stored as float64). A random sample
    is tested first so that a CT volume is recognised without scanning every voxel.
    """
    if array.dtype.kind not in "biuf" or array.dtype == bool:
        return array.dtype == bool
    flat = array.reshape(-1)
    rng = np.random.default_rng(0)
    sample = flat[rng.integers(0, flat.size, size=min(flat.size, 200_000))]
    for values in (sample, flat):
        if values.min() < 0:
            return False
        if array.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
            return False
        if np.unique(values).size > MAX_LABEL_VALUES:
            return False
    return True


def as_label_array(path: str | os.PathLike, array: np.ndarray) -> np.ndarray:
    """Convert a label map to the smallest unsigned integer type that holds it."""
    check_size(path, array.shape)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise SpineIOError(path, "label map holds NaN or infinite values")
        if not np.all(np.mod(array, 1) == 0):
            raise SpineIOError(path, "label map holds non-integer values")
    if array.size and array.min() < 0:
        raise SpineIOError(path, "label map holds negative values")
    top = int(array.max(initial=0))
    dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
    return array.astype(dtype)


def compact_intensities(array: np.ndarray) -> np.ndarray:
    """Store whole-number intensities (HU) as int16 when they fit, else float32."""
    if array.dtype.kind in "iu" and array.dtype.itemsize <= 2 and array.dtype.kind == "i":
        return array
    if array.size and np.all(np.mod(array, 1) == 0):
        low, high = float(array.min()), float(array.max())
        if -32768 <= low and high <= 32767:
            return array.astype(np.int16)
    return array.astype(np.float32)
