"""The layers of a reviewed analysis, kept in step with its review (core.review.Review).

Layers (all in the image's physical ``scale`` and ``translate``):

- Labels ``<name> vertebrae``: bodies in VerSe IDs, coloured by Genant grade, with the
  measurement table as ``features`` (its ``index`` column is the label value);
- Points ``<name> landmarks``: the six landmarks per body, editable (move them with the mouse);
- Shapes ``<name> heights``: the anterior, middle and posterior height lines, coloured by grade;
- Points ``<name> levels``: level names (and grades) beside each body, as text.

Moving a landmark, painting or erasing bodies, or calling :meth:`ReviewLayers.shift_levels`,
:meth:`~ReviewLayers.set_level`, :meth:`~ReviewLayers.merge`, :meth:`~ReviewLayers.split` or
:meth:`~ReviewLayers.delete` updates the review and then every layer at once; ``changed`` is
emitted so that the table and plot widgets follow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from psygnal import Signal

from ..core.landmarks import LANDMARK_NAMES
from ..core.report import grade_color
from ..core.review import Review
from .layers import METADATA_KEY

#: Key of the :class:`ReviewLayers` in the Labels layer's metadata.
REVIEW_KEY = "napari_vertebra_review"
HEIGHT_NAMES = ("anterior", "middle", "posterior")


def features_table(table: pd.DataFrame) -> pd.DataFrame:
    """The Labels layer's features: the measurement table with ``index`` = label value."""
    features = table.copy()
    features.insert(0, "index", features["label"].astype(int))
    return features.reset_index(drop=True)


def landmark_points(review: Review) -> tuple[np.ndarray, pd.DataFrame]:
    """Landmarks in the label map's data coordinates, with level, label and landmark name."""
    rows, coords = [], []
    table = review.table.set_index("level")
    for level, geometry in review.measurement.geometry.items():
        for name in LANDMARK_NAMES:
            coords.append(geometry.landmarks[name])
            rows.append({"level": level, "label": int(table.loc[level, "label"]), "landmark": name})
    ndim = review.labels.ndim
    data = review.labels.world_to_index(np.array(coords).reshape(-1, ndim)) if coords else None
    features = pd.DataFrame(rows, columns=["level", "label", "landmark"])
    return (data if data is not None else np.zeros((0, ndim))), features


def height_lines(review: Review) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Height lines (upper to lower landmark) in data coordinates, one per height of a body.

    In 3D a line is drawn in the sagittal slice (constant left-right index) of its body's
    landmarks, so that it shows on the slice where the landmarks are.
    """
    lines, rows = [], []
    table = review.table.set_index("level")
    for level, geometry in review.measurement.geometry.items():
        marks = {k: review.labels.world_to_index(v) for k, v in geometry.landmarks.items()}
        if review.labels.ndim == 3:
            plane = np.mean([m[2] for m in marks.values()])
            for m in marks.values():
                m[2] = plane
        grade = table.loc[level, "genant_grade"]
        for name in HEIGHT_NAMES:
            lines.append(np.stack([marks[f"upper_{name}"], marks[f"lower_{name}"]]))
            rows.append(
                {
                    "level": level,
                    "height": name,
                    "height_mm": float(table.loc[level, f"{name}_height_mm"]),
                    "color": grade_color(grade, level),
                }
            )
    return lines, pd.DataFrame(rows, columns=["level", "height", "height_mm", "color"])


def level_text(review: Review) -> tuple[np.ndarray, pd.DataFrame]:
    """Positions (data coordinates) and texts of the level names, in front of each body.

    In 3D each name is repeated on every sagittal slice (left-right index) that cuts its body,
    so that it shows wherever the body does.
    """
    from scipy import ndimage

    positions, rows = [], []
    ndim = review.labels.ndim
    boxes = ndimage.find_objects(review.labels.array.astype(np.int32, copy=False))
    for _, row in review.table.iterrows():
        centroid = np.array([float(c) for c in str(row["centroid_mm"]).split()])
        geometry = review.measurement.geometry.get(row["level"])
        if geometry is not None:
            # Half a body depth plus 8 mm in front of the centre, along the body's own axis.
            centroid = geometry.center - (0.5 * geometry.depth_mm + 8.0) * geometry.e_ap
        grade = row["genant_grade"]
        level = row["level"]
        text = level if pd.isna(grade) or int(grade) == 0 else f"{level} G{int(grade)}"
        point = review.labels.world_to_index(centroid)
        label = int(row["label"])
        box = boxes[label - 1] if label <= len(boxes) else None
        slices = [None] if ndim == 2 or box is None else range(box[2].start, box[2].stop)
        for lateral in slices:
            if lateral is not None:
                point = point.copy()
                point[2] = lateral
            positions.append(point)
            rows.append({"level": level, "text": text, "color": grade_color(grade, level)})
    data = np.array(positions).reshape(-1, ndim)
    return data, pd.DataFrame(rows, columns=["level", "text", "color"])


def grade_colormap(table: pd.DataFrame):
    """A direct label colormap: each body's label value coloured by its grade."""
    from napari.utils.colormaps import DirectLabelColormap

    colors: dict[int | None, Any] = {None: "transparent", 0: "transparent"}
    for _, row in table.iterrows():
        colors[int(row["label"])] = grade_color(row["genant_grade"], row["level"])
    return DirectLabelColormap(color_dict=colors)


class ReviewLayers:
    """Binds a :class:`Review` to its napari layers and keeps them in step.

    Parameters
    ----------
    viewer
        The napari viewer.
    review
        The review to show.
    name
        Prefix of the layer names.
    labels_layer
        A Labels layer to take over (its data becomes the review's level map) instead of
        adding a new one.
    """

    #: Emitted after every change of the review, with the new measurement table.
    changed = Signal(object)

    def __init__(self, viewer, review: Review, name: str = "spine", labels_layer=None) -> None:
        self.viewer = viewer
        self.review = review
        self.name = name
        self._updating = False
        geometry = {
            "scale": review.labels.scale,
            "translate": review.labels.origin,
            "units": review.labels.units,
        }
        metadata = {METADATA_KEY: review.labels.geometry_metadata(), REVIEW_KEY: self}
        if labels_layer is None:
            self.labels = viewer.add_labels(
                review.labels.array,
                name=f"{name} vertebrae",
                features=features_table(review.table),
                colormap=grade_colormap(review.table),
                opacity=0.45,
                metadata=metadata,
                **geometry,
            )
        else:
            previous = find_review(labels_layer)
            if previous is not None:
                previous.detach()
            self.labels = labels_layer
            self.labels.data = review.labels.array
            self.labels.features = features_table(review.table)
            self.labels.colormap = grade_colormap(review.table)
            self.labels.metadata = {**labels_layer.metadata, **metadata}
        data, features = landmark_points(review)
        self.landmarks = viewer.add_points(
            data,
            name=f"{name} landmarks",
            features=features,
            face_color="white",
            border_color="black",
            size=self._point_size(2.5),
            **geometry,
        )
        lines, line_features = height_lines(review)
        self.heights = viewer.add_shapes(
            lines,
            shape_type="line",
            name=f"{name} heights",
            features=line_features,
            # White: the body's fill already shows the grade, a line of its colour would vanish.
            edge_color="white",
            edge_width=self._point_size(0.6),
            **geometry,
        )
        positions, texts = level_text(review)
        self.levels = viewer.add_points(
            positions,
            name=f"{name} levels",
            features=texts,
            size=0,
            text={"string": "{text}", "color": "white", "size": 11, "anchor": "center"},
            **geometry,
        )
        self.levels.editable = False
        self._landmark_data = self.landmarks.data.copy()
        self.landmarks.events.data.connect(self._on_landmarks)
        self.labels.events.paint.connect(self._on_paint)
        if review.labels.ndim == 3:
            self.show_sagittal()

    def detach(self) -> None:
        """Stop following the layers' events and remove the landmark, height and level layers."""
        self.landmarks.events.data.disconnect(self._on_landmarks)
        self.labels.events.paint.disconnect(self._on_paint)
        for layer in (self.landmarks, self.heights, self.levels):
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)

    # -- layout -------------------------------------------------------------------------------
    def _point_size(self, mm: float) -> float:
        # Sizes are in data units (scaled by ``scale``): mm over the in-plane spacing.
        return float(mm / min(self.review.labels.spacing[:2]))

    def show_sagittal(self) -> None:
        """Show the CT in sagittal slices (I down, P right) at the spine's mid-sagittal plane."""
        self.viewer.dims.order = (2, 0, 1)
        geometries = list(self.review.measurement.geometry.values())
        if geometries:
            middle = float(np.median([g.center[2] for g in geometries]))
            self.viewer.dims.set_point(2, middle)

    # -- corrections ---------------------------------------------------------------------------
    def shift_levels(self, steps: int) -> None:
        """Move every level by ``steps`` (+1: each body one level lower)."""
        self.review.shift_levels(steps)
        self.refresh()

    def set_level(self, label: int, level: str) -> None:
        """Set the level of the body ``label``; the others are counted from it."""
        self.review.set_level(label, level)
        self.refresh()

    def merge(self, keep: int, other: int) -> None:
        self.review.merge(keep, other)
        self.refresh()

    def split(self, label: int, position_mm: float | None = None) -> None:
        self.review.split(label, position_mm)
        self.refresh()

    def delete(self, label: int) -> None:
        self.review.delete(label)
        self.refresh()

    # -- events --------------------------------------------------------------------------------
    def _on_landmarks(self, event) -> None:
        if self._updating:
            return
        # Drags end with CHANGED; ADDED and REMOVED come from the add and delete tools.
        action = str(getattr(event, "action", "changed")).lower()
        if action.endswith("removed"):
            self._restore_landmarks("removed")
            return
        if not action.endswith(("changed", "added")):
            return
        data = np.asarray(self.landmarks.data)
        if data.shape != self._landmark_data.shape:
            self._restore_landmarks("added")
            return
        moved = np.nonzero(np.any(np.abs(data - self._landmark_data) > 1e-9, axis=1))[0]
        if len(moved) == 0:
            return
        features = self.landmarks.features
        changes: dict[str, dict[str, np.ndarray]] = {}
        for index in moved:
            level = str(features["level"].iloc[index])
            name = str(features["landmark"].iloc[index])
            changes.setdefault(level, {})[name] = self.review.labels.index_to_world(data[index])
        self.review.move_landmarks(changes)
        self.refresh(landmarks=False)

    def _restore_landmarks(self, what: str) -> None:
        from napari.utils.notifications import show_info

        show_info(
            f"Landmarks were {what}: they can be moved but not added or removed "
            "(each vertebra has six). They were put back."
        )
        self.refresh()

    def _on_paint(self, event=None) -> None:
        if self._updating:
            return
        self.review.replace_labels(np.asarray(self.labels.data))
        self.refresh()

    # -- keeping the layers in step ------------------------------------------------------------
    def refresh(self, landmarks: bool = True) -> None:
        """Show the review's current state in every layer and emit :attr:`changed`."""
        self._updating = True
        try:
            review = self.review
            if not np.array_equal(self.labels.data, review.labels.array):
                self.labels.data = review.labels.array
            self.labels.features = features_table(review.table)
            self.labels.colormap = grade_colormap(review.table)
            if landmarks:
                data, features = landmark_points(review)
                self.landmarks.data = data
                self.landmarks.features = features
            self._landmark_data = np.asarray(self.landmarks.data).copy()
            lines, line_features = height_lines(review)
            self.heights.data = []
            if lines:
                self.heights.add_lines(lines, edge_color="white")
            self.heights.features = line_features
            positions, texts = level_text(review)
            self.levels.data = positions
            self.levels.features = texts
            self.levels.text.refresh(self.levels.features)
        finally:
            self._updating = False
        self.changed.emit(review.table)


def find_review(layer) -> ReviewLayers | None:
    """The :class:`ReviewLayers` behind a Labels layer this plugin made, else None."""
    return (getattr(layer, "metadata", None) or {}).get(REVIEW_KEY)
