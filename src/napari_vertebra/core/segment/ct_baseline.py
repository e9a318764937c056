"""A non-learned CT baseline: vertebral bodies from Hounsfield units, selectable like a model.

Steps (all on a working grid of at least :data:`WORKING_SPACING_MM`, labels resampled back):

1. Bone: Gaussian-smoothed HU above ``bone_hu``.
2. Solid bone: holes filled in every sagittal and coronal section, with the top and bottom of
   the field closed so that a body cut by the field is filled too. Axial sections are not
   filled: there the spinal canal is a hole as well.
3. Column: in each axial slice, the thickest solid point (largest inscribed circle) within
   ``column_window_mm`` of the patient's left-right centre; median-filtered along the spine.
4. Markers, one per vertebra: on the curved mid-sagittal section through the column, the
   sagittally filled bone, eroded by ``marker_erosion_mm``, falls apart at the discs (a disc is
   not enclosed by bone in the sagittal plane). Pieces near the column line that form a
   regularly spaced chain are the vertebrae (the pelvis and coccyx fall outside it).
5. Whole vertebrae: a watershed on the solid's distance map from the markers, within
   ``column_radius_mm`` of the column, separates neighbours at their narrowest joins (discs,
   facet joints).
6. Bodies: each vertebra's body is cut from its arch
   (:func:`~napari_vertebra.core.instances.isolate_body`) and trimmed to its endplates (the
   non-bone ends of each column along I are disc). A last vertebra much larger than the
   others is the sacrum: it is kept as label 26, one body height deep (its S1 part).
7. Merged bodies: where fatty marrow is as dark as the discs, step 4 finds one marker for
   several vertebrae. A body taller than any single one is split at its discs: the endplates
   are peaks of the median HU along the column line, and between them the short intervals are
   discs, the long ones bodies. Each body's sections are then hole-filled.

The output is an instance label map: bodies ``101, 102, …`` from head to feet, sacrum 26; the
measure step counts their levels from the sacrum. Thresholds are in HU and mm; their values
were set on the two real CTs in ``shared/data`` (see docs/segmentation.md for the Dice they
reach and where the method fails).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from ..image import SpineImage
from ..instances import isolate_body
from ..labels import SACRUM
from ..preprocess import resample

#: Finest grid the baseline works on (mm); finer CTs are resampled (speed, memory).
WORKING_SPACING_MM = 1.5
#: First label of the body instances (above every VerSe level ID, so read as anonymous).
FIRST_BODY_LABEL = 101

BASELINE_PARAMETERS = {
    # Cancellous bone of the lumbar bodies is about 100-250 HU; discs 70-100 HU after
    # smoothing; 110 HU separated both real CTs best (120 HU already lost half the bodies of
    # the 3 mm scan).
    "bone_hu": 110.0,
    "smoothing_mm": 1.0,
    "column_window_mm": 35.0,
    "column_radius_mm": 50.0,
    "marker_erosion_mm": 3.0,
    # Marker pieces smaller than this fraction of the median piece are dropped.
    "marker_min_fraction": 0.25,
    # A gap between markers larger than this multiple of the median gap ends the chain.
    "chain_gap_factor": 1.7,
    # The last vertebra is the sacrum when its volume exceeds this multiple of the median.
    "sacrum_volume_factor": 1.6,
    # A body taller than this (mm), or than 1.5 times the median of the others, holds more
    # than one vertebra: the largest lumbar bodies are about 35 mm tall.
    "merged_body_mm": 40.0,
    # Endplates: peaks of the median HU near the column line at least this prominent (HU);
    # intervals between them at most this long (mm) can be discs (lumbar discs are 8-12 mm).
    "endplate_prominence_hu": 40.0,
    "disc_max_mm": 15.0,
}


def _fill_sections(mask: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Fill holes in every 2D section across each axis in ``axes``; the I ends count as closed."""
    padded = np.pad(mask, ((1, 1), (0, 0), (0, 0)), constant_values=True)
    out = padded.copy()
    for axis in axes:
        for k in range(padded.shape[axis]):
            index = [slice(None)] * 3
            index[axis] = k
            section = tuple(index)
            out[section] |= ndimage.binary_fill_holes(padded[section])
    return out[1:-1]


def _column_centre(solid: np.ndarray, hu: np.ndarray, spacing: np.ndarray, window_mm: float):
    """Per axial slice (P, L) index of the vertebral column's body, and the thickness there."""
    nz, _, nl = solid.shape
    outline = hu > -500  # the patient (air is about -1000 HU)
    thickness = np.zeros(nz)
    centre = np.zeros((nz, 2))
    columns = np.arange(nl)
    for z in range(nz):
        distance = ndimage.distance_transform_edt(solid[z], sampling=spacing[1:])
        inside = np.nonzero(outline[z].any(axis=0))[0]
        middle = (inside.min() + inside.max()) / 2 if len(inside) else nl / 2
        near = np.abs(columns - middle) * spacing[2] <= window_mm
        distance *= near[None, :]
        row, col = np.unravel_index(np.argmax(distance), distance.shape)
        thickness[z], centre[z] = distance[row, col], (row, col)
    body_like = thickness >= 0.6 * np.percentile(thickness, 90)
    if not body_like.any():
        return centre, thickness
    slices = np.arange(nz)
    half = max(1, int(round(7.5 / spacing[0])))
    for axis in range(2):
        known = np.nonzero(body_like)[0]
        filled = np.interp(slices, known, centre[known, axis])
        centre[:, axis] = ndimage.median_filter(filled, size=2 * half + 1, mode="nearest")
    return centre, thickness


def _vertebra_markers(
    sagittal_solid: np.ndarray, centre: np.ndarray, spacing: np.ndarray, parameters: dict
) -> np.ndarray:
    """Marker label map (1, 2, … head to feet) from the curved mid-sagittal section."""
    nz, npp, nl = sagittal_solid.shape
    lateral = np.clip(np.round(centre[:, 1]).astype(int), 0, nl - 1)
    section = sagittal_solid[np.arange(nz), :, lateral]
    steps = max(1, int(round(parameters["marker_erosion_mm"] / spacing[0])))
    core = ndimage.binary_erosion(section, iterations=steps)
    pieces, count = ndimage.label(core)
    found = []
    for k in range(1, count + 1):
        rows, cols = np.nonzero(pieces == k)
        area = len(rows) * spacing[0] * spacing[1]
        # Near the column line, not the arch behind it.
        offset = np.median(np.abs(cols - centre[rows, 0])) * spacing[1]
        if offset <= 15.0:
            found.append((rows.mean(), area, rows, cols))
    found.sort(key=lambda piece: piece[0])
    if len(found) > 2:
        heights = np.array([piece[0] for piece in found])
        gaps = np.diff(heights)
        breaks = np.nonzero(gaps > parameters["chain_gap_factor"] * np.median(gaps))[0] + 1
        chains = np.split(np.arange(len(found)), breaks)
        found = [found[i] for i in max(chains, key=len)]
    if found:
        typical = np.median([piece[1] for piece in found])
        found = [p for p in found if p[1] >= parameters["marker_min_fraction"] * typical]
    markers = np.zeros(sagittal_solid.shape, np.int32)
    half = max(1, int(round(4.0 / spacing[2])))
    for value, (_, _, rows, cols) in enumerate(found, start=1):
        for row, col in zip(rows, cols, strict=True):
            lat = lateral[row]
            markers[row, col, max(0, lat - half) : lat + half + 1] = value
    return markers


def _trim_to_endplates(body: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """Drop the non-bone voxels at the cranial and caudal ends of each (P, L) column of a body.

    Filling sections closes the discs too where bone surrounds them; a disc lies beyond the
    endplate, so along I it is the non-bone stretch at a column's end. Ends at the image border
    are kept (a body cut by the field keeps its marrow up to the edge). A column with no bone
    is dropped unless columns with bone surround it (a thin endplate missed by the threshold
    in fatty marrow): it then takes the ends of the nearest column with bone.
    """
    n = body.shape[0]
    rows = np.arange(n)[:, None, None]
    bony = body & bone
    has_bone = bony.any(axis=0)
    first = np.argmax(bony, axis=0)
    last = n - 1 - np.argmax(bony[::-1], axis=0)
    first = np.where(np.argmax(body, axis=0) == 0, 0, first)
    last = np.where(n - 1 - np.argmax(body[::-1], axis=0) == n - 1, n - 1, last)
    keep = ndimage.binary_fill_holes(has_bone)
    if has_bone.any() and (keep & ~has_bone).any():
        nearest = ndimage.distance_transform_edt(
            ~has_bone, return_distances=False, return_indices=True
        )
        first, last = first[tuple(nearest)], last[tuple(nearest)]
    return body & keep & (rows >= first) & (rows <= last)


def _column_profile(hu: np.ndarray, centre: np.ndarray, spacing: np.ndarray, radius_mm: float):
    """Median HU per axial slice within ``radius_mm`` of the column line."""
    ap = (np.arange(hu.shape[1])[:, None] - centre[:, 0][:, None, None]) * spacing[1]
    lr = (np.arange(hu.shape[2])[None, :] - centre[:, 1][:, None, None]) * spacing[2]
    near = ap**2 + lr**2 <= radius_mm**2
    return np.array([np.median(hu[z][near[z]]) for z in range(hu.shape[0])])


def _disc_intervals(
    profile: np.ndarray, spacing_i: float, parameters: dict
) -> list[tuple[int, int]]:
    """Row intervals (first, last) of the discs inside a stretch of column holding several bodies.

    Endplates are the bright peaks of the profile. Between consecutive peaks, bodies and discs
    alternate; the discs are the parity with the shorter intervals (in a dark, fatty marrow a
    disc is no darker than the marrow, but it is always shorter than the bodies beside it).
    """
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(
        profile,
        prominence=parameters["endplate_prominence_hu"],
        distance=max(1, int(round(3.0 / spacing_i))),
    )
    lengths = np.diff(peaks) * spacing_i
    if len(lengths) == 0:
        return []
    if len(lengths) == 1:
        parity = 0 if lengths[0] <= parameters["disc_max_mm"] else None
    else:
        even, odd = lengths[0::2].mean(), lengths[1::2].mean()
        parity = 0 if even < odd else 1
        if min(even, odd) > 0.75 * max(even, odd):
            parity = None
    if parity is None:
        return []
    return [
        (int(peaks[k]) + 1, int(peaks[k + 1]) - 1)
        for k in range(parity, len(lengths), 2)
        if lengths[k] <= parameters["disc_max_mm"] and peaks[k + 1] - peaks[k] > 1
    ]


def _disc_cut(
    body: np.ndarray, bone: np.ndarray, disc: tuple[int, int], spacing_i: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per (P, L) column, the last row above and the first row below one disc.

    ``disc`` holds the disc's rows on the column line; a tilted or wedged disc lies higher or
    lower at the body's edge, so each column takes the non-bone run nearest to it (within
    4 mm) between the endplates.
    """
    top, bottom = disc
    margin = max(1, int(round(4.0 / spacing_i)))
    low, high = max(0, top - margin), min(body.shape[0] - 1, bottom + margin)
    above = np.full(body.shape[1:], top - 1)
    below = np.full(body.shape[1:], bottom + 1)
    window = body[low : high + 1] & ~bone[low : high + 1]
    for p, lat in zip(*np.nonzero(body[low : high + 1].any(axis=0)), strict=True):
        gaps, count = ndimage.label(window[:, p, lat])
        if count == 0:
            continue
        rows = np.arange(low, high + 1)
        overlap = [
            np.count_nonzero((gaps == k) & (rows >= top) & (rows <= bottom))
            for k in range(1, count + 1)
        ]
        best = int(np.argmax(overlap)) + 1
        if overlap[best - 1] == 0:
            continue
        run = rows[gaps == best]
        above[p, lat], below[p, lat] = run.min() - 1, run.max() + 1
    return above, below


def _split_merged_body(
    body: np.ndarray,
    bone: np.ndarray,
    profile: np.ndarray,
    spacing: np.ndarray,
    limit_mm: float,
    parameters: dict,
) -> list[np.ndarray]:
    """Split a body that holds several vertebrae at its discs; otherwise return it alone."""
    rows = np.nonzero(body.any(axis=(1, 2)))[0]
    first, last = int(rows.min()), int(rows.max())
    if (last - first + 1) * spacing[0] <= limit_mm:
        return [body]
    discs = _disc_intervals(profile[first : last + 1], spacing[0], parameters)
    if not discs:
        return [body]
    index = np.arange(body.shape[0])[:, None, None]
    pieces, start = [], np.full(body.shape[1:], first)
    for top, bottom in discs:
        above, below = _disc_cut(body, bone, (first + top, first + bottom), spacing[0])
        pieces.append(body & (index >= start) & (index <= above))
        start = below
    pieces.append(body & (index >= start))
    return [piece for piece in pieces if piece.any()]


def _fill_body(body: np.ndarray) -> np.ndarray:
    """Fill the holes of a body in every section along each axis (gaps of an unclosed shell)."""
    box = ndimage.find_objects(body.astype(np.uint8))[0]
    filled = body[box].copy()
    for axis in range(3):
        for k in range(filled.shape[axis]):
            index = [slice(None)] * 3
            index[axis] = k
            filled[tuple(index)] = ndimage.binary_fill_holes(filled[tuple(index)])
    out = body.copy()
    out[box] = filled
    return out


def _height_rows(body: np.ndarray) -> int:
    rows = np.nonzero(body.any(axis=(1, 2)))[0]
    return int(rows.max() - rows.min() + 1)


def _within_column(shape: tuple[int, ...], centre: np.ndarray, spacing: np.ndarray, radius: float):
    ap = (np.arange(shape[1])[None, :, None] - centre[:, 0][:, None, None]) * spacing[1]
    lr = (np.arange(shape[2])[None, None, :] - centre[:, 1][:, None, None]) * spacing[2]
    return ap**2 + lr**2 <= radius**2


def segment_ct_baseline(
    image: SpineImage,
    progress: Callable[[float], None] | None = None,
    parameters: dict | None = None,
) -> np.ndarray:
    """Vertebral-body instance labels of a CT volume, without any learned weights.

    Parameters
    ----------
    image
        CT in canonical axes (I, P, L) and Hounsfield units.
    progress
        Called with the fraction done.
    parameters
        Overrides of :data:`BASELINE_PARAMETERS`.

    Returns
    -------
    numpy.ndarray
        uint8 labels on the image's grid: bodies 101, 102, … head to feet, sacrum 26, else 0.
    """
    from skimage.segmentation import watershed

    settings = {**BASELINE_PARAMETERS, **(parameters or {})}
    if image.ndim != 3 or image.spacing is None:
        raise ValueError("the CT baseline needs a 3D CT with its voxel spacing")

    def report(fraction: float) -> None:
        if progress is not None:
            progress(fraction)

    volume = image.array.astype(np.float32, copy=False)
    target = tuple(max(s, WORKING_SPACING_MM) for s in image.spacing)
    mapping = None
    if any(t > s + 1e-6 for t, s in zip(target, image.spacing, strict=True)):
        volume, mapping = resample(volume, image.spacing, target, order=1)
        spacing = np.array(mapping.target_spacing)
    else:
        spacing = np.array(image.spacing, dtype=float)
    hu = ndimage.gaussian_filter(volume, settings["smoothing_mm"] / spacing)
    bone = hu > settings["bone_hu"]
    report(0.1)
    sagittal = _fill_sections(bone, (2,))
    solid = _fill_sections(bone, (1,)) | sagittal
    report(0.4)
    centre, _ = _column_centre(solid, hu, spacing, settings["column_window_mm"])
    markers = _vertebra_markers(sagittal, centre, spacing, settings)
    markers[~solid] = 0
    count = int(markers.max())
    if count == 0:
        report(1.0)
        return np.zeros(image.shape, np.uint8)
    out = np.zeros(volume.shape, np.uint8)
    region = solid & _within_column(solid.shape, centre, spacing, settings["column_radius_mm"])
    distance = ndimage.distance_transform_edt(solid, sampling=spacing)
    whole = watershed(-distance, markers, mask=region)
    report(0.7)
    volumes = ndimage.sum_labels(region, whole, index=np.arange(1, count + 1))
    is_sacrum = count >= 3 and volumes[-1] > settings["sacrum_volume_factor"] * np.median(
        volumes[:-1]
    )
    bodies, sacrum = [], None
    for value in range(1, count + 1):
        vertebra = whole == value
        if not vertebra.any():
            continue
        if value == count and is_sacrum:
            sacrum = vertebra
            continue
        body = _trim_to_endplates(isolate_body(vertebra), bone)
        if body.any():
            bodies.append(body)
    heights = [_height_rows(body) for body in bodies]
    typical = float(np.median(heights)) * spacing[0] if len(bodies) >= 3 else np.inf
    limit = min(settings["merged_body_mm"], 1.5 * typical)
    profile = _column_profile(hu, centre, spacing, radius_mm=8.0)
    bodies = [
        piece
        for body in bodies
        for piece in _split_merged_body(body, bone, profile, spacing, limit, settings)
    ]
    for number, body in enumerate(bodies):
        out[_fill_body(body) & (out == 0)] = FIRST_BODY_LABEL + number
    if sacrum is not None:
        # S1 only: one typical body height below the sacrum's top.
        rows = np.nonzero(sacrum.any(axis=(1, 2)))[0]
        heights = [_height_rows(body) for body in bodies]
        depth = int(np.median(heights)) if heights else len(rows)
        sacrum[rows.min() + depth :] = False
        out[_trim_to_endplates(isolate_body(sacrum), bone)] = SACRUM
    report(0.9)
    if mapping is not None:
        out = mapping.to_source(out, order=0)
    report(1.0)
    return out
