"""How much the measurements of a real spine move when the label map is tilted or mirrored.

Uses the expert VerSe mask in ``../shared/data/verse-mask-sample`` (T9-L5, 1 x 1 x 2 mm). The map
is rotated in its sagittal plane (the 1 x 1 mm plane) and measured again; heights of the normal
bodies T10-T12 and L2-L4 are compared with those of the untouched map. Prints, per angle and over
all angles, the median and largest change and the share of heights that moved by at most 0.5 mm.

Resampling changes the voxels themselves. ``--order 0`` (the default) takes each new voxel's label
from the nearest old voxel, which moves a boundary by up to about 0.7 voxel on top of the old
map's own quantisation; ``--order 1`` interpolates each vertebra's mask linearly and keeps the
label whose interpolated value is highest (at least 0.5), which keeps the boundaries where they
were to a fraction of a voxel, as a segmentation of a tilted scan would place them.

Run: python benchmarks/bench_invariance.py [--angles -8 -6 -4 -3 -2 2 4 6 8] [--order 0|1]
"""

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_vertebra import read_image
from napari_vertebra.core.measure import measure

HEIGHTS = ["anterior_height_mm", "middle_height_mm", "posterior_height_mm"]
NORMAL = ["T10", "T11", "T12", "L2", "L3", "L4"]
MASK = Path("verse-mask-sample") / "sub-verse004_seg-vert_msk.nii.gz"


def rotate_labels(labels: np.ndarray, angle: float, order: int) -> np.ndarray:
    """``labels`` turned by ``angle`` degrees in the plane of axes 0 and 1 (see the module doc)."""
    if order == 0:
        return ndimage.rotate(labels, angle, axes=(0, 1), order=0, reshape=True)
    turned = best = None
    for value in np.unique(labels[labels > 0]):
        share = ndimage.rotate(
            (labels == value).astype(np.float32), angle, axes=(0, 1), order=1, reshape=True
        )
        if turned is None:
            turned = np.zeros(share.shape, labels.dtype)
            best = np.full(share.shape, 0.5, np.float32)
        wins = share >= best
        turned[wins], best[wins] = value, share[wins]
    return turned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--angles", type=float, nargs="+", default=[-8, -6, -4, -3, -2, 2, 4, 6, 8])
    parser.add_argument("--order", type=int, choices=(0, 1), default=0, help="resampling order")
    args = parser.parse_args()
    labels = read_image(args.data / MASK, kind="labels")
    reference = measure(labels, whole_vertebrae=True).table.set_index("level")
    mirrored = measure(labels.array[:, :, ::-1], spacing=labels.spacing, whole_vertebrae=True)
    change = np.abs(
        mirrored.table.set_index("level").loc[NORMAL, HEIGHTS] - reference.loc[NORMAL, HEIGHTS]
    ).to_numpy()
    print(f"mirrored left-right: largest change {change.max():.3f} mm")
    changes = []
    for angle in args.angles:
        rotated = rotate_labels(labels.array, angle, args.order)
        table = measure(rotated, spacing=labels.spacing, whole_vertebrae=True).table
        change = np.abs(
            table.set_index("level").loc[NORMAL, HEIGHTS] - reference.loc[NORMAL, HEIGHTS]
        ).to_numpy()
        changes.append(change)
        worst = NORMAL[int(np.argmax(change.max(axis=1)))]
        print(
            f"tilt {angle:+.0f} deg: median {np.median(change):.2f} mm, "
            f"within 0.5 mm {100 * np.mean(change <= 0.5):.0f} %, "
            f"largest {change.max():.2f} mm ({worst})"
        )
    changes = np.concatenate(changes)
    print(
        f"all tilts: median {np.median(changes):.2f} mm, "
        f"within 0.5 mm {100 * np.mean(changes <= 0.5):.1f} %, largest {changes.max():.2f} mm"
    )


if __name__ == "__main__":
    main()
