"""Phantom ground truth is self-consistent and agrees with the rendered label maps."""

import json

import numpy as np
import pytest
from scipy import ndimage

from napari_vertebra import make_phantom, read_image
from napari_vertebra.cli import main
from napari_vertebra.core.labels import level_id
from napari_vertebra.core.phantom import GRADE_LOSS_RANGE, LANDMARK_NAMES, genant_grade_of_loss
from napari_vertebra.core.phantom.render import cortex_layer

PAIRS = [
    ("upper_anterior", "lower_anterior", "anterior_height_mm"),
    ("upper_middle", "lower_middle", "middle_height_mm"),
    ("upper_posterior", "lower_posterior", "posterior_height_mm"),
]


def _xr(seed, **kw):
    return make_phantom("xr", seed, spacing=kw.pop("spacing", 0.4), **kw)


def _ct(seed, **kw):
    return make_phantom("ct", seed, spacing=kw.pop("spacing", (2.0, 1.5, 1.5)), **kw)


@pytest.fixture(scope="module")
def phantoms():
    return [_xr(s, fracture_rate=0.5) for s in range(6)] + [
        _ct(s, fracture_rate=0.5) for s in range(2)
    ]


def test_landmark_distances_equal_the_stated_heights(phantoms):
    for phantom in phantoms:
        for v in phantom.truth["vertebrae"]:
            marks = {k: np.array(p) for k, p in v["landmarks"].items()}
            assert set(marks) == set(LANDMARK_NAMES)
            for upper, lower, key in PAIRS:
                assert np.linalg.norm(marks[lower] - marks[upper]) == pytest.approx(
                    v[key], abs=1e-3
                )


def _losses(v):
    ref = v["reference_heights_mm"]
    return {side: 1 - v[f"{side}_height_mm"] / ref[side] for side in ref}


def test_fracture_heights_match_grade_and_type():
    seen = set()
    for seed in range(40):
        phantom = _xr(seed, fracture_rate=0.6, spacing=0.8)
        for v in phantom.truth["vertebrae"]:
            loss = _losses(v)
            worst = max(loss.values())
            assert 100 * worst == pytest.approx(v["height_loss_percent"], abs=1e-2)
            assert genant_grade_of_loss(worst) == v["genant_grade"]
            if v["genant_grade"] == 0:
                assert v["fracture_type"] == "none"
                assert v["anterior_height_mm"] / v["posterior_height_mm"] > 0.9
                continue
            low, high = GRADE_LOSS_RANGE[v["genant_grade"]]
            assert low <= worst <= high
            kind = v["fracture_type"]
            seen.add((v["genant_grade"], kind))
            if kind == "wedge":  # anterior height loss most prominent
                assert loss["anterior"] == worst > loss["middle"] > loss["posterior"]
            elif kind == "biconcave":  # central loss, almost equal anterior and posterior
                assert loss["middle"] == worst
                assert abs(loss["anterior"] - loss["posterior"]) <= 0.2 * worst
            else:  # crush: posterior loss most prominent or uniform loss
                assert loss["posterior"] == worst
                assert loss["anterior"] >= 0.75 * worst - 1e-9
    assert len(seen) == 9, f"not every grade and type was drawn: {sorted(seen)}"


def test_explicit_fractures_and_vcr():
    phantom = _xr(
        3, levels=["T12", "L1", "L2", "L3"], with_sacrum=False, fractures={"L1": (3, "wedge")}
    )
    by_level = {v["level"]: v for v in phantom.truth["vertebrae"]}
    l1 = by_level["L1"]
    assert l1["genant_grade"] == 3 and l1["fracture_type"] == "wedge"
    v1, v2, v3 = (by_level[k]["anterior_height_mm"] for k in ("T12", "L1", "L2"))
    assert l1["vcr_percent"] == pytest.approx(100 * (1 - v2 / ((v1 + v3) / 2)), abs=1e-3)
    assert l1["vcr_percent"] > 35
    assert "vcr_percent" not in by_level["T12"]  # no upper neighbour
    with pytest.raises(ValueError):
        _xr(3, fractures={"L1": (4, "wedge")})
    with pytest.raises(ValueError):
        _xr(3, levels=["L1", "L3"])


def _pixel(point, spacing):
    return tuple(np.round(np.asarray(point) / np.asarray(spacing)).astype(int))


def test_landmarks_sit_on_the_label_boundary(phantoms):
    for phantom in phantoms:
        labels, spacing = phantom.labels.array, np.array(phantom.image.spacing)
        step = float(spacing.max())
        for v in phantom.truth["vertebrae"]:
            if not v["fully_visible"]:
                continue
            e_cc = np.array(v["axes"]["cranio_caudal"])
            e_ap = np.array(v["axes"]["anterior_posterior"])
            for name, point in v["landmarks"].items():
                # Inward: towards the other endplate, and away from the wall for corner points.
                vertical = e_cc if name.startswith("upper") else -e_cc
                horizontal = {"anterior": e_ap, "middle": 0 * e_ap, "posterior": -e_ap}[
                    name.split("_")[1]
                ]
                inside = np.array(point) + 1.6 * step * (vertical + horizontal)
                outside = np.array(point) - 1.6 * step * vertical
                assert labels[_pixel(inside, spacing)] == v["label"], (v["level"], name)
                assert labels[_pixel(outside, spacing)] != v["label"], (v["level"], name)


def test_label_run_length_matches_middle_height():
    phantom = _xr(5, spacing=0.25, tilt_deg=0.0, curvature_deg=0.0, crop_top=False)
    labels = phantom.labels.array
    for v in phantom.truth["vertebrae"]:
        if not v["fully_visible"]:
            continue
        top, bottom = (
            np.array(v["landmarks"]["upper_middle"]),
            np.array(v["landmarks"]["lower_middle"]),
        )
        samples = np.linspace(top - (bottom - top) * 0.2, bottom + (bottom - top) * 0.2, 2000)
        hits = [labels[_pixel(p, phantom.image.spacing)] == v["label"] for p in samples]
        length = np.count_nonzero(hits) / len(samples) * 1.4 * v["middle_height_mm"]
        assert length == pytest.approx(v["middle_height_mm"], abs=0.5)


def test_levels_and_sacrum_in_labels(phantoms):
    for phantom in phantoms:
        truth = phantom.truth
        present = set(np.unique(phantom.labels.array)) - {0}
        expected = {v["label"] for v in truth["vertebrae"]}
        if truth["sacrum"] is not None:
            expected.add(26)
            assert truth["levels"][-1] == "S1"
        assert expected == present
        whole = phantom.vertebrae.array
        for v in truth["vertebrae"]:  # whole vertebrae contain the bodies and more
            body = phantom.labels.array == v["label"]
            assert np.all(whole[body] == v["label"])
            assert np.count_nonzero(whole == v["label"]) > 1.2 * np.count_nonzero(body)


def test_same_seed_same_phantom_and_rotation_keeps_heights():
    a, b = _ct(11, axial_rotation_deg=0.0), _ct(11, axial_rotation_deg=0.0)
    assert np.array_equal(a.image.array, b.image.array)
    assert a.truth == b.truth
    rotated = _ct(11, axial_rotation_deg=12.0)
    for v0, v1 in zip(a.truth["vertebrae"], rotated.truth["vertebrae"], strict=True):
        assert v0["anterior_height_mm"] == v1["anterior_height_mm"]
        assert v0["axes"]["anterior_posterior"] != v1["axes"]["anterior_posterior"]
    assert not np.array_equal(a.labels.array, rotated.labels.array)


def test_ct_intensities_are_hounsfield_like():
    phantom = _ct(2)
    hu, labels = phantom.image.array, phantom.labels.array
    bone = hu[(labels > 0) & (labels < 26)]
    assert phantom.image.array.dtype == np.int16
    assert 40 < np.median(bone) < 400
    assert np.median(hu[labels == 0]) < 100
    assert hu.min() <= -900  # air behind the back


def test_cortex_layer_is_the_surface_share_per_axis():
    mask = np.zeros((5, 6, 6), bool)
    mask[1:4, 1:5, 1:5] = True
    layer = cortex_layer(mask, np.array([1.0, 2.0, 4.0]))
    assert layer[2, 2, 2] == 0  # inside
    assert layer[1, 2, 2] == pytest.approx(1.0)  # top face: across a 1 mm voxel
    assert layer[2, 1, 2] == pytest.approx(0.5)
    assert layer[2, 2, 1] == pytest.approx(0.25)
    assert layer[1, 1, 1] == pytest.approx(1.75)  # a corner meets the outside on three axes
    assert not layer[~mask].any()


def _surface_contrast(hu, mask, spacing):
    """Median HU of a mask's outer voxel layer minus that of its core (deeper than 2.5 voxels)."""
    depth = ndimage.distance_transform_edt(mask, sampling=spacing)
    step = float(np.min(spacing))
    return float(
        np.median(hu[mask & (depth <= 1.05 * step)]) - np.median(hu[mask & (depth > 2.5 * step)])
    )


def test_ct_cortex_looks_like_the_real_scans_at_their_voxel_sizes(shared_data):
    """Calibration: the bodies' bright rim against their cancellous core, at 1.5 mm (TPTBox
    crop, its body sub-regions) and 3 mm (the lumbar CT, its body mask); a thin cortex at a
    coarser voxel adds less, by partial volume, in the phantoms as in the real scans."""
    crop = shared_data / "ct-crop-tptbox"
    real_fine = read_image(crop / "sub-ct_label-22_ct.nii.gz")
    regions = read_image(crop / "sub-ct_seg-subreg_label-22_msk.nii.gz").array
    lumbar = shared_data / "ct-lumbar-totalseg"
    real_coarse = read_image(lumbar / "ct.nii.gz")
    body_disc = read_image(lumbar / "body_disc_mask.nii.gz").array
    real = {
        1.5: _surface_contrast(real_fine.array, np.isin(regions, (49, 50)), real_fine.spacing),
        3.0: _surface_contrast(real_coarse.array, body_disc == 1, real_coarse.spacing),
    }
    levels = ["L1", "L2", "L3", "L4", "L5"]
    for spacing, real_contrast in real.items():
        contrasts = []
        for seed in (0, 1):
            phantom = make_phantom("ct", seed, spacing=spacing, levels=levels, fracture_rate=0)
            bodies = (phantom.labels.array > 0) & (phantom.labels.array < 26)
            contrasts.append(_surface_contrast(phantom.image.array, bodies, (spacing,) * 3))
            if spacing > 2:
                continue  # posterior elements are too thin for a core at 3 mm
            # Posterior elements: a cortical rim around cancellous bone, as in the real crop.
            arches = (phantom.vertebrae.array > 0) & (phantom.labels.array == 0)
            assert _surface_contrast(phantom.image.array, arches, (spacing,) * 3) > 100
        assert 0.5 * real_contrast < np.mean(contrasts) < 2.0 * real_contrast, (spacing, real)
    assert real[1.5] > 1.5 * real[3.0]


def test_cli_writes_cases_that_read_back(tmp_path):
    out = tmp_path / "cases"
    assert (
        main(
            [
                "phantom",
                "--modality",
                "xr",
                "--n",
                "2",
                "--seed",
                "4",
                "--spacing",
                "0.5",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "phantom",
                "--modality",
                "ct",
                "--n",
                "1",
                "--seed",
                "4",
                "--spacing",
                "2",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    cases = sorted(p.name for p in out.iterdir())
    assert cases == ["ct-s4-0000", "xr-s4-0000", "xr-s4-0001"]
    for case in cases:
        folder = out / case
        truth = json.loads((folder / "truth.json").read_text())
        image = read_image(folder / "image.nii.gz")
        labels = read_image(folder / "labels.nii.gz")
        assert image.spacing == pytest.approx(truth["spacing_mm"])
        assert image.modality == truth["modality"] and labels.kind == "labels"
        assert list(image.shape) == truth["shape"] and image.axis_codes == tuple(
            truth["axis_codes"]
        )
        assert image.origin == pytest.approx((0.0,) * image.ndim)
        for v in truth["vertebrae"]:
            assert {
                "level",
                "label",
                "landmarks",
                "anterior_height_mm",
                "middle_height_mm",
                "posterior_height_mm",
                "genant_grade",
                "fracture_type",
            } <= set(v)
            assert level_id(v["level"]) == v["label"]
    # Same command again: refused, nothing overwritten; with --overwrite the same bytes.
    before = (out / "xr-s4-0000" / "image.nii.gz").read_bytes()
    one_case = ["phantom", "--modality", "xr", "--n", "1", "--seed", "4", "--spacing", "0.5"]
    assert main([*one_case, "-o", str(out)]) == 1
    assert (out / "xr-s4-0000" / "image.nii.gz").read_bytes() == before
    assert main([*one_case, "-o", str(out), "--overwrite"]) == 0
    again = read_image(out / "xr-s4-0000" / "image.nii.gz").array
    assert np.array_equal(again, read_image_from_bytes(before, tmp_path))


def read_image_from_bytes(raw: bytes, tmp_path):
    path = tmp_path / "copy.nii.gz"
    path.write_bytes(raw)
    return read_image(path).array


def test_cervical_levels_make_a_twenty_vertebra_column():
    levels = [f"C{i}" for i in range(5, 8)]
    levels += [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    phantom = make_phantom("xr", 3, levels=levels, with_sacrum=True, fracture_rate=0.0)
    assert phantom.truth["levels"] == levels + ["S1"]
    heights = {v["level"]: v["middle_height_mm"] for v in phantom.truth["vertebrae"]}
    # Cervical bodies are lower than the lumbar ones, as in the typical adult spine.
    assert max(heights[f"C{i}"] for i in (5, 6, 7)) < min(heights[f"L{i}"] for i in range(1, 6))
    with pytest.raises(ValueError, match="between C3 and L5"):
        make_phantom("xr", 3, levels=["C2", "C3"])


@pytest.fixture(scope="module")
def trunk():
    levels = ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    return make_phantom("ct", 3, surroundings="abdomen", levels=levels, with_sacrum=True)


def _lateral_bone(phantom, rows):
    """Bone voxels (> 300 HU) outside every vertebra, more than 60 mm left or right of the
    spine's midline, within ``rows`` of the volume."""
    hu, vertebrae = phantom.image.array, phantom.vertebrae.array
    spine_w = np.argwhere(phantom.labels.array > 0)[:, 2].mean()
    w_mm = (np.arange(hu.shape[2]) - spine_w) * phantom.image.spacing[2]
    lateral = np.abs(w_mm) > 60
    bone = (hu[rows] > 300) & (vertebrae[rows] == 0)
    return int(bone[:, :, lateral].sum())


def test_abdomen_surroundings_add_trunk_gas_ribs_and_pelvis(trunk):
    from scipy import ndimage

    hu, labels = trunk.image.array, trunk.labels.array
    spacing = np.asarray(trunk.image.spacing)
    assert trunk.truth["parameters"]["surroundings"] == "abdomen"
    assert np.all((spacing >= 1.5) & (spacing <= 3.0))  # a routine abdominal CT
    assert hu.shape[2] * spacing[2] >= 240  # the whole trunk from flank to flank
    present = set(np.unique(labels)) - {0}
    assert present == {level_id(n) for n in ("T11", "T12", "L1", "L2", "L3", "L4", "L5")} | {26}
    # Bowel gas inside the trunk, not only the air around it.
    trunk_mask = np.stack([ndimage.binary_fill_holes(s > -500) for s in hu])
    assert ((hu < -800) & trunk_mask).sum() * spacing.prod() > 1000  # mm³
    # Ribs beside T11-T12 and iliac wings beside L5 and the sacrum: unlabelled lateral bone.
    rows_of = {k: np.argwhere(labels == level_id(k))[:, 0] for k in ("T11", "T12", "L5")}
    thoracic = slice(rows_of["T11"].min(), rows_of["T12"].max() + 1)
    pelvic = slice(rows_of["L5"].min(), hu.shape[0])
    assert _lateral_bone(trunk, thoracic) > 20
    assert _lateral_bone(trunk, pelvic) > 200


def test_oral_contrast_fills_bowel_pockets_in_front_of_the_spine():
    from napari_vertebra.core.phantom.abdomen import _paint_gas

    axes = [np.arange(0, 120, 2.0), np.arange(-150, 150, 2.0), np.arange(-100, 100, 2.0)]
    shape = tuple(len(a) for a in axes)
    filled = {}
    for oral_contrast in (False, True):
        hu = np.full(shape, 35.0)
        rng = np.random.default_rng(1)
        _paint_gas(hu, np.ones(shape, bool), 60.0, 40.0, axes, 20, rng, oral_contrast)
        filled[oral_contrast] = hu
    assert not ((filled[False] >= 150) & (filled[False] <= 450)).any()
    contrast = (filled[True] >= 150) & (filled[True] <= 450)
    assert contrast.sum() > 100 and (filled[True] < -900).any()  # both contrast and gas
    # Pocket centres lie 10 mm ahead of the bodies' front (v = 60 - 20); radii are at most 24 mm.
    assert not contrast[:, axes[1] >= 60.0 - 40.0 / 2 - 10 + 24].any()


def test_spine_phantoms_show_ribs_and_iliac_wings_beside_the_spine_and_abdomen_is_ct_only():
    levels = ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    spine = _ct(4, levels=levels, with_sacrum=True)
    assert spine.truth["parameters"]["surroundings"] == "spine"
    hu, labels = spine.image.array, spine.labels.array
    assert 120 <= hu.shape[2] * spine.image.spacing[2] <= 240  # a spine CT's field, not a trunk
    rows_of = {k: np.argwhere(labels == level_id(k))[:, 0] for k in ("T11", "T12", "L2", "L5")}
    thoracic = slice(rows_of["T11"].min(), rows_of["T12"].max() + 1)
    assert _lateral_bone(spine, thoracic) > 20  # the ribs' necks
    assert _lateral_bone(spine, slice(rows_of["L2"].min(), rows_of["L2"].max() + 1)) == 0
    assert _lateral_bone(spine, slice(rows_of["L5"].min(), hu.shape[0])) > 200  # iliac wings
    # No CT table behind the back: air there, as before.
    assert (hu[:, -1, :] < -900).mean() > 0.5
    with pytest.raises(ValueError, match="CT phantoms only"):
        make_phantom("xr", 0, surroundings="abdomen")
    with pytest.raises(ValueError, match="surroundings"):
        make_phantom("ct", 0, surroundings="pelvis")


def test_cli_writes_abdomen_phantoms_and_refuses_them_for_radiographs(tmp_path, capsys):
    out = tmp_path / "trunks"
    args = ["phantom", "--modality", "ct", "--seed", "1", "--spacing", "3", "-o", str(out)]
    assert main([*args, "--surroundings", "abdomen"]) == 0
    (case,) = sorted(out.iterdir())
    image = read_image(case / "image.nii.gz")
    truth = json.loads((case / "truth.json").read_text())
    assert truth["parameters"]["surroundings"] == "abdomen"
    assert image.shape[2] * image.spacing[2] >= 240
    bad = ["phantom", "--modality", "xr", "--surroundings", "abdomen", "-o", str(tmp_path / "x")]
    assert main(bad) == 1
    assert "CT phantoms only" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_ct_sacrum_has_alae_a_canal_and_a_wedge_shaped_disc_above():
    # The CT sacrum is built like a real one (docs/phantoms.md): wider than L5 across its alae,
    # hollow where the sacral canal runs, and turned back from L5 so that the L5/S1 disc is higher
    # in front than behind.
    phantom = _ct(5, levels=["L3", "L4", "L5"], with_sacrum=True, spacing=1.5)
    labels, spacing = phantom.labels.array, np.asarray(phantom.labels.spacing)
    sacrum, l5 = labels == 26, labels == level_id("L5")

    def lr_extent_mm(mask):
        columns = np.nonzero(mask.any(axis=(0, 1)))[0]
        return (columns[-1] - columns[0] + 1) * spacing[2]

    assert lr_extent_mm(sacrum) > 1.5 * lr_extent_mm(l5)
    rows = np.nonzero(sacrum.any(axis=(1, 2)))[0]
    s1_middle = sacrum[rows[0] + int(12 / spacing[0])]
    assert ndimage.binary_fill_holes(s1_middle).sum() > s1_middle.sum() + 20  # the canal
    truth = phantom.truth
    l5_truth = next(v for v in truth["vertebrae"] if v["level"] == "L5")
    plate = truth["sacrum"]["upper_endplate"]

    def gap(side):
        return np.linalg.norm(np.subtract(plate[side], l5_truth["landmarks"][f"lower_{side}"]))

    assert gap("anterior") > gap("posterior") + 2.0 > 2.0
    # Its caudal end lies well behind its top: the sacrum turns back from the lumbar column.
    ap = np.argwhere(sacrum)[:, [0, 1]] * spacing[:2]
    middle = ap[:, 0] < ap[:, 0].min() + 0.25 * np.ptp(ap[:, 0])
    bottom = ap[:, 0] > ap[:, 0].max() - 0.1 * np.ptp(ap[:, 0])
    assert ap[bottom, 1].mean() > ap[middle, 1].mean() + 10
