"""Open the bundled samples in napari through the plugin, and a file of your own.

Run: python examples/open_in_napari.py [PATH]
"""

import sys

import napari

viewer = napari.Viewer()
viewer.open_sample("napari-vertebra", "radiograph")
if len(sys.argv) > 1:
    viewer.open(sys.argv[1], plugin="napari-vertebra")
    layer = viewer.layers[-1]
    print(layer.name, "scale (mm):", layer.scale, "translate (mm):", layer.translate)
napari.run()
