"""Level counting from the ribs of a CT (core/ribs.py and its use in levels and measure)."""

import numpy as np
import pytest

from napari_vertebra import make_phantom, read_image
from napari_vertebra.core.image import SpineImage
from napari_vertebra.core.instances import extract_instances
from napari_vertebra.core.labels import SACRUM, level_id, level_name, to_verse
from napari_vertebra.core.levels import assign_levels
from napari_vertebra.core.measure import measure
from napari_vertebra.core.ribs import rib_bearing


def _cut_above(image: SpineImage, labels: np.ndarray, level: str):
    """The CT and labels cut at the first slice of ``level``'s body."""
    stop = int(np.nonzero((labels == level_id(level)).any(axis=(1, 2)))[0].min())
    cut = SpineImage(
        np.ascontiguousarray(image.array[:stop]), image.spacing, "CT", origin=image.origin
    )
    return cut, labels[:stop]


def _painted(image: SpineImage, labels: np.ndarray) -> SpineImage:
    """Labels painted with one value: the levels must be counted."""
    return image.with_array((labels > 0).astype(np.uint8), kind="labels")


@pytest.fixture(scope="module")
def real_bodies(shared_data):
    """The real lumbar CT and its bodies in VerSe IDs (TotalSegmentator's body mask)."""
    folder = shared_data / "ct-lumbar-totalseg"
    ct = read_image(folder / "ct.nii.gz")
    verse = to_verse(
        read_image(folder / "labels_totalseg.nii.gz", kind="labels").array, "totalsegmentator"
    )
    body = read_image(folder / "body_disc_mask.nii.gz", kind="labels").array == 1
    return ct, np.where(body, verse, 0)


def test_the_twelfth_ribs_of_the_real_ct_name_t12_and_find_its_short_sacrum(real_bodies):
    ct, bodies = real_bodies
    found = measure(_painted(ct, bodies), image=ct)
    # Without the ribs this map gave T11-L5, all assumed: the sacrum, cut by the field after
    # 16 slices, is too small to be recognised by its size.
    assert found.table["level"].tolist() == ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert found.table["level_source"].tolist()[:6] == ["ribs"] * 6
    assert found.parameters["rib_votes"] == [True, False, False, False, False, False]
    assert not found.table["qc_flags"].str.contains("level_uncertain").any()
    plain = measure(_painted(ct, bodies), image=ct, count_from_ribs=False)
    assert plain.table["level"].tolist()[0] == "T11"
    assert set(plain.table["level_source"]) == {"assumed"}


def test_the_real_ct_cut_above_l4_is_still_counted_from_its_ribs(real_bodies):
    ct, bodies = real_bodies
    cut, labels = _cut_above(ct, bodies, "L4")
    found = measure(_painted(cut, labels), image=cut)
    assert found.table["level"].tolist() == ["T12", "L1", "L2", "L3"]
    assumed = measure(_painted(cut, labels), image=cut, count_from_ribs=False)
    assert assumed.table["level"].tolist() == ["L2", "L3", "L4", "L5"]


def test_a_map_that_starts_at_l1_is_counted_from_the_twelfth_ribs_above_it(real_bodies):
    ct, bodies = real_bodies
    lumbar = np.where(np.isin(bodies, [level_id("T11"), level_id("T12")]), 0, bodies)
    found = measure(_painted(ct, lumbar), image=ct)
    assert found.parameters["rib_above_first"] is True
    assert found.parameters["rib_votes"] == [False] * 5
    assert found.table["level"].tolist() == ["L1", "L2", "L3", "L4", "L5", "S1"]
    plain = measure(_painted(ct, lumbar), image=ct, count_from_ribs=False)
    assert plain.table["level"].tolist() != found.table["level"].tolist()


def test_the_real_t11_t12_series_shows_t11_ribs_and_leaves_t12_open(shared_data):
    # 20 slices at 2 mm: T11's eleventh ribs run out past the clearance; T12 is cut by the last
    # slice, and its twelfth ribs (TotalSegmentator's rib labels) leave the field 50 mm from
    # the midline, so nothing can be said of it.
    folder = shared_data / "ct-lumbar-totalseg"
    ct = read_image(folder / "dicom_series_T11-T12")
    labels = read_image(folder / "dicom_series_labels_totalseg.nii.gz", kind="labels")
    vertebrae = np.where(np.isin(labels.array, [32, 33]), labels.array, 0)
    instances = extract_instances(
        vertebrae,
        np.array(labels.spacing),
        np.array(labels.origin),
        scheme="totalsegmentator",
        whole_vertebrae=True,
    )
    assert [level_name(i.label) for i in instances] == ["T11", "T12"]
    assert rib_bearing(ct.array, ct.spacing, ct.origin, instances).bodies == [True, None]


def test_a_trunk_phantom_without_its_sacrum_is_counted_from_its_ribs():
    phantom = make_phantom("ct", 5001, surroundings="abdomen")
    truth = [v["level"] for v in phantom.truth["vertebrae"]]
    assert truth[0].startswith("T") and len(truth) >= 5
    cut, labels = _cut_above(phantom.image, phantom.labels.array, truth[-1])
    instances = extract_instances(labels, np.array(cut.spacing), np.array(cut.origin))
    votes = rib_bearing(cut.array, cut.spacing, cut.origin, instances).bodies
    # The last body may touch the cut (its vote is then None: its rib could be out of view).
    assert votes[:-1] == [name.startswith("T") for name in truth[:-2]]
    assert votes[-1] in (False, None)
    found = measure(_painted(cut, labels), image=cut)
    assert found.table["level"].tolist() == truth[:-1]
    # A CT without ribs beside the bodies (the soft tissue of a tight crop) votes "no ribs" only
    # where a rib could have been seen, and then nothing is counted from it.
    boneless = cut.with_array(np.minimum(cut.array, 100.0))
    assert rib_bearing(boneless.array, cut.spacing, cut.origin, instances).bodies == [
        False if seen is not None else None for seen in votes
    ]


def test_the_ct_table_far_behind_the_spine_is_not_taken_for_ribs():
    # Seed 5005 at 2.5 mm: its table, 90-140 mm behind the bodies' centres, crosses the root band
    # in pieces beside L1 and L2; counted as ribs, L1-L4 became T11-L2 with no flag. Its field
    # starts at L1 below the twelfth ribs: nothing tells the level, and the count says so.
    phantom = make_phantom("ct", 5005, surroundings="abdomen")
    cut, labels = _cut_above(phantom.image, phantom.labels.array, "L5")
    found = measure(_painted(cut, labels), image=cut)
    assert found.parameters["rib_votes"][:2] == [False, False]
    assert found.parameters["rib_above_first"] is False
    assert not found.table["level"].str.startswith("T").any()
    assert found.table["qc_flags"].str.contains("level_uncertain").all()


def test_a_semantic_trunk_mask_keeps_every_body_beside_its_unmarked_sacrum():
    # The sacrum's centroid lies far behind the lumbar column's; as a neighbour it once bent the
    # column's line so that T11 and T12 were kept and L1-L5 left out as off the column.
    phantom = make_phantom("ct", 5009, surroundings="abdomen")
    found = measure(_painted(phantom.image, phantom.labels.array))
    assert found.table["level"].tolist() == phantom.truth["levels"]


def _column(
    n: int, last_size: float = 1.0, last_at_border: bool = False, last_value: int | None = None
):
    """``n`` anonymous cube bodies in a column (2 mm voxels), the last ``last_size`` times as
    large, optionally touching the image's border or labelled ``last_value`` as a model's
    sacrum class."""
    size = 10
    extents = [size] * (n - 1) + [int(round(size * last_size))]
    labels = np.zeros((sum(extents) + 4 * n + 4, 30, 30), np.uint8)
    top = 2
    for extent in extents:
        labels[top : top + extent, 10:20, 10:20] = 1
        top += extent + 4
    if last_value is not None:
        labels[top - 4 - extents[-1] : top - 4] *= last_value
    if last_at_border:
        labels = labels[: top - 4 - extents[-1] + 16]  # 1.6 bodies left in view
    return extract_instances(labels, np.full(3, 2.0), sacrum_label=last_value)


def test_ribs_name_l1_without_a_sacrum_and_flag_a_sacrum_count_that_disagrees():
    instances = _column(6)
    levels = assign_levels(instances, ribs=[True, True, False, False, False, False])
    assert [level_name(lv.label) for lv in levels] == ["T11", "T12", "L1", "L2", "L3", "L4"]
    assert {lv.source for lv in levels} == {"ribs"} and not any(lv.uncertain for lv in levels)
    # Thirteen thoracic vertebrae: the last rib-bearing body is T13.
    thirteen = assign_levels(
        _column(6), ribs=[True, True, False, False, False, False], thoracic_count=13
    )
    assert level_name(thirteen[1].label) == "T13"
    # A rib seen above the first body (its vertebra out of view) makes the first body L1.
    above = assign_levels(_column(5), ribs=[False] * 5, rib_above_first=True)
    assert [level_name(lv.label) for lv in above] == ["L1", "L2", "L3", "L4", "L5"]
    assert {lv.source for lv in above} == {"ribs"}
    # A sacrum recognised by its size counts from below; ribs that put L1 elsewhere (a
    # transitional vertebra, 11 or 13 rib pairs) leave the sacrum's count but flag it.
    with_sacrum = _column(7, last_size=3.5)
    votes = [True, True, True, False, False, False, None]
    counted = assign_levels(with_sacrum, ribs=votes)
    assert with_sacrum[-1].label == SACRUM
    assert [level_name(lv.label) for lv in counted] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert all(lv.source == "sacrum" and lv.uncertain for lv in counted)
    agreeing = assign_levels(_column(7, last_size=3.5), ribs=[True, False] + [False] * 4 + [None])
    assert not any(lv.uncertain for lv in agreeing)


def test_ribs_decide_whether_a_large_piece_cut_by_the_border_is_the_sacrum():
    # Cut by the field and larger than a body: once taken for a sacrum from its size alone.
    ribs = [True, True, False, False, False, False]
    instances = _column(6, last_size=3.0, last_at_border=True)
    levels = assign_levels(instances, ribs=ribs)
    assert not instances[-1].is_sacrum
    assert [level_name(lv.label) for lv in levels][-1] == "L4"
    without = _column(6, last_size=3.0, last_at_border=True)
    assert len(assign_levels(without)) == 5 and without[-1].is_sacrum
    # Ribs that leave one piece more than five lumbar vertebrae below T12: it is S1.
    seven = _column(7)
    counted = assign_levels(seven, ribs=[True] + [False] * 6)
    assert seven[-1].label == SACRUM
    assert [level_name(lv.label) for lv in counted] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    # A body-sized piece a model labelled sacrum below anonymous bodies is no firmer a sacrum.
    labelled = _column(6, last_value=SACRUM)
    assert labelled[-1].is_sacrum
    counted = assign_levels(labelled, ribs=[True, True, False, False, False, None])
    assert not labelled[-1].is_sacrum
    assert [level_name(lv.label) for lv in counted] == ["T11", "T12", "L1", "L2", "L3", "L4"]
    large = _column(6, last_size=3.5, last_value=SACRUM)
    kept = assign_levels(large, ribs=[True, True, False, False, False, None])
    assert large[-1].is_sacrum and all(lv.uncertain for lv in kept)
    with pytest.raises(ValueError, match="rib votes"):
        assign_levels(_column(4), ribs=[True, False])


def test_the_command_line_counts_from_the_ribs_unless_told_not_to(shared_data, tmp_path, capsys):
    import nibabel as nib

    from napari_vertebra.cli import main

    folder = shared_data / "ct-lumbar-totalseg"
    mask = nib.load(folder / "body_disc_mask.nii.gz")
    painted = (np.asanyarray(mask.dataobj) == 1).astype(np.uint8)
    nib.save(nib.Nifti1Image(painted, mask.affine), tmp_path / "bodies.nii.gz")
    for options, first, out in (([], "T12", "ribs"), (["--no-ribs"], "T11", "plain")):
        code = main(
            ["measure", str(tmp_path / "bodies.nii.gz"), "--image", str(folder / "ct.nii.gz")]
            + options
            + ["-o", str(tmp_path / out)]
        )
        assert code == 0
        table = (tmp_path / out / "measurements.csv").read_text().splitlines()
        assert table[1].split(",")[0] == first
    assert "level_uncertain" in (tmp_path / "plain" / "measurements.csv").read_text()


def test_a_review_started_with_its_ct_counts_from_the_ribs_and_keeps_that_count(real_bodies):
    from napari_vertebra.core.review import Review

    ct, bodies = real_bodies
    review = Review.start(_painted(ct, bodies), image=ct)
    assert review.table["level"].tolist() == ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    # An edit that recounts (L3 and L4 merged: one body fewer above the sacrum) keeps the
    # ribs' count: L1 is pinned, and the bodies below it are counted down from it.
    l3 = int(review.table.set_index("level").loc["L3", "label"])
    l4 = int(review.table.set_index("level").loc["L4", "label"])
    review.merge(l3, l4)
    assert review.table["level"].tolist() == ["T12", "L1", "L2", "L3", "L4", "S1"]
