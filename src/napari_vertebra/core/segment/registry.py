"""Where models come from: bundled with the package, a user model folder, or an explicit path.

- bundled: cards in ``napari_vertebra/models/`` (read-only; nothing is ever written there);
- user: every folder in the ``NAPARI_VERTEBRA_MODELS`` environment variable (separated by
  ``os.pathsep``), searched before the bundled ones so that a user can override a name;
- explicit: a path to a card (``.json``), its weights (``.safetensors``, card next to it) or a
  folder holding exactly one card.

Loaded networks are kept per (weights SHA-256, device), so repeated calls do not reload them.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .card import ModelCard, ModelFormatError, load_network, read_card

USER_MODELS_VARIABLE = "NAPARI_VERTEBRA_MODELS"


def model_folders() -> list[tuple[str, Path]]:
    """``(origin, folder)`` pairs in search order: user folders, then the bundled folder."""
    folders = [
        ("user", Path(entry).expanduser())
        for entry in os.environ.get(USER_MODELS_VARIABLE, "").split(os.pathsep)
        if entry.strip()
    ]
    bundled = Path(str(resources.files("napari_vertebra"))) / "models"
    return folders + [("bundled", bundled)]


def available_models(task: str | None = None) -> dict[str, ModelCard]:
    """Every readable model card by name (the first found wins); unreadable cards are skipped.

    ``task`` keeps only the cards of that task (``vertebral_body_segmentation``,
    ``fracture_classification``).
    """
    found: dict[str, ModelCard] = {}
    for _, folder in model_folders():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                card = read_card(path)
            except ModelFormatError:
                continue
            found.setdefault(card.name, card)
    if task is not None:
        found = {name: card for name, card in found.items() if card.task == task}
    return found


def default_model(task: str, modality: str) -> ModelCard | None:
    """The model ``analyze`` uses when none is named: of ``task`` and ``modality``, from the
    first folder holding one (user folders before the bundled models); within a folder, one
    with more output heads first (seed 004's region head gives levels without the sacrum in
    view), then by name. ``None`` when none is installed."""
    folders = [folder.resolve() for _, folder in model_folders()]

    def preference(card: ModelCard) -> tuple[int, int, str]:
        parent = card.path.resolve().parent if card.path else None
        rank = folders.index(parent) if parent in folders else len(folders)
        return rank, -len(card.heads), card.name

    cards = [c for c in available_models(task=task).values() if c.modality == modality]
    return min(cards, key=preference) if cards else None


def find_model(name_or_path: str | os.PathLike) -> ModelCard:
    """The card for a model name or a path (card, weights or folder with one card).

    Raises
    ------
    ModelFormatError
        When the path is not a model or the name is not known, with the known names.
    """
    path = Path(name_or_path).expanduser()
    if path.suffix == ".json" or path.exists():
        if path.is_dir():
            cards = sorted(path.glob("*.json"))
            if len(cards) != 1:
                raise ModelFormatError(
                    path, f"a model folder must hold exactly one card (.json); found {len(cards)}"
                )
            return read_card(cards[0])
        if path.suffix == ".safetensors":
            card = path.with_suffix(".json")
            if not card.is_file():
                raise ModelFormatError(path, f"no model card {card.name} next to the weights")
            return read_card(card)
        return read_card(path)
    models = available_models()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    known = ", ".join(sorted(models)) or "none installed"
    raise ModelFormatError(
        name_or_path,
        f"is neither a model file nor a known model name (known: {known}; user models go in "
        f"${USER_MODELS_VARIABLE})",
    )


@lru_cache(maxsize=4)
def _cached_network(card_path: str, sha256: str, device: str):
    from .inference import fuse_for_inference

    return fuse_for_inference(load_network(read_card(card_path), device))


def get_network(card: ModelCard, device: str = "cpu"):
    """The card's network on ``device`` for inference, loaded once per (weights hash, device).

    Batch norms are folded into their convolutions
    (:func:`~napari_vertebra.core.segment.inference.fuse_for_inference`); use
    :func:`~napari_vertebra.core.segment.card.load_network` for a network to train.
    """
    from .inference import fuse_for_inference

    if card.path is None:
        return fuse_for_inference(load_network(card, device))
    return _cached_network(str(card.path), card.sha256, device)
