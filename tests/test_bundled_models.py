"""Every model shipped in the package: its card matches its weights and it runs on a sample."""

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from napari_vertebra import make_phantom, segment
from napari_vertebra.core.metrics import dice, vertebral_bodies
from napari_vertebra.core.segment.card import read_card, verify
from napari_vertebra.core.segment.registry import available_models

BUNDLED = Path(str(resources.files("napari_vertebra"))) / "models"
CARDS = sorted(BUNDLED.glob("*.json"))


def test_a_radiograph_model_is_bundled():
    assert any(read_card(card).modality == "XR" for card in CARDS)


@pytest.mark.parametrize("card_path", CARDS, ids=[c.stem for c in CARDS])
def test_bundled_card_matches_its_weights_and_states_its_figures(card_path):
    card = read_card(card_path)
    verify(card)  # SHA-256 of the weights against the card
    assert card.weights_path.stat().st_size < 16 * 2**20
    assert card.training_data and card.validation["command"].startswith("napari-vertebra train")
    for key in ("held_out_phantoms", "dice_vertebral_body_model_grid"):
        assert key in card.validation, key
    assert available_models()[card.name].sha256 == card.sha256


@pytest.mark.parametrize("card_path", CARDS, ids=[c.stem for c in CARDS])
def test_bundled_model_segments_a_held_out_phantom(card_path):
    card = read_card(card_path)
    phantom = make_phantom(card.modality.lower(), 987_654)
    found = segment(phantom.image, model=card.name)
    score = dice(vertebral_bodies(phantom.labels.array), vertebral_bodies(found.labels.array))
    # The card's own held-out figure is the median over many phantoms; one must be near it.
    assert score > card.validation["held_out_phantoms"]["dice_vertebral_body_median"] - 0.1
    assert found.model["sha256"] == card.sha256
    assert np.isin(found.labels.array, [0, 1, 26]).all()
