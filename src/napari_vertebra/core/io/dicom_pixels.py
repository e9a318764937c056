"""DICOM pixel data: decoders, photometric interpretation, rescale, patient-free metadata."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SpineIOError

#: Which package decodes which compressed transfer syntax (UID prefix -> advice).
_DECODER_ADVICE = {
    "1.2.840.10008.1.2.4.50": "Pillow or pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "Pillow or pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.80": "pyjpegls, pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.81": "pyjpegls, pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg (installed with napari-vertebra) or python-gdcm",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg (installed with napari-vertebra) or python-gdcm",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.5": "pydicom's RLE decoder or pylibjpeg-rle",
}

RADIOGRAPH_MODALITIES = ("CR", "DX", "RF", "XA", "PX", "MG", "OT")


def transfer_syntax(ds: Any) -> tuple[str, str]:
    """UID and name of the dataset's transfer syntax ('' when the file meta lacks it)."""
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None:
        return "", "unknown"
    return str(uid), getattr(uid, "name", str(uid))


def decode_pixels(path: str | os.PathLike, ds: Any) -> np.ndarray:
    """``ds.pixel_array`` with any failure turned into a clear SpineIOError.

    A compressed transfer syntax without an installed decoder names the package that decodes it.
    """
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        sop = getattr(ds, "SOPClassUID", None)
        kind = getattr(sop, "name", str(sop)) if sop is not None else "unknown SOP class"
        raise SpineIOError(path, f"holds no image pixel data ({kind})")
    uid, name = transfer_syntax(ds)
    try:
        return np.asarray(ds.pixel_array)
    except (NotImplementedError, RuntimeError) as err:
        text = str(err)
        if uid in _DECODER_ADVICE and (
            "decod" in text.lower() or "plugin" in text.lower() or "missing" in text.lower()
        ):
            raise SpineIOError(
                path,
                f"pixel data are compressed as {name} ({uid}) and no installed decoder could "
                f"read them; install {_DECODER_ADVICE[uid]} (pydicom said: {_first_line(text)})",
            ) from None
        raise SpineIOError(
            path, f"pixel data could not be decoded ({name}): {_first_line(text)}"
        ) from None
    except (ValueError, AttributeError, KeyError, TypeError, EOFError, OSError) as err:
        raise SpineIOError(
            path,
            f"pixel data are damaged or inconsistent with the header "
            f"({name}): {_first_line(str(err)) or type(err).__name__}",
        ) from None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) < 240 else line[:240] + "…"


def to_intensities(path: str | os.PathLike, ds: Any, pixels: np.ndarray) -> np.ndarray:
    """Grayscale intensities: colour to luminance, MONOCHROME1 inverted, rescale applied.

    MONOCHROME1 stores bone dark; it is inverted within the stored bit range so that bone is
    bright as in every other image, before RescaleSlope/Intercept (HU for CT) are applied.
    """
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if samples == 3 or pixels.ndim == 3 and pixels.shape[-1] == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        pixels = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    elif samples != 1:
        raise SpineIOError(path, f"has {samples} samples per pixel; expected grayscale")
    if photometric == "MONOCHROME1":
        bits = int(getattr(ds, "BitsStored", 0) or pixels.dtype.itemsize * 8)
        if pixels.dtype.kind == "u":
            pixels = (2**bits - 1) - pixels.astype(np.int64)
        else:
            pixels = pixels.max() + pixels.min() - pixels.astype(np.int64)
    slope = _number(path, ds, "RescaleSlope", 1.0)
    intercept = _number(path, ds, "RescaleIntercept", 0.0)
    if slope == 0:
        raise SpineIOError(path, "RescaleSlope is 0")
    if slope != 1.0 or intercept != 0.0:
        pixels = pixels.astype(np.float64) * slope + intercept
    return pixels


def _number(path: str | os.PathLike, ds: Any, keyword: str, default: float) -> float:
    value = getattr(ds, keyword, None)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpineIOError(path, f"{keyword} {value!r} is not a number") from None
    if not np.isfinite(number):
        raise SpineIOError(path, f"{keyword} {value!r} is not finite")
    return number


def pixel_spacing(path: str | os.PathLike, ds: Any, keyword: str) -> tuple[float, float] | None:
    """(row spacing, column spacing) in mm from a two-valued spacing attribute, or None."""
    value = getattr(ds, keyword, None)
    if value is None or value == "":
        return None
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise SpineIOError(path, f"{keyword} {value!r} is not two numbers") from None
    if len(pair) != 2 or not all(np.isfinite(v) and v > 0 for v in pair):
        raise SpineIOError(path, f"{keyword} {list(value)!r} is not two positive numbers")
    return pair  # type: ignore[return-value]


def source_metadata(path: str | Path, ds: Any) -> dict[str, Any]:
    """Identifiers and provenance of a DICOM file, without patient name, ID or birth date."""
    uid, name = transfer_syntax(ds)
    return {
        "path": str(path),
        "format": "DICOM",
        "study_uid": str(getattr(ds, "StudyInstanceUID", "")) or None,
        "series_uid": str(getattr(ds, "SeriesInstanceUID", "")) or None,
        "sop_instance_uids": [str(getattr(ds, "SOPInstanceUID", ""))],
        "frame_of_reference_uid": str(getattr(ds, "FrameOfReferenceUID", "")) or None,
        "transfer_syntax": f"{name} ({uid})" if uid else "unknown",
        "modality_tag": str(getattr(ds, "Modality", "")) or None,
        "series_description": str(getattr(ds, "SeriesDescription", "")) or None,
        "warnings": [],
    }
