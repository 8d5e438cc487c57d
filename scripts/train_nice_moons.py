"""Train the NICE checkpoint of the chapter *NICE*: ``flowcourse/checkpoints/nice_moons.pt``.

The chapter (``book/nice.md``) loads this checkpoint instead of training for minutes,
and retrains the same model with the same recipe when ``FULL_SCALE`` is on.

Recipe: ``models.nice`` (eight additive couplings with alternating masks, MLP
conditioners with two hidden layers of 64 units, then a diagonal scaling) fitted by
maximum likelihood to 20,000 samples of ``TwoMoons()`` (seed 5), with 2,000 more
(seed 6) held out for early stopping: the weights of the epoch with the lowest
validation loss are kept. The chapter's test samples (seed 2) are never seen here.

Deterministic: seeded, CPU, one thread, so the same command writes the same weights.
Usage::

    .venv/bin/python scripts/train_nice_moons.py            # writes the checkpoint
    .venv/bin/python scripts/train_nice_moons.py --output /tmp/x.pt --epochs 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from flowcourse import io, models
from flowcourse.data import TwoMoons
from flowcourse.training import fit

MODEL = {"features": 2, "num_layers": 8, "hidden_features": 64, "num_hidden_layers": 2, "seed": 0}
DATA = {"train_samples": 20_000, "train_seed": 5, "validation_samples": 2_000, "validation_seed": 6}
TRAINING = {"epochs": 300, "batch_size": 256, "learning_rate": 3e-3, "patience": 30, "seed": 0}
OUTPUT = Path(__file__).resolve().parents[1] / "flowcourse" / "checkpoints" / "nice_moons.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    torch.set_num_threads(1)  # deterministic, and faster than threads for a model this small
    torch.manual_seed(0)
    moons = TwoMoons()
    train = moons.sample(DATA["train_samples"], generator=DATA["train_seed"])
    validation = moons.sample(DATA["validation_samples"], generator=DATA["validation_seed"])
    test = moons.sample(5_000, generator=2)  # the chapter's test samples, only reported

    flow = models.nice(**MODEL)
    start = time.perf_counter()
    history = fit(
        flow,
        train,
        validation_data=validation,
        epochs=args.epochs,
        batch_size=TRAINING["batch_size"],
        learning_rate=TRAINING["learning_rate"],
        patience=TRAINING["patience"],
        seed=TRAINING["seed"],
        device="cpu",
    )
    seconds = time.perf_counter() - start
    with torch.no_grad():
        test_nll = float(-flow.log_prob(test).mean())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    io.save(flow, args.output)
    size_kb = args.output.stat().st_size / 1024
    print(
        f"best epoch {history.best_epoch} of {len(history.train_loss)} "
        f"(validation {history.validation_loss[history.best_epoch]:.4f} nats), "
        f"test NLL {test_nll:.4f} nats, {seconds:.0f} s; wrote {args.output} ({size_kb:.0f} kB)"
    )


if __name__ == "__main__":
    main()
