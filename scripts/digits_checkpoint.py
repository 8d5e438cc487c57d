"""The recipe shared by the digits checkpoint scripts (``train_realnvp_digits.py``,
``train_maf_digits.py``): fit by maximum likelihood in logit space with fresh
dequantisation noise every batch, early stopping on the last ``VALIDATION_IMAGES``
training images (the test split is never seen), then report test bits/dim and save.
A conditional flow gets a ``context`` for each image (``train_conditional_maf_digits.py``:
the one-hot label).

Deterministic: seeded, CPU, one thread, so the same command writes the same weights.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from flowcourse import io
from flowcourse.core import Flow
from flowcourse.data import NUM_LEVELS, load_digits_tensors
from flowcourse.preprocessing import DequantizeLogit, evaluate_bits_per_dim
from flowcourse.training import History, fit

ALPHA = 0.05  # the logit's margin (RealNVP's value); the chapters use the same
VALIDATION_IMAGES = 144  # 10% of the 1438 training images, for early stopping
CHECKPOINTS = Path(__file__).resolve().parents[1] / "flowcourse" / "checkpoints"


def digits_splits(flatten: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training part, the held-out validation part and the test split, as levels.

    Images ``(N, 1, 8, 8)``, or with ``flatten`` ``(N, 64)`` vectors (row-major pixels).
    The validation part is the last ``VALIDATION_IMAGES`` training images.
    """
    train, test = load_digits_tensors("train"), load_digits_tensors("test")
    if flatten:
        train, test = train.flatten(1), test.flatten(1)
    return train[:-VALIDATION_IMAGES], train[-VALIDATION_IMAGES:], test


def preprocessing() -> DequantizeLogit:
    """Uniform dequantisation then the logit with margin ``ALPHA``, as in the chapters."""
    return DequantizeLogit(NUM_LEVELS, alpha=ALPHA)


def fit_on_digits(
    flow: Flow,
    train_part: torch.Tensor,
    validation_part: torch.Tensor,
    training: dict[str, object],
    progress: bool = True,
    **contexts: torch.Tensor,
) -> tuple[History, float]:
    """Train ``flow`` with the recipe (``training``: ``fit``'s keyword arguments); return
    its history and the seconds it took. ``contexts``: ``train_context`` and
    ``validation_context`` for a conditional flow."""
    start = time.perf_counter()
    history = fit(
        flow,
        train_part,
        validation_data=validation_part,
        preprocess=preprocessing(),
        num_levels=NUM_LEVELS,
        device="cpu",
        progress=progress,
        **contexts,
        **training,
    )
    return history, time.perf_counter() - start


def train_and_save(
    build: Callable[[], Flow],
    training: dict[str, object],
    name: str,
    description: str,
    flatten: bool = False,
    progress: bool = True,
    context: Callable[[str], torch.Tensor] | None = None,
) -> None:
    """Parse ``--epochs``/``--output``, train ``build()`` on the digits, save it as ``name``.

    ``context(split)``, if given, returns the context ``(N, C)`` of the images of
    ``load_digits_tensors(split)``, row for row; the flow then models ``p(x | context)``.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=training["epochs"])
    parser.add_argument("--output", type=Path, default=CHECKPOINTS / f"{name}.pt")
    args = parser.parse_args()

    torch.set_num_threads(1)  # deterministic, and faster than threads for a model this small
    torch.manual_seed(0)
    train_part, validation_part, test = digits_splits(flatten)
    contexts = {}
    if context is not None:
        train_context, test_context = context("train"), context("test")
        contexts = {
            "train_context": train_context[:-VALIDATION_IMAGES],
            "validation_context": train_context[-VALIDATION_IMAGES:],
        }

    flow = build()
    history, seconds = fit_on_digits(
        flow,
        train_part,
        validation_part,
        {**training, "epochs": args.epochs},
        progress=progress,
        **contexts,
    )
    flow.eval()
    if context is None:
        test_bpd = evaluate_bits_per_dim(flow, test, preprocessing())
    else:
        test_bpd = evaluate_bits_per_dim(
            lambda y: flow.log_prob(y, test_context), test, preprocessing()
        )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    io.save(flow, args.output)
    best = history.best_epoch
    print(
        f"trained {history.steps} steps ({len(history.train_loss)} epochs, best epoch {best}) "
        f"in {seconds:.0f} s; validation {history.validation_bits_per_dim[best]:.4f} bits/dim, "
        f"test {test_bpd:.4f} bits/dim"
    )
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
