"""Segment: vertebral bodies of an image, by a model or the non-learned CT baseline."""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, create_widget

from ..layers import METADATA_KEY
from ._base import StepWidget, layer_image
from ._models import BROWSE, browse_for_model, device_choices, model_choices


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
            ComboBox(name="model", label="model", choices=model_choices, value="auto"),
            ComboBox(name="device", label="device", choices=device_choices, value="auto"),
            CheckBox(name="tta", label="flip TTA", value=False),
        ]
        super().__init__(viewer, fields, "Segment", persist=("model", "device", "tta"))
        self.model.changed.connect(self._browse)
        self.layer = None

    def _browse(self, value: str) -> None:
        if value != BROWSE:
            return
        path = browse_for_model(self.native)
        if path:
            self.model.choices = [*model_choices(), path]
            self.model.value = path
        else:
            self.model.value = "auto"

    def run(self) -> None:
        from ...core.pipeline import segment

        layer = self.image.value
        if layer is None:
            self.status.value = "choose an image layer first"
            return
        image = layer_image(layer)
        options = {"model": self.model.value, "device": self.device.value, "tta": self.tta.value}

        def work(progress):
            return segment(image, progress=progress, **options)

        self.start(work, lambda found: self._show(found, layer), "Segmenting")

    def _show(self, found, layer) -> None:
        import pandas as pd
        from scipy import ndimage

        labels = found.labels
        values = [int(v) for v in np.unique(labels.array) if v]
        voxel = float(np.prod(labels.spacing))
        sizes = ndimage.sum_labels(labels.array > 0, labels.array, index=values) * voxel
        features = {"index": values, "size_mm3": np.round(sizes, 1)}
        if found.probabilities is not None:
            means = ndimage.mean(found.probabilities, labels=labels.array, index=values)
            features["segmentation_confidence"] = np.round(means, 4)
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
            features=pd.DataFrame(features),
            metadata=metadata,
            opacity=0.5,
        )
        self.status.value = (
            f"{len(values)} label values by {found.model['name']} on {found.device} "
            f"in {found.seconds:.1f} s"
        )
