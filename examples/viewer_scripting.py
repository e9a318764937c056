"""Analyse a CT from a script, show it in napari, and correct it from code.

The same calls work in the napari console (Window > Console). Run:
``python examples/viewer_scripting.py [CT]`` (default: the bundled real lumbar CT).
"""

import sys

import napari

# The deep-learning stack before the viewer: see docs/segmentation.md (software OpenGL).
import torchvision  # noqa: F401

import napari_vertebra as nv

source = sys.argv[1] if len(sys.argv) > 1 else nv.sample_path("lumbar-ct")
result = nv.analyze(source)  # the CT baseline: no weights needed
viewer = napari.Viewer()
layers = nv.add_to_viewer(viewer, result)
print(layers.review.table[["level", "anterior_height_mm", "vcr_percent", "genant_grade"]])

# Corrections from code do what the mouse does in the viewer, and the table follows:
# layers.shift_levels(+1)             every level one lower
# layers.set_level(label=20, level="L2")  the body labelled 20 (L1) is L2; the others follow
# Moving a landmark point in the "landmarks" layer recomputes heights, VCR and grades.
napari.run()
