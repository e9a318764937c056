"""Batch throughput: studies per minute with 1 and 2 local Dask workers on phantoms.

Writes N radiograph phantoms and M CT phantoms (bare image files) into a temporary folder,
then runs ``run_batch`` over it into a fresh results folder once per worker count, with the
default settings (bundled radiograph model, CT baseline, seed 003 classifier on CT) and the
per-study report. The time includes starting the Dask workers (each imports torch and loads
its models once). Prints one line per worker count and the whole table as JSON.

Run: python benchmarks/bench_batch.py [--xr 16] [--ct 4] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import napari_vertebra as nv
from napari_vertebra.core.batch import run_batch


def write_studies(folder: Path, n_xr: int, n_ct: int) -> None:
    folder.mkdir(parents=True)
    for k in range(n_xr):
        nv.write_nifti(nv.make_phantom("xr", seed=5000 + k).image, folder / f"xr{k:03d}.nii.gz")
    for k in range(n_ct):
        nv.write_nifti(nv.make_phantom("ct", seed=6000 + k).image, folder / f"ct{k:03d}.nii.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xr", type=int, default=16, help="radiograph phantoms")
    parser.add_argument("--ct", type=int, default=4, help="CT phantoms")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        studies = Path(tmp) / "studies"
        write_studies(studies, args.xr, args.ct)
        total = args.xr + args.ct
        for workers in args.workers:
            start = time.perf_counter()
            summary = run_batch(studies, Path(tmp) / f"out-{workers}", workers=workers)
            seconds = time.perf_counter() - start
            row = {
                "workers": workers,
                "studies": total,
                "failed": len(summary.failed),
                "seconds": round(seconds, 1),
                "studies_per_minute": round(60 * total / seconds, 2),
            }
            rows.append(row)
            print(
                f"{workers} worker(s): {total} studies ({args.xr} XR + {args.ct} CT) in "
                f"{seconds:.1f} s = {row['studies_per_minute']:.1f} studies/min, "
                f"{row['failed']} failed",
                flush=True,
            )
    print(json.dumps({"cpu_count": os.cpu_count(), "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
