"""The re-implementation of TotalSegmentator's height procedure (benchmarks/peer_heights.py).

docs/benchmarks.md and docs/measurements.md explain the real CT's disagreement with the peer's
report by that procedure; this checks that the re-implementation reproduces the report.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from napari_vertebra import read_image
from napari_vertebra.core.labels import to_verse

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_heights.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("peer_heights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reimplemented_procedure_reproduces_the_peer_report(shared_data):
    peer = _load_script()
    folder = shared_data / "ct-lumbar-totalseg"
    labels = read_image(folder / "labels_totalseg.nii.gz", kind="labels")
    body = read_image(folder / "body_disc_mask.nii.gz", kind="labels")
    heights = peer.peer_heights(
        peer.to_ras(labels.with_array(to_verse(labels.array, "totalsegmentator"))),
        peer.to_ras(body) == 1,
        float(labels.spacing[0]),
    )
    reported = json.loads((folder / "peer_spine_report.json").read_text())["results"]
    # T11 and T12 touch the field's border and S1 is never measured, as in the report.
    assert sorted(heights) == ["L1", "L2", "L3", "L4", "L5"]
    differences = np.array(
        [
            heights[level][name] - reported[f"vertebrae_{level}_height_{name}_mm"]
            for level in heights
            for name in ("anterior", "middle", "posterior")
        ]
    )
    # One half-voxel step (1.5 mm at 3 mm) at most; most heights are reproduced exactly.
    assert np.abs(differences).max() <= 1.5 + 1e-6
    assert np.count_nonzero(np.abs(differences) < 1e-6) >= 7
