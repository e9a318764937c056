"""Every reader on the real scans in ../shared/data: geometry and HU against the scan's NIfTI."""

import json

import numpy as np
import pydicom
import pytest

from napari_vertebra import read_image, read_images, to_verse
from napari_vertebra.core.io import find_series, read_dicom_file


@pytest.fixture(scope="module")
def lumbar(shared_data):
    return shared_data / "ct-lumbar-totalseg"


def test_lumbar_ct_nifti_geometry_and_hu(lumbar):
    ct = read_image(lumbar / "ct.nii.gz")
    assert ct.modality == "CT" and ct.kind == "image"
    assert ct.axis_codes == ("I", "P", "L")
    assert ct.shape == (112, 101, 122)  # RAS (122, 101, 112) reoriented
    assert ct.spacing == pytest.approx((3.0, 3.0, 3.0))
    # The canonical affine points I, P, L and puts the same voxel at the same RAS position.
    affine = ct.affine
    assert np.allclose(affine[:3, :3], [[0, 0, -3], [0, -3, 0], [-3, 0, 0]])
    src = read_image(lumbar / "ct.nii.gz")
    import nibabel as nib

    raw = np.asanyarray(nib.load(lumbar / "ct.nii.gz").dataobj)
    i, p, lft = 50, 40, 30
    ras_index = (raw.shape[0] - 1 - lft, raw.shape[1] - 1 - p, raw.shape[2] - 1 - i)
    assert src.array[i, p, lft] == raw[ras_index]
    # HU: air outside the body about -1000, trabecular bone of the labelled bodies 100-400.
    labels = read_image(lumbar / "labels_totalseg.nii.gz")
    assert labels.kind == "labels" and labels.shape == ct.shape
    assert np.allclose(labels.affine, ct.affine)
    assert abs(np.median(ct.array[:, :5, :5]) + 1000) < 50
    bodies = read_image(lumbar / "body_disc_mask.nii.gz").array == 1
    assert 100 < np.median(ct.array[bodies]) < 400


def test_dicom_series_matches_the_nifti_on_its_grid(lumbar, no_hang):
    series = read_image(lumbar / "dicom_series_T11-T12")
    grid = read_image(lumbar / "dicom_series_labels_totalseg.nii.gz")
    assert series.modality == "CT"
    assert series.shape == grid.shape == (20, 512, 512)
    # Spacing from slice positions (2 mm), not SliceThickness (3 mm).
    assert series.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    assert series.spacing == pytest.approx(grid.spacing)
    assert series.axis_codes == grid.axis_codes == ("I", "P", "L")
    assert np.allclose(series.affine, grid.affine, atol=1e-3)
    assert series.origin == pytest.approx(grid.origin, abs=1e-3)
    assert series.source["transfer_syntax"].startswith("JPEG 2000")
    assert len(series.source["sop_instance_uids"]) == 20
    assert "PatientName" not in json.dumps(series.source, default=str)


def test_dicom_series_hu_from_rescale_and_against_the_nifti_scan(lumbar):
    series = read_image(lumbar / "dicom_series_T11-T12")
    grid_labels = to_verse(
        read_image(lumbar / "dicom_series_labels_totalseg.nii.gz").array, "totalsegmentator"
    )
    # Independent HU for one slice: stored value * slope + intercept, slices sorted head first.
    files = sorted((lumbar / "dicom_series_T11-T12").iterdir())
    datasets = [pydicom.dcmread(f) for f in files]
    top = max(datasets, key=lambda d: float(d.ImagePositionPatient[2]))
    hu = top.pixel_array * float(top.RescaleSlope) + float(top.RescaleIntercept)
    # Canonical (P, L) of an LPS axial slice: rows already posterior; columns already left.
    assert np.array_equal(series.array[0], hu)
    assert abs(np.median(series.array[:, :20, :20]) + 1024) < 30
    # The same T12 in the 3 mm NIfTI of this patient: similar trabecular HU.
    ct = read_image(lumbar / "ct.nii.gz")
    ct_labels = to_verse(read_image(lumbar / "labels_totalseg.nii.gz").array, "totalsegmentator")
    t12_series = np.median(series.array[grid_labels == 19])
    t12_nifti = np.median(ct.array[ct_labels == 19])
    assert 100 < t12_series < 400 and 100 < t12_nifti < 400
    assert abs(t12_series - t12_nifti) < 100


def test_single_dicom_slice_reads_as_2d_ct(lumbar):
    first = sorted((lumbar / "dicom_series_T11-T12").iterdir())[0]
    image = read_dicom_file(first)
    assert image.modality == "CT" and image.ndim == 2
    assert image.axis_codes == ("P", "L")
    assert image.spacing == pytest.approx((0.9765625, 0.9765625))


def test_folder_listing_finds_one_series(lumbar):
    series, skipped = find_series(lumbar / "dicom_series_T11-T12")
    assert len(series) == 1 and len(series[0].files) == 20 and not skipped
    assert len(read_images(lumbar / "dicom_series_T11-T12")) == 1


def test_tptbox_crop_pir_orientation(shared_data):
    folder = shared_data / "ct-crop-tptbox"
    ct = read_image(folder / "sub-ct_label-22_ct.nii.gz")
    vert = read_image(folder / "sub-ct_seg-vert_label-22_msk.nii.gz")
    sub = read_image(folder / "sub-ct_seg-subreg_label-22_msk.nii.gz")
    assert ct.axis_codes == ("I", "P", "L") and ct.shape == (47, 73, 73)
    assert ct.spacing == pytest.approx((1.5, 1.5, 1.5))
    assert vert.kind == sub.kind == "labels"
    assert set(np.unique(vert.array)) == {0, 21, 22, 23}
    # Cranio-caudal order: L2 (21) lies above L3 (22) above L4 (23) along axis 0 (inferior).
    rows = {v: np.nonzero(vert.array == v)[0].mean() for v in (21, 22, 23)}
    assert rows[21] < rows[22] < rows[23]
    # The vertebral body (50) lies anterior (smaller axis-1 index) of the arcus (41).
    cols = {v: np.nonzero(sub.array == v)[1].mean() for v in (50, 41)}
    assert cols[50] < cols[41]
    # HU: the cortical corpus border (49) is denser than the trabecular corpus (50).
    corpus, border = (np.median(ct.array[sub.array == v]) for v in (50, 49))
    assert 0 < corpus < 400 and border > corpus + 100


def test_verse_mask_matches_its_centroid_file(shared_data):
    folder = shared_data / "verse-mask-sample"
    mask = read_image(folder / "sub-verse004_seg-vert_msk.nii.gz")
    assert mask.kind == "labels" and mask.array.dtype == np.uint8
    assert set(np.unique(mask.array)) - {0} == set(range(16, 25))
    assert mask.spacing == pytest.approx((1.0, 1.0, 2.0), abs=1e-3)
    entries = json.loads((folder / "sub-verse004_seg-subreg_ctd.json").read_text())
    assert entries[0]["direction"] == ["P", "I", "R"]
    # Centroids are voxel coordinates of the stored (PIR) mask: each must land in its own label
    # after the reorientation to I, P, L.
    to_canonical = np.linalg.inv(mask.to_canonical.index_matrix(mask.source_shape))
    for entry in entries[1:]:
        index = to_canonical @ np.array([entry["X"], entry["Y"], entry["Z"], 1.0])
        assert mask.array[tuple(np.round(index[:3]).astype(int))] == entry["label"]
        # and the canonical affine sends it to the same patient position as the file's affine.
        ras = mask.affine @ index
        expected = mask.source_affine @ np.array([entry["X"], entry["Y"], entry["Z"], 1.0])
        assert np.allclose(ras, expected, atol=1e-6)
