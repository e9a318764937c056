"""napari-vertebra: find, label and measure vertebrae on spine radiographs and CT.

The scripting API lives here; nothing in it imports napari or Qt, and torch is imported only
when a learned model runs.
"""

from __future__ import annotations

from .core.image import SpineImage
from .core.io import SpineIOError, read_image, read_images, write_labels, write_nifti, write_table
from .core.labels import level_id, level_name, to_verse
from .core.phantom import Phantom, generate_phantoms, make_phantom, write_phantom
from .samples import sample_path

__version__ = "0.1.0"

# Measurement and analysis pull in scipy.stats and scikit-image: loaded on first use, so that
# `import napari_vertebra` (and opening a file in napari) stays quick.
_LAZY = {
    "Measurement": ".core.measure",
    "measure": ".core.measure",
    "write_measurement": ".core.measure",
    "AnalysisResult": ".core.pipeline",
    "analyze": ".core.pipeline",
    "segment": ".core.pipeline",
    "Review": ".core.review",
    # Needs napari; imported only when called from a script or the napari console.
    "add_to_viewer": "._napari.scripting",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnalysisResult",
    "Review",
    "add_to_viewer",
    "Measurement",
    "Phantom",
    "SpineIOError",
    "SpineImage",
    "__version__",
    "analyze",
    "generate_phantoms",
    "level_id",
    "level_name",
    "make_phantom",
    "measure",
    "read_image",
    "read_images",
    "sample_path",
    "segment",
    "to_verse",
    "write_labels",
    "write_measurement",
    "write_nifti",
    "write_phantom",
    "write_table",
]
