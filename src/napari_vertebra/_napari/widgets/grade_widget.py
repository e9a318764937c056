"""Grade fractures: Genant grades and types of the measured vertebrae, and where they are."""

from __future__ import annotations

import napari
import pandas as pd
from magicgui.widgets import CheckBox, PushButton, SpinBox, create_widget

from ...core.measure import fracture_report
from ..review_layers import grade_colormap
from ._base import StepWidget


class GradeWidget(StepWidget):
    """Genant semiquantitative grades (seed 002) of a measured Labels layer.

    Grades follow from the heights (docs/measurements.md): a grade is ≥ 1 when the worst of the
    anterior, middle and posterior heights is 20 % or more below the reference from the
    neighbours. "Grade fractures" lists the fractures and colours the bodies by grade (green 0,
    yellow 1, orange 2, red 3, blue ungraded); "Next fracture" selects and centres them in turn.
    Correcting a landmark updates the grades at once.
    """

    settings_name = "grade"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        fields = [
            create_widget(annotation=napari.layers.Labels, name="vertebrae", label="vertebrae"),
            SpinBox(name="minimum_grade", label="report from grade", value=1, min=1, max=3),
            CheckBox(name="color_by_grade", label="colour bodies by grade", value=True),
        ]
        self.next_button = PushButton(text="Next fracture", name="next_fracture")
        super().__init__(
            viewer,
            fields,
            "Grade fractures",
            persist=("minimum_grade", "color_by_grade"),
            extra=[self.next_button],
        )
        self.next_button.changed.connect(lambda *_: self.next_fracture())
        self.color_by_grade.changed.connect(lambda *_: self._apply_colors())
        self.report: list[str] = []
        self._cursor = -1

    def run(self) -> None:
        review = self._review()
        if review is None:
            return
        review.changed.connect(self._on_change)
        self._on_change(review.review.table)

    def _review(self):
        return self.chosen_review("measure the vertebrae first (Measure or Analyze spine)")

    def _on_change(self, table: pd.DataFrame) -> None:
        self.report = fracture_report(table, int(self.minimum_grade.value))
        self.status.value = "\n".join(self.report) or "no fracture at this grade"
        self._apply_colors()

    def _apply_colors(self) -> None:
        review = self._review()
        if review is None:
            return
        if self.color_by_grade.value:
            review.labels.colormap = grade_colormap(review.review.table)
        else:
            from napari.utils.colormaps import label_colormap

            review.labels.colormap = label_colormap()

    def next_fracture(self) -> str | None:
        """Select the next reported fracture and centre the view on it; returns its level."""
        review = self._review()
        if review is None:
            return None
        table = review.review.table
        graded = table["genant_grade"].fillna(-1).astype(int)
        rows = table[graded >= int(self.minimum_grade.value)]
        if rows.empty:
            self.status.value = "no fracture at this grade"
            return None
        self._cursor = (self._cursor + 1) % len(rows)
        row = rows.iloc[self._cursor]
        from .table_widget import focus_vertebra

        focus_vertebra(self.viewer, review, int(row["label"]))
        return str(row["level"])
