"""Corrections of an analysis (Qt-free): landmarks, levels and bodies, and the table after each."""

import numpy as np
import pytest

from napari_vertebra import make_phantom
from napari_vertebra.core.labels import level_id
from napari_vertebra.core.measure import measure
from napari_vertebra.core.morphometry import genant_grade, vertebral_compression_ratio
from napari_vertebra.core.review import Review


@pytest.fixture
def review():
    phantom = make_phantom("xr", seed=1)  # T10-L4, T11 wedge-fractured, no sacrum
    return Review.start(phantom.labels)


def _row(review, level):
    table = review.table.set_index("level")
    return table.loc[level]


def test_moving_a_landmark_changes_height_vcr_of_it_and_its_neighbours_and_grade(review):
    before = review.table.set_index("level")
    marks = review.measurement.geometry["L2"].landmarks
    # Lower the upper anterior corner of L2 halfway towards the lower one: AVH halves.
    moved = marks["upper_anterior"] + 0.5 * (marks["lower_anterior"] - marks["upper_anterior"])
    review.move_landmarks({"L2": {"upper_anterior": moved}})
    after = review.table.set_index("level")

    new_height = float(np.linalg.norm(marks["lower_anterior"] - moved))
    assert after.loc["L2", "anterior_height_mm"] == pytest.approx(new_height, abs=1e-3)
    assert new_height == pytest.approx(before.loc["L2", "anterior_height_mm"] / 2, rel=0.02)
    # Middle and posterior heights are distances between their own (unmoved) landmarks.
    for name in ("middle", "posterior"):
        expected = np.linalg.norm(marks[f"lower_{name}"] - marks[f"upper_{name}"])
        assert after.loc["L2", f"{name}_height_mm"] == pytest.approx(expected, abs=1e-3)
    # VCR (seed 000, eq. 2) of L2 and of both neighbours, which use L2's anterior height.
    avh = after["anterior_height_mm"]
    for upper, middle, lower in (("L1", "L2", "L3"), ("L2", "L3", "L4"), ("T12", "L1", "L2")):
        vcr = vertebral_compression_ratio(avh[upper], avh[middle], avh[lower])
        assert after.loc[middle, "vcr_percent"] == pytest.approx(vcr, abs=1e-2)
    assert after.loc["L1", "vcr_percent"] != pytest.approx(before.loc["L1", "vcr_percent"])
    # Grade from the worst height loss against the neighbours' reference (Genant).
    loss = 1 - avh["L2"] / after.loc["L2", "expected_anterior_height_mm"]
    assert after.loc["L2", "genant_grade"] == genant_grade(loss) == 3
    assert before.loc["L2", "genant_grade"] == 0
    assert after.loc["L2", "fracture_type"] == "wedge"
    assert "landmarks_edited" in after.loc["L2", "qc_flags"]
    assert "landmarks_edited" not in after.loc["L3", "qc_flags"]
    # Moving it back restores the original figures.
    review.move_landmarks({"L2": {"upper_anterior": marks["upper_anterior"]}})
    restored = review.table.set_index("level")
    assert restored.loc["L2", "genant_grade"] == 0
    assert restored.loc["L2", "anterior_height_mm"] == pytest.approx(
        before.loc["L2", "anterior_height_mm"], abs=0.05
    )


def test_shifting_levels_renames_every_body_and_keeps_its_measurements(review):
    before = review.table
    review.shift_levels(+1)
    after = review.table
    assert after["level"].tolist() == ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    assert before["level"].tolist() == ["T10", "T11", "T12", "L1", "L2", "L3", "L4"]
    assert after["label"].tolist() == [level_id(v) for v in after["level"]]
    assert set(np.unique(review.labels.array)) == {0, *after["label"]}
    assert (after["level_source"] == "shifted").all()
    np.testing.assert_allclose(after["anterior_height_mm"], before["anterior_height_mm"])
    assert after["genant_grade"].tolist() == before["genant_grade"].tolist()
    review.shift_levels(-1)
    assert review.table["level"].tolist() == before["level"].tolist()
    with pytest.raises(ValueError, match="outside"):
        review.shift_levels(-30)


def test_setting_one_level_counts_the_others_from_it(review):
    review.set_level(level_id("L1"), "L2")  # the fourth body is L2
    assert review.table["level"].tolist() == ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    assert review.pinned == (level_id("L2"), "L2")
    # Later edits count from the pinned vertebra: deleting the top body keeps L2 where it is.
    review.delete(level_id("T11"))
    assert review.table["level"].tolist() == ["T12", "L1", "L2", "L3", "L4", "L5"]


def test_landmarks_moved_by_hand_survive_edits_of_other_bodies(review):
    marks = review.measurement.geometry["L3"].landmarks
    moved = marks["upper_middle"] + np.array([2.0, 0.0])
    review.move_landmarks({"L3": {"upper_middle": moved}})
    review.delete(level_id("T10"))  # another body
    np.testing.assert_allclose(review.measurement.geometry["L3"].landmarks["upper_middle"], moved)
    assert "landmarks_edited" in _row(review, "L3")["qc_flags"]


def test_merge_and_split_change_the_bodies_and_recount_from_the_pinned_top(review):
    count = len(review.table)
    assert review.body_below(level_id("L1")) == level_id("L2")
    with pytest.raises(ValueError, match="no vertebral body below"):
        review.body_below(level_id("L4"))
    review.merge(level_id("L1"), level_id("L2"))
    assert len(review.table) == count - 1
    assert review.table["level"].tolist() == ["T10", "T11", "T12", "L1", "L2", "L3"]
    merged = _row(review, "L1")
    review.split(level_id("L1"))
    assert len(review.table) == count
    assert review.table["level"].tolist() == ["T10", "T11", "T12", "L1", "L2", "L3", "L4"]
    assert _row(review, "L1")["anterior_height_mm"] < merged["anterior_height_mm"] / 1.5
    with pytest.raises(ValueError, match="no vertebral body"):
        review.split(99)


def test_painting_a_new_body_adds_it_in_order(review):
    labels = review.labels.array.copy()
    # Erase L3 and paint it back with an unused value: it comes back as L3.
    region = labels == level_id("L3")
    labels[region] = 0
    review.replace_labels(labels)
    assert "L3" in review.table["level"].tolist()  # L4 moved up: counted from the top
    labels = review.labels.array.copy()
    labels[region] = 77
    review.replace_labels(labels)
    assert review.table["level"].tolist() == ["T10", "T11", "T12", "L1", "L2", "L3", "L4"]
    assert np.array_equal(review.labels.array == level_id("L3"), region)


def test_review_of_a_map_counted_from_the_sacrum_recounts_from_it():
    phantom = make_phantom("xr", seed=3)
    levels = [v["level"] for v in phantom.truth["vertebrae"]]
    assert phantom.truth["sacrum"], "this phantom must show the sacrum"
    review = Review.start(phantom.labels)
    assert review.pinned is None
    top = levels[0]
    review.delete(level_id(top))
    assert review.table["level"].tolist()[:-1] == levels[1:]
    assert review.table["level"].iloc[-1] == "S1"


def test_unknown_options_and_wrong_shapes_are_refused(review):
    with pytest.raises(TypeError, match="unknown level options"):
        Review.start(review.labels, shift=1)
    with pytest.raises(ValueError, match="replace a map"):
        review.replace_labels(np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown landmark"):
        review.move_landmarks({"L1": {"apex": [0.0, 0.0]}})


def test_measurement_with_landmarks_leaves_the_original_alone():
    phantom = make_phantom("xr", seed=1)
    original = measure(phantom.labels)
    heights = original.table["anterior_height_mm"].copy()
    point = original.geometry["L1"].landmarks["lower_posterior"] + np.array([3.0, 0.0])
    edited = original.with_landmarks({"L1": {"lower_posterior": point}})
    assert original.table["anterior_height_mm"].equals(heights)
    assert edited.table.set_index("level").loc["L1", "posterior_height_mm"] != pytest.approx(
        original.table.set_index("level").loc["L1", "posterior_height_mm"]
    )
    with pytest.raises(ValueError, match="no measured vertebra"):
        original.with_landmarks({"C2": {"lower_posterior": point}})


def test_fracture_report_lists_graded_vertebrae_from_the_chosen_grade(review):
    from napari_vertebra.core.measure import fracture_report

    lines = fracture_report(review.table)
    kind = review.table.set_index("level").loc["T11", "fracture_type"]
    assert len(lines) == 1 and lines[0].startswith(f"T11: grade 3 (severe), {kind}, height loss")
    assert fracture_report(review.table, minimum_grade=3) == lines
    table = review.table.copy()
    table.loc[table["level"] == "T11", "genant_grade"] = 1
    assert fracture_report(table, minimum_grade=2) == []
