"""Seed 003's fracture classifier: one vertebra at a time, slice by slice.

Input of one decision (model grid): a square window centred on one vertebral body,
:data:`WINDOW_FACTOR` times its cranio-caudal extent wide (so that the neighbours' endplates are
in view), resized to ``size``² pixels, with two channels: the image and that body's mask (which
of the bodies in the window is meant). On CT, each sagittal slice through the body, the outer
:data:`SHAVE_FRACTION` of its width on each side left out (seed 003 shaves 5 slices: the body's
rounded sides look compressed on any vertebra); on a radiograph, the one projection. Output: one
fracture logit per slice; a vertebra is fractured when any slice is (seed 003's rule,
:func:`~napari_vertebra.core.segment.nets.aggregate_slices`).

Training (:func:`train_classifier`) needs the fracture status of every body, so only phantoms
and their projections can train it here; fractured and normal vertebrae are drawn equally often.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from ..labels import SACRUM
from ..preprocess import preprocess, resize_labels
from .augment import Augmentation, augment
from .run import TrainingRun, open_run_folder
from .sources import DataSpecError, pairs_from_spec

#: Window side as a multiple of the body's cranio-caudal extent.
WINDOW_FACTOR = 2.5
#: Share of the body's left-right width left out on each side (CT).
SHAVE_FRACTION = 0.2
#: Window size in pixels fed to the network.
WINDOW_SIZE = 96

Progress = Callable[[str, int, int], None]


def _window(image: np.ndarray, mask: np.ndarray, size: int, factor: float) -> np.ndarray:
    """(2, size, size): image and mask in a square window around the mask (2D arrays)."""
    rows, cols = np.nonzero(mask)
    centre = np.array([rows.mean(), cols.mean()])
    side = factor * (rows.max() - rows.min() + 1)
    offsets = (np.arange(size) + 0.5) / size * side - side / 2
    grid = np.stack(np.meshgrid(centre[0] + offsets, centre[1] + offsets, indexing="ij"))
    fill = float(image.min())
    picture = ndimage.map_coordinates(image, grid, order=1, mode="constant", cval=fill)
    shape = ndimage.map_coordinates(mask.astype(np.float32), grid, order=1, mode="constant")
    return np.stack([picture, shape]).astype(np.float32)


def vertebra_windows(
    image: np.ndarray,
    bodies: np.ndarray,
    size: int = WINDOW_SIZE,
    factor: float = WINDOW_FACTOR,
    shave_fraction: float = SHAVE_FRACTION,
) -> dict[int, np.ndarray]:
    """Windows of every body of a label map, by label: (slices, 2, size, size).

    Parameters
    ----------
    image
        Preprocessed image on the model grid, canonical axes (I, P) or (I, P, L).
    bodies
        Body labels on the same grid (any value but 0 and the sacrum is one body).
    size, factor, shave_fraction
        Window size in pixels, its side as a multiple of the body's cranio-caudal extent, and
        the share of the body's width left out on each side (CT), as the model card says.
    """
    out: dict[int, np.ndarray] = {}
    for value in np.unique(bodies):
        if value == 0 or value == SACRUM:
            continue
        mask = bodies == value
        if mask.sum() < 4:
            continue
        if image.ndim == 2:
            out[int(value)] = _window(image, mask, size, factor)[None]
            continue
        columns = np.nonzero(mask.any(axis=(0, 1)))[0]
        first, last = columns.min(), columns.max()
        shave = int(np.floor(shave_fraction * (last - first + 1)))
        inner = [x for x in range(first + shave, last - shave + 1) if mask[:, :, x].sum() >= 4]
        inner = inner or [int(np.round(columns.mean()))]
        out[int(value)] = np.stack(
            [_window(image[:, :, x], mask[:, :, x], size, factor) for x in inner]
        )
    return out


def model_grid_bodies(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Labels resized (nearest neighbour) onto the model grid of the resampled image."""
    return resize_labels(labels, shape)


def _examples(specs, modality, preprocessing, seed, size, progress, workers=1):
    examples = []  # (windows (S, 2, size, size), fractured, origin)
    for index, spec in enumerate(specs):
        for image, bodies, fractured in pairs_from_spec(spec, seed + 1000 * index, workers):
            if image.modality != modality:
                raise DataSpecError(f"{spec}: gives {image.modality} images; this is {modality}")
            if fractured is None:
                raise DataSpecError(
                    f"{spec}: has no fracture status per vertebra; the classifier trains on "
                    "phantoms (phantom-xr:N, phantom-ct:N) and their projections"
                )
            prepared = preprocess(image.array, preprocessing, spacing=image.spacing).array
            grid = model_grid_bodies(np.asarray(bodies.array), prepared.shape)
            for value, windows in vertebra_windows(prepared, grid, size).items():
                examples.append((windows, value in fractured, f"{spec}#{value}"))
            if progress is not None:
                progress(f"reading {spec}", len(examples), 0)
    if not examples:
        raise DataSpecError(f"{', '.join(specs)}: no vertebrae")
    return examples


def _by_status(examples) -> dict[bool, list]:
    """Fractured and normal examples apart (each falls back to all when it has none)."""
    return {s: [e for e in examples if e[1] == s] or examples for s in (True, False)}


def _draw(by_status: dict[bool, list], rng, settings: Augmentation):
    # Fractured and normal vertebrae equally often: fractures are rare in the data.
    pool = by_status[bool(rng.random() < 0.5)]
    windows, label, _ = pool[rng.integers(len(pool))]
    window = windows[rng.integers(len(windows))]
    image, mask = augment(window[:1], (window[1] > 0.5).astype(np.int64), rng, settings)
    return np.concatenate([image, mask[None].astype(np.float32)]), float(label)


def predict_vertebrae(network, windows: dict[int, np.ndarray], device: str) -> dict[int, float]:
    """Per vertebra, the largest slice probability (seed 003: fractured if any slice is)."""
    import torch

    network.eval()
    out = {}
    with torch.inference_mode():
        for value, stack in windows.items():
            batch = torch.from_numpy(np.ascontiguousarray(stack)).to(device)
            out[value] = float(torch.sigmoid(network(batch).float()).max())
    return out


def _scores(network, examples, device) -> dict[str, float]:
    probabilities = predict_vertebrae(network, {k: e[0] for k, e in enumerate(examples)}, device)
    truth = np.array([e[1] for e in examples])
    found = np.array([probabilities[k] >= 0.5 for k in range(len(examples))])
    sensitivity = float(found[truth].mean()) if truth.any() else float("nan")
    specificity = float((~found[~truth]).mean()) if (~truth).any() else float("nan")
    return {
        "val_sensitivity": sensitivity,
        "val_specificity": specificity,
        "val_balanced_accuracy": float(np.nanmean([sensitivity, specificity])),
    }


def _rounded(value: str) -> float | None:
    # No fractured (or no normal) validation vertebra: the figure does not exist (JSON null).
    number = float(value)
    return round(number, 4) if np.isfinite(number) else None


def _start_network(config):
    """The network to train and a note for the card: a fresh one, or with ``config.init_from``
    the weights, arguments, preprocessing and modality of that classifier's card."""
    from ..segment.card import load_network
    from ..segment.nets import build_network
    from ..segment.registry import find_model

    if config.init_from:
        card = find_model(config.init_from)
        if card.architecture != "slice_classifier":
            raise ValueError(
                f"{card.name} is a {card.architecture} model; a slice classifier can only be "
                "fine-tuned from a slice classifier"
            )
        config.arguments = dict(card.arguments)
        config.preprocessing = [dict(step) for step in config.preprocessing or card.preprocessing]
        config.modality = card.modality
        return load_network(card, "cpu").train(), f"; fine-tuned from {config.init_from}"
    arguments = dict(config.arguments or {"encoder_name": "mobilenet_v2"})
    arguments["in_channels"] = 2
    config.arguments = arguments
    return build_network("slice_classifier", **arguments), ""


def train_classifier(config, progress: Progress | None = None, resume: bool = False):
    """Train seed 003's slice classifier as ``config`` (a ``TrainConfig``) says; returns the card.

    ``config.patch`` is not used: windows are :data:`WINDOW_SIZE` pixels. The run folder holds
    ``config.json``, ``metrics.csv`` (loss; sensitivity, specificity and balanced accuracy per
    vertebra on the validation data) and ``checkpoint.pt`` as for segmentation models.
    """
    import torch
    import torch.nn.functional as F

    from ..segment.card import FRACTURE_TASK, save_model
    from ..segment.inference import select_device

    out = open_run_folder(config.output, resume)
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    config.architecture = "slice_classifier"
    network, start_note = _start_network(config)
    network = network.to(device)
    arguments = config.arguments
    preprocessing = config.model_preprocessing()
    fields = ["step", "train_loss", "val_sensitivity", "val_specificity"]
    fields += ["val_balanced_accuracy", "images_per_second"]
    run = TrainingRun(config, network, out, fields, resume)
    train_set = _examples(
        config.data,
        config.modality,
        preprocessing,
        config.seed,
        WINDOW_SIZE,
        progress,
        config.workers,
    )
    val_set = _examples(
        config.validation,
        config.modality,
        preprocessing,
        config.seed + 7_919,
        WINDOW_SIZE,
        progress,
        config.workers,
    )
    settings = Augmentation(**config.augmentation)
    by_status = _by_status(train_set)
    while not run.done:
        rng = run.rng()
        batch = [_draw(by_status, rng, settings) for _ in range(config.batch_size)]
        images = torch.from_numpy(np.stack([b[0] for b in batch])).to(device)
        labels = torch.tensor([b[1] for b in batch], device=device)
        network.train()
        loss = F.binary_cross_entropy_with_logits(network(images), labels)
        due = run.optimise(loss, len(batch))
        if progress is not None:
            progress("training", run.step, config.steps)
        if due:
            scores = _scores(network, val_set, device)
            run.evaluated(scores, scores["val_balanced_accuracy"])
    network = run.best_network()
    best_row = max(run.history(), key=lambda r: float(r["val_balanced_accuracy"]))
    fractured = sum(e[1] for e in train_set)
    validation: dict[str, Any] = {
        "data": ", ".join(config.validation),
        "vertebrae": len(val_set),
        "fractured_vertebrae": int(sum(e[1] for e in val_set)),
        "sensitivity_per_vertebra": _rounded(best_row["val_sensitivity"]),
        "specificity_per_vertebra": _rounded(best_row["val_specificity"]),
        "at_step": int(best_row["step"]),
        "steps": config.steps,
        "command": config.command,
    }
    return save_model(
        network,
        out,
        config.name,
        overwrite=True,
        architecture="slice_classifier",
        arguments=arguments,
        modality=config.modality,
        task=FRACTURE_TASK,
        classes=["fracture"],
        preprocessing=preprocessing,
        input={
            "window_factor": WINDOW_FACTOR,
            "window_size": WINDOW_SIZE,
            "shave_fraction": SHAVE_FRACTION,
            "channels": ["image", "body_mask"],
            "rule": "any",
            "threshold": 0.5,
        },
        spacing_mm=next(
            (s["target_spacing"] for s in preprocessing if s["op"] == "resample"), None
        ),
        training_data=(
            f"{', '.join(config.data)}; {len(train_set)} vertebrae, {fractured} fractured"
            f"{start_note}"
        ),
        validation=validation,
        description=config.description,
    )
