"""The project's model format: safetensors weights plus a JSON card; nothing is unpickled.

A model ``NAME`` is two files side by side, ``NAME.safetensors`` and ``NAME.json``. The card
holds everything needed to rebuild and use the network and to judge it:

``format_version``, ``name``, ``architecture`` and ``arguments`` (see
:func:`~napari_vertebra.core.segment.nets.build_network`), ``modality`` (XR or CT), ``task``,
``classes`` (output channel names; of the ``input["head"]`` head for several heads), ``heads``
(head name -> classes, for networks with several outputs, e.g. seed 004's fracture and region
heads), ``preprocessing`` (steps of
:mod:`napari_vertebra.core.preprocess`), ``input`` (e.g. tile size, neighbouring slices),
``spacing_mm`` (the model's pixel/voxel spacing), ``training_data``, ``validation`` (held-out
figures), ``weights`` (file name) and ``sha256`` (of the weights file).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
#: Tasks a card can name: vertebral-body segmentation (the default), and seed 003's
#: per-vertebra fracture classification.
SEGMENTATION_TASK = "vertebral_body_segmentation"
FRACTURE_TASK = "fracture_classification"
#: Architectures :func:`~napari_vertebra.core.segment.nets.build_network` can build; kept here,
#: free of torch, so that cards can be read and checked where torch is not installed.
ARCHITECTURES = ("unet", "multitask_unet", "r2unet", "mdr2unet", "slice_classifier")
REQUIRED_FIELDS = ("name", "architecture", "arguments", "modality", "classes", "weights", "sha256")


class ModelFormatError(ValueError):
    """A model card or weights file that is missing, malformed, or does not match."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class ModelCard:
    """What a model is, how to feed it, and how well it did (see the module docstring)."""

    name: str
    architecture: str
    arguments: dict[str, Any]
    modality: str
    classes: list[str]
    weights: str
    sha256: str
    task: str = SEGMENTATION_TASK
    heads: dict[str, list[str]] = field(default_factory=dict)
    preprocessing: list[dict[str, Any]] = field(default_factory=list)
    input: dict[str, Any] = field(default_factory=dict)
    spacing_mm: list[float] | None = None
    training_data: str = ""
    validation: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    format_version: int = FORMAT_VERSION
    #: Where the card was read from (not written to the JSON).
    path: Path | None = field(default=None, compare=False)

    @property
    def weights_path(self) -> Path:
        base = self.path.parent if self.path is not None else Path.cwd()
        return base / self.weights

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return data


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read and validate a model card (``.json``); the weights are checked by :func:`verify`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(path, "model card not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFormatError(path, f"is not a JSON model card ({err})") from err
    if not isinstance(data, dict):
        raise ModelFormatError(path, "a model card must be a JSON object")
    missing = [key for key in REQUIRED_FIELDS if key not in data]
    if missing:
        raise ModelFormatError(path, f"model card lacks {', '.join(missing)}")
    if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise ModelFormatError(
            path,
            f"card format {data['format_version']} is newer than this napari-vertebra reads "
            f"({FORMAT_VERSION}); update napari-vertebra",
        )
    if data["architecture"] not in ARCHITECTURES:
        raise ModelFormatError(
            path,
            f"unknown architecture {data['architecture']!r} (known: {', '.join(ARCHITECTURES)})",
        )
    if data["modality"] not in ("XR", "CT"):
        raise ModelFormatError(path, f"modality must be XR or CT, not {data['modality']!r}")
    known = set(ModelCard.__dataclass_fields__) - {"path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelFormatError(path, f"model card has unknown fields {', '.join(unknown)}")
    if Path(data["weights"]).name != data["weights"]:
        raise ModelFormatError(path, "'weights' must be a file name next to the card")
    return ModelCard(**data, path=path)


def verify(card: ModelCard) -> Path:
    """Check that the weights file exists, is safetensors and matches the card's SHA-256."""
    weights = card.weights_path
    if not weights.is_file():
        raise ModelFormatError(weights, f"weights named by {card.path} not found")
    if weights.suffix != ".safetensors":
        raise ModelFormatError(
            weights, "weights must be a .safetensors file (nothing is unpickled)"
        )
    actual = sha256_of(weights)
    if actual != card.sha256:
        raise ModelFormatError(
            weights,
            f"SHA-256 {actual[:12]}… does not match the card's {card.sha256[:12]}…: the file "
            "was changed or belongs to another model",
        )
    return weights


def load_network(card: ModelCard, device: str = "cpu"):
    """Build the card's network and load its verified weights (eval mode, on ``device``)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .nets import build_network

    weights = verify(card)
    try:
        network = build_network(card.architecture, **card.arguments)
    except (TypeError, ValueError) as err:
        raise ModelFormatError(card.path, f"cannot build {card.architecture}: {err}") from err
    try:
        state = load_file(weights, device="cpu")
    except (SafetensorError, OSError) as err:
        raise ModelFormatError(weights, f"is not a readable safetensors file ({err})") from err
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ModelFormatError(
            weights, f"weights do not fit the card's {card.architecture} ({first})"
        ) from err
    network = network.eval().to(device)
    # Every architecture here is 2D: channels-last weights match the channels-last inputs of
    # :func:`~napari_vertebra.core.segment.inference.probability_forward`.
    return network.to(memory_format=torch.channels_last)


def save_model(
    network,
    folder: str | os.PathLike,
    name: str,
    *,
    overwrite: bool = False,
    **card_fields: Any,
) -> ModelCard:
    """Write ``NAME.safetensors`` and ``NAME.json`` into ``folder``.

    Parameters
    ----------
    network
        A torch module built by :func:`~napari_vertebra.core.segment.nets.build_network` with
        the card's ``architecture`` and ``arguments``.
    folder, name
        Where and under which name.
    overwrite
        Replace existing files; by default an existing model is never overwritten.
    **card_fields
        The other :class:`ModelCard` fields (architecture, arguments, modality, classes, …).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights, card_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    for target in (weights, card_path):
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; choose another name or pass overwrite=True")
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(weights))
    card = ModelCard(name=name, weights=weights.name, sha256=sha256_of(weights), **card_fields)
    card_path.write_text(json.dumps(card.to_json(), indent=2) + "\n", encoding="utf-8")
    return read_card(card_path)
