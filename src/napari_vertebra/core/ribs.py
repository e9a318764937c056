"""Which vertebral bodies of a CT carry ribs: the lowest that does is T12, a count anchor.

Radiologists who cannot count from C2 or from the sacrum count from the ribs: the twelfth
(lowest) rib pair articulates with T12, and the first vertebra below it without ribs is L1. The
known pitfalls are a hypoplastic twelfth rib, a lumbar rib on L1, and 11 or 13 rib pairs; where
the sacrum is in view as well, the two counts are compared (see :mod:`.levels`).

How ribs are found (canonical axes I, P, L; HU): bone (above :data:`BONE_HU`) more than a
clearance to the side of the spine's centre line, so that the vertebrae with their transverse
processes are left out, falls into pieces; a rib is a piece that reaches at least
:data:`RIB_REACH_MM` beyond the clearance, or :data:`CUT_RIB_REACH_MM` where the image's side
edge cuts it (a spine CT's field). Where such a piece crosses into the clearance band
(its root) it must lie behind the body's centre, as rib necks do (but not as far back as the
CT table, :data:`MAX_BEHIND_MM`), and be less tall than a
vertebral body: an iliac wing, also lateral and reaching far, is taller. The root belongs to the
body whose centre is nearest along the spine's local axis; near the spine a rib is still at its
own level (further out the lower ribs descend, the twelfth by about 10 mm over 12 mm on the real
lumbar CT of ``../shared/data``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .instances import Instance, spine_directions

#: Voxel size (mm) the search is made at: finer CTs are searched on every n-th voxel.
SEARCH_VOXEL_MM = 1.4
#: Rib bone, cortex and cancellous, on CT; marrow fat, muscle and unenhanced organs are below.
BONE_HU = 150.0
#: The clearance from the spine's centre line is this fraction of the median body width: wider
#: than the lumbar transverse processes' bases, narrow enough that a rib is still at its own
#: level (0.8 x 57 mm = 45 mm on the real lumbar CT, where the twelfth ribs' roots lie in T12).
CLEARANCE_WIDTH_FACTOR = 0.8
#: The clearance is never less than this (small or cut bodies).
MIN_CLEARANCE_MM = 30.0
#: A rib goes on this far beyond the clearance; a transverse process tip that pokes through it
#: does not (the longest, L3's, ends about 50 mm from the midline in adults).
RIB_REACH_MM = 30.0
#: A piece that leaves the image at its left or right edge is a rib when it gets this far beyond
#: the clearance first: a spine CT's field (130-220 mm across) cuts them 15-75 mm beyond it,
#: and a lumbar transverse process ends about 10 mm beyond it.
CUT_RIB_REACH_MM = 20.0
#: Width of the band beyond the clearance whose pieces are the roots.
ROOT_BAND_MM = 10.0
#: A root smaller than this is a speck: a rib at least 6 mm thick crossing the 10 mm band fills
#: about 280 mm³ (roots of real and phantom ribs: 400-1200 mm³).
MIN_ROOT_MM3 = 150.0
#: Of the roots of one piece, those under this share of its largest root's volume are crossings
#: of a rib further down, not ribs (216-240 mm³ against 1318 mm³ in a CT phantom).
SAME_PIECE_ROOT_SHARE = 0.5
#: A rib's neck lies at most this far behind the body's centre (15-55 mm in CT phantoms, 33-39 mm
#: on the real lumbar CT); bone further back is the CT table or the back's surface (90-150 mm
#: behind in trunk phantoms).
MAX_BEHIND_MM = 75.0
#: A root at most this fraction of the median body height tall: rib roots are 12-18 mm tall on the
#: real lumbar CT (bodies 34.5 mm), the iliac wings' 24-30 mm.
ROOT_HEIGHT_FACTOR = 0.75


@dataclass
class RibVotes:
    """Which bodies carry ribs, as :func:`rib_bearing` found them."""

    #: Per body: ribs attach (``True``), none do (``False``), the image cannot tell (``None``).
    bodies: list[bool | None]
    #: A rib's root lies whole in the image above the first body, nearest the vertebra above
    #: it (out of view): that vertebra carries ribs.
    above_first: bool = False


def rib_bearing(
    hu: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    bodies: Sequence[Instance],
) -> RibVotes:
    """For each body, whether ribs attach to it (``None``: the field of view cannot tell).

    Parameters
    ----------
    hu
        CT volume in canonical axes (I, P, L), Hounsfield units.
    spacing, origin
        Voxel spacing (mm) and world origin of ``hu`` (and of the bodies' masks).
    bodies
        Vertebral bodies (and the sacrum, if one was found) on the grid of ``hu``, ordered
        cranio-caudally, as :func:`~napari_vertebra.core.instances.extract_instances` gives
        them; a root nearest the sacrum is an iliac wing's, and the sacrum votes like a body.

    Returns
    -------
    RibVotes
        ``bodies``: ``True`` where a rib's root lies nearest this body; ``False`` where none
        does although the field of view reaches a rib's length beside the body on at least one
        side. ``above_first``: a root lies above the first body, nearest the vertebra above it
        (a twelfth rib above L1 when T12 is out of view), whole in the image.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3 or not bodies:
        return RibVotes([None] * len(bodies))
    spacing = np.asarray(spacing, float)
    origin = np.asarray(origin, float)
    widths = [np.count_nonzero(b.mask.any(axis=(0, 1))) * spacing[2] for b in bodies]
    heights = [b.mask.shape[0] * spacing[0] for b in bodies]
    # Ribs are 6 mm thick or more: voxels of about SEARCH_VOXEL_MM are enough, and a fine CT is
    # searched on every 2nd or 3rd voxel (a quarter of the memory at 0.7 mm in-plane).
    stride = np.maximum(1, np.round(SEARCH_VOXEL_MM / spacing)).astype(int)
    hu = hu[:: stride[0], :: stride[1], :: stride[2]]
    spacing = spacing * stride
    rows = [slice(b.box[0].start // stride[0], -(-b.box[0].stop // stride[0])) for b in bodies]
    centres = np.array([(b.centroid - origin) / spacing for b in bodies])
    clearance = max(MIN_CLEARANCE_MM, CLEARANCE_WIDTH_FACTOR * float(np.median(widths)))
    typical_height = float(np.median(heights))

    # The spine's centre line (index coordinates) at every axial slice.
    order = np.argsort(centres[:, 0])
    slices = np.arange(hu.shape[0])
    centre_p = np.interp(slices, centres[order, 0], centres[order, 1])
    centre_l = np.interp(slices, centres[order, 0], centres[order, 2])
    columns = np.arange(hu.shape[2])
    lateral = np.abs(columns[None, :] - centre_l[:, None]) * spacing[2]  # (I, L), mm

    # The bodies' head-to-feet range matters (a rib's root lies beside its body), and a body's
    # step above the first, where the vertebra above it would be.
    step = float(np.median(np.diff(np.sort(centres[:, 0])))) if len(bodies) > 1 else 0.0
    top = max(0, int(np.floor(min(r.start for r in rows) - step)))
    bottom = min(hu.shape[0], max(r.stop for r in rows))
    outside = lateral[top:bottom, None, :] > clearance
    bone = (hu[top:bottom] > BONE_HU) & outside
    pieces, count = ndimage.label(bone, structure=np.ones((3, 3, 3), bool))
    # How far each piece reaches from the centre line (by bone voxel, not by sorting a volume).
    at = np.nonzero(bone)
    reach = np.zeros(count + 1)
    np.maximum.at(reach, pieces[at], lateral[at[0] + top, at[2]])
    # A piece the image's left or right edge cuts may go on out of view.
    cut = np.zeros(count + 1, bool)
    cut[np.unique(pieces[:, :, [0, -1]])] = True
    long_enough = (reach >= clearance + RIB_REACH_MM) | (
        cut & (reach >= clearance + CUT_RIB_REACH_MM)
    )
    long_enough = long_enough[1:]
    band = bone & (lateral[top:bottom, None, :] <= clearance + ROOT_BAND_MM)
    roots, _ = ndimage.label(band, structure=np.ones((3, 3, 3), bool))
    voxel = float(np.prod(spacing))
    # (piece, root volume in mm³, root's medial point in world mm, whole in the image)
    candidates = []
    for k, box in enumerate(ndimage.find_objects(roots), start=1):
        if box is None:
            continue
        root = roots[box] == k
        piece = int(pieces[box][root][0])
        if not long_enough[piece - 1]:
            continue
        index = np.argwhere(root) + np.array([s.start for s in box])
        index[:, 0] += top
        if len(index) * voxel < MIN_ROOT_MM3:
            continue
        if (np.ptp(index[:, 0]) + 1) * spacing[0] > ROOT_HEIGHT_FACTOR * typical_height:
            continue  # as tall as a body: an iliac wing, not a rib
        distance = lateral[index[:, 0], index[:, 2]]
        medial = index[distance <= distance.min() + spacing[2]]
        level_slice = float(medial[:, 0].mean())
        behind = (medial[:, 1].mean() - np.interp(level_slice, slices, centre_p)) * spacing[1]
        if not 0 < behind <= MAX_BEHIND_MM:
            continue  # rib necks run behind the body's centre, not as far as the table
        whole = bool(index[:, 0].min() > 0)
        candidates.append(
            (piece, len(index) * voxel, medial.mean(axis=0) * spacing + origin, whole)
        )
    # Entry 0 is the vertebra above the first body, one step up the spine (out of view).
    centroids = [b.centroid for b in bodies]
    axes = spine_directions(centroids)
    above = None
    if len(bodies) > 1:
        above = centroids[0] - axes[0] * np.linalg.norm(centroids[1] - centroids[0])
    centroids, axes = [above, *centroids], [axes[0], *axes]
    found = [False] * len(centroids)
    largest: dict[int, float] = {}
    for piece, volume, _, _ in candidates:
        largest[piece] = max(volume, largest.get(piece, 0.0))
    for piece, volume, point, whole in candidates:
        # A rib has one root; a piece that crosses the band again further down (a descending
        # rib, bone touching it) keeps only roots of a rib's size.
        if volume < SAME_PIECE_ROOT_SHARE * largest[piece]:
            continue
        nearest = _nearest_along_spine(point, centroids, axes)
        if nearest > 0 or whole:
            found[nearest] = True
    seen = _rib_zone_in_view(rows, lateral, clearance)
    votes = [True if f else (False if s else None) for f, s in zip(found[1:], seen, strict=True)]
    return RibVotes(_without_pelvis(votes), above_first=found[0])


def _without_pelvis(votes: list[bool | None]) -> list[bool | None]:
    """Votes with "ribs" on the last two pieces withdrawn when two rib-free bodies lie above
    them: ribs end at T12 (T13), so bone there is an iliac wing beside L4-L5 whose root passed
    the tests above (a low, short piece of the crest)."""
    out = list(votes)
    for k in range(max(0, len(out) - 2), len(out)):
        if out[k] and sum(v is False for v in out[:k]) >= 2:
            out[k] = None
    return out


def _nearest_along_spine(point: np.ndarray, centroids, axes) -> int:
    """Index of the centroid nearest ``point`` (world mm) along the spine's local axis (``None``
    entries are skipped): a rib's root lies beside and behind its body, so in a kyphotic or
    lordotic segment its head-to-feet coordinate alone would point a level off (by up to 13 mm
    in CT phantoms)."""
    offsets = []
    for centroid, axis in zip(centroids, axes, strict=True):
        if centroid is None:
            offsets.append(np.inf)
            continue
        step = point - centroid
        offsets.append(abs(float(step @ axis)) if axis is not None else abs(float(step[0])))
    return int(np.argmin(offsets))


def _rib_zone_in_view(rows, lateral: np.ndarray, clearance: float) -> list[bool]:
    """Whether, beside each body (its ``rows`` of axial slices), the image reaches far enough
    past the clearance to tell a rib (:data:`CUT_RIB_REACH_MM`, where a rib leaving the image is
    seen), and the body is whole head to feet: the rib of a body cut by the field's first or
    last slice may run out of view (the twelfth ribs of the real T11-T12 DICOM series leave it
    50 mm from the midline)."""
    needed = clearance + CUT_RIB_REACH_MM
    out = []
    for body_rows in rows:
        # Distance to the image's edge on each side, from the lateral distance of the edge columns.
        edges = lateral[body_rows]
        whole = body_rows.start > 0 and body_rows.stop < lateral.shape[0]
        out.append(whole and bool(max(edges[:, 0].min(), edges[:, -1].min()) >= needed))
    return out
