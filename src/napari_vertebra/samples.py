"""Sample data shipped with the package and the synthetic samples built on demand."""

from __future__ import annotations

from pathlib import Path

from .core.image import SpineImage
from .core.io import read_image
from .core.labels import to_verse
from .core.phantom import Phantom, make_phantom

_DATA = Path(__file__).parent / "data"

#: Names accepted by :func:`sample_path` and ``napari-vertebra view --sample``.
SAMPLES = ("lumbar-ct", "radiograph", "ct")


def sample_path(name: str = "lumbar-ct") -> Path:
    """Path of a bundled file: ``"lumbar-ct"`` (real CT), ``"lumbar-ct-labels"``,
    ``"lumbar-ct-body-mask"``."""
    files = {
        "lumbar-ct": "ct_lumbar_totalseg/ct.nii.gz",
        "lumbar-ct-labels": "ct_lumbar_totalseg/labels_totalseg.nii.gz",
        "lumbar-ct-body-mask": "ct_lumbar_totalseg/body_disc_mask.nii.gz",
    }
    if name not in files:
        raise KeyError(f"no bundled file {name!r}; choose from {', '.join(files)}")
    return _DATA / files[name]


def lumbar_ct() -> tuple[SpineImage, SpineImage]:
    """The real lumbar CT (T11–S1) and its vertebra labels converted to VerSe IDs."""
    image = read_image(sample_path("lumbar-ct"))
    labels = read_image(sample_path("lumbar-ct-labels"), kind="labels")
    return image, labels.with_array(to_verse(labels.array, "totalsegmentator"))


def synthetic_radiograph() -> Phantom:
    """A fixed lateral radiograph phantom (T11–S1) with a moderate L1 wedge fracture."""
    return make_phantom(
        "xr",
        seed=7,
        levels=["T11", "T12", "L1", "L2", "L3", "L4", "L5"],
        with_sacrum=True,
        fractures={"L1": (2, "wedge")},
        spacing=0.3,
        crop_top=False,
    )


def synthetic_ct() -> Phantom:
    """A fixed CT phantom (T12–S1) with a severe L2 biconcave fracture, 1.5 × 1 × 1 mm voxels."""
    return make_phantom(
        "ct",
        seed=3,
        levels=["T12", "L1", "L2", "L3", "L4", "L5"],
        with_sacrum=True,
        fractures={"L2": (3, "biconcave")},
        spacing=(1.5, 1.0, 1.0),
    )
