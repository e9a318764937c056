"""Regenerate the screenshots in docs/images/ (needs a display; use ``xvfb-run -a``).

Run: xvfb-run -a python docs/make_screenshots.py
"""

from pathlib import Path

import napari
import numpy as np

OUT = Path(__file__).parent / "images"
SHOTS = {
    "sample-radiograph.png": ("radiograph", 2),
    "sample-lumbar-ct.png": ("lumbar-ct", 3),
    "sample-phantom-ct.png": ("ct", 3),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, (key, ndim) in SHOTS.items():
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1100, 800)
        viewer.open_sample("napari-vertebra", key)
        labels = viewer.layers[-1]
        labels.opacity = 0.35
        if ndim == 3:
            # Sagittal view: slice along left-right (axis 2), show inferior (rows) x posterior.
            viewer.dims.order = (2, 0, 1)
            voxels = np.argwhere(labels.data > 0)
            middle = np.median(voxels[:, 2]) * labels.scale[2] + labels.translate[2]
            viewer.dims.set_point(2, middle)
        viewer.reset_view()
        viewer.screenshot(str(OUT / name), canvas_only=False, flash=False)
        viewer.close()
        print("wrote", OUT / name)


if __name__ == "__main__":
    main()
