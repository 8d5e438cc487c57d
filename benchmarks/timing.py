"""How the benchmark times a call: interleaved, warmed up, median of repeats.

Inside each repeat every library makes its call once, in a freshly shuffled order, so a
busy neighbour on the machine slows all of them alike instead of whichever happened to
run then. The first ``warmup`` rounds are not recorded (they pay for allocator growth
and lazy initialisation). On a GPU the clock is read between two synchronisations, so
a call is charged for the kernels it launched, not only for launching them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from benchmarks.libraries import Model

__all__ = [
    "OPERATIONS",
    "SEQUENTIAL",
    "call_for",
    "cpu_name",
    "git_commit",
    "load_average",
    "summarise",
    "time_interleaved",
]

#: ``train_step``: ``-log_prob(x).mean()``, its backward pass and an Adam step;
#: ``log_prob``: scoring ``x`` without gradients; ``sample``: drawing a batch without
#: gradients.
OPERATIONS = ("train_step", "log_prob", "sample")

#: The (model, operation) pairs that take ``D`` passes through the network: MAF samples
#: and IAF scores one position at a time. Their cost grows like ``D`` times a pass.
SEQUENTIAL = {("MAF", "sample"), ("IAF", "log_prob"), ("IAF", "train_step")}


def call_for(model: Model, operation: str, x: Tensor) -> Callable[[], object] | None:
    """The timed call of ``operation`` on ``model`` with data ``x``; ``None`` when the
    model cannot do it (the MLP floor does not sample)."""
    if operation == "train_step":
        optimizer = torch.optim.Adam(model.module.parameters(), lr=1e-5)

        def train_step() -> object:
            optimizer.zero_grad(set_to_none=True)
            loss = -model.log_prob(x).mean()
            loss.backward()
            optimizer.step()
            return loss

        return train_step
    if operation == "log_prob":

        def log_prob() -> object:
            with torch.no_grad():
                return model.log_prob(x)

        return log_prob
    if operation == "sample":
        sample = model.sample
        if sample is None:
            return None

        def draw() -> object:
            with torch.no_grad():
                return sample(x.shape[0])

        return draw
    raise ValueError(f"expected an operation in {OPERATIONS}, got {operation!r}")


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    # A garbage collection in the middle of a call would be charged to that call.
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_interleaved(
    calls: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    rng: random.Random,
    device: torch.device,
) -> dict[str, list[float]]:
    """Seconds per call of every entry of ``calls``: ``repeats`` values each, after
    ``warmup`` unrecorded rounds, the calls shuffled anew in every round."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in calls}
    with _no_gc():
        for step in range(warmup + repeats):
            order = list(calls)
            rng.shuffle(order)
            for name in order:
                synchronize()
                start = time.perf_counter()
                calls[name]()
                synchronize()
                elapsed = time.perf_counter() - start
                if step >= warmup:
                    times[name].append(elapsed)
    return times


def summarise(times: list[float]) -> dict[str, float]:
    """Median and quartiles (seconds) of one library's repeats."""
    if len(times) < 2:
        return {"median": times[0], "q1": times[0], "q3": times[0]}
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return {"median": statistics.median(times), "q1": q1, "q3": q3}


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_commit(root: Path) -> str:
    """``HEAD``'s commit, with ``+dirty`` when the working tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if status else "")


def load_average() -> float | None:
    """The one-minute load average (``None`` where the system does not report it)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
