"""Model and device choices offered by the widgets."""

from __future__ import annotations

BROWSE = "Browse for a model file…"


def model_choices(widget=None) -> list[str]:
    """``auto``, the CT baseline, every installed model (user folder, bundled), then browse."""
    from ...core.pipeline import CT_BASELINE
    from ...core.segment.registry import available_models

    try:
        installed = sorted(available_models())
    except ValueError:
        installed = []
    return ["auto", CT_BASELINE, *installed, BROWSE]


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
