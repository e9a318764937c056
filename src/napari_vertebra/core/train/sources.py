"""Where training images and vertebral-body labels come from (issue 6, sources a–d).

Each source yields :class:`Sample` s: an image and its bodies (both
:class:`~napari_vertebra.core.image.SpineImage`, bodies in VerSe IDs, sacrum 26) and, where
known, which bodies are fractured (phantoms and their projections know it; other sources do
not, and the fracture head of a multitask model then ignores their bodies). Whole-vertebra masks
(VerSe, TotalSegmentator) are reduced to their bodies first, with the same isolation the
measurements use.

Spec strings (the ``--data`` option of ``napari-vertebra train``):

- ``phantom-xr:N`` / ``phantom-ct:N``: N phantoms generated on the fly (seeds from the run seed);
- ``phantom-ct-abdomen:N``: CT phantoms in their whole trunk (wall, viscera, bowel gas, ribs,
  pelvis; 1.5–3 mm voxels), whose projections look like a real abdominal lateral film;
- ``folder:PATH``: ``PATH/images/NAME.*`` with ``PATH/masks/NAME.*`` (PNG/TIFF/DICOM/NIfTI;
  an image may also be a folder holding one DICOM series; masks semantic, 1 = body,
  26 = sacrum, or VerSe-ID instances);
- ``totalseg:PATH``: the same layout with TotalSegmentator class maps as masks (its vertebrae,
  sacrum and S1 are converted to VerSe IDs; its other classes are left out);
- ``verse:PATH``: a VerSe-format dataset, ``*_ct.nii.gz`` with ``*_msk.nii.gz`` of the same
  subject (orientation from the NIfTI headers; the centroid JSON is not needed for bodies);
- ``drr:SPEC``: lateral projections with random geometry of the CTs of another CT spec
  (``drr:phantom-ct:20``, ``drr:verse:PATH``), for radiograph models.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..image import SpineImage
from ..instances import isolate_body
from ..io import read_image
from ..io.nifti import is_nifti_path
from ..labels import SACRUM, to_verse
from .workers import single_threaded

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz", ".jpg", ".jpeg")


class DataSpecError(ValueError):
    """A ``--data`` spec that cannot be understood or points at nothing usable."""


class Sample(NamedTuple):
    """An image, its vertebral bodies, and the VerSe IDs of the fractured ones (None: unknown)."""

    image: SpineImage
    bodies: SpineImage
    fractured: frozenset[int] | None = None


def bodies_of(labels: SpineImage) -> SpineImage:
    """Vertebral bodies of a label map: each vertebra's body isolated, the sacrum kept.

    A semantic mask (only 1 and 26) is returned with its bodies unchanged.
    """
    array = np.asarray(labels.array)
    values = [int(v) for v in np.unique(array) if v]
    if set(values) <= {1, SACRUM}:
        return labels
    out = np.zeros(array.shape, dtype=np.uint8)
    for value in values:
        mask = array == value
        out[isolate_body(mask) if value != SACRUM else mask] = value
    return labels.with_array(out, kind="labels")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def folder_pairs(folder: str | Path, scheme: str | None = None) -> Iterator[Sample]:
    """``folder/images/NAME.*`` with ``folder/masks/NAME.*``; a mask missing is an error.

    ``scheme`` names the masks' label scheme when it is not the project's own (VerSe IDs or
    semantic 1/26): ``"totalsegmentator"`` converts class maps to VerSe IDs.
    """
    folder = Path(folder)
    images, masks = folder / "images", folder / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise DataSpecError(f"{folder}: needs the subfolders images/ and masks/")
    by_stem = {_stem(p): p for p in masks.iterdir() if not p.name.startswith(".")}
    found = sorted(p for p in images.iterdir() if not p.name.startswith("."))
    if not found:
        raise DataSpecError(f"{images}: no images")
    for path in found:
        mask = by_stem.get(_stem(path))
        if mask is None:
            raise DataSpecError(f"{path}: no mask named {_stem(path)}.* in {masks}")
        image = read_image(path)
        labels = read_image(mask, kind="labels") if is_nifti_path(mask) else read_image(mask)
        if labels.shape != image.shape:
            raise DataSpecError(f"{mask}: shape {labels.shape} differs from {path} {image.shape}")
        if image.spacing is None and labels.spacing is not None:
            image = image.with_spacing(labels.spacing)
        values = np.asarray(labels.array)
        values = to_verse(values, scheme) if scheme else values.astype(np.uint8)
        if scheme and not values.any():
            raise DataSpecError(f"{mask}: no vertebra of the {scheme} scheme in this mask")
        labels = labels.with_array(values, kind="labels")
        if image.spacing is not None:
            labels = _with_geometry(labels, image)
        yield Sample(image, bodies_of(labels))


def _with_geometry(labels: SpineImage, image: SpineImage) -> SpineImage:
    import dataclasses

    return dataclasses.replace(labels, spacing=image.spacing, origin=image.origin)


def verse_pairs(folder: str | Path) -> Iterator[Sample]:
    """CT and vertebra mask pairs of a VerSe-format dataset (searched recursively)."""
    folder = Path(folder)
    cts = sorted(folder.rglob("*_ct.nii.gz"))
    if not cts:
        raise DataSpecError(f"{folder}: no *_ct.nii.gz (VerSe layout)")
    for ct_path in cts:
        subject = ct_path.name.split("_")[0]
        masks = sorted(ct_path.parent.parent.rglob(f"{subject}*_msk.nii.gz"))
        masks = [m for m in masks if "subreg" not in m.name] or masks
        if not masks:
            raise DataSpecError(f"{ct_path}: no {subject}*_msk.nii.gz mask")
        ct = read_image(ct_path, modality="CT")
        labels = read_image(masks[0], kind="labels")
        if labels.shape != ct.shape:
            raise DataSpecError(f"{masks[0]}: shape {labels.shape} differs from the CT {ct.shape}")
        yield Sample(ct, bodies_of(labels))


def phantom_pairs(
    modality: str, count: int, seed: int, workers: int = 1, **options
) -> Iterator[Sample]:
    """``count`` phantoms of ``modality`` from seeds derived from ``seed`` (``options`` go to
    :func:`~napari_vertebra.core.phantom.make_phantom`), rendered by ``workers`` processes
    (the same phantoms, in the same order, whatever their number)."""
    children = np.random.SeedSequence(seed).spawn(count)
    if workers <= 1 or count <= 1:
        yield from (_phantom_sample(modality, child, options) for child in children)
        return
    with ProcessPoolExecutor(min(workers, count), initializer=single_threaded) as pool:
        yield from pool.map(
            _phantom_sample, repeat(modality), children, repeat(options), chunksize=1
        )


def _phantom_sample(modality: str, seed: np.random.SeedSequence, options: dict) -> Sample:
    from ..phantom import make_phantom

    phantom = make_phantom(modality, seed, **options)
    fractured = frozenset(
        int(v["label"]) for v in phantom.truth["vertebrae"] if v["genant_grade"] >= 1
    )
    return Sample(phantom.image, phantom.labels, fractured)


def drr_pairs(cts: Iterator[Sample], seed: int, per_ct: int = 1) -> Iterator[Sample]:
    """Lateral projections with random geometry (:mod:`napari_vertebra.core.drr`)."""
    from ..drr import ProjectionGeometry, lateral_projection

    rng = np.random.default_rng(seed)
    for ct, bodies, fractured in cts:
        # A CT cropped around the spine (narrower than 200 mm) lacks most of the patient's soft
        # tissue: up to 3 times its attenuation stands for it. A trunk CT already holds the
        # patient; its soft tissue is scaled up to about 400 mm of width at most.
        width = ct.shape[2] * float(ct.spacing[2])
        widest = 3.0 if width < 200.0 else float(np.clip(400.0 / width, 1.0, 3.0))
        for _ in range(per_ct):
            geometry = ProjectionGeometry.random(rng, max_soft_tissue_scale=widest)
            projection = lateral_projection(ct, bodies, geometry, rng)
            yield Sample(*projection, fractured)


def pairs_from_spec(spec: str, seed: int, workers: int = 1) -> Iterator[Sample]:
    """The pairs a ``--data`` spec names (see the module docstring); phantoms are rendered by
    ``workers`` processes."""
    kind, _, rest = spec.partition(":")
    if kind in ("phantom-xr", "phantom-ct", "phantom-ct-abdomen"):
        try:
            count = int(rest)
        except ValueError:
            raise DataSpecError(f"{spec}: give the number of phantoms, e.g. {kind}:200") from None
        options = {"surroundings": "abdomen"} if kind.endswith("abdomen") else {}
        return phantom_pairs(kind.split("-")[1], count, seed, workers, **options)
    if kind == "folder":
        return folder_pairs(rest)
    if kind == "totalseg":
        return folder_pairs(rest, scheme="totalsegmentator")
    if kind == "verse":
        return verse_pairs(rest)
    if kind == "drr":
        inner, _, per = rest.rpartition("@")
        if not inner:
            inner, per = rest, "1"
        return drr_pairs(pairs_from_spec(inner, seed + 1, workers), seed, per_ct=int(per))
    raise DataSpecError(
        f"{spec}: unknown data source {kind!r} (phantom-xr:N, phantom-ct:N, "
        "phantom-ct-abdomen:N, folder:PATH, "
        "totalseg:PATH, verse:PATH, drr:SPEC)"
    )
