"""SpineImage <-> napari layer data; physical geometry in ``scale``, ``translate`` and metadata."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.image import SpineImage

METADATA_KEY = "napari_vertebra"
#: Bone window for CT display (HU): shows trabecular and cortical bone and soft tissue.
CT_CONTRAST_LIMITS = (-400.0, 1200.0)


def layer_data(image: SpineImage, name: str) -> tuple[Any, dict[str, Any], str]:
    """A napari LayerDataTuple for ``image``: ``scale`` = spacing (mm), ``translate`` = origin."""
    axis_names = {
        "I": "inferior",
        "P": "posterior",
        "L": "left",
        "S": "superior",
        "A": "anterior",
        "R": "right",
    }
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": image.scale,
        "translate": image.origin,
        "units": image.units,
        "metadata": {METADATA_KEY: image.geometry_metadata()},
    }
    if image.axis_codes:
        kwargs["axis_labels"] = tuple(axis_names[c] for c in image.axis_codes)
    if image.kind == "labels":
        return image.array, kwargs, "labels"
    kwargs["colormap"] = "gray"
    if image.modality == "CT":
        kwargs["contrast_limits"] = CT_CONTRAST_LIMITS
    else:
        low, high = np.percentile(image.array, (0.5, 99.5))
        kwargs["contrast_limits"] = (float(low), float(high) if high > low else float(low) + 1)
    return image.array, kwargs, "image"


def image_from_layer(data: np.ndarray, meta: dict[str, Any]) -> SpineImage:
    """Rebuild a SpineImage from layer data and the layer's attributes (``meta`` of a writer).

    Layers this plugin made carry their geometry in metadata; any other layer gets its spacing
    from ``scale`` and is assumed to be in the canonical orientation.
    """
    stored = (meta.get("metadata") or {}).get(METADATA_KEY)
    data = np.asarray(data)
    if stored and tuple(stored.get("shape", ())) == data.shape:
        return SpineImage.from_geometry_metadata(data, stored)
    scale = meta.get("scale")
    translate = meta.get("translate")
    ndim = data.ndim
    # napari's default is scale 1 in "pixel" units: that says nothing about millimetres, and a
    # spacing is never silently taken as 1 mm. Any other scale is millimetres by this plugin's
    # convention (world coordinates in mm).
    units = meta.get("units")
    pixel_units = units is None or all(str(u) in ("pixel", "px") for u in np.atleast_1d(units))
    unit_scale = scale is None or np.allclose(np.asarray(scale, dtype=float), 1.0)
    spacing = None if unit_scale and pixel_units else tuple(float(s) for s in scale)
    return SpineImage(
        array=data,
        spacing=spacing,
        modality="CT" if ndim == 3 else "XR",
        axis_codes=("I", "P", "L")[:ndim] if ndim == 3 else None,
        origin=tuple(float(t) for t in translate) if translate is not None else None,
    )
