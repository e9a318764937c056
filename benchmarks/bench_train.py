"""Training throughput: images per second of the training step (data drawing, augmentation,
forward, backward, optimiser) for the bundled radiograph architecture, on CPU and, when there is
one, on CUDA.

Run: python benchmarks/bench_train.py [--steps 20] [--patch 256] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    from napari_vertebra.core.train import TrainConfig, train

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch threads {torch.get_num_threads()}")
    for device in devices:
        stamps: list[float] = []

        def progress(what, done, total, stamps=stamps):
            if what == "training":
                stamps.append(time.perf_counter())

        with tempfile.TemporaryDirectory() as folder:
            config = TrainConfig(
                name="bench",
                output=f"{folder}/run",
                data=["phantom-xr:8"],
                validation=["phantom-xr:1"],
                steps=args.steps,
                batch_size=args.batch_size,
                patch=args.patch,
                evaluate_every=args.steps,
                device=device,
            )
            train(config, progress=progress)
        # The first step warms up; the last is followed by the validation.
        per_step = (stamps[-1] - stamps[1]) / (len(stamps) - 2)
        print(
            f"{device}: {args.batch_size / per_step:.1f} images/s "
            f"({per_step:.2f} s per step of {args.batch_size} × {args.patch}²), "
            f"U-Net MobileNetV2"
        )


if __name__ == "__main__":
    main()
