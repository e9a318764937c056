"""How much the measurements of a real spine move when the label map is tilted or mirrored.

Uses the expert VerSe mask in ``../shared/data/verse-mask-sample`` (T9-L5, 1 x 1 x 2 mm). The map
is rotated in its sagittal plane (the 1 x 1 mm plane) with nearest-neighbour resampling, which
changes the voxels themselves, and measured again; heights of the normal bodies T10-T12 and L2-L4
are compared with those of the untouched map. Prints, per angle and over all angles, the median
and largest change and the share of heights that moved by at most 0.5 mm.

Run: python benchmarks/bench_invariance.py [--angles -8 -6 -4 -3 -2 2 4 6 8]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--angles", type=float, nargs="+", default=[-8, -6, -4, -3, -2, 2, 4, 6, 8])
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
        rotated = ndimage.rotate(labels.array, angle, axes=(0, 1), order=0, reshape=True)
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
