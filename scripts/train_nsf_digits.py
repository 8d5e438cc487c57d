"""Train the digits checkpoints of the chapter *Neural spline flows* (``flowcourse/checkpoints/``).

The chapter (``book/nsf.md``) compares spline flows with their affine counterparts on
scikit-learn's 8x8 digits, flattened to 64-vectors, at the same budget: the recipe and
the model size of the chapter *MAF*'s checkpoint (``scripts/train_maf_digits.py``, whose
``TRAINING`` dictionary this script imports, so the budgets cannot drift apart). That
checkpoint, ``maf_digits.pt``, is the MAF entry of the comparison; this script trains
the others with the same recipe:

- ``nsf_digits_realnvp.pt``: ``models.realnvp`` (affine couplings), its conditioners
  widened to 128 units so that it has exactly as many parameters as the MAF (62,400);
- ``nsf_digits_coupling.pt``: ``models.nsf_coupling`` (rational-quadratic spline
  couplings), its conditioners narrowed so that it has about as many parameters;
- ``nsf_digits_autoregressive.pt``: ``models.nsf_autoregressive``. A MADE over 64
  inputs needs 63 hidden units and returns :math:`3K - 1` numbers per pixel, so even
  two layers with :math:`K = 2` bins have 20% *fewer* parameters than the MAF, and
  the next size up 20% more: the smaller one is trained.

Recipe (the MAF chapter's): maximum likelihood in logit space with fresh uniform
dequantisation noise for every batch (``preprocessing.DequantizeLogit``, alpha = 0.05);
the last ``VALIDATION_IMAGES`` training images are held out for early stopping (the
best epoch's weights are kept); the test split is only scored at the end
(``evaluate_bits_per_dim``: four seeded noise draws per image). It also writes
``nsf_digits.json``: for every model (the MAF checkpoint included, scored again here)
its configuration, parameter count, test bits/dim, best epoch and training time.

Deterministic (seeded, CPU, one thread): the same command writes the same weights.
Usage::

    .venv/bin/python scripts/train_nsf_digits.py            # all three, about 15 min of CPU
    .venv/bin/python scripts/train_nsf_digits.py --epochs 2 --output-dir /tmp/nsf
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from digits_checkpoint import (
    ALPHA,
    CHECKPOINTS,
    VALIDATION_IMAGES,
    digits_splits,
    fit_on_digits,
    preprocessing,
)
from train_maf_digits import MODEL as MAF_MODEL
from train_maf_digits import TRAINING

import flowcourse
from flowcourse import io, models
from flowcourse.preprocessing import evaluate_bits_per_dim

#: name -> (factory, its arguments); every model sees 64-vectors of logits.
MODELS = {
    "realnvp": (
        "realnvp",
        {"features": 64, "num_layers": 5, "hidden_features": 128, "num_hidden_layers": 1},
    ),
    "coupling": (
        "nsf_coupling",
        {
            "features": 64,
            "num_layers": 5,
            "hidden_features": 32,
            "num_hidden_layers": 1,
            "num_bins": 4,
            "bound": 3.0,
        },
    ),
    "autoregressive": (
        "nsf_autoregressive",
        {
            "features": 64,
            "num_layers": 2,
            "hidden_features": 64,
            "num_hidden_layers": 1,
            "num_bins": 2,
            "bound": 3.0,
        },
    ),
}
SEED = 0


def parameter_count(flow: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in flow.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    parser.add_argument("--output-dir", type=Path, default=CHECKPOINTS)
    parser.add_argument("--only", choices=sorted(MODELS), nargs="*", default=sorted(MODELS))
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    train_part, validation_part, test = digits_splits(flatten=True)
    preprocess = preprocessing()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    summary_path = args.output_dir / "nsf_digits.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["recipe"] = {
        **TRAINING,
        "epochs": args.epochs,
        "alpha": ALPHA,
        "validation_images": VALIDATION_IMAGES,
    }
    summary["flowcourse_version"] = flowcourse.__version__
    runs = summary.setdefault("runs", {})

    maf = io.load(CHECKPOINTS / "maf_digits.pt")
    runs["maf"] = {
        "factory": "maf",
        "kwargs": {k: v for k, v in MAF_MODEL.items() if k != "seed"},
        "checkpoint": "maf_digits.pt",
        "parameters": parameter_count(maf),
        "test_bits_per_dim": evaluate_bits_per_dim(maf, test, preprocess),
    }
    print(f"maf (from maf_digits.pt): {runs['maf']['test_bits_per_dim']:.4f} bits/dim")

    for name in args.only:
        factory, kwargs = MODELS[name]
        flow = getattr(models, factory)(**kwargs, seed=SEED)
        history, seconds = fit_on_digits(
            flow, train_part, validation_part, {**TRAINING, "epochs": args.epochs}, progress=False
        )
        flow.eval()
        test_bpd = evaluate_bits_per_dim(flow, test, preprocess)
        path = args.output_dir / f"nsf_digits_{name}.pt"
        io.save(flow, path)
        best = history.best_epoch
        runs[name] = {
            "factory": factory,
            "kwargs": kwargs,
            "checkpoint": path.name,
            "parameters": parameter_count(flow),
            "test_bits_per_dim": test_bpd,
            "validation_bits_per_dim": history.validation_bits_per_dim[best],
            "best_epoch": best,
            "epochs_run": len(history.train_loss),
            "steps": history.steps,
            "seconds": seconds,
        }
        print(
            f"{name}: {parameter_count(flow):,} parameters, {history.steps} steps "
            f"(best epoch {best}) in {seconds:.0f} s; test {test_bpd:.4f} bits/dim; "
            f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)",
            flush=True,
        )
        summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
