"""Per-study exports: DICOM SEG and SR read back with highdicom/pydicom, and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest

import napari_vertebra as nv
from napari_vertebra.core.batch import run_batch
from napari_vertebra.core.report import GRADE_COLORS, write_report
from tests.dicom_factory import phantom_ct_series, phantom_radiograph

hd = pytest.importorskip("highdicom")


@pytest.fixture(scope="module")
def dicom_batch(tmp_path_factory):
    """A CT phantom as an axial DICOM series and a radiograph phantom as a DX file, batched."""
    root = tmp_path_factory.mktemp("dicom")
    ct = nv.make_phantom("ct", seed=21, fractures={"L2": (2, "wedge")})
    xr = nv.make_phantom("xr", seed=21, fractures={"L1": (3, "crush")})
    phantom_ct_series(ct.image, root / "in" / "ct")
    phantom_radiograph(xr.image, root / "in" / "lateral.dcm")
    summary = run_batch(root / "in", root / "out", workers=0)
    assert summary.finished == 2 and not summary.failed
    return root / "in", root / "out"


def _measured(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "measurements.csv")


def test_ct_seg_holds_one_segment_per_vertebra_on_the_source_slices(dicom_batch):
    source, out = dicom_batch
    seg = hd.seg.segread(out / "ct" / "seg.dcm")
    table = _measured(out / "ct")
    labels = [d.SegmentLabel for d in seg.SegmentSequence]
    expected = [f"{lv} vertebral body" if lv != "S1" else "sacrum" for lv in table["level"]]
    assert labels == expected
    codes = [d.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for d in seg.SegmentSequence]
    assert codes[table["level"].tolist().index("L2")] == "L2 vertebra"
    # The label map back on the stored slices, in the order of the series' files.
    files = sorted((source / "ct").glob("*.dcm"))
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]
    volume = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, skip_overlap_checks=True
    )
    written = nv.read_image(out / "ct" / "labels.nii.gz", kind="labels").array
    numbers = {int(label): k for k, label in enumerate(table["label"], start=1)}
    expected_map = np.vectorize(lambda v: numbers.get(int(v), 0))(written)
    np.testing.assert_array_equal(volume, expected_map)


def test_ct_sr_holds_the_measurements_of_each_vertebra(dicom_batch):
    _, out = dicom_batch
    sr = hd.sr.srread(out / "ct" / "sr.dcm")
    table = _measured(out / "ct").set_index("level")
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(table) - 1  # the sacrum is a segment, not a measured body
    for group in groups:
        level = str(group.tracking_identifier).split()[0]
        values = {m.name.meaning: m.value for m in group.get_measurements()}
        row = table.loc[level]
        assert values["Anterior vertebral body height"] == pytest.approx(row["anterior_height_mm"])
        assert values["Posterior vertebral body height"] == pytest.approx(
            row["posterior_height_mm"]
        )
        grades = {q.name.meaning: q.value.meaning for q in group.get_qualitative_evaluations()}
        if not pd.isna(row["genant_grade"]):
            assert grades["Genant semiquantitative fracture grade"].startswith(
                f"Genant grade {int(row['genant_grade'])}"
            )
        assert group.referenced_segment is not None
    assert (table["genant_grade"] >= 1).any()  # a fracture's grade reaches the SR too


def test_radiograph_seg_and_sr_reference_the_dx_image(dicom_batch):
    source, out = dicom_batch
    dx = pydicom.dcmread(source / "lateral.dcm", stop_before_pixels=True)
    seg = pydicom.dcmread(out / "lateral" / "seg.dcm")
    table = _measured(out / "lateral")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == dx.SeriesInstanceUID
    written = nv.read_image(out / "lateral" / "labels.nii.gz", kind="labels").array
    pixels = seg.pixel_array
    for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        label = int(table["label"].iloc[number - 1])
        np.testing.assert_array_equal(pixels[index].astype(bool), written == label)
    sr = hd.sr.srread(out / "lateral" / "sr.dcm")
    groups = sr.content.get_planar_roi_measurement_groups()
    by_level = {str(g.tracking_identifier).split()[0]: g for g in groups}
    l1 = {q.name.meaning: q.value.meaning for q in by_level["L1"].get_qualitative_evaluations()}
    row = table.set_index("level").loc["L1"]
    assert l1["Genant semiquantitative fracture grade"].startswith(
        f"Genant grade {int(row['genant_grade'])}"
    )
    assert int(row["genant_grade"]) >= 2


def test_dicom_exports_refuse_non_dicom_input(tmp_path):
    from napari_vertebra.core.io.dicom_export import write_dicom_exports

    result = nv.analyze(nv.make_phantom("xr", seed=2).image)
    with pytest.raises(nv.SpineIOError, match="not DICOM"):
        write_dicom_exports(result, tmp_path)


def test_report_colours_bodies_by_grade_and_lists_the_fracture(tmp_path):
    case = nv.make_phantom("xr", seed=5, fractures={"L2": (2, "wedge")})
    result = nv.analyze(case.image)
    graded = result.table.set_index("level")["genant_grade"]
    assert graded["L2"] == 2
    paths = write_report(result, tmp_path)
    page = paths["report"].read_text()
    assert "Fracture grade ≥ 1 (Genant) at" in page and "L2" in page
    for level in result.table["level"]:
        assert f"<td>{level}</td>" in page
    from PIL import Image

    picture = np.asarray(Image.open(paths["overview"]).convert("RGB")).astype(int)
    orange = np.array([int(GRADE_COLORS[2][k : k + 2], 16) for k in (1, 3, 5)])
    red = np.array([int(GRADE_COLORS[3][k : k + 2], 16) for k in (1, 3, 5)])
    assert (np.abs(picture - orange).sum(axis=2) < 30).sum() > 50  # the grade-2 outline
    assert (np.abs(picture - red).sum(axis=2) < 30).sum() == 0  # no grade 3 here
