"""Measure: landmarks, heights, VCR, grades and angles of a Labels layer of vertebrae."""

from __future__ import annotations

import napari
from magicgui.widgets import ComboBox, create_widget

from ...core.review import Review
from ..review_layers import ReviewLayers
from ._base import (
    LEVEL_CHOICES,
    LEVEL_SETTINGS,
    StepWidget,
    layer_image,
    level_fields,
    level_options,
)

OUTERMOST = "outermost measured"


class MeasureWidget(StepWidget):
    """Measure the bodies of a Labels layer (any source: this plugin, another tool, by hand).

    Adds the landmark Points (editable), the height Shapes and the level names, and puts the
    measurement table in the layer's ``features``. The image gives the spacing when the labels
    layer has none of its own; a CT on the labels' grid also shows the ribs the levels are
    counted from (docs/measurements.md).
    """

    settings_name = "measure"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        angle_choices = [OUTERMOST, *LEVEL_CHOICES]
        fields = [
            create_widget(annotation=napari.layers.Labels, name="vertebrae", label="vertebrae"),
            create_widget(
                annotation=napari.layers.Image | None, name="image", label="image (spacing, ribs)"
            ),
            *level_fields(),
            ComboBox(
                name="angle_upper", label="angle from", choices=angle_choices, value=OUTERMOST
            ),
            ComboBox(name="angle_lower", label="angle to", choices=angle_choices, value=OUTERMOST),
        ]
        super().__init__(
            viewer,
            fields,
            "Measure",
            persist=(*LEVEL_SETTINGS, "angle_upper", "angle_lower"),
        )
        self.review_layers: ReviewLayers | None = None

    def run(self) -> None:
        layer = self.chosen_layer("vertebrae", "choose a Labels layer of vertebrae first")
        if layer is None:
            return
        labels = layer_image(layer)
        reference = None
        if self.image.value is not None:
            reference = layer_image(self.image.value)
            if reference.shape != labels.shape:
                reference = None
        if labels.spacing is None and reference is not None and reference.spacing is not None:
            labels = labels.with_spacing(reference.spacing)
        if labels.spacing is None:
            self.status.value = (
                f"{layer.name} has no pixel spacing (scale 1 in pixels): choose the image it "
                "belongs to, or set the layer's scale in mm"
            )
            return
        options = level_options(self)
        if OUTERMOST not in (self.angle_upper.value, self.angle_lower.value):
            options["regional_angle"] = (self.angle_upper.value, self.angle_lower.value)

        def work(progress):
            progress("measuring", 0.0)
            return Review.start(labels, image=reference, **options)

        def show(review: Review) -> None:
            name = layer.name.removesuffix(" bodies").removesuffix(" vertebrae")
            self.review_layers = ReviewLayers(self.viewer, review, name=name, labels_layer=layer)
            angles = review.measurement.regional_angles
            text = ", ".join(f"{k}: {v:.1f}°" for k, v in angles.items())
            self.status.value = f"{len(review.table)} vertebrae measured" + (
                f"; angle {text}" if text else ""
            )

        self.start(work, show, "Measuring")
