"""The patient around a CT phantom's spine: abdominal wall, viscera, bowel gas, ribs and pelvis.

A phantom CT cropped tightly around the spine teaches a model nothing about what surrounds the
spine in a real scan, and its lateral projection lacks what dominates a real lateral film: an
abdomen 250–380 mm wide, bowel gas, the ribs over the thoracolumbar junction and the iliac wings
over L5 and the sacrum. This module paints those in Hounsfield units around the spine. None of
it is labelled: the label maps stay the vertebral bodies and vertebrae.

Coordinates are the phantom's model mm on the canonical axes (u inferior, v posterior, w left).
Sizes and densities are typical adult values (soft tissue 30–60 HU, fat about −100 HU, gas
below −900 HU, rib and iliac cortex 500–700 HU); they are plausible, not fitted to any scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..labels import level_id
from .anatomy import Spine

if TYPE_CHECKING:  # render imports this module
    from .render import Grid


@dataclass(frozen=True)
class Abdomen:
    """Random shape of the patient around the spine (mm)."""

    half_depth: float  # antero-posterior semi-axis of the trunk section
    half_width: float  # left-right semi-axis
    squareness: float  # superellipse exponent of the section (2 = ellipse)
    back_offset: float  # skin behind the spinous process tips
    fat: float  # subcutaneous fat
    wall: float  # abdominal wall muscle
    visceral_fat: float  # fraction of the abdominal cavity that is fat
    gas_pockets: int
    rib_drop: float  # how far a rib descends from its vertebra to its front end
    table: bool  # the CT table behind the patient
    oral_contrast: bool = False  # positive oral contrast in some of the bowel

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Abdomen:
        return cls(
            half_depth=float(rng.uniform(85, 140)),
            half_width=float(rng.uniform(125, 190)),
            squareness=float(rng.uniform(2.0, 2.8)),
            back_offset=float(rng.uniform(10, 35)),
            fat=float(rng.uniform(6, 40)),
            wall=float(rng.uniform(6, 14)),
            visceral_fat=float(rng.uniform(0.15, 0.7)),
            gas_pockets=int(rng.integers(3, 26)),
            rib_drop=float(rng.uniform(45, 90)),
            table=bool(rng.random() < 0.6),
            oral_contrast=bool(rng.random() < 0.4),
        )

    def extent(self, spine: Spine) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest (v, w) of the trunk, mm."""
        back = _back_line(spine, self)[1].max()
        low = np.array([back - 2 * self.half_depth, -self.half_width])
        high = np.array([back + (45.0 if self.table else 0.0), self.half_width])
        return low, high


def _back_line(spine: Spine, abdomen: Abdomen) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of the skin of the back behind each vertebra, cranial to caudal."""
    tips = np.array([b.spinous_tip() for b in spine.bodies])
    order = np.argsort(tips[:, 0])
    return tips[order, 0], tips[order, 1] + abdomen.back_offset


def _level_position(spine: Spine):
    """Model u of any level's body centre, extrapolated along the spine's level spacing."""
    labels = np.array([b.label for b in spine.bodies], float)
    u = np.array([b.center[0] for b in spine.bodies])
    v = np.array([b.center[1] for b in spine.bodies])
    if len(labels) > 1:
        slope, intercept = np.polyfit(labels, u, 1)
    else:
        slope, intercept = 30.0, u[0] - 30.0 * labels[0]

    def position(label: int) -> tuple[float, float]:
        centre_u = float(slope * label + intercept)
        return centre_u, float(np.interp(centre_u, u, v))

    return position


def paint_abdomen(hu: np.ndarray, spine: Spine, abdomen: Abdomen, grid: Grid, rng) -> None:
    """Fill ``hu`` (air everywhere before, on ``grid``) with the trunk, its wall and its
    viscera."""
    axes = grid.axes
    u, v, w = axes
    spacing = np.asarray(grid.spacing, float)
    back_u, back_v = _back_line(spine, abdomen)
    back = np.interp(u, back_u, back_v)[:, None, None]
    # Slightly wider towards the pelvis: 0.9 at the top of the field to 1.1 at the bottom.
    flare = np.interp(u, [u[0], u[-1]], [0.92, 1.08])[:, None, None]
    centre_v = back - abdomen.half_depth
    radial = (
        np.abs((v[None, :, None] - centre_v) / abdomen.half_depth) ** abdomen.squareness
        + np.abs(w[None, None, :] / (abdomen.half_width * flare)) ** abdomen.squareness
    ) ** (1 / abdomen.squareness)
    inside = radial <= 1.0
    # Depth below the skin in mm, within each axial section (u spacing made huge).
    below_skin = ndimage.distance_transform_edt(inside, sampling=(1e6, *spacing[1:]))
    texture = ndimage.gaussian_filter(rng.standard_normal(hu.shape).astype(np.float32), 6 / spacing)
    texture /= texture.std() + 1e-6
    cavity = inside & (below_skin >= abdomen.fat + abdomen.wall)
    fat_cut = np.quantile(texture[cavity], abdomen.visceral_fat) if cavity.any() else 0.0
    hu[inside] = -100.0
    hu[inside & (below_skin >= abdomen.fat)] = 45.0
    hu[cavity] = np.where(texture[cavity] < fat_cut, -90.0, 35.0)

    centres = np.array([b.center for b in spine.bodies])
    order = np.argsort(centres[:, 0])
    spine_v = np.interp(u, centres[order, 0], centres[order, 1])[:, None, None]
    depth = float(np.mean([b.depth for b in spine.bodies]))
    # Paraspinal muscles fill the space behind the bodies, under the fat of the back.
    behind = (v[None, :, None] > spine_v + depth / 2) & (np.abs(w)[None, None, :] < 75)
    hu[behind & inside & (below_skin >= abdomen.fat)] = 50.0
    _paint_solid_organs(hu, spine, axes, rng)
    _paint_gas(hu, cavity, spine_v, depth, axes, abdomen.gas_pockets, rng, abdomen.oral_contrast)


def _ellipsoid(axes, centre, radii) -> np.ndarray:
    u, v, w = axes
    return (
        ((u[:, None, None] - centre[0]) / radii[0]) ** 2
        + ((v[None, :, None] - centre[1]) / radii[1]) ** 2
        + ((w[None, None, :] - centre[2]) / radii[2]) ** 2
    ) <= 1.0


def _paint_solid_organs(hu, spine: Spine, axes, rng) -> None:
    """Psoas muscles beside the lumbar bodies, the kidneys and the liver."""
    position = _level_position(spine)
    for body in spine.bodies:
        if not level_id("L1") <= body.label <= level_id("L5"):
            continue
        # The psoas thickens caudally: about 8 mm at L1 to 25 mm at L5 (radius).
        radius = 8.0 + 4.0 * (body.label - level_id("L1"))
        for side in (-1, 1):
            centre = body.to_world(0.1 * body.depth, 0, side * (body.width / 2 + 0.8 * radius))
            hu[_ellipsoid(axes, centre, (body.max_height, radius, radius))] = 45.0
    kidney_u, kidney_v = position(level_id("L1"))
    enhanced = rng.random() < 0.4
    for side in (-1, 1):
        centre = (
            kidney_u + rng.uniform(-15, 15) + (12 if side < 0 else 0),  # the right one lower
            kidney_v + rng.uniform(0, 20),
            side * rng.uniform(60, 80),
        )
        hu[_ellipsoid(axes, centre, (rng.uniform(45, 60), 22.0, 28.0))] = (
            150.0 if enhanced else 32.0
        )
    liver_bottom, liver_v = position(level_id("L2"))
    liver = _ellipsoid(
        axes,
        (liver_bottom - 90 + rng.uniform(-25, 15), liver_v - 30, -90.0),
        (95.0, 80.0, 85.0),
    )
    hu[liver & (hu > -200)] = 58.0


def _paint_gas(hu, cavity, spine_v, depth, axes, count: int, rng, oral_contrast: bool) -> None:
    """Bowel gas: pockets of air in the front of the abdominal cavity, some of them mottled;
    with ``oral_contrast``, half of them hold positive contrast instead (150-450 HU), as bowel
    loops do on many abdominal CTs: bone-bright blobs that are not bone."""
    u, v, w = axes
    front = cavity & (v[None, :, None] < spine_v - depth / 2 - 10)
    candidates = np.argwhere(front)
    if not len(candidates):
        return
    for _ in range(count):
        centre_index = candidates[rng.integers(len(candidates))]
        centre = [axes[k][centre_index[k]] for k in range(3)]
        radii = rng.uniform(6, 24, size=3)
        pocket = _ellipsoid(axes, centre, radii) & cavity
        if oral_contrast and rng.random() < 0.5:
            hu[pocket] = rng.uniform(150, 450)
            continue
        if rng.random() < 0.4:  # stool: air mixed with contents
            pocket &= rng.random(pocket.shape) < 0.5
        hu[pocket] = -950.0


def paint_ribs_and_pelvis(
    hu: np.ndarray, spine: Spine, abdomen: Abdomen, grid: Grid, rng, table: bool = True
) -> None:
    """Bone around the spine that is not labelled: ribs of the thoracic levels in view, the iliac
    wings and hip joints beside L5 and the sacrum, and (with ``table``) the CT table."""
    axes = grid.axes
    u, v, w = axes
    spacing = np.asarray(grid.spacing, float)
    seeds = np.zeros(hu.shape, bool)
    back_u, back_v = _back_line(spine, abdomen)
    for body in spine.bodies:
        if not (level_id("T1") <= body.label <= level_id("T12") or body.label == level_id("T13")):
            continue
        floating = body.label >= level_id("T11")
        for side in (-1, 1):
            path = _rib_path(body, side, abdomen, back_u, back_v, floating)
            index = np.round((path - grid.origin) / spacing).astype(int)
            keep = np.all((index >= 0) & (index < hu.shape), axis=1)
            seeds[tuple(index[keep].T)] = True
    if seeds.any():
        ribs = ndimage.distance_transform_edt(~seeds, sampling=spacing) <= rng.uniform(4, 6)
        hu[ribs] = 480.0
    _paint_pelvis(hu, spine, axes, rng)
    if table and abdomen.table:
        back = back_v.max() + rng.uniform(5, 30)
        surface = back + 0.0015 * w**2
        table = (v[:, None] >= surface[None, :]) & (v[:, None] <= surface[None, :] + 5)
        hu[:, table] = rng.uniform(120, 300)


def _rib_path(body, side, abdomen: Abdomen, back_u, back_v, floating: bool) -> np.ndarray:
    """Points (u, v, w) every millimetre along one rib: out from the transverse process, round
    the inside of the trunk wall, descending towards the front; T11 and T12 are short."""
    start = body.to_world(body.depth / 2 + 0.5 * body.canal_depth, 0, side * (body.width / 2 + 10))
    inner_depth = abdomen.half_depth - abdomen.fat - abdomen.wall - 8
    inner_width = abdomen.half_width - abdomen.fat - abdomen.wall - 8
    centre_v = float(np.interp(start[0], back_u, back_v)) - abdomen.half_depth
    end_angle = np.deg2rad(95 if floating else 150)
    angles = np.linspace(np.deg2rad(25), end_angle, 400)
    around = np.stack(
        [
            start[0] + abdomen.rib_drop * (angles - angles[0]) / np.pi,
            centre_v + inner_depth * np.cos(angles),
            side * inner_width * np.sin(angles),
        ],
        axis=1,
    )
    joint = np.linspace(start, around[0], 60)
    return np.concatenate([joint, around])


def _paint_pelvis(hu, spine: Spine, axes, rng) -> None:
    """Iliac wings from the sacro-iliac joints, sloping forwards, their crests near the L4–L5
    disc; hip joints below them."""
    if spine.bodies[-1].label != level_id("L5"):
        return
    u, v, w = axes
    l5 = spine.bodies[-1]
    crest_u = l5.center[0] - l5.max_height / 2 + rng.uniform(-15, 15)
    if spine.sacrum is not None:
        joint_v, joint_w = spine.sacrum.joint()
    else:
        joint_v, joint_w = l5.center[1] + 0.3 * l5.depth, l5.width / 2 + 5
    slope = np.tan(np.deg2rad(rng.uniform(30, 50)))
    reach = rng.uniform(80, 115)
    thickness = rng.uniform(8, 16)
    lateral = np.abs(w)[None, None, :] - joint_w
    # The crest arches: lowest at the joint and at the front tip, highest in between.
    top = crest_u + 25 * (1 - np.sin(np.pi * np.clip(lateral / reach, 0, 1)))
    height = u[:, None, None] - top
    narrowing = reach * (1 - 0.5 * np.clip(height / 110, 0, 1))
    plate_v = joint_v - lateral * slope
    offset = np.abs(v[None, :, None] - plate_v)
    wing = (lateral >= 0) & (lateral <= narrowing) & (height >= 0) & (offset <= thickness / 2)
    cortex = np.broadcast_to(offset >= thickness / 2 - 2, wing.shape)
    hu[wing] = np.where(cortex[wing], 650.0, 260.0)
    for side in (-1, 1):
        head = (crest_u + rng.uniform(110, 135), joint_v - rng.uniform(50, 75), side * 95.0)
        hu[_ellipsoid(axes, head, (24.0, 24.0, 24.0))] = 380.0
