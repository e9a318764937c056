"""Print reading times for the real scans and phantom generation time and peak memory.

Run: python benchmarks/bench_io_phantoms.py [--n 5]
"""

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from napari_vertebra import make_phantom, read_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5, help="phantoms per modality")
    args = parser.parse_args()
    files = [
        "ct-lumbar-totalseg/ct.nii.gz",
        "ct-lumbar-totalseg/dicom_series_T11-T12",
        "verse-mask-sample/sub-verse004_seg-vert_msk.nii.gz",
    ]
    for name in files:
        image, seconds = timed(lambda name=name: read_image(DATA / name))
        print(f"read {name}: {seconds:.3f} s  shape {image.shape}")
    for modality in ("xr", "ct"):
        times, shapes = [], []
        for seed in range(args.n):
            start = time.perf_counter()
            phantom = make_phantom(modality, seed)
            times.append(time.perf_counter() - start)
            shapes.append(np.prod(phantom.image.shape))
        print(
            f"phantom {modality}: {np.mean(times):.2f} s mean, {np.max(times):.2f} s max over "
            f"{args.n} (default spacing, {np.mean(shapes) / 1e6:.1f} M pixels mean)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
