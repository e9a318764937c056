"""Analyze spine: image -> vertebral bodies -> levels -> measurements, in one click."""

from __future__ import annotations

from pathlib import Path

import napari
from magicgui.widgets import LineEdit, PushButton, create_widget

from ...core.review import Review
from ..review_layers import ReviewLayers
from ._base import LEVEL_SETTINGS, StepWidget, layer_image, level_fields
from ._models import (
    SEGMENTATION_SETTINGS,
    classifier_field,
    offer_browse,
    segmentation_fields,
)
from ._pipeline import (
    DEFAULT_THRESHOLDS_TEXT,
    PIPELINE_FIELDS,
    ask_for_pipeline_path,
    settings_from_values,
    values_from_settings,
)


class AnalyzeWidget(StepWidget):
    """Segment, level and measure the chosen image; adds the review layers.

    *Save pipeline…* writes the current settings (with the models' card hashes) as a pipeline
    file that ``analyze --pipeline``, ``batch --pipeline`` and the Batch widget replay; *Load
    pipeline…* puts a file's settings into the fields.
    """

    settings_name = "analyze"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        fields = [
            create_widget(annotation=napari.layers.Image, name="image", label="image"),
            *segmentation_fields(),
            classifier_field(),
            *level_fields(),
            LineEdit(
                name="grade_thresholds",
                label="grade thresholds (%)",
                value=DEFAULT_THRESHOLDS_TEXT,
                tooltip="Height losses where Genant grades 1, 2 and 3 begin (Genant: 20, 25, 40)",
            ),
        ]
        save_button = PushButton(text="Save pipeline…", name="save_pipeline_button")
        load_button = PushButton(text="Load pipeline…", name="load_pipeline_button")
        super().__init__(
            viewer,
            fields,
            "Analyze spine",
            persist=(
                *SEGMENTATION_SETTINGS,
                "fracture_classifier",
                *LEVEL_SETTINGS,
                "grade_thresholds",
            ),
            extra=[save_button, load_button],
        )
        offer_browse(self.model)
        save_button.changed.connect(lambda *_: self.save_pipeline())
        load_button.changed.connect(lambda *_: self.load_pipeline())
        self.result = None
        self.review_layers: ReviewLayers | None = None

    def run(self) -> None:
        from ...core.pipeline import analyze

        layer = self.chosen_layer("image", "choose an image layer first")
        if layer is None:
            return
        image = layer_image(layer)
        try:
            options = self.settings().analyze_options()
        except ValueError as err:
            self.status.value = str(err)
            return

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

    # -- pipeline files ---------------------------------------------------------------------
    def settings(self):
        """The current fields as :class:`~napari_vertebra.core.pipeline_file.PipelineSettings`."""
        return settings_from_values({name: self[name].value for name in PIPELINE_FIELDS})

    def save_pipeline(self, path: str | Path | None = None) -> Path | None:
        """Save the current settings as a pipeline file (asks for a name when none is given)."""
        from ...core.pipeline_file import save_pipeline

        path = path or ask_for_pipeline_path(self.native, save=True)
        if not path:
            return None
        try:
            written = save_pipeline(self.settings().with_model_hashes(), path, overwrite=True)
        except ValueError as err:
            self.status.value = f"not saved: {err}"
            return None
        self.status.value = f"saved {written}"
        return written

    def load_pipeline(self, path: str | Path | None = None) -> bool:
        """Show a pipeline file's settings in the fields (asks for a file when none is given)."""
        from ...core.pipeline_file import load_pipeline

        path = path or ask_for_pipeline_path(self.native)
        if not path:
            return False
        try:
            settings = load_pipeline(path)
            settings.check_models(source=path)
        except ValueError as err:
            self.status.value = f"not loaded: {err}"
            return False
        for name, value in values_from_settings(settings).items():
            if name == "model" and value not in self.model.choices:
                self.model.choices = [*self.model.choices, value]
            self[name].value = value
        self.status.value = f"loaded {path}"
        return True
