import numpy as np

from napari_vertebra.core.segment.ct_baseline import _trim_to_endplates


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
