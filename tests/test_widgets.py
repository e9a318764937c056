"""The dock widgets in a viewer: docked through the manifest, run on the samples, corrected.

Needs Qt and OpenGL: run under ``xvfb-run -a`` on machines without a display. Work runs
synchronously (NAPARI_VERTEBRA_SYNC) except in the test of the threaded path.
"""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

import napari  # noqa: E402

from napari_vertebra.core.labels import level_id, level_name  # noqa: E402
from napari_vertebra.core.measure import COLUMNS  # noqa: E402
from napari_vertebra.core.metrics import dice, vertebral_bodies  # noqa: E402
from napari_vertebra.core.morphometry import vertebral_compression_ratio  # noqa: E402

pytestmark = pytest.mark.gui
PLUGIN = "napari-vertebra"
WIDGETS = (
    "Analyze spine",
    "Preprocess",
    "Segment vertebral bodies",
    "Levels",
    "Grade fractures",
    "Measure vertebrae",
    "Measurement table",
    "Height plot",
    "Batch over a folder",
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_VERTEBRA_SYNC", "1")
    monkeypatch.setenv("NAPARI_VERTEBRA_SETTINGS", str(tmp_path / "settings"))


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    widget.reset_choices()
    return widget


@pytest.fixture
def radiograph(make_napari_viewer):
    """A viewer with the synthetic radiograph (L1 wedge fracture) measured by the widget."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "radiograph")
    image, bodies = viewer.layers
    widget = _dock(viewer, "Measure vertebrae")
    widget.vertebrae.value = bodies
    widget.image.value = image
    widget.run()
    return viewer, widget.review_layers


@pytest.mark.parametrize("name", WIDGETS)
def test_every_widget_docks_through_the_manifest(make_napari_viewer, name):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "radiograph")
    widget = _dock(viewer, name)
    # The widget reaches the viewer it is docked in (napari passes a proxy of it).
    assert [layer.name for layer in widget.viewer.layers] == [layer.name for layer in viewer.layers]


def test_measure_widget_adds_layers_in_physical_scale_with_the_table(radiograph):
    viewer, review = radiograph
    image = viewer.layers["phantom radiograph"]
    labels = review.labels
    assert np.allclose(labels.scale, image.scale)
    for layer in (review.landmarks, review.heights, review.levels):
        assert np.allclose(layer.scale, image.scale) and layer in viewer.layers
    features = labels.features
    assert list(features.columns[1 : len(COLUMNS) + 1]) == list(COLUMNS)
    assert features["index"].tolist() == features["label"].tolist()
    assert set(np.unique(labels.data)) == {0, *features["label"]}
    levels = features["level"].tolist()
    assert levels == ["T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    bodies = len(levels) - 1
    assert len(review.landmarks.data) == 6 * bodies
    assert len(review.heights.data) == 3 * bodies
    assert review.levels.text.values.tolist()[2] == "L1 G2"  # the phantom's moderate wedge
    # Landmarks sit where the measurement put them (world mm = data * scale + translate).
    l1 = review.landmarks.features["level"] == "L1"
    world = review.landmarks.data[l1.to_numpy()] * labels.scale + labels.translate
    marks = review.review.measurement.geometry["L1"].landmarks
    expected = np.array([marks[name] for name in review.landmarks.features["landmark"][l1]])
    np.testing.assert_allclose(world, expected, atol=1e-6)
    # Bodies coloured by grade: L1 (grade 2) orange, L2 (grade 0) green.
    colors = labels.colormap.color_dict
    assert np.allclose(colors[level_id("L1")][:3], (1.0, 0.498, 0.055), atol=0.01)
    assert np.allclose(colors[level_id("L2")][:3], (0.173, 0.627, 0.173), atol=0.01)


def test_moving_one_landmark_updates_height_vcr_grade_and_colours(radiograph):
    viewer, review = radiograph
    table = review.labels.features.set_index("level")
    points = review.landmarks
    rows = points.features
    upper = np.nonzero(
        ((rows["level"] == "L3") & (rows["landmark"] == "upper_anterior")).to_numpy()
    )
    lower = np.nonzero(
        ((rows["level"] == "L3") & (rows["landmark"] == "lower_anterior")).to_numpy()
    )
    data = points.data.copy()
    # Drag L3's upper anterior corner 45 % of the way down to the lower one.
    data[upper[0][0]] += 0.45 * (data[lower[0][0]] - data[upper[0][0]])
    points.data = data

    after = review.labels.features.set_index("level")
    spacing = np.asarray(review.labels.scale)
    height = float(np.linalg.norm((data[lower[0][0]] - data[upper[0][0]]) * spacing))
    assert after.loc["L3", "anterior_height_mm"] == pytest.approx(height, abs=1e-3)
    assert height < 0.6 * table.loc["L3", "anterior_height_mm"]
    avh = after["anterior_height_mm"]
    for a, b, c in (("L2", "L3", "L4"), ("L1", "L2", "L3"), ("L3", "L4", "L5")):
        ratio = vertebral_compression_ratio(avh[a], avh[b], avh[c])
        assert after.loc[b, "vcr_percent"] == pytest.approx(ratio, abs=0.01)
    loss = 1 - avh["L3"] / after.loc["L3", "expected_anterior_height_mm"]
    assert loss >= 0.40
    assert table.loc["L3", "genant_grade"] == 0 and after.loc["L3", "genant_grade"] == 3
    assert "landmarks_edited" in after.loc["L3", "qc_flags"]
    assert np.allclose(
        review.labels.colormap.color_dict[level_id("L3")][:3], (0.839, 0.153, 0.157), atol=0.01
    )
    # The height line of L3 followed the landmark.
    lines = review.heights.features
    index = np.nonzero(((lines["level"] == "L3") & (lines["height"] == "anterior")).to_numpy())[0][
        0
    ]
    assert lines["height_mm"].iloc[index] == pytest.approx(height, abs=1e-3)


def test_levels_widget_shifts_and_sets_levels_and_the_table_follows(radiograph):
    viewer, review = radiograph
    levels = _dock(viewer, "Levels")
    table = _dock(viewer, "Measurement table")
    levels.vertebrae.value = review.labels
    table.vertebrae.value = review.labels
    before = review.labels.features.copy()
    # T11-L5 one level lower would make the last one L6, which needs 6 lumbar vertebrae.
    levels.shift(+1)
    assert "outside" in levels.status.value
    assert review.labels.features["level"].tolist() == before["level"].tolist()
    levels.shift(-1)
    after = review.labels.features
    assert after["level"].tolist() == ["T10", "T11", "T12", "L1", "L2", "L3", "L4", "S1"]
    assert (after["level_source"].iloc[:-1] == "shifted").all()
    np.testing.assert_allclose(after["anterior_height_mm"], before["anterior_height_mm"])
    assert [table.grid.item(r, 0).text() for r in range(table.grid.rowCount())] == after[
        "level"
    ].tolist()
    levels.shift(+1)
    shifted = review.labels.features
    assert shifted["level"].tolist() == before["level"].tolist()
    assert [table.grid.item(r, 0).text() for r in range(table.grid.rowCount())] == before[
        "level"
    ].tolist()
    np.testing.assert_allclose(shifted["vcr_percent"], before["vcr_percent"])
    levels.shift(-1)
    # Give the fourth body (now L1) the level L2 by hand: everything follows.
    review.labels.selected_label = level_id("L1")
    levels.set_selected_level("L2")
    expected = ["T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert review.labels.features["level"].tolist() == expected


def test_table_selects_sorts_and_exports(radiograph, tmp_path):
    viewer, review = radiograph
    table = _dock(viewer, "Measurement table")
    table.vertebrae.value = review.labels
    assert table.grid.rowCount() == len(review.labels.features)
    table.select_level("L1")
    assert review.labels.selected_label == level_id("L1")
    table.grid.sortItems(1)  # anterior height, ascending
    first = table.grid.item(0, 0).text()
    heights = review.labels.features.set_index("level")["anterior_height_mm"]
    assert first == heights.idxmin()
    path = table.export_csv(tmp_path / "table.csv")
    written = pd.read_csv(path)
    assert written["level"].tolist() == review.labels.features["level"].tolist()
    assert list(written.columns[: len(COLUMNS)]) == list(COLUMNS)


def test_grade_widget_reports_the_fracture_and_plot_shows_ratios(radiograph):
    viewer, review = radiograph
    grade = _dock(viewer, "Grade fractures")
    grade.vertebrae.value = review.labels
    grade.run()
    assert len(grade.report) == 1 and grade.report[0].startswith("L1: grade 2")
    assert grade.next_fracture() == "L1"
    assert review.labels.selected_label == level_id("L1")
    plot = _dock(viewer, "Height plot")
    plot.vertebrae.value = review.labels
    series = plot.series(review.labels.features[review.labels.features["level"] != "S1"])
    features = review.labels.features.set_index("level")
    expected = (
        100
        * features.loc["L1", "anterior_height_mm"]
        / features.loc["L1", "expected_anterior_height_mm"]
    )
    assert series["anterior"][2] == pytest.approx(expected)
    assert len(plot.figure.axes[0].lines) == 3 + 3  # three heights, three grade lines
    levels = [line.get_ydata()[0] for line in plot.figure.axes[0].lines[3:]]
    assert levels == pytest.approx([80.0, 75.0, 60.0])  # Genant's thresholds


def test_height_plot_draws_the_thresholds_the_vertebrae_were_graded_with(make_napari_viewer):
    import napari_vertebra as nv
    from napari_vertebra._napari.review_layers import ReviewLayers
    from napari_vertebra.core.review import Review

    case = nv.make_phantom("xr", seed=3)
    measured = nv.measure(case.labels, grade_thresholds=(0.15, 0.3, 0.45))
    viewer = make_napari_viewer()
    layers = ReviewLayers(viewer, Review.start(case.labels, measured), name="tuned")
    plot = _dock(viewer, "Height plot")
    plot.vertebrae.value = layers.labels
    plot.mode.value = "height / reference (%)"
    levels = [line.get_ydata()[0] for line in plot.figure.axes[0].lines[3:]]
    assert levels == pytest.approx([85.0, 70.0, 55.0])


def test_analyze_widget_on_the_real_ct(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "lumbar-ct")
    image = viewer.layers["lumbar CT"]
    widget = _dock(viewer, "Analyze spine")
    widget.image.value = image
    widget.model.value = "ct-baseline"
    assert {"auto", "none", "ct-fracture-slices"} <= set(widget.fracture_classifier.choices)
    widget.fracture_classifier.value = "ct-fracture-slices"
    widget.run()
    review = widget.review_layers
    labels = review.labels
    assert widget.result.summary["fracture_classifier"]["name"] == "ct-fracture-slices"
    assert labels.features["slice_fracture_probability"].iloc[:6].between(0, 1).all()
    assert isinstance(labels, napari.layers.Labels) and labels.ndim == 3
    assert np.allclose(labels.scale, (3.0, 3.0, 3.0))
    assert labels.features["level"].tolist() == ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert review.landmarks.ndim == 3 and len(review.landmarks.data) == 6 * 6
    assert viewer.dims.order[0] == 2  # sagittal slices
    assert "7 vertebrae" in widget.status.value


def _segment_then_dock_levels(viewer, sample, image_name, model):
    """Segment a sample with the Segment widget; the bodies layer and a Levels widget on it."""
    viewer.open_sample(PLUGIN, sample)
    segment = _dock(viewer, "Segment vertebral bodies")
    segment.image.value = viewer.layers[image_name]
    segment.model.value = model
    segment.run()
    levels = _dock(viewer, "Levels")
    levels.vertebrae.value = segment.layer
    return segment.layer, levels


def test_segment_then_levels_widgets_chain_on_the_real_ct(make_napari_viewer):
    viewer = make_napari_viewer()
    bodies, levels = _segment_then_dock_levels(viewer, "lumbar-ct", "lumbar CT", "ct-baseline")
    assert bodies.name == "lumbar CT bodies" and np.allclose(bodies.scale, (3, 3, 3))
    assert 26 in bodies.features["index"].tolist() and (bodies.features["size_mm3"] > 0).all()
    levels.run()
    assert bodies.features["level"].tolist() == ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert f"{bodies.name.removesuffix(' bodies')} landmarks" in viewer.layers


def test_preprocess_widget_adds_an_overlaying_image(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "radiograph")
    widget = _dock(viewer, "Preprocess")
    image = viewer.layers["phantom radiograph"]
    widget.image.value = image
    widget.run()
    out = viewer.layers["phantom radiograph preprocessed"]
    assert out.data.shape == image.data.shape and np.allclose(out.scale, image.scale)
    record = out.metadata["napari_vertebra_preprocessing"]
    assert [step["op"] for step in record] == ["clip_upper", "zscore", "letterbox", "clahe"]


def test_widget_settings_persist(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = _dock(viewer, "Levels")
    widget.lumbar_count.value = 6
    again = type(widget)(viewer)
    assert again.lumbar_count.value == 6


def test_threaded_run_reports_and_can_be_cancelled(make_napari_viewer, qtbot, monkeypatch):
    monkeypatch.delenv("NAPARI_VERTEBRA_SYNC")
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "lumbar-ct")
    widget = _dock(viewer, "Analyze spine")
    widget.image.value = viewer.layers["lumbar CT"]
    widget.model.value = "ct-baseline"
    widget.run()
    assert not widget.run_button.enabled
    qtbot.waitUntil(lambda: widget.review_layers is not None, timeout=60000)
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=5000)
    assert "vertebrae" in viewer.layers[-4].name
    # Cancelled before it starts reporting: no layers added, buttons back.
    count = len(viewer.layers)
    widget.review_layers = None
    widget.run()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=60000)
    assert widget.review_layers is None and len(viewer.layers) == count


def test_add_to_viewer_from_a_script(make_napari_viewer, shared_data):
    from napari_vertebra import add_to_viewer, analyze

    viewer = make_napari_viewer()
    result = analyze(
        shared_data / "ct-crop-tptbox" / "sub-ct_label-22_ct.nii.gz", model="ct-baseline"
    )
    layers = add_to_viewer(viewer, result)
    assert [layer.name for layer in viewer.layers] == [
        "sub-ct_label-22_ct",
        "sub-ct_label-22_ct vertebrae",
        "sub-ct_label-22_ct landmarks",
        "sub-ct_label-22_ct heights",
        "sub-ct_label-22_ct levels",
    ]
    assert layers.labels.features["level"].tolist() == result.table["level"].tolist()
    layers.shift_levels(-1)
    assert layers.labels.features["level"].tolist() == ["L2", "L3", "L4"]


def test_body_edits_and_painting_recount_levels_and_remeasure(radiograph):
    viewer, review = radiograph
    levels = _dock(viewer, "Levels")
    levels.vertebrae.value = review.labels
    review.labels.selected_label = level_id("T11")
    levels.edit_selected("delete")
    assert review.labels.features["level"].tolist() == ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert len(review.landmarks.data) == 6 * 6
    # Painting L2 away through the layer (as the eraser does) recounts from the sacrum.
    data = review.labels.data.copy()
    data[data == level_id("L2")] = 0
    review.labels.data = data
    review.labels.events.paint(value=[])
    # Counted up from the sacrum: the five bodies left above it are L1-L5.
    assert review.labels.features["level"].tolist() == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert len(review.landmarks.data) == 6 * 5
    review.labels.selected_label = level_id("L1")
    levels.edit_selected("merge")  # L1 and L2 become one body, recounted from the sacrum: L2
    assert review.labels.features["level"].tolist() == ["L2", "L3", "L4", "L5", "S1"]
    merged = review.labels.features.set_index("level").loc["L2", "anterior_height_mm"]
    review.labels.selected_label = level_id("L2")
    levels.edit_selected("split")
    assert review.labels.features["level"].tolist() == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert review.labels.features.set_index("level").loc["L2", "anterior_height_mm"] < merged


def test_deleted_landmarks_are_put_back(radiograph):
    viewer, review = radiograph
    count = len(review.landmarks.data)
    review.landmarks.selected_data = {0, 1}
    review.landmarks.remove_selected()
    assert len(review.landmarks.data) == count
    assert review.landmarks.features["landmark"].iloc[0] == "upper_anterior"


#: The two samples every widget runs on: (sample, image layer, labels layer, preprocessing recipe).
SAMPLES = {
    "radiograph": (
        "phantom radiograph",
        "phantom radiograph bodies",
        "seed 004 radiograph (clip 1 %, z-score, 1024², CLAHE)",
    ),
    "lumbar-ct": (
        "lumbar CT",
        "lumbar CT vertebrae (TotalSegmentator)",
        "CT resampled to 1.5 mm, bone window",
    ),
}


def _measure_sample(viewer, sample):
    viewer.open_sample(PLUGIN, sample)
    image_name, labels_name, _ = SAMPLES[sample]
    widget = _dock(viewer, "Measure vertebrae")
    widget.vertebrae.value = viewer.layers[labels_name]
    widget.image.value = viewer.layers[image_name]
    widget.run()
    return widget.review_layers


@pytest.fixture(params=list(SAMPLES))
def measured_sample(request, make_napari_viewer):
    """A viewer with one sample measured by the Measure widget, and that sample's name."""
    viewer = make_napari_viewer()
    return request.param, viewer, _measure_sample(viewer, request.param)


def test_measure_widget_on_both_samples(measured_sample):
    sample, viewer, review = measured_sample
    image = viewer.layers[SAMPLES[sample][0]]
    labels = review.labels
    assert labels.ndim == image.ndim == (3 if sample == "lumbar-ct" else 2)
    for layer in (labels, review.landmarks, review.heights, review.levels):
        assert np.allclose(layer.scale, image.scale) and np.allclose(
            layer.translate, image.translate
        )
    features = labels.features
    assert list(features.columns[1 : len(COLUMNS) + 1]) == list(COLUMNS)
    assert set(np.unique(labels.data)) == {0, *features["label"]}
    assert features["level"].iloc[-1] == "S1"
    measured = features["anterior_height_mm"].notna().sum()
    assert measured >= 5
    assert len(review.landmarks.data) == 6 * measured
    assert review.landmarks.ndim == labels.ndim
    # Heights in the table are the distances between the landmarks shown, in mm.
    marks = review.landmarks
    world = marks.data * np.asarray(labels.scale) + np.asarray(labels.translate)
    rows = marks.features
    for level, row in features.set_index("level").iterrows():
        upper = ((rows["level"] == level) & (rows["landmark"] == "upper_posterior")).to_numpy()
        lower = ((rows["level"] == level) & (rows["landmark"] == "lower_posterior")).to_numpy()
        if upper.any():
            distance = np.linalg.norm(world[upper][0] - world[lower][0])
            assert row["posterior_height_mm"] == pytest.approx(distance, abs=1e-3)


def test_levels_grade_table_and_plot_widgets_on_both_samples(measured_sample):
    sample, viewer, review = measured_sample
    features = review.labels.features
    grade = _dock(viewer, "Grade fractures")
    grade.vertebrae.value = review.labels
    grade.run()
    graded = features["genant_grade"].fillna(0).astype(int)
    assert len(grade.report) == int((graded >= 1).sum())
    table = _dock(viewer, "Measurement table")
    table.vertebrae.value = review.labels
    shown = [table.grid.item(r, 0).text() for r in range(table.grid.rowCount())]
    assert shown == features["level"].tolist()
    plot = _dock(viewer, "Height plot")
    plot.vertebrae.value = review.labels
    bodies = features[features["level"] != "S1"]
    assert len(plot.figure.axes[0].lines[0].get_xdata()) == len(bodies)
    # A shift by -1 on the Levels widget reaches the table, the plot's ticks and the text.
    levels = _dock(viewer, "Levels")
    levels.vertebrae.value = review.labels
    before = features["level"].tolist()
    levels.shift(-1)
    after = review.labels.features["level"].tolist()
    assert after[:-1] == [level_name(level_id(b) - 1) for b in before[:-1]]
    assert [table.grid.item(r, 0).text() for r in range(table.grid.rowCount())] == after
    ticks = [t.get_text() for t in plot.figure.axes[0].get_xticklabels()]
    assert ticks == [level for level in after if level != "S1"]
    assert review.levels.text.values.tolist()[0].split()[0] == after[0]


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_preprocess_widget_on_both_samples(make_napari_viewer, sample):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, sample)
    image_name, _, recipe = SAMPLES[sample]
    image = viewer.layers[image_name]
    widget = _dock(viewer, "Preprocess")
    widget.image.value = image
    widget.recipe.value = recipe
    widget.run()
    out = viewer.layers[f"{image_name} preprocessed"]
    assert out.data.shape == image.data.shape
    assert np.allclose(out.scale, image.scale) and np.allclose(out.translate, image.translate)
    ops = [step["op"] for step in out.metadata["napari_vertebra_preprocessing"]]
    assert ops[-1] in ("clahe", "hu_window")
    if sample == "lumbar-ct":
        # Bone window: air at 0, cortical bone near 1, on the CT's own grid.
        assert float(out.data.min()) == pytest.approx(0.0, abs=1e-3)
        assert 0.9 <= float(out.data.max()) <= 1.0 + 1e-6


def test_dragging_a_landmark_in_3d_updates_heights_ratios_and_grade(make_napari_viewer):
    review = _measure_sample(make_napari_viewer(), "lumbar-ct")
    labels = review.labels
    before = labels.features.set_index("level")
    points = review.landmarks
    rows = points.features
    pick = lambda name: np.nonzero(  # noqa: E731
        ((rows["level"] == "L3") & (rows["landmark"] == name)).to_numpy()
    )[0][0]
    upper, lower = pick("upper_anterior"), pick("lower_anterior")
    data = points.data.copy()
    data[upper] += 0.5 * (data[lower] - data[upper])
    points.data = data

    after = labels.features.set_index("level")
    scale = np.asarray(labels.scale)
    height = float(np.linalg.norm((data[lower] - data[upper]) * scale))
    assert after.loc["L3", "anterior_height_mm"] == pytest.approx(height, abs=1e-3)
    assert height == pytest.approx(0.5 * before.loc["L3", "anterior_height_mm"], rel=0.05)
    avh = after["anterior_height_mm"]
    for a, b, c in (("L2", "L3", "L4"), ("L1", "L2", "L3"), ("L3", "L4", "L5")):
        expected = vertebral_compression_ratio(avh[a], avh[b], avh[c])
        assert after.loc[b, "vcr_percent"] == pytest.approx(expected, abs=0.01)
    assert before.loc["L3", "genant_grade"] == 0 and after.loc["L3", "genant_grade"] == 3
    assert after.loc["L3", "fracture_type"] == "wedge"
    assert "landmarks_edited" in after.loc["L3", "qc_flags"]
    # Unchanged: the posterior heights of L3 and the heights of bodies away from it.
    assert after.loc["L3", "posterior_height_mm"] == pytest.approx(
        before.loc["L3", "posterior_height_mm"]
    )
    assert after.loc["L1", "anterior_height_mm"] == pytest.approx(
        before.loc["L1", "anterior_height_mm"]
    )


def test_analyze_widget_on_the_radiograph_uses_the_bundled_model(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "radiograph")
    image = viewer.layers["phantom radiograph"]
    truth = viewer.layers["phantom radiograph bodies"]
    widget = _dock(viewer, "Analyze spine")
    widget.image.value = image
    widget.model.value = "auto"
    widget.run()
    review = widget.review_layers
    labels = review.labels
    assert labels.ndim == 2 and np.allclose(labels.scale, image.scale)
    assert review.review.measurement is not None
    # Levels as the phantom's truth, and the L1 wedge fracture found by the model's bodies.
    assert labels.features["level"].tolist() == ["T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    graded = labels.features.set_index("level")["genant_grade"]
    assert int(graded["L1"]) >= 1 and int(graded["L3"]) == 0
    # The default model's fracture head (seed 004) agrees with the grade from the heights.
    believed = labels.features.set_index("level")["fracture_probability"]
    assert believed["L1"] >= 0.5 and believed["L3"] < 0.5
    assert dice(vertebral_bodies(labels.data), vertebral_bodies(truth.data)) > 0.9
    assert len(review.landmarks.data) == 6 * 7


def test_segment_widget_on_the_radiograph(make_napari_viewer):
    viewer = make_napari_viewer()
    bodies, levels = _segment_then_dock_levels(viewer, "radiograph", "phantom radiograph", "auto")
    assert bodies.ndim == 2 and np.allclose(bodies.scale, viewer.layers[0].scale)
    table = bodies.features.set_index("index")
    assert sorted(table.index) == [1, 26]  # one body class from a model, and the sacrum
    assert table.loc[1, "segmentation_confidence"] > 0.9
    levels.run()
    assert bodies.features["level"].tolist()[-3:] == ["L4", "L5", "S1"]


def test_pipeline_saved_from_the_widgets_replays_in_a_batch(make_napari_viewer, tmp_path):
    """Non-default settings used interactively, saved, then `batch --pipeline`: same table."""
    import napari_vertebra as nv
    from napari_vertebra.cli import main

    case = nv.make_phantom("xr", seed=31, fractures={"L2": (1, "wedge")})
    studies = tmp_path / "studies"
    studies.mkdir()
    nv.write_nifti(case.image, studies / "case.nii.gz")
    viewer = make_napari_viewer()
    viewer.open(str(studies / "case.nii.gz"), plugin=PLUGIN)
    widget = _dock(viewer, "Analyze spine")
    widget.image.value = viewer.layers[0]
    widget.fracture_classifier.value = "none"
    widget.lumbar_count.value = 6
    widget.grade_thresholds.value = "10, 15, 21"
    widget.run()
    interactive = widget.result.table
    pipeline = widget.save_pipeline(tmp_path / "tuned.yaml")
    assert pipeline is not None and "21" in pipeline.read_text()
    out = tmp_path / "out"
    assert (
        main(["batch", str(studies), str(out), "--pipeline", str(pipeline), "--workers", "0"]) == 0
    )
    batch = pd.read_csv(out / "case" / "measurements.csv")
    expected = interactive[batch.columns].reset_index(drop=True)
    assert batch["level"].tolist() == expected["level"].tolist()
    np.testing.assert_allclose(batch["anterior_height_mm"], expected["anterior_height_mm"])
    assert batch["genant_grade"].fillna(-1).tolist() == expected["genant_grade"].fillna(-1).tolist()
    # The tuned threshold mattered: the default grades differ.
    default = nv.analyze(studies / "case.nii.gz", fracture_classifier=None).table
    assert default["genant_grade"].fillna(-1).tolist() != batch["genant_grade"].fillna(-1).tolist()
    # Loading it back into a fresh widget shows the same settings.
    widget.grade_thresholds.value = "20, 25, 40"
    widget.lumbar_count.value = 5
    assert widget.load_pipeline(pipeline)
    assert widget.lumbar_count.value == 6 and widget.grade_thresholds.value == "10, 15, 21"


def test_batch_widget_runs_a_folder_and_summarises(make_napari_viewer, tmp_path):
    import napari_vertebra as nv

    studies = tmp_path / "studies"
    studies.mkdir()
    for seed in (41, 42):
        nv.write_nifti(nv.make_phantom("xr", seed=seed).image, studies / f"case{seed}.nii.gz")
    (studies / "broken.png").write_bytes(b"not a png")
    viewer = make_napari_viewer()
    widget = _dock(viewer, "Batch over a folder")
    widget.input_dir.value = studies
    widget.output_dir.value = tmp_path / "out"
    widget.workers.value = 0
    widget.report.value = False
    widget.run()
    assert widget.summary.finished == 2 and len(widget.summary.failed) == 1
    assert "2 analysed" in widget.status.value and "broken" in widget.status.value
    table = pd.read_csv(tmp_path / "out" / "measurements.csv")
    assert sorted(table["study"].unique()) == ["case41", "case42"]


def test_settings_saved_with_the_old_levels_text_still_count_from_the_anatomy():
    from napari_vertebra._napari.widgets._base import FROM_SACRUM, FROM_SACRUM_BEFORE
    from napari_vertebra._napari.widgets._pipeline import (
        settings_from_values,
        values_from_settings,
    )

    # Saved before the choice was renamed ("... or ribs"): the same choice, no top level.
    for text in (FROM_SACRUM, *FROM_SACRUM_BEFORE):
        assert settings_from_values({"top_level": text}).top_level is None
    settings = settings_from_values({"top_level": "top is T12"})
    assert settings.top_level == "T12"
    assert values_from_settings(settings)["top_level"] == "top is T12"
    assert values_from_settings(settings_from_values({}))["top_level"] == FROM_SACRUM
