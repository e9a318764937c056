"""End-to-end analysis: image → vertebral-body labels → levels → measurements, in one call.

``analyze`` reads the input (anything :func:`~napari_vertebra.core.io.read_image` opens),
segments the vertebral bodies with a model in the project's format or, on CT, with the
non-learned baseline, hands the label map to the measure step and returns an
:class:`AnalysisResult` that writes ``labels.nii.gz``, ``measurements.csv``, ``landmarks.json``
and ``summary.json``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .image import SpineImage
from .instances import bounding_box, sacrum_beside_column, split_touching
from .io import SpineIOError, read_image, write_labels
from .labels import SACRUM
from .measure import Measurement, measure, write_measurement

#: Name under which the non-learned CT baseline is selected like a model.
CT_BASELINE = "ct-baseline"
#: Output class names that count as vertebral body (seed 004's heads included).
BODY_CLASSES = ("vertebral_body", "vertebra", "fracture", "normal", "thoracic", "lumbar")
OUTPUT_FILES = ("labels.nii.gz", "measurements.csv", "landmarks.json", "summary.json")

Progress = Callable[[str, float], None]


@dataclass
class AnalysisResult:
    """Everything ``analyze`` produced for one image.

    Attributes
    ----------
    image
        The input image (canonical orientation).
    labels
        Vertebral bodies in VerSe IDs (sacrum 26) on the image's grid.
    measurement
        The measure step's table, landmarks and geometry.
    probabilities
        Body probability on the image's grid (learned models only).
    summary
        Provenance: input, model and its weights' SHA-256, parameters, versions, timings (s).
    """

    image: SpineImage
    labels: SpineImage
    measurement: Measurement
    probabilities: np.ndarray | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self):
        return self.measurement.table

    def write(self, out_dir: str | os.PathLike, overwrite: bool = False) -> dict[str, Path]:
        """Write the four output files into ``out_dir``; nothing is replaced unless asked."""
        out_dir = Path(out_dir)
        if not overwrite:
            taken = [name for name in OUTPUT_FILES if (out_dir / name).exists()]
            if taken:
                raise SpineIOError(
                    out_dir,
                    f"already holds {', '.join(taken)}; choose another folder or pass "
                    "overwrite=True (--overwrite)",
                )
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "labels": write_labels(
                self.labels.array, self.image, out_dir / "labels.nii.gz", overwrite=overwrite
            )
        }
        paths.update(write_measurement(self.measurement, out_dir, overwrite=overwrite))
        summary = out_dir / "summary.json"
        summary.write_text(json.dumps(self.summary, indent=1, default=str) + "\n")
        paths["summary"] = summary
        return paths


@lru_cache(maxsize=1)
def _installed_versions() -> tuple[tuple[str, str], ...]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in (
        "napari-vertebra",
        "numpy",
        "scipy",
        "scikit-image",
        "torch",
        "segmentation-models-pytorch",
    ):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return tuple(out.items())


def _versions() -> dict[str, str]:
    # Read once per process: package metadata does not change while it runs.
    return dict(_installed_versions())


def _as_image(source: SpineImage | str | os.PathLike | np.ndarray, spacing) -> SpineImage:
    if isinstance(source, SpineImage):
        image = source
    elif isinstance(source, np.ndarray):
        if spacing is None:
            raise SpineIOError("array", "a bare array needs its spacing in mm (spacing=...)")
        image = SpineImage(
            source, None, "CT" if source.ndim == 3 else "XR", ("I", "P", "L")[: source.ndim]
        )
    else:
        image = read_image(source)
    if spacing is not None:
        image = image.with_spacing(spacing)
    if image.kind == "labels":
        raise SpineIOError(
            image.source.get("path", "input"),
            "is a label map; analyze takes an image (use `measure` for label maps)",
        )
    if image.spacing is None:
        raise SpineIOError(
            image.source.get("path", "input"),
            "has no pixel spacing: heights in mm cannot be measured; give it (--spacing MM)",
        )
    return image


def _class_indices(card) -> tuple[list[int], int | None]:
    names = [str(c).lower() for c in card.classes]
    body = [k for k, n in enumerate(names) if n in BODY_CLASSES]
    if not body:
        raise SpineIOError(
            card.path or card.name,
            f"model classes {card.classes} name no vertebral-body class "
            f"({', '.join(BODY_CLASSES)})",
        )
    sacrum = names.index("sacrum") if "sacrum" in names else None
    return body, sacrum


def _segment_learned(
    image: SpineImage, card, device: str, tta: bool, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, np.ndarray]]:
    """Label map (1 body, 26 sacrum), body probability, provenance details and the extra head
    outputs (:func:`_head_maps`) on the image grid from a model."""
    from .preprocess import preprocess, sagittal_stack
    from .segment.inference import probability_forward, split_heads, tiled_predict
    from .segment.registry import get_network

    if card.modality != image.modality:
        raise SpineIOError(
            card.path or card.name,
            f"is a {card.modality} model; the input is {image.modality}",
        )
    network = get_network(card, device)
    options = dict(card.input)
    # A card's `flip_axes` are part of its model's recipe (its figures were measured with them);
    # TTA adds `tta_flip_axes` (default: the image's horizontal axis, antero-posterior on a
    # lateral radiograph and on the sagittal slices of a CT, the flip the models train with).
    flips = set(options.get("flip_axes", ()))
    if tta:
        flips |= set(options.get("tta_flip_axes", (1,)))
    flips = tuple(sorted(flips))
    heads = {name: list(classes) for name, classes in (card.heads or {}).items()}
    wanted = list(heads) if heads else options.get("head")
    forward = probability_forward(network, head=wanted, flip_axes=flips)
    prepared = preprocess(image.array, card.preprocessing, spacing=image.spacing)
    body_index, sacrum_index = _class_indices(card)

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress("segmentation", done / total)

    if image.ndim == 2:
        tile = options.get("tile", max(prepared.array.shape))
        probabilities = tiled_predict(
            forward,
            prepared.array[None],
            tile,
            device=device,
            progress=report,
            overlap=options.get("overlap", 0.25),
            batch_size=options.get("batch_size", 4),
        )
    else:
        # 2.5D: each sagittal slice (canonical axis 2) with `context` neighbours on each side.
        context = int(options.get("context", 0))
        volume = prepared.array
        depth = volume.shape[2]
        probabilities = None
        tile = options.get("tile", max(volume.shape[:2]))
        for x in range(depth):
            stack = sagittal_stack(volume, x, context)
            out = tiled_predict(
                forward, stack, tile, device=device, overlap=options.get("overlap", 0.25)
            )
            if probabilities is None:
                probabilities = np.zeros((out.shape[0], *volume.shape), np.float32)
            probabilities[:, :, :, x] = out
            report(x + 1, depth)
    probabilities = prepared.to_source(probabilities, order=1)
    maps: dict[str, np.ndarray] = {}
    if heads:
        by_head = split_heads(probabilities, heads)
        probabilities = by_head[options.get("head", next(iter(heads)))]
        maps = _head_maps(by_head, heads)
    body = probabilities[body_index].sum(axis=0, dtype=np.float32)
    labels = _winning_classes(probabilities, body_index, sacrum_index)
    del probabilities
    labels = _postprocess(labels, image.spacing)
    details = {"preprocessing": prepared.record, "model_spacing_mm": prepared.spacing}
    if maps:
        details["head_outputs"] = sorted(maps)
    return labels, body.astype(np.float32), details, maps


def _winning_classes(
    probabilities: np.ndarray, body_index: list[int], sacrum_index: int | None
) -> np.ndarray:
    """Label map (1 body, 26 sacrum) of the most probable class per pixel, computed in slabs
    along the first image axis so that a 512² × 300 CT never holds an int64 argmax volume."""
    labels = np.zeros(probabilities.shape[1:], np.uint8)
    slab = max(1, int(2**24 // max(1, np.prod(probabilities.shape[2:]))))
    for start in range(0, labels.shape[0], slab):
        winner = probabilities[:, start : start + slab].argmax(axis=0)
        part = labels[start : start + slab]
        part[np.isin(winner, body_index)] = 1
        if sacrum_index is not None:
            part[winner == sacrum_index] = SACRUM
    return labels


def _head_maps(by_head: dict[str, np.ndarray], heads: dict[str, list[str]]) -> dict:
    """Seed 004's extra outputs on the image grid: ``region`` (1 thoracic, 2 lumbar, 0 neither,
    by the larger probability) and ``fracture_probability`` (P(fracture) / (P(fracture) +
    P(normal)): the fracture head's belief that a body pixel belongs to a fractured body)."""
    maps: dict[str, np.ndarray] = {}
    if "region" in by_head:
        names = heads["region"]
        if "thoracic" in names and "lumbar" in names:
            thoracic = by_head["region"][names.index("thoracic")]
            lumbar = by_head["region"][names.index("lumbar")]
            maps["region"] = np.where(lumbar > thoracic, 2, 1).astype(np.uint8)
    if "fracture" in by_head:
        names = heads["fracture"]
        if "fracture" in names and "normal" in names:
            fractured = by_head["fracture"][names.index("fracture")]
            normal = by_head["fracture"][names.index("normal")]
            maps["fracture_probability"] = (
                fractured / np.maximum(fractured + normal, 1e-6)
            ).astype(np.float32)
    return maps


def _postprocess(labels: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Seed 000: fill holes in each body (sagittal sections in 3D); pieces of the sacrum taken
    for bodies become sacrum (:func:`absorb_into_sacrum`), and in 3D a body taken for the
    sacrum becomes a body again (:func:`release_small_sacrum`)."""
    # Inside the labels' box with a voxel of margin: the same result (nothing lies outside it)
    # without whole-volume passes over a CT that is mostly air. A piece touches a face of that
    # box only where the box reaches the volume's face, so the box's edges are the field's.
    box = bounding_box(labels > 0, margin=1)
    if box is None:
        return labels.copy()
    inside = absorb_into_sacrum(labels[box], spacing)
    if labels.ndim == 3:
        inside = release_small_sacrum(inside, spacing)
    out = np.zeros_like(labels)
    out[box] = _fill_bodies(inside)
    return out


def release_small_sacrum(
    labels: np.ndarray, spacing: tuple[float, ...] | np.ndarray | None = None
) -> np.ndarray:
    """A 3D model's sacrum piece wholly in view and no larger than a body or two is a body.

    The bundled CT model's sacrum class is the whole sacrum (S1-S5 with the alae), 3.5-4.8
    times a body's volume on CT phantoms, 3.9 and more where it lies wholly in view. On tight CT
    crops that end at a lumbar body it labelled that last body sacrum instead (0.5-1.4 bodies,
    never touching the field's edge): the count then starts one level off and the body is lost
    from the measurements. So the sacrum piece that continues the column
    (:func:`~napari_vertebra.core.instances.sacrum_beside_column`) becomes body class when it
    touches no face of ``labels`` (the field of view) and holds at most
    :data:`~napari_vertebra.core.levels.SACRUM_SIZE_FACTOR` typical bodies. A sacrum cut by the
    field (S1 alone at the lower edge) is left alone. Label maps given by a user never pass
    here (their sacrum label is kept, whatever its size: some label S1 only).
    """
    from .instances import column_sacrum_and_typical_body
    from .levels import SACRUM_SIZE_FACTOR

    if spacing is None:
        spacing = np.ones(labels.ndim)
    sacrum, typical = column_sacrum_and_typical_body(labels == SACRUM, labels == 1, spacing)
    box = bounding_box(sacrum)
    if box is None or typical <= 0:
        return labels
    if any(b.start == 0 or b.stop == n for b, n in zip(box, labels.shape, strict=True)):
        return labels
    size = np.count_nonzero(sacrum[box]) * float(np.prod(np.asarray(spacing, dtype=float)))
    if size > SACRUM_SIZE_FACTOR * typical:
        return labels
    out = labels.copy()
    out[sacrum] = 1
    return out


def _fill_bodies(labels: np.ndarray) -> np.ndarray:
    """Holes in the body class filled (each sagittal section in 3D)."""
    from scipy import ndimage

    body = labels == 1
    if labels.ndim == 2:
        filled = ndimage.binary_fill_holes(body)
    else:
        filled = np.stack(
            [ndimage.binary_fill_holes(body[:, :, x]) for x in range(body.shape[2])], axis=2
        )
    out = labels.copy()
    out[filled & (labels == 0)] = 1
    return out


def absorb_into_sacrum(
    labels: np.ndarray, spacing: tuple[float, ...] | np.ndarray | None = None
) -> np.ndarray:
    """Body-class pieces below the sacrum's middle, or fused to it below its top, become sacrum.

    In 3D, a piece that touches the sacrum is first split where the measure step would split it
    (:func:`~napari_vertebra.core.instances.split_touching`), and each part is judged alone, a
    part below the sacrum's top needing :data:`HELD_CONTACT_FRACTION` of its surface on the
    sacrum: a model's L5 fused to the top of S1 keeps L5 and gives S1's top back to the sacrum.
    Radiographs keep whole pieces: no radiograph phantom showed the fusion, and on the real CT's
    lateral projection, where the radiograph model fails, judging parts only moved its errors.

    No vertebral body lies caudal to the top of the sacrum, so such a piece is sacrum that the
    model took for a body: seen where the sacrum is cut by the image's lower edge, and for the S1
    body, which looks like a lumbar body but is held by the alae and the rest of the sacrum.
    "Fused" means at least :data:`FUSED_CONTACT_FRACTION` of the piece's surface touches the
    sacrum. Pieces above the top (L5 touching the S1 endplate) are left alone, and so is L5
    when the model labelled only a thin strand of it sacrum (its posterior edge, on the real
    lumbar CT), which lifts the sacrum's top above L5's middle. Canonical axis 0 runs head → feet.
    The sacrum is the piece labelled so that continues the column of bodies
    (:func:`~napari_vertebra.core.instances.sacrum_beside_column`, with ``spacing`` in mm, 1 by
    default): other pieces a model labelled sacrum (the CT table, contrast in the bowel) are
    not where a body cannot be.
    """
    from scipy import ndimage

    spacing = np.ones(labels.ndim) if spacing is None else np.asarray(spacing, dtype=float)
    sacrum = sacrum_beside_column(labels == SACRUM, labels == 1, spacing)
    if not sacrum.any():
        return labels
    rows = np.nonzero(sacrum)[0]
    top, middle = rows.min(), rows.mean()
    near = ndimage.binary_dilation(sacrum, structure=np.ones((3,) * labels.ndim, bool))
    pieces, count = ndimage.label(labels == 1)
    out = labels.copy()
    for index, piece in enumerate(ndimage.find_objects(pieces), start=1):
        whole = pieces[piece] == index
        # In 3D a piece that touches the sacrum may be L5 fused to the top of S1 (seen on a
        # tight CT phantom): its parts are judged one by one.
        touches = labels.ndim == 3 and (whole & near[piece]).any()
        parts = split_touching(whole, spacing) if touches else [whole]
        contact = FUSED_CONTACT_FRACTION if len(parts) == 1 else HELD_CONTACT_FRACTION
        for mask in parts:
            centre_row = piece[0].start + np.nonzero(mask)[0].mean()
            if centre_row > middle or (
                centre_row > top and _contact_fraction(mask, near[piece]) >= contact
            ):
                out[piece][mask] = SACRUM
    return out


#: Share of a body-class piece's surface that must touch the sacrum for the piece to count as
#: fused to it. On the real lumbar CT a model's S1 body touched the sacrum with 42 % of its
#: surface and L5, reached by a strand labelled sacrum, with 1 %; a body lying on the sacrum
#: over its whole lower endplate with no disc between touches with about 20 %.
FUSED_CONTACT_FRACTION = 0.1
#: A part split off a larger piece becomes sacrum only when the sacrum holds it: at least this
#: share of its surface touches the sacrum. The top of S1 split off L5 on a held-out tight CT
#: phantom touched with 67 % (the real CT's S1 with 42 %), while L5 split off L4 on another
#: touched with 11 % and lay below its sacrum's top only because the model labelled a strand
#: behind L5 sacrum; a body lying on the sacrum with no disc between touches with about 20 %.
HELD_CONTACT_FRACTION = 0.3


def _contact_fraction(piece: np.ndarray, near: np.ndarray) -> float:
    """Share of the surface voxels of ``piece`` that lie in ``near`` (the sacrum grown by one
    voxel)."""
    from scipy import ndimage

    surface = piece & ~ndimage.binary_erosion(piece)
    return float((surface & near).sum() / max(int(surface.sum()), 1))


@dataclass
class Segmentation:
    """Result of :func:`segment`: vertebral-body labels on the image's grid, before levels."""

    image: SpineImage
    #: Bodies (1 from a model, 101, 102, … from the CT baseline) and the sacrum (26).
    labels: SpineImage
    #: Body probability on the image grid (learned models only).
    probabilities: np.ndarray | None
    model: dict[str, Any]
    device: str
    details: dict[str, Any]
    seconds: float
    #: Extra per-pixel outputs of multitask models on the image grid: ``region`` (1 thoracic,
    #: 2 lumbar) and ``fracture_probability`` (see :func:`_head_maps`).
    maps: dict[str, np.ndarray] = field(default_factory=dict)

    def body_table(self):
        """One row per label value: ``index`` (the value), ``size_mm3`` and, for learned
        models, ``segmentation_confidence`` (mean body probability inside it)."""
        import pandas as pd
        from scipy import ndimage

        array = self.labels.array
        values = [int(v) for v in np.unique(array) if v]
        voxel = float(np.prod(self.labels.spacing))
        sizes = ndimage.sum_labels(array > 0, array, index=values) * voxel
        table = pd.DataFrame({"index": values, "size_mm3": np.round(sizes, 1)})
        if self.probabilities is not None:
            means = ndimage.mean(self.probabilities, labels=array, index=values)
            table["segmentation_confidence"] = np.round(means, 4)
        return table


def segment(
    source: SpineImage | str | os.PathLike | np.ndarray,
    *,
    model: str | os.PathLike = "auto",
    device: str = "auto",
    tta: bool = False,
    spacing: tuple[float, ...] | float | None = None,
    progress: Progress | None = None,
) -> Segmentation:
    """Vertebral bodies of a radiograph or CT, without levels or measurements.

    Parameters are those of :func:`analyze`; the labels are on the image's grid.
    """
    image = _as_image(source, spacing)

    def stage(name: str, fraction: float) -> None:
        if progress is not None:
            progress(name, fraction)

    card = None
    chosen = str(model)
    if chosen == "auto":
        chosen = default_segmentation_model(image.modality)
    tick = time.perf_counter()
    probabilities = None
    details: dict[str, Any] = {}
    maps: dict[str, np.ndarray] = {}
    stage("segmentation", 0.0)
    if chosen == CT_BASELINE:
        from .segment.ct_baseline import BASELINE_PARAMETERS, segment_ct_baseline

        if image.modality != "CT" or image.ndim != 3:
            raise SpineIOError(
                image.source.get("path", "input"),
                "the CT baseline needs a CT volume; radiographs need a learned model (--model)",
            )
        labels_array = segment_ct_baseline(image, progress=lambda f: stage("segmentation", f))
        details = {"parameters": dict(BASELINE_PARAMETERS)}
        device_used = "cpu"
    else:
        from .segment.card import SEGMENTATION_TASK
        from .segment.inference import select_device
        from .segment.registry import find_model

        card = find_model(chosen)
        if card.task != SEGMENTATION_TASK:
            raise SpineIOError(
                card.path or card.name,
                f"is a {card.task.replace('_', ' ')} model, not a segmentation model",
            )
        device_used = select_device(device)
        labels_array, probabilities, details, maps = _segment_learned(
            image, card, device_used, tta, progress
        )
    if card is not None:
        model_record = _model_record(card)
    else:
        model_record = {
            "name": CT_BASELINE,
            "path": None,
            "sha256": None,
            "card_sha256": None,
            "architecture": "hu-threshold baseline",
            "training_data": "none (not learned)",
        }
    return Segmentation(
        image=image,
        labels=image.with_array(labels_array, kind="labels"),
        probabilities=probabilities,
        model=model_record,
        device=device_used,
        details=details,
        maps=maps,
        seconds=time.perf_counter() - tick,
    )


def analyze(
    source: SpineImage | str | os.PathLike | np.ndarray,
    *,
    model: str | os.PathLike = "auto",
    device: str = "auto",
    tta: bool = False,
    spacing: tuple[float, ...] | float | None = None,
    progress: Progress | None = None,
    fracture_classifier: str | os.PathLike | None = "auto",
    **measure_options: Any,
) -> AnalysisResult:
    """Segment, label and measure the vertebral bodies of a radiograph or CT.

    Parameters
    ----------
    source
        A path (DICOM file or series folder, NIfTI, PNG/TIFF), a :class:`SpineImage`, or an
        array in canonical axes with ``spacing``.
    model
        ``"auto"`` (CT: the non-learned baseline; radiographs: the first installed radiograph
        model), :data:`CT_BASELINE`, a model name from the registry, or a path to a model card
        or weights.
    device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` …
    tta
        Flip test-time augmentation (left-right for radiographs and CT).
    spacing
        Spacing in mm, overriding the file's.
    progress
        Called with (stage, fraction done).
    fracture_classifier
        Seed 003's per-vertebra classifier: ``"auto"`` (the first installed one for the
        modality, if any and if torch is installed), a model name or path, or ``None``. Its
        result is the column ``slice_fracture_probability``, beside the grade measured from
        the heights.
    **measure_options
        Passed to :func:`~napari_vertebra.core.measure.measure` (``top_level``, ``shift``,
        ``lumbar_count`` …).
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    image = _as_image(source, spacing)
    timings["read_s"] = time.perf_counter() - start
    found = segment(image, model=model, device=device, tta=tta, progress=progress)
    timings["segmentation_s"] = found.seconds
    if progress is not None:
        progress("measurement", 0.0)
    tick = time.perf_counter()
    measurement = measure_segmentation(found, **measure_options)
    timings["measurement_s"] = time.perf_counter() - tick
    classifier = _fracture_classifier(fracture_classifier, image.modality)
    if classifier is not None:
        from .segment.fracture import classify_vertebrae

        tick = time.perf_counter()
        if progress is not None:
            progress("fracture classification", 0.0)
        found_probabilities = classify_vertebrae(
            image, measurement.level_map, classifier, found.device
        )
        for row in measurement.rows:
            value = found_probabilities.get(int(row["label"]), float("nan"))
            row["slice_fracture_probability"] = round(value, 4)
        measurement.retabulate()
        timings["fracture_classification_s"] = time.perf_counter() - tick
    timings["total_s"] = time.perf_counter() - start
    if progress is not None:
        progress("done", 1.0)
    summary = {
        "input": {
            "path": image.source.get("path"),
            "format": image.source.get("format"),
            "modality": image.modality,
            "shape": list(image.shape),
            "spacing_mm": list(image.spacing),
            "series_uid": image.source.get("series_uid"),
        },
        "model": found.model,
        "fracture_classifier": _model_record(classifier) if classifier is not None else None,
        "device": found.device,
        "tta": bool(tta),
        "segmentation": found.details,
        "measure_parameters": measurement.parameters,
        "levels": measurement.table["level"].tolist(),
        "versions": _versions(),
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
    }
    return AnalysisResult(
        image=image,
        labels=image.with_array(measurement.level_map, kind="labels"),
        measurement=measurement,
        probabilities=found.probabilities,
        summary=summary,
    )


def measure_segmentation(found: Segmentation, **measure_options: Any) -> Measurement:
    """Levels and measurements of a :class:`Segmentation` (its probabilities add confidence)."""
    if "region" in found.maps:
        measure_options.setdefault("region_map", found.maps["region"])
    if found.image.modality == "CT" and found.image.ndim == 3:
        measure_options.setdefault("image", found.image)  # the ribs (level count, check)
    measurement = measure(found.labels, sacrum_label=SACRUM, **measure_options)
    if found.probabilities is not None:
        _add_mean_per_vertebra(measurement, found.probabilities, "segmentation_confidence")
    if "fracture_probability" in found.maps:
        _add_mean_per_vertebra(
            measurement, found.maps["fracture_probability"], "fracture_probability"
        )
    return measurement


def _fracture_classifier(choice, modality: str):
    """The classifier card to run, or None (``"auto"`` with none installed, or ``None``)."""
    from .segment.card import FRACTURE_TASK
    from .segment.registry import default_model, find_model

    if choice is None or str(choice).lower() == "none":
        return None
    if str(choice) == "auto":
        if not _torch_available():
            return None  # "auto" runs what can run; CT analysis itself needs no torch
        return default_model(FRACTURE_TASK, modality)
    card = find_model(choice)
    if card.task != FRACTURE_TASK:
        raise SpineIOError(card.path or card.name, "is not a fracture classifier")
    if card.modality != modality:
        raise SpineIOError(
            card.path or card.name, f"is a {card.modality} classifier; the input is {modality}"
        )
    return card


def _torch_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _model_record(card) -> dict[str, Any]:
    from .segment.card import sha256_of

    return {
        "name": card.name,
        "path": str(card.path) if card.path else None,
        "sha256": card.sha256,
        "card_sha256": sha256_of(card.path) if card.path else None,
        "architecture": card.architecture,
        "training_data": card.training_data,
    }


def default_segmentation_model(modality: str) -> str:
    """The model ``model="auto"`` stands for: on a radiograph the installed one (user folders
    first, :func:`~napari_vertebra.core.segment.registry.default_model`); on CT the
    non-learned :data:`CT_BASELINE`.

    The bundled CT model (``ct-bodies-mobilenet``) is selectable but not the default: on the
    held-out real lumbar CT it misses part of several posterior walls, which the grades follow
    (docs/training.md).
    """
    return CT_BASELINE if modality == "CT" else _default_radiograph_model()


def _default_radiograph_model() -> str:
    from .segment.card import SEGMENTATION_TASK
    from .segment.registry import USER_MODELS_VARIABLE, default_model

    card = default_model(SEGMENTATION_TASK, "XR")
    if card is not None:
        return card.name
    raise SpineIOError(
        "model",
        "no radiograph model is installed yet; give one with --model PATH (a model card or "
        f"weights in napari-vertebra's format) or put it in ${USER_MODELS_VARIABLE}",
    )


def _add_mean_per_vertebra(measurement: Measurement, values: np.ndarray, column: str) -> None:
    """Mean of a per-pixel map inside each vertebra, as ``column`` (the sacrum row included).

    ``segmentation_confidence`` (mean body probability) also scales the row's confidence;
    ``fracture_probability`` is the fracture head's mean belief (seed 004) that the body is
    fractured, shown beside the grade measured from the heights.
    """
    labels = [int(row["label"]) for row in measurement.rows]
    # bincount inside the vertebrae's box: ndimage.mean and np.unique over a whole 512² × 300 CT
    # take seconds each.
    box = bounding_box(measurement.level_map > 0)
    if box is None:
        box = tuple(slice(0, 0) for _ in measurement.level_map.shape)
    level_map = measurement.level_map[box].ravel()
    size = max([int(level_map.max(initial=0)), *labels]) + 1
    counts = np.bincount(level_map, minlength=size)
    sums = np.bincount(level_map, weights=values[box].ravel(), minlength=size)
    for row, label in zip(measurement.rows, labels, strict=True):
        shown = counts[label] > 0
        row[column] = round(float(sums[label] / counts[label]), 4) if shown else float("nan")
    measurement.retabulate()
