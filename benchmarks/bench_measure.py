"""Accuracy and speed of the measure step on phantoms with exact ground truth.

Prints height MAE (mm), VCR MAE (percentage points), Genant grade agreement, type agreement among
fractured bodies, level agreement and time per case, for radiograph (2D) and CT (3D) phantoms.

Run: python benchmarks/bench_measure.py --n-xr 150 --n-ct 30
"""

import argparse
import time

import numpy as np

from napari_vertebra import make_phantom
from napari_vertebra.core.measure import measure

HEIGHTS = ("anterior_height_mm", "middle_height_mm", "posterior_height_mm")


def evaluate(modality: str, n: int, seed0: int) -> None:
    errors, vcr, grades, types, levels, times = [], [], [], [], [], []
    for seed in range(seed0, seed0 + n):
        phantom = make_phantom(modality, seed, fracture_rate=0.35)
        start = time.perf_counter()
        table = measure(phantom.labels).table
        times.append(time.perf_counter() - start)
        levels.append(table["level"].tolist() == [v["level"] for v in phantom.truth["vertebrae"]])
        rows = table.set_index("level")
        for truth in phantom.truth["vertebrae"]:
            if not truth["fully_visible"] or truth["level"] not in rows.index:
                continue
            row = rows.loc[truth["level"]]
            errors.extend(row[h] - truth[h] for h in HEIGHTS)
            if "vcr_percent" in truth and np.isfinite(row["vcr_percent"]):
                vcr.append(row["vcr_percent"] - truth["vcr_percent"])
            grades.append(int(row["genant_grade"]) == truth["genant_grade"])
            if truth["genant_grade"]:
                types.append(row["fracture_type"] == truth["fracture_type"])
    print(f"{modality}: {n} phantoms, {len(grades)} bodies, {len(types)} fractured")
    print(f"  height MAE {np.mean(np.abs(errors)):.3f} mm (max {np.max(np.abs(errors)):.2f})")
    print(f"  VCR MAE {np.mean(np.abs(vcr)):.3f} percentage points")
    print(f"  Genant grade agreement {100 * np.mean(grades):.1f} %")
    print(f"  type agreement among fractured {100 * np.mean(types):.1f} %")
    print(f"  levels correct {100 * np.mean(levels):.1f} % of cases (labels given as VerSe IDs)")
    print(f"  measure time {np.mean(times):.3f} s per case (max {np.max(times):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-xr", type=int, default=150)
    parser.add_argument("--n-ct", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    if args.n_xr:
        evaluate("xr", args.n_xr, args.seed)
    if args.n_ct:
        evaluate("ct", args.n_ct, args.seed)


if __name__ == "__main__":
    main()
