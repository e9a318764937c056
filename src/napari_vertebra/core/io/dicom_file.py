"""Single DICOM files: radiographs (CR/DX/RF/XA …) and single CT slices."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import canonical_transform, geometry_from_affine
from ..image import SpineImage
from .arrays import check_pixels, compact_intensities
from .dicom_pixels import (
    RADIOGRAPH_MODALITIES,
    decode_pixels,
    pixel_spacing,
    source_metadata,
    to_intensities,
)
from .errors import SpineIOError, check_readable_file, check_voxel_count

#: PatientOrientation letters (DICOM PS3.3 C.7.6.1.1.1) to the codes used here.
_PATIENT_ORIENTATION = {"A": "A", "P": "P", "R": "R", "L": "L", "H": "S", "F": "I"}
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def has_dicom_marker(path: str | os.PathLike) -> bool:
    """True if the file has the 128-byte preamble followed by ``DICM``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_path(path: str | os.PathLike) -> bool:
    """True for files with the DICM marker or a DICOM file name."""
    return has_dicom_marker(path) or str(path).lower().endswith(_DICOM_SUFFIXES)


def read_dataset(path: str | os.PathLike, stop_before_pixels: bool = False) -> Any:
    """pydicom dataset of ``path`` with parse failures turned into SpineIOError."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = check_readable_file(path)
    force = not has_dicom_marker(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels, force=force)
            if force and "SOPClassUID" not in ds and "Rows" not in ds:
                raise SpineIOError(path, "is not a DICOM file (no DICM marker and no DICOM header)")
            # Touch the header so that truncated or garbled elements fail here, not later.
            for keyword in ("Modality", "Rows", "Columns", "SOPInstanceUID"):
                getattr(ds, keyword, None)
    except SpineIOError:
        raise
    except (
        InvalidDicomError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        OverflowError,
        NotImplementedError,
    ) as err:
        raise SpineIOError(
            path, f"is not a readable DICOM file ({type(err).__name__}: {str(err).strip()[:200]})"
        ) from None
    return ds


def patient_orientation_codes(ds: Any) -> tuple[str, str] | None:
    """Array-axis codes (rows axis, columns axis) from PatientOrientation, if it is usable.

    PatientOrientation gives the direction of the rows (increasing column index) first, then the
    direction of the columns (increasing row index); the dominant letter of each is used.
    """
    value = getattr(ds, "PatientOrientation", None)
    if not value or len(value) != 2:
        return None
    letters = [str(v).strip().upper()[:1] for v in value]
    if any(letter not in _PATIENT_ORIENTATION for letter in letters):
        return None
    along_columns, along_rows = (_PATIENT_ORIENTATION[letter] for letter in letters)
    codes = (along_rows, along_columns)
    axes = {"A": 1, "P": 1, "R": 0, "L": 0, "S": 2, "I": 2}
    return codes if axes[codes[0]] != axes[codes[1]] else None


def slice_affine(ds: Any, spacing: tuple[float, float], normal_step: float = 1.0) -> np.ndarray:
    """RAS affine of one slice's (row, column) array from ImageOrientation/PositionPatient (LPS)."""
    cosines = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=float)
    position = np.array([float(v) for v in ds.ImagePositionPatient], dtype=float)
    row_dir, col_dir = cosines[:3], cosines[3:]
    normal = np.cross(row_dir, col_dir)
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, 0] = col_dir * spacing[0] * lps_to_ras  # rows index moves along the column cosine
    affine[:3, 1] = row_dir * spacing[1] * lps_to_ras
    affine[:3, 2] = normal * normal_step * lps_to_ras
    affine[:3, 3] = position * lps_to_ras
    return affine


def has_valid_geometry(ds: Any) -> bool:
    """True if ImageOrientationPatient and ImagePositionPatient are present and sane."""
    try:
        cosines = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=float)
        position = np.array([float(v) for v in ds.ImagePositionPatient], dtype=float)
    except (AttributeError, TypeError, ValueError):
        return False
    if cosines.shape != (6,) or position.shape != (3,) or not np.all(np.isfinite(cosines)):
        return False
    row_dir, col_dir = cosines[:3], cosines[3:]
    return bool(
        abs(np.linalg.norm(row_dir) - 1) < 1e-2
        and abs(np.linalg.norm(col_dir) - 1) < 1e-2
        and abs(row_dir @ col_dir) < 1e-2
        and np.all(np.isfinite(position))
    )


def read_dicom_file(path: str | os.PathLike) -> SpineImage:
    """Read one DICOM image file: a radiograph (CR/DX/RF/XA/PX/MG/OT) or a single CT slice.

    Radiograph spacing comes from PixelSpacing (calibrated at the patient), else from
    ImagerPixelSpacing divided by EstimatedRadiographicMagnificationFactor when given, else from
    ImagerPixelSpacing alone (detector plane, recorded as such); without any, the spacing is
    unknown. The source of the spacing is kept in ``image.source["spacing_source"]``.

    Raises
    ------
    SpineIOError
        For non-DICOM, truncated or damaged files, unsupported modalities and missing decoders.
    """
    path = Path(path)
    ds = read_dataset(path)
    modality_tag = str(getattr(ds, "Modality", "") or "").upper()
    if modality_tag == "CT":
        modality = "CT"
    elif modality_tag in RADIOGRAPH_MODALITIES or modality_tag == "":
        modality = "XR"
    else:
        raise SpineIOError(
            path,
            f"has modality {modality_tag}; napari-vertebra reads radiographs "
            f"({', '.join(RADIOGRAPH_MODALITIES)}) and CT",
        )
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if rows <= 0 or cols <= 0:
        raise SpineIOError(
            path,
            "has no image size (Rows/Columns missing or 0): the header is "
            "truncated or the file holds no image",
        )
    check_voxel_count(path, (frames, rows, cols))
    if frames > 1 and modality == "CT":
        raise SpineIOError(
            path,
            f"is an enhanced multi-frame CT ({frames} frames); export it as a "
            "classic one-file-per-slice series to open it",
        )
    meta = source_metadata(path, ds)
    pixels = decode_pixels(path, ds)
    if frames > 1:
        pixels = pixels[0]
        message = f"multi-frame image ({frames} frames): only the first frame was read"
        meta["warnings"].append(message)
        warnings.warn(f"{path}: {message}", stacklevel=2)
    if pixels.ndim != 2 and not (pixels.ndim == 3 and pixels.shape[-1] == 3):
        raise SpineIOError(path, f"pixel array has shape {pixels.shape}; expected a 2D image")
    values = to_intensities(path, ds, pixels)
    values = check_pixels(path, values, meta["warnings"])
    if modality == "CT":
        values = compact_intensities(values)

    spacing, spacing_source = _radiograph_spacing(path, ds, meta)
    if has_valid_geometry(ds) and spacing is not None:
        affine = slice_affine(ds, spacing)
        transform, codes, spacing, origin = geometry_from_affine(affine, values.shape)
        meta["spacing_source"] = spacing_source
        return SpineImage(
            np.ascontiguousarray(transform.to_canonical(values)),
            spacing,
            modality,
            codes,
            origin,
            "image",
            affine,
            tuple(values.shape),
            transform,
            meta,
        )
    meta["spacing_source"] = spacing_source
    codes = patient_orientation_codes(ds)
    if codes is None:
        return SpineImage(values, spacing, modality, source=meta)
    transform, canonical_codes = canonical_transform(codes)
    canonical_spacing = tuple(spacing[k] for k in transform.perm) if spacing is not None else None
    return SpineImage(
        np.ascontiguousarray(transform.to_canonical(values)),
        canonical_spacing,
        modality,
        canonical_codes,
        None,
        "image",
        None,
        tuple(values.shape),
        transform,
        meta,
    )


def _radiograph_spacing(
    path: Path, ds: Any, meta: dict[str, Any]
) -> tuple[tuple[float, float] | None, str]:
    spacing = pixel_spacing(path, ds, "PixelSpacing")
    if spacing is not None:
        return spacing, "PixelSpacing"
    imager = pixel_spacing(path, ds, "ImagerPixelSpacing")
    if imager is None:
        message = "no PixelSpacing or ImagerPixelSpacing: spacing unknown, measurements in pixels"
        meta["warnings"].append(message)
        return None, "unknown"
    factor = getattr(ds, "EstimatedRadiographicMagnificationFactor", None)
    try:
        factor = float(factor) if factor not in (None, "") else None
    except (TypeError, ValueError):
        factor = None
    if factor is not None and np.isfinite(factor) and factor > 0:
        corrected = (imager[0] / factor, imager[1] / factor)
        return corrected, "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor"
    meta["warnings"].append(
        "spacing is ImagerPixelSpacing at the detector: lengths include the "
        "radiographic magnification (typically 10-20 % too large)"
    )
    return imager, "ImagerPixelSpacing (detector plane, magnification not corrected)"
