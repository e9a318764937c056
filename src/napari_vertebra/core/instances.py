"""Vertebral-body instances from a label map: separation, body isolation, cranio-caudal order.

Accepted label maps:
- VerSe IDs (or TotalSegmentator IDs, converted): each level ID is one instance, its label kept;
- a semantic mask (one foreground value, e.g. 1): connected components, with bodies that touch
  across a thin disc split apart;
- instance labels without level meaning (values that are not all level IDs): one instance each.
The sacrum (26) is kept apart as the level anchor. Whole-vertebra labels (body with posterior
elements, as TotalSegmentator and VerSe give them) are reduced to the body before anything is
measured (:func:`isolate_body`): by default for TotalSegmentator IDs, on request for others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, stats

from .labels import SACRUM, is_level_id, to_verse

#: Components smaller than this fraction of the median body are fragments and dropped.
FRAGMENT_FRACTION = 0.2
#: Pieces smaller than this fraction of the largest do not count towards the median body, so that
#: many specks (a noisy segmentation) cannot pull the median down to their own size. A C3 body
#: is about 7 % of an L5 body by volume, so every real body of a C–L spine still counts.
SPECK_FRACTION = 0.02
#: An anonymous piece at the image border smaller than this fraction of the median body is a
#: fragment too (at the border, larger pieces are bodies cut by the field and kept).
BORDER_SPECK_FRACTION = 0.02
#: An anonymous piece whose centroid lies farther than this many typical body diameters from
#: the line through its neighbours along the spine is not a vertebral body (a false positive in
#: an organ, a rib or the pelvis). The local line's error on a lordotic lumbar spine is under
#: 10 mm; a lumbar body is about 35 mm across.
OFF_COLUMN_DIAMETERS = 0.75
#: Pieces larger than this many typical bodies are never left out as off the column: they are
#: bodies merged across discs, or the sacrum, and when false positives outnumber the bodies (a
#: model that fails on an image) the column's own pieces could otherwise look like the outliers.
LARGE_PIECE_BODIES = 2.0
#: Neighbours on each side (along the spine) that define the local line.
COLUMN_NEIGHBOURS = 2
#: At either end of the column the line is extrapolated from one side, and a semantic mask's
#: sacrum (anonymous until levels are counted) tilts back from the lumbar line: its centroid lies
#: up to one body diameter off in radiograph phantoms. End pieces must be this much farther off.
END_OF_COLUMN_DIAMETERS = 2.0
#: A sacrum piece is the level anchor only when its gap to the nearest vertebral body is at most
#: this many typical body diameters: the true sacrum lies across the L5/S1 disc (about 10 mm, a
#: third of a body), while what a model takes for sacrum elsewhere (the CT table, contrast in the
#: rectum or bladder, the iliac bones) lies farther from every body.
SACRUM_GAP_DIAMETERS = 1.0
#: A bridge across a disc thinner than this (mm) is cut when separating touching bodies.
MAX_BRIDGE_MM = 2.0
#: A component whose cranio-caudal cross-section narrows to this share of its widest section on
#: both sides is stacked parts touching over a broad face (L5 on the sacrum at 1.4 mm slices
#: narrows to 0.51 of L5's section, the VerSe sample's whole vertebrae at their discs to
#: 0.24-0.60; a single whole vertebra of the real CTs here to 0.73 at the least); each part must
#: hold this share of the median part's voxels (a lump on a body is not a part).
WAIST_SHARE, WAIST_MIN_PART = 0.65, 0.25
#: Cores that erosion leaves of one piece are separate bodies only when they are stacked: the
#: line between their centres lies within this angle of the cranio-caudal axis (the lumbosacral
#: disc, the most tilted, turns the line between L5's and S1's centres by under 45 degrees).
#: Cores side by side are one body with a cleft, as a model's T12 at the top edge of the real
#: lumbar CT, whose halves were 23 mm apart across and 1 mm along the spine.
STACKED_MAX_ANGLE_DEG = 60.0
#: Neighbouring parts of one split component are one body again when together they hold at most
#: this share of the bodies around them (see :func:`rejoin_split_parts`).
REJOIN_SHARE = 1.0


@dataclass
class Instance:
    """One vertebral body (or the sacrum) found in a label map."""

    mask: np.ndarray
    box: tuple[slice, ...]
    label: int = 0
    is_sacrum: bool = False
    touches_border: bool = False
    centroid: np.ndarray = field(default_factory=lambda: np.zeros(3))
    size_mm: float = 0.0  # area (2D, mm²) or volume (3D, mm³)
    source_label: int = 0
    #: The connected component of an anonymous mask it was split from (-1: a given label).
    component: int = -1

    def full_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape, bool)
        out[self.box] = self.mask
        return out


def _largest_component(mask: np.ndarray) -> np.ndarray:
    components, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, components, index=np.arange(1, count + 1))
    return components == (1 + int(np.argmax(sizes)))


def sacrum_beside_column(
    sacrum: np.ndarray, bodies: np.ndarray, spacing: tuple[float, ...] | np.ndarray
) -> np.ndarray:
    """The piece of a sacrum mask that continues the column of vertebral bodies.

    Parameters
    ----------
    sacrum, bodies
        Boolean masks (canonical axes) of what was labelled sacrum and vertebral body.
    spacing
        Voxel spacing (mm).

    Returns
    -------
    numpy.ndarray
        The sacrum piece nearest to a body (pieces smaller than :data:`FRAGMENT_FRACTION`
        typical bodies are not candidates), if its gap to that body is at most
        :data:`SACRUM_GAP_DIAMETERS` typical body diameters; otherwise an empty mask. Without
        bodies the largest piece is returned (nothing to judge it by).
    """
    return column_sacrum_and_typical_body(sacrum, bodies, spacing)[0]


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """The smallest box holding every ``True`` of ``mask``, widened by ``margin`` voxels on each
    side (within the array); ``None`` for an empty mask. Work on a CT's spine is done inside
    such boxes, as the volume around it is mostly air."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=others))
        if present.size == 0:
            return None
        start = max(int(present[0]) - margin, 0)
        stop = min(int(present[-1]) + 1 + margin, mask.shape[axis])
        box.append(slice(start, stop))
    return tuple(box)


def column_sacrum_and_typical_body(
    sacrum: np.ndarray, bodies: np.ndarray, spacing: tuple[float, ...] | np.ndarray
) -> tuple[np.ndarray, float]:
    """:func:`sacrum_beside_column` and the typical body size (mm² or mm³,
    :func:`typical_body_size` of the body pieces) it judged by; 0 without bodies or without
    sacrum."""
    spacing = np.asarray(spacing, dtype=float)
    if not sacrum.any():
        return sacrum.copy(), 0.0
    # Work inside the box holding both masks: a CT is mostly air around the spine, and the
    # labelling and sums below are whole-array passes (distances never reach past the box,
    # which holds every voxel they are measured to).
    box = bounding_box(sacrum | bodies)
    chosen, typical = _sacrum_beside_column_in_box(sacrum[box], bodies[box], spacing)
    found = np.zeros_like(sacrum)
    found[box] = chosen
    return found, typical


def _sacrum_beside_column_in_box(
    sacrum: np.ndarray, bodies: np.ndarray, spacing: np.ndarray
) -> tuple[np.ndarray, float]:
    """:func:`column_sacrum_and_typical_body` on masks cropped to the box holding both."""
    body_pieces, body_count = ndimage.label(bodies)
    if body_count == 0:
        return _largest_component(sacrum), 0.0
    voxel = float(np.prod(spacing))
    body_sizes = ndimage.sum_labels(bodies, body_pieces, np.arange(1, body_count + 1)) * voxel
    typical = typical_body_size(list(body_sizes))
    pieces, count = ndimage.label(sacrum)
    column = np.isin(body_pieces, 1 + np.nonzero(body_sizes >= FRAGMENT_FRACTION * typical)[0])
    reach_mm = SACRUM_GAP_DIAMETERS * typical ** (1.0 / sacrum.ndim)
    margin = np.ceil(reach_mm / spacing).astype(int) + 1
    sizes = ndimage.sum_labels(sacrum, pieces, np.arange(1, count + 1)) * voxel
    best, best_gap = 0, np.inf
    for index, box in enumerate(ndimage.find_objects(pieces), start=1):
        if sizes[index - 1] < FRAGMENT_FRACTION * typical:
            continue
        around = tuple(
            slice(max(b.start - m, 0), min(b.stop + m, n))
            for b, m, n in zip(box, margin, sacrum.shape, strict=True)
        )
        near = column[around]
        if not near.any():
            continue
        gap = ndimage.distance_transform_edt(~near, sampling=spacing)[pieces[around] == index]
        if gap.min() < best_gap:
            best, best_gap = index, float(gap.min())
    if best_gap > reach_mm:
        return np.zeros_like(sacrum), typical
    return pieces == best, typical


def _left_out_entry(reason: str, size: float, centroid_mm: np.ndarray) -> dict:
    """One ``left_out`` entry of :func:`extract_instances` (size in mm² or mm³)."""
    return {
        "reason": reason,
        "size": round(float(size), 1),
        "centroid_mm": [round(float(c), 1) for c in centroid_mm],
    }


def _pieces_left_out(
    mask: np.ndarray, spacing: np.ndarray, origin: np.ndarray, reason: str, smallest: float
) -> list[dict]:
    """A ``left_out`` entry per piece of ``mask`` of at least ``smallest`` mm² or mm³."""
    pieces, count = ndimage.label(mask)
    if count == 0:
        return []
    # Counts by bincount and centres only of the pieces kept: a model's output can hold
    # thousands of specks, for which ndimage's per-label statistics are slow.
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)[1:] * float(np.prod(spacing))
    entries = []
    for index, box in enumerate(ndimage.find_objects(pieces), start=1):
        if sizes[index - 1] < smallest:
            continue
        voxels = np.argwhere(pieces[box] == index) + [b.start for b in box]
        entries.append(_left_out_entry(reason, sizes[index - 1], voxels.mean(0) * spacing + origin))
    return entries


def _fit_wall(rows: np.ndarray, walls: np.ndarray, outermost: bool = False) -> tuple[float, float]:
    """Wall line column = slope * row + intercept (Theil-Sen on the middle 60 % of the rows).

    The middle rows avoid rounded corners and endplate dips; Theil-Sen shrugs off a few rows
    through a facet or a bridging osteophyte. With ``outermost`` (rows known to hold body only)
    the line is moved back to the farthest row: the posterior wall is concave in its middle
    (the basivertebral foramen) and the endplate rims reach farther back, so a line through the
    middle rows would cut the posterior corners off.
    """
    low, high = np.percentile(rows, (20, 80))
    core = (rows >= low) & (rows <= high)
    if np.count_nonzero(core) < 2:
        core = np.ones_like(rows, dtype=bool)
    slope, intercept, _, _ = stats.theilslopes(walls[core], rows[core])
    if outermost:
        intercept = np.max(walls - slope * rows)
    return float(slope), float(intercept)


def _wall_from_components(sagittal: np.ndarray) -> tuple[float, float] | None:
    """Wall line when the midline section shows the body and the arch as separate pieces.

    In the midline the body and the arch are not joined (the pedicles are lateral): the body is
    the most anterior sizeable piece and its posterior edge is the wall.
    """
    pieces, count = ndimage.label(sagittal)
    if count < 2:
        return None
    index = np.arange(1, count + 1)
    sizes = ndimage.sum_labels(sagittal, pieces, index=index)
    fronts = [np.nonzero(pieces == k)[1].mean() for k in index]
    sizeable = [k for k in index if sizes[k - 1] >= 0.3 * sizes.max()]
    body = min(sizeable, key=lambda k: fronts[k - 1])
    # The arch may show as a small piece only (a thin lamina on a coarse grid); it is enough
    # that some piece lies behind the body.
    if not any(fronts[k - 1] > fronts[body - 1] for k in index if k != body):
        return None
    rows, walls = [], []
    for r in np.nonzero((pieces == body).any(axis=1))[0]:
        rows.append(r)
        walls.append(np.nonzero(pieces[r] == body)[0].max())
    if len(rows) < 3:
        return None
    # The body piece holds no arch: its farthest row is still the body.
    return _fit_wall(np.array(rows, float), np.array(walls, float), outermost=True)


def _wall_from_gaps(sagittal: np.ndarray) -> tuple[float, float] | None:
    """Wall line when the section is one piece: rows whose first run is followed by a gap.

    Rows whose first run does not start in the front third are lamina or spinous process only.
    """
    columns_used = np.nonzero(sagittal.any(axis=0))[0]
    if len(columns_used) < 3:
        return None
    front_zone = columns_used[0] + 0.3 * (columns_used[-1] - columns_used[0])
    rows, walls, front_rows, fronts = [], [], [], []
    for r in np.nonzero(sagittal.any(axis=1))[0]:
        line = sagittal[r]
        starts = np.nonzero(line & ~np.concatenate([[False], line[:-1]]))[0]
        ends = np.nonzero(line & ~np.concatenate([line[1:], [False]]))[0]
        if starts[0] <= front_zone:
            front_rows.append(r)
            fronts.append(starts[0])
            if len(starts) >= 2:
                rows.append(r)
                walls.append(ends[0])
    if len(rows) < 3:
        return None
    rows = np.array(rows, float)
    walls = np.array(walls, float)
    # The canal shows as a gap in the middle rows of a whole vertebra; the dip of a biconcave
    # endplate only near the top and bottom. No gap in the middle third: a body-only mask.
    occupied = np.nonzero(sagittal.any(axis=1))[0]
    low, high = np.percentile(occupied, (100 / 3, 200 / 3))
    if np.count_nonzero((rows >= low) & (rows <= high)) < 2:
        return None
    if len(rows) < 0.5 * len(front_rows):
        # The pedicles join body and arch over part of the height: the few rows with a gap give
        # a poor slope, so the wall is drawn parallel to the anterior wall through them.
        slope, _ = _fit_wall(np.array(front_rows, float), np.array(fronts, float))
        return slope, float(np.median(walls - slope * rows))
    return _fit_wall(rows, walls)


def isolate_body(mask: np.ndarray) -> np.ndarray:
    """The vertebral body of a whole-vertebra mask, in canonical axes (0 = I, 1 = P[, 2 = L]).

    The posterior wall is found on the mid-sagittal section (:func:`_wall_from_components`, else
    :func:`_wall_from_gaps`); the line (2D) or the plane through it across the left-right axis
    (3D) cuts off the pedicles, lamina and processes. A body-only mask has no posterior elements
    and is returned unchanged.
    """
    if mask.ndim == 3:
        # One voxel-thick midline section: a thicker slab would reach the pedicles, which join
        # the body to the arch and hide the canal.
        middle = int(round(np.median(np.nonzero(mask)[2])))
        sagittal = mask[:, :, middle]
    else:
        sagittal = mask
    wall = _wall_from_components(sagittal) if mask.ndim == 3 else None
    wall = wall or _wall_from_gaps(sagittal)
    if wall is None:
        return mask
    slope, intercept = wall
    limit = slope * np.arange(mask.shape[0])[:, None] + intercept
    keep_mask = np.arange(mask.shape[1])[None, :] <= limit + 0.5
    if mask.ndim == 3:
        keep_mask = keep_mask[:, :, None]
    body = mask & keep_mask
    return _largest_component(body) if body.any() else mask


def split_touching(mask: np.ndarray, spacing: np.ndarray) -> list[np.ndarray]:
    """Split a component into bodies: at thin bridges (≤ MAX_BRIDGE_MM) by erosion then
    constrained growth, and each part at the waists between stacked parts (:func:`_split_at_waist`).
    """
    parts = [mask]
    steps = int(np.ceil(MAX_BRIDGE_MM / 2 / spacing.min()))
    for radius in range(1, steps + 1):
        eroded = ndimage.binary_erosion(mask, iterations=radius)
        seeds, count = ndimage.label(eroded)
        if count < 2:
            continue
        sizes = ndimage.sum_labels(eroded, seeds, index=np.arange(1, count + 1))
        big = [k + 1 for k, s in enumerate(sizes) if s >= 0.3 * sizes.max()]
        if len(big) < 2 or not _stacked(seeds, big, spacing):
            continue
        markers = np.zeros(mask.shape, np.int32)
        for new, old in enumerate(big, start=1):
            markers[seeds == old] = new
        parts = _grow_cores(mask, markers, ndimage.distance_transform_edt(mask, sampling=spacing))
        break
    return [piece for part in parts for piece in _split_at_waist(part, spacing)]


def _stacked(seeds: np.ndarray, chosen: list[int], spacing: np.ndarray) -> bool:
    """Whether the ``chosen`` labels of ``seeds`` follow one another cranio-caudally, each next
    one within :data:`STACKED_MAX_ANGLE_DEG` of axis 0 from the one before."""
    centres = np.array(ndimage.center_of_mass(seeds > 0, seeds, chosen)) * spacing
    centres = centres[np.argsort(centres[:, 0])]
    steps = np.diff(centres, axis=0)
    along = steps[:, 0]
    return bool(
        np.all(along >= np.cos(np.radians(STACKED_MAX_ANGLE_DEG)) * np.linalg.norm(steps, axis=1))
    )


def _waist_rows(area: np.ndarray) -> list[int]:
    """Indices of the waists of a cross-section profile, cranial to caudal.

    The profile is cut where it falls to :data:`WAIST_SHARE` of its highest value on both sides,
    at the deepest such place first, then again within each side. A part between cuts that holds
    less than :data:`WAIST_MIN_PART` of the median part is joined to its neighbour across the
    shallower of its waists.
    """
    cuts: list[int] = []

    def cut(low: int, high: int) -> None:
        segment = area[low:high]
        if segment.size < 5:
            return
        above = np.maximum.accumulate(segment)
        below = np.maximum.accumulate(segment[::-1])[::-1]
        share = np.full(segment.shape, np.inf)
        share[1:-1] = segment[1:-1] / np.maximum(np.minimum(above[:-2], below[2:]), 1e-9)
        waist = int(np.argmin(share))
        if share[waist] > WAIST_SHARE:
            return
        cuts.append(low + waist)
        cut(low, low + waist)
        cut(low + waist + 1, high)

    cut(0, len(area))
    cuts.sort()
    while cuts:
        bounds = [0, *cuts, len(area)]
        volumes = np.array([area[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        smallest = int(np.argmin(volumes))
        if volumes[smallest] >= WAIST_MIN_PART * np.median(volumes):
            break
        sides = [i for i in (smallest - 1, smallest) if 0 <= i < len(cuts)]
        cuts.pop(max(sides, key=lambda i: area[cuts[i]]))
    return cuts


#: Directions (degrees from the cranio-caudal axis towards posterior, in the sagittal plane)
#: along which cross-section profiles of a 3D piece are searched for waists, in this order, when
#: the axial profile has none: a disc between strongly tilted bodies narrows the section only
#: along their own axis (the lumbosacral disc lies 30-45 degrees from the axial plane on the real
#: lumbar CT here, and the phantoms' sacrum turns 8-20 degrees further back than L5).
WAIST_DIRECTIONS_DEG = (0.0, 20.0, -20.0, 40.0, -40.0)


def _profile(
    mask: np.ndarray, spacing: np.ndarray, degrees: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-section profile of ``mask`` along a direction turned ``degrees`` from canonical axis
    0 towards axis 1: the voxels per step, and each voxel's step (``np.nonzero`` order).

    Along axis 0 a step is a slice. Along a turned direction a step is as long as a voxel's
    projection onto it, and each voxel is shared between the two steps nearest its centre: the
    lattice seen at an angle would otherwise fill steps unevenly, in a comb of false waists.
    """
    index = np.nonzero(mask)
    if not degrees:
        steps = index[0] - index[0].min()
        return np.bincount(steps).astype(float), steps
    angle = np.radians(degrees)
    along = index[0] * spacing[0] * np.cos(angle) + index[1] * spacing[1] * np.sin(angle)
    step = max(spacing[0] * abs(np.cos(angle)), spacing[1] * abs(np.sin(angle)))
    position = (along - along.min()) / step
    steps = np.floor(position).astype(int)
    upper = position - steps
    area = np.bincount(steps, weights=1.0 - upper, minlength=steps.max() + 2)
    area += np.bincount(steps + 1, weights=upper, minlength=steps.max() + 2)
    return area, np.round(position).astype(int)


def _split_at_waist(mask: np.ndarray, spacing: np.ndarray) -> list[np.ndarray]:
    """Split a component at the waists between parts stacked cranio-caudally (or keep it whole).

    Bodies that touch over a broad face (a tilted L5 lying on the sacrum at thick slices with no
    disc gap left, or whole vertebrae of a semantic mask touching at their joints) survive the
    thin-bridge erosion. Their cross-section along the cranio-caudal axis (canonical axis 0, or
    tilted in the sagittal plane by :data:`WAIST_DIRECTIONS_DEG` where that has no waist) still
    narrows at each disc (:func:`_waist_rows`). The core of each part between waists (its
    voxels at least half as deep inside as its deepest) seeds a watershed of the distance map,
    which meets at the narrowest contact, also where a disc is tilted. A single body has no
    waist: its cross-section rises, stays and falls, whatever its tilt or fracture.
    """
    if np.count_nonzero(mask.any(axis=tuple(range(1, mask.ndim)))) < 5:
        return [mask]
    # Radiographs keep the head-to-feet profile: along turned axes the outline of a fractured
    # or tilted 2D body can dip (4 of 240 radiograph phantoms were miscounted so).
    directions = WAIST_DIRECTIONS_DEG if mask.ndim == 3 else WAIST_DIRECTIONS_DEG[:1]
    for degrees in directions:
        area, bins = _profile(mask, spacing, degrees)
        cuts = _waist_rows(area)
        if cuts:
            break
    else:
        return [mask]
    index = np.nonzero(mask)
    distance = ndimage.distance_transform_edt(mask, sampling=spacing)
    depth = distance[index]
    markers = np.zeros(mask.shape, np.int32)
    bounds = [0, *cuts, len(area)]
    for marker, (low, high) in enumerate(zip(bounds[:-1], bounds[1:], strict=True), start=1):
        # The waist bin itself belongs to no core.
        part = (bins >= low + (marker > 1)) & (bins < high)
        if not part.any():
            continue
        core = part & (depth >= 0.5 * depth[part].max())
        markers[tuple(axis[core] for axis in index)] = marker
    return _grow_cores(mask, markers, distance)


def _grow_cores(mask: np.ndarray, markers: np.ndarray, distance: np.ndarray) -> list[np.ndarray]:
    """The parts of ``mask`` grown from the numbered cores in ``markers`` over the distance map
    (watershed: neighbouring parts meet at the narrowest contact)."""
    from skimage.segmentation import watershed

    grown = watershed(-distance, markers, mask=mask)
    parts = [grown == k for k in range(1, int(markers.max()) + 1)]
    return [p for p in parts if p.any()]


def extract_instances(
    label_map: np.ndarray,
    spacing: tuple[float, ...] | np.ndarray,
    origin: tuple[float, ...] | np.ndarray | None = None,
    scheme: str = "verse",
    whole_vertebrae: bool | None = None,
    sacrum_label: int | None = None,
    left_out: list[dict] | None = None,
) -> list[Instance]:
    """Vertebral bodies (and the sacrum) of ``label_map``, ordered cranio-caudally.

    Parameters
    ----------
    label_map
        2D or 3D integer label map in canonical axes.
    spacing, origin
        Voxel spacing (mm) and world origin.
    scheme
        ``"verse"`` or ``"totalsegmentator"`` IDs; for ``"verse"`` a map holding only 0 and one
        other value is a semantic mask and values that are not all level IDs are anonymous
        instances.
    whole_vertebrae
        Whether labels include posterior elements, which are then cut off (:func:`isolate_body`).
        Default: True for TotalSegmentator IDs (whole vertebrae), False otherwise.
    sacrum_label
        In a map of anonymous instances, the value that marks the sacrum (the CT baseline
        writes 26); level-ID maps mark it with 26 anyway.
    left_out
        If given, one entry per piece left out is appended: ``reason`` (``"fragment"``,
        ``"off_column"``, see :func:`drop_off_column`, or ``"sacrum"``, a piece labelled sacrum
        away from the column, see :func:`sacrum_beside_column`), ``size`` (mm² or mm³) and
        ``centroid_mm``.
    """
    spacing = np.asarray(spacing, dtype=float)
    origin = np.zeros(label_map.ndim) if origin is None else np.asarray(origin, dtype=float)
    values = np.unique(label_map)
    values = values[values != 0]
    semantic_one = False
    if whole_vertebrae is None:
        whole_vertebrae = scheme == "totalsegmentator"
    if scheme == "totalsegmentator":
        label_map = to_verse(label_map, scheme)
        values = np.unique(label_map)
        values = values[values != 0]
        given_levels = True
    else:
        # 1 is both C1 and the usual foreground value: several separate blobs of 1 mean a
        # semantic mask (bodies = 1, perhaps with a sacrum label), not a C1 label.
        # With a sacrum label named, 1 is the foreground of a semantic body mask.
        semantic_one = 1 in values and (
            sacrum_label is not None or ndimage.label(label_map == 1)[1] > 1
        )
        given_levels = (
            len(values) > 1 and not semantic_one and all(is_level_id(int(v)) for v in values)
        )
        given_levels = given_levels or (
            len(values) == 1 and int(values[0]) not in (1, 255) and is_level_id(int(values[0]))
        )
    # Work on each label's bounding box: a full-volume pass per label would dominate the run time.
    # (value, mask in box, box, connected component it was split from; -1 when given as a label)
    pieces: list[tuple[int, np.ndarray, tuple[slice, ...], int]] = []
    if given_levels or (len(values) > 1 and not semantic_one):
        boxes = ndimage.find_objects(label_map.astype(np.int32, copy=False))
        for value in values:
            box = boxes[int(value) - 1]
            pieces.append((int(value), _largest_component(label_map[box] == value), box, -1))
    else:
        foreground = label_map > 0
        if sacrum_label is not None and np.any(label_map == sacrum_label):
            sacrum = label_map == sacrum_label
            foreground &= ~sacrum
            anchor, typical = column_sacrum_and_typical_body(sacrum, foreground, spacing)
            if anchor.any():
                box = ndimage.find_objects(anchor.astype(np.uint8))[0]
                pieces.append((int(sacrum_label), anchor[box], box, -1))
            if left_out is not None:
                # Specks smaller than a fragment are not listed.
                smallest = FRAGMENT_FRACTION * typical
                left_out.extend(
                    _pieces_left_out(sacrum & ~anchor, spacing, origin, "sacrum", smallest)
                )
        components, count = ndimage.label(foreground)
        for k, box in enumerate(ndimage.find_objects(components), start=1):
            for part in split_touching(components[box] == k, spacing):
                pieces.append((0, part, box, k))
    instances = []
    voxel = float(np.prod(spacing))
    for value, local_mask, outer, component in pieces:
        is_sacrum = value != 0 and value == (SACRUM if given_levels else sacrum_label)
        if not is_sacrum and whole_vertebrae:
            local_mask = isolate_body(local_mask)
        inner = ndimage.find_objects(local_mask.astype(np.uint8))[0]
        box = tuple(
            slice(o.start + i.start, o.start + i.stop) for o, i in zip(outer, inner, strict=True)
        )
        local = local_mask[inner]
        index = np.argwhere(local) + np.array([b.start for b in box])
        touches = any(
            b.start == 0 or b.stop == n for b, n in zip(box, label_map.shape, strict=True)
        )
        instances.append(
            Instance(
                mask=local,
                box=box,
                label=value if given_levels else (SACRUM if is_sacrum else 0),
                is_sacrum=is_sacrum,
                touches_border=bool(touches),
                centroid=index.mean(axis=0) * spacing + origin,
                size_mm=float(local.sum() * voxel),
                source_label=value,
                component=component,
            )
        )
    instances = rejoin_split_parts(instances, label_map.shape, spacing, origin)
    bodies = [i for i in instances if not i.is_sacrum]
    if bodies:
        typical = typical_body_size([i.size_mm for i in bodies])
        # Labelled levels and bodies cut by the image border are kept (flagged later); only small
        # anonymous pieces inside the image are fragments. A speck at the border (a tip of the
        # sacrum's crest cut off by the field) is no cut body either.
        kept = [
            i
            for i in instances
            if i.is_sacrum
            or i.label
            or (i.touches_border and i.size_mm >= BORDER_SPECK_FRACTION * typical)
            or i.size_mm >= FRAGMENT_FRACTION * typical
        ]
        on_column = drop_off_column(kept, typical, label_map.ndim)
        if left_out is not None:
            for reason, before, after in (
                ("fragment", instances, kept),
                ("off_column", kept, on_column),
            ):
                left_out.extend(
                    _left_out_entry(reason, i.size_mm, i.centroid)
                    for i in before
                    if not any(i is j for j in after)
                )
        instances = on_column
    return order_craniocaudally(instances)


def rejoin_split_parts(
    instances: list[Instance],
    shape: tuple[int, ...],
    spacing: np.ndarray,
    origin: np.ndarray,
) -> list[Instance]:
    """Join again neighbouring parts of one split component that together are smaller than the
    bodies around them.

    Splitting a component at waists and thin bridges (:func:`split_touching`) assumes that one
    body has neither. A model's mask of a collapsed body can have both: on a held-out CT phantom
    the bundled CT model gave a grade 2 biconcave T11 as its cortex only, a U open at the front,
    whose two arms the waist split made two bodies and the count one level too many. Two bodies
    split apart hold about twice a neighbour's volume (a grade 3 fracture beside a normal body
    about 1.5 times); two parts of one body hold no more than one. So parts of the same
    component that follow each other along the spine are joined when together they hold at
    most :data:`REJOIN_SHARE` of the median of the :data:`COLUMN_NEIGHBOURS` nearest other
    bodies on each side. Parts at the field's edge are left apart (a body cut by the edge is
    small for another reason), and so is anything when fewer than two other bodies are in view.
    """
    instances = order_craniocaudally(list(instances))
    while True:
        best, best_share = None, REJOIN_SHARE
        bodies = [i for i in instances if not i.is_sacrum]
        for k in range(len(bodies) - 1):
            first, second = bodies[k], bodies[k + 1]
            if (
                first.component < 0
                or first.component != second.component
                or first.touches_border
                or second.touches_border
            ):
                continue
            around = (
                bodies[max(k - COLUMN_NEIGHBOURS, 0) : k]
                + bodies[k + 2 : k + 2 + COLUMN_NEIGHBOURS]
            )
            if len(around) < 2:
                continue
            share = (first.size_mm + second.size_mm) / np.median([i.size_mm for i in around])
            if share <= best_share:
                best, best_share = (first, second), share
        if best is None:
            return instances
        joined = _joined(*best, shape, spacing, origin)
        instances = order_craniocaudally(
            [i for i in instances if i is not best[0] and i is not best[1]] + [joined]
        )


def _joined(
    first: Instance,
    second: Instance,
    shape: tuple[int, ...],
    spacing: np.ndarray,
    origin: np.ndarray,
) -> Instance:
    """One instance made of two (their masks joined in the box around both)."""
    box = tuple(
        slice(min(a.start, b.start), max(a.stop, b.stop))
        for a, b in zip(first.box, second.box, strict=True)
    )
    mask = np.zeros(tuple(s.stop - s.start for s in box), bool)
    for part in (first, second):
        local = tuple(
            slice(p.start - b.start, p.stop - b.start) for p, b in zip(part.box, box, strict=True)
        )
        mask[local] |= part.mask
    index = np.argwhere(mask) + np.array([b.start for b in box])
    return Instance(
        mask=mask,
        box=box,
        label=first.label,
        is_sacrum=False,
        touches_border=any(b.start == 0 or b.stop == n for b, n in zip(box, shape, strict=True)),
        centroid=index.mean(axis=0) * spacing + origin,
        size_mm=first.size_mm + second.size_mm,
        source_label=first.source_label,
        component=first.component,
    )


def _line_at(t: np.ndarray, positions: np.ndarray, at: float, diameter: float) -> np.ndarray:
    """Where the straight line fitted to ``positions`` over ``t`` is at ``at``; their mean when
    the points lie at nearly the same height (no direction to extrapolate)."""
    if np.ptp(t) < 0.25 * diameter:
        return positions.mean(axis=0)
    design = np.stack([np.ones_like(t), t], axis=1)
    coefficients = np.linalg.lstsq(design, positions, rcond=None)[0]
    return coefficients[0] + coefficients[1] * at


def typical_body_size(sizes: list[float]) -> float:
    """Median size of the pieces that are at least :data:`SPECK_FRACTION` of the largest."""
    sizes_array = np.asarray(sizes, dtype=float)
    return float(np.median(sizes_array[sizes_array >= SPECK_FRACTION * sizes_array.max()]))


def drop_off_column(instances: list[Instance], typical: float, ndim: int) -> list[Instance]:
    """Leave out anonymous pieces that lie off the spinal column.

    The spine runs head to feet (canonical axis 0); each anonymous piece is compared with the
    straight line fitted through the centroids of its :data:`COLUMN_NEIGHBOURS` nearest pieces
    above and below it, and with the lines through those above alone and below alone (it is
    off the column only when it is off all of them). The piece farthest off goes first if it is
    farther than
    :data:`OFF_COLUMN_DIAMETERS` typical body diameters (:data:`END_OF_COLUMN_DIAMETERS` for the
    first and the last piece, whose line is extrapolated), and the test is repeated without it.
    Labelled levels, the sacrum and pieces larger than :data:`LARGE_PIECE_BODIES` typical bodies
    are never dropped; fewer than four pieces are left as they are (no line to compare with).
    """
    diameter = typical ** (1.0 / ndim)
    kept = list(instances)
    while True:
        candidates = [i for i in kept if not i.is_sacrum]
        if len(candidates) < 4:
            return kept
        # Canonical axis 0 runs head -> feet: the position along the spine. Not the main axis of
        # the centroids, which body-sized false positives beside the column can turn sideways.
        centroids = np.array([i.centroid for i in candidates])
        along, across = centroids[:, 0], centroids[:, 1:]
        # A large piece (an unmarked sacrum with its alae, bodies run together) is kept but
        # does not draw the line: the sacrum's centroid lies well behind the lumbar column's.
        large = [i.size_mm > LARGE_PIECE_BODIES * typical for i in candidates]
        worst, worst_excess = None, 1.0
        for k, instance in enumerate(candidates):
            if instance.label or large[k]:
                continue
            others = [j for j in np.argsort(np.abs(along - along[k])) if j != k and not large[j]]
            cranial = [j for j in others if along[j] < along[k]][:COLUMN_NEIGHBOURS]
            caudal = [j for j in others if along[j] >= along[k]][:COLUMN_NEIGHBOURS]
            if len(cranial + caudal) < 2:
                continue
            # Off the column means off every line its neighbours draw: through both sides, and
            # (with two on that side) from either side alone, so that a false positive next to
            # an end of the column cannot bend the line of the body beside it away from it.
            lines = [cranial + caudal]
            if cranial and caudal:
                lines += [side for side in (cranial, caudal) if len(side) >= 2]
            distance = min(
                float(np.linalg.norm(across[k] - _line_at(along[n], across[n], along[k], diameter)))
                for n in lines
            )
            at_end = not cranial or not caudal
            tolerance = (END_OF_COLUMN_DIAMETERS if at_end else OFF_COLUMN_DIAMETERS) * diameter
            if distance / tolerance > worst_excess:
                worst, worst_excess = instance, distance / tolerance
        if worst is None:
            return kept
        kept = [i for i in kept if i is not worst]


def order_craniocaudally(instances: list[Instance]) -> list[Instance]:
    """Sort instances head to feet along the spine's main axis (pointing inferior, axis 0)."""
    if len(instances) < 2:
        return instances
    centroids = np.array([i.centroid for i in instances])
    centered = centroids - centroids.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    axis = vt[0] if vt[0][0] >= 0 else -vt[0]
    return sorted(instances, key=lambda i: float(i.centroid @ axis))


def spine_directions(centroids: list[np.ndarray]) -> list[np.ndarray | None]:
    """Local caudal direction of the spine at each body from its neighbours' centroids.

    Central difference between the bodies above and below (one-sided at the ends); ``None`` for a
    lone body. Bodies are in cranio-caudal order; directions point caudal.
    """
    n = len(centroids)
    if n < 2:
        return [None] * n
    points = np.asarray(centroids, dtype=float)
    out = []
    for k in range(n):
        step = points[min(k + 1, n - 1)] - points[max(k - 1, 0)]
        out.append(step / np.linalg.norm(step))
    return out
