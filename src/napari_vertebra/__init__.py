"""napari-vertebra: find, label and measure vertebrae on spine radiographs and CT.

The scripting API lives here; nothing in it imports napari, Qt or torch.
"""

from __future__ import annotations

from .core.image import SpineImage
from .core.io import SpineIOError, read_image, read_images, write_labels, write_nifti, write_table
from .core.labels import level_id, level_name, to_verse
from .core.phantom import Phantom, generate_phantoms, make_phantom, write_phantom
from .samples import sample_path

__version__ = "0.1.0"

__all__ = [
    "Phantom",
    "SpineIOError",
    "SpineImage",
    "__version__",
    "generate_phantoms",
    "level_id",
    "level_name",
    "make_phantom",
    "read_image",
    "read_images",
    "sample_path",
    "to_verse",
    "write_labels",
    "write_nifti",
    "write_phantom",
    "write_table",
]
