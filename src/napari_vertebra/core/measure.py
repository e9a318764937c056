"""The measure step: label map → levels, landmarks, heights, indices, grades; table and JSON out.

``measurements.csv`` columns (a public interface, documented in docs/measurements.md):
``level,label,anterior_height_mm,middle_height_mm,posterior_height_mm,vcr_percent,vc_percent,``
``genant_grade,fracture_type,wedge_angle_deg,confidence,qc_flags`` then further columns.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .image import SpineImage
from .instances import extract_instances, spine_directions
from .io import SpineIOError, read_image, write_table
from .labels import SACRUM, level_name, to_verse
from .landmarks import LANDMARK_NAMES, BodyGeometry, body_landmarks, geometry_from_landmarks
from .levels import assign_levels, lumbar_share, region_vote
from .morphometry import (
    GRADE_THRESHOLDS,
    check_grade_thresholds,
    expected_heights,
    fracture_type,
    genant_grade,
    signed_angle_deg,
    vertebral_compression,
    vertebral_compression_ratio,
)
from .ribs import rib_bearing

COLUMNS = (
    "level",
    "label",
    "anterior_height_mm",
    "middle_height_mm",
    "posterior_height_mm",
    "vcr_percent",
    "vc_percent",
    "genant_grade",
    "fracture_type",
    "wedge_angle_deg",
    "confidence",
    "qc_flags",
)
EXTRA_COLUMNS = (
    "height_loss_percent",
    "anterior_loss_percent",
    "middle_loss_percent",
    "posterior_loss_percent",
    "expected_anterior_height_mm",
    "expected_middle_height_mm",
    "expected_posterior_height_mm",
    "anterior_posterior_ratio",
    "middle_posterior_ratio",
    "depth_mm",
    "level_source",
    "centroid_mm",
)
#: The columns a person reads first: the measurement table widget and the per-study report.
SUMMARY_COLUMNS = (
    "level",
    "anterior_height_mm",
    "middle_height_mm",
    "posterior_height_mm",
    "vcr_percent",
    "genant_grade",
    "fracture_type",
    "wedge_angle_deg",
    "confidence",
    "qc_flags",
)
#: A body larger or smaller than its neighbours' median by this fraction is a size outlier.
SIZE_OUTLIER_FRACTION = 0.5
#: A body taller than its neighbours by this fraction cannot be explained by a fracture.
TALLER_THAN_NEIGHBOURS = 0.3


@dataclass
class Measurement:
    """Result of :func:`measure`: the per-vertebra table, landmarks and provenance."""

    table: pd.DataFrame
    landmarks: dict[str, dict[str, list[float]]]
    geometry: dict[str, BodyGeometry] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    regional_angles: dict[str, float] = field(default_factory=dict)
    #: The measured bodies (and the sacrum, 26) painted with their VerSe level IDs, on the
    #: label map's grid: posterior elements cut off, fragments left out.
    level_map: np.ndarray | None = None
    #: Per-vertebra inputs of the table (geometry, flags, level), kept so that the table can be
    #: recomputed when landmarks are moved.
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def with_landmarks(self, changes: dict[str, dict[str, Any]]) -> Measurement:
        """The measurement after moving landmarks: ``{level: {landmark name: world mm}}``.

        Heights of the edited bodies become the distances between their landmarks
        (:func:`~napari_vertebra.core.landmarks.geometry_from_landmarks`); every column that
        depends on them is recomputed, the neighbours' VCR and grades included. Edited bodies
        get the QC flag ``landmarks_edited``. The label map is unchanged.
        """
        rows = [dict(row) for row in self.rows]
        geometry = dict(self.geometry)
        for level, marks in changes.items():
            index = next(
                (k for k, row in enumerate(rows) if row["level"] == level and row["geo"]), None
            )
            if index is None:
                raise ValueError(f"no measured vertebra {level!r} (measured: {list(geometry)})")
            geo = geometry_from_landmarks(rows[index]["geo"], marks)
            flags = [f for f in rows[index]["flags"] if f != "landmarks_edited"]
            rows[index].update(geo=geo, flags=[*flags, "landmarks_edited"])
            geometry[level] = geo
        table = table_from_rows(rows, self.grade_thresholds)
        chosen = self.parameters.get("regional_angle")
        return Measurement(
            table=table,
            landmarks={level: _rounded(geo.landmarks) for level, geo in geometry.items()},
            geometry=geometry,
            parameters=dict(self.parameters),
            regional_angles=_regional_angles(geometry, table, tuple(chosen) if chosen else None),
            level_map=self.level_map,
            rows=rows,
        )

    @property
    def grade_thresholds(self) -> tuple[float, float, float]:
        """Height-loss fractions of Genant grades 1, 2 and 3 this measurement was graded with."""
        return tuple(self.parameters.get("grade_thresholds") or GRADE_THRESHOLDS)

    def retabulate(self) -> None:
        """Rebuild :attr:`table` from :attr:`rows` (after columns were added to the rows)."""
        self.table = table_from_rows(self.rows, self.grade_thresholds)

    def landmarks_json(self) -> dict[str, Any]:
        return {
            "coordinates": "world mm along the canonical axes (I, P[, L]): index*spacing + origin",
            "landmark_names": list(LANDMARK_NAMES),
            "vertebrae": [
                {
                    "level": level,
                    "label": int(row["label"]),
                    "landmarks": self.landmarks.get(level, {}),
                }
                for level, (_, row) in zip(self.table["level"], self.table.iterrows(), strict=True)
            ],
            "regional_angles_deg": self.regional_angles,
            "parameters": self.parameters,
        }


def _as_label_image(
    labels: SpineImage | np.ndarray | str | os.PathLike, spacing: tuple[float, ...] | float | None
) -> SpineImage:
    if isinstance(labels, SpineImage):
        image = labels
    elif isinstance(labels, np.ndarray):
        image = SpineImage(
            labels,
            None,
            "CT" if labels.ndim == 3 else "XR",
            ("I", "P", "L")[: labels.ndim],
            kind="labels",
        )
    else:
        image = (
            read_image(labels, kind="labels")
            if str(labels).lower().endswith((".nii", ".nii.gz"))
            else read_image(labels)
        )
    if spacing is not None:
        image = image.with_spacing(spacing)
    if image.spacing is None:
        raise SpineIOError(
            image.source.get("path", "label map"),
            "has no pixel spacing: heights in mm cannot be measured; give the "
            "image it belongs to (--image) or the spacing (--spacing MM)",
        )
    return image


def measure(
    labels: SpineImage | np.ndarray | str | os.PathLike,
    *,
    image: SpineImage | str | os.PathLike | None = None,
    spacing: tuple[float, ...] | float | None = None,
    scheme: str = "verse",
    top_level: str | None = None,
    anchor: tuple[int, str] | None = None,
    shift: int = 0,
    lumbar_count: int = 5,
    thoracic_count: int = 12,
    regional_angle: tuple[str, str] | None = None,
    body_mask: SpineImage | str | os.PathLike | None = None,
    whole_vertebrae: bool | None = None,
    sacrum_label: int | None = None,
    anchor_label: tuple[int, str] | None = None,
    region_map: np.ndarray | None = None,
    grade_thresholds: tuple[float, float, float] | None = None,
    count_from_ribs: bool = True,
) -> Measurement:
    """Measure every vertebral body of a label map.

    Parameters
    ----------
    labels
        Label map (SpineImage, path or array in canonical axes) of vertebral bodies or whole
        vertebrae: VerSe IDs, TotalSegmentator IDs (``scheme="totalsegmentator"``), anonymous
        instances or a semantic mask.
    image
        The image the labels belong to; its spacing and origin are used when the label file has
        none. A 3D CT also shows the ribs (see ``count_from_ribs``).
    spacing
        Spacing in mm, overriding both.
    top_level, anchor, shift, lumbar_count, thoracic_count
        Level counting options (:func:`napari_vertebra.core.levels.assign_levels`).
    whole_vertebrae
        Labels include posterior elements, to be cut off (default: only for TotalSegmentator).
    body_mask
        A mask whose value 1 marks vertebral bodies (e.g. TotalSegmentator's body/disc mask):
        the levels come from ``labels``, the body voxels from this mask.
    sacrum_label
        In a map of anonymous instances, the value that marks the sacrum (level anchor).
    anchor_label
        ``(label value, level name)``: the body with this value in ``labels`` has this level;
        the others are counted from it (like ``anchor``, which names the body by its position).
    region_map
        Per pixel 1 thoracic, 2 lumbar (seed 004's region output) on the labels' grid: each
        body's vote anchors the level count at the thoracolumbar junction when there is no
        sacrum, anchor or top level (:func:`napari_vertebra.core.levels.assign_levels`).
    regional_angle
        Levels ``(upper, lower)``: the angle between the upper endplate of the first and the lower
        endplate of the second (kyphosis positive, lordosis negative); default the outermost
        measured bodies.
    count_from_ribs
        With a 3D CT ``image`` and no anchor or top level: find the rib-bearing bodies
        (:func:`napari_vertebra.core.ribs.rib_bearing`); without the sacrum in view the first
        body below them is L1, with it a rib count that disagrees marks the levels uncertain.
    grade_thresholds
        Height-loss fractions at which Genant grades 1, 2 and 3 begin; default Genant's
        (0.20, 0.25, 0.40). The grade-1 threshold also decides which bodies serve as normal
        references and when a type is given.

    Returns
    -------
    Measurement
        ``table`` with :data:`COLUMNS` then :data:`EXTRA_COLUMNS`, one row per vertebra
        cranial to caudal; ``landmarks`` per level (world mm).
    """
    grade_thresholds = check_grade_thresholds(
        GRADE_THRESHOLDS if grade_thresholds is None else grade_thresholds
    )
    label_image = _as_label_image(labels, spacing)
    reference = None
    if image is not None:
        reference = image if isinstance(image, SpineImage) else read_image(image)
        if reference.shape != label_image.shape:
            raise SpineIOError(
                reference.source.get("path", "image"),
                f"has shape {reference.shape}, the labels {label_image.shape}",
            )
    if reference is not None and label_image.source.get("spacing_source") in (None, "unknown"):
        label_image = (
            label_image.with_spacing(reference.spacing) if reference.spacing else label_image
        )
    if body_mask is not None:
        mask = (
            body_mask if isinstance(body_mask, SpineImage) else read_image(body_mask, kind="labels")
        )
        if mask.shape != label_image.shape:
            raise SpineIOError(
                mask.source.get("path", "body mask"),
                f"has shape {mask.shape}, the labels {label_image.shape}",
            )
        labels_array = label_image.array
        if scheme == "totalsegmentator":
            labels_array = to_verse(labels_array, scheme)
            scheme = "verse"
        masked = np.where(mask.array == 1, labels_array, 0)
        # Levels the body mask does not cover (the sacrum, a vertebra at the edge of the field)
        # keep their own voxels, so that they are still listed.
        for value in np.unique(labels_array):
            if value and not np.any(masked == value):
                masked[labels_array == value] = value
        label_image = label_image.with_array(masked.astype(labels_array.dtype))
    spacing_mm = np.array(label_image.spacing)
    origin = np.array(label_image.origin)
    if body_mask is not None:
        whole_vertebrae = False
    left_out: list[dict] = []
    instances = extract_instances(
        label_image.array,
        spacing_mm,
        origin,
        scheme=scheme,
        whole_vertebrae=whole_vertebrae,
        sacrum_label=sacrum_label,
        left_out=left_out,
    )
    if anchor_label is not None:
        value, name = anchor_label
        order = [i.source_label for i in instances if not i.is_sacrum]
        if value not in order:
            raise ValueError(f"no vertebral body has the label {value} to anchor level {name}")
        anchor = (order.index(value), name)
    regions = None
    if region_map is not None:
        region_map = np.asarray(region_map)
        if region_map.shape != label_image.shape:
            raise ValueError(
                f"region map {region_map.shape} is not on the labels' grid {label_image.shape}"
            )
        regions = [lumbar_share(region_map[i.box][i.mask]) for i in instances]
    rib_votes, rib_above = None, False
    if (
        count_from_ribs
        and reference is not None
        and reference.modality == "CT"
        and reference.ndim == 3
        and top_level is None
        and anchor is None
    ):
        found_ribs = rib_bearing(reference.array, spacing_mm, origin, instances)
        rib_votes, rib_above = found_ribs.bodies, found_ribs.above_first
    levels = assign_levels(
        instances,
        regions=regions,
        ribs=rib_votes,
        rib_above_first=rib_above,
        top_level=top_level,
        anchor=anchor,
        shift=shift,
        lumbar_count=lumbar_count,
        thoracic_count=thoracic_count,
    )
    bodies = [i for i in instances if not i.is_sacrum]
    if rib_votes is not None:
        rib_votes = [v for v, i in zip(rib_votes, instances, strict=True) if not i.is_sacrum]
    votes = shares = None
    if regions is not None:
        shares = [r for r, i in zip(regions, instances, strict=True) if not i.is_sacrum]
        votes = [region_vote(r) for r in shares]
    hints = spine_directions([b.centroid for b in bodies])
    rows, geometry, landmarks = [], {}, {}
    for body, level, hint in zip(bodies, levels, hints, strict=True):
        offset = origin + np.array([s.start for s in body.box]) * spacing_mm
        flags = ["touches_border"] if body.touches_border else []
        name = level_name(level.label)
        try:
            geo = body_landmarks(body.mask, spacing_mm, offset, e_cc_hint=hint)
        except (ValueError, IndexError):
            geo = None
            flags.append("landmarks_failed")
        if level.uncertain:
            flags.append("level_uncertain")
        rows.append(
            {
                "level": name,
                "label": level.label,
                "geo": geo,
                "flags": flags,
                "confidence": level.confidence,
                "level_source": level.source,
                "size": body.size_mm,
                "centroid": body.centroid,
            }
        )
        if geo is not None:
            geometry[name] = geo
            landmarks[name] = _rounded(geo.landmarks)
    sacrum = next((i for i in instances if i.is_sacrum), None)
    if sacrum is not None:
        # S1 is the level anchor: listed with its level and flags, not measured as a body.
        given = bool(levels) and levels[0].source == "given"
        rows.append(
            {
                "level": "S1",
                "label": 26,
                "geo": None,
                "flags": ["sacrum"] + (["touches_border"] if sacrum.touches_border else []),
                "confidence": 1.0 if given else 0.9,
                "level_source": "given" if given else "sacrum",
                "size": sacrum.size_mm,
                "centroid": sacrum.centroid,
            }
        )
    table = table_from_rows(rows, grade_thresholds)
    parameters = {
        "scheme": scheme,
        "top_level": top_level,
        "anchor": anchor,
        "shift": shift,
        "lumbar_count": lumbar_count,
        "thoracic_count": thoracic_count,
        "regional_angle": list(regional_angle) if regional_angle else None,
        "grade_thresholds": list(grade_thresholds),
        "region_votes": votes,
        "count_from_ribs": count_from_ribs,
        # Per body, cranial to caudal: ribs attach (true), none do (false), cannot tell (null).
        "rib_votes": rib_votes,
        "rib_above_first": rib_above,
        "region_lumbar_shares": (
            None if shares is None else [None if v is None else round(v, 3) for v in shares]
        ),
        "spacing_mm": [float(s) for s in spacing_mm],
        "labels": label_image.source.get("path"),
        # Pieces of the label map that were not taken for bodies (fragments, off the column).
        "fragments_left_out": sum(e["reason"] == "fragment" for e in left_out),
        "off_column_left_out": [e for e in left_out if e["reason"] == "off_column"],
        "sacrum_left_out": [e for e in left_out if e["reason"] == "sacrum"],
    }
    angles = _regional_angles(geometry, table, regional_angle)
    level_map = np.zeros(label_image.shape, dtype=np.uint8)
    for body, level in zip(bodies, levels, strict=True):
        level_map[body.box][body.mask] = level.label
    if sacrum is not None:
        level_map[sacrum.box][sacrum.mask] = SACRUM
    return Measurement(
        table=table,
        landmarks=landmarks,
        geometry=geometry,
        parameters=parameters,
        regional_angles=angles,
        level_map=level_map,
        rows=rows,
    )


def _rounded(landmarks: dict[str, np.ndarray]) -> dict[str, list[float]]:
    return {name: [round(float(c), 4) for c in point] for name, point in landmarks.items()}


def table_from_rows(
    rows: list[dict[str, Any]], grade_thresholds: tuple[float, ...] = GRADE_THRESHOLDS
) -> pd.DataFrame:
    """The per-vertebra table from :attr:`Measurement.rows` (also after their inputs changed),
    graded with ``grade_thresholds`` (height-loss fractions of grades 1, 2 and 3)."""
    n = len(rows)
    heights = np.full((n, 3), np.nan)
    for k, row in enumerate(rows):
        geo = row["geo"]
        if geo is not None:
            heights[k] = (geo.anterior_height_mm, geo.middle_height_mm, geo.posterior_height_mm)
    # Two passes: references from all whole neighbours, then from those that look normal. Bodies
    # cut by the image border never serve as references.
    usable = np.all(np.isfinite(heights), axis=1) & np.array(
        ["touches_border" not in r["flags"] for r in rows], dtype=bool
    )
    normal = usable
    for _ in range(2):
        expected = expected_heights(heights, normal)
        losses = 1.0 - heights / expected
        worst = np.nanmax(np.where(np.isfinite(losses), losses, -np.inf), axis=1)
        normal = usable & (worst < grade_thresholds[0])
    sizes = np.array([r["size"] for r in rows])
    records = []
    for k, row in enumerate(rows):
        geo, flags = row["geo"], list(row["flags"])
        a, m, p = heights[k]
        loss = dict(zip(("anterior", "middle", "posterior"), losses[k], strict=True))
        has_reference = np.all(np.isfinite(expected[k]))
        if not has_reference and geo is not None:  # a lone body: its own posterior height
            loss = {"anterior": 1 - a / p, "middle": 1 - m / p, "posterior": 0.0}
            flags.append("no_reference")
        nearby = [
            j
            for j in range(max(0, k - 2), min(n, k + 3))
            if j != k and "sacrum" not in rows[j]["flags"]
        ]
        if nearby and "sacrum" not in flags and "touches_border" not in flags:
            if abs(sizes[k] / np.median(sizes[nearby]) - 1) > SIZE_OUTLIER_FRACTION:
                flags.append("size_outlier")
        ratio = heights[k] / expected[k]
        if geo is not None and has_reference and np.max(ratio) > 1 + TALLER_THAN_NEIGHBOURS:
            flags.append("height_sequence_implausible")
        vcr = vc = np.nan
        if 0 < k < n - 1 and usable[k - 1] and usable[k + 1] and np.isfinite(a):
            vcr = vertebral_compression_ratio(heights[k - 1, 0], a, heights[k + 1, 0])
            vc = vertebral_compression(heights[k - 1, 0], a, heights[k + 1, 0])
        # A body cut by the image border keeps its visible heights but gets no grade.
        graded = geo is not None and "touches_border" not in flags
        worst_loss = max(loss.values()) if geo is not None else np.nan
        confidence = (
            row["confidence"]
            * (0.6 if "touches_border" in flags else 1.0)
            * (0.8 if "size_outlier" in flags else 1.0)
            * (0.7 if "height_sequence_implausible" in flags else 1.0)
        )
        segmentation = row.get("segmentation_confidence")
        if segmentation is not None and np.isfinite(segmentation):
            confidence *= segmentation
        # The grade comes from the heights; a multitask model's fracture head (seed 004) or a
        # slice classifier (seed 003) that says otherwise asks a reader to look (0.5: the
        # models' own decision threshold).
        model_says = [
            row[key] >= 0.5
            for key in ("fracture_probability", "slice_fracture_probability")
            if row.get(key) is not None and np.isfinite(row[key])
        ]
        grade = genant_grade(worst_loss, grade_thresholds) if graded else pd.NA
        if graded and any(says != (grade >= 1) for says in model_says):
            flags.append("fracture_model_disagrees")
        wedge = np.nan
        if geo is not None:
            upper, lower = geo.endplate_vectors()
            wedge = signed_angle_deg(upper, lower, geo.e_cc, geo.e_ap)
        records.append(
            {
                "level": row["level"],
                "label": row["label"],
                "anterior_height_mm": a,
                "middle_height_mm": m,
                "posterior_height_mm": p,
                "vcr_percent": vcr,
                "vc_percent": vc,
                "genant_grade": grade,
                "fracture_type": fracture_type(loss, grade_thresholds[0]) if graded else "",
                "wedge_angle_deg": wedge,
                "confidence": round(confidence, 3),
                "qc_flags": ";".join(flags),
                "height_loss_percent": 100 * worst_loss,
                "anterior_loss_percent": 100 * loss["anterior"],
                "middle_loss_percent": 100 * loss["middle"],
                "posterior_loss_percent": 100 * loss["posterior"],
                "expected_anterior_height_mm": expected[k, 0],
                "expected_middle_height_mm": expected[k, 1],
                "expected_posterior_height_mm": expected[k, 2],
                "anterior_posterior_ratio": a / p,
                "middle_posterior_ratio": m / p,
                "depth_mm": geo.depth_mm if geo is not None else np.nan,
                "level_source": row["level_source"],
                "centroid_mm": " ".join(f"{c:.2f}" for c in row["centroid"]),
                "segmentation_confidence": row.get("segmentation_confidence", np.nan),
                "fracture_probability": row.get("fracture_probability", np.nan),
                "slice_fracture_probability": row.get("slice_fracture_probability", np.nan),
            }
        )
    columns = [*COLUMNS, *EXTRA_COLUMNS]
    # Only segmentations by a learned model have a probability per vertebra.
    if any("segmentation_confidence" in row for row in rows):
        columns.append("segmentation_confidence")
    # Only multitask models (seed 004) have a fracture head.
    if any("fracture_probability" in row for row in rows):
        columns.append("fracture_probability")
    # Only with a fracture classifier (seed 003).
    if any("slice_fracture_probability" in row for row in rows):
        columns.append("slice_fracture_probability")
    table = pd.DataFrame.from_records(records, columns=columns)
    table["genant_grade"] = table["genant_grade"].astype("Int64")
    numeric = table.select_dtypes("float").columns
    table[numeric] = table[numeric].round(3)
    return table


#: Genant's names of the grades.
GRADE_NAMES = {0: "normal", 1: "mild", 2: "moderate", 3: "severe"}


def fracture_report(table: pd.DataFrame, minimum_grade: int = 1) -> list[str]:
    """One line per vertebra graded ``minimum_grade`` or worse, cranial to caudal."""
    lines = []
    for _, row in table.iterrows():
        grade = row["genant_grade"]
        if pd.isna(grade) or int(grade) < minimum_grade:
            continue
        lines.append(
            f"{row['level']}: grade {int(grade)} ({GRADE_NAMES[int(grade)]}), "
            f"{row['fracture_type'] or 'type not given'}, height loss "
            f"{row['height_loss_percent']:.0f} %"
        )
    return lines


def _regional_angles(
    geometry: dict[str, BodyGeometry], table: pd.DataFrame, chosen: tuple[str, str] | None
) -> dict[str, float]:
    measured = [level for level in table["level"] if level in geometry]
    if len(measured) < 2:
        return {}
    upper, lower = chosen if chosen is not None else (measured[0], measured[-1])
    if upper not in geometry or lower not in geometry:
        raise ValueError(f"regional angle needs measured levels; have {', '.join(measured)}")
    top, bottom = geometry[upper], geometry[lower]
    plate_top = top.landmarks["upper_posterior"] - top.landmarks["upper_anterior"]
    plate_bottom = bottom.landmarks["lower_posterior"] - bottom.landmarks["lower_anterior"]
    e_cc = top.e_cc + bottom.e_cc
    e_ap = top.e_ap + bottom.e_ap
    angle = signed_angle_deg(
        plate_top, plate_bottom, e_cc / np.linalg.norm(e_cc), e_ap / np.linalg.norm(e_ap)
    )
    return {f"{upper}-{lower}": round(angle, 3)}


def write_measurement(
    result: Measurement, out_dir: str | os.PathLike, overwrite: bool = False
) -> dict[str, Path]:
    """Write ``measurements.csv`` and ``landmarks.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = write_table(result.table, out_dir / "measurements.csv", overwrite=overwrite)
    path = out_dir / "landmarks.json"
    if path.exists() and not overwrite:
        raise SpineIOError(path, "already exists; pass overwrite=True (--overwrite) to replace it")
    tmp = path.with_name(".landmarks.json.partial")
    tmp.write_text(json.dumps(result.landmarks_json(), indent=1, default=str))
    os.replace(tmp, path)
    return {"measurements": csv, "landmarks": path}
