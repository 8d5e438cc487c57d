"""Train the Glow ablation of the chapter *Glow*: channel mixing x coupling x seeds on the digits.

A small version of Kingma & Dhariwal (2018), Fig. 3: the same multi-scale Glow
(``models.glow``) with three ways of mixing the channels between couplings,

- ``reverse``: RealNVP's fixed reversal of the channels,
- ``shuffle``: a fixed random permutation per step,
- ``conv1x1``: Glow's learned invertible 1x1 convolution (LU-parametrised),

each with an additive and with an affine coupling, each trained from three seeds on
scikit-learn's 8x8 digits in logit space (fresh uniform dequantisation noise for every
batch, ``preprocessing.DequantizeLogit`` with alpha = 0.05). The last
``VALIDATION_IMAGES`` training images are held out: the weights of the epoch with the
lowest validation bits/dim are kept, and the test split is only scored at the end,
with four seeded draws of the dequantisation noise per image.

It writes, next to each other in ``flowcourse/checkpoints/``:

- ``glow_ablation.json``: the settings, and for every run its test bits/dim, its
  per-epoch training and validation bits/dim, its best epoch, size and run time;
- ``glow_digits.pt``: the run with the lowest *validation* bits/dim (the test split
  does not choose the model), saved with ``flowcourse.io.save``.

Deterministic: every run is seeded and single-threaded on the CPU, so the same
command writes the same numbers (``--workers`` only changes how many runs go at
once, not what they compute). Cost: 18 runs of about 55 s of CPU each, about 16
minutes of CPU in all, so about 8 minutes with the default two workers on two idle
cores (31 minutes when the machine was shared with other jobs). Usage::

    .venv/bin/python scripts/train_glow_ablation.py              # the full grid
    .venv/bin/python scripts/train_glow_ablation.py --epochs 2 --seeds 0 --output-dir /tmp/g
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import platform
import time
from pathlib import Path

import torch
from digits_checkpoint import ALPHA, VALIDATION_IMAGES, digits_splits, preprocessing

import flowcourse
from flowcourse import io, models
from flowcourse.data import IMAGE_SHAPE, NUM_LEVELS
from flowcourse.preprocessing import evaluate_bits_per_dim
from flowcourse.training import fit

PERMUTATIONS = ["reverse", "shuffle", "conv1x1"]
COUPLINGS = ["additive", "affine"]
SEEDS = [0, 1, 2]
MODEL = {
    "image_shape": list(IMAGE_SHAPE),
    "num_scales": 2,
    "steps_per_scale": 4,
    "hidden_channels": 32,
}
TRAINING = {"epochs": 150, "batch_size": 256, "learning_rate": 5e-3}
TEST_DRAWS = 4  # dequantisation draws per test image
TEST_SEED = 123
OUTPUT_DIR = Path(__file__).resolve().parents[1] / "flowcourse" / "checkpoints"


def train_one(permutation: str, coupling: str, seed: int, epochs: int) -> tuple[dict, dict]:
    """Train one cell of the grid; return its record and its weights (kept for the best run)."""
    torch.set_num_threads(1)  # deterministic, and the fastest for a model this small
    train_part, validation_part, test = digits_splits()
    preprocess = preprocessing()
    flow = models.glow(**MODEL, permutation=permutation, coupling=coupling, seed=seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    history = fit(
        flow,
        train_part,
        validation_data=validation_part,
        preprocess=preprocess,
        num_levels=NUM_LEVELS,
        device="cpu",
        progress=False,
        seed=seed,
        # a patience as long as the run: fit then restores the best epoch's weights
        patience=epochs,
        **{**TRAINING, "epochs": epochs},
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    record = {
        "permutation": permutation,
        "coupling": coupling,
        "seed": seed,
        "test_bits_per_dim": evaluate_bits_per_dim(
            flow, test, preprocess, draws=TEST_DRAWS, seed=TEST_SEED
        ),
        "best_epoch": history.best_epoch,
        "validation_bits_per_dim": history.validation_bits_per_dim[history.best_epoch],
        "train_curve": [round(b, 5) for b in history.train_bits_per_dim],
        "validation_curve": [round(b, 5) for b in history.validation_bits_per_dim],
        "parameters": sum(p.numel() for p in flow.parameters()),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
    }
    print(
        f"{permutation:>8} {coupling:>8} seed {seed}: test {record['test_bits_per_dim']:.4f} "
        f"bits/dim (validation {record['validation_bits_per_dim']:.4f}, best epoch "
        f"{history.best_epoch}) in {seconds:.0f} s ({cpu_seconds:.0f} s of CPU)",
        flush=True,
    )
    state = {name: tensor.detach().clone() for name, tensor in flow.state_dict().items()}
    return record, state


def _train_one(arguments: tuple) -> tuple[dict, dict]:
    return train_one(*arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args()

    grid = list(itertools.product(PERMUTATIONS, COUPLINGS, args.seeds, [args.epochs]))
    start = time.perf_counter()
    if args.workers > 1:
        # spawn: a fresh interpreter per worker, the same on Linux and macOS
        pool = multiprocessing.get_context("spawn").Pool(args.workers)
        results = pool.map(_train_one, grid, chunksize=1)
        pool.close()
        pool.join()
    else:
        results = [_train_one(arguments) for arguments in grid]
    total_seconds = time.perf_counter() - start

    records = [record for record, _ in results]
    best_index = min(range(len(records)), key=lambda i: records[i]["validation_bits_per_dim"])
    best = records[best_index]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    flow = models.glow(
        **MODEL, permutation=best["permutation"], coupling=best["coupling"], seed=best["seed"]
    )
    flow.load_state_dict(results[best_index][1])
    checkpoint = args.output_dir / "glow_digits.pt"
    io.save(flow, checkpoint)

    summary = {
        "description": "Glow ablation on the 8x8 digits (scripts/train_glow_ablation.py); "
        "bits/dim of the dequantised data, an upper bound",
        "model": MODEL,
        "training": {**TRAINING, "epochs": args.epochs},
        "alpha": ALPHA,
        "validation_images": VALIDATION_IMAGES,
        "test_draws": TEST_DRAWS,
        "test_seed": TEST_SEED,
        "permutations": PERMUTATIONS,
        "couplings": COUPLINGS,
        "seeds": args.seeds,
        "best": {k: best[k] for k in ("permutation", "coupling", "seed")},
        "checkpoint": checkpoint.name,
        "runs": records,
        "total_seconds": total_seconds,
        "total_cpu_seconds": sum(record["cpu_seconds"] for record in records),
        "workers": args.workers,
        "versions": {
            "flowcourse": flowcourse.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    path = args.output_dir / "glow_ablation.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"best (validation): {best['permutation']} + {best['coupling']}, seed {best['seed']}: "
        f"{best['test_bits_per_dim']:.4f} test bits/dim"
    )
    print(f"wrote {checkpoint} ({checkpoint.stat().st_size / 1024:.0f} KiB) and {path}")
    cpu = summary["total_cpu_seconds"]
    print(
        f"{len(records)} runs in {total_seconds:.0f} s with {args.workers} worker(s) "
        f"({cpu:.0f} s of CPU)"
    )


if __name__ == "__main__":
    main()
