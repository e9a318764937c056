"""The run folder and optimisation state that every trainer shares.

A run folder holds ``config.json`` (what was asked), ``metrics.csv`` (one row per evaluation)
and ``checkpoint.pt`` (the latest state: network, optimiser, schedule, step and the best
network so far; tensors only, read back with ``weights_only=True``). A folder that already
holds a run is never overwritten; ``resume`` continues it from its checkpoint.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_path


def open_run_folder(output: str | Path, resume: bool) -> Path:
    """The run folder, created; refuses one that holds a run unless ``resume`` (with a
    checkpoint to resume from)."""
    out = Path(output)
    if out.exists() and any(out.iterdir()) and not resume:
        raise FileExistsError(
            f"{out} already holds a run; pass resume to continue it, or choose another folder"
        )
    if resume and not (out / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{out / 'checkpoint.pt'}: no checkpoint to resume from")
    out.mkdir(parents=True, exist_ok=True)
    return out


class TrainingRun:
    """AdamW with a one-cycle schedule over ``config.steps``, the metrics file, checkpoints and
    the best network so far, for ``network`` in the run folder ``out``.

    Parameters
    ----------
    config
        The run's ``TrainConfig`` (written to ``config.json`` unless resuming).
    network
        The network being trained (already on its device).
    out
        The run folder (:func:`open_run_folder`).
    fields
        Columns of ``metrics.csv``: ``step``, ``train_loss``, the validation scores in the order
        :meth:`evaluated` gets them, ``images_per_second``.
    resume
        Load the checkpoint: network, optimiser, schedule, step and best network.
    """

    def __init__(self, config, network, out: Path, fields: list[str], resume: bool) -> None:
        import torch

        self.config, self.network, self.out, self.fields = config, network, out, fields
        self.checkpoint_path = out / "checkpoint.pt"
        self.metrics_path = out / "metrics.csv"
        if not resume:
            (out / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
        self.optimizer = torch.optim.AdamW(
            network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=config.learning_rate, total_steps=config.steps, pct_start=0.1
        )
        self.step, self.best, self.best_state = 0, -1.0, None
        if resume:
            saved = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
            network.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.schedule.load_state_dict(saved["schedule"])
            self.step, self.best = int(saved["step"]), float(saved["best"])
            self.best_state = saved["best_model"]
        if not self.metrics_path.exists():
            self.metrics_path.write_text(",".join(fields) + "\n")
        self._losses: list[float] = []
        self._seen = 0
        self._started = time.perf_counter()

    @property
    def done(self) -> bool:
        """Whether all ``config.steps`` steps have been taken."""
        return self.step >= self.config.steps

    def rng(self) -> np.random.Generator:
        """The random draws of this step: they depend only on (seed, step), so a resumed run
        draws what an uninterrupted one would have."""
        return np.random.default_rng([self.config.seed, self.step])

    def optimise(self, loss, batch_size: int) -> bool:
        """One optimiser step on ``loss``; whether the validation is due now."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.step += 1
        self._seen += batch_size
        self._losses.append(float(loss.detach()))
        return self.step % self.config.evaluate_every == 0 or self.done

    def evaluated(self, scores: dict[str, float], score: float) -> None:
        """Write a metrics row, keep the network when ``score`` is the best so far, and save
        the checkpoint."""
        rate = self._seen / (time.perf_counter() - self._started)
        row = [self.step, float(np.mean(self._losses)), *scores.values(), rate]
        with open(self.metrics_path, "a", newline="") as handle:
            cells = [f"{v:.5g}" if isinstance(v, float) else v for v in row]
            csv.writer(handle).writerow(cells)
        self._losses, self._seen, self._started = [], 0, time.perf_counter()
        if score > self.best:
            self.best = score
            self.best_state = {
                k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()
            }
        import torch

        state = {
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "step": self.step,
            "best": self.best,
            "best_model": self.best_state,
        }
        with atomic_path(self.checkpoint_path) as temporary:
            torch.save(state, temporary)

    def best_network(self):
        """The network with the best weights, in float16 when the config asks for it."""
        self.network.load_state_dict(self.best_state)
        if self.config.half_precision_weights:
            return self.network.half()
        return self.network

    def history(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.csv`` (as text)."""
        with open(self.metrics_path, newline="") as handle:
            return list(csv.DictReader(handle))
