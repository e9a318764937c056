"""What every data process of a training run does first."""

from __future__ import annotations


def single_threaded() -> None:
    """Initializer of the processes that render phantoms, resample pairs and draw batches.

    A process forked from one whose OpenMP thread pool has run (any sizeable torch operation on
    the CPU, such as loading the model to fine-tune) hangs in its first parallel torch
    operation: the pool's threads did not survive the fork. With one thread, torch runs each
    operation inline and never enters OpenMP (PyTorch's own DataLoader workers do the same). One
    thread per process is also what several data processes sharing the cores want.
    """
    import torch

    torch.set_num_threads(1)
