"""The spine-image data model shared by readers, analysis steps, writers and the napari layer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .geometry import AxisTransform, canonical_affine

Modality = Literal["XR", "CT"]
Kind = Literal["image", "labels"]

#: Keys kept from :attr:`SpineImage.source`: identifiers, never patient name, ID or birth date.
SOURCE_KEYS = (
    "path",
    "format",
    "study_uid",
    "series_uid",
    "sop_instance_uids",
    "frame_of_reference_uid",
    "transfer_syntax",
    "modality_tag",
    "series_description",
    "spacing_source",
    "warnings",
)


@dataclass(frozen=True)
class SpineImage:
    """An image or label map in the canonical orientation, with its physical geometry.

    Attributes
    ----------
    array
        Pixel or voxel data in canonical axis order (see :mod:`napari_vertebra.core.geometry`).
        CT intensities are Hounsfield units; radiographs keep their stored values with
        MONOCHROME1 inverted so that bone is bright.
    spacing
        Millimetres per pixel along each canonical axis, or ``None`` when the file does not say
        (PNG/JPEG/TIFF, radiographs without PixelSpacing). Never silently 1 mm.
    modality
        ``"XR"`` for projection radiographs, ``"CT"`` for computed tomography.
    axis_codes
        Direction each array axis points to, e.g. ``("I", "P", "L")``; ``None`` when unknown.
    origin
        World position (mm) of the first pixel along the canonical axes.
    kind
        ``"image"`` or ``"labels"`` (a label map, VerSe IDs unless stated otherwise).
    source_affine
        4×4 RAS affine of the array as stored in the file, or ``None`` for files without one.
    source_shape
        Shape of the array as stored in the file.
    to_canonical
        Permutation and flips that took the stored array to :attr:`array`.
    source
        File metadata free of patient identity: path, format, DICOM UIDs, transfer syntax,
        where the spacing came from, warnings raised while reading.
    """

    array: np.ndarray
    spacing: tuple[float, ...] | None
    modality: Modality
    axis_codes: tuple[str, ...] | None = None
    origin: tuple[float, ...] | None = None
    kind: Kind = "image"
    source_affine: np.ndarray | None = None
    source_shape: tuple[int, ...] | None = None
    to_canonical: AxisTransform | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ndim = self.array.ndim
        if ndim not in (2, 3):
            raise ValueError(f"a spine image is 2D or 3D, got {ndim} dimensions")
        if self.modality not in ("XR", "CT"):
            raise ValueError(f"modality must be 'XR' or 'CT', got {self.modality!r}")
        if self.spacing is not None:
            spacing = tuple(float(s) for s in self.spacing)
            if len(spacing) != ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
                raise ValueError(f"spacing {self.spacing} must be {ndim} positive finite numbers")
            object.__setattr__(self, "spacing", spacing)
        if self.origin is None:
            object.__setattr__(self, "origin", (0.0,) * ndim)
        elif len(self.origin) != ndim:
            raise ValueError(f"origin {self.origin} must have {ndim} values")
        if self.axis_codes is not None and len(self.axis_codes) != ndim:
            raise ValueError(f"axis codes {self.axis_codes} must have {ndim} entries")
        if self.source_shape is None:
            object.__setattr__(self, "source_shape", tuple(self.array.shape))
        if self.to_canonical is None:
            object.__setattr__(self, "to_canonical", AxisTransform.identity(ndim))

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def spacing_known(self) -> bool:
        """True when :attr:`spacing` holds real millimetres."""
        return self.spacing is not None

    @property
    def scale(self) -> tuple[float, ...]:
        """Layer scale: spacing in mm, or 1 per pixel when the spacing is unknown."""
        return self.spacing if self.spacing is not None else (1.0,) * self.ndim

    @property
    def units(self) -> str:
        """``"mm"`` or, when the spacing is unknown, ``"pixel"``."""
        return "mm" if self.spacing_known else "pixel"

    @property
    def affine(self) -> np.ndarray | None:
        """4×4 RAS affine of :attr:`array` (canonical order), when the source had one."""
        if self.source_affine is None:
            return None
        return canonical_affine(self.source_affine, self.to_canonical, self.source_shape)

    def with_spacing(self, spacing: tuple[float, ...] | float) -> SpineImage:
        """Copy with a user-set spacing (mm), e.g. for a PNG whose pixel size is known."""
        if np.isscalar(spacing):
            spacing = (float(spacing),) * self.ndim
        source = dict(self.source, spacing_source="set by user")
        return dataclasses.replace(self, spacing=tuple(spacing), source=source)

    def with_array(self, array: np.ndarray, kind: Kind | None = None) -> SpineImage:
        """Copy sharing this geometry, holding ``array`` (same shape) instead."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from image shape {self.shape}")
        return dataclasses.replace(self, array=array, kind=kind or self.kind)

    def array_in_source_order(self, array: np.ndarray | None = None) -> np.ndarray:
        """``array`` (default: :attr:`array`) reoriented back to the order stored in the file."""
        return self.to_canonical.to_source(self.array if array is None else array)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def index_to_world(self, index: np.ndarray) -> np.ndarray:
        """World coordinates (mm, canonical axes) of array indices (``(..., ndim)``)."""
        return np.asarray(index, dtype=float) * np.array(self.scale) + np.array(self.origin)

    def world_to_index(self, world: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`index_to_world` (fractional indices)."""
        return (np.asarray(world, dtype=float) - np.array(self.origin)) / np.array(self.scale)

    def geometry_metadata(self) -> dict[str, Any]:
        """Plain-data description of the geometry, stored in napari layer metadata.

        Writers use it to put label maps back on the source grid with the source affine.
        """
        return {
            "modality": self.modality,
            "kind": self.kind,
            "spacing_mm": list(self.spacing) if self.spacing is not None else None,
            "spacing_known": self.spacing_known,
            "axis_codes": list(self.axis_codes) if self.axis_codes else None,
            "origin_mm": list(self.origin),
            "shape": list(self.shape),
            "source_shape": list(self.source_shape),
            "to_canonical": {
                "perm": list(self.to_canonical.perm),
                "flip": list(self.to_canonical.flip),
            },
            "source_affine": self.source_affine.tolist()
            if self.source_affine is not None
            else None,
            "source": {k: v for k, v in self.source.items() if k in SOURCE_KEYS},
        }

    @classmethod
    def from_geometry_metadata(cls, array: np.ndarray, meta: dict[str, Any]) -> SpineImage:
        """Rebuild a SpineImage around ``array`` from :meth:`geometry_metadata` output."""
        affine = meta.get("source_affine")
        transform = meta.get("to_canonical") or {}
        spacing = meta.get("spacing_mm")
        codes = meta.get("axis_codes")
        return cls(
            array=array,
            spacing=tuple(spacing) if spacing is not None else None,
            modality=meta.get("modality", "CT" if array.ndim == 3 else "XR"),
            axis_codes=tuple(codes) if codes else None,
            origin=tuple(meta["origin_mm"]) if meta.get("origin_mm") is not None else None,
            kind=meta.get("kind", "image"),
            source_affine=np.asarray(affine, dtype=float) if affine is not None else None,
            source_shape=tuple(meta["source_shape"]) if meta.get("source_shape") else None,
            to_canonical=AxisTransform(tuple(transform["perm"]), tuple(transform["flip"]))
            if transform
            else None,
            source=dict(meta.get("source", {})),
        )
