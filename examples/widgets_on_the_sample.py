"""Open the widgets on the synthetic radiograph: measure it, grade it, and look at the table.

Run: ``python examples/widgets_on_the_sample.py``. Then drag a landmark of L1 (the moderate
wedge fracture) and watch the table, the plot and the colours change.
"""

import napari

PLUGIN = "napari-vertebra"

viewer = napari.Viewer()
viewer.open_sample(PLUGIN, "radiograph")
image, bodies = viewer.layers
_, measure = viewer.window.add_plugin_dock_widget(PLUGIN, "Measure vertebrae")
measure.reset_choices()
measure.vertebrae.value = bodies
measure.image.value = image
measure.run()
for name in ("Grade fractures", "Measurement table", "Height plot"):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    widget.reset_choices()
    widget.vertebrae.value = bodies
napari.run()
