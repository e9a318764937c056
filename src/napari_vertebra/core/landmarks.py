"""Six endplate landmarks and three heights of one vertebral body, in 2D and 3D.

Method
------
2D: the body outline is the 0.5 iso-contour of the mask (sub-pixel, unbiased for straight edges).
In a body frame (x along ``e_ap`` posterior, y along ``e_cc`` caudal, origin at the centroid), the
anterior and posterior walls are the median x of the outline points near each wall, and each
endplate is a quadratic ``y(x)`` fitted to the outline between the walls, away from the rounded
corners. The frame is rotated until the two endplates are symmetric (their mean slope is zero), so
that heights are measured along the body's own cranio-caudal axis whatever the tilt of the spine.
Landmarks are the endplate points at the anterior end, the middle and the posterior end of each
endplate — its corner, which is at the wall unless the wall leans — never beyond the outline; each
height is the distance between an upper and a lower landmark (the six-point placement of
quantitative morphometry, Genant et al. 1993, seed 002).

3D: the body's cranio-caudal axis starts from the local direction of the spine (or the dominant
direction of the surface normals), the longest axis of the cross-section is left-right; the
slightly smoothed mask is resampled on planes parallel to
the body's mid-sagittal plane near its centroid, and the 2D method runs on each: they give the
body's frame, walls and endplate ends, averaged onto the mid-sagittal plane. Each endplate is then
fitted as a surface over the central half of the width and cut by the mid-sagittal plane.
Rotation, tilt and scoliosis therefore do not bias the heights, and the surface reduces the
quantisation error of thick slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours

LANDMARK_NAMES = (
    "upper_anterior",
    "upper_middle",
    "upper_posterior",
    "lower_anterior",
    "lower_middle",
    "lower_posterior",
)
#: Positions (fraction of the depth, anterior to posterior) of the stored height profile.
PROFILE_FRACTIONS = np.linspace(0.0, 1.0, 21)
#: Outline points closer than this to a wall (mm) are corner rounding, not endplate.
CORNER_MARGIN_MM = 1.5
#: Outline points farther than this fraction of the body's height from the straight line through
#: an endplate's middle are wall, not endplate: where they reach farther in than the corner
#: margin, the wall leans and the corner landmark goes to the endplate's own end.
LEANING_WALL_DROP = 0.1
#: A corner landmark reaches at most this many pixels (voxels in 3D) beyond the outline.
OUTLINE_TOLERANCE_VOXELS = 0.25
#: The frame stops turning when the endplates' mean slope is below this angle (radians): 0.01°
#: moves a wall of a 40 mm deep body by less than 0.01 mm.
FRAME_TOLERANCE_RAD = 2e-4
#: Resampling step on the 3D mid-sagittal plane, as a fraction of the smallest voxel spacing.
PLANE_STEP_FRACTION = 0.5
#: 3D: parallel sagittal planes measured, spread over ± this fraction of the body's width.
PLANE_COUNT, PLANE_SPREAD = 9, 0.08
#: 3D: Gaussian anti-aliasing of the mask before sampling the planes (voxels).
SMOOTHING_VOXELS = 0.6
#: 3D: the endplate surfaces are fitted over this fraction of the body's width, centred on the
#: mid-sagittal plane, in columns this far apart (mm; at least half the coarsest voxel).
SURFACE_BAND, SURFACE_MIN_STEP_MM = 0.5, 1.0
#: 3D: each column is searched for the endplate within ± this fraction of the body's height
#: (plus two voxels) of the central plane's fit.
SURFACE_WINDOW_FRACTION = 0.2
#: 3D: fewer endplate columns than this, and the central plane's fit is used instead.
SURFACE_MIN_COLUMNS = 24
#: 3D: smoothing (in coarsest voxels) of the mask whose surface normals give the body axes.
AXIS_SMOOTHING_VOXELS = 1.0


@dataclass
class BodyGeometry:
    """Landmarks (world mm, canonical axes), heights (mm) and the body frame."""

    landmarks: dict[str, np.ndarray]
    anterior_height_mm: float
    middle_height_mm: float
    posterior_height_mm: float
    center: np.ndarray
    e_cc: np.ndarray
    e_ap: np.ndarray
    depth_mm: float
    fit_residual_mm: float
    #: Height (mm) at :data:`PROFILE_FRACTIONS` of the depth, anterior wall (0) to posterior (1).
    height_profile: np.ndarray = field(
        default_factory=lambda: np.full(len(PROFILE_FRACTIONS), np.nan)
    )

    def height_at(self, fraction: float) -> float:
        """Height (mm) at ``fraction`` of the depth, anterior wall (0) to posterior wall (1)."""
        return float(np.interp(fraction, PROFILE_FRACTIONS, self.height_profile))

    def endplate_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Anterior → posterior vectors along the upper and the lower endplate."""
        marks = self.landmarks
        return (
            marks["upper_posterior"] - marks["upper_anterior"],
            marks["lower_posterior"] - marks["lower_anterior"],
        )


def _rotate(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _outline(image: np.ndarray, spacing: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """World coordinates (n, 2) of the longest 0.5 iso-contour of a 2D mask or fraction image."""
    padded = np.pad(image.astype(np.float32), 1)
    contours = find_contours(padded, 0.5)
    if not contours:
        raise ValueError("the body mask is empty")
    longest = max(contours, key=len) - 1.0
    return longest * spacing + origin


def profile_landmarks(
    image: np.ndarray,
    spacing: tuple[float, float] | np.ndarray,
    origin: tuple[float, float] | np.ndarray = (0.0, 0.0),
    e_cc: np.ndarray | None = None,
    iterations: int = 30,
    corner_margin_mm: float = CORNER_MARGIN_MM,
    outline_tolerance_mm: float | None = None,
) -> BodyGeometry:
    """Landmarks of a body from a 2D mask (or a fraction image in [0, 1]) in canonical (I, P) axes.

    Parameters
    ----------
    image
        2D mask of one body (bool) or its partial-volume fraction (float).
    spacing, origin
        Pixel spacing and world position (mm) of pixel (0, 0).
    e_cc
        Starting guess of the body's caudal direction (world, unit); default straight down.
    corner_margin_mm
        Outline points this close to a wall are corner rounding and left out of the endplate fits
        (at least 6 % of the depth); give about 1.5 voxels for coarse images.
    outline_tolerance_mm
        How far an endplate extrapolated to a wall may reach beyond the outline's extent at that
        corner (default :data:`OUTLINE_TOLERANCE_VOXELS` pixels); farther, the corner landmark is
        put on the outline.
    """
    spacing = np.asarray(spacing, dtype=float)
    if outline_tolerance_mm is None:
        outline_tolerance_mm = OUTLINE_TOLERANCE_VOXELS * float(spacing.max())
    plane = _fit_plane(image, spacing, origin, e_cc, iterations, corner_margin_mm)
    return _geometry(plane.fit, plane.center, plane.e_cc, plane.e_ap, outline_tolerance_mm)


@dataclass
class _PlaneFit:
    """The endplate fit of one 2D profile, in its own frame (origin at ``center``)."""

    fit: dict
    center: np.ndarray
    e_cc: np.ndarray
    e_ap: np.ndarray


def _fit_plane(
    image: np.ndarray,
    spacing: np.ndarray,
    origin: np.ndarray | tuple[float, float],
    e_cc: np.ndarray | None,
    iterations: int,
    corner_margin_mm: float,
) -> _PlaneFit:
    """Outline, walls and endplates of a 2D profile, the frame turned until they are symmetric."""
    origin = np.asarray(origin, dtype=float)
    outline = _outline(image, spacing, origin)
    weights = np.asarray(image, dtype=float)
    index = np.argwhere(weights > 0)
    center = (index * spacing + origin).T @ weights[weights > 0] / weights[weights > 0].sum()
    e_cc = np.array([1.0, 0.0]) if e_cc is None else np.asarray(e_cc, float) / np.linalg.norm(e_cc)
    converged = False
    for _ in range(iterations):
        e_ap = np.array([-e_cc[1], e_cc[0]])
        if e_ap[1] < 0:  # posterior is +axis 1
            e_ap = -e_ap
        fit = _fit_profile(outline - center, e_cc, e_ap, corner_margin_mm)
        # Rotate the frame so that the endplates become symmetric about the x axis.
        angle = np.arctan(0.5 * (fit["top"]["slope"] + fit["bottom"]["slope"]))
        if abs(angle) < FRAME_TOLERANCE_RAD:
            converged = True
            break
        e_cc = _rotate(e_cc, -angle if _is_right_handed(e_cc, e_ap) else angle)
    if not converged:
        e_ap = np.array([-e_cc[1], e_cc[0]])
        if e_ap[1] < 0:
            e_ap = -e_ap
        fit = _fit_profile(outline - center, e_cc, e_ap, corner_margin_mm)
    return _PlaneFit(fit, center, e_cc, e_ap)


def _is_right_handed(e_cc: np.ndarray, e_ap: np.ndarray) -> bool:
    return e_cc[0] * e_ap[1] - e_cc[1] * e_ap[0] > 0


def _fit_profile(
    points: np.ndarray,
    e_cc: np.ndarray,
    e_ap: np.ndarray,
    corner_margin_mm: float = CORNER_MARGIN_MM,
) -> dict:
    x, y = points @ e_ap, points @ e_cc
    height = np.ptp(y)
    core = np.abs(y - np.median(y)) < 0.3 * height
    x_front = x[core & (x < np.percentile(x, 50))]
    x_back = x[core & (x > np.percentile(x, 50))]
    x_a = float(np.median(x_front[x_front < x_front.min() + 1.0])) if x_front.size else x.min()
    x_p = float(np.median(x_back[x_back > x_back.max() - 1.0])) if x_back.size else x.max()
    margin = max(corner_margin_mm, 0.06 * (x_p - x_a))
    width = (x_p - x_a) / 50
    plates, residuals = {}, []
    for side, sign in (("top", 1.0), ("bottom", -1.0)):
        front, back = _endplate_ends(x, sign * y, x_a, x_p, width, margin)
        inner = (x > front + margin) & (x < back - margin)
        if np.count_nonzero(inner) < 8:
            raise ValueError("too few endplate points to fit (body too small or not convex)")
        select = _envelope(x, sign * y, inner, width)
        if np.count_nonzero(select) < 4:
            raise ValueError("too few endplate points to fit (body too small or not convex)")
        coeffs = np.polyfit(x[select], y[select], 2)
        residuals.append(np.sqrt(np.mean((np.polyval(coeffs, x[select]) - y[select]) ** 2)))
        near_front, near_back = x <= front + margin, x >= back - margin
        extreme = np.min if sign > 0 else np.max
        plates[side] = {
            "sign": sign,
            "coeffs": coeffs,
            "range": (float(x[inner].min()), float(x[inner].max())),
            "front": front,
            "back": back,
            # How far the outline reaches (cranially for the top, caudally for the bottom)
            # near each end of the endplate.
            "extent_front": float(extreme(y[near_front])),
            "extent_back": float(extreme(y[near_back])),
            "slope": _central_slope(x, y, select, 0.5 * (x_a + x_p), x_p - x_a),
        }
    return {
        "x_a": x_a,
        "x_m": 0.5 * (x_a + x_p),
        "x_p": x_p,
        "top": plates["top"],
        "bottom": plates["bottom"],
        "residual": float(max(residuals)),
        "height": float(height),
    }


def _endplate_ends(
    x: np.ndarray, y: np.ndarray, x_a: float, x_p: float, width: float, margin: float
) -> tuple[float, float]:
    """Where one endplate ends at the front and at the back: the walls, or a leaning wall's corner.

    ``y`` is oriented so that the endplate is the outline's lower envelope (pass ``-y`` for the
    lower endplate). From each wall inwards, the endplate starts at the first place where the
    envelope comes within :data:`LEANING_WALL_DROP` of the body's height of the straight line
    through the endplate's central 60 %. A rounded corner gets there within ``margin`` of the
    wall, and the endplate then ends at the wall; a wall that leans (as the anterior wall of L5
    often does, or the outline of a body cut obliquely) puts the corner farther in.
    """
    width = max(width, 1e-6)
    span = (x >= x_a) & (x <= x_p)
    bins = np.clip(np.floor((x[span] - x_a) / width).astype(int), 0, None)
    size = int(bins.max()) + 1 if bins.size else 0
    if size < 5:
        return x_a, x_p
    envelope = np.full(size, np.inf)
    np.minimum.at(envelope, bins, y[span])
    filled = np.isfinite(envelope)
    centers = x_a + (np.arange(size) + 0.5) * width
    envelope = np.interp(centers, centers[filled], envelope[filled])
    central = np.abs(centers - 0.5 * (x_a + x_p)) <= 0.3 * (x_p - x_a)
    line = np.polyval(np.polyfit(centers[central], envelope[central], 1), centers)
    on_plate = np.nonzero(envelope - line <= LEANING_WALL_DROP * float(np.ptp(y)))[0]
    if not on_plate.size:
        return x_a, x_p
    front, back = float(centers[on_plate[0]]), float(centers[on_plate[-1]])
    front = x_a if front - x_a < margin else front
    back = x_p if x_p - back < margin else back
    return front, back


def _envelope(x: np.ndarray, y: np.ndarray, inner: np.ndarray, width: float) -> np.ndarray:
    """Outline points on the lower envelope (smallest ``y``) in bins of ``width`` along x.

    A line across the body meets the outline at the upper endplate first and the lower one last;
    taking the envelopes (rather than splitting at mid-height) keeps points of a leaning wall
    (the posterior wall of a tilted L5, say) out of the endplate fits.
    """
    width = max(width, 1e-6)
    bins = np.clip(np.floor((x - x[inner].min()) / width).astype(int), 0, None)
    size = int(bins[inner].max()) + 1
    low = np.full(size, np.inf)
    high = np.full(size, -np.inf)
    np.minimum.at(low, bins[inner], y[inner])
    np.maximum.at(high, bins[inner], y[inner])
    safe = np.clip(bins, 0, size - 1)
    # A bin that holds one point only (sparse outlines) is on both envelopes: left out.
    return inner & (y <= low[safe] + width) & ~(y >= high[safe] - width)


def _central_slope(
    x: np.ndarray, y: np.ndarray, select: np.ndarray, x_m: float, depth: float
) -> float:
    """Slope of a straight line through the central 60 % of an endplate.

    Used to turn the frame: in a tilted frame, points near the corners belong partly to the walls
    and would pull a fit over the whole endplate towards the current frame.
    """
    central = select & (np.abs(x - x_m) < 0.3 * depth)
    if np.count_nonzero(central) < 3:
        central = select
    return float(np.polyfit(x[central], y[central], 1)[0])


def _endplate_at(plate: dict, x: float, tolerance: float = 0.0) -> float:
    """Endplate position at ``x``: the quadratic inside the fitted range, its tangent beyond.

    Continuing along the tangent (rather than the parabola) over the corner margin keeps coarse
    images, where that margin spans several millimetres, from overshooting at the walls; and near
    an end of the endplate the position never reaches beyond the outline there by more than
    ``tolerance`` (a coarse quadratic would put a corner landmark outside the body).
    """
    low, high = plate["range"]
    coeffs = plate["coeffs"]
    edge = min(max(x, low), high)
    slope = np.polyval(np.polyder(coeffs), edge)
    y = float(np.polyval(coeffs, edge) + slope * (x - edge))
    if x < low or x > high:
        extent = plate["extent_front"] if x < low else plate["extent_back"]
        # The upper endplate (sign +1) may not reach above the outline, the lower one below it.
        y = max(y, extent - tolerance) if plate["sign"] > 0 else min(y, extent + tolerance)
    return y


def _geometry(
    fit: dict, center: np.ndarray, e_cc: np.ndarray, e_ap: np.ndarray, tolerance: float
) -> BodyGeometry:
    """Six landmarks on the endplates at their anterior and posterior ends and the middle.

    The ends are at the walls, or at an endplate's own corner where a wall leans; each height is
    the distance between an upper landmark and the lower one of the same name.
    """
    marks = {}
    heights = {}
    for name in ("anterior", "middle", "posterior"):
        for level, plate in (("upper", fit["top"]), ("lower", fit["bottom"])):
            x = {"anterior": plate["front"], "posterior": plate["back"]}.get(name, fit["x_m"])
            y = _endplate_at(plate, x, tolerance)
            marks[f"{level}_{name}"] = center + x * e_ap + y * e_cc
        heights[name] = float(np.linalg.norm(marks[f"lower_{name}"] - marks[f"upper_{name}"]))
    positions = fit["x_a"] + PROFILE_FRACTIONS * (fit["x_p"] - fit["x_a"])
    profile = np.array(
        [
            _endplate_at(fit["bottom"], x, tolerance) - _endplate_at(fit["top"], x, tolerance)
            for x in positions
        ]
    )
    return BodyGeometry(
        landmarks=marks,
        anterior_height_mm=heights["anterior"],
        middle_height_mm=heights["middle"],
        posterior_height_mm=heights["posterior"],
        center=center,
        e_cc=e_cc,
        e_ap=e_ap,
        depth_mm=float(fit["x_p"] - fit["x_a"]),
        fit_residual_mm=fit["residual"],
        height_profile=profile,
    )


def body_axes_3d(
    mask: np.ndarray,
    spacing: np.ndarray,
    origin: np.ndarray,
    e_cc_hint: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centroid and (e_cc, e_ap, e_lr) of a body from its 3D mask; axes point I, P, L.

    The cranio-caudal axis is the dominant direction of the surface normals (the largest
    eigenvector of the gradient structure tensor of the slightly smoothed mask): the two
    endplates are the body's largest flat faces, while the normals of the rounded walls spread
    around the axis. Unlike the shortest axis of inertia, this does not swing towards the
    antero-posterior axis when a lumbar body is about as deep as it is tall. In the plane across
    it, the longer principal axis of the voxels is left-right (bodies are wider than deep).

    A body that is about as deep as it is tall, and tilted (L5 in a lordotic spine), leaves the
    normals ambiguous between the cranio-caudal and the antero-posterior axis; ``e_cc_hint`` (the
    local direction of the spine from the neighbouring bodies) is then used instead.
    """
    index = np.argwhere(mask)
    coords = index * spacing + origin
    center = coords.mean(axis=0)
    if e_cc_hint is not None:
        e_cc = np.asarray(e_cc_hint, dtype=float) / np.linalg.norm(e_cc_hint)
        return (center, *_across_axes(coords - center, e_cc if e_cc[0] >= 0 else -e_cc))
    # Smoothing of about one coarse voxel in mm on every axis, so that anisotropic grids give
    # normals that are not biased towards the coarse axis.
    sigma = AXIS_SMOOTHING_VOXELS * spacing.max() / spacing
    smooth = ndimage.gaussian_filter(np.pad(mask, 3).astype(np.float32), sigma)
    gradients = np.stack(np.gradient(smooth, *spacing), axis=-1).reshape(-1, 3)
    gradients = gradients[np.abs(gradients).sum(axis=1) > 1e-3]
    _, vectors = np.linalg.eigh(gradients.T @ gradients)
    e_cc = vectors[:, 2]
    if e_cc[0] < 0:
        e_cc = -e_cc
    return (center, *_across_axes(coords - center, e_cc))


def _across_axes(
    centered: np.ndarray, e_cc: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(e_cc, e_ap, e_lr): left-right is the longer principal axis across ``e_cc``."""
    across = centered - np.outer(centered @ e_cc, e_cc)
    _, vectors2 = np.linalg.eigh(across.T @ across)
    e_lr = vectors2[:, 2] - (vectors2[:, 2] @ e_cc) * e_cc
    e_lr /= np.linalg.norm(e_lr)
    if e_lr[2] < 0:
        e_lr = -e_lr
    e_ap = np.cross(e_lr, e_cc)
    return e_cc, e_ap, e_lr


def volume_landmarks(
    mask: np.ndarray,
    spacing: tuple[float, float, float] | np.ndarray,
    origin: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
    e_cc_hint: np.ndarray | None = None,
) -> BodyGeometry:
    """Landmarks of a body from a 3D mask on its own mid-sagittal plane (world mm, I, P, L).

    The mask is smoothed slightly (anti-aliasing of the voxel staircase). The 2D method runs on
    :data:`PLANE_COUNT` planes parallel to the mid-sagittal plane within ±:data:`PLANE_SPREAD` of
    the body's width; it gives the body's frame, its walls and the ends of its endplates, averaged
    onto the mid-sagittal plane. Each endplate is then fitted as a surface over the central
    :data:`SURFACE_BAND` of the width (:func:`_endplate_surface`) and cut by the mid-sagittal
    plane: the staircase of thick slices lies at a different phase in each column, so the
    surface averages it out where a single plane cannot.
    """
    spacing = np.asarray(spacing, dtype=float)
    origin = np.asarray(origin, dtype=float)
    index = np.argwhere(mask)
    if len(index) < 20:
        raise ValueError("the body mask has too few voxels")
    coords = index * spacing + origin
    center, e_cc, e_ap, e_lr = body_axes_3d(mask, spacing, origin, e_cc_hint)
    width = float(np.ptp((coords - center) @ e_lr))
    smooth = ndimage.gaussian_filter(np.pad(mask, 2).astype(np.float32), SMOOTHING_VOXELS)
    padded_origin = origin - 2 * spacing
    # The planes reach past the body's farthest voxel along e_cc and e_ap by a few voxels, so
    # that no wall is cut off (the centroid of a collapsed body lies off its middle).
    reach = np.abs((coords - center) @ np.stack([e_cc, e_ap], axis=1)).max()
    radius = float(reach) + 3 * float(spacing.max())
    step = PLANE_STEP_FRACTION * float(spacing.min())
    offsets = np.arange(-radius, radius + step, step)
    yy, xx = np.meshgrid(offsets, offsets, indexing="ij")  # rows along e_cc, columns along e_ap
    plane_points = yy[..., None] * e_cc + xx[..., None] * e_ap
    margin = max(CORNER_MARGIN_MM, 1.5 * float(spacing.max()))
    to_world = np.stack([e_cc, e_ap], axis=1)  # plane (row, col) mm -> world offset
    planes = []
    # The mid-sagittal plane first; the planes beside it start from its converged frame.
    offsets_lr = np.linspace(-PLANE_SPREAD, PLANE_SPREAD, PLANE_COUNT) * width
    start = None
    for dz in sorted(offsets_lr, key=abs):
        voxel = (center + dz * e_lr + plane_points - padded_origin) / spacing
        fraction = ndimage.map_coordinates(
            smooth, voxel.reshape(-1, 3).T, order=1, mode="constant"
        ).reshape(yy.shape)
        try:
            plane = _fit_plane(
                fraction, np.array([step, step]), (-radius, -radius), start, 30, margin
            )
        except ValueError:
            continue
        planes.append((dz, plane))
        start = plane.e_cc if start is None else start
    if not planes:
        raise ValueError("no sagittal plane of the body could be measured")
    # The common frame is the most central plane's, lifted to the world.
    dz0, central = planes[0]
    frame_center = center + dz0 * e_lr + to_world @ central.center
    frame_cc, frame_ap = to_world @ central.e_cc, to_world @ central.e_ap
    fit = _walls_in_frame(planes, center, e_lr, to_world, frame_center, frame_cc, frame_ap)
    fit["x_m"] = 0.5 * (fit["x_a"] + fit["x_p"])
    inner_margin = max(margin, 0.06 * (fit["x_p"] - fit["x_a"]))
    sampler = _ColumnSampler(smooth, spacing, padded_origin, frame_center, frame_cc, frame_ap)
    residuals = []
    for side in ("top", "bottom"):
        plate = fit[side]
        guess = central.fit[side]["coeffs"]
        try:
            coeffs, span, residual = _endplate_surface(
                sampler,
                plate["sign"],
                (plate["front"] + inner_margin, plate["back"] - inner_margin),
                guess,
                SURFACE_BAND * width,
                central.fit["height"],
            )
        except ValueError:
            # Too few columns (a small or irregular body): the central plane's own fit.
            coeffs, span = guess, central.fit[side]["range"]
            residual = central.fit["residual"]
        plate["coeffs"], plate["range"] = coeffs, span
        residuals.append(residual)
    fit["residual"] = float(max(residuals))
    geometry = _geometry(
        fit, frame_center, frame_cc, frame_ap, OUTLINE_TOLERANCE_VOXELS * float(spacing.max())
    )
    geometry.landmarks = {name: geometry.landmarks[name] for name in LANDMARK_NAMES}
    return geometry


def _walls_in_frame(
    planes: list[tuple[float, _PlaneFit]],
    center: np.ndarray,
    e_lr: np.ndarray,
    to_world: np.ndarray,
    frame_center: np.ndarray,
    frame_cc: np.ndarray,
    frame_ap: np.ndarray,
) -> dict:
    """The walls, the endplates' ends and the outline's extents near them, averaged over planes.

    Each plane has its own centre and (nearly the same) frame; its positions are lifted to the
    world and projected on the common frame before they are averaged.
    """

    def common(dz: float, plane: _PlaneFit, x: float, y: float) -> np.ndarray:
        point = center + dz * e_lr + to_world @ (plane.center + x * plane.e_ap + y * plane.e_cc)
        offset = point - frame_center
        return np.array([offset @ frame_ap, offset @ frame_cc])

    walls = {"x_a": [], "x_p": []}
    ends = {
        side: {"front": [], "back": [], "extent_front": [], "extent_back": []}
        for side in ("top", "bottom")
    }
    for dz, plane in planes:
        walls["x_a"].append(common(dz, plane, plane.fit["x_a"], 0.0)[0])
        walls["x_p"].append(common(dz, plane, plane.fit["x_p"], 0.0)[0])
        for side, values in ends.items():
            plate = plane.fit[side]
            front = common(dz, plane, plate["front"], plate["extent_front"])
            back = common(dz, plane, plate["back"], plate["extent_back"])
            values["front"].append(front[0])
            values["back"].append(back[0])
            values["extent_front"].append(front[1])
            values["extent_back"].append(back[1])
    fit = {name: float(np.mean(values)) for name, values in walls.items()}
    for side, values in ends.items():
        fit[side] = {"sign": planes[0][1].fit[side]["sign"]}
        fit[side].update({name: float(np.mean(v)) for name, v in values.items()})
    return fit


@dataclass
class _ColumnSampler:
    """Samples the smoothed mask at body-frame points (x along ``e_ap``, y along ``e_cc``, z)."""

    smooth: np.ndarray
    spacing: np.ndarray
    origin: np.ndarray
    center: np.ndarray
    e_cc: np.ndarray
    e_ap: np.ndarray

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        e_lr = np.cross(self.e_cc, self.e_ap)
        # Body-frame mm to voxel index, axis by axis (cheaper than building world points).
        start = (self.center - self.origin) / self.spacing
        steps = [axis / self.spacing for axis in (self.e_ap, self.e_cc, e_lr)]
        voxel = np.stack(
            [start[i] + x * steps[0][i] + y * steps[1][i] + z * steps[2][i] for i in range(3)]
        ).reshape(3, -1)
        values = ndimage.map_coordinates(self.smooth, voxel, order=1, mode="constant")
        return values.reshape(np.shape(x))


def _endplate_surface(
    sampler: _ColumnSampler,
    sign: float,
    span: tuple[float, float],
    guess: np.ndarray,
    band_mm: float,
    height_mm: float,
) -> tuple[np.ndarray, tuple[float, float], float]:
    """One endplate as a surface over the central band of the body, cut at the mid-sagittal plane.

    Columns along the body's cranio-caudal axis, on a grid of ``x`` in ``span`` and ``|z|`` up to
    ``band_mm / 2``, are searched for the outline (the smoothed mask's 0.5 crossing) from outside
    the body inwards, within a window around the central plane's fit ``guess``. Columns that are
    within 1.5 voxels of a lateral wall, or find no crossing, are left out. The crossings are
    fitted by ``y = P(x) + z Q(x) + z² R(x)`` with P and R quadratic and Q linear in ``x`` (a
    dished endplate is deepest in its middle and flattens towards the lateral walls); points
    off by more than three robust deviations are dropped once and the surface refitted. Returns
    the coefficients of ``P`` (``np.polyval`` order), the ``x`` range fitted and the RMS
    residual (mm).
    """
    coarse = float(sampler.spacing.max())
    grid_step = max(0.5 * coarse, SURFACE_MIN_STEP_MM)
    xs = np.arange(span[0], span[1] + 1e-9, grid_step)
    half_band = 0.5 * band_mm
    # Symmetric about the mid-sagittal plane, so that a mirrored body gives the same fit.
    zs = grid_step * np.arange(-int(half_band // grid_step), int(half_band // grid_step) + 1)
    if xs.size < 4 or zs.size < 1:
        raise ValueError("the endplate is too small for a surface fit")
    gx, gz = (a.ravel() for a in np.meshgrid(xs, zs, indexing="ij"))
    # Away from the lateral walls: the column is inside the body at mid-height 1.5 voxels to
    # either side.
    side_step = 1.5 * coarse
    zero = np.zeros_like(gx)
    inside = (sampler(gx, zero, gz - side_step) >= 0.5) & (sampler(gx, zero, gz + side_step) >= 0.5)
    gx, gz = gx[inside], gz[inside]
    window = SURFACE_WINDOW_FRACTION * height_mm + 2 * coarse
    ds = 0.5 * float(sampler.spacing.min())
    # Outward is -y for the upper endplate (sign +1), +y for the lower one.
    s = np.arange(window, -window - 1e-9, -ds)  # from outside to inside
    y0 = np.polyval(guess, gx)
    ys = y0[:, None] - sign * s[None, :]
    values = sampler(
        np.broadcast_to(gx[:, None], ys.shape), ys, np.broadcast_to(gz[:, None], ys.shape)
    )
    above = values >= 0.5
    first = np.argmax(above, axis=1)
    valid = above.any(axis=1) & (first > 0)
    rows = np.nonzero(valid)[0]
    k = first[rows]
    v0, v1 = values[rows, k - 1], values[rows, k]
    t = (0.5 - v0) / np.maximum(v1 - v0, 1e-6)
    crossing = ys[rows, k - 1] + t * (ys[rows, k] - ys[rows, k - 1])
    x, z = gx[rows], gz[rows]
    if x.size < SURFACE_MIN_COLUMNS or np.ptp(x) < 0.5 * (span[1] - span[0]):
        raise ValueError("too few endplate columns for a surface fit")
    half_depth = max(0.5 * (span[1] - span[0]), 1e-6)
    scale_z = max(half_band, 1e-6)
    u, w = x / half_depth, z / scale_z
    design = np.stack([np.ones_like(u), u, u**2, w, u * w, w**2, u * w**2, u**2 * w**2], axis=1)
    keep = np.ones(len(u), bool)
    for _ in range(2):
        coeffs, *_ = np.linalg.lstsq(design[keep], crossing[keep], rcond=None)
        residual = crossing - design @ coeffs
        deviation = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        keep = np.abs(residual) <= max(3 * deviation, 0.25 * float(sampler.spacing.min()))
        if np.count_nonzero(keep) < SURFACE_MIN_COLUMNS:
            raise ValueError("too few endplate columns for a surface fit")
    rms = float(np.sqrt(np.mean(residual[keep] ** 2)))
    c0, c1, c2 = coeffs[:3]
    poly = np.array([c2 / half_depth**2, c1 / half_depth, c0])
    return poly, (float(x[keep].min()), float(x[keep].max())), rms


def body_landmarks(
    mask: np.ndarray,
    spacing,
    origin=None,
    e_cc_hint: np.ndarray | None = None,
) -> BodyGeometry:
    """Landmarks of one body from a 2D or 3D mask (dispatch on dimensionality).

    ``e_cc_hint``: the local caudal direction of the spine (world), a starting guess for the
    body's own cranio-caudal axis, which is then refined from the endplates.
    """
    origin = np.zeros(mask.ndim) if origin is None else origin
    if mask.ndim == 2:
        margin = max(CORNER_MARGIN_MM, 1.5 * float(np.max(spacing)))
        return profile_landmarks(mask, spacing, origin, e_cc=e_cc_hint, corner_margin_mm=margin)
    return volume_landmarks(mask, spacing, origin, e_cc_hint=e_cc_hint)


def geometry_from_landmarks(
    geometry: BodyGeometry, landmarks: dict[str, np.ndarray | list[float]]
) -> BodyGeometry:
    """The body's geometry after some of its landmarks were moved (by hand, in napari).

    Landmarks not in ``landmarks`` stay where they were. Heights become the distances between
    the upper and lower landmark of each name; the body's frame (``e_cc``, ``e_ap``) and centre
    stay, the depth is the mean anterior-posterior extent of the two endplates along ``e_ap``,
    and the height profile is interpolated linearly between the three heights. The fit residual
    is NaN: the landmarks no longer come from a fit.
    """
    unknown = set(landmarks) - set(LANDMARK_NAMES)
    if unknown:
        raise ValueError(f"unknown landmark names {sorted(unknown)}; known: {LANDMARK_NAMES}")
    marks = {
        name: np.asarray(point, dtype=float).copy() for name, point in geometry.landmarks.items()
    }
    for name, point in landmarks.items():
        point = np.asarray(point, dtype=float)
        if point.shape != marks[name].shape or not np.all(np.isfinite(point)):
            raise ValueError(f"landmark {name} must be {marks[name].shape[0]} finite coordinates")
        marks[name] = point
    heights = {
        name: float(np.linalg.norm(marks[f"lower_{name}"] - marks[f"upper_{name}"]))
        for name in ("anterior", "middle", "posterior")
    }
    depth = float(
        np.mean(
            [
                abs((marks[f"{plate}_posterior"] - marks[f"{plate}_anterior"]) @ geometry.e_ap)
                for plate in ("upper", "lower")
            ]
        )
    )
    profile = np.interp(
        PROFILE_FRACTIONS,
        (0.0, 0.5, 1.0),
        (heights["anterior"], heights["middle"], heights["posterior"]),
    )
    return BodyGeometry(
        landmarks=marks,
        anterior_height_mm=heights["anterior"],
        middle_height_mm=heights["middle"],
        posterior_height_mm=heights["posterior"],
        center=geometry.center,
        e_cc=geometry.e_cc,
        e_ap=geometry.e_ap,
        depth_mm=depth,
        fit_residual_mm=float("nan"),
        height_profile=profile,
    )
