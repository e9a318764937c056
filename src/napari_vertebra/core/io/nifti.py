"""NIfTI (.nii / .nii.gz) reading and writing with the source affine kept."""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from ..geometry import AxisTransform, geometry_from_affine, spacing_from_affine
from ..image import Modality, SpineImage
from .arrays import as_label_array, check_pixels, looks_like_label_map
from .atomic import atomic_path
from .errors import SpineIOError, check_readable_file, check_voxel_count

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_MODALITY_TAG = "napari-vertebra modality="


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True if ``path`` has a NIfTI file name."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _squeeze_to_spatial(path: Path, data_shape: tuple[int, ...]) -> list[int]:
    """Indices of the axes kept (2 or 3); refuses time series and 1D data."""
    kept = [k for k, n in enumerate(data_shape) if n > 1]
    if any(k >= 3 for k in kept):
        raise SpineIOError(
            path,
            f"has more than three dimensions (shape {data_shape}: a time "
            "series or several volumes); only single 2D or 3D images are read",
        )
    if len(kept) < 2:
        raise SpineIOError(path, f"has shape {data_shape}: fewer than two image dimensions")
    return kept


def read_nifti(
    path: str | os.PathLike,
    kind: Literal["image", "labels"] | None = None,
    modality: Modality | None = None,
) -> SpineImage:
    """Read a NIfTI image or label map into the canonical orientation.

    Parameters
    ----------
    path
        ``.nii`` or ``.nii.gz`` file.
    kind
        ``"image"`` or ``"labels"``; by default a file with few non-negative whole-number values
        is read as a label map.
    modality
        Overrides the modality; by default 2D files are radiographs (``"XR"``) and 3D files CT,
        unless the file's description says otherwise (as this project's writer records).

    Raises
    ------
    SpineIOError
        If the file is missing, truncated, not NIfTI, or holds no usable 2D/3D image.
    """
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    path = check_readable_file(path)
    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise SpineIOError(path, f"is a {type(img).__name__}, not a NIfTI image")
        shape = tuple(int(n) for n in img.shape)
        check_voxel_count(path, shape)
        kept = _squeeze_to_spatial(path, shape)
        affine = np.asarray(img.affine, dtype=float)
        data = np.asanyarray(img.dataobj)
    except SpineIOError:
        raise
    except (ImageFileError, EOFError, zlib.error, OSError, ValueError, TypeError) as err:
        raise SpineIOError(path, f"is not a readable NIfTI file ({_short(err)})") from None
    except MemoryError:
        raise SpineIOError(path, f"is too large to load into memory (shape {shape})") from None

    data = data.reshape([shape[k] for k in kept])
    source_affine = _affine_of_axes(affine, kept)
    try:
        transform, codes, spacing, origin = geometry_from_affine(source_affine, data.shape)
    except ValueError as err:
        raise SpineIOError(path, f"has an unusable affine ({err})") from None

    warn_list: list[str] = []
    if kind is None:
        kind = "labels" if looks_like_label_map(data) else "image"
    data = as_label_array(path, data) if kind == "labels" else check_pixels(path, data, warn_list)
    description = img.header.get("descrip", b"")
    description = description.tobytes() if hasattr(description, "tobytes") else description
    text = bytes(description).decode("latin-1", "replace")
    spacing_source = "NIfTI affine"
    if _MODALITY_TAG in text and "orientation=unknown" in text:
        # Written by this project from an image of unknown orientation: keep the stored order.
        transform, codes, origin = AxisTransform.identity(data.ndim), None, None
        spacing = spacing_from_affine(source_affine, data.ndim)
    if _MODALITY_TAG in text and "spacing=unknown" in text:
        spacing, spacing_source = None, "unknown"
    if modality is None:
        if _MODALITY_TAG + "XR" in text:
            modality = "XR"
        elif _MODALITY_TAG + "CT" in text:
            modality = "CT"
        else:
            modality = "XR" if data.ndim == 2 else "CT"
    return SpineImage(
        array=np.ascontiguousarray(transform.to_canonical(data)),
        spacing=spacing,
        modality=modality,
        axis_codes=codes,
        origin=origin,
        kind=kind,
        source_affine=source_affine,
        source_shape=tuple(data.shape),
        to_canonical=transform,
        source={
            "path": str(path),
            "format": "NIfTI",
            "spacing_source": spacing_source,
            "warnings": warn_list,
        },
    )


def _affine_of_axes(affine: np.ndarray, kept: list[int]) -> np.ndarray:
    """Affine of the array that keeps only the axes ``kept`` (dropped axes have one voxel)."""
    if kept == list(range(len(kept))):
        return affine
    dropped = [k for k in range(3) if k not in kept]
    out = np.eye(4)
    out[:, : len(kept)] = affine[:, kept]
    out[:, len(kept) : 3] = affine[:, dropped]
    out[:, 3] = affine[:, 3]
    return out


def _short(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if len(text) < 200 else text[:200] + "…"


def affine_for(image: SpineImage) -> np.ndarray:
    """RAS affine for writing ``image.array`` as stored; built from spacing when the file had none.

    Canonical axes I, P, L are -S, -A, -R in RAS; an image of unknown orientation is written with
    a diagonal affine (its axis codes in the file are then meaningless, as they were in the source).
    """
    if image.source_affine is not None:
        return np.asarray(image.source_affine, dtype=float)
    affine = np.eye(4)
    spacing = image.scale
    codes = image.axis_codes or ()
    ras = {
        "I": (2, -1.0),
        "P": (1, -1.0),
        "L": (0, -1.0),
        "S": (2, 1.0),
        "A": (1, 1.0),
        "R": (0, 1.0),
    }
    if len(codes) == image.ndim:
        affine[:3, :3] = 0
        used = set()
        for k, code in enumerate(codes):
            axis, sign = ras[code]
            affine[axis, k] = sign * spacing[k]
            affine[axis, 3] = sign * image.origin[k]
            used.add(axis)
        spare = [a for a in range(3) if a not in used]
        for k, axis in zip(range(image.ndim, 3), spare, strict=False):
            affine[axis, k] = -1.0 if axis == 0 else 1.0
    else:
        for k in range(image.ndim):
            affine[k, k] = spacing[k]
    return affine


def write_nifti(
    image: SpineImage,
    path: str | os.PathLike,
    array: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``array`` (default ``image.array``, canonical order) on ``image``'s source geometry.

    The array is put back into the order stored in the source file and written with the source
    affine, so reading the result gives back the same canonical array and geometry.

    Parameters
    ----------
    image
        Image whose geometry the output takes.
    path
        Output ``.nii`` or ``.nii.gz`` path.
    array
        Data in canonical order (same shape as ``image.array``); default ``image.array``.
    overwrite
        Replace an existing file; refused by default so that nothing a user made is lost.
    """
    import nibabel as nib

    path = Path(path)
    if not is_nifti_path(path):
        raise SpineIOError(path, "output must end in .nii or .nii.gz")
    if path.exists() and not overwrite:
        raise SpineIOError(path, "already exists; pass overwrite=True to replace it")
    data = image.array if array is None else np.asarray(array)
    if data.shape != image.shape:
        raise SpineIOError(path, f"array shape {data.shape} differs from the image's {image.shape}")
    kind = "labels" if array is not None and data.dtype.kind in "biu" else image.kind
    if kind == "labels":
        data = as_label_array(path, data)
    stored = image.array_in_source_order(data) if image.source_affine is not None else data
    nii = nib.Nifti1Image(np.ascontiguousarray(stored), affine_for(image))
    nii.header.set_xyzt_units("mm")
    description = _MODALITY_TAG + image.modality
    if image.spacing is None:
        description += " spacing=unknown"
    if image.axis_codes is None:
        description += " orientation=unknown"
    nii.header["descrip"] = description.encode()
    nii.set_qform(nii.affine, code=1)
    nii.set_sform(nii.affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, keep_suffix=True) as tmp:
        nib.save(nii, str(tmp))
    return path


def write_labels(
    labels: np.ndarray, like: SpineImage, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write a label map (canonical order, shape of ``like``) to NIfTI on ``like``'s geometry."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        labels = as_label_array(path, labels)
    return write_nifti(like, path, array=labels, overwrite=overwrite)
