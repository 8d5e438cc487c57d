"""Train the digits checkpoint of the chapter *Continuous-time flows and flow matching*.

Writes ``flowcourse/checkpoints/flow_matching_digits.pt``, which the chapter
(``book/flow_matching.md``) loads instead of training for several minutes; with
``FULL_SCALE`` on, the chapter retrains the same model with the same recipe.

Recipe: ``models.cnf`` (a velocity MLP over the 64 pixels of scikit-learn's 8x8 digits,
flattened to vectors, plus the time) trained by flow matching
(``flowcourse.continuous.fit_flow_matching``) in logit space, with fresh uniform
dequantisation noise for every batch (``preprocessing.DequantizeLogit``, alpha = 0.05,
as in the chapters *RealNVP* and *MAF*). Flow matching has no likelihood to watch
during training, so there is no early stopping: all 1438 training images are used and
the last weights are kept (the learning rate decays to zero on a cosine). The test
split is only scored at the end: bits/dim by integrating the exact divergence, with
the book's protocol (four seeded draws of the dequantisation noise, seed 123).

Deterministic (seeded, CPU, one thread). Cost: about 28 minutes of training and 7 of
scoring on a CPU core shared with other jobs (test: 2.13 bits/dim). Usage::

    .venv/bin/python scripts/train_flow_matching_digits.py            # writes the checkpoint
    .venv/bin/python scripts/train_flow_matching_digits.py --output /tmp/x.pt --steps 50
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from digits_checkpoint import ALPHA, CHECKPOINTS

from flowcourse import io, models
from flowcourse.continuous import fit_flow_matching
from flowcourse.data import NUM_LEVELS, load_digits_tensors
from flowcourse.preprocessing import DequantizeLogit, evaluate_bits_per_dim

MODEL = {
    "features": 64,
    "hidden_features": 256,
    "num_hidden_layers": 3,
    "num_steps": 16,
    "method": "rk4",
    "seed": 0,
}
TRAINING = {"steps": 12_000, "batch_size": 128, "learning_rate": 1e-3, "seed": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=TRAINING["steps"])
    parser.add_argument("--output", type=Path, default=CHECKPOINTS / "flow_matching_digits.pt")
    parser.add_argument("--test-draws", type=int, default=4)
    args = parser.parse_args()

    torch.set_num_threads(1)  # deterministic, and faster than threads for a model this small
    torch.manual_seed(0)
    train = load_digits_tensors("train").flatten(1)  # (1438, 64) levels, raster order
    test = load_digits_tensors("test").flatten(1)  # (359, 64)
    preprocess = DequantizeLogit(NUM_LEVELS, alpha=ALPHA)

    flow = models.cnf(**MODEL)
    history = fit_flow_matching(
        flow,
        train,
        preprocess=preprocess,
        device="cpu",
        progress=True,
        **{**TRAINING, "steps": args.steps},
    )
    flow.eval()
    start = time.perf_counter()
    test_bpd = evaluate_bits_per_dim(flow, test, preprocess, draws=args.test_draws)
    scoring_seconds = time.perf_counter() - start

    args.output.parent.mkdir(parents=True, exist_ok=True)
    io.save(flow, args.output)
    last = sum(history.step_loss[-200:]) / len(history.step_loss[-200:])
    print(
        f"trained {history.steps} steps in {history.seconds:.0f} s (last 200 steps' mean loss "
        f"{last:.3f}); test {test_bpd:.4f} bits/dim ({MODEL['num_steps']} RK4 steps, exact "
        f"divergence, {args.test_draws} noise draws, scored in {scoring_seconds:.0f} s)"
    )
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
