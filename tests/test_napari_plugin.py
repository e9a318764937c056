"""The plugin inside napari: manifest contributions, samples, readers and writers via the viewer.

Needs Qt and OpenGL: run under ``xvfb-run -a`` on machines without a display.
"""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

import napari  # noqa: E402
import npe2  # noqa: E402

from napari_vertebra import make_phantom, read_image, write_nifti  # noqa: E402

pytestmark = pytest.mark.gui
PLUGIN = "napari-vertebra"


def test_manifest_is_valid_and_lists_contributions():
    manifest = npe2.PluginManifest.from_distribution(PLUGIN)
    manifest.validate_imports()
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert PLUGIN in pm._manifests
    samples = {s.key for s in manifest.contributions.sample_data}
    assert samples == {"lumbar-ct", "radiograph", "ct"}
    assert manifest.contributions.readers[0].accepts_directories
    extensions = {e for w in manifest.contributions.writers for e in w.filename_extensions}
    assert {".nii.gz", ".nii", ".csv"} <= extensions
    readers = [r.plugin_name for r in pm.iter_compatible_readers(["x.nii.gz"])]
    assert PLUGIN in readers


@pytest.mark.parametrize("key,ndim", [("lumbar-ct", 3), ("radiograph", 2), ("ct", 3)])
def test_samples_open_with_physical_scale(make_napari_viewer, key, ndim):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, key)
    assert len(viewer.layers) == 2
    image, labels = viewer.layers
    assert isinstance(image, napari.layers.Image) and isinstance(labels, napari.layers.Labels)
    meta = image.metadata["napari_vertebra"]
    assert image.ndim == ndim and meta["spacing_known"]
    assert np.allclose(image.scale, meta["spacing_mm"]) and np.allclose(labels.scale, image.scale)
    assert np.allclose(image.translate, meta["origin_mm"])
    assert set(np.unique(labels.data)) - {0} <= set(range(1, 29))
    if key == "lumbar-ct":
        assert np.allclose(image.scale, (3.0, 3.0, 3.0))
        assert {19, 20, 24, 26} <= set(np.unique(labels.data))  # T12, L1, L5, S1 in VerSe IDs


def test_reader_opens_nifti_and_dicom_folder(make_napari_viewer, shared_data):
    viewer = make_napari_viewer()
    lumbar = shared_data / "ct-lumbar-totalseg"
    viewer.open(str(lumbar / "ct.nii.gz"), plugin=PLUGIN)
    viewer.open(str(lumbar / "dicom_series_T11-T12"), plugin=PLUGIN)
    viewer.open(str(lumbar / "labels_totalseg.nii.gz"), plugin=PLUGIN)
    ct, series, labels = viewer.layers
    assert np.allclose(ct.scale, (3, 3, 3))
    assert np.allclose(series.scale, (2.0, 0.9765625, 0.9765625))
    assert np.allclose(series.translate, read_image(lumbar / "dicom_series_T11-T12").origin)
    assert isinstance(labels, napari.layers.Labels) and np.allclose(labels.scale, ct.scale)
    assert str(ct.units[0]) in ("mm", "millimeter")


def test_png_opens_in_pixels(make_napari_viewer, tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "film.png")
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "film.png"), plugin=PLUGIN)
    layer = viewer.layers[0]
    assert np.allclose(layer.scale, (1, 1))
    assert layer.metadata["napari_vertebra"]["spacing_known"] is False
    assert str(layer.units[0]) in ("pixel", "px")


def test_malformed_file_gives_a_notification_not_a_traceback(make_napari_viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 20)
    viewer = make_napari_viewer()
    before = len(notification_manager.records)
    viewer.open(str(bad), plugin=PLUGIN)
    assert len(viewer.layers) == 0
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any(str(bad) in m and "not a readable NIfTI" in m for m in messages)


def test_labels_layer_saved_with_source_geometry(make_napari_viewer, shared_data, tmp_path):
    viewer = make_napari_viewer()
    source = shared_data / "ct-crop-tptbox" / "sub-ct_seg-vert_label-22_msk.nii.gz"
    viewer.open(str(source), plugin=PLUGIN)
    layer = viewer.layers[0]
    layer.data[layer.data == 22] = 0  # an edit by the user
    out = tmp_path / "edited.nii.gz"
    napari.save_layers(str(out), [layer], plugin=PLUGIN)
    again = read_image(out)
    original = read_image(source)
    assert np.array_equal(again.array, layer.data)
    assert np.allclose(again.source_affine, original.source_affine)


def test_user_painted_layer_without_metadata_uses_layer_scale(make_napari_viewer, tmp_path):
    phantom = make_phantom("ct", 2, spacing=2.0)
    path = write_nifti(phantom.image, tmp_path / "ct.nii.gz")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    painted = viewer.add_labels(
        np.zeros(viewer.layers[0].data.shape, np.uint8),
        scale=viewer.layers[0].scale,
        name="painted",
    )
    painted.data[10:20, 30:40, 30:40] = 20
    out = tmp_path / "painted.nii.gz"
    napari.save_layers(str(out), [painted], plugin=PLUGIN)
    again = read_image(out)
    assert np.array_equal(again.array, painted.data)
    assert again.spacing == pytest.approx(phantom.image.spacing)
