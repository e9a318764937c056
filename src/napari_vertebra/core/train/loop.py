"""The training loop: data pool, augmentation, validation, curves, checkpoints, resume, card.

A run folder holds ``config.json`` (what was asked), ``metrics.csv`` and ``curves.png`` (loss
and validation Dice per evaluation), ``checkpoint.pt`` (the latest state, to resume; tensors only,
read back with ``weights_only=True``) and, at the end, ``NAME.safetensors`` + ``NAME.json``: the
best network by validation Dice with a card holding the validation figures and the command.

Training pairs are read (or, for phantoms and projections, generated) when the run starts and
kept on the model grid in memory; every step draws random crops from them and augments them
(:mod:`.augment`), so no two batches are the same.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_path
from ..metrics import dice
from ..preprocess import sagittal_stack
from .augment import Augmentation, augment, random_crop
from .sources import pairs_from_spec
from .targets import BODY_CLASSES, Pair, to_model_grid

#: Radiograph models: 0.8 mm pixels (a 30 mm body is about 38 pixels high), clip, z-score, CLAHE.
XR_PREPROCESSING = (
    {"op": "resample", "target_spacing": [0.8, 0.8]},
    {"op": "clip_upper", "percent": 1.0},
    {"op": "zscore"},
    {"op": "clahe", "clip_limit": 0.01},
)
#: CT models: 1.5 mm voxels, bone window.
CT_PREPROCESSING = (
    {"op": "resample", "target_spacing": [1.5, 1.5, 1.5]},
    {"op": "hu_window", "center": 400.0, "width": 1800.0},
)


@dataclass
class TrainConfig:
    """Everything a training run needs; written to ``config.json`` in the run folder.

    Attributes
    ----------
    name
        Model name (file names of the weights and card).
    output
        Run folder.
    data
        Training data specs (see :mod:`.sources`).
    validation
        Validation data specs; their pairs are never trained on.
    modality
        ``"XR"`` or ``"CT"``.
    architecture, arguments
        Network (see :func:`~napari_vertebra.core.segment.nets.build_network`); ``in_channels``
        and ``classes`` are set from ``context`` and the body classes.
    preprocessing
        Steps of :mod:`napari_vertebra.core.preprocess`; the modality's default when empty.
    context
        CT: neighbouring sagittal slices on each side given as channels (2.5D); 0 for XR.
    init_from
        A model (name or path) to start from: fine-tuning. Its architecture, arguments,
        preprocessing and context are used.
    """

    name: str
    output: str
    data: list[str]
    validation: list[str]
    modality: str = "XR"
    architecture: str = "unet"
    arguments: dict[str, Any] = field(
        default_factory=lambda: {
            "encoder_name": "mobilenet_v2",
            "decoder_channels": [64, 32, 24, 16, 8],
        }
    )
    preprocessing: list[dict[str, Any]] = field(default_factory=list)
    context: int = 0
    steps: int = 1000
    batch_size: int = 8
    patch: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    evaluate_every: int = 100
    seed: int = 0
    device: str = "auto"
    init_from: str | None = None
    half_precision_weights: bool = True
    augmentation: dict[str, float] = field(default_factory=dict)
    description: str = ""
    command: str = ""

    def model_preprocessing(self) -> list[dict[str, Any]]:
        if self.preprocessing:
            return [dict(step) for step in self.preprocessing]
        default = XR_PREPROCESSING if self.modality == "XR" else CT_PREPROCESSING
        return [dict(step) for step in default]


Progress = Callable[[str, int, int], None]


def _pool(specs: Sequence[str], config: TrainConfig, seed: int, progress) -> list[Pair]:
    from .sources import DataSpecError

    steps = config.model_preprocessing()
    pool: list[Pair] = []
    for index, spec in enumerate(specs):
        for image, bodies in pairs_from_spec(spec, seed + 1000 * index):
            if image.modality != config.modality:
                raise DataSpecError(
                    f"{spec}: gives {image.modality} images; this is a {config.modality} model"
                )
            array, target = to_model_grid(image, bodies, steps)
            origin = str(image.source.get("path", spec))
            pool.append(Pair(array[None] if image.ndim == 2 else array, target, origin))
            if progress is not None:
                progress(f"reading {spec}", len(pool), 0)
    if not pool:
        raise DataSpecError(f"{', '.join(specs)}: no training pairs")
    return pool


def _draw(pool: list[Pair], config: TrainConfig, rng: np.random.Generator):
    pair = pool[rng.integers(len(pool))]
    if config.modality == "XR":
        image, target = pair.image, pair.target
    else:
        columns = np.nonzero(pair.target.any(axis=(0, 1)))[0]
        if len(columns) and rng.random() < 0.9:
            x = int(rng.choice(columns))
        else:
            x = int(rng.integers(pair.image.shape[2]))
        image, target = sagittal_stack(pair.image, x, config.context), pair.target[:, :, x]
    image, target = random_crop(image, target, config.patch, rng)
    return augment(image, target, rng, Augmentation(**config.augmentation))


def _loss(logits, target):
    import torch.nn.functional as F

    cross_entropy = F.cross_entropy(logits, target)
    probabilities = logits.softmax(dim=1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    dims = (0, 2, 3)
    overlap = (probabilities * onehot).sum(dims)
    total = probabilities.sum(dims) + onehot.sum(dims)
    dice = (2 * overlap + 1) / (total + 1)
    return cross_entropy + (1 - dice[1:]).mean()


def predict_pair(network, pair: Pair, config: TrainConfig, device: str) -> np.ndarray:
    """Class map of a whole pair on the model grid (every sagittal slice of a CT)."""
    import torch

    from ..segment.inference import tiled_predict

    def forward(batch):
        return network(batch).softmax(dim=1)

    network.eval()
    with torch.inference_mode():
        if config.modality == "XR":
            out = tiled_predict(forward, pair.image, config.patch * 2, device=device)
            return out.argmax(axis=0)
        result = np.zeros(pair.target.shape, dtype=np.int64)
        for x in range(pair.image.shape[2]):
            stack = sagittal_stack(pair.image, x, config.context)
            out = tiled_predict(forward, stack, config.patch * 2, device=device)
            result[:, :, x] = out.argmax(axis=0)
        return result


def evaluate(network, pool: list[Pair], config: TrainConfig, device: str) -> dict[str, float]:
    """Mean Dice of the body and sacrum classes over ``pool`` (model grid)."""
    body, sacrum = [], []
    for pair in pool:
        predicted = predict_pair(network, pair, config, device)
        body.append(dice(predicted == 1, pair.target == 1))
        if (pair.target == 2).any():
            sacrum.append(dice(predicted == 2, pair.target == 2))
    return {
        "val_dice_body": float(np.mean(body)),
        "val_dice_sacrum": float(np.mean(sacrum)) if sacrum else float("nan"),
    }


def plot_curves(metrics: Path, out: Path) -> None:
    """``curves.png``: training loss and validation Dice against the step."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    with open(metrics, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    figure = Figure(figsize=(8, 3.2), tight_layout=True)
    left, right = figure.subplots(1, 2)
    left.plot(steps, [float(r["train_loss"]) for r in rows], marker="o")
    left.set(xlabel="step", ylabel="training loss (CE + Dice)", yscale="log")
    for key, label in (("val_dice_body", "vertebral body"), ("val_dice_sacrum", "sacrum")):
        right.plot(steps, [float(r[key]) for r in rows], marker="o", label=label)
    right.set(xlabel="step", ylabel="validation Dice", ylim=(0, 1))
    right.legend(loc="lower right")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    with atomic_path(out) as temporary:
        figure.savefig(temporary, dpi=90, format="png")


def _build(config: TrainConfig):
    from ..segment.card import load_network
    from ..segment.nets import build_network
    from ..segment.registry import find_model

    if config.init_from:
        card = find_model(config.init_from)
        config.architecture, config.arguments = card.architecture, dict(card.arguments)
        config.preprocessing = list(card.preprocessing)
        config.context = int(card.input.get("context", 0))
        config.modality = card.modality
        return load_network(card, "cpu").train()
    arguments = dict(config.arguments)
    arguments["in_channels"] = 2 * config.context + 1
    arguments["classes"] = len(BODY_CLASSES)
    config.arguments = arguments
    return build_network(config.architecture, **arguments)


def train(config: TrainConfig, progress: Progress | None = None, resume: bool = False):
    """Train a body-segmentation model as ``config`` says; returns the saved model's card.

    Parameters
    ----------
    config
        What to train on, how long, and where the run folder is.
    progress
        Called with (what, done, total); the CLI shows it as a progress bar.
    resume
        Continue from ``checkpoint.pt`` in the run folder (same config) instead of refusing a
        folder that already holds a run.
    """
    import torch

    from ..segment.card import save_model
    from ..segment.inference import select_device

    out = Path(config.output)
    checkpoint_path = out / "checkpoint.pt"
    if out.exists() and any(out.iterdir()) and not resume:
        raise FileExistsError(
            f"{out} already holds a run; pass resume to continue it, or choose another folder"
        )
    if resume and not checkpoint_path.is_file():
        raise FileNotFoundError(f"{checkpoint_path}: no checkpoint to resume from")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    network = _build(config).to(device)
    if not resume:
        (out / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")

    train_pool = _pool(config.data, config, config.seed, progress)
    val_pool = _pool(config.validation, config, config.seed + 7_919, progress)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.steps, pct_start=0.1
    )
    step, best, best_state = 0, -1.0, None
    metrics_path = out / "metrics.csv"
    if resume:
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        network.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        step, best = int(saved["step"]), float(saved["best"])
        best_state = saved["best_model"]
    fields = ["step", "train_loss", "val_dice_body", "val_dice_sacrum", "images_per_second"]
    if not metrics_path.exists():
        metrics_path.write_text(",".join(fields) + "\n")

    losses: list[float] = []
    started = time.perf_counter()
    seen = 0
    while step < config.steps:
        # The data of a step depends only on (seed, step): a resumed run draws what it would have.
        rng = np.random.default_rng([config.seed, step])
        batch = [_draw(train_pool, config, rng) for _ in range(config.batch_size)]
        images = torch.from_numpy(np.stack([b[0] for b in batch])).to(device)
        targets = torch.from_numpy(np.stack([b[1] for b in batch])).to(device)
        network.train()
        loss = _loss(network(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        seen += len(batch)
        losses.append(float(loss.detach()))
        if progress is not None:
            progress("training", step, config.steps)
        if step % config.evaluate_every == 0 or step == config.steps:
            scores = evaluate(network, val_pool, config, device)
            rate = seen / (time.perf_counter() - started)
            row = [step, float(np.mean(losses)), *scores.values(), rate]
            with open(metrics_path, "a", newline="") as handle:
                cells = [f"{v:.5g}" if isinstance(v, float) else v for v in row]
                csv.writer(handle).writerow(cells)
            losses, seen, started = [], 0, time.perf_counter()
            if scores["val_dice_body"] > best:
                best = scores["val_dice_body"]
                best_state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
            state = {
                "model": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "step": step,
                "best": best,
                "best_model": best_state,
            }
            with atomic_path(checkpoint_path) as temporary:
                torch.save(state, temporary)
            plot_curves(metrics_path, out / "curves.png")

    network.load_state_dict(best_state)
    if config.half_precision_weights:
        network = network.half()
    with open(metrics_path, newline="") as handle:
        history = list(csv.DictReader(handle))
    best_row = max(history, key=lambda r: float(r["val_dice_body"]))
    preprocessing = config.model_preprocessing()
    input_options: dict[str, Any] = {"tile": 512, "overlap": 0.25}
    if config.modality == "CT":
        input_options["context"] = config.context
    return save_model(
        network,
        out,
        config.name,
        overwrite=True,
        architecture=config.architecture,
        arguments=config.arguments,
        modality=config.modality,
        classes=list(BODY_CLASSES),
        preprocessing=preprocessing,
        input=input_options,
        spacing_mm=next(
            (s["target_spacing"] for s in preprocessing if s["op"] == "resample"), None
        ),
        training_data=(
            f"{', '.join(config.data)}; {len(train_pool)} pairs"
            + (f"; fine-tuned from {config.init_from}" if config.init_from else "")
        ),
        validation={
            "data": ", ".join(config.validation),
            "pairs": len(val_pool),
            "dice_vertebral_body_model_grid": round(float(best_row["val_dice_body"]), 4),
            "dice_sacrum_model_grid": round(float(best_row["val_dice_sacrum"]), 4),
            "at_step": int(best_row["step"]),
            "steps": config.steps,
            "command": config.command,
        },
        description=config.description,
    )
