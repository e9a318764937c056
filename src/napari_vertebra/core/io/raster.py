"""PNG, JPEG and TIFF radiographs: pixels only, spacing unknown until the user sets it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..image import SpineImage
from .arrays import check_pixels
from .errors import SpineIOError, check_readable_file, check_voxel_count

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def is_raster_path(path: str | os.PathLike) -> bool:
    """True if ``path`` has a PNG, JPEG or TIFF file name."""
    return str(path).lower().endswith(RASTER_SUFFIXES)


def read_raster(
    path: str | os.PathLike,
    spacing: tuple[float, float] | float | None = None,
    modality: str = "XR",
) -> SpineImage:
    """Read a PNG, JPEG or TIFF image as a radiograph of unknown orientation.

    Such files carry no reliable patient spacing (a TIFF's dots per inch describe a scanner, not
    the patient), so the spacing is recorded as unknown unless ``spacing`` (mm) is given.
    Colour images are converted to luminance.
    """
    path = check_readable_file(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            pixels = _read_tiff(path)
        else:
            pixels = _read_pillow(path)
    except SpineIOError:
        raise
    except Exception as err:  # Pillow and tifffile raise many types for damaged files
        raise SpineIOError(
            path,
            f"is not a readable {path.suffix.lstrip('.').upper()} image "
            f"({type(err).__name__}: {str(err).strip()[:200]})",
        ) from None
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        colour = pixels[..., :3].astype(np.float32)
        if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(
            colour[..., 0], colour[..., 2]
        ):
            pixels = pixels[..., 0]
        else:
            pixels = colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if pixels.ndim != 2:
        raise SpineIOError(
            path,
            f"holds an array of shape {pixels.shape}; only single 2D "
            "grayscale or colour images are read from PNG/JPEG/TIFF",
        )
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8)
    meta = {
        "path": str(path),
        "format": path.suffix.lstrip(".").upper(),
        "spacing_source": "unknown",
        "warnings": [],
    }
    pixels = check_pixels(path, pixels, meta["warnings"])
    if spacing is None:
        meta["warnings"].append(
            "the file holds no patient pixel spacing: set it (mm) before "
            "measuring; until then lengths are in pixels"
        )
    else:
        meta["spacing_source"] = "set by user"
        if np.isscalar(spacing):
            spacing = (float(spacing), float(spacing))
    return SpineImage(pixels, spacing, modality, source=meta)  # type: ignore[arg-type]


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            check_voxel_count(path, (img.height, img.width))
            if getattr(img, "n_frames", 1) > 1:
                raise SpineIOError(
                    path, f"holds {img.n_frames} frames; only single images are read"
                )
            if img.mode in ("P", "PA", "LA", "CMYK", "YCbCr", "HSV", "1"):
                img = img.convert("RGBA" if "A" in img.mode else "L" if img.mode == "1" else "RGB")
            img.load()
            return np.asarray(img)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if len(tif.series) != 1:
            raise SpineIOError(path, f"holds {len(tif.series)} image series; one expected")
        series = tif.series[0]
        check_voxel_count(path, tuple(series.shape))
        if len(series.shape) > 3 or (len(series.shape) == 3 and series.shape[-1] not in (3, 4)):
            raise SpineIOError(
                path,
                f"holds a stack of shape {tuple(series.shape)}; only single "
                "2D images are read from TIFF",
            )
        return series.asarray()
