"""Indices and grading from vertebral heights: VCR, VC, height loss, Genant grade and type, angles.

Formulas (docs/measurements.md gives each with its source):
- VCR (seed 000, eq. 2) = [1 − V2 / ((V1 + V3) / 2)] × 100, V = anterior heights of a body (V2) and
  its upper (V1) and lower (V3) neighbours.
- VC (seed 001, eq. 1) = [(h1 + h3)/2 − h2] / ((h1 + h3)/2) × 100 with the same anterior heights;
  algebraically equal to VCR, reported under both names for traceability.
- Height loss: for each of the anterior, middle and posterior heights, 1 − height / expected height,
  the expected height coming from the nearest unfractured neighbours above and below (their mean,
  which cancels the steady growth of heights along the spine), as in Genant's comparison with
  adjacent normal vertebrae.
- Genant grade (seed 002): < 20 % loss → 0, 20–25 % → 1 (mild), 25–40 % → 2 (moderate),
  ≥ 40 % → 3 (severe).
- Genant type (seed 002): wedge when the anterior loss is the largest, clearly above the posterior;
  biconcave when the middle loss is the largest with anterior and posterior losses close; crush when
  the posterior loss is the largest or the loss is uniform including the posterior wall.
"""

from __future__ import annotations

import numpy as np

#: Genant's height-loss thresholds (fractions) of grades 1, 2 and 3 (seed 002).
GRADE_THRESHOLDS = (0.20, 0.25, 0.40)
#: Losses closer than this (fraction) count as equal when telling types apart.
TYPE_MARGIN = 0.05


def check_grade_thresholds(thresholds) -> tuple[float, float, float]:
    """Three increasing height-loss fractions in (0, 1), as a tuple; ValueError otherwise."""
    try:
        values = tuple(float(t) for t in thresholds)
    except (TypeError, ValueError):
        raise ValueError(f"grade thresholds must be three numbers, got {thresholds!r}") from None
    increasing = len(values) == 3 and 0 < values[0] < values[1] < values[2] < 1
    if not increasing:
        raise ValueError(
            "grade thresholds must be three increasing height-loss fractions between 0 and 1 "
            f"(Genant: 0.20, 0.25, 0.40), got {thresholds!r}"
        )
    return values


def genant_grade(loss: float, thresholds: tuple[float, ...] = GRADE_THRESHOLDS) -> int:
    """Genant grade 0-3 of a fractional height loss (``thresholds``: grades 1, 2 and 3)."""
    return int(sum(loss >= t for t in thresholds))


def fracture_type(losses: dict[str, float], minimum_loss: float = GRADE_THRESHOLDS[0]) -> str:
    """Genant type from anterior/middle/posterior losses (fractions); ``none`` below
    ``minimum_loss`` (the grade-1 threshold, 20 % in Genant's scheme)."""
    la, lm, lp = losses["anterior"], losses["middle"], losses["posterior"]
    if max(la, lm, lp) < minimum_loss:
        return "none"
    if lp >= max(la, lm) - TYPE_MARGIN:
        return "crush"
    if lm > max(la, lp) + TYPE_MARGIN and abs(la - lp) <= max(TYPE_MARGIN, 0.5 * lm):
        return "biconcave"
    if la >= lm:
        return "wedge"
    return "biconcave"


def vertebral_compression_ratio(v1: float, v2: float, v3: float) -> float:
    """VCR in percent (seed 000, eq. 2) from anterior heights of upper, index and lower bodies."""
    return 100.0 * (1.0 - v2 / ((v1 + v3) / 2.0))


def vertebral_compression(h1: float, h2: float, h3: float) -> float:
    """VC in percent (seed 001, eq. 1) from anterior heights of upper, index and lower bodies."""
    reference = (h1 + h3) / 2.0
    return 100.0 * (reference - h2) / reference


def expected_heights(heights: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Expected (pre-fracture) heights of each body from its nearest normal neighbours.

    ``heights`` is (n, 3) (anterior, middle, posterior) in cranio-caudal order and ``normal`` a
    boolean mask of bodies usable as references. Heights are interpolated linearly (by position in
    the column) between the nearest normal body above and below, which cancels the steady growth of
    heights along the spine; at an end of the column they are those of the nearest normal body.
    Rows without a reference are NaN.
    """
    n = len(heights)
    out = np.full_like(heights, np.nan, dtype=float)
    for k in range(n):
        above = [j for j in range(k - 1, -1, -1) if normal[j]]
        below = [j for j in range(k + 1, n) if normal[j]]
        if above and below:
            a, b = above[0], below[0]
            out[k] = heights[a] + (heights[b] - heights[a]) * (k - a) / (b - a)
        elif above or below:
            # At an end of the column the nearest normal body is the reference, as is: a linear
            # trend extrapolated from two bodies amplifies their noise, and the shape changes at
            # the ends (L5 is lower behind than L4) are not linear.
            out[k] = heights[(above or below)[0]]
    return out


def signed_angle_deg(u: np.ndarray, v: np.ndarray, e_cc: np.ndarray, e_ap: np.ndarray) -> float:
    """Angle (degrees) from vector ``u`` to ``v`` in the plane of ``e_ap`` (x) and ``e_cc`` (y).

    Positive when ``v`` turns from the anterior-posterior direction towards caudal, i.e. for
    endplate vectors (anterior → posterior) ``u`` upper and ``v`` lower: positive when the endplates
    converge anteriorly (kyphotic wedging), negative when they converge posteriorly (lordotic).
    """
    a = np.arctan2(u @ e_cc, u @ e_ap)
    b = np.arctan2(v @ e_cc, v @ e_ap)
    return float(np.degrees(np.angle(np.exp(1j * (b - a)))))
