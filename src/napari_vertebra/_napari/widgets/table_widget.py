"""The measurement table: sortable, linked to the viewer, exported as CSV."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import PushButton
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from ...core.io import write_table
from ...core.measure import COLUMNS, SUMMARY_COLUMNS
from ..review_layers import ReviewLayers
from ._base import ReviewFollower


def focus_vertebra(viewer, review: ReviewLayers, label: int) -> None:
    """Select ``label`` in the vertebrae layer and move the view (and the slice) to its body."""
    review.labels.selected_label = label
    table = review.review.table
    row = table[table["label"] == label]
    if row.empty:
        return
    centroid = np.array([float(c) for c in str(row["centroid_mm"].iloc[0]).split()])
    for axis, value in enumerate(centroid):
        if axis not in viewer.dims.displayed:
            viewer.dims.set_point(axis, value)
    # napari 0.9 moved the camera to viewer.scene; older versions have viewer.camera.
    scene = getattr(viewer, "scene", None)
    camera = scene.camera if scene is not None else viewer.camera
    camera.center = tuple(centroid[list(viewer.dims.displayed)])


class _NumericItem(QTableWidgetItem):
    """A cell that sorts by number (NaN last) rather than by text."""

    def __init__(self, text: str, key: float) -> None:
        super().__init__(text)
        self.key = key

    def __lt__(self, other) -> bool:
        if isinstance(other, _NumericItem):
            mine, theirs = float(self.key), float(other.key)
            return bool((np.isnan(mine), mine) < (np.isnan(theirs), theirs))
        return super().__lt__(other)


class MeasurementTable(ReviewFollower):
    """Per-vertebra table of a measured Labels layer; follows every correction.

    Click a column header to sort; selecting a row selects that vertebra in the viewer and
    centres it. "Export CSV…" writes the full table (``measurements.csv`` columns).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        export = PushButton(text="Export CSV…", name="export")
        super().__init__(viewer, [export])
        self.grid = QTableWidget()
        self.grid.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.grid.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.grid.setSortingEnabled(True)
        self.grid.setMinimumHeight(220)
        self.native.layout().addWidget(self.grid)
        self.table = pd.DataFrame(columns=list(COLUMNS))
        export.changed.connect(lambda *_: self._export_dialog())
        self.grid.itemSelectionChanged.connect(self._on_select)
        self._follow(self.vertebrae.value)

    def show(self, table: pd.DataFrame) -> None:
        """Fill the grid with ``table`` (the shown columns)."""
        self.table = table
        # Shown: the summary columns; exported: all of them.
        columns = [c for c in SUMMARY_COLUMNS if c in table.columns]
        self.grid.setSortingEnabled(False)
        self.grid.clear()
        self.grid.setColumnCount(len(columns))
        self.grid.setRowCount(len(table))
        self.grid.setHorizontalHeaderLabels([c.replace("_", " ") for c in columns])
        for r, (_, row) in enumerate(table.iterrows()):
            for c, column in enumerate(columns):
                value = row[column]
                if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                    value, bool
                ):
                    number = float(value)
                    text = "" if np.isnan(number) else f"{number:g}"
                    item = _NumericItem(text, number)
                elif value is pd.NA:
                    item = _NumericItem("", float("nan"))
                else:
                    item = QTableWidgetItem(str(value))
                item.setData(Qt.ItemDataRole.UserRole, int(row["label"]))
                self.grid.setItem(r, c, item)
        self.grid.setSortingEnabled(True)
        self.grid.resizeColumnsToContents()

    def select_level(self, level: str) -> None:
        """Select the row of ``level`` (as a click would)."""
        column = 0
        for r in range(self.grid.rowCount()):
            if self.grid.item(r, column).text() == level:
                self.grid.selectRow(r)
                return
        raise ValueError(f"no row for {level}")

    def _on_select(self) -> None:
        items = self.grid.selectedItems()
        if not items or self._review is None:
            return
        label = int(items[0].data(Qt.ItemDataRole.UserRole))
        focus_vertebra(self.viewer, self._review, label)

    def export_csv(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the whole table (every column) to ``path``."""
        return write_table(self.table, Path(path), overwrite=overwrite)

    def _export_dialog(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self.native, "Export measurements", "measurements.csv", "CSV (*.csv)"
        )
        if path:
            # The dialog has already asked before replacing an existing file.
            self.export_csv(path, overwrite=True)
