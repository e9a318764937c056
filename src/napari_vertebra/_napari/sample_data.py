"""napari sample data contributions."""

from __future__ import annotations

from ..core.image import SpineImage
from ..samples import lumbar_ct, synthetic_ct, synthetic_radiograph
from .layers import layer_data


def _pair(image: SpineImage, labels: SpineImage, name: str, what: str) -> list:
    return [layer_data(image, name), layer_data(labels, f"{name} {what}")]


def real_lumbar_ct() -> list:
    """Real abdominal CT, T11–S1 (TotalSegmentator test data, Apache-2.0), with its labels."""
    image, labels = lumbar_ct()
    return _pair(image, labels, "lumbar CT", "vertebrae (TotalSegmentator)")


def phantom_radiograph() -> list:
    """Synthetic lateral radiograph, T11–S1, moderate L1 wedge fracture, with body labels."""
    phantom = synthetic_radiograph()
    return _pair(phantom.image, phantom.labels, "phantom radiograph", "bodies")


def phantom_ct() -> list:
    """Synthetic CT, T12–S1, severe L2 biconcave fracture, with body labels."""
    phantom = synthetic_ct()
    return _pair(phantom.image, phantom.labels, "phantom CT", "bodies")
