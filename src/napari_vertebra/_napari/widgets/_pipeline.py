"""The Analyze spine widget's fields as a pipeline (and back), for saving, loading and batches."""

from __future__ import annotations

from typing import Any

from ...core.pipeline_file import PipelineSettings, parse_percentages
from ._base import FROM_SACRUM, FROM_SACRUM_BEFORE

#: The Analyze spine widget's fields that a pipeline file holds.
PIPELINE_FIELDS = (
    "model",
    "device",
    "tta",
    "fracture_classifier",
    "top_level",
    "lumbar_count",
    "thoracic_count",
    "grade_thresholds",
)
DEFAULT_THRESHOLDS_TEXT = "20, 25, 40"


def settings_from_values(values: dict[str, Any]) -> PipelineSettings:
    """Pipeline settings from the Analyze spine widget's field values (saved or live)."""
    top = values.get("top_level", FROM_SACRUM)
    return PipelineSettings(
        model=str(values.get("model", "auto")),
        device=str(values.get("device", "auto")),
        tta=bool(values.get("tta", False)),
        fracture_classifier=str(values.get("fracture_classifier", "auto")),
        top_level=None
        if top in (None, FROM_SACRUM, *FROM_SACRUM_BEFORE)
        else str(top).removeprefix("top is "),
        lumbar_count=int(values.get("lumbar_count", 5)),
        thoracic_count=int(values.get("thoracic_count", 12)),
        grade_thresholds=parse_percentages(values.get("grade_thresholds", DEFAULT_THRESHOLDS_TEXT)),
    )


def values_from_settings(settings: PipelineSettings) -> dict[str, Any]:
    """The Analyze spine widget's field values that show ``settings``."""
    return {
        "model": settings.model,
        "device": settings.device,
        "tta": settings.tta,
        "fracture_classifier": settings.fracture_classifier,
        "top_level": FROM_SACRUM if settings.top_level is None else f"top is {settings.top_level}",
        "lumbar_count": settings.lumbar_count,
        "thoracic_count": settings.thoracic_count,
        "grade_thresholds": ", ".join(f"{100 * t:g}" for t in settings.grade_thresholds),
    }


def ask_for_pipeline_path(parent=None, save: bool = False) -> str | None:
    """A file dialog for a pipeline file (None when closed)."""
    from qtpy.QtWidgets import QFileDialog

    pattern = "Pipeline (*.yaml *.yml *.json)"
    if save:
        path, _ = QFileDialog.getSaveFileName(parent, "Save pipeline", "pipeline.yaml", pattern)
    else:
        path, _ = QFileDialog.getOpenFileName(parent, "Load pipeline", "", pattern)
    return path or None
