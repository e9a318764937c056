"""Segment: vertebral bodies of an image, by a model or the non-learned CT baseline."""

from __future__ import annotations

import napari
from magicgui.widgets import create_widget

from ..layers import METADATA_KEY
from ._base import StepWidget, layer_image
from ._models import (
    SEGMENTATION_SETTINGS,
    offer_browse,
    segmentation_fields,
    segmentation_options,
)


class SegmentWidget(StepWidget):
    """Adds ``<image> bodies``: a Labels layer of the bodies (before levels), 26 = sacrum.

    Bodies are numbered 101, 102, … from head to feet where the method separates them (the CT
    baseline) or 1 for all (a semantic model output); the Levels or Measure widget then names
    and measures them. ``features`` holds each body's size and, for learned models, its mean
    probability.
    """

    settings_name = "segment"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        fields = [
            create_widget(annotation=napari.layers.Image, name="image", label="image"),
            *segmentation_fields(),
        ]
        super().__init__(viewer, fields, "Segment", persist=SEGMENTATION_SETTINGS)
        offer_browse(self.model)
        self.layer = None

    def run(self) -> None:
        from ...core.pipeline import segment

        layer = self.chosen_layer("image", "choose an image layer first")
        if layer is None:
            return
        image = layer_image(layer)
        options = segmentation_options(self)

        def work(progress):
            return segment(image, progress=progress, **options)

        self.start(work, lambda found: self._show(found, layer), "Segmenting")

    def _show(self, found, layer) -> None:
        labels = found.labels
        features = found.body_table()
        name = f"{layer.name} bodies"
        metadata = {
            METADATA_KEY: labels.geometry_metadata(),
            "napari_vertebra_segmentation": {
                "model": found.model,
                "device": found.device,
                "details": found.details,
                "seconds": round(found.seconds, 3),
            },
        }
        self.layer = self.viewer.add_labels(
            labels.array,
            name=name,
            scale=labels.scale,
            translate=labels.origin,
            features=features,
            metadata=metadata,
            opacity=0.5,
        )
        self.status.value = (
            f"{len(features)} label values by {found.model['name']} on {found.device} "
            f"in {found.seconds:.1f} s"
        )
