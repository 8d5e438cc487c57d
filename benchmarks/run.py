"""Time flowcourse against zuko, nflows and normflows on matched models; write JSON.

For every model (MAF, RealNVP, NICE, IAF; see ``benchmarks/libraries.py``), dimension
``D``, conditioner width, batch size and number of CPU threads, it times three
operations in every library, interleaved in a shuffled order within each repeat, on
the same data in the same process, and keeps the median (and quartiles) of the
repeats after a warm-up:

* ``train_step``: ``-log_prob(x).mean()``, backward, an Adam step;
* ``log_prob``: scoring the batch without gradients;
* ``sample``: drawing a batch without gradients.

MAF's ``log_prob`` is also timed for the *MLP floor* (the same arithmetic without the
masks). The results, with the machine, versions, date and commit, go to a JSON file
(``--out``) that ``benchmarks/report.py`` turns into tables and a plot, and the book's
results page reads.

Run it with ``make benchmark`` (the full grid, about half an hour on 2 CPU cores: see
``benchmarks/README.md``), ``.venv/bin/python benchmarks/run.py --quick`` (a smoke run
of a minute), or ``--estimate`` to time one round of every cell and print how long the
full run would take.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.crosscheck import cross_check_nice  # noqa: E402
from benchmarks.libraries import (  # noqa: E402
    FLOOR,
    LIBRARIES,
    MODELS,
    UNCHECKED,
    NotAvailable,
    build,
    parameter_count,
)
from benchmarks.reasons import REASONS  # noqa: E402
from benchmarks.timing import (  # noqa: E402
    OPERATIONS,
    SEQUENTIAL,
    call_for,
    cpu_name,
    git_commit,
    load_average,
    summarise,
    time_interleaved,
)

__all__ = ["grid", "main", "run"]


def grid(args: argparse.Namespace) -> dict[str, list]:
    """The values of every axis of the grid, from the options (``--quick`` shrinks it)."""
    cuda = args.device == "cuda"
    axes = {
        "models": args.models or list(MODELS),
        "dims": args.dims or [2, 8, 32, 64],
        "hidden": args.hidden or [64, 256],
        "batches": args.batches or ([4096, 65536] if cuda else [512, 1024]),
        "threads": args.threads or ([1] if cuda else [1, 2]),
    }
    if args.quick:  # a smoke test of the harness, not a measurement
        axes["dims"] = args.dims or [2, 8]
        axes["hidden"] = args.hidden or [64]
        axes["batches"] = args.batches or ([4096] if cuda else [512])
        axes["threads"] = args.threads or [1]
    return axes


def _available(libraries: list[str]) -> tuple[list[str], dict[str, str]]:
    kept, missing = [], {}
    for library in libraries:
        try:
            build(library, "MAF", 2, 8)
        except ImportError as error:
            missing[library] = f"not installed ({error}); pip install -r requirements-bench.txt"
            continue
        kept.append(library)
    return kept, missing


def _capped(kind: str, operation: str, features: int, hidden: int, limit: int | None) -> str | None:
    # A pass costs about width x (D + width) and there are D of them: the cap keeps the
    # grid's slowest cells (seconds per call, times 17 rounds, times 4 libraries) out.
    if limit and (kind, operation) in SEQUENTIAL and features * hidden > limit:
        return (
            f"not timed: {kind} {operation} takes D sequential passes; the grid times "
            f"these cells only where D x width <= {limit} (--sequential-cap)"
        )
    return None


def run(args: argparse.Namespace, libraries: list[str], axes: dict[str, list]) -> list[dict]:
    """Time every cell of the grid; one result dict per (cell, operation)."""
    device = torch.device(args.device)
    rng = random.Random(args.seed)
    repeats, warmup = (1, 0) if args.estimate else (args.repeats, args.warmup)
    rows = []
    for kind in axes["models"]:
        for features in axes["dims"]:
            for hidden in axes["hidden"]:
                models, unavailable = {}, {}
                for library in [*libraries, FLOOR]:
                    try:
                        models[library] = build(library, kind, features, hidden, args.seed)
                    except NotAvailable as error:
                        if library != FLOOR:
                            unavailable[library] = str(error)
                        continue
                    models[library].module.to(device)
                counts = {library: parameter_count(model) for library, model in models.items()}
                listed = ", ".join(f"{library} {count:,}" for library, count in counts.items())
                print(f"{kind} D={features} width {hidden}: parameters {listed}", flush=True)
                for threads in axes["threads"]:
                    torch.set_num_threads(threads)
                    for batch in axes["batches"]:
                        generator = torch.Generator().manual_seed(args.seed)
                        x = torch.randn(batch, features, generator=generator).to(device)
                        for operation in OPERATIONS:
                            row = {
                                "device": device.type,
                                "threads": threads,
                                "model": kind,
                                "D": features,
                                "hidden": hidden,
                                "batch": batch,
                                "op": operation,
                                "parameters": counts,
                                "unavailable": dict(unavailable),
                            }
                            cap = _capped(kind, operation, features, hidden, args.sequential_cap)
                            if cap:
                                row["skipped"] = cap
                                rows.append(row)
                                continue
                            calls = {}
                            for library, model in models.items():
                                call = call_for(model, operation, x)
                                if call is not None:  # None: the floor does not sample
                                    calls[library] = call
                            started, cpu_started = time.perf_counter(), time.process_time()
                            times = time_interleaved(calls, repeats, warmup, rng, device)
                            row["wall_s"] = time.perf_counter() - started
                            row["cpu_s"] = time.process_time() - cpu_started
                            row["times"] = {name: summarise(t) for name, t in times.items()}
                            rows.append(row)
                            print(report.progress_line(row), flush=True)
    return rows


def _versions(libraries: list[str]) -> dict[str, str]:
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    for library in libraries:
        if library == UNCHECKED:
            continue
        try:
            versions[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            versions[library] = "unknown"
    return versions


def _machine(device: torch.device) -> dict[str, object]:
    machine: dict[str, object] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
    }
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    return machine


def _print_estimate(rows: list[dict], args: argparse.Namespace) -> None:
    rounds = args.repeats + args.warmup
    timed = [row for row in rows if "wall_s" in row]
    wall = sum(row["wall_s"] for row in timed) * rounds
    # On a busy machine the wall clock overstates the run; CPU seconds per thread are
    # what the run would take on a quiet one (roughly: threads do not scale perfectly).
    quiet = sum(row["cpu_s"] / row["threads"] for row in timed) * rounds
    print(
        f"\nestimated full run: {wall / 60:.1f} min at this machine's present load, "
        f"about {quiet / 60:.1f} min on a quiet one ({len(timed)} timed cells, "
        f"{len(rows) - len(timed)} capped; {rounds} rounds each; building models not counted)"
    )
    for row in sorted(timed, key=lambda row: -row["cpu_s"] / row["threads"])[:12]:
        print(f"  {row['cpu_s'] / row['threads'] * rounds:7.1f} s  {report.cell_name(row)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small grid: a smoke run")
    parser.add_argument(
        "--estimate", action="store_true", help="time one round per cell, print the full time"
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--libraries", nargs="+", default=list(LIBRARIES), choices=[*LIBRARIES, UNCHECKED]
    )
    parser.add_argument("--models", nargs="+", choices=MODELS)
    parser.add_argument("--dims", nargs="+", type=int)
    parser.add_argument("--hidden", nargs="+", type=int, help="conditioner widths")
    parser.add_argument("--batches", nargs="+", type=int)
    parser.add_argument("--threads", nargs="+", type=int, help="torch CPU threads per cell")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (median of them)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument(
        "--sequential-cap",
        type=int,
        help="largest D x width timed for the D-pass cells (MAF sample, IAF log_prob and "
        "train_step); default 2048 on the CPU (D <= 32 at width 64, D <= 8 at width 256), "
        "no cap on a GPU; 0: no cap",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        help="default benchmarks/results.json, or benchmarks/results_cuda.json on a GPU "
        "(the book's results page shows both)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 5)
        args.warmup = min(args.warmup, 1)
    if args.out is None:
        name = "results_cuda.json" if args.device == "cuda" else "results.json"
        args.out = ROOT / "benchmarks" / name
    if args.sequential_cap is None:
        args.sequential_cap = 2048 if args.device == "cpu" else 0
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")

    libraries, missing = _available(args.libraries)
    for library, why in missing.items():
        print(f"{library} skipped: {why}")
    if "flowcourse" not in libraries:
        raise SystemExit("flowcourse is needed: it is what the benchmark measures")
    axes = grid(args)
    threads_before = torch.get_num_threads()
    load_before = load_average()
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = run(args, libraries, axes)
    torch.set_num_threads(threads_before)
    if args.estimate:
        _print_estimate(rows, args)
        return

    notes = [f"{library}: {why}" for library, why in missing.items()]
    cross_check = None
    if "nflows" in libraries:
        cross_check = cross_check_nice()
        print(f"cross-check NICE flowcourse vs nflows: max |difference| {cross_check:.1e} nats")
    device = torch.device(args.device)
    results = {
        "meta": {
            "date": started.isoformat(timespec="seconds"),
            "duration_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
            "commit": git_commit(ROOT),
            "device": device.type,
            "machine": {
                **_machine(device),
                "load_before": load_before,
                "load_after": load_average(),
            },
            "versions": _versions(libraries),
            "libraries": libraries,
            "grid": axes,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "sequential_cap": args.sequential_cap or None,
            "quick": args.quick,
            "dtype": "float32",
            "notes": notes,
            "cross_check_nice_nflows_nats": cross_check,
        },
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    markdown = args.out.with_suffix(".md")
    markdown.write_text(report.markdown(results, REASONS))
    print(f"\nwrote {args.out} and {markdown}")


if __name__ == "__main__":
    main()
