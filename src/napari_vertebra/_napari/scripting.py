"""Showing an analysis in a viewer from a script or the napari console."""

from __future__ import annotations

from typing import Any

from ..core.pipeline import AnalysisResult
from ..core.review import Review
from .layers import layer_data
from .review_layers import ReviewLayers


def add_to_viewer(
    viewer, result: AnalysisResult, name: str | None = None, image: bool = True
) -> ReviewLayers:
    """Add an analysis to ``viewer``: image, vertebrae, landmarks, height lines, level names.

    Parameters
    ----------
    viewer
        A ``napari.Viewer``.
    result
        What :func:`napari_vertebra.analyze` returned.
    name
        Prefix of the layer names (default: the input file's name, else ``"spine"``).
    image
        Also add the analysed image (leave False when it is already open).

    Returns
    -------
    ReviewLayers
        The layers (``.labels``, ``.landmarks``, ``.heights``, ``.levels``) and the review
        behind them (``.review``): moving a landmark or calling ``.shift_levels(1)`` updates the
        table (``.review.table``, also the labels layer's ``features``) at once.
    """
    if name is None:
        path = result.image.source.get("path")
        name = _stem(path) if path else "spine"
    if image:
        data, kwargs, _ = layer_data(result.image, name)
        viewer.add_image(data, **kwargs)
    review = Review.start(result.labels, result.measurement)
    return ReviewLayers(viewer, review, name=name)


def _stem(path: Any) -> str:
    from pathlib import Path

    base = Path(str(path)).name
    for suffix in (".nii.gz", ".nii", ".dcm", ".png", ".tif", ".tiff", ".jpg", ".jpeg"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base
