"""The training loop: data pool, augmentation, validation, curves, checkpoints, resume, card.

A run folder (:mod:`.run`) holds ``config.json``, ``metrics.csv``, ``checkpoint.pt``, here also
``curves.png`` (loss and validation figures per evaluation) and, at the end,
``NAME.safetensors`` + ``NAME.json``: the best network by validation score (body Dice; for the
multitask model, its mean with the heads' accuracies) with a card holding the validation
figures and the command.

Training pairs are read (or, for phantoms and projections, generated) when the run starts and
kept on the model grid in memory; every step draws random crops from them and augments them
(:mod:`.augment`), so no two batches are the same.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_path
from ..metrics import dice
from ..preprocess import sagittal_stack
from .augment import Augmentation
from .batches import BatchDrawer, build_pool
from .run import TrainingRun, open_run_folder
from .targets import IGNORE, MULTITASK_HEADS, SEGMENTATION_HEADS, Pair, head_targets

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
        and the class counts are set from ``context`` and the heads. Default: ``unet`` (or the
        ``init_from`` model's), with :data:`DEFAULT_ARGUMENTS` for it.
    preprocessing
        Steps of :mod:`napari_vertebra.core.preprocess`; when empty, the ``init_from``
        model's, or else the modality's default. Given with ``init_from``, they replace the
        model's own (fine-tuning a model to a new preprocessing).
    context
        CT: neighbouring sagittal slices on each side given as channels (2.5D); 0 for XR.
    init_from
        A model (name or path) to start from. With the same architecture (or none given) it is
        fine-tuned: its arguments, preprocessing and context are used. With another
        architecture, every tensor whose name and shape match is copied (e.g. a body U-Net's
        encoder and decoder into both decoders of a multitask U-Net): a warm start. A slice
        classifier's card makes the run a classifier's fine-tuning.
    workers
        Processes that render the phantoms and draw the batches (:mod:`.batches`); the pairs
        and batches are the same whatever the number.
    augmentation
        Strengths that replace :class:`~.augment.Augmentation`'s defaults, by field name (e.g.
        ``{"coarsen": 2.5}`` for CT meant to work on thick-slice scans).
    """

    name: str
    output: str
    data: list[str]
    validation: list[str]
    modality: str = "XR"
    architecture: str | None = None
    arguments: dict[str, Any] | None = None
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
    workers: int = 1
    init_from: str | None = None
    half_precision_weights: bool = True
    augmentation: dict[str, float] = field(default_factory=dict)
    description: str = ""
    command: str = ""

    def __post_init__(self) -> None:
        from ..preprocess import check_steps

        self.preprocessing = check_steps(self.preprocessing)
        known = {f.name for f in dataclasses.fields(Augmentation)}
        unknown = sorted(set(self.augmentation) - known)
        if unknown:
            raise ValueError(
                f"unknown augmentation {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )

    def model_preprocessing(self) -> list[dict[str, Any]]:
        if self.preprocessing:
            return [dict(step) for step in self.preprocessing]
        default = XR_PREPROCESSING if self.modality == "XR" else CT_PREPROCESSING
        return [dict(step) for step in default]


#: Network arguments used when none are given: small enough to ship (a few MB in float16).
DEFAULT_ARGUMENTS: dict[str, dict[str, Any]] = {
    "unet": {"encoder_name": "mobilenet_v2", "decoder_channels": [64, 32, 24, 16, 8]},
    "multitask_unet": {"encoder_name": "mobilenet_v2", "decoder_channels": [64, 32, 24, 16, 8]},
    "r2unet": {"base_width": 16},
    "mdr2unet": {"base_width": 16},
}

Progress = Callable[[str, int, int], None]


def heads_of(architecture: str) -> dict[str, tuple[str, ...]]:
    """Output heads (name -> classes) of a segmentation architecture."""
    return dict(MULTITASK_HEADS if architecture == "multitask_unet" else SEGMENTATION_HEADS)


def body_head(heads: dict[str, Any]) -> str:
    """The head whose classes give the bodies and the sacrum."""
    return "region" if "region" in heads else "segmentation"


def _loss(logits, target):
    """Cross-entropy + soft Dice of the foreground classes; :data:`IGNORE` pixels left out."""
    import torch.nn.functional as F

    valid = (target != IGNORE).unsqueeze(1).float()
    if not valid.any():
        return logits.sum() * 0.0
    cross_entropy = F.cross_entropy(logits, target, ignore_index=IGNORE)
    probabilities = logits.softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(min=0), logits.shape[1]).permute(0, 3, 1, 2).float() * valid
    dims = (0, 2, 3)
    overlap = (probabilities * onehot).sum(dims)
    total = probabilities.sum(dims) + onehot.sum(dims)
    dice = (2 * overlap + 1) / (total + 1)
    return cross_entropy + (1 - dice[1:]).mean()


def _outputs(network, images) -> dict[str, Any]:
    out = network(images)
    return out if isinstance(out, dict) else {"segmentation": out}


def predict_pair(network, pair: Pair, config: TrainConfig, device: str) -> dict[str, np.ndarray]:
    """Each head's class map of a whole pair on the model grid (every sagittal slice of a CT)."""
    import torch

    from ..segment.inference import split_heads, tiled_predict

    heads = heads_of(config.architecture)

    def forward(batch):
        out = _outputs(network, batch)
        return torch.cat([out[head].softmax(dim=1) for head in heads], dim=1)

    def split(probabilities: np.ndarray) -> dict[str, np.ndarray]:
        return {h: p.argmax(axis=0) for h, p in split_heads(probabilities, heads).items()}

    network.eval()
    with torch.inference_mode():
        if config.modality == "XR":
            return split(tiled_predict(forward, pair.image, config.patch * 2, device=device))
        result = {head: np.zeros(pair.target.shape, dtype=np.int64) for head in heads}
        for x in range(pair.image.shape[2]):
            stack = sagittal_stack(pair.image, x, config.context)
            maps = split(tiled_predict(forward, stack, config.patch * 2, device=device))
            for head, values in maps.items():
                result[head][:, :, x] = values
        return result


def evaluate(network, pool: list[Pair], config: TrainConfig, device: str) -> dict[str, float]:
    """Validation figures over ``pool`` (model grid).

    ``val_dice_body`` and ``val_dice_sacrum``: mean Dice per image; multitask models add
    ``val_region_accuracy`` (share of body pixels of known region given the right one) and
    ``val_fracture_balanced_accuracy`` (mean of the fracture and normal classes' recall over body
    pixels of known status).
    """
    heads = heads_of(config.architecture)
    main = body_head(heads)
    sacrum_class = len(heads[main]) - 1
    body, sacrum = [], []
    right = {"region": [0, 0], "fracture": [0, 0], "normal": [0, 0]}
    for pair in pool:
        predicted = predict_pair(network, pair, config, device)
        truth = head_targets(pair.target, main)
        found = predicted[main]
        is_body = lambda m: (m > 0) & (m < sacrum_class)  # noqa: E731
        body.append(dice(is_body(found), is_body(truth)))
        if (truth == sacrum_class).any():
            sacrum.append(dice(found == sacrum_class, truth == sacrum_class))
        if "region" in heads:
            known = (truth == 1) | (truth == 2)
            right["region"][0] += int((found[known] == truth[known]).sum())
            right["region"][1] += int(known.sum())
            status = head_targets(pair.target, "fracture")
            for value, key in ((1, "fracture"), (2, "normal")):
                where = status == value
                right[key][0] += int((predicted["fracture"][where] == value).sum())
                right[key][1] += int(where.sum())
    scores = {
        "val_dice_body": float(np.mean(body)),
        "val_dice_sacrum": float(np.mean(sacrum)) if sacrum else float("nan"),
    }
    if "region" in heads:
        share = {k: (a / n if n else float("nan")) for k, (a, n) in right.items()}
        scores["val_region_accuracy"] = share["region"]
        recalls = [share["fracture"], share["normal"]]
        known = [r for r in recalls if not np.isnan(r)]
        scores["val_fracture_balanced_accuracy"] = float(np.mean(known)) if known else float("nan")
    return scores


def _selection_score(scores: dict[str, float]) -> float:
    """What the best checkpoint is chosen by: the mean of the body Dice and, for multitask
    models, the region and fracture accuracies (NaN figures left out)."""
    keys = ("val_dice_body", "val_region_accuracy", "val_fracture_balanced_accuracy")
    values = [scores[k] for k in keys if k in scores and not np.isnan(scores[k])]
    return float(np.mean(values))


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
    for key, label in (
        ("val_dice_body", "Dice vertebral body"),
        ("val_dice_sacrum", "Dice sacrum"),
        ("val_region_accuracy", "region accuracy"),
        ("val_fracture_balanced_accuracy", "fracture balanced accuracy"),
    ):
        if key in rows[0]:
            right.plot(steps, [float(r[key]) for r in rows], marker="o", label=label)
    right.set(xlabel="step", ylabel="validation figure", ylim=(0, 1))
    right.legend(loc="lower right")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    with atomic_path(out) as temporary:
        figure.savefig(temporary, dpi=90, format="png")


def _warm_start(network, card) -> int:
    """Copy the tensors of ``card``'s network whose names (a body U-Net's ``decoder.`` read as
    each decoder of a multitask U-Net) and shapes match; returns how many were copied."""
    from safetensors.torch import load_file

    from ..segment.card import verify

    source = load_file(verify(card), device="cpu")
    state = network.state_dict()
    copied = 0
    for key, tensor in state.items():
        for candidate in (
            key,
            key.replace("region_decoder.", "decoder.").replace("fracture_decoder.", "decoder."),
        ):
            if candidate in source and source[candidate].shape == tensor.shape:
                state[key] = source[candidate].to(tensor.dtype)
                copied += 1
                break
    network.load_state_dict(state)
    return copied


def _build(config: TrainConfig):
    from ..segment.card import load_network
    from ..segment.nets import build_network
    from ..segment.registry import find_model

    card = find_model(config.init_from) if config.init_from else None
    if card is not None and config.architecture in (None, card.architecture):
        config.architecture, config.arguments = card.architecture, dict(card.arguments)
        config.preprocessing = list(config.preprocessing or card.preprocessing)
        config.context = int(card.input.get("context", 0))
        config.modality = card.modality
        return load_network(card, "cpu").train(), f"; fine-tuned from {config.init_from}"
    config.architecture = config.architecture or "unet"
    if config.architecture not in DEFAULT_ARGUMENTS:
        raise ValueError(
            f"{config.architecture!r} is not a segmentation architecture that trains here "
            f"({', '.join(DEFAULT_ARGUMENTS)}); slice classifiers train with "
            "train_classifier (napari-vertebra train --architecture slice_classifier)"
        )
    arguments = dict(config.arguments or DEFAULT_ARGUMENTS[config.architecture])
    arguments["in_channels"] = 2 * config.context + 1
    if config.architecture == "multitask_unet":
        arguments["fracture_classes"] = len(MULTITASK_HEADS["fracture"])
        arguments["region_classes"] = len(MULTITASK_HEADS["region"])
    else:
        arguments["classes"] = len(SEGMENTATION_HEADS["segmentation"])
    config.arguments = arguments
    network = build_network(config.architecture, **arguments)
    if card is not None:
        if card.modality != config.modality:
            raise ValueError(f"{card.name} is a {card.modality} model; this is {config.modality}")
        if _warm_start(network, card) == 0:
            raise ValueError(
                f"{card.name}: no tensor fits {config.architecture}; nothing to start from"
            )
        return network, f"; warm-started from {config.init_from}"
    return network, ""


def _train_steps(run, network, heads, drawer, val_pool, device, progress) -> None:
    """Optimise until the run's last step, validating (and plotting the curves) when due."""
    import torch

    config = run.config
    while not run.done:
        batch = drawer.batch(run.step)
        images = torch.from_numpy(np.stack([b[0] for b in batch])).to(device)
        details = np.stack([b[1] for b in batch])
        network.train()
        outputs = _outputs(network, images)
        loss = sum(
            _loss(outputs[head], torch.from_numpy(head_targets(details, head)).to(device))
            for head in heads
        )
        due = run.optimise(loss, len(batch))
        if progress is not None:
            progress("training", run.step, config.steps)
        if due:
            scores = evaluate(network, val_pool, config, device)
            run.evaluated(scores, _selection_score(scores))
            plot_curves(run.metrics_path, run.out / "curves.png")


def _fine_tunes_a_classifier(config: TrainConfig) -> bool:
    """Whether ``config`` names no architecture and starts from a slice classifier's card."""
    from ..segment.registry import find_model

    if config.architecture is not None or not config.init_from:
        return False
    return find_model(config.init_from).architecture == "slice_classifier"


def train(config: TrainConfig, progress: Progress | None = None, resume: bool = False):
    """Train a model as ``config`` says; returns the saved model's card.

    Segmentation architectures are trained here; ``slice_classifier`` (seed 003) is handed to
    :func:`~napari_vertebra.core.train.classifier.train_classifier`.

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
    if config.architecture == "slice_classifier" or _fine_tunes_a_classifier(config):
        from .classifier import train_classifier

        return train_classifier(config, progress, resume)
    import torch

    from ..segment.card import save_model
    from ..segment.inference import select_device

    out = open_run_folder(config.output, resume)
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    network, start_note = _build(config)
    network = network.to(device)
    heads = heads_of(config.architecture)
    fields = ["step", "train_loss", "val_dice_body", "val_dice_sacrum"]
    if "region" in heads:
        fields += ["val_region_accuracy", "val_fracture_balanced_accuracy"]
    fields.append("images_per_second")
    run = TrainingRun(config, network, out, fields, resume)

    train_pool = build_pool(config.data, config, config.seed, progress)
    val_pool = build_pool(config.validation, config, config.seed + 7_919, progress)
    with BatchDrawer(train_pool, config) as drawer:
        _train_steps(run, network, heads, drawer, val_pool, device, progress)

    network = run.best_network()
    best_row = max(
        run.history(),
        key=lambda r: _selection_score({k: float(v) for k, v in r.items() if k in fields}),
    )
    preprocessing = config.model_preprocessing()
    input_options: dict[str, Any] = {"tile": 512, "overlap": 0.25}
    if config.modality == "CT":
        input_options["context"] = config.context
    if len(heads) > 1:
        input_options["head"] = body_head(heads)
    validation: dict[str, Any] = {
        "data": ", ".join(config.validation),
        "pairs": len(val_pool),
        "dice_vertebral_body_model_grid": round(float(best_row["val_dice_body"]), 4),
        "dice_sacrum_model_grid": round(float(best_row["val_dice_sacrum"]), 4),
    }
    for key in ("val_region_accuracy", "val_fracture_balanced_accuracy"):
        if key in best_row:
            validation[key.removeprefix("val_") + "_model_grid"] = round(float(best_row[key]), 4)
    validation.update(at_step=int(best_row["step"]), steps=config.steps, command=config.command)
    return save_model(
        network,
        out,
        config.name,
        overwrite=True,
        architecture=config.architecture,
        arguments=config.arguments,
        modality=config.modality,
        classes=list(heads[body_head(heads)]),
        heads={head: list(classes) for head, classes in heads.items()} if len(heads) > 1 else {},
        preprocessing=preprocessing,
        input=input_options,
        spacing_mm=next(
            (s["target_spacing"] for s in preprocessing if s["op"] == "resample"), None
        ),
        training_data=(f"{', '.join(config.data)}; {len(train_pool)} pairs" + start_note),
        validation=validation,
        description=config.description,
    )
