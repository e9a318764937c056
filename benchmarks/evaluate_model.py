"""Held-out figures of a vertebral-body model, as issue 6 asks and the model cards state them.

- Held-out phantoms (seeds never used in training or validation: those are spawned from the
  run seed and its offsets, these from 424242): vertebral-body Dice on the image grid (all
  bodies against all bodies, sacrum excluded), levels correct (each true body takes the level
  the analysis gave most of its pixels), and fracture detection (Genant grade ≥ 1 from the
  measured heights against the phantom's true grade) as sensitivity and specificity.
- Radiograph models: the true lateral projection of the real CT ct-lumbar-totalseg (held out
  of all training), its bodies from body_disc_mask: whether L1–L5 get their levels.
- CT models: the same CT itself, Dice against body_disc_mask label 1 and levels T12–L5.
- Models with a fracture head (seed 004): its per-vertebra fracture_probability >= 0.5 against
  the true grade >= 1. Fracture classifiers (seed 003): the same on the phantoms' true
  vertebrae, and their probabilities on the real CT (reported; it has no fracture reference).

- With ``--trunk-phantoms N``: the same figures on N held-out whole-trunk CT phantoms
  (``surroundings="abdomen"``), for radiograph models their lateral projections with random
  geometry (seed 424242).

Run: python benchmarks/evaluate_model.py MODEL [--phantoms 20] [--trunk-phantoms 0]
[--tta] [--json OUT.json] [--write-card]
(--write-card adds the figures, with this command, to the validation section of the model's card,
under validation.with_tta with --tta; the weights and their SHA-256 are not touched).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_vertebra.core.metrics import dice, vertebral_bodies

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct-lumbar-totalseg"


def level_votes(truth: np.ndarray, predicted: np.ndarray) -> dict[int, int]:
    """True label -> the predicted label covering most of it (0 when nothing)."""
    out = {}
    for value in np.unique(truth):
        if value in (0, 26):
            continue
        values, counts = np.unique(predicted[truth == value], return_counts=True)
        keep = values != 0
        out[int(value)] = int(values[keep][np.argmax(counts[keep])]) if keep.any() else 0
    return out


def held_out_cases(count: int, modality: str, trunk: bool = False):
    """(image, body labels, truth) of held-out phantoms; ``trunk``: whole-trunk CT phantoms, and
    for a radiograph model their lateral projections with random geometry."""
    from napari_vertebra import make_phantom
    from napari_vertebra.core.drr import ProjectionGeometry, lateral_projection

    rng = np.random.default_rng(424242)
    for child in np.random.SeedSequence(424242).spawn(count):
        if not trunk:
            phantom = make_phantom(modality, child)
            yield phantom.image, phantom.labels, phantom.truth
            continue
        phantom = make_phantom("ct", child, surroundings="abdomen")
        if modality == "ct":
            yield phantom.image, phantom.labels, phantom.truth
            continue
        geometry = ProjectionGeometry.random(rng, max_soft_tissue_scale=1.0)
        image, labels = lateral_projection(phantom.image, phantom.labels, geometry, rng)
        yield image, labels, phantom.truth


def evaluate_phantoms(
    model: str, count: int, modality: str, trunk: bool = False, tta: bool = False
) -> dict:
    from napari_vertebra import analyze
    from napari_vertebra.core.labels import level_name

    dices, correct, total, seconds = [], 0, 0, []
    no_sacrum_correct = no_sacrum_total = 0
    tp = fn = tn = fp = 0
    model_counts = {"tp": 0, "fn": 0, "tn": 0, "fp": 0}
    failures = []
    for image, labels, phantom_truth in held_out_cases(count, modality, trunk):
        truth = labels.array
        started = time.perf_counter()
        try:
            result = analyze(image, model=model, tta=tta)
        except ValueError as error:
            failures.append(str(error))
            bodies = [v for v in np.unique(truth) if v not in (0, 26)]
            total += len(bodies)
            dices.append(0.0)
            continue
        seconds.append(time.perf_counter() - started)
        predicted = result.labels.array
        dices.append(dice(vertebral_bodies(truth), vertebral_bodies(predicted)))
        votes = level_votes(truth, predicted)
        correct += sum(int(v == k) for k, v in votes.items())
        total += len(votes)
        if 26 not in truth:
            no_sacrum_correct += sum(int(v == k) for k, v in votes.items())
            no_sacrum_total += len(votes)
        rows = result.table.set_index("level")
        for vertebra in phantom_truth["vertebrae"]:
            voted = votes.get(int(vertebra["label"]), 0)
            name = level_name(voted) if voted else None
            if name is None or name not in rows.index:
                continue
            if "fracture_probability" in rows.columns:
                _count(
                    model_counts,
                    vertebra["genant_grade"] >= 1,
                    rows.loc[name, "fracture_probability"] >= 0.5,
                )
            grade = rows.loc[name, "genant_grade"]
            if pd.isna(grade):  # not graded (end of the column, no reference)
                continue
            positive, found = vertebra["genant_grade"] >= 1, int(grade) >= 1
            tp += positive and found
            fn += positive and not found
            fp += found and not positive
            tn += not found and not positive
    figures = {
        "phantoms": count,
        "dice_vertebral_body_median": round(float(np.median(dices)), 4),
        "dice_vertebral_body_mean": round(float(np.mean(dices)), 4),
        "vertebrae": total,
        "levels_correct_percent": round(100 * correct / max(total, 1), 1),
        "levels_correct_percent_without_sacrum": (
            round(100 * no_sacrum_correct / no_sacrum_total, 1) if no_sacrum_total else None
        ),
        "vertebrae_without_sacrum": no_sacrum_total,
        "fracture_sensitivity": round(tp / max(tp + fn, 1), 3),
        "fracture_specificity": round(tn / max(tn + fp, 1), 3),
        "fracture_counts": {"tp": tp, "fn": fn, "tn": tn, "fp": fp},
        "failed_analyses": len(failures),
        "seconds_per_image_median": round(float(np.median(seconds)), 2) if seconds else None,
    }
    if sum(model_counts.values()):
        figures["fracture_head"] = _rates(model_counts)
    return figures


def _count(counts: dict, positive: bool, found: bool) -> None:
    key = ("t" if positive == found else "f") + ("p" if found else "n")
    counts[key] += 1


def _rates(counts: dict) -> dict:
    """Sensitivity and specificity (probability >= 0.5 against true grade >= 1) with counts."""
    return {
        "sensitivity": round(counts["tp"] / max(counts["tp"] + counts["fn"], 1), 3),
        "specificity": round(counts["tn"] / max(counts["tn"] + counts["fp"], 1), 3),
        "counts": dict(counts),
    }


def evaluate_classifier(model: str, count: int, modality: str) -> dict:
    """A fracture classifier on held-out phantoms' true vertebrae (the measured grade not used)."""
    from napari_vertebra import make_phantom
    from napari_vertebra.core.segment.fracture import classify_vertebrae
    from napari_vertebra.core.segment.registry import find_model

    card = find_model(model)
    counts = {"tp": 0, "fn": 0, "tn": 0, "fp": 0}
    seconds = []
    for child in np.random.SeedSequence(424242).spawn(count):
        phantom = make_phantom(modality, child)
        started = time.perf_counter()
        found = classify_vertebrae(phantom.image, phantom.labels.array, card)
        seconds.append(time.perf_counter() - started)
        for vertebra in phantom.truth["vertebrae"]:
            label = int(vertebra["label"])
            if label in found:
                _count(counts, vertebra["genant_grade"] >= 1, found[label] >= 0.5)
    return {
        "phantoms": count,
        **_rates(counts),
        "seconds_per_image_median": round(float(np.median(seconds)), 2),
    }


def evaluate_classifier_on_real_ct(model: str) -> dict:
    """Probabilities on the real CT's true vertebrae, reported, not scored: there is no fracture
    reference for it (its peer report gives heights only; L1 is 21 mm anterior, 27 mm posterior)."""
    from napari_vertebra.core.labels import level_name
    from napari_vertebra.core.segment.fracture import classify_vertebrae
    from napari_vertebra.core.segment.registry import find_model

    ct, bodies = _real_ct_bodies()
    found = classify_vertebrae(ct, bodies.array, find_model(model))
    named = {level_name(k): round(v, 3) for k, v in sorted(found.items())}
    return {"probabilities": named, "flagged": [k for k, v in named.items() if v >= 0.5]}


def _real_ct_bodies():
    from napari_vertebra import read_image
    from napari_vertebra.samples import lumbar_ct

    ct, vertebrae = lumbar_ct()
    mask = read_image(SHARED / "body_disc_mask.nii.gz", kind="labels")
    labels = vertebrae.array
    bodies = np.where(mask.array == 1, labels, np.where(labels == 26, 26, 0)).astype(np.uint8)
    return ct, vertebrae.with_array(bodies)


def _analyzed_or_segmented(image, model: str, tta: bool = False) -> tuple[np.ndarray, str | None]:
    """The analysis's level map; where the levels cannot be counted (a segmentation in too many
    pieces), the bare segmentation and the reason, so that its Dice is still reported."""
    from napari_vertebra import analyze
    from napari_vertebra.core.pipeline import segment

    try:
        return analyze(image, model=model, tta=tta).labels.array, None
    except ValueError as error:
        return segment(image, model=model, tta=tta).labels.array, str(error)


def evaluate_real_projection(model: str, tta: bool = False) -> dict:
    from napari_vertebra.core.drr import ProjectionGeometry, lateral_projection
    from napari_vertebra.core.labels import level_name

    ct, bodies = _real_ct_bodies()
    image, truth = lateral_projection(ct, bodies, ProjectionGeometry(blur_mm=0.5))
    predicted, problem = _analyzed_or_segmented(image, model, tta)
    votes = level_votes(truth.array, predicted) if problem is None else {}
    named = {level_name(k): (level_name(v) if v else "-") for k, v in votes.items()}
    lumbar = [f"L{k}" for k in range(1, 6)]
    return {
        "levels": named if problem is None else f"not counted: {problem}",
        "l1_l5_correct": all(named.get(level) == level for level in lumbar),
        "dice_vertebral_body": round(
            dice(vertebral_bodies(truth.array), vertebral_bodies(predicted)), 4
        ),
    }


def evaluate_real_ct(model: str, tta: bool = False) -> dict:
    from napari_vertebra.core.labels import level_name

    ct, bodies = _real_ct_bodies()
    predicted, problem = _analyzed_or_segmented(ct, model, tta)
    votes = level_votes(bodies.array, predicted) if problem is None else {}
    named = {level_name(k): (level_name(v) if v else "-") for k, v in votes.items()}
    wanted = ["T12", "L1", "L2", "L3", "L4", "L5"]
    found = dice(vertebral_bodies(bodies.array), vertebral_bodies(predicted))
    figures = {
        "levels": named if problem is None else f"not counted: {problem}",
        "t12_l5_correct": all(named.get(level) == level for level in wanted),
        "dice_vertebral_body": round(found, 4),
    }
    if problem is None:
        figures.update(_heights_against_the_body_mask(bodies, bodies.with_array(predicted)))
    return figures


def _heights_against_the_body_mask(truth, predicted) -> dict:
    """Heights and grades of T12–L5 measured on the predicted levels against those measured on
    TotalSegmentator's body mask (the reference has no fracture; a grade >= 1 is a false one)."""
    from napari_vertebra import measure

    columns = ["anterior_height_mm", "middle_height_mm", "posterior_height_mm"]
    reference = measure(truth).table.set_index("level")
    ours = measure(predicted).table.set_index("level")
    levels = [v for v in ("T12", "L1", "L2", "L3", "L4", "L5") if v in ours.index]
    differences = (ours.loc[levels, columns] - reference.loc[levels, columns]).abs()
    graded = ours.loc[levels, "genant_grade"].dropna()
    return {
        "height_mae_mm_t12_l5": {
            column.removesuffix("_height_mm"): round(float(differences[column].mean()), 2)
            for column in columns
        },
        "height_max_difference_mm": round(float(differences.to_numpy().max()), 2),
        "graded_fractured_against_a_normal_reference": {
            level: int(grade) for level, grade in graded.items() if grade >= 1
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model name or card path")
    parser.add_argument("--phantoms", type=int, default=20)
    parser.add_argument(
        "--trunk-phantoms",
        type=int,
        default=0,
        help="also N whole-trunk CT phantoms (surroundings='abdomen'; projected for radiograph "
        "models, with no extra soft tissue)",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="segment with test-time augmentation (analyze's tta=True); with --write-card the "
        "figures go to the card's validation.with_tta",
    )
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--write-card", action="store_true", help="add the figures to the card")
    args = parser.parse_args()
    from napari_vertebra.core.segment.card import FRACTURE_TASK
    from napari_vertebra.core.segment.registry import find_model

    card = find_model(args.model)
    figures = {"model": card.name, "sha256": card.sha256}
    if card.task == FRACTURE_TASK:
        figures["held_out_phantoms"] = evaluate_classifier(
            args.model, args.phantoms, card.modality.lower()
        )
        if card.modality == "CT":
            figures["real_ct"] = evaluate_classifier_on_real_ct(args.model)
    else:
        figures["held_out_phantoms"] = evaluate_phantoms(
            args.model, args.phantoms, card.modality.lower(), tta=args.tta
        )
        if args.trunk_phantoms:
            key = "held_out_trunk_projections" if card.modality == "XR" else "held_out_trunk_cts"
            figures[key] = evaluate_phantoms(
                args.model, args.trunk_phantoms, card.modality.lower(), trunk=True, tta=args.tta
            )
    if card.task == FRACTURE_TASK:
        pass  # its real-CT probabilities are above
    elif card.modality == "XR":
        figures["real_ct_lateral_projection"] = evaluate_real_projection(args.model, args.tta)
    else:
        figures["real_ct"] = evaluate_real_ct(args.model, args.tta)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.write_card:
        import sys

        data = json.loads(card.path.read_text(encoding="utf-8"))
        figures.pop("model"), figures.pop("sha256")
        command = "python " + " ".join(["benchmarks/evaluate_model.py", *sys.argv[1:]])
        if args.tta:
            data["validation"]["with_tta"] = {**figures, "evaluation_command": command}
        else:
            data["validation"].update(figures)
            data["validation"]["evaluation_command"] = command
        card.path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote the figures into {card.path}")


if __name__ == "__main__":
    main()
