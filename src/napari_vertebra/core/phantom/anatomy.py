"""The phantom spine: vertebral bodies placed along a curved centreline, with optional fractures.

Coordinates are model millimetres along the canonical axes (u: inferior, v: posterior,
w: left; see :mod:`napari_vertebra.core.geometry`). Each body has its own frame: ``e_cc`` along its
cranio-caudal axis (pointing caudal), ``e_ap`` pointing posterior and ``e_lr = e_cc × e_ap``
pointing left. In that frame (x along ``e_ap``, y along ``e_cc``, z along ``e_lr``) the body's
mid-sagittal profile is ``|x| <= depth/2`` and ``|y| <= h(t)/2`` with ``t = x/depth + 1/2`` and

    h(t) = ha + (hp - ha) * t - b * 4 t (1 - t)

so the anterior height is ``ha`` (t = 0), the posterior height ``hp`` (t = 1) and the middle height
``(ha + hp)/2 - b`` (t = 1/2). The six landmarks are the points of the upper and lower endplates at
t = 0, 1/2, 1; the distance between each upper/lower pair is exactly that height.

Body sizes follow the usual increase from T1 to L5 (heights about 15 → 27 mm, depths 24 → 43 mm;
C3–C7, when asked for, 12.5 → 14.5 mm high and 16 → 22 mm deep)
scaled per patient; these are plausible values for a phantom, not a population reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..labels import SACRUM, craniocaudal_rank, level_id, level_name

#: Genant grade -> range of the fractional height loss drawn for it. Each range keeps one
#: percentage point away from the grade thresholds (20 %, 25 %, 40 %, seed 002) so that the grade
#: of every phantom fracture is unambiguous.
GRADE_LOSS_RANGE = {1: (0.21, 0.24), 2: (0.26, 0.39), 3: (0.41, 0.55)}
FRACTURE_TYPES = ("wedge", "biconcave", "crush")
#: Levels a phantom can hold, cranial to caudal (T13 and L6 variants are not generated; C1-C2,
#: whose shapes are unlike any body, neither).
PHANTOM_LEVELS = (
    tuple(level_id(f"C{i}") for i in range(3, 8))
    + tuple(level_id(f"T{i}") for i in range(1, 13))
    + tuple(level_id(f"L{i}") for i in range(1, 6))
)


def genant_grade_of_loss(loss: float) -> int:
    """Genant semiquantitative grade of a fractional height loss (seed 002)."""
    if loss < 0.20:
        return 0
    if loss < 0.25:
        return 1
    if loss < 0.40:
        return 2
    return 3


@dataclass
class Body:
    """One vertebra of the phantom: body geometry, posterior elements and fracture."""

    label: int
    center: np.ndarray
    e_cc: np.ndarray
    e_ap: np.ndarray
    e_lr: np.ndarray
    depth: float
    width: float
    ha: float
    hp: float
    b: float
    reference: tuple[float, float, float]
    grade: int = 0
    fracture_type: str = "none"
    loss: float = 0.0
    canal_depth: float = 15.0
    spinous_length: float = 30.0
    spinous_angle_deg: float = 25.0
    trabecular_density: float = 1.0

    @property
    def level(self) -> str:
        return level_name(self.label)

    @property
    def hm(self) -> float:
        return 0.5 * (self.ha + self.hp) - self.b

    @property
    def max_height(self) -> float:
        return max(self.ha, self.hp, self.hm)

    def height_at(self, t: np.ndarray) -> np.ndarray:
        """Body height at fractional AP position ``t`` (0 anterior, 1 posterior)."""
        return self.ha + (self.hp - self.ha) * t - self.b * 4.0 * t * (1.0 - t)

    def to_world(self, x: float, y: float, z: float = 0.0) -> np.ndarray:
        return self.center + x * self.e_ap + y * self.e_cc + z * self.e_lr

    def spinous_tip(self) -> np.ndarray:
        """Model point just behind the tip of the spinous process (where the back's skin
        lines of the renderers start)."""
        return self.to_world(self.depth / 2 + self.canal_depth + 5 + self.spinous_length, 0)

    def landmarks(self) -> dict[str, np.ndarray]:
        """The six endplate landmarks in model mm (3D)."""
        half = self.depth / 2
        points = {}
        for name, x, h in (
            ("anterior", -half, self.ha),
            ("middle", 0.0, self.hm),
            ("posterior", half, self.hp),
        ):
            points[f"upper_{name}"] = self.to_world(x, -h / 2)
            points[f"lower_{name}"] = self.to_world(x, h / 2)
        return points

    def local(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local (x, y, z) of world points ``(..., 3)``."""
        d = points - self.center
        return d @ self.e_ap, d @ self.e_cc, d @ self.e_lr


#: Thickness (mm) of the 3D sacrum's dorsal wall behind the canal, and how far its median crest
#: reaches beyond it.
SACRAL_DORSAL_WALL_MM, SACRAL_CREST_MM = 5.0, 7.0


@dataclass
class Sacrum:
    """The sacrum; its frame's origin is the middle of the S1 upper endplate.

    On a lateral radiograph it is drawn from its mid-sagittal :meth:`profile`. In 3D it is five
    fused segments S1-S5 (``segments``, each a :class:`Body` labelled 26 whose box is the segment's
    vertebral body) with the canal behind them, the dorsal wall and, beside S1-S3, the alae and
    lateral masses reaching ``ala_half_widths`` (mm from the midline) to the sacro-iliac joints.
    """

    center: np.ndarray
    e_cc: np.ndarray
    e_ap: np.ndarray
    e_lr: np.ndarray
    depth: float
    width: float
    length: float
    segments: list[Body] = field(default_factory=list)
    ala_half_widths: tuple[float, ...] = ()

    def to_world(self, x: float, y: float, z: float = 0.0) -> np.ndarray:
        return self.center + x * self.e_ap + y * self.e_cc + z * self.e_lr

    def upper_endplate(self) -> dict[str, np.ndarray]:
        half = self.depth / 2
        return {
            "anterior": self.to_world(-half, 0.0),
            "middle": self.to_world(0.0, 0.0),
            "posterior": self.to_world(half, 0.0),
        }

    def local(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = points - self.center
        return d @ self.e_ap, d @ self.e_cc, d @ self.e_lr

    def joint(self) -> tuple[float, float]:
        """Posterior (v) and left-right (w) model position of the sacro-iliac joints."""
        if not self.segments:
            return float(self.center[1]), self.width / 2
        s1 = self.segments[0]
        ala_middle = 0.5 * (s1.depth / 2 + s1.canal_depth + SACRAL_DORSAL_WALL_MM)
        return float(s1.to_world(ala_middle, 0.0)[1]), self.ala_half_widths[0]

    def profile(self) -> np.ndarray:
        """Mid-sagittal outline (x, y) in local mm: S1 block, then a tapering, curving tail."""
        half, length = self.depth / 2, self.length
        return np.array(
            [
                (-half, 0.0),
                (half, 0.0),
                (half + 4, 0.3 * length),
                (half + 2, 0.6 * length),
                (0.35 * half + 8, length),
                (0.35 * half - 6, length),
                (-half + 0.45 * half, 0.6 * length),
                (-half + 0.1 * half, 0.3 * length),
            ]
        )


@dataclass
class Spine:
    """A whole phantom spine in model coordinates."""

    bodies: list[Body]
    sacrum: Sacrum | None
    patient_scale: float
    lateral: bool = False
    extras: dict = field(default_factory=dict)


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


#: Shares of the L1-L5 lordosis taken by the L1/L2 ... L4/L5 segments: the lower lumbar
#: segments are the most lordotic (in adults L4/L5 and L5/S1 take most of it).
_LORDOSIS_SHARES = (0.15, 0.2, 0.28, 0.37)


def _lordosis_profile(
    levels: list[int], dims: list[tuple[float, float, float]], lordosis_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Arc positions (mm, approximately the body centres) and the extra sagittal turn (degrees)
    of the lumbar lordosis there, centred on the lumbar levels in view so that it bends the
    column without tilting it as a whole; flat without two lumbar levels."""
    centres, s = [], 20.0
    for height, _, disc in dims:
        centres.append(s + height / 2)
        s += height + disc
    lumbar = [k for k, label in enumerate(levels) if level_id("L1") <= label <= level_id("L5")]
    if len(lumbar) < 2 or not lordosis_deg:
        return np.array([0.0, 1.0]), np.zeros(2)
    turns = [0.0]
    for k in lumbar[1:]:
        segment = levels[k] - level_id("L2")  # the segment above this level: L1/L2 is 0
        turns.append(turns[-1] + lordosis_deg * _LORDOSIS_SHARES[segment])
    theta = np.array(turns) - np.mean(turns)
    return np.array([centres[k] for k in lumbar]), theta


def _mean_dimensions(label: int) -> tuple[float, float, float]:
    """Typical (height, depth, disc height) in mm by level, T1 = rank 0."""
    r = craniocaudal_rank(label) - craniocaudal_rank(level_id("T1"))
    if r < 0:  # C3-C7: bodies about 13-14.5 mm high and 16-22 mm deep, discs 4-5 mm
        r = max(r, -5)
        return 15.0 + 0.5 * r, 24.0 + 1.6 * r, 4.0 - 0.2 * r
    r = min(r, 16)
    return 15.0 + 0.75 * min(r, 15), 24.0 + 1.2 * r, 4.0 + 0.42 * r


def sample_spine(
    rng: np.random.Generator,
    levels: list[int],
    with_sacrum: bool,
    fractures: dict[int, tuple[int, str]],
    curvature_deg: float,
    tilt_deg: float,
    lateral_curvature_deg: float = 0.0,
    axial_rotation_deg: float = 0.0,
    patient_scale: float = 1.0,
    lordosis_deg: float = 0.0,
    three_d: bool = False,
) -> Spine:
    """Place the bodies of ``levels`` along a random smooth centreline.

    Parameters
    ----------
    levels
        VerSe IDs of the vertebrae, cranial to caudal, consecutive.
    with_sacrum
        Add the sacrum below the last level (which should then be L5).
    fractures
        VerSe ID -> (Genant grade 1-3, type) of the fractured bodies.
    curvature_deg
        Total change of the sagittal tangent angle over the field (lordosis / kyphosis).
    tilt_deg
        In-plane rotation of the whole spine (patient tilt).
    lateral_curvature_deg, axial_rotation_deg
        Scoliosis-like coronal curvature and the largest axial rotation of a vertebra (3D only).
    lordosis_deg
        Lumbar lordosis: how far the cranio-caudal axis turns posteriorly from L1 to L5
        (:func:`_lordosis_profile`), on top of ``curvature_deg``.
    three_d
        Give the sacrum its 3D segments (:func:`sacral_segments`); the draws for them come after
        all others, so a radiograph phantom of a seed is the same with or without them.
    """
    n = len(levels)
    dims = []
    for label in levels:
        height, depth, disc = _mean_dimensions(label)
        noise = rng.normal(1.0, 0.006, size=2)
        dims.append(
            (
                height * patient_scale * noise[0],
                depth * patient_scale * noise[1],
                disc * patient_scale * rng.uniform(0.9, 1.1),
            )
        )
    phase = rng.uniform(0, 2 * np.pi)
    lat_phase = rng.uniform(0, 2 * np.pi)
    total = sum(d[0] + d[2] for d in dims) + 60.0
    lordosis_s, lordosis_theta = _lordosis_profile(levels, dims, lordosis_deg)

    def tangent(s: float) -> np.ndarray:
        frac = s / total
        theta = np.radians(
            tilt_deg
            + curvature_deg * (np.sin(np.pi * frac + phase) - np.sin(phase))
            + np.interp(s, lordosis_s, lordosis_theta)
        )
        phi = np.radians(lateral_curvature_deg * np.sin(2 * np.pi * frac + lat_phase))
        return _normalise(
            np.array([np.cos(theta) * np.cos(phi), np.sin(theta) * np.cos(phi), np.sin(phi)])
        )

    step = 0.5
    grid = np.arange(0.0, total + 100.0, step)
    tangents = np.array([tangent(s) for s in grid])
    positions = np.concatenate([[np.zeros(3)], np.cumsum(tangents[:-1] * step, axis=0)])

    def frame(s: float, rotation_deg: float) -> tuple[np.ndarray, ...]:
        k = min(int(round(s / step)), len(grid) - 1)
        e_cc = tangents[k]
        posterior = np.array([0.0, 1.0, 0.0])
        e_ap = _normalise(posterior - (posterior @ e_cc) * e_cc)
        e_lr = np.cross(e_cc, e_ap)
        angle = np.radians(rotation_deg)
        e_ap, e_lr = (
            np.cos(angle) * e_ap + np.sin(angle) * e_lr,
            -np.sin(angle) * e_ap + np.cos(angle) * e_lr,
        )
        return positions[k], e_cc, e_ap, e_lr

    bodies: list[Body] = []
    s = 20.0
    trabecular = rng.uniform(0.55, 1.15)
    thoracic_ratio, lumbar_ratio = rng.uniform(0.93, 0.98), rng.uniform(0.98, 1.02)
    concavity = rng.uniform(0.0, 0.03)
    for k, label in enumerate(levels):
        height, depth, disc = dims[k]
        rank = craniocaudal_rank(label) - craniocaudal_rank(level_id("T1"))
        # Normal shape changes gradually along the spine: thoracic bodies slightly wedged, lumbar
        # ones square (a linear ramp from T10 to L2), L5 slightly reversed; small per-body noise.
        ramp = float(np.clip((rank - 9) / 4, 0, 1))
        ratio = thoracic_ratio + ramp * (lumbar_ratio - thoracic_ratio)
        if rank < 0:  # cervical bodies: about as high in front as behind
            ratio = lumbar_ratio
        if label == level_id("L5"):
            ratio += 0.04
        ratio += rng.normal(0.0, 0.004)
        hp0 = height
        ha0 = height * ratio
        b0 = concavity * height * rng.uniform(0.9, 1.1)
        hm0 = 0.5 * (ha0 + hp0) - b0
        ha, hp, b, grade, ftype, loss = ha0, hp0, b0, 0, "none", 0.0
        if label in fractures:
            grade, ftype = fractures[label]
            low, high = GRADE_LOSS_RANGE[grade]
            loss = float(rng.uniform(low, high))
            if ftype == "wedge":
                ha, hp = ha0 * (1 - loss), hp0 * (1 - loss * rng.uniform(0.0, 0.15))
            elif ftype == "biconcave":
                ha = ha0 * (1 - loss * rng.uniform(0.0, 0.2))
                hp = hp0 * (1 - loss * rng.uniform(0.0, 0.2))
                b = 0.5 * (ha + hp) - (1 - loss) * hm0
            elif ftype == "crush":
                hp, ha = hp0 * (1 - loss), ha0 * (1 - loss * rng.uniform(0.75, 1.0))
                b = b0 * (1 - loss)
            else:
                raise ValueError(f"unknown fracture type {ftype!r}; use {FRACTURE_TYPES}")
        extent = max(ha, hp, 0.5 * (ha + hp) - b)
        s_center = s + extent / 2
        rotation = axial_rotation_deg * np.sin(np.pi * k / max(n - 1, 1) + lat_phase)
        center, e_cc, e_ap, e_lr = frame(s_center, rotation)
        bodies.append(
            Body(
                label=label,
                center=center,
                e_cc=e_cc,
                e_ap=e_ap,
                e_lr=e_lr,
                depth=depth,
                width=depth * rng.uniform(1.35, 1.5),
                ha=ha,
                hp=hp,
                b=b,
                reference=(ha0, hm0, hp0),
                grade=grade,
                fracture_type=ftype,
                loss=loss,
                canal_depth=patient_scale * rng.uniform(13, 18),
                spinous_length=patient_scale * rng.uniform(22, 34) * (1.1 if rank >= 12 else 1.0),
                spinous_angle_deg=rng.uniform(40, 60) if rank < 12 else rng.uniform(10, 25),
                trabecular_density=trabecular * rng.uniform(0.95, 1.05),
            )
        )
        s = s_center + extent / 2 + disc
    sacrum = None
    if with_sacrum:
        last = bodies[-1]
        depth = last.depth * rng.uniform(0.95, 1.05)
        center, lumbar_cc, lumbar_ap, _ = frame(s, 0.0)
        # Sacral slope: the sacrum's axis turns posteriorly relative to the lumbar axis.
        e_cc, e_ap = _turned(lumbar_cc, lumbar_ap, rng.uniform(15, 30))
        sacrum = Sacrum(
            center=center,
            e_cc=e_cc,
            e_ap=e_ap,
            e_lr=np.cross(e_cc, e_ap),
            depth=depth,
            width=last.width * 1.1,
            length=95 * patient_scale,
        )
        if three_d:
            sacrum = sacral_segments(rng, last, center, lumbar_cc, lumbar_ap, patient_scale)
    return Spine(
        bodies=bodies,
        sacrum=sacrum,
        patient_scale=patient_scale,
        extras={"levels": [level_name(v) for v in levels] + (["S1"] if with_sacrum else [])},
    )


def _turned(e_cc: np.ndarray, e_ap: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The frame turned in the sagittal plane; positive turns the caudal axis posteriorly."""
    a = np.radians(degrees)
    return np.cos(a) * e_cc + np.sin(a) * e_ap, -np.sin(a) * e_cc + np.cos(a) * e_ap


def sacral_segments(
    rng: np.random.Generator,
    l5: Body,
    top: np.ndarray,
    e_cc: np.ndarray,
    e_ap: np.ndarray,
    patient_scale: float,
) -> Sacrum:
    """A 3D sacrum below ``l5``: S1 across a wedge-shaped disc, then S2-S5 as a curved plate.

    ``top`` is the middle of the S1 upper endplate and ``e_cc``/``e_ap`` the lumbar frame's
    caudal and posterior axes there. Shapes follow the adult sacrum as seen on the real lumbar
    CT in ``shared/data``: S1 a body about as large as L5 whose upper endplate is turned 8-20
    degrees further back than L5's lower one (the lordotic L5/S1 disc, anterior gap wider);
    below it the sacrum narrows to a plate about half S1's depth that turns 20-35 degrees back,
    then curves forward again by 10-18 degrees per segment (the sacral kyphosis). The alae reach
    20-28 mm beyond S1's body on each side (a sacrum about 100-120 mm wide) and taper over S2-S3.
    """
    s1_turn = rng.uniform(8.0, 20.0)
    plate_turn = rng.uniform(20.0, 35.0)
    kyphosis = rng.uniform(10.0, 18.0)
    height = l5.ha * rng.uniform(0.95, 1.15)
    depth = l5.depth * rng.uniform(0.85, 0.95)
    width = l5.width * rng.uniform(0.95, 1.05)
    canal = patient_scale * rng.uniform(10.0, 14.0)
    ala = width / 2 + patient_scale * rng.uniform(20.0, 28.0)
    # Per segment S1-S5: height, depth, width, canal depth as fractions of S1's, and the alae's
    # reach as a fraction of theirs beside S1 (none beside S4-S5).
    fractions = (
        (1.0, 1.0, 1.0, 1.0, 1.0),
        (0.8, 0.55, 0.75, 0.8, 0.85),
        (0.7, 0.45, 0.6, 0.65, 0.6),
        (0.6, 0.38, 0.5, 0.5, 0.0),
        (0.5, 0.32, 0.42, 0.4, 0.0),
    )
    turns = (0.0, plate_turn, plate_turn - kyphosis, plate_turn - 2 * kyphosis)
    turns += (plate_turn - 3 * kyphosis,)
    s1_cc, s1_ap = _turned(e_cc, e_ap, s1_turn)
    segments: list[Body] = []
    alae: list[float] = []
    joint = top
    for k, ((fh, fd, fw, fc, fa), turn) in enumerate(zip(fractions, turns, strict=True)):
        seg_cc, seg_ap = _turned(s1_cc, s1_ap, turn)
        h, d = height * fh, depth * fd
        # Consecutive segments meet at their posterior corners; the turn would leave a wedge
        # open in front (or behind), so each segment reaches up far enough to close it.
        overlap = 0.0 if k == 0 else d * np.tan(np.radians(abs(turn - turns[k - 1]))) + 1.5
        if k == 0:
            center = top + (h / 2) * seg_cc
        else:
            center = joint + ((h - overlap) / 2) * seg_cc - (d / 2) * seg_ap
        h += overlap
        segments.append(
            Body(
                label=SACRUM,
                center=center,
                e_cc=seg_cc,
                e_ap=seg_ap,
                e_lr=np.cross(seg_cc, seg_ap),
                depth=d,
                width=width * fw,
                ha=h,
                hp=h,
                b=0.0,
                reference=(h, h, h),
                canal_depth=canal * fc,
                trabecular_density=l5.trabecular_density,
            )
        )
        alae.append(max(width * fw / 2 + 4.0, ala * fa))
        joint = center + (h / 2) * seg_cc + (d / 2) * seg_ap
    length = float(np.linalg.norm(joint - top))
    return Sacrum(
        center=top,
        e_cc=s1_cc,
        e_ap=s1_ap,
        e_lr=np.cross(s1_cc, s1_ap),
        depth=depth,
        width=2 * alae[0],
        length=length,
        segments=segments,
        ala_half_widths=tuple(alae),
    )


def choose_fractures(
    rng: np.random.Generator,
    levels: list[int],
    rate: float,
    grade: int | None = None,
    fracture_type: str | None = None,
) -> dict[int, tuple[int, str]]:
    """Random fractures: never the first or last body (both neighbours exist), never adjacent."""
    chosen: dict[int, tuple[int, str]] = {}
    for k in range(1, len(levels) - 1):
        if levels[k - 1] in chosen or rng.random() >= rate:
            continue
        g = grade if grade is not None else int(rng.integers(1, 4))
        t = fracture_type if fracture_type is not None else str(rng.choice(FRACTURE_TYPES))
        chosen[levels[k]] = (g, t)
    return chosen


__all__ = [
    "SACRUM",
    "Body",
    "FRACTURE_TYPES",
    "GRADE_LOSS_RANGE",
    "PHANTOM_LEVELS",
    "Sacrum",
    "Spine",
    "choose_fractures",
    "genant_grade_of_loss",
    "sacral_segments",
    "sample_spine",
]
