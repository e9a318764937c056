"""Reviewing an analysis: corrections by a person, and the measurement that follows each one.

A :class:`Review` holds a map of vertebral bodies in VerSe level IDs (the napari Labels layer
of the plugin), the measurement made from it and the landmarks a person moved. Each correction
returns the new measurement at once:

- moving landmarks recomputes heights, indices and grades from the landmarks (the label map
  and every other landmark stay);
- shifting all levels by ±k, or setting the level of one vertebra, renames the bodies (setting
  a level pins it: the others are counted from it, now and after later edits);
- merging, splitting, deleting or painting bodies changes the map: bodies are found again and
  their levels recounted from the pinned vertebra, or from the sacrum when none is pinned.
  When the review starts, the body named by the analysis's anchor or top level is pinned, and
  without a sacrum the top body is pinned with the level it has; a pinned body that is
  deleted passes its role to the top-most remaining body. Landmarks are placed again, except
  on the bodies whose voxels did not change, which keep the landmarks a person moved.

Qt-free: the napari layer binds its events to these methods; scripts can call them directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from .image import SpineImage
from .labels import SACRUM, level_id, level_name
from .levels import level_sequence
from .measure import Measurement, measure

#: Values given to anonymous bodies while their levels are recounted (above every VerSe ID).
_ANONYMOUS_START = 101
#: Level options of :func:`~napari_vertebra.core.measure.measure` a review keeps between edits.
LEVEL_OPTIONS = (
    "top_level",
    "anchor",
    "lumbar_count",
    "thoracic_count",
    "regional_angle",
    "grade_thresholds",
)


def _fingerprint(mask: np.ndarray) -> str:
    return hashlib.sha1(np.flatnonzero(mask).tobytes()).hexdigest()


@dataclass
class Review:
    """A label map under review and its current measurement.

    Parameters
    ----------
    labels
        Vertebral bodies in VerSe level IDs (26 = sacrum), with spacing and origin.
    measurement
        The measurement of ``labels`` (as :func:`~napari_vertebra.core.measure.measure` or
        :func:`~napari_vertebra.analyze` gave it).
    options
        Level options of the analysis (``top_level``, ``anchor``, ``lumbar_count``,
        ``thoracic_count``, ``regional_angle``, ``grade_thresholds``), used again when levels
        are recounted.
    """

    labels: SpineImage
    measurement: Measurement
    options: dict[str, Any] = field(default_factory=dict)
    #: Landmarks moved by hand: body fingerprint -> {landmark name: world mm}.
    edited: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: A vertebra whose level a person set: (label value, level name).
    pinned: tuple[int, str] | None = None

    @classmethod
    def start(
        cls,
        labels: SpineImage,
        measurement: Measurement | None = None,
        *,
        image: SpineImage | None = None,
        **options,
    ):
        """Begin a review of ``labels``; measured now unless ``measurement`` is given (with
        ``image``, a CT on the labels' grid, its ribs help count the levels).

        ``labels`` may hold anonymous bodies (any values): the review then works on the
        measurement's level map, in VerSe IDs. Level options not given are those the
        measurement recorded.
        """
        unknown = set(options) - set(LEVEL_OPTIONS)
        if unknown:
            raise TypeError(f"unknown level options {sorted(unknown)}; known: {LEVEL_OPTIONS}")
        if measurement is None:
            values = set(np.unique(labels.array).tolist()) - {0}
            # 26 marks the sacrum among the anonymous bodies of this plugin's segmentations
            # (1 for all bodies, or 101, 102, …); in level-ID maps it is S1 anyway.
            extra = {}
            if SACRUM in values and (values == {1, SACRUM} or max(values) > _ANONYMOUS_START - 1):
                extra["sacrum_label"] = SACRUM
            measurement = measure(labels, image=image, **_measure_options(options), **extra)
        recorded = {
            k: v for k, v in measurement.parameters.items() if k in LEVEL_OPTIONS and v is not None
        }
        options = {**recorded, **options}
        if measurement.level_map is not None and measurement.level_map.shape == labels.shape:
            labels = labels.with_array(measurement.level_map)
        # A positional anchor or a top level names a body by its place, which edits change:
        # pin that body instead.
        pinned = None
        bodies = measurement.table[measurement.table["level"] != "S1"]
        anchor, top = options.pop("anchor", None), options.pop("top_level", None)
        if anchor is not None and 0 <= int(anchor[0]) < len(bodies):
            pinned = (int(bodies["label"].iloc[int(anchor[0])]), str(anchor[1]))
        elif top is not None and len(bodies):
            pinned = (int(bodies["label"].iloc[0]), str(top))
        elif len(bodies) and "ribs" in set(bodies["level_source"]):
            # Counted from a CT's ribs, which a recount without the CT cannot see: L1 (the
            # first body below them) keeps its level.
            named = bodies.set_index("level")
            level = "L1" if "L1" in named.index else str(bodies["level"].iloc[0])
            pinned = (int(named.loc[level, "label"]), level)
        elif "S1" not in set(measurement.table["level"]) and len(bodies):
            # No sacrum to count from: the levels as they stand are kept, counted from the top.
            pinned = (int(bodies["label"].iloc[0]), str(bodies["level"].iloc[0]))
        return cls(labels=labels, measurement=measurement, options=options, pinned=pinned)

    # -- what a person sees ------------------------------------------------------------------
    @property
    def table(self):
        """The per-vertebra table (``measurements.csv`` columns)."""
        return self.measurement.table

    def body_below(self, label: int) -> int:
        """Label of the vertebral body caudal to ``label`` (the sacrum is not a body)."""
        order = [int(v) for v in self.table["label"] if int(v) != SACRUM]
        if int(label) not in order or order.index(int(label)) + 1 >= len(order):
            raise ValueError(f"{level_name(int(label))} has no vertebral body below it")
        return order[order.index(int(label)) + 1]

    # -- corrections -------------------------------------------------------------------------
    def move_landmarks(self, changes: dict[str, dict[str, Any]]) -> Measurement:
        """Move landmarks: ``{level: {landmark name: world mm}}``; returns the new measurement."""
        self.measurement = self.measurement.with_landmarks(changes)
        for level in changes:
            mask = self.labels.array == level_id(level)
            self.edited[_fingerprint(mask)] = {
                name: np.asarray(point, dtype=float)
                for name, point in self.measurement.geometry[level].landmarks.items()
            }
        return self.measurement

    def shift_levels(self, steps: int) -> Measurement:
        """Move every level by ``steps`` positions (+1: each body one level lower)."""
        sequence = self._sequence()
        values = [v for v in np.unique(self.labels.array) if v and v != SACRUM]
        positions = {}
        for value in values:
            if int(value) not in sequence:
                raise ValueError(f"label {value} is not a level of the current sequence")
            new = sequence.index(int(value)) + steps
            if not 0 <= new < len(sequence):
                raise ValueError(
                    f"shifting by {steps:+d} moves {level_name(int(value))} outside "
                    f"{level_name(sequence[0])}-{level_name(sequence[-1])}"
                )
            positions[int(value)] = sequence[new]
        lookup = np.arange(max(256, int(self.labels.array.max()) + 1), dtype=np.int64)
        for old, new in positions.items():
            lookup[old] = new
        if self.pinned is not None and self.pinned[0] in positions:
            moved = positions[self.pinned[0]]
            self.pinned = (moved, level_name(moved))
        measurement = self._remeasure(lookup[self.labels.array].astype(self.labels.array.dtype))
        # The levels are now a person's choice, not the analysis's count.
        for row in measurement.rows:
            if row["level"] != "S1":
                row["level_source"] = "shifted"
        measurement.table.loc[measurement.table["level"] != "S1", "level_source"] = "shifted"
        return measurement

    def set_level(self, label: int, level: str) -> Measurement:
        """Give the body ``label`` the level ``level``; the others are counted from it."""
        level_id(level)  # checks the name
        if not np.any(self.labels.array == label):
            raise ValueError(f"no vertebral body has the label {label}")
        anonymous, mapping = self._anonymous()
        self.pinned = (mapping[int(label)], level)
        return self._recount(anonymous)

    def delete(self, label: int) -> Measurement:
        """Remove the body ``label``; levels are recounted."""
        array = self.labels.array.copy()
        array[array == label] = 0
        return self.replace_labels(array)

    def merge(self, keep: int, other: int) -> Measurement:
        """Join the body ``other`` to the body ``keep``; levels are recounted.

        The merged body is the convex hull of the two (the gap between two fragments of one
        body is body too), without the voxels of any third body.
        """
        from skimage.morphology import convex_hull_image

        array = self.labels.array.copy()
        union = (array == keep) | (array == other)
        if not np.any(array == keep) or not np.any(array == other):
            raise ValueError(
                f"merging needs two bodies; labels {keep} and {other} are not both here"
            )
        box = ndimage.find_objects(union.astype(np.uint8))[0]
        hull = convex_hull_image(union[box])
        free = (array[box] == 0) | union[box]
        array[box][hull & free] = keep
        return self.replace_labels(array)

    def split(self, label: int, position_mm: float | None = None) -> Measurement:
        """Cut the body ``label`` in two across the spine; levels are recounted.

        ``position_mm``: the cut's world coordinate along the first (cranio-caudal) axis;
        default the body's middle. The cranial part keeps the label.
        """
        array = self.labels.array.copy()
        mask = array == label
        if not mask.any():
            raise ValueError(f"no vertebral body has the label {label}")
        rows = np.nonzero(mask.any(axis=tuple(range(1, mask.ndim))))[0]
        origin, spacing = self.labels.origin[0], self.labels.spacing[0]
        cut = (
            (rows.min() + rows.max() + 1) / 2
            if position_mm is None
            else (position_mm - origin) / spacing
        )
        cut = int(round(cut))
        if not rows.min() < cut <= rows.max():
            raise ValueError(f"the cut at {position_mm} mm does not cross the body {label}")
        lower = mask.copy()
        lower[:cut] = False
        free = next(v for v in range(_ANONYMOUS_START - 1, 0, -1) if not np.any(array == v))
        array[lower] = free
        return self.replace_labels(array)

    def replace_labels(self, array: np.ndarray) -> Measurement:
        """The label map after painting or any other edit; levels are recounted."""
        if array.shape != self.labels.shape:
            raise ValueError(f"labels of shape {array.shape} replace a map of {self.labels.shape}")
        self.labels = self.labels.with_array(np.asarray(array))
        anonymous, mapping = self._anonymous()
        if self.pinned is not None:
            value = self.pinned[0]
            if value in mapping:
                self.pinned = (mapping[value], self.pinned[1])
            else:
                # The pinned body is gone: the top-most remaining body keeps its level.
                sequence = self._sequence()
                survivors = sorted((v for v in mapping if v in sequence), key=sequence.index)
                self.pinned = (
                    (mapping[survivors[0]], level_name(survivors[0])) if survivors else None
                )
        return self._recount(anonymous)

    # -- helpers ------------------------------------------------------------------------------
    def _sequence(self) -> list[int]:
        return level_sequence(
            self.options.get("lumbar_count", 5), self.options.get("thoracic_count", 12)
        )

    def _anonymous(self) -> tuple[np.ndarray, dict[int, int]]:
        """Bodies as anonymous values (one per connected piece), the sacrum as 26.

        Returns the map and, for each old label value, the anonymous value of its largest piece.
        """
        array = self.labels.array
        out = np.zeros(array.shape, np.int32)
        mapping: dict[int, int] = {}
        following = _ANONYMOUS_START
        boxes = ndimage.find_objects(array.astype(np.int32, copy=False))
        for value, box in enumerate(boxes, start=1):
            if box is None:
                continue
            if value == SACRUM:
                out[box][array[box] == SACRUM] = SACRUM
                mapping[value] = SACRUM
                continue
            pieces, count = ndimage.label(array[box] == value)
            sizes = ndimage.sum_labels(pieces > 0, pieces, index=np.arange(1, count + 1))
            for k in range(1, count + 1):
                out[box][pieces == k] = following
                if k == int(np.argmax(sizes)) + 1:
                    mapping[value] = following
                following += 1
        return out, mapping

    def _counting_options(self) -> dict[str, Any]:
        """Level options for a new count: positional anchors never (a pinned body replaces them)."""
        options = _measure_options({k: v for k, v in self.options.items() if k in LEVEL_OPTIONS})
        options.pop("top_level", None)
        options.pop("anchor", None)
        return options

    def _recount(self, anonymous: np.ndarray) -> Measurement:
        options = self._counting_options()
        if self.pinned is not None:
            options["anchor_label"] = self.pinned
        measurement = measure(self.labels.with_array(anonymous), sacrum_label=SACRUM, **options)
        if self.pinned is not None:
            pinned_mask = anonymous == self.pinned[0]
            self.pinned = (int(np.max(measurement.level_map[pinned_mask])), self.pinned[1])
        return self._adopt(measurement)

    def _remeasure(self, array: np.ndarray) -> Measurement:
        """Measure a map whose values are its levels (nothing recounted)."""
        return self._adopt(measure(self.labels.with_array(array), **self._counting_options()))

    def _adopt(self, measurement: Measurement) -> Measurement:
        """Take a new measurement; bodies whose voxels did not change keep moved landmarks."""
        self.labels = self.labels.with_array(
            measurement.level_map.astype(self.labels.array.dtype, copy=False)
        )
        changes, kept = {}, {}
        for level in measurement.geometry:
            key = _fingerprint(self.labels.array == level_id(level))
            if key in self.edited:
                changes[level] = self.edited[key]
                kept[key] = self.edited[key]
        self.edited = kept
        self.measurement = measurement.with_landmarks(changes) if changes else measurement
        return self.measurement


def _measure_options(options: dict[str, Any]) -> dict[str, Any]:
    out = dict(options)
    if out.get("regional_angle") is not None:
        out["regional_angle"] = tuple(out["regional_angle"])
    return out
