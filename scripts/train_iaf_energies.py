"""Train the energy checkpoints of the chapter *IAF and variational inference*.

Writes ``flowcourse/checkpoints/iaf_energies_<U>_<kind>.pt`` for the four energies
``U1``-``U4`` of Rezende & Mohamed (2015) and two flows: ``planar`` (``models.planar``,
32 layers, the paper's largest K) and ``iaf`` (``models.iaf``). The chapter
(``book/iaf.md``) loads these instead of training for minutes, and retrains them with
this same recipe when ``FULL_SCALE`` is on. The per-step KL bounds of the training runs
go to ``iaf_energies_history.pt`` (a dict of float32 tensors named ``<U>_<kind>``), so
the chapter can draw the training curves without training.

Recipe: each flow minimises the reverse KL to the energy restricted to the box
[-4, 4]^2 by a quadratic wall (``flowcourse.data.energies.boxed``; the chapter explains
why U2-U4 need it),
with ``flowcourse.training.fit_reverse_kl``: Adam, batches of 256 reparametrised
samples, gradient clipping, and the paper's inverse-temperature annealing compressed into
the first half of training (``linear_annealing(STEPS // 2, 0.1)``).

Deterministic: seeded, CPU, one thread, so the same command writes the same weights.
Usage::

    .venv/bin/python scripts/train_iaf_energies.py                # writes 8 checkpoints
    .venv/bin/python scripts/train_iaf_energies.py --steps 300 --output-dir /tmp/iaf
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from flowcourse import io, models
from flowcourse.data import ENERGIES, log_normalizer
from flowcourse.data.energies import boxed
from flowcourse.training import fit_reverse_kl, linear_annealing

STEPS = 4000
MODELS = {
    "planar": ("planar", {"features": 2, "num_layers": 32, "seed": 0}),
    "iaf": ("iaf", {"features": 2, "num_layers": 4, "hidden_features": 32, "seed": 0}),
}
LEARNING_RATES = {"planar": 0.01, "iaf": 0.003}
BATCH_SIZE = 256
OUTPUT_DIR = Path(__file__).resolve().parents[1] / "flowcourse" / "checkpoints"


def train(kind: str, energy, steps: int):
    """Fit one flow to ``energy`` with the recipe of the module docstring."""
    factory, kwargs = MODELS[kind]
    flow = getattr(models, factory)(**kwargs)
    history = fit_reverse_kl(
        flow,
        lambda z: -energy(z),
        steps=steps,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATES[kind],
        annealing=linear_annealing(steps // 2, 0.1),
        seed=0,
        device="cpu",
        progress=False,
    )
    return flow, history


def kl_nats(flow, energy, log_z: float, num_samples: int = 20_000, seed: int = 1) -> float:
    """KL(q || p) in nats by Monte Carlo on fresh samples (the chapter's estimate)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        z, log_q = flow.sample_and_log_prob(num_samples)
        return float((log_q + energy(z)).mean()) + log_z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument("--kinds", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()

    torch.set_num_threads(1)  # deterministic, and faster than threads for models this small
    args.output_dir.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    histories = {}
    for name, raw_energy in ENERGIES.items():
        energy = boxed(raw_energy)
        log_z = log_normalizer(energy, bounds=(-6.0, 6.0), resolution=600)
        for kind in args.kinds:
            flow, history = train(kind, energy, args.steps)
            path = args.output_dir / f"iaf_energies_{name}_{kind}.pt"
            io.save(flow, path)
            histories[f"{name}_{kind}"] = torch.tensor(history.kl_bound, dtype=torch.float32)
            print(
                f"{name} {kind:6s}: KL {kl_nats(flow, energy, log_z):.3f} nats after "
                f"{args.steps} steps ({history.seconds:.0f} s); wrote {path.name} "
                f"({path.stat().st_size / 1024:.0f} KiB)",
                flush=True,
            )
    history_path = args.output_dir / "iaf_energies_history.pt"
    torch.save(histories, history_path)
    print(f"wrote {history_path.name} ({history_path.stat().st_size / 1024:.0f} KiB)")
    print(f"total {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
