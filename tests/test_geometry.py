import itertools

import numpy as np
import pytest

from napari_vertebra.core.geometry import (
    axis_codes_from_directions,
    canonical_affine,
    geometry_from_affine,
)

_RAS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


def _affine_for(codes, spacing, origin):
    affine = np.eye(4)
    affine[:3, :3] = 0
    for k, code in enumerate(codes):
        axis, sign = _RAS[code]
        affine[axis, k] = sign * spacing[k]
    affine[:3, 3] = origin
    return affine


ALL_ORIENTATIONS = [
    tuple(pair[k] for pair, k in zip(axes, flips, strict=True))
    for axes in itertools.permutations([("R", "L"), ("A", "P"), ("S", "I")])
    for flips in itertools.product((0, 1), repeat=3)
]


@pytest.mark.parametrize("codes", ALL_ORIENTATIONS, ids="".join)
def test_every_orientation_becomes_IPL_with_the_same_patient_geometry(codes):
    spacing = (0.8, 1.3, 2.1)
    shape = (5, 7, 9)
    affine = _affine_for(codes, spacing, origin=(10.0, -20.0, 30.0))
    transform, canon_codes, canon_spacing, origin = geometry_from_affine(affine, shape)
    assert canon_codes == ("I", "P", "L")
    data = np.arange(np.prod(shape)).reshape(shape)
    canon = transform.to_canonical(data)
    assert np.array_equal(transform.to_source(canon), data)
    canon_aff = canonical_affine(affine, transform, shape)
    # The same voxel value sits at the same patient position in both arrays.
    rng = np.random.default_rng(0)
    for _ in range(20):
        c = rng.integers(0, canon.shape)
        src = transform.index_matrix(shape) @ np.append(c, 1)
        assert data[tuple(src[:3].astype(int))] == canon[tuple(c)]
        assert np.allclose(canon_aff @ np.append(c, 1), affine @ np.append(src[:3], 1))
    # Canonical axes point I, P, L with the spacing of the matching source axis.
    assert np.allclose(np.diag(canon_aff[[2, 1, 0], :3]), -np.array(canon_spacing))
    assert sorted(canon_spacing) == sorted(spacing)
    # World origin is the first canonical voxel's patient position along I, P, L.
    first = canon_aff[:3, 3]
    assert np.allclose(origin, [-first[2], -first[1], -first[0]])


def test_slightly_oblique_directions_get_their_nearest_codes():
    angle = np.radians(5)
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    assert axis_codes_from_directions(rot) == ("R", "A", "S")
    assert axis_codes_from_directions(-rot[:, [1, 2, 0]]) == ("P", "I", "L")


def test_degenerate_affine_is_refused():
    affine = np.eye(4)
    affine[2, 2] = 0
    with pytest.raises(ValueError):
        geometry_from_affine(affine, (4, 4, 4))
    affine = np.eye(4)
    affine[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        geometry_from_affine(affine, (4, 4, 4))


def test_two_dimensional_sagittal_image_becomes_inferior_posterior():
    # Stored with rows going anterior and columns going superior (a transposed lateral film).
    affine = _affine_for(("A", "S", "L"), (0.2, 0.3, 1.0), (0, 0, 0))
    transform, codes, spacing, _ = geometry_from_affine(affine, (10, 20))
    assert codes == ("I", "P")
    assert spacing == pytest.approx((0.3, 0.2))
    data = np.arange(200).reshape(10, 20)
    canon = transform.to_canonical(data)
    assert canon.shape == (20, 10)
    assert canon[0, 0] == data[9, 19]  # most superior row first, most anterior column first
