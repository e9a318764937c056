"""End-to-end ``analyze`` time and peak memory, and the CT baseline's Dice on the real CTs.

Cases (each run in a fresh process so that its peak resident memory is its own):
- radiograph: a 1024 × 1024 lateral phantom through a ResNet34 U-Net (random weights: speed
  does not depend on them) with seed 004's preprocessing (clip, z-score, 1024² letterbox,
  CLAHE);
- CT: a 512 × 512 × 300 volume (a CT phantom at 0.7 × 0.7 × 1.0 mm placed in air) through the
  non-learned CT baseline, and through each installed CT model;
- the same radiograph on CUDA when a GPU is available.
Then the baseline's vertebral-body Dice on the two real CTs in ../shared/data and on CT
phantoms (with whether all their levels came out right).

Run: python benchmarks/bench_analyze.py [--repeats 3] [--skip-dice]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
from napari_vertebra import analyze, make_phantom
from napari_vertebra.core.image import SpineImage

case, repeats, model, device = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if case == "xr":
    phantom = make_phantom("xr", seed=0, spacing=0.25)
    frame = np.zeros((1024, 1024), np.float32)
    h, w = min(1024, phantom.image.shape[0]), min(1024, phantom.image.shape[1])
    frame[:h, :w] = phantom.image.array[:h, :w]
    image = SpineImage(frame, (0.25, 0.25), "XR", ("I", "P"))
else:
    phantom = make_phantom("ct", seed=0, spacing=(1.0, 0.7, 0.7))
    volume = np.full((300, 512, 512), -1000, np.int16)
    src = phantom.image.array[:300, :512, :512]
    volume[: src.shape[0], : src.shape[1], : src.shape[2]] = src
    image = SpineImage(volume, (1.0, 0.7, 0.7), "CT", ("I", "P", "L"))
times = []
for _ in range(repeats + 1):  # the first run loads the model and warms up
    start = time.perf_counter()
    result = analyze(image, model=model, device=device)
    times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB -> GiB
print(json.dumps({"times": times, "peak_gib": peak, "shape": list(image.shape),
                  "bodies": int(len(result.table)), "stages": result.summary["timings_s"]}))
"""


def _tiny_card(folder: Path) -> Path:
    import torch

    from napari_vertebra.core.preprocess import SEED004_RADIOGRAPH
    from napari_vertebra.core.segment.card import save_model
    from napari_vertebra.core.segment.nets import build_network

    torch.manual_seed(0)
    arguments = {"encoder_name": "resnet34", "in_channels": 1, "classes": 2}
    card = save_model(
        build_network("unet", **arguments),
        folder,
        "bench-unet-resnet34",
        architecture="unet",
        arguments=arguments,
        modality="XR",
        classes=["background", "vertebral_body"],
        preprocessing=list(SEED004_RADIOGRAPH),
        training_data="none: random weights (benchmark of speed only)",
    )
    return card.path


def run_case(case: str, repeats: int, model: str, device: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, case, str(repeats), model, device],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(name: str, figures: dict, target_s: float, target_gib: float | None) -> None:
    best = min(figures["times"][1:])
    first = figures["times"][0]
    memory = f"peak memory {figures['peak_gib']:.2f} GiB"
    if target_gib is not None:
        memory += f" (target ≤ {target_gib:g} GiB)"
    print(
        f"{name}: {tuple(figures['shape'])}, best {best:.2f} s of {len(figures['times']) - 1} "
        f"(first run {first:.2f} s; target ≤ {target_s:g} s), {memory}; "
        f"stages {figures['stages']}"
    )


def baseline_dice() -> None:
    import numpy as np

    from napari_vertebra import analyze, read_image
    from napari_vertebra.core.metrics import dice as overlap

    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    cases = (
        (
            "lumbar CT 3 mm (label 1)",
            data / "ct-lumbar-totalseg",
            "ct.nii.gz",
            "body_disc_mask.nii.gz",
            (1,),
        ),
        (
            "L2-L4 crop 1.5 mm (50, 49)",
            data / "ct-crop-tptbox",
            "sub-ct_label-22_ct.nii.gz",
            "sub-ct_seg-subreg_label-22_msk.nii.gz",
            (49, 50),
        ),
    )
    for name, folder, image, reference, values in cases:
        if not folder.is_dir():
            print(f"{name}: {folder} not found")
            continue
        result = analyze(folder / image)
        truth = np.isin(read_image(folder / reference, kind="labels").array, values)
        ours = result.labels.array > 0
        dice = overlap(ours, truth)
        print(
            f"CT baseline Dice, {name}: {dice:.3f} (target ≥ 0.85); levels "
            f"{' '.join(result.table['level'])}; {result.summary['timings_s']['total_s']:.2f} s"
        )


def baseline_on_phantoms(n: int) -> None:
    import numpy as np

    from napari_vertebra import analyze, make_phantom
    from napari_vertebra.core.metrics import dice as overlap

    scores, right = [], 0
    for seed in range(n):
        phantom = make_phantom("ct", seed=seed)
        result = analyze(phantom.image)
        truth = phantom.labels.array > 0
        ours = result.labels.array > 0
        scores.append(overlap(ours, truth))
        expected = [v["level"] for v in phantom.truth["vertebrae"]]
        expected += ["S1"] if phantom.truth["sacrum"] else []
        right += result.table["level"].tolist() == expected
    print(
        f"CT baseline on {n} CT phantoms: Dice median {np.median(scores):.3f} "
        f"(range {min(scores):.3f}-{max(scores):.3f}); levels all right in {right} of {n}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-dice", action="store_true")
    parser.add_argument("--phantoms", type=int, default=12, help="CT phantoms for the baseline")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    with tempfile.TemporaryDirectory() as folder:
        card = str(_tiny_card(Path(folder)))
        report(
            "radiograph, ResNet34 U-Net, CPU", run_case("xr", args.repeats, card, "cpu"), 2, None
        )
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name()
            report(
                f"radiograph, ResNet34 U-Net, {name}",
                run_case("xr", args.repeats, card, "cuda"),
                2,
                None,
            )
        else:
            print("no CUDA device here: GPU figures not measured")
    report(
        "CT, non-learned baseline, CPU", run_case("ct", args.repeats, "ct-baseline", "cpu"), 60, 4
    )
    from napari_vertebra.core.segment.card import SEGMENTATION_TASK
    from napari_vertebra.core.segment.registry import available_models

    for name, card in available_models(task=SEGMENTATION_TASK).items():
        if card.modality == "CT":
            report(f"CT, model {name}, CPU", run_case("ct", args.repeats, name, "cpu"), 60, 4)
    if not args.skip_dice:
        baseline_dice()
        baseline_on_phantoms(args.phantoms)


if __name__ == "__main__":
    main()
