import numpy as np
import pytest

from napari_vertebra.core import labels


def test_names_and_ids_round_trip():
    expected = {
        1: "C1",
        7: "C7",
        8: "T1",
        19: "T12",
        20: "L1",
        24: "L5",
        25: "L6",
        26: "S1",
        28: "T13",
    }
    for label, name in expected.items():
        assert labels.level_name(label) == name
        assert labels.level_id(name) == label
        assert labels.level_id(name.lower()) == label
    assert labels.level_id("sacrum") == 26


def test_unknown_ids_are_rejected():
    for bad in (0, 27, 29, 100):
        with pytest.raises(KeyError):
            labels.level_name(bad)
    with pytest.raises(KeyError):
        labels.level_id("L9")


def test_craniocaudal_order_puts_transitional_levels_in_place():
    order = [labels.level_name(v) for v in labels.CRANIOCAUDAL_ORDER]
    assert order.index("T12") + 1 == order.index("T13")
    assert order.index("T13") + 1 == order.index("L1")
    assert order.index("L5") + 1 == order.index("L6")
    assert order[-1] == "S1"
    assert sorted([24, 20, 26, 28, 19], key=labels.craniocaudal_rank) == [19, 28, 20, 24, 26]


def test_totalsegmentator_conversion_matches_the_published_table():
    # TotalSegmentator v2: 25 sacrum, 26 S1, 27 L5 ... 31 L1, 32 T12 ... 43 T1, 44 C7 ... 50 C1.
    expected = {
        25: "S1",
        26: "S1",
        27: "L5",
        31: "L1",
        32: "T12",
        33: "T11",
        43: "T1",
        44: "C7",
        50: "C1",
    }
    for class_id, name in expected.items():
        assert labels.totalsegmentator_to_verse(class_id) == labels.level_id(name)
    for not_vertebra in (0, 1, 5, 24, 51, 79):
        assert labels.totalsegmentator_to_verse(not_vertebra) == 0


def test_to_verse_converts_arrays_and_drops_other_structures():
    totalseg = np.array([[0, 5, 27], [31, 32, 79]])
    assert labels.to_verse(totalseg, "totalsegmentator").tolist() == [[0, 0, 24], [20, 19, 0]]
    verse = np.array([[0, 20, 26], [28, 27, 30]])
    assert labels.to_verse(verse, "verse").tolist() == [[0, 20, 26], [28, 0, 0]]
    with pytest.raises(ValueError, match="unknown label scheme"):
        labels.to_verse(verse, "nnunet")


def test_present_levels_sorted_head_to_feet():
    arr = np.array([26, 20, 0, 19, 28, 24])
    assert [labels.level_name(v) for v in labels.present_levels(arr)] == [
        "T12",
        "T13",
        "L1",
        "L5",
        "S1",
    ]
