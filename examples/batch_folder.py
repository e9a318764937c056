"""Batch over a folder: phantoms as studies, two Dask workers, a tuned pipeline replayed.

Writes six radiograph phantoms into ``batch-example/studies/``, saves a pipeline with a
stricter grade-1 threshold, runs the batch with two local workers, prints the folder-wide
table and then runs the same command again, which finds every study finished and skips it.

Run: python examples/batch_folder.py
"""

from pathlib import Path

import pandas as pd

import napari_vertebra as nv
from napari_vertebra.core.batch import run_batch
from napari_vertebra.core.pipeline_file import PipelineSettings, load_pipeline, save_pipeline

root = Path("batch-example")
studies = root / "studies"
studies.mkdir(parents=True, exist_ok=True)
for seed in range(6):
    path = studies / f"case{seed}.nii.gz"
    if not path.exists():
        nv.write_nifti(nv.make_phantom("xr", seed=seed).image, path)

pipeline = root / "tuned.yaml"
if not pipeline.exists():
    save_pipeline(
        PipelineSettings(grade_thresholds=(0.15, 0.25, 0.40)).with_model_hashes(), pipeline
    )

summary = run_batch(studies, root / "results", load_pipeline(pipeline), workers=2)
print(f"{summary.finished} measured, {summary.skipped} already done, {len(summary.failed)} failed")
table = pd.read_csv(summary.measurements_path)
print(table[["study", "level", "anterior_height_mm", "genant_grade", "fracture_type"]].head(12))

again = run_batch(studies, root / "results", load_pipeline(pipeline), workers=2)
print(f"second run: {again.skipped} skipped, {again.finished} measured")
