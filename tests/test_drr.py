"""Lateral projections of labelled CTs (DRRs) for training radiograph models."""

import numpy as np
import pytest

from napari_vertebra import make_phantom
from napari_vertebra.core.drr import ProjectionGeometry, lateral_projection
from napari_vertebra.core.labels import SACRUM


@pytest.fixture(scope="module")
def ct_phantom():
    return make_phantom("ct", 3, levels=["L3", "L4", "L5"], with_sacrum=True, spacing=1.5)


def test_true_lateral_projection_keeps_the_geometry_and_labels(ct_phantom):
    image, labels = lateral_projection(ct_phantom.image, ct_phantom.labels)
    ct = ct_phantom.image
    assert image.modality == "XR" and image.ndim == 2
    assert image.shape == labels.shape == ct.shape[:2]
    assert image.spacing == pytest.approx(ct.spacing[:2])
    assert image.array.dtype == np.uint16 and image.array.max() <= 4095
    # Without rotation a pixel takes the body its ray crosses longest, when that is >= 2 mm.
    bodies = ct_phantom.labels.array
    values = [22, 23, 24, SACRUM]
    paths = np.stack([(bodies == v).sum(axis=2) * ct.spacing[2] for v in values])
    expected = np.where(paths.max(axis=0) >= 2.0, np.array(values)[paths.argmax(axis=0)], 0)
    np.testing.assert_array_equal(labels.array, expected)
    assert all((labels.array == v).sum() > 100 for v in values[1:])
    # Bone is bright: a body's centre is brighter than the soft tissue at the front of the field
    # in its row. L5's row: the aorta, which may hold contrast and outshine the cancellous bone
    # of an osteoporotic phantom, ends at L4.
    centre = np.argwhere(labels.array == 24).mean(axis=0).astype(int)
    assert image.array[tuple(centre)] > image.array[centre[0], 0]


def test_random_geometry_magnifies_rotates_and_is_recorded(ct_phantom):
    rng = np.random.default_rng(5)
    geometry = ProjectionGeometry.random(rng)
    image, labels = lateral_projection(ct_phantom.image, ct_phantom.labels, geometry, rng)
    assert image.spacing[0] == pytest.approx(ct_phantom.image.spacing[0] * geometry.magnification)
    assert image.source["drr_geometry"]["axial_rotation_deg"] == geometry.axial_rotation_deg
    assert set(np.unique(labels.array)) == {0, 22, 23, 24, SACRUM}
    straight, _ = lateral_projection(ct_phantom.image, ct_phantom.labels)
    assert not np.array_equal(straight.array, image.array)


def test_projection_refuses_what_it_cannot_project(ct_phantom):
    radiograph = make_phantom("xr", 1)
    with pytest.raises(ValueError, match="CT volume"):
        lateral_projection(radiograph.image, radiograph.labels)
    small = ct_phantom.labels.with_array(ct_phantom.labels.array).array[:-1]
    import dataclasses

    with pytest.raises(ValueError, match="grid"):
        lateral_projection(ct_phantom.image, dataclasses.replace(ct_phantom.labels, array=small))
