"""The training pool and the batches drawn from it, in worker processes where asked.

The pool holds every training pair on the model grid; it is built once, when the run starts
(phantoms rendered and all pairs resampled by ``TrainConfig.workers`` processes). Each step then
draws a batch of random crops, each augmented (:mod:`.augment`). Every example of a step is
drawn from its own seed, taken from the step's generator ``(run seed, step)``: a batch is the
same whether one process draws it or many, and a resumed run draws what an uninterrupted one
would have.

With workers, the examples are drawn by forked processes that share the pool with the trainer
(copy-on-write, never pickled), and the next step's batch is drawn while the network trains on
this one. Where processes cannot be forked (Windows, macOS's default), the trainer draws them.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np

from ..preprocess import sagittal_stack
from .augment import Augmentation, augment, random_crop
from .sources import DataSpecError, Sample, pairs_from_spec
from .targets import Pair, to_model_grid
from .workers import single_threaded

if TYPE_CHECKING:
    from .loop import TrainConfig

Progress = Callable[[str, int, int], None]


def build_pool(
    specs: Sequence[str], config: TrainConfig, seed: int, progress: Progress | None = None
) -> list[Pair]:
    """Every pair the ``specs`` name, on the model grid, in the order the specs give them.

    Parameters
    ----------
    specs
        ``--data`` specs (:mod:`.sources`); spec ``k`` is read with seed ``seed + 1000 k``.
    config
        The run's configuration: modality, preprocessing and ``workers``.
    seed
        Seed of the phantoms and projections.
    progress
        Called with ("reading SPEC", pairs so far, 0).
    """
    steps = config.model_preprocessing()
    labelled = (
        (spec, sample)
        for index, spec in enumerate(specs)
        for sample in pairs_from_spec(spec, seed + 1000 * index, config.workers)
    )
    pool: list[Pair] = []
    if config.workers > 1:
        with ProcessPoolExecutor(config.workers, initializer=single_threaded) as executor:
            pairs: Iterator[Pair] = executor.map(
                _to_pair, labelled, repeat(config.modality), repeat(steps), chunksize=1
            )
            pool = _collect(pairs, specs, progress)
    else:
        pool = _collect(
            (_to_pair(item, config.modality, steps) for item in labelled), specs, progress
        )
    if not pool:
        raise DataSpecError(f"{', '.join(specs)}: no training pairs")
    return pool


def _collect(pairs: Iterator[Pair], specs: Sequence[str], progress: Progress | None) -> list[Pair]:
    pool = []
    for pair in pairs:
        pool.append(pair)
        if progress is not None:
            progress(f"reading {', '.join(specs)}", len(pool), 0)
    return pool


def _to_pair(labelled: tuple[str, Sample], modality: str, steps: list[dict[str, Any]]) -> Pair:
    spec, (image, bodies, fractured) = labelled
    if image.modality != modality:
        raise DataSpecError(f"{spec}: gives {image.modality} images; this is a {modality} model")
    array, target = to_model_grid(image, bodies, steps, fractured)
    origin = str(image.source.get("path", spec))
    return Pair(array[None] if image.ndim == 2 else array, target, origin)


def draw_example(
    pool: Sequence[Pair], config: TrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented training crop: a random pair, on CT a random sagittal slice with its
    neighbours (nine in ten through the bodies), cropped to ``config.patch`` and augmented."""
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


# The pool and configuration of a drawing process, set before it is forked.
_SHARED: dict[str, Any] = {}


def _draw_seeded(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return draw_example(_SHARED["pool"], _SHARED["config"], np.random.default_rng(seed))


class BatchDrawer:
    """The batch of each training step, drawn ahead by worker processes when there are any.

    Parameters
    ----------
    pool
        The training pairs (:func:`build_pool`).
    config
        The run's configuration: ``seed``, ``batch_size``, ``steps`` and ``workers``.
    """

    def __init__(self, pool: Sequence[Pair], config: TrainConfig) -> None:
        self.pool, self.config = pool, config
        self._pending: dict[int, list[Future]] = {}
        self._executor = None
        if config.workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            _SHARED.update(pool=pool, config=config)
            self._executor = ProcessPoolExecutor(
                config.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=single_threaded,
            )

    def seeds(self, step: int) -> list[int]:
        """The seeds of the examples of ``step``: from the generator ``(run seed, step)``."""
        rng = np.random.default_rng([self.config.seed, step])
        return [int(s) for s in rng.integers(0, 2**63 - 1, size=self.config.batch_size)]

    def batch(self, step: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (image, target) examples of ``step``."""
        if self._executor is None:
            return [
                draw_example(self.pool, self.config, np.random.default_rng(s))
                for s in self.seeds(step)
            ]
        futures = self._pending.pop(step, None) or self._submit(step)
        if step + 1 < self.config.steps:
            self._pending[step + 1] = self._submit(step + 1)
        return [future.result() for future in futures]

    def _submit(self, step: int) -> list[Future]:
        return [self._executor.submit(_draw_seeded, s) for s in self.seeds(step)]

    def close(self) -> None:
        """Stop the drawing processes."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
            _SHARED.clear()

    def __enter__(self) -> BatchDrawer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
