"""Train the digits checkpoint of the chapter *RealNVP* (flowcourse/checkpoints/realnvp_digits.pt).

The chapter (``book/realnvp.md``) loads this checkpoint instead of training for several
minutes, and retrains the same model with the same recipe when ``FULL_SCALE`` is on.

Recipe: ``models.realnvp_image`` (two scales on 1x8x8, ConvNet conditioners) fitted by
maximum likelihood to scikit-learn's 8x8 digits in logit space, with fresh uniform
dequantisation noise for every batch (``preprocessing.DequantizeLogit``, alpha = 0.05).
The last ``VALIDATION_IMAGES`` images of the training split are held out for early
stopping (the best epoch's weights are kept); the test split is never seen in training.

Deterministic: seeded, CPU, one thread, so the same command writes the same weights.
Usage::

    .venv/bin/python scripts/train_realnvp_digits.py            # writes the checkpoint
    .venv/bin/python scripts/train_realnvp_digits.py --output /tmp/x.pt --epochs 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from flowcourse import io, models
from flowcourse.data import IMAGE_SHAPE, NUM_LEVELS, load_digits_tensors
from flowcourse.preprocessing import DequantizeLogit, evaluate_bits_per_dim
from flowcourse.training import fit

MODEL = {
    "image_shape": list(IMAGE_SHAPE),
    "num_scales": 2,
    "hidden_channels": 64,
    "num_hidden_layers": 1,
    "seed": 0,
}
ALPHA = 0.05  # the logit's margin (RealNVP's value); the chapter uses the same
VALIDATION_IMAGES = 144  # 10% of the 1438 training images, for early stopping
TRAINING = {
    "epochs": 200,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "patience": 20,
    "seed": 0,
}
OUTPUT = Path(__file__).resolve().parents[1] / "flowcourse" / "checkpoints" / "realnvp_digits.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    torch.set_num_threads(1)  # deterministic, and faster than threads for a model this small
    torch.manual_seed(0)
    train = load_digits_tensors("train")
    test = load_digits_tensors("test")
    train_part, validation_part = train[:-VALIDATION_IMAGES], train[-VALIDATION_IMAGES:]
    preprocess = DequantizeLogit(NUM_LEVELS, alpha=ALPHA)

    flow = models.realnvp_image(**MODEL)
    start = time.perf_counter()
    history = fit(
        flow,
        train_part,
        validation_data=validation_part,
        preprocess=preprocess,
        num_levels=NUM_LEVELS,
        device="cpu",
        **{**TRAINING, "epochs": args.epochs},
    )
    seconds = time.perf_counter() - start
    flow.eval()
    test_bpd = evaluate_bits_per_dim(flow, test, preprocess)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    io.save(flow, args.output)
    best = history.best_epoch
    print(
        f"trained {history.steps} steps ({len(history.train_loss)} epochs, best epoch {best}) "
        f"in {seconds:.0f} s; validation {history.validation_bits_per_dim[best]:.4f} bits/dim, "
        f"test {test_bpd:.4f} bits/dim"
    )
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
