"""Preprocess: the seeds' preprocessing of an image, shown on the image's own grid."""

from __future__ import annotations

import napari
from magicgui.widgets import ComboBox, create_widget

from ...core.preprocess import SEED000_RADIOGRAPH, SEED004_RADIOGRAPH
from ._base import StepWidget, layer_image

#: Recipes offered, by the name shown.
RECIPES = {
    "seed 004 radiograph (clip 1 %, z-score, 1024², CLAHE)": SEED004_RADIOGRAPH,
    "seed 000 radiograph (CLAHE, Gaussian, 512², z-score)": SEED000_RADIOGRAPH,
    "CT bone window (HU 400 ± 900)": ({"op": "hu_window", "center": 400.0, "width": 1800.0},),
    "CT resampled to 1.5 mm, bone window": (
        {"op": "resample", "target_spacing": [1.5, 1.5, 1.5]},
        {"op": "hu_window", "center": 400.0, "width": 1800.0},
    ),
}


class PreprocessWidget(StepWidget):
    """Adds ``<image> preprocessed``: the recipe's output mapped back onto the image's grid.

    Resizing steps (letterbox, resampling) are undone for display so that the layer overlays
    the image; the recipe as run (with the values it computed) is in the layer's metadata.
    """

    settings_name = "preprocess"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        fields = [
            create_widget(annotation=napari.layers.Image, name="image", label="image"),
            ComboBox(name="recipe", label="recipe", choices=list(RECIPES), value=list(RECIPES)[0]),
        ]
        super().__init__(viewer, fields, "Preprocess", persist=("recipe",))
        self.layer = None

    def run(self) -> None:
        from ...core.preprocess import preprocess

        layer = self.chosen_layer("image", "choose an image layer first")
        if layer is None:
            return
        image = layer_image(layer)
        steps = RECIPES[self.recipe.value]

        def work(progress):
            progress("preprocessing", 0.0)
            prepared = preprocess(image.array, steps, spacing=image.spacing)
            progress("preprocessing", 1.0)
            return prepared.to_source(prepared.array, order=1), prepared.record

        def show(result) -> None:
            array, record = result
            name = f"{layer.name} preprocessed"
            metadata = {**layer.metadata, "napari_vertebra_preprocessing": record}
            if name in self.viewer.layers:
                self.layer = self.viewer.layers[name]
                self.layer.data = array
                self.layer.metadata = metadata
            else:
                self.layer = self.viewer.add_image(
                    array,
                    name=name,
                    scale=layer.scale,
                    translate=layer.translate,
                    colormap="gray",
                    metadata=metadata,
                )
            self.layer.reset_contrast_limits()
            self.status.value = " → ".join(step["op"] for step in record)

        self.start(work, show, "Preprocessing")
