"""Training pairs on the model grid: the card's preprocessing for the image, classes for labels.

A pair's target is a *detail map* that keeps everything any head may learn from: background,
sacrum, and for each body pixel its region (thoracic, lumbar or unknown) and its fracture status
(fractured, normal or unknown). Each head's classes are read from it (:func:`head_targets`):

- body models (``unet``, ``r2unet``, ``mdr2unet``): 0 background, 1 vertebral body, 2 sacrum;
- seed 004's multitask model: a *region* head (background, thoracic, lumbar, sacrum) and a
  *fracture* head (background, fracture, normal, sacrum). Body pixels whose region or fracture
  status is unknown (an anonymous mask, a CT without fracture reads) are ignored by that head's
  loss rather than taught as either class.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..image import SpineImage
from ..labels import SACRUM, is_level_id, region
from ..metrics import vertebral_bodies
from ..preprocess import preprocess

#: Output channels of the body models, in order.
BODY_CLASSES = ("background", "vertebral_body", "sacrum")
#: Seed 004's level-detection head.
REGION_CLASSES = ("background", "thoracic", "lumbar", "sacrum")
#: Seed 004's fracture head (a body with Genant grade >= 1 is "fracture").
FRACTURE_CLASSES = ("background", "fracture", "normal", "sacrum")
#: Head name -> classes, per architecture family.
SEGMENTATION_HEADS = {"segmentation": BODY_CLASSES}
MULTITASK_HEADS = {"fracture": FRACTURE_CLASSES, "region": REGION_CLASSES}
#: Pixels a head does not learn from (``torch.nn.functional.cross_entropy``'s default).
IGNORE = -100

# Detail codes: 0 background, 1 sacrum, 2 + 3 * region + fracture for body pixels, with region
# 0 unknown / 1 thoracic / 2 lumbar and fracture 0 unknown / 1 fractured / 2 normal.
_SACRUM_CODE = 1
_CODES = 11
_UNKNOWN, _THORACIC, _LUMBAR = 0, 1, 2
_FRACTURED, _NORMAL = 1, 2


def _body_code(region_code: int, fracture_code: int) -> int:
    return 2 + 3 * region_code + fracture_code


def _lookup(head: str) -> np.ndarray:
    """Detail code -> the class ``head`` learns (:data:`IGNORE` where it has no truth)."""
    table = np.full(_CODES, IGNORE, dtype=np.int64)
    table[0] = 0
    if head == "segmentation":
        table[2:] = 1
        table[_SACRUM_CODE] = 2
        return table
    table[_SACRUM_CODE] = 3
    classes = {"region": {_THORACIC: 1, _LUMBAR: 2}, "fracture": {_FRACTURED: 1, _NORMAL: 2}}[head]
    for r in range(3):
        for f in range(3):
            table[_body_code(r, f)] = classes.get(r if head == "region" else f, IGNORE)
    return table


_TABLES = {head: _lookup(head) for head in ("segmentation", "region", "fracture")}


@dataclass
class Pair:
    """A training image (channels first, model grid) with its detail map and where it came from."""

    image: np.ndarray
    target: np.ndarray
    origin: str


def class_map(labels: np.ndarray) -> np.ndarray:
    """VerSe-ID label map → body-model classes (0 background, 1 body, 2 sacrum)."""
    return head_targets(detail_map(labels), "segmentation")


def detail_map(labels: np.ndarray, fractured: Collection[int] | None = None) -> np.ndarray:
    """VerSe-ID label map → detail codes (see the module docstring).

    Parameters
    ----------
    labels
        Bodies in VerSe IDs (sacrum 26); an anonymous body value (1) has an unknown region.
    fractured
        VerSe IDs of the fractured bodies (Genant grade >= 1); ``None`` when unknown, so that
        the fracture head ignores every body of this image.
    """
    labels = np.asarray(labels)
    codes = np.zeros(labels.shape, dtype=np.int64)
    bodies = vertebral_bodies(labels)
    for value in np.unique(labels[bodies]):
        # 1 is an anonymous body in a semantic mask (C1 has no body to segment).
        name = region(int(value)) if value > 1 and is_level_id(int(value)) else ""
        region_code = {"thoracic": _THORACIC, "lumbar": _LUMBAR}.get(name, _UNKNOWN)
        if fractured is None:
            fracture_code = _UNKNOWN
        else:
            fracture_code = _FRACTURED if int(value) in fractured else _NORMAL
        codes[bodies & (labels == value)] = _body_code(region_code, fracture_code)
    codes[labels == SACRUM] = _SACRUM_CODE
    return codes


def head_targets(detail: np.ndarray, head: str) -> np.ndarray:
    """One head's classes from a detail map (:data:`IGNORE` where the head has no truth)."""
    if head not in _TABLES:
        raise ValueError(f"unknown head {head!r} (segmentation, region, fracture)")
    return _TABLES[head][detail]


def to_model_grid(
    image: SpineImage,
    labels: SpineImage,
    preprocessing: Sequence[dict[str, Any]],
    fractured: Collection[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessed image and its detail map (:func:`detail_map`) on the same (model) grid.

    Geometric steps are applied to each code as a one-hot channel with linear interpolation,
    then the most likely code is kept, so thin structures are not lost to nearest-neighbour
    decimation.
    """
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
    prepared = preprocess(image.array, preprocessing, spacing=image.spacing)
    geometric = [step for step in preprocessing if step["op"] in ("letterbox", "resample")]
    detail = detail_map(labels.array, fractured)
    present = [int(v) for v in np.unique(detail)]
    if 0 not in present:
        present.insert(0, 0)
    channels = [
        preprocess((detail == value).astype(np.float32), geometric, spacing=image.spacing).array
        for value in present
    ]
    target = np.asarray(present, dtype=np.int64)[np.argmax(np.stack(channels), axis=0)]
    if target.shape != prepared.array.shape:
        raise ValueError("labels and image ended on different model grids")
    return prepared.array.astype(np.float32), target
