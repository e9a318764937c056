"""End-to-end analysis: the CT baseline on real scans, tiny random-weights models, the CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from napari_vertebra import analyze, make_phantom, read_image
from napari_vertebra.cli import main
from napari_vertebra.core.io import SpineIOError
from napari_vertebra.core.measure import COLUMNS
from napari_vertebra.core.metrics import dice


@pytest.fixture(scope="module")
def lumbar_result(shared_data):
    return analyze(shared_data / "ct-lumbar-totalseg" / "ct.nii.gz", model="ct-baseline")


def test_ct_baseline_segments_and_levels_the_real_lumbar_ct(shared_data, lumbar_result):
    reference = read_image(
        shared_data / "ct-lumbar-totalseg" / "body_disc_mask.nii.gz", kind="labels"
    )
    assert lumbar_result.labels.shape == reference.shape
    assert dice(lumbar_result.labels.array > 0, reference.array == 1) >= 0.85
    levels = lumbar_result.table["level"].tolist()
    assert levels == ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert lumbar_result.table["level_source"].eq("sacrum").all()
    # Each body lies mostly inside TotalSegmentator's vertebra of the same level (the rest is
    # disc: the baseline's bodies reach into the discs, most at the T12 the field cuts).
    ts = read_image(shared_data / "ct-lumbar-totalseg" / "labels_totalseg.nii.gz", kind="labels")
    table = lumbar_result.table.set_index("level")
    for level, ts_id in zip(levels[:-1], range(32, 26, -1), strict=True):
        ours = lumbar_result.labels.array == int(table.loc[level, "label"])
        assert np.count_nonzero(ours & (ts.array == ts_id)) > 0.75 * np.count_nonzero(ours)


def test_ct_baseline_on_the_l2_l4_crop(shared_data):
    folder = shared_data / "ct-crop-tptbox"
    result = analyze(folder / "sub-ct_label-22_ct.nii.gz", model="ct-baseline")
    sub = read_image(folder / "sub-ct_seg-subreg_label-22_msk.nii.gz", kind="labels").array
    # The marrow of this crop is as dark as its discs (median 51 HU); its three vertebrae are
    # one piece until the endplate peaks split them.
    assert dice(result.labels.array > 0, np.isin(sub, (49, 50))) >= 0.85
    assert len(result.table) == 3


def test_analysis_writes_its_four_files_on_the_source_grid(shared_data, lumbar_result, tmp_path):
    paths = lumbar_result.write(tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == sorted(
        ["labels.nii.gz", "measurements.csv", "landmarks.json", "summary.json"]
    )
    labels = read_image(paths["labels"], kind="labels")
    source = read_image(shared_data / "ct-lumbar-totalseg" / "ct.nii.gz")
    assert labels.shape == source.shape and np.allclose(labels.affine, source.affine)
    assert set(np.unique(labels.array)) == {0, 19, 20, 21, 22, 23, 24, 26}
    table = pd.read_csv(paths["measurements"])
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    summary = json.loads(paths["summary"].read_text())
    assert summary["model"]["name"] == "ct-baseline"
    assert summary["input"]["spacing_mm"] == [3.0, 3.0, 3.0]
    assert summary["timings_s"]["total_s"] > 0 and "numpy" in summary["versions"]
    with pytest.raises(SpineIOError, match="already holds"):
        lumbar_result.write(tmp_path / "out")


def _tiny_model(folder, name, modality, classes, in_channels, preprocessing, **extra):
    import torch

    from napari_vertebra.core.segment.card import save_model
    from napari_vertebra.core.segment.nets import build_network

    torch.manual_seed(0)
    arguments = {"base_width": 4, "depth": 3, "classes": len(classes), "in_channels": in_channels}
    network = build_network("r2unet", **arguments)
    return save_model(
        network,
        folder,
        name,
        architecture="r2unet",
        arguments=arguments,
        modality=modality,
        classes=classes,
        preprocessing=preprocessing,
        training_data="none: random weights (test)",
        **extra,
    )


def test_tiny_model_runs_through_analyze_on_a_radiograph_phantom(tmp_path):
    card = _tiny_model(
        tmp_path,
        "tiny-xr",
        "XR",
        ["background", "vertebral_body"],
        1,
        [{"op": "zscore"}, {"op": "letterbox", "size": 256}],
    )
    phantom = make_phantom("xr", seed=1)
    stages = []
    result = analyze(
        phantom.image,
        model=card.path,
        device="cpu",
        tta=True,
        progress=lambda s, f: stages.append(s),
    )
    assert result.labels.shape == phantom.image.shape
    assert result.probabilities.shape == phantom.image.shape
    assert 0 <= result.probabilities.min() and result.probabilities.max() <= 1
    # Labels are where the body class won (argmax on the source grid), nowhere else.
    assert not np.any(result.labels.array[result.probabilities < 0.5 - 1e-6])
    assert result.summary["model"]["sha256"] == card.sha256
    assert [s["op"] for s in result.summary["segmentation"]["preprocessing"]] == [
        "zscore",
        "letterbox",
    ]
    assert stages[0] == "segmentation" and stages[-1] == "done"
    paths = result.write(tmp_path / "out")
    assert read_image(paths["labels"], kind="labels").shape == phantom.image.shape


def test_tiny_model_runs_through_analyze_on_a_ct_phantom(tmp_path):
    card = _tiny_model(
        tmp_path,
        "tiny-ct",
        "CT",
        ["background", "vertebral_body", "sacrum"],
        3,
        [{"op": "hu_window"}, {"op": "resample", "target_spacing": 3.0}],
        input={"context": 1},
    )
    phantom = make_phantom("ct", seed=2, levels=["L4", "L5"], spacing=1.5)
    result = analyze(phantom.image, model=card.path, device="cpu")
    assert result.labels.shape == phantom.image.shape
    assert result.probabilities.shape == phantom.image.shape
    assert set(np.unique(result.labels.array)) <= {0, 26} | set(range(1, 26))
    assert result.summary["segmentation"]["model_spacing_mm"] == pytest.approx(
        [3.0, 3.0, 3.0], abs=0.1
    )
    # A CT model refuses a radiograph.
    with pytest.raises(SpineIOError, match="CT model"):
        analyze(make_phantom("xr", seed=0).image, model=card.path)


def test_radiographs_use_the_bundled_model_by_default_and_record_its_card():
    from napari_vertebra.core.segment.card import sha256_of
    from napari_vertebra.core.segment.registry import find_model

    phantom = make_phantom("xr", seed=0)
    result = analyze(phantom.image)
    record = result.summary["model"]
    card = find_model(record["name"])
    assert card.modality == "XR" and card.path.parent.name == "models"
    assert record["sha256"] == card.sha256
    assert record["card_sha256"] == sha256_of(card.path)
    assert result.table["level"].iloc[-1] == "S1"
    # Each vertebra's segmentation_confidence is the mean body probability over its pixels.
    checked = 0
    for row in result.table.itertuples():
        inside = result.labels.array == row.label
        if inside.any():
            expected = result.probabilities[inside].mean()
            assert row.segmentation_confidence == pytest.approx(expected, abs=6e-4)  # 3 decimals
            checked += 1
    assert checked == len(result.table)


def test_analyze_explains_bad_requests(tmp_path, monkeypatch):
    phantom = make_phantom("xr", seed=0)
    from napari_vertebra.core.segment import registry

    with monkeypatch.context() as patched:
        patched.setattr(registry, "available_models", lambda task=None: {})
        with pytest.raises(SpineIOError, match="no radiograph model"):
            analyze(phantom.image, model="auto")
    with pytest.raises(SpineIOError, match="CT baseline needs a CT"):
        analyze(phantom.image, model="ct-baseline")
    with pytest.raises(SpineIOError, match="label map"):
        analyze(phantom.labels)
    with pytest.raises(ValueError, match="known model name"):
        analyze(phantom.image, model="no-such-model")


def test_cli_analyze_writes_outputs_and_refuses_to_overwrite(shared_data, tmp_path, capsys):
    source = shared_data / "ct-crop-tptbox" / "sub-ct_label-22_ct.nii.gz"
    out = tmp_path / "result"
    assert main(["analyze", str(source), "-o", str(out), "--model", "ct-baseline"]) == 0
    printed = capsys.readouterr().out
    assert "ct-baseline on cpu" in printed
    assert (out / "labels.nii.gz").is_file() and (out / "summary.json").is_file()
    assert main(["analyze", str(source), "-o", str(out)]) == 1
    assert "already holds" in capsys.readouterr().err
