"""Read a spine image and inspect its geometry (no viewer needed).

Run: python examples/read_and_inspect.py [PATH]   (default: the bundled real lumbar CT)
"""

import sys

import numpy as np

import napari_vertebra as nv

path = sys.argv[1] if len(sys.argv) > 1 else nv.sample_path("lumbar-ct")
image = nv.read_image(path)
print(f"{path}\n  modality {image.modality}, shape {image.shape}, axes {image.axis_codes}")
print(f"  spacing {image.spacing} mm (from {image.source['spacing_source']})")
print(
    f"  origin {np.round(image.origin, 1)} mm, intensity {image.array.min()}..{image.array.max()}"
)
if image.modality == "CT":
    centre = tuple(n // 2 for n in image.shape)
    print(f"  centre voxel at world {image.index_to_world(centre)} mm, {image.array[centre]} HU")
