"""Turn the benchmark's JSON into tables, a plot and a sentence per cell where flowcourse lags.

The book's results page imports this module to render ``benchmarks/results.json``; it
needs no peer library (the builders of ``benchmarks/libraries.py`` import them only when
called). The numbers, and which cells need an explanation, come from the JSON; the
explanations themselves (``benchmarks/reasons.py``) are written by a person.

The targets (issue 7 of the course's tracker):

- ``train_step`` and ``log_prob``, every model: flowcourse takes at most 1.0 times the
  time of the fastest of zuko, nflows and normflows;
- ``sample``: the same for the coupling flows (RealNVP, NICE) and MAF. IAF samples in
  one pass, and it is reported without a target;
- MAF ``log_prob``: at most 1.3 times the MLP floor (the same arithmetic without masks).

Usage: ``python benchmarks/report.py benchmarks/results.json > benchmarks/results.md``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.libraries import FLOOR, LIBRARIES, MODELS  # noqa: E402
from benchmarks.timing import OPERATIONS  # noqa: E402

__all__ = [
    "FLOOR_TARGET",
    "OPERATION_TITLES",
    "PEERS",
    "PEER_TARGET",
    "TIE",
    "cell_name",
    "fastest_peer",
    "floor_ratio",
    "format_seconds",
    "header_lines",
    "load",
    "markdown",
    "parameter_table",
    "peer_ratio",
    "peer_target_applies",
    "plot",
    "progress_line",
    "sections",
    "shortfalls",
    "sentence",
    "summary",
    "targets",
    "tables",
]

PEERS = tuple(library for library in LIBRARIES if library != "flowcourse")
PEER_TARGET = 1.0  # flowcourse / fastest peer, at most
FLOOR_TARGET = 1.3  # MAF log_prob: flowcourse / MLP floor, at most
TIE = 1.05  # within 5% of the fastest peer: reruns of a cell here move it about that much
OPERATION_TITLES = {
    "train_step": "training step (log_prob, backward, Adam)",
    "log_prob": "log_prob (no gradient)",
    "sample": "sample (no gradient)",
}

Row = Mapping[str, Any]


def load(path: str | Path) -> dict[str, Any]:
    """The benchmark's results (``{"meta": ..., "results": [...]}``) from a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------- one cell


def median(row: Row, library: str) -> float | None:
    """Median seconds per call of ``library`` in this cell; ``None`` if not timed."""
    timing = row.get("times", {}).get(library)
    return None if timing is None else float(timing["median"])


def peer_target_applies(model: str, operation: str) -> bool:
    """Whether the "at most the fastest peer" target covers this (model, operation)."""
    return operation in ("train_step", "log_prob") or model in ("MAF", "RealNVP", "NICE")


def fastest_peer(row: Row) -> tuple[str, float] | None:
    """The fastest peer library of the cell and its median seconds (``None``: no peer)."""
    times = [(median(row, peer), peer) for peer in PEERS]
    timed = [(seconds, peer) for seconds, peer in times if seconds is not None]
    if not timed:
        return None
    seconds, peer = min(timed)
    return peer, seconds


def peer_ratio(row: Row) -> float | None:
    """flowcourse's median over the fastest peer's (below 1: flowcourse is faster)."""
    ours, best = median(row, "flowcourse"), fastest_peer(row)
    if ours is None or best is None:
        return None
    return ours / best[1]


def floor_ratio(row: Row) -> float | None:
    """flowcourse's median over the MLP floor's (MAF only)."""
    ours, floor = median(row, "flowcourse"), median(row, FLOOR)
    if ours is None or floor is None:
        return None
    return ours / floor


def cell_name(row: Row) -> str:
    """``MAF log_prob, D=8, width 64, batch 512, 1 thread (cpu)``."""
    threads = f"{row['threads']} thread{'s' if row['threads'] != 1 else ''}"
    return (
        f"{row['model']} {row['op']}, D={row['D']}, width {row['hidden']}, "
        f"batch {row['batch']}, {threads} ({row['device']})"
    )


def format_seconds(seconds: float | None) -> str:
    """Milliseconds with three significant figures or so: ``12.3 ms``, ``1523 ms``."""
    if seconds is None:
        return "n/a"
    ms = 1000 * seconds
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def progress_line(row: Row) -> str:
    """One line per timed cell while the benchmark runs."""
    times = ", ".join(f"{name} {format_seconds(median(row, name))}" for name in row["times"])
    ratio = peer_ratio(row)
    suffix = "" if ratio is None else f"; flowcourse / fastest peer {ratio:.2f}x"
    return f"{cell_name(row)}: {times}{suffix}"


# ------------------------------------------------------------------------ the verdicts


def targets(row: Row) -> list[tuple[str, float, float]]:
    """``(kind, ratio, target)`` for each target that covers this timed cell.

    ``kind`` is ``"peer"`` (flowcourse over the fastest peer, where that target applies)
    or ``"floor"`` (MAF ``log_prob``: flowcourse over the MLP floor).
    """
    found = []
    ratio = peer_ratio(row)
    if ratio is not None and peer_target_applies(row["model"], row["op"]):
        found.append(("peer", ratio, PEER_TARGET))
    floor = floor_ratio(row)
    if floor is not None and (row["model"], row["op"]) == ("MAF", "log_prob"):
        found.append(("floor", floor, FLOOR_TARGET))
    return found


def shortfalls(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every cell where flowcourse misses a target, with the ratio and the reference
    (``kind`` as in :func:`targets`)."""
    found = []
    for row in results["results"]:
        for kind, ratio, target in targets(row):
            if ratio > target:
                reference = fastest_peer(row)[0] if kind == "peer" else FLOOR  # type: ignore[index]
                found.append(
                    {
                        "row": row,
                        "kind": kind,
                        "ratio": ratio,
                        "target": target,
                        "reference": reference,
                        "reference_s": median(row, reference),
                    }
                )
    return found


def summary(results: Mapping[str, Any]) -> dict[str, int]:
    """How many timed cells each target covers and how many flowcourse meets."""
    verdicts = [verdict for row in results["results"] for verdict in targets(row)]
    counts = {
        "timed_cells": sum("times" in row for row in results["results"]),
        "capped_cells": sum("skipped" in row for row in results["results"]),
    }
    for kind in ("peer", "floor"):
        mine = [ratio <= target for found, ratio, target in verdicts if found == kind]
        counts[f"{kind}_cells"], counts[f"{kind}_met"] = len(mine), sum(mine)
    counts["peer_tied"] = sum(
        ratio <= TIE for found, ratio, _ in verdicts if found == "peer"
    )  # met, or within TIE of the fastest peer
    return counts


def sentence(shortfall: Mapping[str, Any], reasons: Mapping[tuple[str, str], str]) -> str:
    """One sentence for a missed target: the numbers from the JSON, the reason by hand."""
    row = shortfall["row"]
    ours = format_seconds(median(row, "flowcourse"))
    theirs = format_seconds(shortfall["reference_s"])
    key = (row["model"], row["op"]) if shortfall["kind"] == "peer" else ("MAF", "floor")
    reason = reasons.get(key, "No explanation recorded yet: profile this cell.")
    return (
        f"{cell_name(row)}: flowcourse takes {ours}, {shortfall['ratio']:.2f}x "
        f"{shortfall['reference']} ({theirs}; target at most {shortfall['target']:.1f}x). "
        f"{reason}"
    )


# -------------------------------------------------------------------------- the tables


def _markdown_table(header: list[str], rows: Iterable[list[str]], right_from: int) -> str:
    align = ["---"] * right_from + ["---:"] * (len(header) - right_from)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def _sort_key(row: Row) -> tuple:
    return (row["threads"], row["batch"], row["hidden"], row["D"])


def tables(results: Mapping[str, Any], model: str) -> dict[str, str]:
    """One Markdown table per operation of ``model``: a row per (threads, batch, width, D)."""
    libraries = list(results["meta"]["libraries"])
    out = {}
    for operation in OPERATIONS:
        rows = sorted(
            (r for r in results["results"] if r["model"] == model and r["op"] == operation),
            key=_sort_key,
        )
        if not rows:
            continue
        with_floor = any(median(row, FLOOR) is not None for row in rows)
        columns = libraries + ([FLOOR] if with_floor else [])
        header = ["threads", "batch", "width", "D", *columns, "flowcourse / fastest peer"]
        if with_floor:
            header.append("flowcourse / floor")
        lines = []
        for row in rows:
            cells = [str(row["threads"]), str(row["batch"]), str(row["hidden"]), str(row["D"])]
            if "skipped" in row:
                cells += ["capped"] * len(columns) + ["n/a"] * (1 + with_floor)
                lines.append(cells)
                continue
            for library in columns:
                cells.append(
                    "n/a"
                    if library in row.get("unavailable", {})
                    else format_seconds(median(row, library))
                )
            cells.append(
                _ratio_cell(peer_ratio(row), PEER_TARGET, peer_target_applies(model, operation))
            )
            if with_floor:
                applies = operation == "log_prob"
                cells.append(_ratio_cell(floor_ratio(row), FLOOR_TARGET, applies))
            lines.append(cells)
        out[operation] = _markdown_table(header, lines, right_from=4)
    return out


def _ratio_cell(ratio: float | None, target: float, applies: bool) -> str:
    if ratio is None:
        return "n/a"
    if not applies:
        return f"{ratio:.2f}x (no target)"
    return f"{ratio:.2f}x {'met' if ratio <= target else '**missed**'}"


def parameter_table(results: Mapping[str, Any]) -> str:
    """Parameter counts of every model in every library, side by side, per (model, D, width)."""
    libraries = list(results["meta"]["libraries"])
    seen: dict[tuple, Row] = {}
    for row in results["results"]:
        seen.setdefault((MODELS.index(row["model"]), row["D"], row["hidden"]), row)
    lines = []
    for (_, features, hidden), row in sorted(seen.items()):
        counts = row["parameters"]
        values = [counts[lib] for lib in libraries if lib in counts]
        same = "yes" if len(set(values)) == 1 else "**no**"
        cells = [row["model"], str(features), str(hidden)]
        cells += [f"{counts[lib]:,}" if lib in counts else "n/a" for lib in libraries]
        lines.append([*cells, same])
    return _markdown_table(["model", "D", "width", *libraries, "all equal"], lines, right_from=3)


def header_lines(results: Mapping[str, Any]) -> list[str]:
    """Machine, versions, date, commit and method, as Markdown list items."""
    meta = results["meta"]
    machine = meta["machine"]
    hardware = f"{machine['cpu']}, {machine['cores']} cores"
    if "gpu" in machine:
        hardware = f"{machine['gpu']} (host: {hardware})"
    load = (
        f"load average {_load(machine.get('load_before'))} before and "
        f"{_load(machine.get('load_after'))} after the run"
    )
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    grid = meta["grid"]
    cap = meta.get("sequential_cap")
    lines = [
        f"- Date: {meta['date']}; commit `{meta['commit']}`; "
        f"the run took {meta['duration_s'] / 60:.1f} min",
        f"- Machine: {hardware}, {machine['system']}; {load}",
        f"- Versions: {versions}",
        f"- Grid: models {', '.join(grid['models'])}; D in {grid['dims']}; conditioner "
        f"widths {grid['hidden']}; batches {grid['batches']}; threads {grid['threads']}; "
        f"{meta['dtype']} on {meta['device']}",
        f"- Each time: the median of {meta['repeats']} repeats after {meta['warmup']} "
        f"warm-up round{'s' if meta['warmup'] != 1 else ''}, the libraries interleaved in a "
        "random order within each round, same data, same process",
        "- Capped: the cells that take D sequential passes (MAF sample, IAF log_prob and "
        + (
            f"training step) are timed only where D x width <= {cap:,}"
            if cap
            else "training step) are timed everywhere (no cap)"
        ),
    ]
    if meta.get("cross_check_nice_nflows_nats") is not None:
        lines.append(
            "- Correctness cross-check: NICE in flowcourse and in nflows with the same weights "
            f"give log-densities that differ by at most "
            f"{meta['cross_check_nice_nflows_nats']:.1e} nats (float64)"
        )
    if meta.get("quick"):
        lines.append(
            "- **This is a `--quick` smoke run** (a small grid, few repeats): it tests the "
            "harness and is not a measurement"
        )
    lines += [f"- Note: {note}" for note in meta.get("notes", [])]
    return lines


def _load(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f}"


def markdown(
    results: Mapping[str, Any], reasons: Mapping[tuple[str, str], str] | None = None
) -> str:
    """The whole report: header, summary, a table per model and operation, the sentences."""
    reasons = reasons or {}
    counts = summary(results)
    parts = [
        "# Benchmark results",
        "",
        "Generated by `benchmarks/run.py` and `benchmarks/report.py` from "
        "`benchmarks/results.json`; do not edit by hand.",
        "",
        *header_lines(results),
        "",
        f"flowcourse meets the peer target in {counts['peer_met']} of {counts['peer_cells']} "
        f"cells and the MLP-floor target in {counts['floor_met']} of {counts['floor_cells']}; "
        f"it is at most {TIE:.2f}x the fastest peer in {counts['peer_tied']} of "
        f"{counts['peer_cells']} (rerun on the same machine, a cell's ratio moves by about 5%, "
        "and the fastest of three peers is a minimum over noisy times).",
        "",
    ]
    for title, body in sections(results, reasons):
        parts += [f"## {title}", "", body, ""]
    parts += ["## Parameter counts", "", parameter_table(results), ""]
    return "\n".join(parts)


def sections(
    results: Mapping[str, Any], reasons: Mapping[tuple[str, str], str]
) -> Iterator[tuple[str, str]]:
    """``(title, body)`` per model and operation: the table, then a sentence per missed target."""
    lagging = shortfalls(results)
    for model in MODELS:
        for operation, table in tables(results, model).items():
            mine = [s for s in lagging if (s["row"]["model"], s["row"]["op"]) == (model, operation)]
            sentences = "\n".join(f"- {sentence(s, reasons)}" for s in mine)
            body = f"{table}\n\n{sentences}" if sentences else table
            yield f"{model}: {OPERATION_TITLES[operation]}", body


# ---------------------------------------------------------------------------- the plot


def plot(
    results: Mapping[str, Any],
    threads: int | None = None,
    batch: int | None = None,
    hidden: int | None = None,
) -> Any:
    """Milliseconds per call against D, one line per library, one panel per (model, op).

    One slice of the grid: ``threads``, ``batch`` and ``hidden`` default to the smallest
    thread count, the largest batch and the smallest width that were run.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    grid = results["meta"]["grid"]
    threads = min(grid["threads"]) if threads is None else threads
    batch = max(grid["batches"]) if batch is None else batch
    hidden = min(grid["hidden"]) if hidden is None else hidden
    models = [m for m in MODELS if m in grid["models"]]
    libraries = [*results["meta"]["libraries"], FLOOR]
    figure, axes = plt.subplots(
        len(models), len(OPERATIONS), figsize=(10, 2.3 * len(models) + 0.8), squeeze=False
    )
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for i, model in enumerate(models):
        for j, operation in enumerate(OPERATIONS):
            ax = axes[i][j]
            rows = [
                r
                for r in results["results"]
                if (r["model"], r["op"], r["threads"], r["batch"], r["hidden"])
                == (model, operation, threads, batch, hidden)
                and "times" in r
            ]
            for library in libraries:
                points = sorted(
                    (r["D"], 1000 * median(r, library))  # type: ignore[operator]
                    for r in rows
                    if median(r, library) is not None
                )
                if points:
                    style = "k--" if library == FLOOR else "o-"
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, style, label=library, markersize=3)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(grid["dims"])
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_formatter(plain)
                axis.set_minor_formatter(NullFormatter())
            ax.set_title(f"{model}: {operation}", fontsize=9)
            if j == 0:
                ax.set_ylabel("ms per call")
            if i == len(models) - 1:
                ax.set_xlabel("D")
    handles: dict[str, Any] = {}
    for ax in figure.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    figure.legend(
        list(handles.values()),
        list(handles),
        loc="upper center",
        ncol=len(handles),
        title=(
            f"{results['meta']['device']}, {threads} thread(s), batch {batch}, "
            f"width {hidden}: milliseconds per call (log scale) against D"
        ),
        frameon=False,
    )
    figure.subplots_adjust(top=1 - 0.9 / figure.get_figheight(), hspace=0.45, wspace=0.3)
    return figure


def main(argv: list[str] | None = None) -> None:
    from benchmarks.reasons import REASONS

    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else Path(__file__).with_name("results.json")
    print(markdown(load(path), REASONS))


if __name__ == "__main__":
    main()
