"""Rasterising the phantom spine: a lateral radiograph (2D) or a CT volume (3D), with label maps.

Labels are exact: a pixel or voxel belongs to a structure when its centre is inside it. Image
intensities add partial-volume blur and noise on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..labels import SACRUM
from .abdomen import Abdomen, paint_abdomen, paint_ribs_and_pelvis
from .anatomy import Body, Spine
from .shapes import (
    body_chord,
    body_inside,
    canal_inside,
    disc_inside,
    posterior_parts,
    sacral_segment_corners,
    sacral_segment_inside,
    sacrum_inside,
)


@dataclass
class Grid:
    """A regular grid in model mm: ``point = origin + index * spacing`` (canonical axes)."""

    origin: np.ndarray
    spacing: np.ndarray
    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def box(self, corners: np.ndarray) -> tuple[slice, ...] | None:
        """Index slices of the grid covering points ``(n, ndim)``; None if outside."""
        low = np.floor((corners.min(axis=0) - self.origin) / self.spacing).astype(int) - 1
        high = np.ceil((corners.max(axis=0) - self.origin) / self.spacing).astype(int) + 2
        low = np.maximum(low, 0)
        high = np.minimum(high, self.shape)
        if np.any(high <= low):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))

    @property
    def axes(self) -> list[np.ndarray]:
        """Model coordinates (mm) of the grid points along each axis."""
        return [self.origin[k] + np.arange(n) * self.spacing[k] for k, n in enumerate(self.shape)]

    def points(self, box: tuple[slice, ...]) -> np.ndarray:
        """Model coordinates (3 components, w = 0 in 2D) of the grid points in ``box``."""
        axes = [
            self.origin[k] + np.arange(s.start, s.stop) * self.spacing[k] for k, s in enumerate(box)
        ]
        mesh = list(np.meshgrid(*axes, indexing="ij"))
        if self.ndim == 2:
            mesh.append(np.zeros_like(mesh[0]))
        return np.stack(mesh, axis=-1)


def body_corners(body: Body, lateral: bool) -> np.ndarray:
    """Corners of a box holding the body and its posterior elements (model mm, 3D)."""
    h = body.max_height
    back = body.depth / 2 + body.canal_depth + 8 + body.spinous_length
    half_w = body.width * 0.95 if lateral else 1.0
    xs, ys, zs = (
        (-body.depth / 2 - 2, back),
        (-h - 4, h + 4 + body.spinous_length),
        (-half_w, half_w),
    )
    return np.array([body.to_world(x, y, z) for x in xs for y in ys for z in zs])


def sacrum_corners(spine: Spine, lateral: bool) -> np.ndarray:
    sacrum = spine.sacrum
    if lateral and sacrum.segments:
        return np.concatenate(
            [
                sacral_segment_corners(segment, reach)
                for segment, reach in zip(sacrum.segments, sacrum.ala_half_widths, strict=True)
            ]
        )
    half_w = sacrum.width / 2 if lateral else 1.0
    return np.array(
        [sacrum.to_world(x, y, z) for x, y in sacrum.profile() for z in (-half_w, half_w)]
    )


def paint_labels(spine: Spine, grid: Grid) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Body labels, whole-vertebra labels and per-tissue masks on ``grid``.

    Returns ``(bodies, vertebrae, tissue)`` where ``tissue`` holds boolean masks ``disc``,
    ``posterior``, ``canal`` (3D) and, per body, the body mask is implied by ``bodies``.
    """
    lateral = grid.ndim == 3
    bodies = np.zeros(grid.shape, np.uint8)
    vertebrae = np.zeros(grid.shape, np.uint8)
    tissue = {name: np.zeros(grid.shape, bool) for name in ("disc", "posterior", "canal")}
    for upper, lower in zip(spine.bodies[:-1], spine.bodies[1:], strict=True):
        box = grid.box(
            np.concatenate([body_corners(upper, lateral), body_corners(lower, lateral)])[
                :, : grid.ndim
            ]
        )
        if box is not None:
            tissue["disc"][box] |= disc_inside(upper, lower, grid.points(box), lateral)
    for body in spine.bodies:
        box = grid.box(body_corners(body, lateral)[:, : grid.ndim])
        if box is None:
            continue
        x, y, z = body.local(grid.points(box))
        zz = z if lateral else None
        inside = body_inside(body, x, y, zz)
        parts = posterior_parts(body, x, y, zz)
        posterior = np.logical_or.reduce(list(parts.values())) & ~inside
        if lateral:
            tissue["canal"][box] |= canal_inside(body, x, y, z) & ~posterior
        tissue["posterior"][box] |= posterior
        bodies[box][inside] = body.label
        vertebrae[box][inside | posterior] = body.label
    if spine.sacrum is not None and lateral and spine.sacrum.segments:
        _paint_sacral_segments(spine, grid, bodies, vertebrae, tissue)
    elif spine.sacrum is not None:
        box = grid.box(sacrum_corners(spine, lateral)[:, : grid.ndim])
        if box is not None:
            x, y, z = spine.sacrum.local(grid.points(box))
            inside = sacrum_inside(spine.sacrum, x, y, z if lateral else None)
            bodies[box][inside] = SACRUM
            vertebrae[box][inside] = SACRUM
    tissue["disc"] &= bodies == 0
    return bodies, vertebrae, tissue


def _paint_sacral_segments(
    spine: Spine,
    grid: Grid,
    bodies: np.ndarray,
    vertebrae: np.ndarray,
    tissue: dict[str, np.ndarray],
) -> None:
    """The 3D sacrum (26 in both label maps), its canal and the L5/S1 disc."""
    sacrum, last = spine.sacrum, spine.bodies[-1]
    first = sacrum.segments[0]
    box = grid.box(np.concatenate([body_corners(last, True), body_corners(first, True)]))
    if box is not None:
        tissue["disc"][box] |= disc_inside(last, first, grid.points(box), True)
    for segment, reach in zip(sacrum.segments, sacrum.ala_half_widths, strict=True):
        box = grid.box(sacral_segment_corners(segment, reach))
        if box is None:
            continue
        bone, canal = sacral_segment_inside(segment, reach, *segment.local(grid.points(box)))
        tissue["canal"][box] |= canal
        bodies[box][bone] = SACRUM
        vertebrae[box][bone] = SACRUM
    tissue["canal"] &= bodies == 0


def body_boxes(spine: Spine, bodies: np.ndarray):
    """Yield ``(body, box, mask)``: each rendered body with its bounding box and mask in it."""
    for body in spine.bodies:
        mask = bodies == body.label
        if not mask.any():
            continue
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        yield body, box, mask[box]


def cortical_shell(mask: np.ndarray, spacing: np.ndarray, thickness_mm: float) -> np.ndarray:
    """Voxels of ``mask`` within ``thickness_mm`` of its boundary."""
    if not mask.any():
        return mask
    inner = ndimage.distance_transform_edt(mask, sampling=spacing)
    return mask & (inner <= thickness_mm)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def render_ct(
    spine: Spine, grid: Grid, rng: np.random.Generator, abdomen: Abdomen | None = None
) -> tuple[np.ndarray, ...]:
    """CT volume in HU (int16) plus body and whole-vertebra labels; with ``abdomen``, the trunk,
    viscera, ribs, pelvis and table around the spine (:mod:`.abdomen`), otherwise soft tissue
    with the ribs and pelvis in view."""
    bodies, vertebrae, tissue = paint_labels(spine, grid)
    spacing = grid.spacing
    hu = np.full(grid.shape, -1000.0, np.float32)
    if abdomen is not None:
        paint_abdomen(hu, spine, abdomen, grid, rng)
    else:
        _paint_soft_tissue(hu, spine, grid, rng)
    _paint_aorta(hu, spine, grid, rng)
    # A tight crop still shows the ribs' necks and the iliac wings beside the spine; their
    # course round the trunk is drawn for a random trunk that is not painted.
    paint_ribs_and_pelvis(
        hu, spine, abdomen or Abdomen.sample(rng), grid, rng, table=abdomen is not None
    )
    hu[tissue["canal"]] = 12.0
    hu[tissue["disc"]] = 85.0
    _paint_bone(hu, spine, grid, bodies, tissue["posterior"], rng)
    hu = ndimage.gaussian_filter(hu, sigma=0.45 / (spacing / spacing.min()))
    hu += rng.normal(0.0, rng.uniform(8, 25), size=hu.shape).astype(np.float32)
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16), bodies, vertebrae


def cortex_layer(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Per voxel of ``mask``, the sum over axes of 1/spacing (1/mm) where it meets the outside.

    A thin cortex of thickness ``t`` (mm) on the surface fills a share ``t / s`` of a surface
    voxel of size ``s`` across the surface, so the layer times ``t`` times the cortex's excess
    over cancellous bone (HU) is what the cortex adds to that voxel by partial volume.
    """
    layer = np.zeros(mask.shape, np.float32)
    padded = np.pad(mask, 1, mode="edge")
    for axis, step in enumerate(spacing):
        centre = [slice(1, -1)] * mask.ndim
        before, after = list(centre), list(centre)
        before[axis], after[axis] = slice(0, -2), slice(2, None)
        outside = ~padded[tuple(before)] | ~padded[tuple(after)]
        layer += (mask & outside) / float(step)
    return layer


def _paint_bone(
    hu: np.ndarray,
    spine: Spine,
    grid: Grid,
    bodies: np.ndarray,
    posterior: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Vertebral bodies, posterior elements and sacrum: trabecular bone inside a thin cortex.

    Calibrated on the real CTs in ``shared/data``: cancellous bone of the lumbar bodies 50-110 HU
    in those (older) patients and up to about 250 HU in young ones; the cortex adds about
    250 HU to the surface voxels at 1.5 mm and 110 HU at 3 mm, i.e. about 350 mm x HU. Cortex
    and posterior elements are drawn as that surface excess, so that a thin endplate or the
    cortical ring of a pedicle looks as it would at the grid's own voxel size.
    """
    spacing = grid.spacing
    texture = _smooth_noise(rng, grid.shape, sigma=1.0 / float(spacing.min()))
    patient_hu = rng.uniform(50.0, 250.0)
    mean_density = float(np.mean([b.trabecular_density for b in spine.bodies]))
    excess = rng.uniform(200.0, 450.0)  # cortex thickness x (cortical - cancellous HU), mm x HU
    cortical_hu = 1300.0

    # The cortex is on the surface of the bone as a whole: none where a pedicle joins its body.
    surface = cortex_layer((bodies > 0) | posterior, spacing)

    def fill(mask: np.ndarray, box: tuple[slice, ...], cancellous: float, scale: float) -> None:
        values = cancellous + 50.0 * texture[box]
        values += np.minimum(scale * excess * surface[box], cortical_hu - values)
        hu[box][mask] = values[mask]

    for body, box, local in body_boxes(spine, bodies):
        fill(local, box, patient_hu * body.trabecular_density / mean_density, 1.0)
    if posterior.any():
        box = ndimage.find_objects(posterior.astype(np.uint8))[0]
        fill(posterior[box], box, patient_hu + 40.0, 1.2)
    sacral = bodies == SACRUM
    if sacral.any():
        box = ndimage.find_objects(sacral.astype(np.uint8))[0]
        density = spine.bodies[-1].trabecular_density / mean_density
        fill(sacral[box], box, patient_hu * density + 10.0, 1.0)


def _paint_soft_tissue(hu: np.ndarray, spine: Spine, grid: Grid, rng: np.random.Generator) -> None:
    """The tight field of view: soft tissue everywhere in front of the skin of the back."""
    # Soft tissue up to a curved skin line behind the spinous processes; fat under the skin.
    _, points_v, points_w = grid.axes
    back = max(float(b.spinous_tip()[1]) for b in spine.bodies) + rng.uniform(25, 45)
    skin = back - 0.004 * points_w[None, :] ** 2
    depth_below_skin = skin - points_v[:, None]
    fat = rng.uniform(8, 20)
    body_wall = np.where(
        depth_below_skin < 0, -1000.0, np.where(depth_below_skin < fat, -95.0, 45.0)
    ).astype(np.float32)
    hu[:] = body_wall[None, :, :]


def _paint_aorta(hu: np.ndarray, spine: Spine, grid: Grid, rng: np.random.Generator) -> None:
    """A tube in front of and left of the bodies down to L4, contrast-enhanced in some cases."""
    if len(spine.bodies) < 2:
        return
    value = 230.0 if rng.random() < 0.4 else 42.0
    centers = np.array(
        [b.to_world(-b.depth / 2 - 15, 0, 14) for b in spine.bodies if b.level not in ("L5",)]
    )
    if len(centers) < 2:
        return
    u_axis, v_axis, w_axis = grid.axes
    order = np.argsort(centers[:, 0])
    cu = centers[order, 0]
    for i, u in enumerate(u_axis):
        if u < cu[0] or u > cu[-1]:
            continue
        cv = np.interp(u, cu, centers[order, 1])
        cw = np.interp(u, cu, centers[order, 2])
        inside = (v_axis[:, None] - cv) ** 2 + (w_axis[None, :] - cw) ** 2 <= 11.0**2
        hu[i][inside] = value


def render_radiograph(spine: Spine, grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Lateral radiograph (uint16, bone bright) plus body and whole-vertebra labels.

    Intensity is a processed (log) image: proportional to the X-ray attenuation summed along the
    beam, i.e. the left-right thickness of each tissue times its attenuation coefficient.
    """
    bodies, vertebrae, tissue = paint_labels(spine, grid)
    spacing = grid.spacing
    u, v = grid.axes
    # Attenuation in arbitrary units per mm of path: soft tissue 1, trabecular bone about 2.5-4,
    # cortical bone 8 (ratios typical of diagnostic X-ray energies).
    back = max(float(b.spinous_tip()[1]) for b in spine.bodies) + rng.uniform(20, 40)
    front = min(float(b.center[1]) for b in spine.bodies) - rng.uniform(150, 220)
    center, radius = 0.5 * (back + front), 0.5 * (back - front)
    chord = 2 * np.sqrt(np.clip(1 - ((v - center) / radius) ** 2, 0, None)) * rng.uniform(150, 190)
    attenuation = np.broadcast_to(chord[None, :], grid.shape).astype(np.float32).copy()
    texture = _smooth_noise(rng, grid.shape, sigma=0.8 / float(spacing.min()))
    attenuation[tissue["disc"]] += 8.0
    attenuation[tissue["posterior"]] += 55.0 + 10 * texture[tissue["posterior"]]
    for body, box, local in body_boxes(spine, bodies):
        x, _, _ = body.local(grid.points(box))
        thickness = body_chord(body, x)
        shell = cortical_shell(local, spacing, thickness_mm=1.0)
        bone = (0.8 + 1.0 * body.trabecular_density) * thickness * (1 + 0.08 * texture[box])
        bone = np.where(shell, bone + 1.2 * thickness, bone)
        attenuation[box][local] += bone[local]
    sacral = bodies == SACRUM
    if sacral.any():
        attenuation[sacral] += (
            (0.8 + 1.0 * spine.bodies[-1].trabecular_density)
            * 0.8
            * spine.sacrum.width
            * (1 + 0.08 * texture[sacral])
        )
    _add_overlays(attenuation, spine, grid, rng)
    image = attenuation / (1.15 * np.percentile(attenuation, 99.9))
    image = np.clip(image, 0, None) ** rng.uniform(0.8, 1.2)
    heel = 1 + rng.uniform(-0.12, 0.12) * (u - u.mean()) / (np.ptp(u) + 1e-6)
    image = image * heel[:, None]
    image = ndimage.gaussian_filter(image, sigma=0.35 / (spacing / spacing.min()) * 1.5)
    noise = rng.uniform(0.01, 0.03)
    image = image + rng.normal(0, noise, image.shape) * np.sqrt(np.clip(image, 0.05, None))
    return (np.clip(image * 3000 + 300, 0, 4095).astype(np.uint16), bodies, vertebrae)


def _add_overlays(
    attenuation: np.ndarray, spine: Spine, grid: Grid, rng: np.random.Generator
) -> None:
    """Iliac wings over the lower lumbar spine and ribs over thoracic levels, as on real films."""
    u = grid.origin[0] + np.arange(grid.shape[0]) * grid.spacing[0]
    v = grid.origin[1] + np.arange(grid.shape[1]) * grid.spacing[1]
    uu, vv = np.meshgrid(u, v, indexing="ij")
    lumbar = [b for b in spine.bodies if b.level in ("L4", "L5")]
    if lumbar and rng.random() < 0.7:
        c = lumbar[-1].to_world(rng.uniform(0, 25), rng.uniform(0, 15))
        ru, rv = rng.uniform(45, 70), rng.uniform(50, 75)
        ellipse = ((uu - c[0] - 25) / ru) ** 2 + ((vv - c[1]) / rv) ** 2 <= 1
        attenuation[ellipse] += rng.uniform(15, 30)
    for body in spine.bodies:
        if body.level.startswith("T") and rng.random() < 0.6:
            start = body.to_world(body.depth / 2 + 5, 0)
            angle = np.radians(rng.uniform(20, 40))
            along = (vv - start[1]) * np.cos(angle) - (uu - start[0]) * np.sin(angle)
            across = (vv - start[1]) * np.sin(angle) + (uu - start[0]) * np.cos(angle)
            rib = (np.abs(across) < 5) & (along < 0) & (along > -140)
            attenuation[rib] += rng.uniform(8, 16)
