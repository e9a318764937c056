"""Label maps written and read back are identical, on the source grid with the source affine."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from napari_vertebra import SpineIOError, make_phantom, read_image, write_labels, write_table
from napari_vertebra.core.io import read_table

SOURCES = [
    "ct-lumbar-totalseg/labels_totalseg.nii.gz",  # RAS
    "ct-crop-tptbox/sub-ct_seg-vert_label-22_msk.nii.gz",  # PIR
    "verse-mask-sample/sub-verse004_seg-vert_msk.nii.gz",  # oblique PIR, float64 on disk
    "ct-lumbar-totalseg/dicom_series_labels_totalseg.nii.gz",  # LAS
]


@pytest.mark.parametrize("relative", SOURCES)
def test_real_label_maps_round_trip(shared_data, tmp_path, relative):
    source = shared_data / relative
    labels = read_image(source)
    out = write_labels(labels.array, labels, tmp_path / "out.nii.gz")
    again = read_image(out)
    assert again.kind == "labels"
    assert np.array_equal(again.array, labels.array)
    assert np.allclose(again.source_affine, labels.source_affine, atol=1e-5)
    assert again.spacing == pytest.approx(labels.spacing)
    # On disk: the same array order and affine as the file it came from.
    original, written = nib.load(source), nib.load(out)
    assert np.array_equal(np.asanyarray(written.dataobj), np.asanyarray(original.dataobj))
    assert np.allclose(written.affine, original.affine, atol=1e-5)


def test_labels_drawn_on_a_dicom_series_are_written_on_its_grid(shared_data, tmp_path):
    series = read_image(shared_data / "ct-lumbar-totalseg" / "dicom_series_T11-T12")
    drawn = np.zeros(series.shape, np.uint8)
    drawn[5:10, 200:260, 230:290] = 19
    out = write_labels(drawn, series, tmp_path / "t12.nii.gz")
    again = read_image(out)
    assert np.array_equal(again.array, drawn)
    reference = read_image(
        shared_data / "ct-lumbar-totalseg" / "dicom_series_labels_totalseg.nii.gz"
    )
    assert np.allclose(again.affine, reference.affine, atol=1e-3)


@pytest.mark.parametrize("modality", ["xr", "ct"])
def test_phantom_labels_round_trip(tmp_path, modality):
    phantom = make_phantom(modality, 1, spacing=0.6 if modality == "xr" else 2.0)
    out = write_labels(phantom.labels.array, phantom.image, tmp_path / "l.nii.gz")
    again = read_image(out)
    assert np.array_equal(again.array, phantom.labels.array)
    assert again.spacing == pytest.approx(phantom.image.spacing)
    assert again.axis_codes == phantom.image.axis_codes
    assert again.modality == phantom.image.modality


def test_labels_on_an_image_of_unknown_spacing_stay_unknown(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "film.png")
    film = read_image(tmp_path / "film.png")
    drawn = np.zeros(film.shape, np.uint8)
    drawn[5:15, 10:20] = 20
    again = read_image(write_labels(drawn, film, tmp_path / "film_labels.nii.gz"))
    assert np.array_equal(again.array, drawn)
    assert again.spacing is None and again.axis_codes is None
    # Once the user sets an anisotropic spacing it survives the round trip, axes unswapped.
    calibrated = film.with_spacing((0.2, 0.3))
    again = read_image(write_labels(drawn, calibrated, tmp_path / "calibrated.nii.gz"))
    assert np.array_equal(again.array, drawn)
    assert again.spacing == pytest.approx((0.2, 0.3))


def test_writers_never_overwrite_without_being_asked(tmp_path):
    phantom = make_phantom("xr", 0, spacing=0.8)
    path = write_labels(phantom.labels.array, phantom.image, tmp_path / "l.nii.gz")
    before = path.read_bytes()
    with pytest.raises(SpineIOError, match="already exists"):
        write_labels(np.zeros_like(phantom.labels.array), phantom.image, path)
    assert path.read_bytes() == before
    with pytest.raises(SpineIOError, match=".nii"):
        write_labels(phantom.labels.array, phantom.image, tmp_path / "l.png")
    with pytest.raises(SpineIOError, match="shape"):
        write_labels(phantom.labels.array[:-1], phantom.image, tmp_path / "m.nii.gz")


def test_table_csv_round_trip_with_empty_cells(tmp_path):
    table = pd.DataFrame(
        {
            "level": ["L1", "L2"],
            "label": [20, 21],
            "vcr_percent": [np.nan, 12.5],
            "qc_flags": ["", "touches_border"],
        }
    )
    path = write_table(table, tmp_path / "measurements.csv")
    text = path.read_text().splitlines()
    assert text[0] == "level,label,vcr_percent,qc_flags"
    assert text[1] == "L1,20,,"
    back = read_table(path)
    assert back["label"].tolist() == [20, 21] and np.isnan(back["vcr_percent"][0])
    with pytest.raises(SpineIOError, match="already exists"):
        write_table(table, path)
    assert not list(tmp_path.glob(".*partial*"))
