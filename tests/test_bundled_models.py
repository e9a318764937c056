"""Every model shipped in the package: its card matches its weights and it runs on a sample."""

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from napari_vertebra import analyze, make_phantom, read_image, segment
from napari_vertebra.core.labels import level_id
from napari_vertebra.core.metrics import dice, vertebral_bodies
from napari_vertebra.core.pipeline import _default_radiograph_model
from napari_vertebra.core.segment.card import FRACTURE_TASK, read_card, sha256_of, verify
from napari_vertebra.core.segment.fracture import classify_vertebrae
from napari_vertebra.core.segment.registry import available_models
from napari_vertebra.samples import lumbar_ct, sample_path

BUNDLED = Path(str(resources.files("napari_vertebra"))) / "models"
CARDS = sorted(BUNDLED.glob("*.json"))
SEGMENTERS = [c for c in CARDS if read_card(c).task != FRACTURE_TASK]
CLASSIFIERS = [c for c in CARDS if read_card(c).task == FRACTURE_TASK]


def test_a_radiograph_model_is_bundled_and_the_default_has_a_region_head():
    assert any(read_card(card).modality == "XR" for card in CARDS)
    # Seed 004's region head lets levels be counted without the sacrum in view.
    default = available_models()[_default_radiograph_model()]
    assert default.modality == "XR" and "region" in default.heads


def test_bundled_ct_model_holds_on_the_held_out_real_ct():
    # The real lumbar CT was never trained on (the card says which real scans were).
    ct, vertebrae = lumbar_ct()
    cards = [read_card(c) for c in SEGMENTERS if read_card(c).modality == "CT"]
    assert cards, "no CT segmentation model is bundled"
    mask = read_image(sample_path("lumbar-ct-body-mask"), kind="labels").array
    truth = np.where(mask == 1, vertebrae.array, 0)
    for card in cards:
        result = analyze(ct, model=card.name)
        assert result.summary["model"]["card_sha256"] == sha256_of(card.path)
        predicted = result.labels.array
        assert dice(vertebral_bodies(truth), vertebral_bodies(predicted)) >= 0.90
        for name in ("T12", "L1", "L2", "L3", "L4", "L5"):
            inside = predicted[truth == level_id(name)]
            assert np.bincount(inside[inside > 0]).argmax() == level_id(name), name


def test_ct_analysis_uses_the_baseline_unless_a_model_is_named():
    phantom = make_phantom("ct", seed=3)
    assert segment(phantom.image).model["name"] == "ct-baseline"


@pytest.mark.parametrize("card_path", CARDS, ids=[c.stem for c in CARDS])
def test_bundled_card_matches_its_weights_and_states_its_figures(card_path):
    card = read_card(card_path)
    verify(card)  # SHA-256 of the weights against the card
    assert card.weights_path.stat().st_size < 16 * 2**20
    assert card.training_data and card.validation["command"].startswith("napari-vertebra train")
    assert "held_out_phantoms" in card.validation
    if card.task == FRACTURE_TASK:
        assert "sensitivity" in card.validation["held_out_phantoms"]
    else:
        assert "dice_vertebral_body_model_grid" in card.validation
    assert available_models()[card.name].sha256 == card.sha256


@pytest.mark.parametrize("card_path", SEGMENTERS, ids=[c.stem for c in SEGMENTERS])
def test_bundled_model_segments_a_held_out_phantom(card_path):
    card = read_card(card_path)
    phantom = make_phantom(card.modality.lower(), 987_654)
    found = segment(phantom.image, model=card.name)
    score = dice(vertebral_bodies(phantom.labels.array), vertebral_bodies(found.labels.array))
    # The card's own held-out figure is the median over many phantoms; one must be near it.
    assert score > card.validation["held_out_phantoms"]["dice_vertebral_body_median"] - 0.1
    assert found.model["sha256"] == card.sha256
    assert np.isin(found.labels.array, [0, 1, 26]).all()


@pytest.mark.parametrize("card_path", CLASSIFIERS, ids=[c.stem for c in CLASSIFIERS])
def test_bundled_classifier_tells_a_crushed_body_from_its_normal_neighbours(card_path):
    card = read_card(card_path)
    phantom = make_phantom(
        card.modality.lower(),
        987_654,
        levels=["T12", "L1", "L2", "L3", "L4"],
        fractures={"L2": (3, "wedge")},
    )
    found = classify_vertebrae(phantom.image, phantom.labels.array, card)
    fractured = found.pop(level_id("L2"))
    assert fractured >= 0.5 and max(found.values()) < 0.5, (fractured, found)
