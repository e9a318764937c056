"""Finding the studies in an input folder: DICOM series folders, DICOM files, NIfTI, PNG/JPEG/TIFF.

A folder whose DICOM files form a CT series is one study; each radiograph (DICOM file) and each
NIfTI or PNG/JPEG/TIFF file is one study. Files that carry an image suffix or the DICOM marker but
cannot be read are studies too, so that the batch lists them among its failures instead of
skipping them without a word. Hidden files and folders (a leading dot) and the batch's own output
folder are never searched. Discovery reads DICOM headers only, never pixels.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..io import SpineIOError
from ..io.dicom_file import is_dicom_path
from ..io.nifti import is_nifti_path
from ..io.raster import is_raster_path

#: Suffixes removed from file names to name their study.
_STRIPPED_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class Study:
    """One image to analyse.

    Attributes
    ----------
    name
        Folder name of its outputs under the batch's output folder (and the ``study`` column).
    path
        The file, or the folder holding its DICOM series.
    series_uid
        The series to read from a folder that holds several; ``None`` otherwise.
    """

    name: str
    path: Path
    series_uid: str | None = None

    def read_options(self) -> dict[str, str]:
        return {"series_uid": self.series_uid} if self.series_uid else {}


def find_studies(
    input_dir: str | os.PathLike,
    exclude: tuple[str, ...] = (),
    skip: str | os.PathLike | None = None,
) -> list[Study]:
    """Every study under ``input_dir`` (searched recursively), in a stable order.

    Parameters
    ----------
    input_dir
        The folder to search.
    exclude
        Glob patterns (``fnmatch``) matched against each file's path relative to ``input_dir``
        and against its name; matching files are not studies (e.g. ``"*labels*"``).
    skip
        A folder never searched (the batch's output folder, when it lies inside the input).

    Raises
    ------
    SpineIOError
        When ``input_dir`` is not a readable folder.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise SpineIOError(root, "is not a folder (batch takes a folder of studies)")
    skip_path = Path(skip).resolve() if skip is not None else None
    found: list[tuple[Path, str | None, int]] = []  # (path, series uid, volumes in its folder)
    for folder, subfolders, files in os.walk(root, onerror=_raise_unlistable):
        here = Path(folder)
        subfolders[:] = sorted(
            d
            for d in subfolders
            if not d.startswith(".") and (skip_path is None or (here / d).resolve() != skip_path)
        )
        candidates = [
            here / f
            for f in sorted(files)
            if not f.startswith(".") and not _excluded(here / f, root, exclude)
        ]
        dicom = [p for p in candidates if is_dicom_path(p)]
        found.extend((p, None, 0) for p in candidates if p not in dicom and _is_image_name(p))
        if dicom:
            found.extend(_dicom_studies(here, dicom))
    names: set[str] = set()
    studies = []
    for path, uid, volumes in found:
        name = _unique(_study_name(path, root, uid if volumes > 1 else None), names)
        studies.append(Study(name, path, uid if volumes > 1 else None))
    return studies


def _raise_unlistable(err: OSError) -> None:
    raise SpineIOError(err.filename or "input folder", f"cannot be listed ({err.strerror})")


def _excluded(path: Path, root: Path, patterns: tuple[str, ...]) -> bool:
    relative = path.relative_to(root).as_posix()
    return any(
        fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(path.name, pattern)
        for pattern in patterns
    )


def _is_image_name(path: Path) -> bool:
    return is_nifti_path(path) or is_raster_path(path)


def _dicom_studies(folder: Path, files: list[Path]) -> list[tuple[Path, str | None, int]]:
    """A CT series -> its folder; radiographs and unreadable DICOM files -> each file."""
    from ..io.dicom_file import read_dataset

    by_series: dict[str, list[tuple[Path, object]]] = {}
    out: list[tuple[Path, str | None, int]] = []
    for path in files:
        try:
            header = read_dataset(path, stop_before_pixels=True)
        except SpineIOError:
            out.append((path, None, 0))  # its reader will say what is wrong
            continue
        uid = str(getattr(header, "SeriesInstanceUID", "") or "")
        by_series.setdefault(uid, []).append((path, header))
    volumes = [
        uid
        for uid, members in by_series.items()
        if len(members) > 1
        and str(getattr(members[0][1], "Modality", "")).upper()
        not in ("CR", "DX", "RF", "XA", "PX", "MG")
    ]
    for uid, members in by_series.items():
        if uid in volumes:
            out.append((folder, uid or None, len(volumes)))
        else:
            out.extend((path, None, 0) for path, _ in members)
    return out


def _study_name(path: Path, root: Path, series_uid: str | None) -> str:
    relative = path.relative_to(root).as_posix() if path != root else root.name
    lowered = relative.lower()
    for suffix in _STRIPPED_SUFFIXES:
        if lowered.endswith(suffix):
            relative = relative[: -len(suffix)]
            break
    name = relative.replace("/", "__")
    if series_uid:
        name += "__" + series_uid.replace(".", "")[-8:]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"
    return name


def _unique(name: str, taken: set[str]) -> str:
    candidate, k = name, 2
    while candidate.lower() in taken:
        candidate, k = f"{name}-{k}", k + 1
    taken.add(candidate.lower())
    return candidate
