"""Batch over a folder: every good study measured as `analyze` measures it, failures listed,
resumable after a kill, on local Dask workers or an existing scheduler."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import napari_vertebra as nv
from napari_vertebra.cli import main
from napari_vertebra.core.batch import find_studies, run_batch
from napari_vertebra.core.pipeline_file import PipelineSettings, load_pipeline, save_pipeline

REAL_CT = Path(nv.__file__).parent / "data" / "ct_lumbar_totalseg" / "ct.nii.gz"
N_PHANTOMS = 20


def _phantom_folder(folder: Path, n: int, seed: int) -> list[str]:
    """``n`` radiograph phantoms as bare image files (their truth kept elsewhere)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(n):
        case = nv.make_phantom("xr", seed=seed + k)
        name = f"phantom{k:02d}"
        nv.write_nifti(case.image, folder / f"{name}.nii.gz")
        names.append(name)
    return names


def _corrupt_files(folder: Path) -> list[str]:
    (folder / "truncated.nii.gz").write_bytes(b"\x1f\x8b\x08 not really gzip")
    (folder / "noise.png").write_bytes(np.random.default_rng(0).bytes(500))
    (folder / "nested").mkdir(exist_ok=True)
    (folder / "nested" / "empty.dcm").write_bytes(b"")
    return ["truncated", "noise", "nested__empty"]


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    """≥ 20 phantoms, the real CT sample and 3 corrupt files, run with 2 local workers."""
    root = tmp_path_factory.mktemp("batch")
    studies = root / "studies"
    phantoms = _phantom_folder(studies, N_PHANTOMS, seed=300)
    shutil.copy(REAL_CT, studies / "real_lumbar_ct.nii.gz")
    corrupt = _corrupt_files(studies)
    before = {p: p.stat().st_mtime_ns for p in studies.rglob("*") if p.is_file()}
    out = root / "out"
    summary = run_batch(studies, out, workers=2)
    return {
        "studies": studies,
        "out": out,
        "summary": summary,
        "good": [*phantoms, "real_lumbar_ct"],
        "corrupt": corrupt,
        "before": before,
    }


def test_batch_measures_every_good_study_as_analyze_does(batch_run):
    out, good = batch_run["out"], batch_run["good"]
    summary = batch_run["summary"]
    assert summary.studies == len(good) + 3 and summary.finished == len(good)
    table = pd.read_csv(out / "measurements.csv", dtype=str, keep_default_na=False)
    assert list(table.columns[:3]) == ["study", "level", "label"]
    assert sorted(table["study"].unique()) == sorted(good)
    for name in good:
        folder = out / name
        for file in ("labels.nii.gz", "measurements.csv", "landmarks.json", "summary.json"):
            assert (folder / file).is_file(), (name, file)
        assert (folder / "report.html").is_file() and (folder / "overview.png").is_file()
    # Identical to single-study analyze, for a radiograph phantom and the real CT.
    for name in ("phantom03", "real_lumbar_ct"):
        single = nv.analyze(batch_run["studies"] / f"{name}.nii.gz")
        expected = single.table.reset_index(drop=True)
        got = pd.read_csv(out / name / "measurements.csv")
        pd.testing.assert_frame_equal(
            got[["level", "label", "anterior_height_mm", "genant_grade"]],
            pd.read_csv(_csv_of(expected))[
                ["level", "label", "anterior_height_mm", "genant_grade"]
            ],
        )
        rows = table[table["study"] == name].drop(columns="study").reset_index(drop=True)
        written = pd.read_csv(out / name / "measurements.csv", dtype=str, keep_default_na=False)
        pd.testing.assert_frame_equal(rows[written.columns], written)
        labels = nv.read_image(out / name / "labels.nii.gz", kind="labels").array
        np.testing.assert_array_equal(labels, single.labels.array)
    real = table[table["study"] == "real_lumbar_ct"]
    assert real["level"].tolist()[-6:] == ["L1", "L2", "L3", "L4", "L5", "S1"]


def _csv_of(table: pd.DataFrame):
    import io

    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    buffer.seek(0)
    return buffer


def test_batch_lists_the_corrupt_files_and_leaves_the_input_alone(batch_run):
    failures = pd.read_csv(batch_run["out"] / "failures.csv")
    assert list(failures.columns[:2]) == ["study", "error"]
    assert sorted(failures["study"]) == sorted(batch_run["corrupt"])
    for _, row in failures.iterrows():
        assert Path(row["path"]).name.split(".")[0] in row["error"]  # names the file
    assert not (batch_run["out"] / "truncated").exists()
    after = {p: p.stat().st_mtime_ns for p in batch_run["studies"].rglob("*") if p.is_file()}
    assert after == batch_run["before"]
    manifest = (batch_run["out"] / "manifest.json").read_text()
    assert "card_sha256" in manifest and "versions" in manifest and "study_seconds" in manifest


def test_running_again_skips_finished_studies_and_refuses_other_settings(batch_run):
    out = batch_run["out"]
    stamp = (out / "phantom00" / "summary.json").stat().st_mtime_ns
    again = run_batch(batch_run["studies"], out, workers=0)
    assert again.skipped == len(batch_run["good"]) and again.finished == 0
    assert len(again.failed) == 3  # the corrupt files are tried again, and fail again
    assert (out / "phantom00" / "summary.json").stat().st_mtime_ns == stamp
    table = pd.read_csv(out / "measurements.csv")
    assert not table.duplicated(["study", "label"]).any()
    other = PipelineSettings(lumbar_count=6)
    with pytest.raises(nv.SpineIOError, match="levels.lumbar_count"):
        run_batch(batch_run["studies"], out, other, workers=0)


def test_a_killed_batch_loses_nothing_and_completes_when_run_again(tmp_path):
    studies = tmp_path / "studies"
    _phantom_folder(studies, 6, seed=600)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "napari_vertebra.cli", "batch", str(studies), str(out)]
    command += ["--workers", "0", "--no-report"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (out / "phantom01" / "summary.json").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no chance to tidy up
    process.wait()
    finished = [p.name for p in out.iterdir() if (p / "summary.json").exists()]
    assert 2 <= len(finished) < 6
    # Folder-wide files are whole or absent. A kill can land while one is being written under
    # its temporary name (.NAME.partial); the real name then still holds the previous whole
    # version, and the next run replaces the temporary file.
    if (out / "measurements.csv").exists():
        assert set(pd.read_csv(out / "measurements.csv")["study"]) <= set(finished)
    # Study folders are whole: every one that exists has all of analyze's files.
    for folder in out.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            assert {p.name for p in folder.iterdir()} >= {"measurements.csv", "summary.json"}
    assert main(["batch", str(studies), str(out), "--workers", "0", "--no-report"]) == 0
    table = pd.read_csv(out / "measurements.csv")
    assert sorted(table["study"].unique()) == [f"phantom{k:02d}" for k in range(6)]
    assert not table.duplicated(["study", "label"]).any()
    assert not (out / ".partial").exists()
    assert not [p for p in out.iterdir() if p.is_file() and ".partial" in p.name]
    fresh = tmp_path / "fresh"
    run_batch(studies, fresh, workers=0, report=False)
    pd.testing.assert_frame_equal(table, pd.read_csv(fresh / "measurements.csv"))


def test_batch_runs_on_an_existing_dask_scheduler(tmp_path):
    from dask.distributed import LocalCluster

    studies = tmp_path / "studies"
    _phantom_folder(studies, 3, seed=900)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:
        summary = run_batch(
            studies, tmp_path / "out", scheduler=cluster.scheduler_address, report=False
        )
    assert summary.finished == 3 and not summary.failed
    table = pd.read_csv(tmp_path / "out" / "measurements.csv")
    assert sorted(table["study"].unique()) == ["phantom00", "phantom01", "phantom02"]


def test_study_discovery_groups_dicom_series_and_names_studies(tmp_path):
    from tests.dicom_factory import phantom_ct_series, phantom_radiograph

    root = tmp_path / "in"
    phantom_ct_series(nv.make_phantom("ct", seed=1).image, root / "patient1" / "ct")
    phantom_radiograph(nv.make_phantom("xr", seed=1).image, root / "patient2" / "lateral.dcm")
    (root / "patient2" / "notes.txt").write_text("not an image")
    (root / ".hidden.nii.gz").write_bytes(b"")
    (root / "a.nii.gz").write_bytes(b"")
    (root / "a_labels.nii.gz").write_bytes(b"")
    studies = find_studies(root, exclude=("*labels*",))
    assert [s.name for s in studies] == ["a", "patient1__ct", "patient2__lateral"]
    assert studies[1].path == root / "patient1" / "ct"


def test_pipeline_files_round_trip_and_explain_bad_content(tmp_path):
    settings = PipelineSettings(
        model="xr-bodies-mobilenet",
        tta=True,
        anchor=(2, "L1"),
        lumbar_count=6,
        count_from_ribs=False,
        grade_thresholds=(0.15, 0.25, 0.4),
    ).with_model_hashes()
    assert settings.model_card_sha256["XR"]
    for name in ("p.yaml", "p.json"):
        path = save_pipeline(settings, tmp_path / name)
        assert load_pipeline(path) == settings
        with pytest.raises(nv.SpineIOError, match="already exists"):
            save_pipeline(settings, path)
    text = (tmp_path / "p.yaml").read_text()
    assert "grade_thresholds_percent" in text and "3:L1" in text
    (tmp_path / "typo.yaml").write_text(text.replace("lumbar_count", "lumbar_cont"))
    with pytest.raises(nv.SpineIOError, match=r"typo\.yaml.*lumbar_cont"):
        load_pipeline(tmp_path / "typo.yaml")
    (tmp_path / "ribs.yaml").write_text(
        text.replace("count_from_ribs: false", "count_from_ribs: maybe")
    )
    with pytest.raises(nv.SpineIOError, match="count_from_ribs must be bool"):
        load_pipeline(tmp_path / "ribs.yaml")
    (tmp_path / "bad.yaml").write_text(text.replace("- 15.0", "- 45.0"))
    with pytest.raises(nv.SpineIOError, match="increasing"):
        load_pipeline(tmp_path / "bad.yaml")
    digest = settings.model_card_sha256["XR"]
    (tmp_path / "moved.yaml").write_text(text.replace(digest, "f" * 64))
    with pytest.raises(nv.SpineIOError, match="changed since the file was saved"):
        load_pipeline(tmp_path / "moved.yaml").check_models(tmp_path / "moved.yaml")


def test_grade_thresholds_change_the_grades():
    case = nv.make_phantom("xr", seed=4, fractures={"L1": (2, "wedge")})
    default = nv.measure(case.labels).table.set_index("level")
    strict = nv.measure(case.labels, grade_thresholds=(0.05, 0.1, 0.15)).table.set_index("level")
    assert default.loc["L1", "genant_grade"] == 2
    assert strict.loc["L1", "genant_grade"] == 3
    assert strict.loc["L1", "fracture_type"] == "wedge"
    with pytest.raises(ValueError, match="increasing"):
        nv.measure(case.labels, grade_thresholds=(0.3, 0.2, 0.4))


def test_analyze_replays_a_saved_pipeline(tmp_path, capsys):
    case = nv.make_phantom("xr", seed=8)
    image = tmp_path / "image.nii.gz"
    nv.write_nifti(case.image, image)
    first = [str(image), "-o", str(tmp_path / "a"), "--lumbar-count", "6", "--shift", "1"]
    assert main(["analyze", *first, "--save-pipeline", str(tmp_path / "p.yaml")]) == 0
    assert load_pipeline(tmp_path / "p.yaml").lumbar_count == 6
    assert (
        main(
            [
                "analyze",
                str(image),
                "-o",
                str(tmp_path / "b"),
                "--pipeline",
                str(tmp_path / "p.yaml"),
            ]
        )
        == 0
    )
    a = pd.read_csv(tmp_path / "a" / "measurements.csv")
    b = pd.read_csv(tmp_path / "b" / "measurements.csv")
    pd.testing.assert_frame_equal(a, b)
    plain = nv.analyze(image).table
    assert a["level"].tolist() != plain["level"].tolist()  # the shift was replayed
    assert (
        main(
            [
                "analyze",
                str(image),
                "-o",
                str(tmp_path / "c"),
                "--pipeline",
                str(tmp_path / "p.yaml"),
                "--shift",
                "0",
            ]
        )
        == 0
    )
    c = pd.read_csv(tmp_path / "c" / "measurements.csv")
    assert c["level"].tolist() == plain["level"].tolist()  # a given option wins
