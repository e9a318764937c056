"""Readers and writers. Every function raises :class:`SpineIOError` naming the file on bad input."""

from __future__ import annotations

import os
from pathlib import Path

from ..image import SpineImage
from .dicom_file import is_dicom_path, read_dicom_file
from .dicom_series import dicom_files_in, find_series, read_dicom_folder, read_dicom_series
from .errors import SpineIOError
from .nifti import is_nifti_path, read_nifti, write_labels, write_nifti
from .raster import is_raster_path, read_raster
from .tables import read_table, write_table

__all__ = [
    "SpineIOError",
    "can_read",
    "dicom_files_in",
    "find_series",
    "read_dicom_file",
    "read_dicom_folder",
    "read_dicom_series",
    "read_image",
    "read_images",
    "read_nifti",
    "read_raster",
    "read_table",
    "write_labels",
    "write_nifti",
    "write_table",
]


def can_read(path: str | os.PathLike) -> bool:
    """Cheap check (names and magic bytes only) whether a reader here claims ``path``."""
    p = Path(path)
    if p.is_dir():
        try:
            return bool(dicom_files_in(p))
        except SpineIOError:
            return False
    return is_nifti_path(p) or is_raster_path(p) or (p.is_file() and is_dicom_path(p))


def read_images(path: str | os.PathLike) -> list[SpineImage]:
    """Every image in ``path``: one for a file, one per series (or radiograph) for a folder."""
    p = Path(path)
    if p.is_dir():
        return read_dicom_folder(p)
    return [read_image(p)]


def read_image(path: str | os.PathLike, **options) -> SpineImage:
    """Read a spine image from any supported file or DICOM folder.

    Parameters
    ----------
    path
        A NIfTI file (``.nii``/``.nii.gz``), a DICOM file, a folder holding one DICOM series, or
        a PNG/JPEG/TIFF radiograph.
    **options
        Passed to the format's reader: ``kind``/``modality`` (NIfTI), ``series_uid`` (folders),
        ``spacing`` (PNG/JPEG/TIFF).

    Returns
    -------
    SpineImage
        The image in canonical orientation with spacing in mm (or unknown), origin and metadata.

    Raises
    ------
    SpineIOError
        With the path and the problem, for anything that cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise SpineIOError(p, "no such file or folder")
    if p.is_dir():
        return read_dicom_series(p, **options)
    if is_nifti_path(p):
        return read_nifti(p, **options)
    if is_raster_path(p):
        return read_raster(p, **options)
    if is_dicom_path(p):
        return read_dicom_file(p)
    raise SpineIOError(
        p,
        "is not a supported file type (NIfTI .nii/.nii.gz, DICOM, PNG, JPEG, "
        "TIFF, or a folder holding a DICOM series)",
    )
