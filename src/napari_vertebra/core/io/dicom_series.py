"""A folder of DICOM files: CT series stacked by ImagePositionPatient, radiographs one by one."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import geometry_from_affine
from ..image import SpineImage
from .arrays import check_pixels, compact_intensities
from .dicom_file import (
    has_valid_geometry,
    is_dicom_path,
    read_dataset,
    read_dicom_file,
    slice_affine,
)
from .dicom_pixels import decode_pixels, pixel_spacing, source_metadata, to_intensities
from .errors import SpineIOError, check_voxel_count

#: Slice positions may deviate this much (fraction of the median step) before a gap is reported.
GAP_TOLERANCE = 0.1
#: Image orientation cosines of one series may differ this much.
ORIENTATION_TOLERANCE = 1e-3


@dataclass
class DicomSeries:
    """The files of one SeriesInstanceUID in a folder (headers only, no pixels read)."""

    uid: str
    files: list[Path] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)

    @property
    def description(self) -> str:
        return str(getattr(self.headers[0], "SeriesDescription", "") or "")

    @property
    def modality(self) -> str:
        return str(getattr(self.headers[0], "Modality", "") or "").upper()

    def summary(self) -> str:
        text = f"{self.uid} ({self.modality or '?'}, {len(self.files)} files"
        return text + (f", '{self.description}')" if self.description else ")")


def dicom_files_in(folder: str | os.PathLike) -> list[Path]:
    """DICOM files directly inside ``folder`` (by DICM marker or DICOM file name), sorted."""
    folder = Path(folder)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise SpineIOError(folder, f"cannot be listed ({err.strerror})") from None
    files = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=True):
            continue
        if is_dicom_path(entry.path):
            files.append(Path(entry.path))
    return files


def find_series(folder: str | os.PathLike) -> tuple[list[DicomSeries], list[str]]:
    """Group the DICOM files of ``folder`` by series; also return the files that were skipped."""
    files = dicom_files_in(folder)
    if not files:
        raise SpineIOError(
            folder,
            "holds no DICOM files (files with the DICM marker or a .dcm "
            "name); subfolders are not searched",
        )
    series: dict[str, DicomSeries] = {}
    skipped = []
    for path in files:
        try:
            header = read_dataset(path, stop_before_pixels=True)
        except SpineIOError as err:
            skipped.append(f"{path.name}: {err.problem}")
            continue
        uid = str(getattr(header, "SeriesInstanceUID", "") or "no SeriesInstanceUID")
        entry = series.setdefault(uid, DicomSeries(uid))
        entry.files.append(path)
        entry.headers.append(header)
    if not series:
        raise SpineIOError(folder, "holds no readable DICOM file: " + "; ".join(skipped[:5]))
    return list(series.values()), skipped


def read_dicom_folder(folder: str | os.PathLike, series_uid: str | None = None) -> list[SpineImage]:
    """Read every series in ``folder`` (or only ``series_uid``) as SpineImages.

    A CT series with ImagePositionPatient becomes one volume; a series of radiographs gives one
    image per file. Files that cannot be read are reported; a series with gaps, duplicate
    positions, mixed orientations or mixed sizes is refused with the reason.
    """
    folder = Path(folder)
    all_series, skipped = find_series(folder)
    if series_uid is not None:
        chosen = [s for s in all_series if s.uid == series_uid]
        if not chosen:
            raise SpineIOError(
                folder,
                f"holds no series {series_uid}; it holds "
                + "; ".join(s.summary() for s in all_series),
            )
        all_series = chosen
    images: list[SpineImage] = []
    for series in all_series:
        if _is_volume(series):
            images.append(_read_volume(folder, series))
        else:
            images.extend(read_dicom_file(path) for path in series.files)
    if skipped:
        for image in images:
            image.source.setdefault("warnings", []).append(
                f"{len(skipped)} file(s) in the folder were skipped: " + "; ".join(skipped[:5])
            )
    return images


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> SpineImage:
    """Read the one image of a DICOM folder; with several series, name them and ask for one."""
    images = read_dicom_folder(folder, series_uid)
    if len(images) > 1:
        series, _ = find_series(folder)
        raise SpineIOError(
            folder,
            f"holds {len(images)} images in {len(series)} series: "
            + "; ".join(s.summary() for s in series)
            + ". Choose one with series_uid=…",
        )
    return images[0]


def _is_volume(series: DicomSeries) -> bool:
    """True for a multi-file series of slices; a CT series with broken geometry is refused."""
    modality = series.modality
    if len(series.files) < 2 or modality in ("CR", "DX", "RF", "XA", "PX", "MG"):
        return False
    broken = [
        p.name
        for p, h in zip(series.files, series.headers, strict=True)
        if not has_valid_geometry(h)
    ]
    if broken and modality == "CT":
        raise SpineIOError(
            series.files[0].parent,
            f"series {series.uid}: {len(broken)} slice(s) "
            f"lack a valid ImageOrientationPatient/ImagePositionPatient "
            f"({', '.join(broken[:3])}); the slices cannot be stacked",
        )
    return not broken


def _read_volume(folder: Path, series: DicomSeries) -> SpineImage:
    headers, files = series.headers, series.files
    first = headers[0]
    if series.modality not in ("CT", ""):
        raise SpineIOError(
            folder,
            f"series {series.uid} has modality {series.modality}; "
            "napari-vertebra reads CT series and radiographs",
        )
    orientation = np.array([float(v) for v in first.ImageOrientationPatient])
    for path, header in zip(files, headers, strict=True):
        other = np.array([float(v) for v in header.ImageOrientationPatient])
        if np.abs(other - orientation).max() > ORIENTATION_TOLERANCE:
            raise SpineIOError(
                folder,
                f"series {series.uid} mixes slice orientations "
                f"({files[0].name}: {orientation.round(4).tolist()}, "
                f"{path.name}: {other.round(4).tolist()})",
            )
    sizes = {(int(h.Rows), int(h.Columns)) for h in headers}
    if len(sizes) > 1:
        raise SpineIOError(folder, f"series {series.uid} mixes image sizes {sorted(sizes)}")
    spacings = {pixel_spacing(files[k], h, "PixelSpacing") for k, h in enumerate(headers)}
    if None in spacings or len(spacings) > 1:
        raise SpineIOError(
            folder,
            f"series {series.uid} has missing or differing PixelSpacing "
            f"{sorted(str(s) for s in spacings)}",
        )
    spacing = spacings.pop()
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers]) @ normal
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    steps = np.diff(positions)
    step = float(np.median(steps))
    if np.any(steps < max(1e-3, 0.01 * step)):
        k = int(np.argmin(steps))
        raise SpineIOError(
            folder,
            f"series {series.uid}: slices {files[order[k]].name} and "
            f"{files[order[k + 1]].name} share a position; the series holds "
            "several acquisitions (echoes, phases or duplicates)",
        )
    uneven = np.abs(steps - step) > GAP_TOLERANCE * step
    if np.any(uneven):
        k = int(np.argmax(np.abs(steps - step)))
        raise SpineIOError(
            folder,
            f"series {series.uid} has a gap or uneven slice spacing: "
            f"{steps[k]:.3g} mm between slices at {positions[k]:.2f} and "
            f"{positions[k + 1]:.2f} mm along the normal, against {step:.3g} mm "
            "elsewhere (missing slices?)",
        )
    check_voxel_count(folder, (len(files), *sizes.pop()))
    meta = source_metadata(folder, first)
    meta["sop_instance_uids"] = [str(getattr(headers[k], "SOPInstanceUID", "")) for k in order]
    meta["spacing_source"] = "PixelSpacing and ImagePositionPatient"
    slices = []
    for k in order:
        ds = read_dataset(files[k])
        values = to_intensities(files[k], ds, decode_pixels(files[k], ds))
        if values.shape != (int(first.Rows), int(first.Columns)):
            raise SpineIOError(
                files[k],
                f"pixel array has shape {values.shape}, header says "
                f"{int(first.Rows)}x{int(first.Columns)}",
            )
        slices.append(values.astype(np.float32) if values.dtype.kind == "f" else values)
    volume = check_pixels(folder, np.stack(slices), meta["warnings"])
    if series.modality == "CT":
        volume = compact_intensities(volume)
    # Stack axes: (slice along the normal, row, column). slice_affine gives rows and columns;
    # its third column becomes the slice step and the stack axis is moved to the front.
    plane = slice_affine(headers[order[0]], spacing, normal_step=step)
    affine = plane[:, [2, 0, 1, 3]]
    transform, codes, spacing3, origin = geometry_from_affine(affine, volume.shape)
    return SpineImage(
        np.ascontiguousarray(transform.to_canonical(volume)),
        spacing3,
        "CT",
        codes,
        origin,
        "image",
        affine,
        tuple(volume.shape),
        transform,
        meta,
    )
