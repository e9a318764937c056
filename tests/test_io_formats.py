"""Radiograph DICOM, CT series edge cases, compressed DICOM, PNG/TIFF, built with known values."""

import numpy as np
import pytest
from PIL import Image

from napari_vertebra import SpineIOError, read_image
from napari_vertebra.core.io import read_dicom_folder
from tests.dicom_factory import ct_series, radiograph_dataset, write


def _gradient(shape=(40, 30), top=4095, dtype=np.uint16):
    rows = np.linspace(0, top, shape[0])[:, None] * np.ones(shape[1])[None, :]
    cols = np.arange(shape[1])[None, :] * np.ones(shape[0])[:, None]
    return np.clip(rows + cols, 0, top).astype(dtype)


def test_dx_monochrome1_pixel_spacing_and_orientation(tmp_path):
    stored = _gradient()
    ds = radiograph_dataset(
        stored,
        photometric="MONOCHROME1",
        PixelSpacing=[0.15, 0.15],
        ImagerPixelSpacing=[0.18, 0.18],
        PatientOrientation=["A", "F"],
    )
    image = read_image(write(ds, tmp_path / "lat.dcm"))
    assert image.modality == "XR" and image.spacing == pytest.approx((0.15, 0.15))
    assert image.source["spacing_source"] == "PixelSpacing"
    # MONOCHROME1 inverted within 12 bits, then columns flipped so that they point posterior.
    assert image.axis_codes == ("I", "P")
    assert np.array_equal(image.array, (4095 - stored.astype(np.int64))[:, ::-1])
    assert "Test^Phantom" not in str(image.source) and "PHANTOM-1" not in str(image.source)


def test_imager_spacing_is_corrected_by_magnification(tmp_path):
    ds = radiograph_dataset(
        _gradient(), ImagerPixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor=1.25
    )
    image = read_image(write(ds, tmp_path / "cr.dcm"))
    assert image.spacing == pytest.approx((0.16, 0.16))
    assert "Magnification" in image.source["spacing_source"]
    ds = radiograph_dataset(_gradient(), ImagerPixelSpacing=[0.2, 0.25])
    image = read_image(write(ds, tmp_path / "cr2.dcm"))
    assert image.spacing == pytest.approx((0.2, 0.25))
    assert "detector" in image.source["spacing_source"]
    assert image.axis_codes is None  # no PatientOrientation: kept as stored


def test_radiograph_without_spacing_is_unknown_never_one_mm(tmp_path):
    image = read_image(write(radiograph_dataset(_gradient(), modality="CR"), tmp_path / "x.dcm"))
    assert image.spacing is None and not image.spacing_known and image.units == "pixel"
    assert image.source["spacing_source"] == "unknown"
    set_by_user = image.with_spacing(0.143)
    assert set_by_user.spacing == (0.143, 0.143) and set_by_user.units == "mm"


@pytest.mark.parametrize(
    "dtype,bits", [(np.uint8, 8), (np.uint16, 12), (np.uint16, 16), (np.int16, 16)]
)
def test_bit_depths_and_rescale(tmp_path, dtype, bits):
    top = 2 ** (bits - 1) - 1 if np.dtype(dtype).kind == "i" else 2**bits - 1
    stored = _gradient(top=top, dtype=dtype)
    ds = radiograph_dataset(
        stored, bits_stored=bits, RescaleSlope=2, RescaleIntercept=-5, PixelSpacing=[0.1, 0.1]
    )
    image = read_image(write(ds, tmp_path / "r.dcm"))
    assert np.allclose(image.array, stored.astype(float) * 2 - 5)


def test_jpeg2000_compressed_radiograph_decodes(tmp_path):
    from pydicom.uid import JPEG2000Lossless

    stored = _gradient(shape=(128, 96))
    ds = radiograph_dataset(stored, PixelSpacing=[0.1, 0.1])
    ds.compress(JPEG2000Lossless)
    image = read_image(write(ds, tmp_path / "j2k.dcm"))
    assert np.array_equal(image.array, stored)
    assert "JPEG 2000" in image.source["transfer_syntax"]


def test_missing_decoder_names_the_package(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    ds = radiograph_dataset(_gradient(), PixelSpacing=[0.1, 0.1])
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    path = write(ds, tmp_path / "jls.dcm")
    with pytest.raises(SpineIOError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message and "JPEG-LS" in message
    assert "pyjpegls" in message or "could not be decoded" in message


def test_ct_series_sorted_by_position_not_file_name(tmp_path):
    # Files named in the opposite order of their positions (feet first in the file list).
    paths = ct_series(tmp_path / "s", n=5, positions=[-10.0, 0.0, -2.5, -7.5, -5.0])
    image = read_image(tmp_path / "s")
    assert len(paths) == 5 and image.shape == (5, 16, 16)
    assert image.spacing == pytest.approx((2.5, 0.7, 0.8))
    # Axis 0 runs inferior (head first); stored value 10 * file index, HU = value - 1024.
    z_of_file = {0: -10.0, 1: 0.0, 2: -2.5, 3: -7.5, 4: -5.0}
    expected = [10 * k - 1024 for k in sorted(z_of_file, key=lambda k: -z_of_file[k])]
    assert image.array[:, 5, 5].tolist() == expected


def test_series_with_gap_is_reported(tmp_path):
    ct_series(tmp_path / "g", positions=[0.0, -2.5, -5.0, -10.0, -12.5])
    with pytest.raises(SpineIOError, match="gap"):
        read_image(tmp_path / "g")


def test_series_with_mixed_orientation_is_reported(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.1"
    ct_series(tmp_path / "m", n=3, series_uid=uid)
    extra = ct_series(
        tmp_path / "tmp", n=1, positions=[-7.5], orientation=(0, 1, 0, 0, 0, -1), series_uid=uid
    )
    extra[0].rename(tmp_path / "m" / "odd.dcm")
    with pytest.raises(SpineIOError, match="mixes slice orientations"):
        read_image(tmp_path / "m")


def test_duplicate_positions_are_reported(tmp_path):
    ct_series(tmp_path / "d", positions=[0.0, -2.5, -2.5, -5.0])
    with pytest.raises(SpineIOError, match="share a position"):
        read_image(tmp_path / "d")


def test_several_series_in_one_folder(tmp_path):
    folder = tmp_path / "two"
    ct_series(folder, n=4, series_uid="1.2.3.4.1")
    for path in ct_series(tmp_path / "other", n=3, series_uid="1.2.3.4.2", start_value=500):
        path.rename(folder / f"b_{path.name}")
    images = read_dicom_folder(folder)
    assert sorted(im.shape[0] for im in images) == [3, 4]
    with pytest.raises(SpineIOError, match="2 series"):
        read_image(folder)
    chosen = read_image(folder, series_uid="1.2.3.4.2")
    assert chosen.shape[0] == 3 and chosen.array.min() >= 500 - 1024


def test_png_and_tiff_spacing_unknown(tmp_path):
    gray = _gradient(top=255, dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "a.png")
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "rgb.jpg", quality=100)
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", _gradient())
    png = read_image(tmp_path / "a.png")
    assert np.array_equal(png.array, gray) and png.spacing is None and png.modality == "XR"
    jpg = read_image(tmp_path / "rgb.jpg")
    assert jpg.ndim == 2 and jpg.spacing is None
    assert np.abs(jpg.array.astype(int) - gray).max() <= 3
    tif = read_image(tmp_path / "a.tif")
    assert tif.array.dtype == np.uint16 and tif.spacing is None
    given = read_image(tmp_path / "a.png", spacing=0.2)
    assert given.spacing == (0.2, 0.2) and given.source["spacing_source"] == "set by user"


def test_nifti_with_some_nan_opens_with_a_warning(tmp_path):
    import nibabel as nib

    data = np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32)
    data[0, 0, :] = np.nan
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.0, 1.0])), tmp_path / "nan.nii.gz")
    with pytest.warns(UserWarning, match="NaN"):
        image = read_image(tmp_path / "nan.nii.gz")
    assert np.isfinite(image.array).all()
    assert any("NaN" in w for w in image.source["warnings"])
