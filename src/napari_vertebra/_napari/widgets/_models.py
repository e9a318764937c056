"""Model and device choices offered by the widgets."""

from __future__ import annotations

BROWSE = "Browse for a model file…"
#: Fields of :func:`segmentation_fields`, kept between uses.
SEGMENTATION_SETTINGS = ("model", "device", "tta")


def _installed(task: str) -> list[str]:
    """Names of the installed models of ``task`` (none when a model folder is unreadable)."""
    from ...core.segment.registry import available_models

    try:
        return sorted(available_models(task=task))
    except ValueError:
        return []


def model_choices(widget=None) -> list[str]:
    """``auto``, the CT baseline, every installed model (user folder, bundled), then browse."""
    from ...core.pipeline import CT_BASELINE
    from ...core.segment.card import SEGMENTATION_TASK

    return ["auto", CT_BASELINE, *_installed(SEGMENTATION_TASK), BROWSE]


def classifier_choices(widget=None) -> list[str]:
    """``auto`` (the installed classifier of the image's modality), ``none``, then each
    installed fracture classifier (seed 003) by name."""
    from ...core.segment.card import FRACTURE_TASK

    return ["auto", "none", *_installed(FRACTURE_TASK)]


def classifier_field():
    """The fracture-classifier field of the Analyze spine widget."""
    from magicgui.widgets import ComboBox

    return ComboBox(
        name="fracture_classifier",
        label="fracture classifier",
        choices=classifier_choices,
        value="auto",
        tooltip="Seed 003's classifier: its probability is a column beside the measured grade",
    )


def device_choices(widget=None) -> list[str]:
    """``auto`` and the devices present here (CPU always; CUDA and MPS when torch finds them)."""
    choices = ["auto", "cpu"]
    try:
        import torch
    except ImportError:
        return choices
    if torch.cuda.is_available():
        choices += [f"cuda:{k}" for k in range(torch.cuda.device_count())] or ["cuda"]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        choices.append("mps")
    return choices


def browse_for_model(parent=None) -> str | None:
    """Ask for a model card or weights file (None when the dialog is closed)."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getOpenFileName(
        parent, "Model card or weights", "", "Model (*.json *.safetensors)"
    )
    return path or None


def offer_browse(combo) -> None:
    """Make the browse entry of a model combo box ask for a file and add it to the choices."""

    def chosen(value: str) -> None:
        if value != BROWSE:
            return
        path = browse_for_model(combo.native)
        if path:
            combo.choices = [*model_choices(), path]
            combo.value = path
        else:
            combo.value = "auto"

    combo.changed.connect(chosen)


def segmentation_fields() -> list:
    """The model, device and flip-TTA fields of the widgets that segment."""
    from magicgui.widgets import CheckBox, ComboBox

    return [
        ComboBox(name="model", label="model", choices=model_choices, value="auto"),
        ComboBox(name="device", label="device", choices=device_choices, value="auto"),
        CheckBox(name="tta", label="flip TTA", value=False),
    ]


def segmentation_options(widget) -> dict:
    """``model``, ``device`` and ``tta`` as :func:`~napari_vertebra.segment` takes them."""
    return {
        "model": widget.model.value,
        "device": widget.device.value,
        "tta": bool(widget.tta.value),
    }
