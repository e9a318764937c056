"""Train a small radiograph model on phantoms and projected CT phantoms, then analyze with it.

A short run (a few minutes on a laptop CPU) to see the whole loop: the run folder gets
config.json, metrics.csv, curves.png, checkpoint.pt and the model with its card. The bundled
model was trained the same way, longer (its card holds the exact command).

Run: python examples/train_radiograph_model.py [RUN_FOLDER] [--steps 60]
"""

import argparse
import os
from pathlib import Path

from napari_vertebra import analyze, make_phantom
from napari_vertebra.core.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default="runs/example-xr")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    run = Path(args.run)
    config = TrainConfig(
        name="example-xr",
        output=str(run),
        data=["phantom-xr:40", "drr:phantom-ct:2"],
        validation=["phantom-xr:4"],
        steps=args.steps,
        evaluate_every=max(1, args.steps // 3),
        description="example run of examples/train_radiograph_model.py",
    )
    card = train(config, resume=(run / "checkpoint.pt").exists())
    print(f"validation Dice on the model grid: {card.validation['dice_vertebral_body_model_grid']}")
    print(f"curves: {run / 'curves.png'}")

    # Use it like any installed model: by path, or by name with NAPARI_VERTEBRA_MODELS set.
    os.environ["NAPARI_VERTEBRA_MODELS"] = str(run)
    phantom = make_phantom("xr", 31)
    try:
        result = analyze(phantom.image, model="example-xr")
        print(result.table[["level", "anterior_height_mm", "genant_grade"]].to_string())
    except ValueError as error:  # a short run may not yet separate every body
        print(f"analysis with the short-run model failed: {error}")


if __name__ == "__main__":
    main()
