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


def evaluate(modality: str, n: int, seed0: int, spacing: float | None = None) -> dict:
    """Measure ``n`` phantoms, print the figures and return the per-body and per-case results."""
    errors, vcr, grades, types, levels, counted, times = [], [], [], [], [], [], []
    for seed in range(seed0, seed0 + n):
        phantom = make_phantom(modality, seed, fracture_rate=0.35, spacing=spacing)
        start = time.perf_counter()
        table = measure(phantom.labels).table
        times.append(time.perf_counter() - start)
        expected = [v["level"] for v in phantom.truth["vertebrae"]]
        levels.append(
            table["level"].tolist() == expected + (["S1"] if phantom.truth["sacrum"] else [])
        )
        # Level counting on a semantic mask (bodies and sacrum all 1): from the sacrum, or from
        # the top level a user would give when the field holds no sacrum.
        semantic = phantom.labels.with_array((phantom.labels.array > 0).astype("uint8"))
        top = None if phantom.truth["sacrum"] else expected[0]
        counted.append(
            measure(semantic, top_level=top).table["level"].tolist() == table["level"].tolist()
        )
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
    grid = "phantom default spacing" if spacing is None else f"{spacing} mm isotropic"
    results = {"errors": errors, "vcr": vcr, "grades": grades, "types": types, "levels": levels}
    print_figures(f"{modality} ({grid})", results)
    print(f"  levels counted correctly {100 * np.mean(counted):.1f} % of cases (semantic mask)")
    print(f"  measure time {np.mean(times):.3f} s per case (max {np.max(times):.3f})")
    return results


def print_figures(title: str, results: dict) -> None:
    """Print the accuracy figures of one set of phantoms (or of several pooled)."""
    errors = np.abs(results["errors"])
    print(
        f"{title}: {len(results['levels'])} phantoms, {len(results['grades'])} bodies, "
        f"{len(results['types'])} fractured"
    )
    print(f"  height MAE {np.mean(errors):.3f} mm (max {np.max(errors):.2f})")
    print(f"  VCR MAE {np.mean(np.abs(results['vcr'])):.3f} percentage points")
    print(f"  Genant grade agreement {100 * np.mean(results['grades']):.1f} %")
    print(f"  type agreement among fractured {100 * np.mean(results['types']):.1f} %")
    levels = 100 * np.mean(results["levels"])
    print(f"  levels correct {levels:.1f} % of cases (labels given as VerSe IDs)")


def time_long_spine() -> None:
    """Measure time on a CT phantom with 20 vertebrae (C5-L5) and the sacrum, 1 mm voxels."""
    levels = [f"C{i}" for i in range(5, 8)]
    levels += [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    phantom = make_phantom("ct", 5, levels=levels, with_sacrum=True, spacing=1.0)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        table = measure(phantom.labels).table
        times.append(time.perf_counter() - start)
    vertebrae = int((table["level"] != "S1").sum())
    print(
        f"long CT phantom {phantom.image.shape} at 1 mm, {vertebrae} vertebrae + S1: "
        f"measure {min(times):.2f} s (best of 3), levels {table['level'].iloc[0]}-"
        f"{table['level'].iloc[-1]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-xr", type=int, default=150)
    parser.add_argument("--n-ct", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument(
        "--ct-spacing",
        type=float,
        default=None,
        help="CT voxel size in mm (default: the phantoms' own, 1.0-1.5 mm slices)",
    )
    parser.add_argument("--no-timing", action="store_true", help="skip the long-spine timing")
    args = parser.parse_args()
    results = []
    if args.n_xr:
        results.append(evaluate("xr", args.n_xr, args.seed))
    if args.n_ct:
        results.append(evaluate("ct", args.n_ct, args.seed, spacing=args.ct_spacing))
    if len(results) > 1:
        # Each body counts once, whichever modality it comes from.
        pooled = {key: sum((r[key] for r in results), []) for key in results[0]}
        print_figures("all phantoms together", pooled)
    if not args.no_timing:
        time_long_spine()


if __name__ == "__main__":
    main()
