"""Vertebral level IDs: the project's internal scheme and converters.

Internally every label map uses the VerSe IDs (Löffler et al. 2020, seed 002):
1–7 = C1–C7, 8–19 = T1–T12, 20–25 = L1–L6, 28 = T13 (transitional), and this
project adds 26 = sacrum / S1. 0 is background.

TotalSegmentator v2 class IDs run the other way (25 sacrum, 26 S1, 27 L5 …
50 C1); :func:`to_verse` converts them on import. Both its sacrum (25) and its
S1 (26) become 26.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

SACRUM = 26
T13 = 28

_NAMES: dict[int, str] = {}
_NAMES.update({i: f"C{i}" for i in range(1, 8)})
_NAMES.update({7 + i: f"T{i}" for i in range(1, 13)})
_NAMES.update({19 + i: f"L{i}" for i in range(1, 7)})
_NAMES[T13] = "T13"
_NAMES[SACRUM] = "S1"

_IDS: dict[str, int] = {name: label for label, name in _NAMES.items()}
_IDS["SACRUM"] = SACRUM

#: VerSe IDs from cranial to caudal, transitional levels included (T13 after T12, L6 after L5).
CRANIOCAUDAL_ORDER: tuple[int, ...] = (*range(1, 20), T13, *range(20, 26), SACRUM)

SCHEMES = ("verse", "totalsegmentator")

# TotalSegmentator v2: 25 sacrum, 26 vertebrae_S1, 27 L5, 28 L4, 29 L3, 30 L2, 31 L1,
# 32 T12 … 43 T1, 44 C7 … 50 C1. Everything else (organs, spinal cord 79 …) is not a vertebra.
_TOTALSEG_TO_VERSE: dict[int, int] = {25: SACRUM, 26: SACRUM}
_TOTALSEG_TO_VERSE.update({27 + k: 24 - k for k in range(5)})  # L5..L1 -> 24..20
_TOTALSEG_TO_VERSE.update({32 + k: 19 - k for k in range(12)})  # T12..T1 -> 19..8
_TOTALSEG_TO_VERSE.update({44 + k: 7 - k for k in range(7)})  # C7..C1 -> 7..1


def is_level_id(label: int) -> bool:
    """Return True if ``label`` is a VerSe vertebra ID or the sacrum (26)."""
    return int(label) in _NAMES


def level_name(label: int) -> str:
    """Name of a VerSe level ID, e.g. ``20 -> "L1"``, ``26 -> "S1"``.

    Raises
    ------
    KeyError
        If ``label`` is not a vertebral level ID.
    """
    try:
        return _NAMES[int(label)]
    except KeyError:
        raise KeyError(
            f"{label} is not a VerSe vertebra ID (1-25, 26 = sacrum, 28 = T13)"
        ) from None


def level_id(name: str) -> int:
    """VerSe ID of a level name (case-insensitive), e.g. ``"l1" -> 20``, ``"S1" -> 26``."""
    try:
        return _IDS[name.strip().upper()]
    except KeyError:
        raise KeyError(
            f"{name!r} is not a vertebral level name (C1-C7, T1-T13, L1-L6, S1)"
        ) from None


def craniocaudal_rank(label: int) -> int:
    """Position of a level in :data:`CRANIOCAUDAL_ORDER` (0 = C1); sorts levels head to feet."""
    try:
        return CRANIOCAUDAL_ORDER.index(int(label))
    except ValueError:
        raise KeyError(f"{label} is not a VerSe vertebra ID") from None


def region(label: int) -> str:
    """Spinal region of a level: ``"cervical"``, ``"thoracic"``, ``"lumbar"`` or ``"sacral"``."""
    return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[level_name(label)[0]]


def totalsegmentator_to_verse(class_id: int) -> int:
    """VerSe ID of one TotalSegmentator v2 class ID; 0 for classes that are not vertebrae."""
    return _TOTALSEG_TO_VERSE.get(int(class_id), 0)


def to_verse(label_map: np.ndarray, scheme: str = "verse") -> np.ndarray:
    """Convert a label map from ``scheme`` to VerSe IDs.

    Parameters
    ----------
    label_map
        Integer label array of any shape.
    scheme
        ``"verse"`` (IDs kept; non-vertebra IDs set to 0) or ``"totalsegmentator"``.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of the same shape holding VerSe IDs, 0 elsewhere.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown label scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    values = np.asarray(label_map)
    if scheme == "verse":
        lookup = {v: v for v in _NAMES}
    else:
        lookup = _TOTALSEG_TO_VERSE
    table = np.zeros(max(256, int(values.max(initial=0)) + 1), dtype=np.uint8)
    for src, dst in lookup.items():
        if src < table.size:
            table[src] = dst
    if values.size and values.min() < 0:
        raise ValueError("label map holds negative values; labels must be non-negative integers")
    return table[values.astype(np.int64, copy=False)]


def present_levels(label_map: np.ndarray) -> list[int]:
    """VerSe IDs present in ``label_map``, ordered cranio-caudally."""
    found: Iterable[int] = (int(v) for v in np.unique(label_map) if is_level_id(int(v)))
    return sorted(found, key=craniocaudal_rank)
