"""Analyse a CT end to end from a script: vertebral bodies, levels and measurements.

Uses the real lumbar CT bundled with the package and the non-learned CT baseline (no weights
needed). Run: python examples/analyze_ct.py [OUTPUT_FOLDER]
"""

import sys
import tempfile

import napari_vertebra as nv

ct_path = nv.sample_path("lumbar-ct")
result = nv.analyze(ct_path, model="ct-baseline")
print(
    result.table[
        [
            "level",
            "anterior_height_mm",
            "middle_height_mm",
            "posterior_height_mm",
            "vcr_percent",
            "genant_grade",
            "qc_flags",
        ]
    ].to_string(index=False)
)
print("segmentation and measurement took", result.summary["timings_s"]["total_s"], "s")

out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="napari-vertebra-")
for name, path in result.write(out).items():
    print(f"{name}: {path}")
