"""What every step widget shares: fields that persist, a run and a cancel button, a status line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from magicgui.widgets import (
    ComboBox,
    Container,
    Label,
    PushButton,
    SpinBox,
    Widget,
    create_widget,
)

from ...core.image import SpineImage
from ...core.measure import COLUMNS
from ..layers import image_from_layer
from ..review_layers import ReviewLayers, find_review
from ..settings import load_settings, save_settings
from ..tasks import Task, run_task

#: Level names offered in level choices (VerSe order, without the rare T13 and L6).
LEVEL_CHOICES = (
    *(f"C{k}" for k in range(1, 8)),
    *(f"T{k}" for k in range(1, 13)),
    *(f"L{k}" for k in range(1, 6)),
)


def layer_image(layer) -> SpineImage:
    """The SpineImage behind a napari layer (geometry from the plugin's metadata or ``scale``)."""
    image = image_from_layer(
        layer.data,
        {
            "metadata": layer.metadata,
            "scale": layer.scale,
            "translate": layer.translate,
            "units": getattr(layer, "units", None),
        },
    )
    if layer.__class__.__name__ == "Labels":
        image = image.with_array(image.array, kind="labels")
    return image


#: The levels choice that counts from what the image shows: the sacrum, on CT the ribs, and a
#: radiograph model's region output (docs/measurements.md).
FROM_SACRUM = "count from the sacrum or ribs"
#: Its text before 2026-11-24, still read from saved settings and pipeline values.
FROM_SACRUM_BEFORE = ("count from the sacrum",)
#: Fields of :func:`level_fields`, kept between uses.
LEVEL_SETTINGS = ("top_level", "lumbar_count", "thoracic_count")


def level_fields() -> list[Widget]:
    """Fields ``top_level``, ``lumbar_count`` and ``thoracic_count`` (level counting)."""
    return [
        ComboBox(
            name="top_level",
            label="levels",
            choices=[FROM_SACRUM, *(f"top is {v}" for v in LEVEL_CHOICES)],
            value=FROM_SACRUM,
        ),
        SpinBox(name="lumbar_count", label="lumbar vertebrae", value=5, min=4, max=6),
        SpinBox(name="thoracic_count", label="thoracic vertebrae", value=12, min=11, max=13),
    ]


def level_options(widget: Container) -> dict[str, Any]:
    """The level options of :func:`level_fields` as keyword arguments of ``measure``."""
    options: dict[str, Any] = {
        "lumbar_count": int(widget["lumbar_count"].value),
        "thoracic_count": int(widget["thoracic_count"].value),
    }
    if widget["top_level"].value != FROM_SACRUM:
        options["top_level"] = str(widget["top_level"].value).removeprefix("top is ")
    return options


class StepWidget(Container):
    """A dock widget running one step: its fields persist between uses (per widget name).

    Subclasses build their fields, pass them here, and implement :meth:`run`; long work goes
    through :meth:`start`, which runs it off the GUI thread with progress and cancel.
    """

    settings_name = "step"

    def __init__(
        self,
        viewer,
        fields: list[Widget],
        run_text: str,
        persist: tuple[str, ...] = (),
        extra: list[Widget] | None = None,
    ) -> None:
        run_button = PushButton(text=run_text, name="run_button")
        cancel_button = PushButton(text="Cancel", name="cancel_button", enabled=False)
        status = Label(value="", name="status")
        status.native.setWordWrap(True)  # summaries and paths wrap instead of being cut off
        super().__init__(widgets=[*fields, run_button, cancel_button, *(extra or []), status])
        self.viewer = viewer
        # run_button, cancel_button and status are reached by name (Container attributes).
        self.task: Task | None = None
        self._persist = persist
        self._restore()
        for name in persist:
            self[name].changed.connect(self._save)
        run_button.changed.connect(self._clicked)
        cancel_button.changed.connect(self.cancel)

    # -- settings -----------------------------------------------------------------------------
    def _restore(self) -> None:
        saved = load_settings(self.settings_name)
        for name in self._persist:
            if name in saved:
                try:
                    self[name].value = saved[name]
                except (ValueError, TypeError, KeyError):
                    pass  # a saved choice that no longer exists

    def _save(self, *_: Any) -> None:
        save_settings(self.settings_name, {name: self[name].value for name in self._persist})

    # -- the layers chosen ----------------------------------------------------------------------
    def chosen_layer(self, field: str, missing: str):
        """The layer chosen in ``field``; None (and ``missing`` in the status line) if none is."""
        layer = self[field].value
        if layer is None:
            self.status.value = missing
        return layer

    def chosen_review(self, missing: str):
        """The review behind the ``vertebrae`` layer; None (status ``missing``) if it has none."""
        layer = self["vertebrae"].value
        review = find_review(layer) if layer is not None else None
        if review is None:
            self.status.value = missing
        return review

    # -- running ------------------------------------------------------------------------------
    def _clicked(self, *_: Any) -> None:
        self.run()

    def run(self) -> None:  # pragma: no cover - every widget defines it
        raise NotImplementedError

    def start(
        self,
        function: Callable[[Callable[[str, float], None]], Any],
        on_done: Callable[[Any], None],
        description: str,
    ) -> Task:
        """Run ``function(progress)`` off the GUI thread; ``on_done(result)`` on the GUI thread."""
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = f"{description}…"

        def finished() -> None:
            self.run_button.enabled = True
            self.cancel_button.enabled = False

        def done(result: Any) -> None:
            self.status.value = ""
            on_done(result)

        self.task = run_task(function, done, description, on_finish=finished)
        return self.task

    def cancel(self, *_: Any) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.value = "cancelling…"


class ReviewFollower(Container):
    """A view of the measurement table of the Labels layer chosen in ``vertebrae``.

    It follows that layer's review: :meth:`show` is called with the table after every
    correction, and with an empty table when the layer has not been measured.
    """

    def __init__(self, viewer, widgets: list[Widget]) -> None:
        import napari

        vertebrae = create_widget(
            annotation=napari.layers.Labels, name="vertebrae", label="vertebrae"
        )
        super().__init__(widgets=[vertebrae, *widgets])
        self.viewer = viewer
        self._review: ReviewLayers | None = None
        vertebrae.changed.connect(self._follow)

    def show(self, table: pd.DataFrame) -> None:  # pragma: no cover - every view defines it
        raise NotImplementedError

    def _follow(self, layer) -> None:
        if self._review is not None:
            self._review.changed.disconnect(self.show)
        self._review = find_review(layer) if layer is not None else None
        if self._review is not None:
            self._review.changed.connect(self.show)
            self.show(self._review.review.table)
        else:
            self.show(pd.DataFrame(columns=list(COLUMNS)))

    def reset_choices(self, *args) -> None:
        super().reset_choices(*args)
        layer = self["vertebrae"].value
        if layer is not None and find_review(layer) is not self._review:
            self._follow(layer)
