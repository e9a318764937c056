"""napari reader contributions: NIfTI, DICOM files and folders, PNG/JPEG/TIFF."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..core.image import SpineImage
from ..core.io import SpineIOError, can_read, read_images
from .layers import layer_data

_log = logging.getLogger(__name__)


def get_reader(path: str | list[str]):
    """Return :func:`read_layers` if every path is something this plugin reads, else None."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(can_read(p) for p in paths):
        return None
    return read_layers


def layer_name(image: SpineImage, path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    description = image.source.get("series_description")
    return f"{name} {description}" if path.is_dir() and description else name


def read_layers(path: str | list[str]) -> list[tuple[Any, dict, str]]:
    """Read one or several paths into napari layer data.

    A file this reader claims but cannot parse is reported as a napari error notification that
    names the file and the problem; napari then receives the "nothing to add" sentinel instead of
    a traceback.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers = []
    for p in map(Path, paths):
        try:
            images = read_images(p)
        except SpineIOError as err:
            _report(str(err))
            continue
        for image in images:
            layers.append(layer_data(image, layer_name(image, p)))
    return layers or [(None,)]


def _report(message: str) -> None:
    _log.error(message)
    try:
        from napari.utils.notifications import show_error
    except ImportError:  # reading without napari installed: the log is the report
        return
    show_error(f"napari-vertebra could not open {message}")
