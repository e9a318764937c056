"""Levels: name the vertebrae (VerSe IDs), shift all levels, set the level of one vertebra."""

from __future__ import annotations

import napari
from magicgui.widgets import ComboBox, Container, PushButton, create_widget

from ...core.labels import level_name
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


class LevelsWidget(StepWidget):
    """Assign levels to a Labels layer of bodies, then correct them.

    "Assign levels" measures the bodies and turns the layer into the reviewed vertebrae
    (levels, landmarks, heights). "Shift −1 / +1" moves every level; "Set level" gives the
    selected vertebra (the layer's selected label) a level and counts the others from it.
    """

    settings_name = "levels"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        fields = [
            create_widget(annotation=napari.layers.Labels, name="vertebrae", label="bodies"),
            *level_fields(),
        ]
        self.shift_up = PushButton(text="Shift levels −1 (each one higher)", name="shift_up")
        self.shift_down = PushButton(text="Shift levels +1 (each one lower)", name="shift_down")
        self.new_level = ComboBox(name="new_level", label="level", choices=list(LEVEL_CHOICES))
        self.set_button = PushButton(text="Set level of selected vertebra", name="set_level")
        corrections = Container(
            widgets=[self.shift_up, self.shift_down, self.new_level, self.set_button],
            name="corrections",
            label="corrections",
        )
        self.merge_button = PushButton(text="Merge selected with the one below", name="merge")
        self.split_button = PushButton(text="Split selected in two", name="split")
        self.delete_button = PushButton(text="Delete selected", name="delete")
        bodies = Container(
            widgets=[self.merge_button, self.split_button, self.delete_button],
            name="body_edits",
            label="bodies",
        )
        super().__init__(
            viewer,
            fields,
            "Assign levels",
            persist=LEVEL_SETTINGS,
            extra=[corrections, bodies],
        )
        self.merge_button.changed.connect(lambda *_: self.edit_selected("merge"))
        self.split_button.changed.connect(lambda *_: self.edit_selected("split"))
        self.delete_button.changed.connect(lambda *_: self.edit_selected("delete"))
        self.shift_up.changed.connect(lambda *_: self.shift(-1))
        self.shift_down.changed.connect(lambda *_: self.shift(+1))
        self.set_button.changed.connect(lambda *_: self.set_selected_level(self.new_level.value))

    def run(self) -> None:
        layer = self.chosen_layer("vertebrae", "choose a Labels layer of vertebral bodies first")
        if layer is None:
            return
        image = layer_image(layer)
        options = level_options(self)

        def work(progress):
            progress("levels and measurements", 0.0)
            return Review.start(image, **options)

        def show(review: Review) -> None:
            name = layer.name.removesuffix(" bodies").removesuffix(" vertebrae")
            ReviewLayers(self.viewer, review, name=name, labels_layer=layer)
            self.status.value = " ".join(review.table["level"])

        self.start(work, show, "Assigning levels")

    def _review(self):
        return self.chosen_review("assign levels first (the layer has none yet)")

    def shift(self, steps: int) -> None:
        """Move every level of the chosen layer by ``steps``."""
        review = self._review()
        if review is None:
            return
        try:
            review.shift_levels(steps)
        except ValueError as error:
            self.status.value = str(error)
            return
        self.status.value = " ".join(review.review.table["level"])

    def edit_selected(self, action: str) -> None:
        """Merge the selected vertebra with the one below it, split it, or delete it."""
        review = self._review()
        if review is None:
            return
        label = int(review.labels.selected_label)
        try:
            if action == "merge":
                review.merge(label, review.review.body_below(label))
            elif action == "split":
                review.split(label)
            else:
                review.delete(label)
        except ValueError as error:
            self.status.value = str(error)
            return
        self.status.value = " ".join(review.review.table["level"])

    def set_selected_level(self, level: str) -> None:
        """Give the layer's selected label the level ``level``."""
        review = self._review()
        if review is None:
            return
        label = int(review.labels.selected_label)
        try:
            review.set_level(label, level)
        except ValueError as error:
            self.status.value = str(error)
            return
        review.labels.selected_label = int(review.review.pinned[0])
        self.status.value = f"{level_name(label)} is now {level}: " + " ".join(
            review.review.table["level"]
        )
