"""Train the checkpoints of the section *Variational dequantisation* of the chapter *RealNVP*.

Two identical RealNVPs (``models.realnvp_image`` with the settings of
``train_realnvp_digits.py``) are fitted to scikit-learn's 8x8 digits in logit space with
the same budget: the same epochs, batch size, learning rate, seed and optimiser steps.

- **uniform**: fresh uniform noise every batch (``DequantizeLogit``); the loss is the
  uniform bound (Theis et al. 2016).
- **variational**: the noise comes from a ``VariationalDequantizer`` q(u | k) trained
  jointly with the flow (``FlowWithDequantizer``); the loss is the variational bound
  E_q[log p(k + u) - log q(u | k)] (Ho et al. 2019, Flow++). The dequantiser's parameters
  are extra, and counted separately.

Both keep the weights of their best epoch on the last ``VALIDATION_IMAGES`` training
images (measured with their own bound; no early stopping, so both take every step). The
test split is never seen in training. The split, the logit's margin ``ALPHA`` and the
checkpoint folder are those of ``digits_checkpoint.py``. Then the test bits/dim of both
bounds are printed (``evaluate_bits_per_dim`` with ``DRAWS`` seeded noise draws) and three
checkpoints are written: ``realnvp_digits_uniform.pt``, ``realnvp_digits_variational.pt``
(flows, loaded with ``flowcourse.io.load``) and ``realnvp_digits_dequantizer.pt`` (loaded
with ``io.load(path, flow=VariationalDequantizer(IMAGE_SHAPE, NUM_LEVELS))``).

Deterministic (seeded, CPU, one thread). Usage::

    .venv/bin/python scripts/train_dequantisation_digits.py            # writes the checkpoints
    .venv/bin/python scripts/train_dequantisation_digits.py --epochs 2 --output-dir /tmp/x
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from digits_checkpoint import ALPHA, CHECKPOINTS, digits_splits, preprocessing
from train_realnvp_digits import MODEL

from flowcourse import io, models
from flowcourse.data import IMAGE_SHAPE, NUM_LEVELS
from flowcourse.dequantisation import FlowWithDequantizer, VariationalDequantizer
from flowcourse.preprocessing import (
    DequantizeLogit,
    VariationalDequantizeLogit,
    evaluate_bits_per_dim,
)
from flowcourse.training import fit

DRAWS = 4  # dequantisation draws per test image, as in the chapter
TRAINING = {"epochs": 100, "batch_size": 64, "learning_rate": 1e-3, "seed": 0}


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    parser.add_argument("--output-dir", type=Path, default=CHECKPOINTS)
    args = parser.parse_args()
    training = {**TRAINING, "epochs": args.epochs}

    torch.set_num_threads(1)  # deterministic, and faster than threads for models this small
    torch.manual_seed(0)
    train_part, validation_part, test = digits_splits()
    uniform = preprocessing()

    def train_one(model: torch.nn.Module, preprocess: DequantizeLogit) -> tuple[int, float]:
        start = time.perf_counter()
        history = fit(
            model,
            train_part,
            validation_data=validation_part,
            preprocess=preprocess,
            num_levels=NUM_LEVELS,
            patience=training["epochs"],  # keep the best epoch's weights, never stop early
            device="cpu",
            **training,
        )
        best = history.best_epoch
        print(
            f"  {history.steps} steps, best epoch {best}, validation "
            f"{history.validation_bits_per_dim[best]:.4f} bits/dim"
        )
        return history.steps, time.perf_counter() - start

    print("uniform dequantisation:")
    flow_uniform = models.realnvp_image(**MODEL)
    steps_uniform, seconds_uniform = train_one(flow_uniform, uniform)

    print("variational dequantisation:")
    flow_variational = models.realnvp_image(**MODEL)
    dequantizer = VariationalDequantizer(IMAGE_SHAPE, NUM_LEVELS, seed=0)
    variational = VariationalDequantizeLogit(dequantizer, alpha=ALPHA)
    pair = FlowWithDequantizer(flow_variational, dequantizer)
    steps_variational, seconds_variational = train_one(pair, variational)
    assert steps_uniform == steps_variational, "the same budget for both"

    for module in (flow_uniform, flow_variational, dequantizer):
        module.eval()
    rows = [
        ("uniform", "uniform", evaluate_bits_per_dim(flow_uniform, test, uniform, DRAWS)),
        (
            "variational",
            "variational",
            evaluate_bits_per_dim(flow_variational, test, variational, DRAWS),
        ),
        ("variational", "uniform", evaluate_bits_per_dim(flow_variational, test, uniform, DRAWS)),
    ]
    print(f"\ntest bits/dim ({len(test)} images, {DRAWS} draws each), {steps_uniform} steps each")
    print(f"{'trained with':>14} {'bound':>12} {'bits/dim':>9}")
    for trained, bound, bits in rows:
        print(f"{trained:>14} {bound:>12} {bits:9.4f}")
    print(
        f"parameters: flow {count(flow_uniform):,} each, dequantiser {count(dequantizer):,}; "
        f"training {seconds_uniform:.0f} s (uniform), {seconds_variational:.0f} s (variational)"
    )

    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, module in [
        ("realnvp_digits_uniform", flow_uniform),
        ("realnvp_digits_variational", flow_variational),
        ("realnvp_digits_dequantizer", dequantizer),
    ]:
        path = args.output_dir / f"{name}.pt"
        io.save(module, path)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
