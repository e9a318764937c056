"""Level assignment: keep given labels, or count from the sacrum or from a known level.

Counting follows seeds 003/004: the body directly above the sacrum is the last lumbar vertebra
(L5, or L6 with six lumbar vertebrae) and levels are counted upward from it; without a sacrum, a
user-given top level (or any anchor) lets levels be counted downward. Without either, seed 004's
region output (each body thoracic or lumbar) anchors the count at the thoracolumbar junction:
the first lumbar body is L1. On CT the ribs give the same junction (:mod:`.ribs`: the first body
below the rib-bearing ones is L1); where the sacrum is in view too, the two counts are compared
and a disagreement (a transitional lumbosacral vertebra, 11 or 13 rib pairs, a missed or lumbar
rib) marks the levels uncertain. A shift of all levels by ±k corrects an off-by-k count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .instances import Instance
from .labels import SACRUM, T13, level_id, level_name

#: A last component this much longer and larger than the median body is the sacrum.
SACRUM_SIZE_FACTOR = 1.8
#: The same for a last component that touches the image border (a sacrum cut by the field).
CUT_SACRUM_SIZE_FACTOR = 1.2
#: A last component this much larger than the median body is the sacrum however short it is:
#: with its alae a 3D sacrum holds 3-5 bodies' volume but, turned back from the lumbar column,
#: may span less than twice a body's head-to-feet extent (CT phantoms since 2026-11-23).
WIDE_SACRUM_SIZE_FACTOR = 3.0
#: Seed 004 gives each body one region class, removing "stains" of the other below 30 %; a body
#: whose majority class covers less than 70 % of it gets no firm vote here (it still votes by
#: plain majority when the firm votes alone place no junction, and the levels are then flagged).
REGION_VOTE_SHARE = 0.7
#: Share of the voting bodies that must agree with the thoracolumbar junction found.
REGION_AGREEMENT = 0.8


@dataclass
class LevelAssignment:
    """Level of one body and how it was obtained."""

    label: int
    source: str  # "given", "sacrum", "anchor", "top", "ribs", "region", "assumed"
    confidence: float
    #: The count rests on a weak source (levels assumed, or a junction found only by weak votes).
    uncertain: bool = False


def level_sequence(lumbar_count: int = 5, thoracic_count: int = 12) -> list[int]:
    """VerSe IDs from C1 to the last lumbar vertebra for the given counts (T13, L6 optional)."""
    if lumbar_count not in (4, 5, 6) or thoracic_count not in (11, 12, 13):
        raise ValueError("lumbar_count must be 4-6 and thoracic_count 11-13")
    thoracic = list(range(8, 8 + min(thoracic_count, 12))) + ([T13] if thoracic_count == 13 else [])
    return list(range(1, 8)) + thoracic + list(range(20, 20 + lumbar_count))


def lumbar_share(values: np.ndarray) -> float | None:
    """Share of a body's region-classed pixels that are lumbar (1 thoracic, 2 lumbar; seed 004).

    ``None`` when none of the pixels has a region class.
    """
    values = np.asarray(values)
    values = values[(values == 1) | (values == 2)]
    if values.size == 0:
        return None
    return float(np.mean(values == 2))


def region_vote(share: float | None, threshold: float = REGION_VOTE_SHARE) -> str | None:
    """A body's region vote from its :func:`lumbar_share`: the class holding at least
    ``threshold`` of its pixels (0.5 or below: the plain majority), else ``None``."""
    if share is None or share == 0.5:
        return None
    if share >= max(threshold, 0.5):
        return "lumbar"
    if 1 - share >= max(threshold, 0.5):
        return "thoracic"
    return None


def thoracolumbar_junction(regions: Sequence[str | None]) -> int | None:
    """Index of the first lumbar body (L1) from per-body region votes, cranial to caudal.

    The junction is placed where the most votes agree (thoracic above, lumbar below); it needs
    a thoracic and a lumbar vote on each side and :data:`REGION_AGREEMENT` of all votes to agree,
    and must be the only such place. ``None`` otherwise.
    """
    votes = list(regions)
    known = sum(v is not None for v in votes)
    scores = []
    for k in range(1, len(votes)):
        above, below = votes[:k], votes[k:]
        if "thoracic" not in above or "lumbar" not in below:
            scores.append(-1)
            continue
        scores.append(above.count("thoracic") + below.count("lumbar"))
    if not scores or max(scores) < 0:
        return None
    best = max(scores)
    if scores.count(best) > 1 or best < REGION_AGREEMENT * known:
        return None
    return scores.index(best) + 1


def mark_sacrum(instances: list[Instance]) -> str | None:
    """In an anonymous mask, mark the caudal-most component as sacrum when it is much larger.

    Returns how the sacrum is known: ``"given"`` (marked before), ``"size"``, ``"weak"`` (a piece
    at the image's border only 1.2 times a body's size, or a piece marked before among
    anonymous bodies and no larger than 1.8 bodies: a lumbar body cut by the field looks the
    same), or ``None``.
    """
    if any(i.is_sacrum for i in instances):
        bodies = [i for i in instances if not i.is_sacrum]
        anonymous = bool(bodies) and not any(i.label for i in bodies)
        # A piece a model labelled sacrum (anonymous bodies beside it) that is no larger than a
        # body may be a lumbar body the model took for the sacrum at the field's lower edge
        # (whole-trunk CT phantoms cut above L5): as weak as a guess from a cut piece's size.
        if (
            anonymous
            and len(bodies) >= 2
            and instances[-1].is_sacrum
            and instances[-1].size_mm <= SACRUM_SIZE_FACTOR * np.median([b.size_mm for b in bodies])
        ):
            return "weak"
        return "given"
    if len(instances) < 3:
        return None
    last = instances[-1]
    others = instances[:-1]
    typical_size = float(np.median([i.size_mm for i in others]))
    typical_extent = float(np.median([i.mask.shape[0] for i in others]))
    # A sacrum cut by the field of view is smaller but still larger than a body, and at the edge.
    if last.touches_border:
        looks_like_sacrum = last.size_mm > CUT_SACRUM_SIZE_FACTOR * typical_size
    else:
        looks_like_sacrum = last.size_mm > WIDE_SACRUM_SIZE_FACTOR * typical_size or (
            last.size_mm > SACRUM_SIZE_FACTOR * typical_size
            and last.mask.shape[0] > SACRUM_SIZE_FACTOR * typical_extent
        )
    if last.label == 0 and looks_like_sacrum:
        last.is_sacrum = True
        last.label = SACRUM
        return "weak" if last.touches_border else "size"
    return None


def assign_levels(
    instances: list[Instance],
    top_level: str | None = None,
    anchor: tuple[int, str] | None = None,
    shift: int = 0,
    lumbar_count: int = 5,
    thoracic_count: int = 12,
    regions: Sequence[float | None] | None = None,
    ribs: Sequence[bool | None] | None = None,
    rib_above_first: bool = False,
) -> list[LevelAssignment]:
    """Levels of the bodies (instances that are not the sacrum), cranial to caudal.

    Parameters
    ----------
    instances
        Ordered cranio-caudally (:func:`~napari_vertebra.core.instances.extract_instances`).
    top_level
        Level of the most cranial body, for fields of view without the sacrum.
    anchor
        ``(body index, level name)``: a body whose level the user knows; overrides other sources.
    shift
        Move every level by this many positions (+1: each body one level lower).
    lumbar_count, thoracic_count
        Numbers of lumbar (5, or 6 with a transitional L6) and thoracic (12, or 13 with T13)
        vertebrae.
    regions
        Per instance (aligned with ``instances``), the :func:`lumbar_share` of a model's region
        output over it, or ``None``: without a sacrum, an anchor or a top level, the first
        lumbar body is L1 (:func:`thoracolumbar_junction` of the firm votes (:func:`region_vote`);
        failing that, of the plain-majority votes, and then the levels are marked uncertain).
    ribs
        Per instance (aligned with ``instances``), whether ribs attach to it
        (:func:`napari_vertebra.core.ribs.rib_bearing`), or ``None``. Without an anchor or a top
        level, the first body below the rib-bearing ones is L1 when the sacrum is not in view;
        they also tell whether a last piece is S1 or a lumbar body cut by the field. With a
        sacrum recognised by its size or given, a rib count that disagrees marks every level
        uncertain.
    rib_above_first
        A rib was seen above the first body, on the vertebra above it (out of view): a
        thoracic vote before the first, so that a field starting at L1 is counted from it.
    """
    sequence = level_sequence(lumbar_count, thoracic_count)
    uncertain = False
    if regions is not None and len(regions) != len(instances):
        raise ValueError(f"{len(regions)} region votes for {len(instances)} instances")
    if ribs is not None and len(ribs) != len(instances):
        raise ValueError(f"{len(ribs)} rib votes for {len(instances)} instances")
    sacrum_known = None
    if top_level is None and anchor is None:
        sacrum_known = mark_sacrum(instances)
    elif top_level is not None and instances and instances[-1].label == 0:
        # Counting down from a known top level: a component past the last lumbar is the sacrum.
        if sequence.index(level_id(top_level)) + len(instances) - 1 >= len(sequence):
            instances[-1].is_sacrum, instances[-1].label = True, SACRUM
    rib_junction, sacrum_from_ribs = None, False
    if ribs is not None and top_level is None and anchor is None:
        rib_junction, sacrum_from_ribs = _count_ribs(
            instances, ribs, sacrum_known, lumbar_count, rib_above_first
        )
    bodies = [i for i in instances if not i.is_sacrum]
    n = len(bodies)
    if n == 0:
        return []
    if n > len(sequence):
        raise ValueError(
            f"{n} separate vertebral bodies, more than the {len(sequence)} levels C1-"
            f"{level_name(sequence[-1])} of a spine: the label map is probably broken into "
            "pieces (check the segmentation)"
        )
    given = [b.label for b in bodies]
    if anchor is None and all(given) and top_level is None:
        positions = [sequence.index(v) if v in sequence else None for v in given]
        if shift == 0 or None in positions:
            return [LevelAssignment(v, "given", 1.0) for v in given]
        start, source, base = positions[0], "given", 1.0
    elif anchor is not None:
        index, name = anchor
        start, source, base = sequence.index(level_id(name)) - index, "anchor", 0.95
    elif top_level is not None:
        start, source, base = sequence.index(level_id(top_level)), "top", 0.85
    elif instances[-1].is_sacrum and not sacrum_from_ribs:
        start, source, base = len(sequence) - n, "sacrum", 0.95
        if rib_junction is not None and rib_junction != sequence.index(level_id("L1")) - start:
            uncertain = True
    elif rib_junction is not None:
        start, source, base = sequence.index(level_id("L1")) - rib_junction, "ribs", 0.85
    elif (found := _junction_from_regions(regions, instances)) is not None:
        junction, firm = found
        start, source = sequence.index(level_id("L1")) - junction, "region"
        base = 0.85 if firm else 0.6
        uncertain = not firm
    else:
        start, source, base, uncertain = len(sequence) - n, "assumed", 0.3, True
    start += shift
    out = []
    for k in range(n):
        position = start + k
        if not 0 <= position < len(sequence):
            raise ValueError(
                f"counting gives body {k + 1} of {n} a level outside C1-"
                f"{level_name(sequence[-1])}; check the anchor, top level or shift"
            )
        # Confidence fades with the distance (in levels) from the anchor that was counted from.
        if source == "sacrum":
            distance = n - 1 - k
        elif source in ("region", "ribs"):
            distance = abs(k - (sequence.index(level_id("L1")) - start))
        else:
            distance = k
        confidence = base if source == "given" else max(0.1, base - 0.02 * distance)
        out.append(LevelAssignment(sequence[position], source, confidence, uncertain))
    return out


def _count_ribs(
    instances: list[Instance],
    ribs: Sequence[bool | None],
    sacrum_known: str | None,
    lumbar_count: int,
    above_first: bool = False,
) -> tuple[int | None, bool]:
    """Index of L1 among the bodies from their rib votes (:func:`thoracolumbar_junction`) and
    whether the ribs made the last piece S1.

    The last piece's role is settled here when its size alone left it open: marked sacrum on
    weak grounds (``"weak"`` from :func:`mark_sacrum`), it is a lumbar body if the ribs leave
    room for it below L1; unmarked, it is S1 if it is one more than the lumbar
    vertebrae below T12. A junction that leaves more bodies below it than there are lumbar
    vertebrae is dropped.
    """
    last = instances[-1]
    weak = sacrum_known == "weak"
    candidates = [
        vote
        for k, (vote, instance) in enumerate(zip(ribs, instances, strict=True))
        if not instance.is_sacrum or (weak and k == len(instances) - 1)
    ]
    votes = [None if r is None else ("thoracic" if r else "lumbar") for r in candidates]
    if above_first:
        votes = ["thoracic", *votes]
    junction = thoracolumbar_junction(votes)
    if junction is None:
        return None, False
    junction -= int(above_first)
    below = len(candidates) - junction  # L1 and every piece under it
    if weak:
        if below <= lumbar_count:
            last.is_sacrum, last.label = False, 0  # a lumbar body cut by the field
            return junction, False
        return (junction, False) if below == lumbar_count + 1 else (None, False)
    if last.is_sacrum:
        return junction, False  # compared with the sacrum's count
    if last.label == 0 and below == lumbar_count + 1:
        # One piece more than the lumbar spine holds below T12: the last is S1, a sacrum too
        # short or too cut by the field to be recognised by its size.
        last.is_sacrum, last.label = True, SACRUM
        return junction, True
    return (junction, False) if below <= lumbar_count else (None, False)


def _junction_from_regions(
    shares: Sequence[float | None] | None, instances: list[Instance]
) -> tuple[int, bool] | None:
    """Index of L1 among the bodies and whether firm votes alone placed it, or ``None``."""
    if shares is None:
        return None
    body_shares = [s for s, i in zip(shares, instances, strict=True) if not i.is_sacrum]
    for threshold, firm in ((REGION_VOTE_SHARE, True), (0.5, False)):
        junction = thoracolumbar_junction([region_vote(s, threshold) for s in body_shares])
        if junction is not None:
            return junction, firm
    return None
