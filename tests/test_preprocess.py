import numpy as np
import pytest

from napari_vertebra.core.preprocess import (
    SEED000_RADIOGRAPH,
    SEED004_RADIOGRAPH,
    PreprocessError,
    clip_upper,
    hu_window,
    letterbox,
    preprocess,
    resample,
    subtract_background,
    zscore,
)


def test_letterbox_keeps_aspect_and_centres_the_image():
    image = np.ones((300, 150), np.float32)
    framed, box = letterbox(image, 512)
    assert framed.shape == (512, 512)
    assert box.resized_shape == (512, 256)
    assert box.offset == (0, 128)
    assert framed[:, :128].max() == 0 and framed[:, 384:].max() == 0
    assert np.allclose(framed[:, 128:384], 1)


def test_letterbox_label_map_goes_back_to_source_exactly():
    rng = np.random.default_rng(0)
    labels = np.zeros((333, 211), np.uint8)
    for value in range(1, 6):
        top, left = rng.integers(0, 250), rng.integers(0, 150)
        labels[top : top + 40, left : left + 30] = value
    done = preprocess(labels, [{"op": "letterbox", "size": 1024, "order": 0}])
    back = done.to_source(done.array.astype(np.uint8), order=0)
    assert back.shape == labels.shape
    assert np.array_equal(back, labels)


def test_points_round_trip_through_letterbox_and_resample():
    image = np.zeros((120, 90, 70), np.float32)
    done = preprocess(
        image,
        [{"op": "resample", "target_spacing": 1.5}, {"op": "letterbox", "size": 96}],
        spacing=(3.0, 1.0, 0.8),
    )
    points = np.array([[0.0, 0.0, 0.0], [119.0, 89.0, 69.0], [40.5, 12.25, 33.0]])
    assert np.allclose(done.to_source_points(done.to_model_points(points)), points)
    # The first voxel's centre moves by the same half-voxel convention on every axis.
    model = done.to_model_points(points)
    assert np.all(model >= -0.5) and np.all(model <= 95.5)


def test_resample_reaches_the_asked_spacing_and_returns_to_the_source_shape():
    volume = np.random.default_rng(1).random((40, 50, 60)).astype(np.float32)
    out, mapping = resample(volume, (3.0, 1.0, 0.7), 1.5)
    assert out.shape == (80, 33, 28)
    assert np.allclose(mapping.target_spacing, (1.5, 50 / 33, 0.7 * 60 / 28))
    assert mapping.to_source(out).shape == volume.shape


def test_intensity_steps_do_what_the_seeds_say():
    image = np.arange(1000, dtype=np.float32)
    clipped, limit = clip_upper(image, 1.0)
    assert limit == pytest.approx(np.percentile(image, 99))
    assert clipped.max() == pytest.approx(limit) and np.count_nonzero(clipped == limit) >= 10
    standard, mean, std = zscore(image)
    assert abs(standard.mean()) < 1e-5 and standard.std() == pytest.approx(1, abs=1e-5)
    assert (mean, std) == pytest.approx((image.mean(), image.std()))
    windowed = hu_window(np.array([-1000.0, 400.0, 3000.0]), center=400, width=1800)
    assert windowed.tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("recipe,size", [(SEED000_RADIOGRAPH, 512), (SEED004_RADIOGRAPH, 1024)])
def test_seed_recipes_are_recorded_with_the_values_they_used(recipe, size):
    image = np.random.default_rng(2).normal(500, 100, (400, 260)).astype(np.float32)
    done = preprocess(image, recipe, spacing=(0.2, 0.2))
    assert done.array.shape == (size, size)
    assert [step["op"] for step in done.record] == [step["op"] for step in recipe]
    assert "mean" in next(s for s in done.record if s["op"] == "zscore")
    # The letterbox scales the spacing by the resize factor.
    assert done.spacing[0] == pytest.approx(0.2 * 400 / size)


def test_background_subtraction_removes_the_slow_gradient_and_keeps_a_body():
    # A 30 mm "body" 200 units bright on a soft-tissue ramp of 3000 units across 240 mm.
    rows, cols = np.mgrid[0:300, 0:300].astype(np.float32)
    ramp = 3000.0 * cols / 300
    body = np.where((np.abs(rows - 150) < 19) & (np.abs(cols - 150) < 19), 200.0, 0.0)
    flat = subtract_background(ramp + body, spacing=(0.8, 0.8), sigma_mm=20)
    inside = flat[140:160, 140:160].mean()
    beside = np.concatenate([flat[140:160, 95:105], flat[140:160, 195:205]], axis=1).mean()
    # The ramp rises 400 units over the 80 mm between the two sides of the body; after the
    # subtraction, what is left of it is small beside the body's own contrast.
    assert inside - beside > 100
    assert abs(flat[140:160, 95:105].mean() - flat[140:160, 195:205].mean()) < 20
    # The blur is in mm: the same scene on a grid twice as coarse gives the same profile.
    coarse = subtract_background((ramp + body)[::2, ::2], spacing=(1.6, 1.6), sigma_mm=20)
    assert np.abs(coarse[70:80, 70:80].mean() - inside) < 15
    # The field's edge (extended, not zero-padded) makes no halo on a flat image.
    assert np.abs(subtract_background(np.full((50, 60), 900.0), (1.0, 1.0))).max() < 1e-3
    with pytest.raises(PreprocessError, match="sigma_mm"):
        subtract_background(ramp, (0.8, 0.8), sigma_mm=0)
    with pytest.raises(PreprocessError, match="spacing"):
        preprocess(ramp, [{"op": "subtract_background", "sigma_mm": 20}])
    done = preprocess(ramp + body, [{"op": "subtract_background", "sigma_mm": 20}], (0.8, 0.8))
    assert np.allclose(done.array, flat)


def test_bad_steps_are_named():
    with pytest.raises(PreprocessError, match="step 2"):
        preprocess(np.zeros((8, 8)), [{"op": "zscore"}, {"op": "sharpen"}])
    with pytest.raises(PreprocessError, match="spacing"):
        preprocess(np.zeros((8, 8)), [{"op": "resample", "target_spacing": 1.0}])
    with pytest.raises(PreprocessError, match="clip_upper"):
        preprocess(np.zeros((8, 8)), [{"op": "clip_upper", "fraction": 0.01}])
