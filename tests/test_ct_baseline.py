import numpy as np

from napari_vertebra.core.segment.ct_baseline import (
    BASELINE_PARAMETERS,
    _disc_intervals,
    _split_merged_body,
    _trim_to_endplates,
)


def test_trimming_drops_disc_beyond_the_endplates_but_keeps_bodies_cut_by_the_field():
    body = np.zeros((20, 3, 3), bool)
    bone = np.zeros_like(body)
    body[2:15, 1, 1] = True  # filled column: disc 2-3, endplate 4, marrow 5-11, endplate 12
    bone[4, 1, 1] = bone[12, 1, 1] = True
    body[0:8, 0, 0] = True  # cut by the top of the field: marrow 0-5, endplate 6, disc 7
    bone[6, 0, 0] = True
    body[5:9, 2, 2] = True  # a column with no bone at all (a filled gap): dropped
    trimmed = _trim_to_endplates(body, bone)
    assert np.flatnonzero(trimmed[:, 1, 1]).tolist() == list(range(4, 13))
    assert np.flatnonzero(trimmed[:, 0, 0]).tolist() == list(range(0, 7))
    assert not trimmed[:, 2, 2].any()


def test_a_column_without_bone_inside_the_body_takes_its_neighbours_ends():
    body = np.zeros((12, 5, 5), bool)
    body[1:11] = True
    bone = np.zeros_like(body)
    bone[2], bone[9] = True, True  # endplates
    bone[2, 2, 2] = bone[9, 2, 2] = False  # a thin endplate missed by the threshold
    trimmed = _trim_to_endplates(body, bone)
    assert np.flatnonzero(trimmed[:, 2, 2]).tolist() == list(range(2, 10))


def _stack_of_bodies(heights_mm, disc_mm, spacing=1.5, marrow_hu=50.0, disc_hu=75.0):
    """HU column and body mask of bodies with bright endplates and discs between them."""
    rows = []
    for k, height in enumerate(heights_mm):
        n = int(round(height / spacing))
        rows += [300.0] + [marrow_hu] * (n - 2) + [300.0]
        if k < len(heights_mm) - 1:
            rows += [disc_hu] * int(round(disc_mm / spacing))
    hu = np.tile(np.array(rows)[:, None, None], (1, 12, 12))
    bone = hu > 110
    body = np.zeros(hu.shape, bool)
    body[:, 2:10, 2:10] = True
    return hu, bone, body


def test_disc_intervals_find_the_discs_between_endplate_peaks_in_dark_marrow():
    hu, _, _ = _stack_of_bodies([27, 27, 27], disc_mm=10.5)
    profile = hu[:, 6, 6]
    discs = _disc_intervals(profile, 1.5, BASELINE_PARAMETERS)
    # Bodies are 18 rows, discs 7: the discs are rows 18-24 and 43-49.
    assert discs == [(18, 24), (43, 49)]


def test_a_body_holding_three_vertebrae_is_split_at_its_discs_and_a_single_one_is_not():
    hu, bone, body = _stack_of_bodies([27, 27, 27], disc_mm=10.5)
    profile = hu[:, 6, 6]
    spacing = np.array([1.5, 1.5, 1.5])
    pieces = _split_merged_body(body, bone, profile, spacing, 40.0, BASELINE_PARAMETERS)
    assert [np.flatnonzero(p.any(axis=(1, 2))).tolist() for p in pieces] == [
        list(range(0, 18)),
        list(range(25, 43)),
        list(range(50, 68)),
    ]
    one, one_bone, one_body = _stack_of_bodies([30], disc_mm=0)
    alone = _split_merged_body(one_body, one_bone, one[:, 6, 6], spacing, 40.0, BASELINE_PARAMETERS)
    assert len(alone) == 1 and np.array_equal(alone[0], one_body)
