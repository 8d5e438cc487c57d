"""Train the 2-D comparison of the chapter *Continuous-time flows and flow matching*.

Four flows of about 23 000 parameters each, fitted to the same samples of two toy
densities whose entropy is known (``EightGaussians`` and a ``Checkerboard`` smoothed by
0.05):

- ``MAF``, ``RealNVP`` (five layers, 64 hidden units, two hidden layers) and the coupling
  spline flow ``NSF`` (``models.nsf_coupling``, five layers, 56 hidden units, 8 bins),
  fitted by maximum likelihood with ``flowcourse.training.fit`` (the recipe of the
  chapter *MAF*, for 40 epochs; 16 for NSF, whose steps cost about 2.5 times more);
- ``flow matching``: ``models.cnf`` (a velocity MLP with three hidden layers of 105
  units) trained by ``flowcourse.continuous.fit_flow_matching``, no ODE solve in
  training, for 3000 steps of 512 points, about the wall time of MAF.

The step counts make the wall times similar on a CPU; the times are measured and saved.

Every model is scored by its exact test NLL in nats on 5000 test points (the flow-
matching model by integrating the divergence with 32 RK4 steps; 64 steps are also
recorded, to show the solver has converged), and the table reports NLL minus the
density's entropy (a Monte-Carlo estimate from 100 000 samples), with standard errors.

It writes to ``flowcourse/checkpoints/``:

- ``flow_matching_2d.json``: the settings, and for each density and model its number of
  parameters, training steps, training wall time in s, test NLL and NLL minus entropy
  (nats), and the flow-matching loss curve (every 20th step);
- ``flow_matching_<density>.pt``: the two flow-matching models (``flowcourse.io``).

Deterministic (seeded, CPU, one thread per run); wall times depend on the machine and
its load: they are measured, not part of the recipe. Runs the two densities in two
processes: about 15 minutes on two CPU cores shared with other jobs. Usage::

    .venv/bin/python scripts/train_flow_matching_2d.py
    .venv/bin/python scripts/train_flow_matching_2d.py --quick --output-dir /tmp/fm  # a smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import time
from pathlib import Path

import torch

import flowcourse
from flowcourse import io, models
from flowcourse.continuous import fit_flow_matching
from flowcourse.data import get_density
from flowcourse.training import fit

CHECKPOINTS = Path(__file__).resolve().parents[1] / "flowcourse" / "checkpoints"
DENSITIES = {
    "eight_gaussians": {},
    "checkerboard": {"smoothing": 0.05},
}
DATA = {"train": 10_000, "test": 5_000, "entropy_samples": 100_000}
MODELS = {
    "MAF": ("maf", {"features": 2, "num_layers": 5, "hidden_features": 64}),
    "RealNVP": ("realnvp", {"features": 2, "num_layers": 5, "hidden_features": 64}),
    "NSF": ("nsf_coupling", {"features": 2, "num_layers": 5, "hidden_features": 56, "num_bins": 8}),
    "flow matching": (
        "cnf",
        {"features": 2, "hidden_features": 105, "num_hidden_layers": 3, "num_steps": 32},
    ),
}
MAXIMUM_LIKELIHOOD = {"epochs": 40, "batch_size": 256, "learning_rate": 3e-3, "seed": 0}
# A spline-flow step costs about 2.5 MAF steps on a CPU: fewer epochs, similar wall time.
EPOCHS = {"NSF": 16}
# A flow-matching step on 512 points costs about 0.6 MAF steps on 256 points.
FLOW_MATCHING = {"steps": 3000, "batch_size": 512, "learning_rate": 1e-2, "seed": 0}
CURVE_EVERY = 20


def test_nll(flow: torch.nn.Module, test: torch.Tensor) -> tuple[float, float]:
    """Mean test NLL in nats and its standard error."""
    with torch.no_grad():
        log_prob = torch.cat([flow.log_prob(chunk) for chunk in test.split(1000)])
    return float(-log_prob.mean()), float(log_prob.std()) / math.sqrt(len(test))


def run_density(job: tuple[str, bool, str]) -> dict:
    name, quick, output_dir = job
    torch.set_num_threads(1)
    density = get_density(name, **DENSITIES[name])
    train = density.sample(DATA["train"], generator=1)
    test = density.sample(DATA["test"], generator=2)
    entropy = density.entropy(num_samples=DATA["entropy_samples"], seed=3)
    result = {
        "entropy": entropy.nats,
        "entropy_standard_error": entropy.standard_error,
        "models": {},
    }
    for label, (factory, kwargs) in MODELS.items():
        flow = getattr(models, factory)(**kwargs, seed=0)
        start = time.perf_counter()
        if factory == "cnf":
            recipe = {**FLOW_MATCHING, "steps": 50 if quick else FLOW_MATCHING["steps"]}
            history = fit_flow_matching(flow, train, device="cpu", progress=False, **recipe)
            steps = history.steps
            curve = history.step_loss[::CURVE_EVERY]
        else:
            epochs = EPOCHS.get(label, MAXIMUM_LIKELIHOOD["epochs"])
            recipe = {**MAXIMUM_LIKELIHOOD, "epochs": 1 if quick else epochs}
            history = fit(flow, train, device="cpu", progress=False, **recipe)
            steps, curve = history.steps, None
        seconds = time.perf_counter() - start
        flow.eval()
        nll, standard_error = test_nll(flow, test)
        row = {
            "factory": factory,
            "kwargs": kwargs,
            "parameters": sum(p.numel() for p in flow.parameters()),
            "steps": steps,
            "seconds": seconds,
            "test_nll": nll,
            "test_nll_standard_error": standard_error,
            "nll_minus_entropy": nll - entropy.nats,
        }
        if factory == "cnf":
            flow.transform.num_steps = 64
            row["test_nll_64_steps"] = test_nll(flow, test)[0]
            flow.transform.num_steps = kwargs["num_steps"]
            row["test_nll_first_1000"] = test_nll(flow, test[:1000])[0]  # the chapter's check
            row["loss_curve"] = [round(value, 5) for value in curve]
            io.save(flow, Path(output_dir) / f"flow_matching_{name}.pt")
        result["models"][label] = row
        print(
            f"{name:16s} {label:14s} {row['parameters']:6d} parameters, {steps:5d} steps, "
            f"{seconds:6.1f} s, NLL - entropy {row['nll_minus_entropy']:.3f} nats",
            flush=True,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=CHECKPOINTS)
    parser.add_argument("--quick", action="store_true", help="a few steps: a smoke test")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = [(name, args.quick, str(args.output_dir)) for name in DENSITIES]
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        results = dict(zip(DENSITIES, pool.map(run_density, jobs), strict=True))
    summary = {
        "description": (
            "2-D comparison of the chapter 'Continuous-time flows and flow matching' "
            "(scripts/train_flow_matching_2d.py): test NLL in nats, NLL minus entropy in nats, "
            "training wall time in s (measured, machine-dependent)"
        ),
        "flowcourse_version": flowcourse.__version__,
        "torch_version": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "densities": DENSITIES,
        "data": DATA,
        "models": {label: {"factory": f, "kwargs": k} for label, (f, k) in MODELS.items()},
        "maximum_likelihood": MAXIMUM_LIKELIHOOD,
        "epochs": EPOCHS,
        "flow_matching": FLOW_MATCHING,
        "curve_every": CURVE_EVERY,
        "quick": args.quick,
        "results": results,
        "total_seconds": time.perf_counter() - start,
    }
    path = args.output_dir / "flow_matching_2d.json"
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} in {summary['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
