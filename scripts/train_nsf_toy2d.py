"""Train the 2-D comparison of the chapter *Neural spline flows*: splines against affine layers.

Four flows of (almost) the same size, each of five layers,

- ``realnvp``: affine couplings (``models.realnvp``, conditioners of 65 units),
- ``maf``: affine autoregressive layers (``models.maf``, MADEs of 64 units),
- ``nsf_coupling``: rational-quadratic spline couplings (``models.nsf_coupling``,
  8 bins on [-4, 4], conditioners of 56 units),
- ``nsf_autoregressive``: autoregressive spline layers (``models.nsf_autoregressive``,
  8 bins on [-4, 4], MADEs of 47 units),

with between 22,760 and 23,075 parameters each, are fitted by maximum likelihood with
the same recipe to each 2-D density of ``flowcourse.data`` (eight Gaussians, two moons,
rings, a spiral, and the checkerboard, whose density jumps from 1/8 to 0 at the edges of
its squares). Each density gives 10,000 training points (seed 1) and 5,000 test points
(seed 2); its entropy is estimated from 100,000 points (seed 3). The checkerboard, the
density with sharp features, is fitted from three seeds of the models; the others from
one.

It writes, in ``flowcourse/checkpoints/``:

- ``nsf_toy2d.json``: the settings, and for every density its entropy and for every run
  its parameter count, test NLL (nats, with its standard error), test NLL minus the
  entropy (an estimate of :math:`\\mathrm{KL}(p \\,\\|\\, q)` in nats) and run time;
- ``nsf_toy2d_checkerboard_<model>.pt``: the four checkerboard models of seed 0, saved
  with ``flowcourse.io.save`` (the chapter scores and draws them).

Deterministic: every run is seeded and single-threaded, so the same command writes the
same numbers (``--workers`` only changes how many runs go at once). Cost: 28 runs of
about 20 s (affine) to 50 s (spline) of CPU each, about 17 minutes of CPU in all; on a
two-core machine shared with other jobs the runs took 8,600 s of wall time in all
(about 70 minutes with the two workers).
Usage::

    .venv/bin/python scripts/train_nsf_toy2d.py
    .venv/bin/python scripts/train_nsf_toy2d.py --epochs 1 --output-dir /tmp/nsf2d
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from pathlib import Path

import torch

import flowcourse
from flowcourse import io, models
from flowcourse.data import get_density
from flowcourse.training import fit

CHECKPOINTS = Path(__file__).resolve().parents[1] / "flowcourse" / "checkpoints"
DENSITIES = ["eight_gaussians", "moons", "rings", "spiral", "checkerboard"]
SHARP = "checkerboard"
SEEDS = {name: [0, 1, 2] if name == SHARP else [0] for name in DENSITIES}
#: name -> (factory, arguments); the widths give every model about 23,000 parameters.
MODELS = {
    "realnvp": ("realnvp", {"num_layers": 5, "hidden_features": 65, "num_hidden_layers": 2}),
    "maf": ("maf", {"num_layers": 5, "hidden_features": 64, "num_hidden_layers": 2}),
    "nsf_coupling": (
        "nsf_coupling",
        {
            "num_layers": 5,
            "hidden_features": 56,
            "num_hidden_layers": 2,
            "num_bins": 8,
            "bound": 4.0,
        },
    ),
    "nsf_autoregressive": (
        "nsf_autoregressive",
        {
            "num_layers": 5,
            "hidden_features": 47,
            "num_hidden_layers": 2,
            "num_bins": 8,
            "bound": 4.0,
        },
    ),
}
DATA = {"train": 10_000, "test": 5_000, "entropy": 100_000}
TRAINING = {"epochs": 40, "batch_size": 256, "learning_rate": 3e-3}


def build(model: str, seed: int) -> torch.nn.Module:
    factory, kwargs = MODELS[model]
    return getattr(models, factory)(features=2, **kwargs, seed=seed)


def parameter_count(flow: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in flow.parameters())


def test_nll(flow: torch.nn.Module, test: torch.Tensor) -> tuple[float, float]:
    """Mean test NLL in nats and its standard error."""
    with torch.no_grad():
        log_prob = flow.log_prob(test)
    return float(-log_prob.mean()), float(log_prob.std()) / math.sqrt(len(test))


def run(task: tuple[str, str, int, int, str]) -> dict[str, object]:
    density_name, model, seed, epochs, output_dir = task
    torch.set_num_threads(1)
    density = get_density(density_name)
    train = density.sample(DATA["train"], generator=1)
    test = density.sample(DATA["test"], generator=2)
    flow = build(model, seed)
    start = time.perf_counter()
    fit(flow, train, **{**TRAINING, "epochs": epochs}, seed=seed, device="cpu", progress=False)
    seconds = time.perf_counter() - start
    flow.eval()
    nll, standard_error = test_nll(flow, test)
    if density_name == SHARP and seed == 0:
        io.save(flow, Path(output_dir) / f"nsf_toy2d_{density_name}_{model}.pt")
    print(
        f"{density_name:16s} {model:18s} seed {seed}: {nll:.4f} nats ({seconds:.0f} s)", flush=True
    )
    return {
        "density": density_name,
        "model": model,
        "seed": seed,
        "parameters": parameter_count(flow),
        "test_nll": nll,
        "test_nll_standard_error": standard_error,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    parser.add_argument("--output-dir", type=Path, default=CHECKPOINTS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--densities", nargs="*", default=DENSITIES, choices=DENSITIES)
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)

    tasks = [
        (name, model, seed, args.epochs, str(args.output_dir))
        for name in args.densities
        for seed in SEEDS[name]
        for model in MODELS
    ]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        runs = pool.map(run, tasks, chunksize=1)

    summary: dict[str, object] = {
        "flowcourse_version": flowcourse.__version__,
        "data": DATA,
        "training": {**TRAINING, "epochs": args.epochs},
        "models": {name: {"factory": f, "kwargs": k} for name, (f, k) in MODELS.items()},
        "densities": {},
    }
    for name in args.densities:
        entropy = get_density(name).entropy(num_samples=DATA["entropy"], seed=3)
        summary["densities"][name] = {
            "entropy": entropy.nats,
            "entropy_standard_error": entropy.standard_error,
            "runs": [
                {**r, "kl": r["test_nll"] - entropy.nats} for r in runs if r["density"] == name
            ],
        }
    path = args.output_dir / "nsf_toy2d.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
