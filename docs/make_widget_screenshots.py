"""Regenerate the screenshots in docs/: the widgets on a radiograph and on a CT.

Opens the synthetic radiograph (analysed by "Analyze spine" with the bundled radiograph model,
with the table, plot and grade widgets docked) and the real lumbar CT (analysed by "Analyze
spine" with the CT baseline), and saves the whole
window of each to docs/images/. Run (without xvfb-run on a desktop)::

    xvfb-run -a -s "-screen 0 1920x1200x24" python docs/make_widget_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

# The deep-learning stack first: see docs/segmentation.md, "napari sessions on software OpenGL".
import torchvision  # noqa: F401

os.environ.setdefault("NAPARI_VERTEBRA_SYNC", "1")

import napari  # noqa: E402

PLUGIN = "napari-vertebra"
OUT = Path(__file__).resolve().parent / "images"


def dock(viewer, name, area="right"):
    """Dock a widget of the manifest; ``area`` other than right places it there instead."""
    if area == "right":
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    else:
        from napari_vertebra._napari.widgets.plot_widget import HeightPlot
        from napari_vertebra._napari.widgets.table_widget import MeasurementTable

        widget = {"Measurement table": MeasurementTable, "Height plot": HeightPlot}[name](viewer)
        viewer.window.add_dock_widget(widget, name=name, area=area)
    widget.reset_choices()
    return widget


def radiograph(viewer) -> None:
    viewer.open_sample(PLUGIN, "radiograph")
    viewer.layers.remove(viewer.layers[-1])  # the phantom's true labels: segment from scratch
    analyze = dock(viewer, "Analyze spine")
    analyze.image.value = viewer.layers[0]
    analyze.model.value = "auto"  # the bundled radiograph model
    analyze.run()
    bodies = analyze.review_layers.labels
    grade = dock(viewer, "Grade fractures")
    grade.vertebrae.value = bodies
    grade.run()
    table = dock(viewer, "Measurement table", area="bottom")
    table.vertebrae.value = bodies
    plot = dock(viewer, "Height plot", area="left")
    plot.vertebrae.value = bodies
    table.select_level("L1")
    viewer.layers.selection.active = analyze.review_layers.landmarks


def ct(viewer) -> None:
    viewer.open_sample(PLUGIN, "lumbar-ct")
    viewer.layers.remove(viewer.layers[-1])  # TotalSegmentator's labels: analyse from scratch
    analyze = dock(viewer, "Analyze spine")
    analyze.image.value = viewer.layers["lumbar CT"]
    analyze.model.value = "ct-baseline"
    analyze.run()
    levels = dock(viewer, "Levels")
    levels.vertebrae.value = analyze.review_layers.labels
    table = dock(viewer, "Measurement table", area="bottom")
    table.vertebrae.value = analyze.review_layers.labels


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in (("widgets-radiograph.png", radiograph), ("widgets-ct.png", ct)):
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1600, 1000)
        build(viewer)
        napari.qt.get_qapp().processEvents()
        viewer.reset_view()
        napari.qt.get_qapp().processEvents()
        viewer.screenshot(str(OUT / name), canvas_only=False)
        print(f"wrote {OUT / name}")
        viewer.close()


if __name__ == "__main__":
    main()
