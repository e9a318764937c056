"""Analyze spine: image -> vertebral bodies -> levels -> measurements, in one click."""

from __future__ import annotations

import napari
from magicgui.widgets import create_widget

from ...core.review import Review
from ..review_layers import ReviewLayers
from ._base import LEVEL_SETTINGS, StepWidget, layer_image, level_fields, level_options
from ._models import (
    SEGMENTATION_SETTINGS,
    classifier_field,
    offer_browse,
    segmentation_fields,
    segmentation_options,
)


class AnalyzeWidget(StepWidget):
    """Segment, level and measure the chosen image; adds the review layers."""

    settings_name = "analyze"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        fields = [
            create_widget(annotation=napari.layers.Image, name="image", label="image"),
            *segmentation_fields(),
            classifier_field(),
            *level_fields(),
        ]
        super().__init__(
            viewer,
            fields,
            "Analyze spine",
            persist=(*SEGMENTATION_SETTINGS, "fracture_classifier", *LEVEL_SETTINGS),
        )
        offer_browse(self.model)
        self.result = None
        self.review_layers: ReviewLayers | None = None

    def run(self) -> None:
        from ...core.pipeline import analyze

        layer = self.chosen_layer("image", "choose an image layer first")
        if layer is None:
            return
        image = layer_image(layer)
        options = {
            **segmentation_options(self),
            **level_options(self),
            "fracture_classifier": self.fracture_classifier.value,
        }

        def work(progress):
            return analyze(image, progress=progress, **options)

        self.start(work, lambda result: self._show(result, layer.name), "Analyzing the spine")

    def _show(self, result, name: str) -> None:
        self.result = result
        review = Review.start(result.labels, result.measurement)
        self.review_layers = ReviewLayers(self.viewer, review, name=name)
        table = result.table
        grades = table["genant_grade"].dropna()
        fractures = int((grades >= 1).sum())
        self.status.value = (
            f"{len(table)} vertebrae ({table['level'].iloc[0]}–{table['level'].iloc[-1]}), "
            f"{fractures} graded as fractured"
            if len(table)
            else "no vertebral body found"
        )
