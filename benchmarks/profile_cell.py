"""Profile one benchmark cell in several libraries: where does each call spend its time?

For each library it builds the model of ``benchmarks/libraries.py``, warms it up, then
runs the operation ``--calls`` times under ``torch.profiler`` and prints

- the CPU seconds per call (``time.process_time``, which a busy machine inflates less
  than the wall clock),
- how many torch operators one call dispatches (the per-call overhead that dominates
  at small sizes is roughly proportional to it), and
- the operators that take the most time, with their count per call.

Example (the cells of the profile report)::

    .venv/bin/python benchmarks/profile_cell.py --model MAF --op log_prob --dim 32 \\
        --batch 1024 --libraries flowcourse normflows zuko nflows
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.libraries import (  # noqa: E402
    BUILDERS,
    LIBRARIES,
    MODELS,
    NotAvailable,
    build,
)
from benchmarks.timing import OPERATIONS, call_for  # noqa: E402

__all__ = ["main", "profile_call"]


def profile_call(call, calls: int, top: int) -> tuple[float, int, list[tuple[str, int, float]]]:
    """CPU seconds per call, operators per call, and the ``top`` operators by self time
    as ``(name, count per call, share of the self time)``."""
    for _ in range(3):
        call()
    started = time.process_time()
    for _ in range(calls):
        call()
    cpu = (time.process_time() - started) / calls
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            call()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    # Operators called by other operators are counted once, at the top: aten::linear, not
    # also the aten::addmm inside it.
    top_level = [e for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::")]
    dispatched = len(top_level) // calls
    ranked = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    rows = [(e.key, e.count // calls, e.self_cpu_time_total / total) for e in ranked]
    return cpu, dispatched, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default="MAF")
    parser.add_argument("--op", choices=OPERATIONS, default="log_prob")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=[*BUILDERS])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, args.dim, generator=torch.Generator().manual_seed(0))
    print(
        f"{args.model} {args.op}, D={args.dim}, width {args.hidden}, batch {args.batch}, "
        f"{args.threads} thread(s), {args.calls} calls"
    )
    for library in args.libraries:
        try:
            model = build(library, args.model, args.dim, args.hidden)
        except NotAvailable as error:
            print(f"\n## {library}: n/a ({error})")
            continue
        call = call_for(model, args.op, x)
        if call is None:
            continue
        cpu, dispatched, rows = profile_call(call, args.calls, args.top)
        print(f"\n## {library}: {1000 * cpu:.1f} ms CPU per call, {dispatched} aten ops per call")
        for name, count, share in rows:
            print(f"  {100 * share:5.1f}%  {count:5d}x  {name}")


if __name__ == "__main__":
    main()
