"""Training: targets on the model grid, augmentation, the loop with checkpoints, resume, card."""

import csv
import dataclasses
import json

import numpy as np
import pytest

from napari_vertebra import make_phantom
from napari_vertebra.cli import main
from napari_vertebra.core.io import read_image, write_nifti
from napari_vertebra.core.labels import SACRUM, to_verse
from napari_vertebra.core.pipeline import segment
from napari_vertebra.core.segment.card import read_card, verify
from napari_vertebra.core.train import TrainConfig, train
from napari_vertebra.core.train.augment import Augmentation, augment, coarsen, random_crop
from napari_vertebra.core.train.batches import BatchDrawer, build_pool
from napari_vertebra.core.train.loop import XR_PREPROCESSING
from napari_vertebra.core.train.sources import DataSpecError, bodies_of, pairs_from_spec
from napari_vertebra.core.train.targets import (
    IGNORE,
    class_map,
    detail_map,
    head_targets,
    to_model_grid,
)

TINY = {"encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 8, 8]}


def _phantom_folder(folder, seeds, every: int = 1):
    """Radiograph phantoms written as a training folder (images/ and masks/, NIfTI), keeping
    every ``every``-th pixel (a coarser grid of the same spacing in mm)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    for k, seed in enumerate(seeds):
        phantom = make_phantom("xr", seed)
        for image, part in ((phantom.image, "images"), (phantom.vertebrae, "masks")):
            coarse = dataclasses.replace(
                image,
                array=image.array[::every, ::every],
                spacing=tuple(every * s for s in image.spacing),
            )
            write_nifti(coarse, folder / part / f"case{k}.nii.gz")
    return folder


def _config(tmp_path, name="tiny", **changes):
    fields = dict(
        name=name,
        output=str(tmp_path / name),
        data=["phantom-xr:3"],
        validation=["phantom-xr:1"],
        steps=4,
        batch_size=2,
        patch=64,
        evaluate_every=2,
        arguments=dict(TINY),
        device="cpu",
    )
    fields.update(changes)
    return TrainConfig(**fields)


def test_class_map_and_model_grid_follow_the_card_preprocessing():
    phantom = make_phantom("xr", 4)
    classes = class_map(phantom.labels.array)
    assert set(np.unique(classes)) == {0, 1, 2}
    assert np.array_equal(classes == 2, phantom.labels.array == SACRUM)
    image, detail = to_model_grid(phantom.image, phantom.labels, XR_PREPROCESSING)
    target = head_targets(detail, "segmentation")
    # Resampled to 0.8 mm: the extent in mm is kept, and so are the bodies' areas (within 3 %).
    expected = np.round(np.array(phantom.image.shape) * phantom.image.spacing[0] / 0.8)
    assert image.shape == target.shape == tuple(expected.astype(int))
    area_source = (classes == 1).sum() * phantom.image.spacing[0] ** 2
    area_model = (target == 1).sum() * 0.8**2
    assert area_model == pytest.approx(area_source, rel=0.03)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0  # CLAHE ends in [0, 1]


def test_multitask_targets_carry_region_and_fracture_and_ignore_what_is_unknown():
    phantom = make_phantom(
        "xr",
        4,
        levels=["T11", "T12", "L1", "L2", "L3", "L4", "L5"],
        with_sacrum=True,
        fractures={"L1": (2, "wedge")},
    )
    labels = phantom.labels.array
    detail = detail_map(labels, fractured={20})
    region = head_targets(detail, "region")
    fracture = head_targets(detail, "fracture")
    assert np.all(region[(labels == 18) | (labels == 19)] == 1)  # thoracic
    assert np.all(region[(labels >= 20) & (labels <= 22)] == 2)  # lumbar
    assert np.all(region[labels == SACRUM] == 3) and np.all(fracture[labels == SACRUM] == 3)
    assert np.all(fracture[labels == 20] == 1) and np.all(fracture[labels == 21] == 2)
    assert np.array_equal(head_targets(detail, "segmentation"), class_map(labels))
    # Fracture status unknown (None) and anonymous bodies (1): those heads learn nothing there.
    unknown = head_targets(detail_map(labels, fractured=None), "fracture")
    assert np.all(unknown[(labels > 0) & (labels != SACRUM)] == IGNORE)
    anonymous = head_targets(detail_map(np.where(labels == SACRUM, SACRUM, labels > 0)), "region")
    assert np.all(anonymous[(labels > 0) & (labels != SACRUM)] == IGNORE)
    # On the model grid the codes survive resampling.
    _, target = to_model_grid(phantom.image, phantom.labels, XR_PREPROCESSING, {20})
    assert set(np.unique(head_targets(target, "fracture"))) == {0, 1, 2, 3}


def test_augmentation_keeps_labels_aligned_and_never_turns_the_spine_upside_down():
    phantom = make_phantom("xr", 4)
    image, detail = to_model_grid(phantom.image, phantom.labels, XR_PREPROCESSING)
    target = head_targets(detail, "segmentation")
    rng = np.random.default_rng(0)
    for _ in range(5):
        crop_image, crop_target = random_crop(image[None], target, 192, rng)
        out_image, out_target = augment(crop_image, crop_target, rng)
        assert out_image.shape == (1, 192, 192) and out_target.shape == (192, 192)
        assert set(np.unique(out_target)) <= {0, 1, 2}
    # The sacrum stays below the bodies (no cranio-caudal flip), whatever else changes.
    for _ in range(5):
        out_image, out_target = augment(image[None], target, rng)
        rows_body = np.nonzero((out_target == 1).any(axis=1))[0]
        rows_sacrum = np.nonzero((out_target == 2).any(axis=1))[0]
        assert rows_sacrum.mean() > rows_body.mean()
    # Bone stays brighter than background on average (intensity changes are monotone).
    assert out_image[0][out_target == 1].mean() > out_image[0][out_target == 0].mean()


def test_coarsening_removes_detail_finer_than_the_coarse_voxel_and_keeps_the_rest():
    rows, columns = np.mgrid[0:96, 0:96]
    fine = ((rows + columns) % 2).astype(np.float32)  # a one-voxel checkerboard
    coarse_edge = (columns >= 48).astype(np.float32)  # one wide step
    stack = np.stack([fine, coarse_edge])[:, None]  # two single-slice images
    assert np.array_equal(coarsen(stack[0], 1.0), stack[0])
    checkerboard, step = (coarsen(image, 3.0)[0] for image in stack)
    assert checkerboard.shape == fine.shape and checkerboard.dtype == fine.dtype
    # The checkerboard is averaged away to its mean; the step keeps its place and its two
    # levels, only its edge spreads over a few voxels.
    inner = (slice(8, -8), slice(8, -8))
    assert checkerboard[inner].std() < 0.05 * fine.std()
    assert abs(checkerboard[inner].mean() - 0.5) < 0.05
    edge = step[48]
    assert edge[:40].max() < 0.1 and edge[57:].min() > 0.9
    assert 0.2 < edge[47:49].mean() < 0.8
    assert 1 <= np.count_nonzero((edge > 0.05) & (edge < 0.95)) <= 8
    # The neighbouring slices of a 2.5D stack are averaged too: three dark slices then three
    # bright ones become a ramp across the slices next to the change.
    slices = np.concatenate([np.zeros((3, 32, 32)), np.ones((3, 32, 32))]).astype(np.float32)
    across = coarsen(slices, 3.0)[:, 16, 16]
    assert np.all(np.diff(across) >= 0) and across[0] < 0.1 and across[-1] > 0.9
    assert 0.05 < across[2] < 0.5 < across[3] < 0.95


def test_augmentation_strengths_are_checked_and_coarsening_is_applied(tmp_path):
    with pytest.raises(ValueError, match="unknown augmentation blurr"):
        _config(tmp_path, augmentation={"blurr": 1.0})
    rng = np.random.default_rng(1)
    image = np.zeros((1, 64, 64), np.float32)
    image[0, :, 32:] = 1.0
    target = np.zeros((64, 64), np.int64)
    only_coarsen = Augmentation(
        rotation_deg=0,
        scale=0,
        elastic_px=0,
        flip_ap=0,
        gamma=0,
        contrast=0,
        blur_px=0,
        noise=0,
        coarsen=4.0,
    )
    ramps = [
        np.count_nonzero((out[0, 10] > 0.01) & (out[0, 10] < 0.99))
        for out, _ in (augment(image, target, rng, only_coarsen) for _ in range(12))
    ]
    assert 0 in ramps and max(ramps) >= 2  # about half the draws are coarsened


def test_whole_vertebra_masks_are_reduced_to_bodies():
    phantom = make_phantom("xr", 4)
    bodies = bodies_of(phantom.vertebrae)
    truth = phantom.labels.array
    for value in (21, 22, 23):
        overlap = (bodies.array == value) & (truth == value)
        assert overlap.sum() / (truth == value).sum() > 0.9
        assert (bodies.array == value).sum() < (phantom.vertebrae.array == value).sum()


def test_totalsegmentator_class_maps_train_as_vertebrae_and_other_classes_are_left_out(tmp_path):
    phantom = make_phantom("ct", 2, levels=["L2", "L3", "L4"], with_sacrum=False)
    folder = tmp_path / "ts"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    # TotalSegmentator numbers the vertebrae the other way (L4 = 28, L3 = 29, L2 = 30); 5 is
    # its liver, an organ that must not become a vertebra.
    verse = np.asarray(phantom.vertebrae.array)
    classes = np.zeros(verse.shape, np.uint8)
    for verse_id, class_id in ((21, 30), (22, 29), (23, 28)):
        classes[verse == verse_id] = class_id
    classes[:4] = 5
    write_nifti(phantom.image, folder / "images" / "case.nii.gz")
    write_nifti(phantom.vertebrae.with_array(classes), folder / "masks" / "case.nii.gz")
    (sample,) = pairs_from_spec(f"totalseg:{folder}", 0)
    assert sorted(int(v) for v in np.unique(sample.bodies.array) if v) == [21, 22, 23]
    truth = np.asarray(phantom.labels.array)
    for value in (21, 22, 23):
        overlap = (sample.bodies.array == value) & (truth == value)
        assert overlap.sum() / (truth == value).sum() > 0.9
    # A class map without any vertebra is refused, naming the file.
    write_nifti(
        phantom.vertebrae.with_array((classes == 5).astype(np.uint8) * 5),
        folder / "masks" / "case.nii.gz",
        overwrite=True,
    )
    with pytest.raises(DataSpecError, match="case.nii.gz: no vertebra"):
        list(pairs_from_spec(f"totalseg:{folder}", 0))


def test_a_real_dicom_series_with_its_totalsegmentator_map_is_a_training_pair(
    tmp_path, shared_data
):
    source = shared_data / "ct-lumbar-totalseg"
    folder = tmp_path / "real"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    (folder / "images" / "chest").symlink_to(source / "dicom_series_T11-T12")
    (folder / "masks" / "chest.nii.gz").symlink_to(source / "dicom_series_labels_totalseg.nii.gz")
    (sample,) = pairs_from_spec(f"totalseg:{folder}", 0)
    assert sample.image.modality == "CT" and sample.image.shape == (20, 512, 512)
    # Its 117 classes hold two vertebrae, T11 and T12 (VerSe 18 and 19), reduced to bodies.
    assert sorted(int(v) for v in np.unique(sample.bodies.array) if v) == [18, 19]
    whole = to_verse(
        read_image(source / "dicom_series_labels_totalseg.nii.gz").array, "totalsegmentator"
    )
    assert 0.2 < (sample.bodies.array == 19).sum() / (whole == 19).sum() < 0.8


def test_data_specs_are_checked():
    with pytest.raises(DataSpecError, match="unknown data source"):
        pairs_from_spec("nifti:/x", 0)
    with pytest.raises(DataSpecError, match="number of phantoms"):
        pairs_from_spec("phantom-xr:many", 0)


def test_phantoms_rendered_by_several_processes_are_the_same_in_the_same_order():
    alone = list(pairs_from_spec("phantom-xr:3", 11))
    shared = list(pairs_from_spec("phantom-xr:3", 11, workers=2))
    assert len(shared) == 3
    for one, other in zip(alone, shared, strict=True):
        np.testing.assert_array_equal(one.image.array, other.image.array)
        np.testing.assert_array_equal(one.bodies.array, other.bodies.array)
        assert one.fractured == other.fractured
    # Different phantoms, not one repeated.
    assert not np.array_equal(alone[0].image.array, alone[1].image.array)


def test_trunk_phantoms_project_to_wide_films_without_extra_soft_tissue():
    # drr:SPEC reads its CTs with the run seed + 1.
    (ct,) = [sample.image for sample in pairs_from_spec("phantom-ct-abdomen:1", 6)]
    width = ct.shape[2] * ct.spacing[2]
    assert width >= 240
    films = list(pairs_from_spec("drr:phantom-ct-abdomen:1@3", 5))
    assert len(films) == 3
    for image, bodies, _ in films:
        geometry = image.source["drr_geometry"]
        # A trunk CT is widened to about 400 mm at most, not 3 times as spine crops are.
        assert 1.0 <= geometry["soft_tissue_scale"] <= max(400 / width, 1.0)
        assert image.modality == "XR" and image.ndim == 2
        assert (bodies.array > 0).any()


def test_training_writes_curves_checkpoint_and_a_verified_card(tmp_path):
    card = train(_config(tmp_path))
    run = tmp_path / "tiny"
    assert {"config.json", "metrics.csv", "curves.png", "checkpoint.pt"} <= {
        p.name for p in run.iterdir()
    }
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(0 <= float(r["val_dice_body"]) <= 1 for r in rows)
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    again = read_card(run / "tiny.json")
    verify(again)
    assert again.classes == ["background", "vertebral_body", "sacrum"]
    assert again.preprocessing == [dict(s) for s in XR_PREPROCESSING]
    best = max(float(r["val_dice_body"]) for r in rows)
    assert again.validation["dice_vertebral_body_model_grid"] == pytest.approx(best, abs=1e-4)
    assert "phantom-xr:3" in again.training_data
    # The saved model segments a phantom radiograph (4 steps are too few for levels).
    from napari_vertebra import segment

    phantom = make_phantom("xr", 9)
    found = segment(phantom.image, model=str(run / "tiny.json"))
    assert found.labels.shape == phantom.image.shape
    assert found.model["sha256"] == card.sha256
    # A run folder is never overwritten.
    with pytest.raises(FileExistsError):
        train(_config(tmp_path))


def test_batches_drawn_by_worker_processes_are_the_ones_drawn_alone(tmp_path):
    config = _config(tmp_path, data=["phantom-ct:1"], modality="CT", context=1, patch=64)
    pool = build_pool(config.data, config, config.seed)
    alone = [BatchDrawer(pool, config).batch(step) for step in range(3)]
    with BatchDrawer(pool, dataclasses.replace(config, workers=2)) as drawer:
        shared = [drawer.batch(step) for step in range(3)]
    for one, other in zip(alone, shared, strict=True):
        assert len(one) == config.batch_size
        for (image, target), (image_2, target_2) in zip(one, other, strict=True):
            assert image.shape == (3, 64, 64)  # a sagittal slice and one neighbour each side
            np.testing.assert_array_equal(image, image_2)
            np.testing.assert_array_equal(target, target_2)
    # Each step draws new crops.
    assert not np.array_equal(alone[0][0][0], alone[1][0][0])


_POOL_AFTER_A_PARALLEL_TORCH_OP = """
import sys, torch
from napari_vertebra.core.train import TrainConfig
from napari_vertebra.core.train.batches import build_pool
# A parallel torch operation in the parent, as loading the model to fine-tune does.
torch.nn.functional.interpolate(torch.rand(1, 1, 600, 600), size=(1500, 1500))
config = TrainConfig(name="x", output=sys.argv[2], data=[], validation=[], workers=2)
pool = build_pool(["folder:" + sys.argv[1]], config, 0)
print(len(pool), pool[0].image.shape)
"""


def test_data_processes_forked_after_torch_has_run_in_parallel_do_not_hang(tmp_path):
    # Coarse radiographs are upsampled with torch in the data processes; forked from a parent
    # whose OpenMP pool has run, they hung there (a fine-tuning run never started).
    import subprocess
    import sys

    folder = _phantom_folder(tmp_path / "coarse", seeds=(40, 41), every=10)
    done = subprocess.run(
        [sys.executable, "-c", _POOL_AFTER_A_PARALLEL_TORCH_OP, str(folder), str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    count, _ = done.stdout.split(" ", 1)
    assert int(count) == 2


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    train(_config(tmp_path, name="whole"))

    class Stop(Exception):
        pass

    def stop_after_three(what, done, total):
        if what == "training" and done == 3:
            raise Stop

    config = _config(tmp_path, name="cut")
    with pytest.raises(Stop):
        train(config, progress=stop_after_three)
    assert not (tmp_path / "cut" / "cut.json").exists()
    train(_config(tmp_path, name="cut"), resume=True)
    whole = list(csv.DictReader(open(tmp_path / "whole" / "metrics.csv")))
    cut = list(csv.DictReader(open(tmp_path / "cut" / "metrics.csv")))
    assert [r["step"] for r in cut] == ["2", "4"]
    for a, b in zip(whole, cut, strict=True):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-3)
        assert float(a["val_dice_body"]) == pytest.approx(float(b["val_dice_body"]), abs=1e-3)


def test_cli_trains_from_a_folder_and_fine_tunes(tmp_path, capsys):
    folder = _phantom_folder(tmp_path / "data", seeds=(20, 21))
    common = ["--steps", "2", "--batch-size", "2", "--patch", "64", "--evaluate-every", "2"]
    code = main(
        [
            "train",
            "-o",
            str(tmp_path / "run"),
            "--name",
            "mine",
            "--data",
            f"folder:{folder}",
            "--validation",
            "phantom-xr:1",
            "--arguments",
            json.dumps(TINY),
            "--device",
            "cpu",
            *common,
        ]
    )
    assert code == 0
    card = read_card(tmp_path / "run" / "mine.json")
    assert card.validation["command"].startswith("napari-vertebra train -o ")
    assert "2 pairs" in card.training_data
    code = main(
        [
            "train",
            "-o",
            str(tmp_path / "tuned"),
            "--name",
            "tuned",
            "--data",
            f"folder:{folder}",
            "--validation",
            "phantom-xr:1",
            "--init-from",
            str(tmp_path / "run" / "mine.json"),
            "--device",
            "cpu",
            *common,
        ]
    )
    assert code == 0
    tuned = read_card(tmp_path / "tuned" / "tuned.json")
    assert tuned.arguments == card.arguments and "fine-tuned from" in tuned.training_data
    assert tuned.preprocessing == card.preprocessing
    # Fine-tuning to a new preprocessing: the given steps replace the model's in the new card,
    # and the model runs with them.
    flattened = [
        dict(card.preprocessing[0]),
        {"op": "subtract_background", "sigma_mm": 20},
        *[dict(step) for step in card.preprocessing[1:]],
    ]
    init = ["--init-from", str(tmp_path / "run" / "mine.json"), "--device", "cpu", *common]
    retune = ["train", "--data", f"folder:{folder}", "--validation", "phantom-xr:1", *init]
    flat_run = ["-o", str(tmp_path / "flat"), "--name", "flat"]
    assert main([*retune, *flat_run, "--preprocessing", json.dumps(flattened)]) == 0
    flat = read_card(tmp_path / "flat" / "flat.json")
    assert [dict(step) for step in flat.preprocessing] == flattened
    image = make_phantom("xr", 30).image
    result = segment(image, model=str(tmp_path / "flat" / "flat.json"))
    assert result.labels.array.shape == image.array.shape
    ran = [step["op"] for step in result.details["preprocessing"]]
    assert ran[:2] == ["resample", "subtract_background"]
    bad_run = ["-o", str(tmp_path / "nope"), "--name", "nope"]
    code = main([*retune, *bad_run, "--preprocessing", '[{"op": "sharpen"}]'])
    assert code == 1 and "sharpen" in capsys.readouterr().err
    code = main([*retune, *bad_run, "--preprocessing", '[{"op": "zscore"'])
    assert code == 1 and "--preprocessing is not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()
    # A folder without masks is refused with its name.
    (folder / "masks" / "case1.nii.gz").unlink()
    code = main(
        [
            "train",
            "-o",
            str(tmp_path / "bad"),
            "--name",
            "bad",
            "--data",
            f"folder:{folder}",
            "--validation",
            "phantom-xr:1",
            "--device",
            "cpu",
            *common,
        ]
    )
    assert code == 1 and "case1" in capsys.readouterr().err


def test_ct_model_trains_on_verse_format_data(tmp_path, shared_data):
    config = _config(
        tmp_path,
        name="ct",
        modality="CT",
        context=1,
        data=[f"verse:{shared_data / 'ct-crop-tptbox'}"],
        validation=[f"verse:{shared_data / 'ct-crop-tptbox'}"],
        steps=2,
    )
    card = train(config)
    assert card.arguments["in_channels"] == 3 and card.input["context"] == 1
    assert card.modality == "CT"


@pytest.mark.parametrize(
    "architecture,arguments",
    [("r2unet", {"base_width": 4, "depth": 3}), ("mdr2unet", {"base_width": 4, "depth": 3})],
)
def test_every_segmentation_architecture_trains(tmp_path, architecture, arguments):
    card = train(
        _config(tmp_path, name=architecture, architecture=architecture, arguments=arguments)
    )
    assert card.architecture == architecture
    verify(card)
    assert card.classes == ["background", "vertebral_body", "sacrum"]


def test_multitask_model_trains_warm_starts_and_feeds_levels_and_fracture_column(tmp_path):
    import torch
    from safetensors.torch import load_file

    body = train(_config(tmp_path, name="body"))
    card = train(
        _config(
            tmp_path,
            name="multi",
            architecture="multitask_unet",
            init_from=str(tmp_path / "body" / "body.json"),
        )
    )
    assert card.architecture == "multitask_unet" and card.input["head"] == "region"
    assert card.classes == ["background", "thoracic", "lumbar", "sacrum"]
    assert card.heads["fracture"] == ["background", "fracture", "normal", "sacrum"]
    assert "warm-started from" in card.training_data
    for key in ("region_accuracy_model_grid", "fracture_balanced_accuracy_model_grid"):
        assert 0 <= card.validation[key] <= 1
    header = open(tmp_path / "multi" / "metrics.csv").readline().strip().split(",")
    assert "val_region_accuracy" in header and "val_fracture_balanced_accuracy" in header
    # The warm start copied the body model's encoder (before training moved it).
    from napari_vertebra.core.segment.nets import build_network
    from napari_vertebra.core.train.loop import _warm_start

    fresh = build_network("multitask_unet", **card.arguments)
    copied = _warm_start(fresh, body)
    source = load_file(body.weights_path)
    assert copied >= len([k for k in source if k.startswith("encoder.")])
    key = next(k for k in source if k.startswith("encoder.") and k.endswith("weight"))
    assert torch.equal(fresh.state_dict()[key], source[key].float())
    # Segmenting uses both heads; measuring adds a fracture probability per vertebra and
    # records the region votes (4 steps are too few for a usable mask: the truth stands in).
    import dataclasses

    from napari_vertebra import segment
    from napari_vertebra.core.pipeline import measure_segmentation

    phantom = make_phantom("xr", 9)
    found = segment(phantom.image, model=str(tmp_path / "multi" / "multi.json"))
    assert found.details["head_outputs"] == ["fracture_probability", "region"]
    assert set(np.unique(found.maps["region"])) <= {1, 2}
    probability = found.maps["fracture_probability"]
    assert probability.shape == phantom.image.shape
    assert 0 <= probability.min() and probability.max() <= 1
    semantic = phantom.labels.with_array((phantom.labels.array > 0).astype(np.uint8))
    measured = measure_segmentation(dataclasses.replace(found, labels=semantic))
    bodies = measured.table[measured.table["level"] != "S1"]
    assert bodies["fracture_probability"].between(0, 1).all()
    assert len(measured.parameters["region_votes"]) == len(bodies)


def test_slice_windows_follow_seed_003_on_ct_and_radiograph():
    from napari_vertebra.core.train.classifier import vertebra_windows

    ct = make_phantom("ct", 3, levels=["L3", "L4", "L5"], with_sacrum=True)
    volume = ct.image.array.astype(np.float32)
    windows = vertebra_windows(volume, ct.labels.array, size=32)
    assert sorted(windows) == [22, 23, 24]  # the sacrum is not classified
    for value, stack in windows.items():
        columns = np.nonzero((ct.labels.array == value).any(axis=(0, 1)))[0]
        # The outer fifth of the body's width on each side is shaved off.
        assert 0 < len(stack) < len(columns)
        assert stack.shape[1:] == (2, 32, 32)
        # The body fills the window's middle: its mask channel is set there, not at the corners.
        assert stack[:, 1, 16, 16].min() > 0.5 and stack[:, 1, 0, 0].max() < 0.5
    xr = make_phantom("xr", 3)
    flat = vertebra_windows(xr.image.array.astype(np.float32), xr.labels.array, size=32)
    assert all(stack.shape == (1, 2, 32, 32) for stack in flat.values())


def test_fracture_classifier_trains_and_analyze_reports_its_probability(tmp_path, shared_data):
    from napari_vertebra import analyze, segment
    from napari_vertebra.core.io import SpineIOError

    card = train(
        _config(
            tmp_path,
            name="classifier",
            architecture="slice_classifier",
            arguments={"encoder_name": "resnet18", "encoder_depth": 3},
            batch_size=4,
        )
    )
    assert card.task == "fracture_classification" and card.architecture == "slice_classifier"
    assert card.input["rule"] == "any" and card.arguments["in_channels"] == 2
    assert 0 <= card.validation["specificity_per_vertebra"] <= 1
    sensitivity = card.validation["sensitivity_per_vertebra"]
    assert (sensitivity is None) == (card.validation["fractured_vertebrae"] == 0)
    rows = list(csv.DictReader(open(tmp_path / "classifier" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    # Fine-tuning names no architecture: the classifier's card gives it, with its arguments.
    tuned = train(
        _config(
            tmp_path,
            name="tuned",
            arguments=None,
            batch_size=4,
            steps=2,
            init_from=str(tmp_path / "classifier" / "classifier.json"),
        )
    )
    assert tuned.architecture == "slice_classifier" and tuned.arguments == card.arguments
    assert tuned.preprocessing == card.preprocessing
    assert "fine-tuned from" in tuned.training_data
    with pytest.raises(ValueError, match="only be fine-tuned from a slice classifier"):
        train(
            _config(
                tmp_path,
                name="mixed",
                architecture="slice_classifier",
                init_from="xr-bodies-mobilenet",
            )
        )
    phantom = make_phantom("xr", 5)
    result = analyze(
        phantom.image, fracture_classifier=str(tmp_path / "classifier" / "classifier.json")
    )
    bodies = result.table[result.table["level"] != "S1"]
    assert bodies["slice_fracture_probability"].between(0, 1).all()
    assert result.summary["fracture_classifier"]["sha256"] == card.sha256
    plain = analyze(phantom.image, fracture_classifier=None)
    assert "slice_fracture_probability" not in plain.table.columns
    # A classifier is not a segmentation model, and the other way round.
    with pytest.raises(SpineIOError, match="not a segmentation model"):
        segment(phantom.image, model=str(tmp_path / "classifier" / "classifier.json"))
    with pytest.raises(SpineIOError, match="not a fracture classifier"):
        analyze(phantom.image, fracture_classifier="xr-bodies-mobilenet")
    # Only phantoms know which vertebrae are fractured: other data are refused by name.
    with pytest.raises(DataSpecError, match="fracture status"):
        train(
            _config(
                tmp_path,
                name="refused",
                architecture="slice_classifier",
                modality="CT",
                arguments={"encoder_name": "resnet18", "encoder_depth": 3},
                data=[f"verse:{shared_data / 'ct-crop-tptbox'}"],
            )
        )
