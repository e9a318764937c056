"""Heights along the spine, or heights relative to the neighbours' reference with grade lines."""

from __future__ import annotations

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox

from ...core.morphometry import GRADE_THRESHOLDS
from ...core.report import GRADE_COLORS
from ._base import ReviewFollower

RATIO = "height / reference (%)"
HEIGHT = "height (mm)"


def grade_lines(thresholds=GRADE_THRESHOLDS) -> list[tuple[float, int]]:
    """(height in % of the reference, grade) where each Genant grade begins: 80, 75, 60 % with
    Genant's thresholds, or those the measurement was graded with."""
    return [(100 * (1 - t), grade) for grade, t in enumerate(thresholds, start=1)]


class HeightPlot(ReviewFollower):
    """Anterior, middle and posterior heights of each vertebra, cranial to caudal."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        mode = ComboBox(name="mode", label="show", choices=[RATIO, HEIGHT], value=RATIO)
        super().__init__(viewer, [mode])
        self.figure = Figure(figsize=(4, 3), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(260)
        self.native.layout().addWidget(self.canvas)
        self.table = pd.DataFrame()
        mode.changed.connect(lambda *_: self.show(self.table))
        self._follow(self.vertebrae.value)

    def series(self, table: pd.DataFrame) -> dict[str, np.ndarray]:
        """The plotted values per height name (NaN where not measured)."""
        out = {}
        for name in ("anterior", "middle", "posterior"):
            heights = table[f"{name}_height_mm"].astype(float).to_numpy()
            if self.mode.value == RATIO:
                reference = table[f"expected_{name}_height_mm"].astype(float).to_numpy()
                out[name] = 100 * heights / reference
            else:
                out[name] = heights
        return out

    def show(self, table: pd.DataFrame) -> None:
        self.table = table
        self.figure.clear()
        axes = self.figure.add_subplot(111)
        if table is None or table.empty:
            axes.text(0.5, 0.5, "no measured vertebrae", ha="center", va="center")
            axes.set_axis_off()
            self.canvas.draw_idle()
            return
        bodies = table[table["level"] != "S1"]
        x = np.arange(len(bodies))
        for (name, values), marker in zip(self.series(bodies).items(), "o^s", strict=True):
            axes.plot(x, values, marker=marker, label=name)
        if self.mode.value == RATIO:
            graded_with = (
                self._review.review.measurement.grade_thresholds
                if self._review is not None
                else GRADE_THRESHOLDS
            )
            for value, grade in grade_lines(graded_with):
                axes.axhline(value, color=GRADE_COLORS[grade], linestyle="--", linewidth=1)
                axes.text(x[-1] + 0.3, value, f"grade {grade}", va="center", fontsize=7)
            axes.set_ylabel("% of the neighbours' reference")
        else:
            axes.set_ylabel("height (mm)")
        axes.set_xticks(x, bodies["level"].tolist())
        axes.legend(fontsize=7, loc="lower left")
        axes.grid(alpha=0.3)
        self.canvas.draw_idle()
