"""Phantom cases: random spines rendered with exact ground truth, and their folders on disk."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..image import SpineImage
from ..io.errors import SpineIOError
from ..io.nifti import write_nifti
from ..labels import level_id, level_name
from ..landmarks import LANDMARK_NAMES
from .abdomen import Abdomen
from .anatomy import (
    FRACTURE_TYPES,
    PHANTOM_LEVELS,
    Spine,
    choose_fractures,
    sample_spine,
)
from .render import Grid, body_corners, render_ct, render_radiograph, sacrum_corners


@dataclass
class Phantom:
    """A rendered phantom: image, body labels, whole-vertebra labels and ground truth."""

    image: SpineImage
    labels: SpineImage
    vertebrae: SpineImage
    truth: dict[str, Any]


def _levels_for(rng: np.random.Generator, modality: str) -> tuple[list[int], bool]:
    top_choices = (
        ("T8", "T9", "T10", "T11", "T12") if modality == "XR" else ("T10", "T11", "T12", "L1")
    )
    top = level_id(str(rng.choice(top_choices)))
    with_sacrum = bool(rng.random() < 0.85)
    bottom = level_id("L5") if with_sacrum else level_id(str(rng.choice(("L3", "L4", "L5"))))
    start, stop = PHANTOM_LEVELS.index(top), PHANTOM_LEVELS.index(bottom)
    return list(PHANTOM_LEVELS[start : stop + 1]), with_sacrum


def make_phantom(
    modality: Literal["xr", "ct", "XR", "CT"] = "xr",
    seed: int | np.random.SeedSequence = 0,
    *,
    levels: list[str] | None = None,
    with_sacrum: bool | None = None,
    fractures: dict[str, tuple[int, str]] | None = None,
    fracture_rate: float = 0.2,
    grade: int | None = None,
    fracture_type: str | None = None,
    spacing: float | tuple[float, ...] | None = None,
    curvature_deg: float | None = None,
    tilt_deg: float | None = None,
    axial_rotation_deg: float | None = None,
    lateral_curvature_deg: float | None = None,
    patient_scale: float | None = None,
    lordosis_deg: float | None = None,
    crop_top: bool | None = None,
    surroundings: Literal["spine", "abdomen"] = "spine",
) -> Phantom:
    """Render one synthetic spine with exact ground truth.

    Parameters
    ----------
    modality
        ``"xr"``: lateral radiograph (2D, uint16, bone bright); ``"ct"``: CT volume in HU.
    seed
        Seed (or SeedSequence) of every random choice; the same seed gives the same phantom.
    levels
        Level names, cranial to caudal and consecutive (e.g. ``["T12", "L1", ..., "L5"]``);
        random by default (a thoracolumbar field of view).
    with_sacrum
        Include the sacrum below L5; random (85 %) by default, only possible when L5 is the last.
    fractures
        Level name -> (Genant grade 1-3, type). Default: random fractures with ``fracture_rate``
        per body (never the first or last body, never two adjacent), of ``grade`` and
        ``fracture_type`` when given.
    spacing
        Pixel/voxel spacing in mm (one number or one per axis); random realistic by default.
    curvature_deg, tilt_deg, axial_rotation_deg, lateral_curvature_deg
        Sagittal curvature (lordosis/kyphosis), in-plane tilt, per-vertebra axial rotation and
        coronal (scoliotic) curvature; the last two only apply to CT. Random by default.
    patient_scale
        Size factor of all bodies (0.85-1.15 by default).
    lordosis_deg
        CT only: how far the column turns back from L1 to L5, spread over the lumbar levels in
        view, most at L4/L5 (20-50 degrees by default; 0 for none). Radiographs keep their
        single ``curvature_deg``.
    crop_top
        Let the field of view cut through the top vertebra (radiographs; 25 % by default).
    surroundings
        CT only. ``"spine"``: a field of view cropped around the spine, soft tissue around it.
        ``"abdomen"``: the whole trunk section with its wall, viscera, bowel gas, ribs, iliac
        wings and table (:mod:`.abdomen`), at a coarser clinical spacing by default (1.5–3 mm),
        as in a routine abdominal CT.

    Returns
    -------
    Phantom
        ``image``, ``labels`` (vertebral bodies, VerSe IDs, sacrum 26), ``vertebrae`` (bodies
        with posterior elements) and ``truth`` (see docs/phantoms.md).
    """
    modality = modality.upper()
    if modality not in ("XR", "CT"):
        raise ValueError(f"modality must be 'xr' or 'ct', got {modality!r}")
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(seq)
    is_ct = modality == "CT"
    if surroundings not in ("spine", "abdomen"):
        raise ValueError(f"surroundings must be 'spine' or 'abdomen', got {surroundings!r}")
    if surroundings == "abdomen" and not is_ct:
        raise ValueError("surroundings='abdomen' applies to CT phantoms only")
    if levels is None:
        level_ids, default_sacrum = _levels_for(rng, modality)
    else:
        level_ids = [level_id(name) for name in levels]
        ranks = [PHANTOM_LEVELS.index(v) if v in PHANTOM_LEVELS else -99 for v in level_ids]
        if any(r < 0 for r in ranks) or np.any(np.diff(ranks) != 1):
            raise ValueError(f"levels {levels} must be consecutive levels between C3 and L5")
        default_sacrum = level_ids[-1] == level_id("L5")
    if with_sacrum is None:
        with_sacrum = default_sacrum
    if with_sacrum and level_ids[-1] != level_id("L5"):
        raise ValueError("a sacrum needs L5 as the last level")
    if fractures is None:
        if grade is not None and grade not in (1, 2, 3):
            raise ValueError("grade must be 1, 2 or 3")
        if fracture_type is not None and fracture_type not in FRACTURE_TYPES:
            raise ValueError(f"fracture_type must be one of {FRACTURE_TYPES}")
        fracture_ids = choose_fractures(rng, level_ids, fracture_rate, grade, fracture_type)
    else:
        fracture_ids = {}
        for name, (g, t) in fractures.items():
            if level_id(name) not in level_ids:
                raise ValueError(f"fracture level {name} is not among the phantom's levels")
            if g not in (1, 2, 3) or t not in FRACTURE_TYPES:
                raise ValueError(
                    f"fracture {name}: grade must be 1-3 and type one of "
                    f"{FRACTURE_TYPES}, got ({g}, {t!r})"
                )
            fracture_ids[level_id(name)] = (int(g), t)

    def given_or(value: float | None, low: float, high: float, applies: bool = True) -> float:
        if not applies:
            return 0.0
        return float(value) if value is not None else float(rng.uniform(low, high))

    tilt_range = 6.0 if is_ct else 12.0
    params = {
        "curvature_deg": given_or(curvature_deg, -15, 15),
        "tilt_deg": given_or(tilt_deg, -tilt_range, tilt_range),
        "lateral_curvature_deg": given_or(lateral_curvature_deg, -8, 8, applies=is_ct),
        "axial_rotation_deg": given_or(axial_rotation_deg, -10, 10, applies=is_ct),
        "patient_scale": given_or(patient_scale, 0.85, 1.15),
        "lordosis_deg": given_or(lordosis_deg, 20, 50, applies=is_ct),
    }
    spine = sample_spine(rng, level_ids, with_sacrum, fracture_ids, **params, three_d=is_ct)
    ndim = 3 if is_ct else 2
    abdomen = Abdomen.sample(rng) if surroundings == "abdomen" else None
    if spacing is None and abdomen is not None:
        step = rng.uniform(1.5, 3.0)
        spacing_mm = np.array([rng.uniform(step, 3.0), step, step])
    elif spacing is None:
        step = rng.uniform(0.25, 0.35)
        spacing_mm = (
            np.array([rng.uniform(1.0, 1.5), *(2 * [rng.uniform(0.7, 0.95)])])
            if is_ct
            else np.array([step, step])
        )
    else:
        spacing_mm = np.broadcast_to(np.asarray(spacing, dtype=float), (ndim,)).copy()
    if crop_top is None:
        crop_top = (not is_ct) and rng.random() < 0.25
    grid = _field_of_view(spine, spacing_mm, rng, is_ct, bool(crop_top))
    if abdomen is not None:
        grid = _widen_to_trunk(grid, spine, abdomen, rng)
    if is_ct:
        data, bodies, vertebrae = render_ct(spine, grid, rng, abdomen)
    else:
        data, bodies, vertebrae = render_radiograph(spine, grid, rng)
    codes = ("I", "P", "L")[:ndim]
    source = {"format": "phantom", "spacing_source": "phantom", "warnings": []}
    image = SpineImage(data, tuple(spacing_mm), modality, codes, source=dict(source))
    labels = image.with_array(bodies, kind="labels")
    whole = image.with_array(vertebrae, kind="labels")
    params.update(
        {
            "seed": _seed_repr(seed),
            "spacing_mm": [float(s) for s in spacing_mm],
            "crop_top": bool(crop_top),
            "fracture_rate": fracture_rate,
            **({"surroundings": surroundings} if is_ct else {}),
        }
    )
    truth = _truth(spine, grid, modality, params)
    return Phantom(image=image, labels=labels, vertebrae=whole, truth=truth)


def _seed_repr(seed: int | np.random.SeedSequence) -> Any:
    if isinstance(seed, np.random.SeedSequence):
        return {"entropy": int(seed.entropy), "spawn_key": [int(k) for k in seed.spawn_key]}
    return int(seed)


def _field_of_view(
    spine: Spine, spacing: np.ndarray, rng: np.random.Generator, is_ct: bool, crop_top: bool
) -> Grid:
    ndim = len(spacing)
    corners = [body_corners(b, is_ct) for b in spine.bodies]
    if spine.sacrum is not None:
        corners.append(sacrum_corners(spine, is_ct))
    points = np.concatenate(corners)[:, :ndim]
    low, high = points.min(axis=0), points.max(axis=0)
    top = spine.bodies[0]
    low[0] = min(low[0], top.to_world(0, -top.max_height / 2)[0])
    if is_ct:
        margin_low = np.array([rng.uniform(2, 10), rng.uniform(20, 40), 0.0])
        margin_high = np.array([rng.uniform(-30, 0), rng.uniform(25, 45), 0.0])
        # Across (w), a spine CT's reconstruction field is 130-220 mm wide, centred on the
        # bodies: the ribs' necks and the iliac wings beside the column are in view (the
        # sacrum's alae may be cut).
        bodies_w = np.concatenate(corners[: len(spine.bodies)])[:, 2]
        centre = 0.5 * (bodies_w.min() + bodies_w.max())
        half = max(rng.uniform(65, 110), 0.5 * np.ptp(bodies_w) + 5)
        low[2], high[2] = centre - half, centre + half
    else:
        margin_low = np.array([rng.uniform(5, 30), rng.uniform(30, 80)])
        margin_high = np.array([rng.uniform(-40, 0), rng.uniform(15, 40)])
    low, high = low - margin_low, high + margin_high
    if crop_top:
        first = spine.bodies[0]
        low[0] = first.to_world(0, -first.hm / 2 + rng.uniform(0.2, 0.6) * first.hm)[0]
    shape = tuple(int(np.ceil((high[k] - low[k]) / spacing[k])) + 1 for k in range(ndim))
    return Grid(origin=low, spacing=spacing, shape=shape)


def _widen_to_trunk(grid: Grid, spine: Spine, abdomen: Abdomen, rng: np.random.Generator) -> Grid:
    """The spine's field of view, widened in v and w to the whole trunk section (a scan's
    field of view sometimes clips the flanks) and taller: 10–40 mm above, and below 10–40 mm or,
    when L5 is in view, 30–110 mm into the pelvis."""
    low, high = abdomen.extent(spine)
    margin = rng.uniform(-0.08, 0.08, size=2) * (high - low) + 5.0
    start = np.array(grid.origin, float)
    stop = start + (np.array(grid.shape) - 1) * grid.spacing
    start[1:] = np.minimum(start[1:], low - margin)
    stop[1:] = np.maximum(stop[1:], high + margin)
    start[0] -= rng.uniform(10, 40)
    # An abdominal scan that reaches L5 usually goes on down through the pelvis.
    stop[0] += rng.uniform(30, 110) if spine.bodies[-1].level == "L5" else rng.uniform(10, 40)
    shape = tuple(int(np.ceil((stop[k] - start[k]) / grid.spacing[k])) + 1 for k in range(3))
    return Grid(origin=start, spacing=grid.spacing, shape=shape)


def _truth(spine: Spine, grid: Grid, modality: str, params: dict[str, Any]) -> dict[str, Any]:
    ndim = grid.ndim
    shape = np.array(grid.shape)
    extent = (shape - 1) * grid.spacing

    def world(point: np.ndarray) -> list[float]:
        return [round(float(c), 4) for c in (point[:ndim] - grid.origin)]

    def visible(point: np.ndarray) -> bool:
        w = point[:ndim] - grid.origin
        return bool(np.all(w >= 0) and np.all(w <= extent))

    vertebrae = []
    for body in spine.bodies:
        marks = body.landmarks()
        corners = [
            body.to_world(x, y)
            for x in (-body.depth / 2, body.depth / 2)
            for y in (-body.max_height / 2, body.max_height / 2)
        ]
        ha0, hm0, hp0 = body.reference
        entry: dict[str, Any] = {
            "level": body.level,
            "label": body.label,
            "landmarks": {name: world(marks[name]) for name in LANDMARK_NAMES},
            "anterior_height_mm": round(body.ha, 4),
            "middle_height_mm": round(body.hm, 4),
            "posterior_height_mm": round(body.hp, 4),
            "reference_heights_mm": {
                "anterior": round(ha0, 4),
                "middle": round(hm0, 4),
                "posterior": round(hp0, 4),
            },
            "height_loss_percent": round(100 * body.loss, 4),
            "genant_grade": body.grade,
            "fracture_type": body.fracture_type,
            "depth_mm": round(body.depth, 4),
            "center_mm": world(body.center),
            "axes": {
                "cranio_caudal": [round(float(c), 6) for c in body.e_cc[:ndim]],
                "anterior_posterior": [round(float(c), 6) for c in body.e_ap[:ndim]],
            },
            "fully_visible": all(visible(p) for p in [*marks.values(), *corners]),
        }
        if ndim == 3:
            entry["axes"]["left_right"] = [round(float(c), 6) for c in body.e_lr]
            entry["width_mm"] = round(body.width, 4)
        vertebrae.append(entry)
    for k in range(1, len(vertebrae) - 1):
        v1, v2, v3 = (vertebrae[j]["anterior_height_mm"] for j in (k - 1, k, k + 1))
        vertebrae[k]["vcr_percent"] = round(100 * (1 - v2 / ((v1 + v3) / 2)), 4)
    sacrum = None
    if spine.sacrum is not None:
        plate = spine.sacrum.upper_endplate()
        sacrum = {
            "level": "S1",
            "label": 26,
            "upper_endplate": {name: world(p) for name, p in plate.items()},
            "fully_visible": all(visible(p) for p in plate.values()),
        }
    return {
        "format": "napari-vertebra phantom truth v1",
        "modality": modality,
        "shape": [int(n) for n in grid.shape],
        "spacing_mm": [float(s) for s in grid.spacing],
        "axis_codes": list(("I", "P", "L")[:ndim]),
        "coordinates": "world mm along the canonical axes: index * spacing_mm (first voxel at 0)",
        "levels": [level_name(b.label) for b in spine.bodies] + (["S1"] if sacrum else []),
        "parameters": params,
        "vertebrae": vertebrae,
        "sacrum": sacrum,
    }


def write_phantom(phantom: Phantom, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``image.nii.gz``, ``labels.nii.gz``, ``vertebrae.nii.gz`` and ``truth.json``.

    The case is assembled in a hidden temporary folder and renamed into place, so an interrupted
    run never leaves a half-written case; an existing case folder is kept unless ``overwrite``.
    """
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise SpineIOError(
            folder, "already exists; pass overwrite=True (--overwrite) to replace it"
        )
    tmp = folder.with_name(f".{folder.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_nifti(phantom.image, tmp / "image.nii.gz")
    write_nifti(phantom.labels, tmp / "labels.nii.gz")
    write_nifti(phantom.vertebrae, tmp / "vertebrae.nii.gz")
    (tmp / "truth.json").write_text(json.dumps(phantom.truth, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def generate_phantoms(
    modality: str,
    n: int,
    seed: int,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    progress: Any = None,
    **options: Any,
) -> list[Path]:
    """Write ``n`` phantom cases to ``out_dir/<modality>-s<seed>-<k>/``.

    Case ``k`` uses the k-th child of ``SeedSequence(seed)``, so one case can be regenerated alone
    and the same command always writes the same cases. ``progress(done, total)`` is called after
    each case.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    out_dir = Path(out_dir)
    children = np.random.SeedSequence(seed).spawn(n)
    written = []
    for k, child in enumerate(children):
        name = f"{modality.lower()}-s{seed}-{k:04d}"
        phantom = make_phantom(modality, child, **options)
        phantom.truth["case"] = name
        written.append(write_phantom(phantom, out_dir / name, overwrite=overwrite))
        if progress is not None:
            progress(k + 1, n)
    return written
