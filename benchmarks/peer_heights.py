"""How TotalSegmentator's spine report measures heights, re-implemented to explain its figures.

The real CT in ``../shared/data/ct-lumbar-totalseg`` comes with the peer's own report
(``peer_spine_report.json``). The peer's procedure, as its public description and source state
it (``totalsegmentator/spine_report/measure_verte_height.py``), written here independently:

1. Each vertebra's body is its label within the body mask; its centroid is that of the body
   eroded by 3 mm (a cube).
2. The height axis joins the centroids of the neighbouring vertebrae (S1 and vertebrae cut by
   the field count as neighbours); the horizontal axis is perpendicular to it in the sagittal
   plane.
3. Sagittal slices about 5 mm apart across the central half of the eroded body's left-right
   extent are measured. On each, the horizontal axis through the centroid meets the eroded
   body; heights are taken along the height axis at 15 %, 50 % and 85 % of that chord
   (posterior, middle, anterior).
4. Both intersections march from the centre in half-voxel steps (a bilinear inside test at
   0.5) and keep the last sample inside: each end falls short of the boundary by 0 to half a
   voxel.
5. The slice whose three heights differ most is reported.

Run: python benchmarks/peer_heights.py [--data ../shared/data] [--phantoms 40] [--spacing 3.0]

Prints, per level of the real CT, the heights this re-implementation gives, the peer's reported
ones and ours (``measure``, at 15/50/85 % of our depth); then, on CT phantoms with exact heights,
how far the procedure and ours are from the truth and from each other.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_vertebra import SpineImage, read_image
from napari_vertebra.core.geometry import canonical_transform
from napari_vertebra.core.labels import SACRUM, level_name, to_verse

POSITIONS = {"posterior": 0.15, "middle": 0.5, "anterior": 0.85}
STEP_VOXELS = 0.5
SLICE_STEP_MM = 5.0
SCAN_MARGIN = 0.25
EROSION_MM = 3.0


def _inside(mask: np.ndarray, y: float, z: float) -> bool:
    """Whether the bilinear value of a 2D mask at (y, z) (voxel centres at integers) exceeds one
    half; outside the array is outside the mask."""
    if not (0 <= y < mask.shape[0] and 0 <= z < mask.shape[1]):
        return False
    value = ndimage.map_coordinates(mask, [[y], [z]], order=1, mode="constant")[0]
    return bool(value > 0.5)


def _last_inside(mask: np.ndarray, start: np.ndarray, direction: np.ndarray) -> np.ndarray | None:
    """The last half-voxel sample inside ``mask`` marching from ``start`` along ``direction``."""
    direction = direction / np.linalg.norm(direction)
    previous = start
    for step in np.arange(STEP_VOXELS, 1.5 * max(mask.shape), STEP_VOXELS):
        point = start + step * direction
        if not _inside(mask, *point):
            return previous
        previous = point
    return None


def _chord(mask: np.ndarray, center: np.ndarray, axis: np.ndarray):
    back, front = _last_inside(mask, center, -axis), _last_inside(mask, center, axis)
    return None if back is None or front is None else (back, front)


def peer_heights(labels: np.ndarray, body: np.ndarray, spacing: float) -> dict[str, dict]:
    """Heights (mm) per level by the peer's procedure.

    ``labels`` holds VerSe IDs (26 = S1) and ``body`` the body mask, both as RAS arrays with
    isotropic ``spacing`` (mm), as the peer reads them.
    """
    radius = max(1, int(round(EROSION_MM / spacing)))
    cube = np.ones((2 * radius + 1,) * 3, bool)
    # Cranial to caudal: VerSe IDs ascend down the spine, S1 (26) last; T13 (28) is left out.
    ids = [int(i) for i in np.unique(labels) if 0 < i <= SACRUM]
    names = [level_name(i) for i in ids]
    bodies, eroded, centroids = {}, {}, []
    for value, name in zip(ids, names, strict=True):
        mask = (labels == value) & body
        if not mask.any():
            mask = labels == value
        bodies[name] = mask
        eroded[name] = ndimage.binary_erosion(mask, cube)
        source = eroded[name] if eroded[name].any() else mask
        centroids.append(np.argwhere(source).mean(axis=0))
    results = {}
    for k, name in enumerate(names):
        mask = bodies[name]
        on_border = any(mask.take(0, axis=a).any() or mask.take(-1, axis=a).any() for a in range(3))
        if name == "S1" or on_border:
            continue
        before = centroids[k - 1] if k > 0 else centroids[k]
        after = centroids[k + 1] if k + 1 < len(names) else centroids[k]
        height_axis = (after - before) / np.linalg.norm(after - before)
        height_2d = height_axis[1:]
        across_2d = np.array([-height_2d[1], height_2d[0]])
        xs = np.nonzero(eroded[name].any(axis=(1, 2)))[0]
        margin = int(round(SCAN_MARGIN * (xs[-1] - xs[0] + 1)))
        step = max(1, int(round(SLICE_STEP_MM / spacing)))
        best, best_spread = None, -1.0
        center = centroids[k][1:]
        for x in range(xs[0] + margin, xs[-1] - margin + 1, step):
            chord = _chord(eroded[name][x].astype(float), center, across_2d)
            if chord is None:
                continue
            heights = {}
            for label, fraction in POSITIONS.items():
                point = chord[0] + fraction * (chord[1] - chord[0])
                ends = _chord(mask[x].astype(float), point, height_2d)
                length = 0.0 if ends is None else np.linalg.norm(ends[1] - ends[0])
                heights[label] = spacing * length
            if all(h > 0 for h in heights.values()):
                spread = max(heights.values()) - min(heights.values())
                if spread > best_spread:
                    best_spread, best = spread, {"slice": x, **heights}
        if best is not None:
            results[name] = best
    return results


def to_ras(image: SpineImage) -> np.ndarray:
    """The array of a 3D image (canonical I, P, L axes) in the RAS order the peer reads."""
    return canonical_transform(("R", "A", "S"))[0].to_source(image.array)


def real_ct(folder: Path) -> None:
    """The real CT: the re-implementation against the report, and ours against both."""
    from napari_vertebra.core.measure import measure

    labels = read_image(folder / "labels_totalseg.nii.gz", kind="labels")
    body = read_image(folder / "body_disc_mask.nii.gz", kind="labels")
    emulated = peer_heights(
        to_ras(labels.with_array(to_verse(labels.array, "totalsegmentator"))),
        to_ras(body) == 1,
        float(labels.spacing[0]),
    )
    reported = json.loads((folder / "peer_spine_report.json").read_text())["results"]
    ours = measure(labels, scheme="totalsegmentator", body_mask=body).geometry
    print("real CT: level  position   re-implemented  reported  ours (15/50/85 % of the depth)")
    differences = []
    for level in ("L1", "L2", "L3", "L4", "L5"):
        for name, fraction in POSITIONS.items():
            peer = reported[f"vertebrae_{level}_height_{name}_mm"]
            # Our depth fractions run anterior (0) to posterior (1).
            mine = ours[level].height_at(1.0 - fraction)
            again = emulated.get(level, {}).get(name, float("nan"))
            differences.append((again - peer, mine - peer))
            print(f"         {level:5}  {name:9}  {again:14.2f}  {peer:8.2f}  {mine:6.2f}")
    differences = np.array(differences)
    largest = np.nanmax(np.abs(differences[:, 0]))
    print(f"  re-implementation vs report: largest difference {largest:.2f} mm")
    print(
        f"  ours vs report: mean {differences[:, 1].mean():+.2f} mm, "
        f"{np.count_nonzero(np.abs(differences[:, 1]) <= 3.0)} of 15 within 3 mm"
    )


def phantoms(count: int, spacing: float) -> None:
    """CT phantoms with exact heights: the peer's procedure and ours against the truth.

    Normal bodies only (grade 0): their height hardly changes along the depth, so the truth at
    the peer's positions is the phantom's own height there (interpolated between the walls and
    the middle) even though its chord is not our depth.
    """
    from napari_vertebra import make_phantom
    from napari_vertebra.core.measure import measure

    peer_errors, our_errors, between = [], [], []
    for seed in range(count):
        phantom = make_phantom("ct", seed, fracture_rate=0.35, spacing=spacing)
        labels = to_ras(phantom.labels)
        emulated = peer_heights(labels, labels > 0, spacing)
        ours = measure(phantom.labels).geometry
        for truth in phantom.truth["vertebrae"]:
            level = truth["level"]
            if truth["genant_grade"] or not truth["fully_visible"]:
                continue
            if level not in emulated or level not in ours:
                continue
            profile = [truth[f"{n}_height_mm"] for n in ("anterior", "middle", "posterior")]
            for name, fraction in POSITIONS.items():
                exact = float(np.interp(1.0 - fraction, (0.0, 0.5, 1.0), profile))
                peer = emulated[level][name]
                mine = ours[level].height_at(1.0 - fraction)
                peer_errors.append(peer - exact)
                our_errors.append(mine - exact)
                between.append(mine - peer)
    peer_errors, our_errors, between = map(np.array, (peer_errors, our_errors, between))
    print(f"{count} CT phantoms at {spacing} mm, {len(between) // 3} normal bodies:")
    for title, values in (("peer's procedure", peer_errors), ("ours", our_errors)):
        print(
            f"  {title} minus truth: mean {values.mean():+.2f} mm, MAE {np.abs(values).mean():.2f} "
            f"mm, within 3 mm {100 * np.mean(np.abs(values) <= 3.0):.1f} %"
        )
    print(
        f"  ours minus peer's: mean {between.mean():+.2f} mm, within 3 mm "
        f"{100 * np.mean(np.abs(between) <= 3.0):.1f} %, largest {np.abs(between).max():.2f} mm"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--phantoms", type=int, default=20, help="CT phantoms (0: none)")
    parser.add_argument("--spacing", type=float, default=3.0, help="phantom voxel size (mm)")
    args = parser.parse_args()
    real_ct(args.data / "ct-lumbar-totalseg")
    if args.phantoms:
        phantoms(args.phantoms, args.spacing)


if __name__ == "__main__":
    main()
