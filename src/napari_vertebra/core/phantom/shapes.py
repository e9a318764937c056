"""Inside-tests of the phantom's structures in each body's local frame.

``x`` runs posterior from the body centre, ``y`` caudal, ``z`` left (mm). Functions take ``z=None``
for the mid-sagittal profile seen on a lateral radiograph (the union over ``z``).
"""

from __future__ import annotations

import numpy as np
from skimage.measure import points_in_poly

from .anatomy import SACRAL_CREST_MM, SACRAL_DORSAL_WALL_MM, Body, Sacrum

#: Cross-section exponents of the body: rounder in front, flat behind (the posterior wall).
_ANTERIOR_EXPONENT, _POSTERIOR_EXPONENT = 2.5, 5.0


def _cross_section_half_width(body: Body, x: np.ndarray) -> np.ndarray:
    """Half-width (mm, along z) of the body's axial cross-section at AP position ``x``."""
    r = np.clip(np.abs(2 * x / body.depth), 0, 1)
    p = np.where(x < 0, _ANTERIOR_EXPONENT, _POSTERIOR_EXPONENT)
    return 0.5 * body.width * (1 - r**p) ** (1 / p)


def body_inside(
    body: Body, x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None
) -> np.ndarray:
    """Mask of the vertebral body. In 3D the biconcave dip fades towards the lateral walls."""
    t = x / body.depth + 0.5
    inside_ap = (t >= 0) & (t <= 1)
    tc = np.clip(t, 0, 1)
    if z is None:
        height = body.height_at(tc)
        return inside_ap & (np.abs(y) <= height / 2)
    lateral = np.clip(1 - (2 * z / body.width) ** 2, 0, 1)
    height = body.ha + (body.hp - body.ha) * tc - body.b * 4 * tc * (1 - tc) * lateral
    return inside_ap & (np.abs(y) <= height / 2) & (np.abs(z) <= _cross_section_half_width(body, x))


def body_chord(body: Body, x: np.ndarray) -> np.ndarray:
    """Left-right thickness (mm) of the body at AP position ``x``: the X-ray path length."""
    return 2 * _cross_section_half_width(body, x)


def canal_half_width(body: Body) -> float:
    return 0.2 * body.width


def posterior_parts(
    body: Body, x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Masks of posterior elements: pedicles, lamina and facets, spinous, transverse processes."""
    h = body.max_height
    x0 = body.depth / 2
    canal = body.canal_depth
    zp = canal_half_width(body) + 4.0
    parts: dict[str, np.ndarray] = {}
    pedicle = (x >= x0 - 2) & (x <= x0 + canal) & (np.abs(y + 0.15 * h) <= 0.22 * h)
    lamina = (x >= x0 + canal - 3) & (x <= x0 + canal + 7) & (y >= -0.6 * h) & (y <= 0.75 * h)
    angle = np.radians(body.spinous_angle_deg)
    xs, ys = x0 + canal + 5, 0.05 * h
    along = (x - xs) * np.cos(angle) + (y - ys) * np.sin(angle)
    across = -(x - xs) * np.sin(angle) + (y - ys) * np.cos(angle)
    spinous = (along >= 0) & (along <= body.spinous_length) & (np.abs(across) <= 0.22 * h)
    if z is None:
        parts["pedicle"], parts["lamina"], parts["spinous"] = pedicle, lamina, spinous
        return parts
    az = np.abs(z)
    parts["pedicle"] = pedicle & (np.abs(az - zp) <= 4.5)
    # Laminae are separate at each level (interlaminar gaps); the facets lateral to them reach
    # up and down to articulate with the neighbours.
    midline_lamina = (y >= -0.45 * h) & (y <= 0.5 * h) & (az <= zp - 3)
    facets = np.abs(az - zp) <= 5
    parts["lamina"] = lamina & (midline_lamina | facets) & ~((az <= zp - 5) & (x <= x0 + canal))
    parts["spinous"] = spinous & (az <= 3.0)
    transverse_length = 0.45 * body.width
    parts["transverse"] = (
        (x >= x0 - 1)
        & (x <= x0 + 9)
        & (np.abs(y + 0.1 * h) <= 4.5)
        & (az >= zp)
        & (az <= zp + transverse_length)
    )
    return parts


def canal_inside(body: Body, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The spinal canal behind the body (CSF), 3D only."""
    x0 = body.depth / 2
    return (
        (x > x0)
        & (x < x0 + body.canal_depth)
        & (np.abs(z) < canal_half_width(body))
        & (np.abs(y) <= 0.5 * body.max_height + 6)
    )


def sacrum_inside(
    sacrum: Sacrum, x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None
) -> np.ndarray:
    """Mask of the sacrum: its mid-sagittal outline, tapering in width towards the tip in 3D."""
    points = np.stack([x.ravel(), y.ravel()], axis=1)
    inside = points_in_poly(points, sacrum.profile()).reshape(x.shape)
    if z is None:
        return inside
    half_width = 0.5 * sacrum.width * np.clip(1 - 0.75 * y / sacrum.length, 0.15, 1)
    return inside & (np.abs(z) <= half_width)


def sacral_segment_inside(
    segment: Body, ala_half_width: float, x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bone and canal of one 3D sacral segment, in the segment's frame (see :class:`Sacrum`).

    The bone is the segment's body, the walls round the sacral canal with the median crest
    behind, and the lateral mass: from the body's middle to the dorsal wall in depth, out to
    ``ala_half_width``, its front receding and its top sloping down towards the side.
    """
    depth, width, half_height = segment.depth, segment.width, segment.ha / 2
    canal_back = depth / 2 + segment.canal_depth
    canal_half_width = 0.22 * width + 1.0
    wall_back = canal_back + SACRAL_DORSAL_WALL_MM
    wall_side = canal_half_width + SACRAL_DORSAL_WALL_MM
    az = np.abs(z)
    within = np.abs(y) <= half_height
    canal = within & (x > depth / 2) & (x < canal_back) & (az < canal_half_width)
    walls = within & (x >= depth / 2 - 2) & (x <= wall_back) & (az <= wall_side)
    crest = (np.abs(y) <= half_height - 3) & (x >= canal_back)
    crest &= (x <= wall_back + SACRAL_CREST_MM) & (az <= 3.0)
    beyond_body = np.clip(az - width / 2, 0, None)
    front = -0.1 * depth + 0.35 * beyond_body
    back = wall_back - 0.3 * np.clip(az - wall_side, 0, None)
    ala = (az <= ala_half_width) & (x >= front) & (x <= back)
    ala &= (y >= -half_height + 2 + 0.12 * beyond_body) & (y <= half_height)
    bone = (body_inside(segment, x, y, z) | walls | crest | ala) & ~canal
    return bone, canal


def sacral_segment_corners(segment: Body, ala_half_width: float) -> np.ndarray:
    """Corners (model mm) of a box holding a 3D sacral segment with its lateral mass and crest."""
    back = segment.depth / 2 + segment.canal_depth + SACRAL_DORSAL_WALL_MM + SACRAL_CREST_MM + 1
    reach = ala_half_width + 1
    return np.array(
        [
            segment.to_world(x, y, z)
            for x in (-segment.depth / 2 - 1, back)
            for y in (-segment.ha / 2 - 1, segment.ha / 2 + 1)
            for z in (-reach, reach)
        ]
    )


def disc_inside(upper: Body, lower: Body, points: np.ndarray, lateral: bool) -> np.ndarray:
    """Mask of the intervertebral disc between two bodies (bodies are painted over it later)."""
    top = upper.to_world(0, upper.hm / 2)
    bottom = lower.to_world(0, -lower.hm / 2)
    center = 0.5 * (top + bottom)
    e_cc = bottom - top
    gap = float(np.linalg.norm(e_cc))
    e_cc = e_cc / gap
    e_ap = upper.e_ap + lower.e_ap
    e_ap = e_ap - (e_ap @ e_cc) * e_cc
    e_ap /= np.linalg.norm(e_ap)
    d = points - center
    x, y = d @ e_ap, d @ e_cc
    depth = 0.5 * (upper.depth + lower.depth)
    half_height = 0.5 * gap + 0.25 * max(upper.max_height, lower.max_height)
    inside = (np.abs(x) <= depth / 2 * 1.02) & (np.abs(y) <= half_height)
    if lateral:
        z = d @ np.cross(e_cc, e_ap)
        width = 0.5 * (upper.width + lower.width)
        r = np.clip(np.abs(2 * x / depth), 0, 1)
        inside &= np.abs(z) <= 0.5 * width * (1 - r**3) ** (1 / 3)
    return inside
