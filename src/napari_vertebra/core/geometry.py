"""Orientation conventions and the axis transform between a file's array and the canonical array.

Canonical orientation
---------------------
Every 3D volume is held with its array axes pointing **I, P, L**: axis 0 runs from head to feet
(inferior), axis 1 from front to back (posterior), axis 2 from the patient's right to left. An axial
slice (axes 1, 2) then shows anterior at the top and the patient's right on the viewer's left, the
radiological convention, and summing along axis 2 gives a lateral projection in the 2D canonical
orientation.

A 2D image whose plane is known keeps the same rule for the anatomical axes it contains, in the
priority S/I, then A/P, then L/R: a lateral radiograph becomes **(I, P)** — head up, anterior on the
left — and an AP radiograph **(I, L)**. A 2D image of unknown orientation (PNG, a radiograph without
PatientOrientation) is left as stored and its axis codes are ``None``.

World coordinates
-----------------
World coordinates are millimetres along the canonical axes: ``world = index * spacing + origin``,
where ``origin`` is the patient-frame position of the first voxel expressed along I, P, L (that is,
``-S``, ``-A``, ``-R`` of RAS). Layers in napari use exactly this as ``scale`` and ``translate``, so
images of one patient line up. For oblique acquisitions the exact affine is kept in the metadata and
the small rotation is ignored for display.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: RAS axis index -> code of the canonical direction along it (0: L/R, 1: A/P, 2: S/I).
_CANONICAL_CODE = {0: "L", 1: "P", 2: "I"}
#: Anatomical axes in the order canonical arrays hold them (S/I, then A/P, then L/R).
_AXIS_PRIORITY = (2, 1, 0)
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
#: RAS axis index and sign of each direction code.
_CODE_TO_RAS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}

CANONICAL_3D = ("I", "P", "L")


@dataclass(frozen=True)
class AxisTransform:
    """Permutation and flips that take a source array to the canonical array.

    ``canonical = flip(transpose(source, perm), axes=[k for k in range(n) if flip[k]])``.
    """

    perm: tuple[int, ...]
    flip: tuple[bool, ...]

    @classmethod
    def identity(cls, ndim: int) -> AxisTransform:
        return cls(tuple(range(ndim)), (False,) * ndim)

    @property
    def is_identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm))) and not any(self.flip)

    def to_canonical(self, source: np.ndarray) -> np.ndarray:
        """Reorient a source-ordered array to canonical order (a view where possible)."""
        out = np.transpose(source, self.perm)
        flips = [k for k, f in enumerate(self.flip) if f]
        return np.flip(out, axis=flips) if flips else out

    def to_source(self, canonical: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_canonical`."""
        flips = [k for k, f in enumerate(self.flip) if f]
        out = np.flip(canonical, axis=flips) if flips else canonical
        return np.transpose(out, np.argsort(self.perm))

    def index_matrix(self, source_shape: tuple[int, ...]) -> np.ndarray:
        """Homogeneous matrix mapping a canonical index to the source index it came from."""
        n = len(self.perm)
        m = np.zeros((n + 1, n + 1))
        m[n, n] = 1.0
        for k, (src_axis, flipped) in enumerate(zip(self.perm, self.flip, strict=True)):
            if flipped:
                m[src_axis, k] = -1.0
                m[src_axis, n] = source_shape[src_axis] - 1
            else:
                m[src_axis, k] = 1.0
        return m


def axis_codes_from_directions(directions: np.ndarray) -> tuple[str, ...]:
    """Direction code (R/L/A/P/S/I) of each column of a 3×n RAS direction matrix.

    Each column gets the RAS axis it is most aligned with, every axis used at most once (largest
    component first), so slightly oblique acquisitions get their nearest codes.
    """
    d = np.asarray(directions, dtype=float)
    n = d.shape[1]
    codes: list[str | None] = [None] * n
    used: set[int] = set()
    weights = np.abs(d)
    for _ in range(n):
        masked = weights.copy()
        masked[list(used), :] = -1
        for col, code in enumerate(codes):
            if code is not None:
                masked[:, col] = -1
        ras_axis, col = np.unravel_index(int(np.argmax(masked)), masked.shape)
        if masked[ras_axis, col] <= 0:
            raise ValueError("degenerate orientation: an axis direction is zero")
        positive = d[ras_axis, col] > 0
        codes[col] = "RAS"[ras_axis] if positive else _OPPOSITE["RAS"[ras_axis]]
        used.add(int(ras_axis))
    return tuple(code for code in codes if code is not None)


def canonical_transform(codes: tuple[str, ...]) -> tuple[AxisTransform, tuple[str, ...]]:
    """Transform from arrays whose axes point along ``codes`` to the canonical order.

    Returns the transform and the canonical codes, e.g. ``("P", "I", "R") -> (I, P, L)``.
    """
    ras_of_axis = [_CODE_TO_RAS[c][0] for c in codes]
    sign_of_axis = [_CODE_TO_RAS[c][1] for c in codes]
    if len(set(ras_of_axis)) != len(codes):
        raise ValueError(f"orientation codes {codes} name one anatomical axis twice")
    order = sorted(range(len(codes)), key=lambda ax: _AXIS_PRIORITY.index(ras_of_axis[ax]))
    canonical_codes = tuple(_CANONICAL_CODE[ras_of_axis[ax]] for ax in order)
    # Canonical directions (I, P, L) are the negative RAS directions: flip axes that point +RAS.
    flips = tuple(sign_of_axis[ax] > 0 for ax in order)
    return AxisTransform(tuple(order), flips), canonical_codes


def ras_to_canonical_world(codes: tuple[str, ...]) -> np.ndarray:
    """Rows that project a RAS vector onto the canonical axes ``codes`` (I, P and/or L)."""
    rows = []
    for code in codes:
        ras_axis, sign = _CODE_TO_RAS[code]
        row = np.zeros(3)
        row[ras_axis] = sign
        rows.append(row)
    return np.array(rows)


def spacing_from_affine(affine: np.ndarray, ndim: int) -> tuple[float, ...]:
    """Voxel spacing in mm: the lengths of the affine's first ``ndim`` columns."""
    return tuple(float(np.linalg.norm(affine[:3, k])) for k in range(ndim))


def canonical_affine(
    source_affine: np.ndarray, transform: AxisTransform, source_shape: tuple[int, ...]
) -> np.ndarray:
    """4×4 RAS affine of the canonical array, given the source array's affine."""
    ndim = len(source_shape)
    index = transform.index_matrix(source_shape)
    embed = np.eye(4)
    embed[:ndim, :ndim] = index[:ndim, :ndim]
    embed[:ndim, 3] = index[:ndim, ndim]
    return np.asarray(source_affine, dtype=float) @ embed


def geometry_from_affine(
    source_affine: np.ndarray, source_shape: tuple[int, ...]
) -> tuple[AxisTransform, tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    """Canonical transform, axis codes, spacing (mm) and world origin (mm) of an affine image.

    Parameters
    ----------
    source_affine
        4×4 RAS affine of the array as stored (NIfTI convention).
    source_shape
        Shape of the stored array (2 or 3 dimensions).
    """
    ndim = len(source_shape)
    affine = np.asarray(source_affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError("the affine is not a finite 4x4 matrix")
    spacing = spacing_from_affine(affine, ndim)
    if min(spacing) <= 0:
        raise ValueError(f"voxel spacing {spacing} is not positive")
    codes = axis_codes_from_directions(affine[:3, :ndim] / np.array(spacing))
    transform, canon_codes = canonical_transform(codes)
    canon = canonical_affine(affine, transform, source_shape)
    spacing_canon = spacing_from_affine(canon, ndim)
    origin = tuple(float(v) for v in ras_to_canonical_world(canon_codes) @ canon[:3, 3])
    return transform, canon_codes, spacing_canon, origin
