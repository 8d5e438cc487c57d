"""The benchmark's instrument, tested without timing anything (benchmarks are never tests).

- every library builds every model at a tiny size, scores and samples with the right
  shapes, and matched models have the same parameter count (peers that are not
  installed are skipped, with the reason); flowcourse with its checks off skips the
  finiteness check and restores the mode;
- the NICE cross-check agrees to round-off and notices a wrong weight;
- the timer interleaves, warms up and records one value per repeat;
- the report turns a small results file into tables, verdicts, sentences and a plot,
  and a one-cell run of the harness writes a file the report can read.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
from pathlib import Path

import pytest
import torch

from benchmarks import libraries, report, run, timing
from flowcourse.validation import validation_mode

PEERS_INSTALLED = [name for name in report.PEERS if importlib.util.find_spec(name) is not None]
MISSING = sorted(set(report.PEERS) - set(PEERS_INSTALLED))
needs_peers = pytest.mark.skipif(
    bool(MISSING), reason=f"not installed: {MISSING} (pip install -r requirements-bench.txt)"
)
LIBRARIES = ["flowcourse", libraries.UNCHECKED, *PEERS_INSTALLED]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("kind", libraries.MODELS)
def test_every_library_scores_and_samples(library: str, kind: str) -> None:
    mode = validation_mode()
    model = libraries.build(library, kind, features=4, hidden=8)
    x = torch.randn(5, 4)
    log_prob = model.log_prob(x)
    assert log_prob.shape == (5,) and torch.isfinite(log_prob).all()
    (-log_prob.mean()).backward()
    grads = [p.grad for p in model.module.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads), f"{library} {kind}: no gradient"
    with torch.no_grad():
        assert model.sample(3).shape == (3, 4)
    assert validation_mode() == mode, "the checks-off variant did not restore the mode"


@needs_peers
@pytest.mark.parametrize("features, hidden", [(2, 8), (6, 16)])
@pytest.mark.parametrize("kind", libraries.MODELS)
def test_matched_models_have_the_same_parameter_count(kind: str, features: int, hidden: int):
    counts = {
        library: libraries.parameter_count(libraries.build(library, kind, features, hidden))
        for library in libraries.LIBRARIES
    }
    assert len(set(counts.values())) == 1, f"{kind} D={features} width {hidden}: {counts}"
    if kind == "MAF":  # the floor has the MADEs' matrices, without their masks
        floor = libraries.build(libraries.FLOOR, kind, features, hidden)
        assert libraries.parameter_count(floor) == counts["flowcourse"]


def test_the_checks_off_variant_skips_the_finiteness_check() -> None:
    nan = torch.full((2, 4), float("nan"))
    with pytest.raises(ValueError, match="finite"):
        libraries.build("flowcourse", "NICE", 4, 8).log_prob(nan)
    assert torch.isnan(libraries.build(libraries.UNCHECKED, "NICE", 4, 8).log_prob(nan)).all()


def test_the_floor_is_only_for_maf() -> None:
    with pytest.raises(libraries.NotAvailable, match="MAF"):
        libraries.build(libraries.FLOOR, "RealNVP", 4, 8)
    floor = libraries.build(libraries.FLOOR, "MAF", 3, 8)
    assert floor.sample is None
    assert timing.call_for(floor, "sample", torch.zeros(2, 3)) is None


@pytest.mark.skipif("nflows" not in PEERS_INSTALLED, reason="nflows is not installed")
def test_nice_cross_check_agrees_and_notices_a_wrong_weight() -> None:
    from benchmarks.crosscheck import cross_check_nice, nice_pair

    assert cross_check_nice() < 1e-12
    flow, reference = nice_pair()
    x = torch.randn(64, 4, dtype=torch.float64)
    with torch.no_grad():
        before = reference.log_prob(x)
        assert before.std() > 0.1  # not a constant: the weights are random
        next(reference.parameters()).add_(0.1)
        assert (flow.log_prob(x) - reference.log_prob(x)).abs().max() > 1e-4


def test_timer_interleaves_warms_up_and_records_each_repeat() -> None:
    calls_seen: list[str] = []
    calls = {name: (lambda name=name: calls_seen.append(name)) for name in "abcd"}
    times = timing.time_interleaved(calls, 6, 2, random.Random(0), torch.device("cpu"))
    assert {name: len(values) for name, values in times.items()} == dict.fromkeys("abcd", 6)
    rounds = [calls_seen[i : i + 4] for i in range(0, len(calls_seen), 4)]
    assert len(rounds) == 8 and all(sorted(r) == list("abcd") for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1, "the order was never shuffled"
    assert timing.summarise([3.0, 1.0, 2.0])["median"] == 2.0


def test_train_step_updates_the_weights() -> None:
    model = libraries.build("flowcourse", "NICE", 4, 8)
    before = [p.detach().clone() for p in model.module.parameters()]
    timing.call_for(model, "train_step", torch.randn(16, 4))()
    after = list(model.module.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


def test_sequential_cells_are_capped_by_size() -> None:
    assert run._capped("MAF", "sample", 64, 64, 2048)
    assert run._capped("IAF", "train_step", 32, 256, 2048)
    assert run._capped("MAF", "sample", 32, 64, 2048) is None
    assert run._capped("MAF", "log_prob", 64, 256, 2048) is None
    assert run._capped("MAF", "sample", 64, 256, None) is None


# ------------------------------------------------------------------------------ report


def _cell(model: str, op: str, dim: int, times: dict[str, float], **extra) -> dict:
    row = {
        "device": "cpu",
        "threads": 1,
        "model": model,
        "D": dim,
        "hidden": 64,
        "batch": 512,
        "op": op,
        "parameters": dict.fromkeys(["flowcourse", *report.PEERS], 100),
        "unavailable": {},
        "times": {name: {"median": t, "q1": t, "q3": t} for name, t in times.items()},
    }
    row.update(extra)
    return row


def fake_results() -> dict:
    meta = {
        "date": "2026-01-01T00:00:00+00:00",
        "duration_s": 60.0,
        "commit": "abc123",
        "device": "cpu",
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "system": "Linux 6",
            "load_before": 0.1,
            "load_after": 0.2,
        },
        "versions": {"python": "3.11", "torch": "2.13", "flowcourse": "0.2.0", "zuko": "1.6"},
        "libraries": ["flowcourse", *report.PEERS],
        "grid": {
            "models": ["MAF", "IAF"],
            "dims": [2, 8],
            "hidden": [64],
            "batches": [512],
            "threads": [1],
        },
        "repeats": 15,
        "warmup": 2,
        "sequential_cap": 2048,
        "quick": False,
        "dtype": "float32",
        "notes": [],
        "cross_check_nice_nflows_nats": 1e-16,
    }
    fast = {"flowcourse": 0.001, "zuko": 0.002, "nflows": 0.003, "normflows": 0.004}
    slow = {"flowcourse": 0.006, "zuko": 0.005, "nflows": 0.003, "normflows": 0.004}
    rows = [
        _cell("MAF", "log_prob", 2, {**fast, libraries.FLOOR: 0.0005}),  # 2x the floor: missed
        _cell("MAF", "log_prob", 8, {**fast, libraries.FLOOR: 0.0009}),  # ahead of everything
        _cell("MAF", "sample", 2, slow),  # behind nflows: a sentence
        _cell("MAF", "sample", 8, {}, skipped="not timed: capped"),
        _cell("IAF", "sample", 2, slow),  # behind, but IAF sampling has no target
        _cell("IAF", "train_step", 2, slow, unavailable={"zuko": "no IAF"}),
    ]
    del rows[-1]["times"]["zuko"]
    return {"meta": meta, "results": rows}


def test_verdicts_follow_the_targets() -> None:
    results = fake_results()
    found = {
        (s["row"]["model"], s["row"]["op"], s["row"]["D"], s["kind"]): s
        for s in report.shortfalls(results)
    }
    assert set(found) == {
        ("MAF", "log_prob", 2, "floor"),
        ("MAF", "sample", 2, "peer"),
        ("IAF", "train_step", 2, "peer"),
    }
    assert found["MAF", "sample", 2, "peer"]["reference"] == "nflows"
    assert found["MAF", "sample", 2, "peer"]["ratio"] == pytest.approx(0.006 / 0.003)
    assert found["MAF", "log_prob", 2, "floor"]["ratio"] == pytest.approx(0.001 / 0.0005)
    counts = report.summary(results)
    assert counts["peer_cells"] == 4 and counts["peer_met"] == 2  # IAF sample has no target
    assert counts["peer_tied"] == 2  # both misses are 2x: no tie
    assert counts["floor_cells"] == 2 and counts["floor_met"] == 1
    assert counts["capped_cells"] == 1


def test_sentences_take_numbers_from_the_results_and_reasons_from_a_person() -> None:
    results = fake_results()
    shortfall = next(s for s in report.shortfalls(results) if s["row"]["op"] == "sample")
    text = report.sentence(shortfall, {("MAF", "sample"): "Because of the passes."})
    assert "6.00 ms" in text and "3.00 ms" in text and "2.00x nflows" in text
    assert text.endswith("Because of the passes.")
    assert "No explanation recorded" in report.sentence(shortfall, {})


def test_tables_have_a_row_per_cell_and_mark_capped_and_missing_ones() -> None:
    results = fake_results()
    tables = report.tables(results, "MAF")
    assert set(tables) == {"log_prob", "sample"}
    log_prob_rows = tables["log_prob"].splitlines()[2:]
    assert len(log_prob_rows) == 2 and libraries.FLOOR in tables["log_prob"]
    assert "2.00x **missed**" in log_prob_rows[0]  # the floor ratio of D = 2
    assert "capped" in tables["sample"].splitlines()[-1]
    iaf = report.tables(results, "IAF")
    assert "(no target)" in iaf["sample"]
    assert "| n/a |" in iaf["train_step"]  # zuko has no IAF in this fake file


def test_sections_put_each_sentence_under_its_own_table() -> None:
    results = fake_results()
    reasons = {("MAF", "sample"): "Because of the passes."}
    sections = dict(report.sections(results, reasons))
    cells = [("MAF", "log_prob"), ("MAF", "sample"), ("IAF", "train_step"), ("IAF", "sample")]
    titles = [f"{model}: {report.OPERATION_TITLES[op]}" for model, op in cells]
    assert list(sections) == titles  # the order of libraries.MODELS and timing.OPERATIONS
    assert sections[titles[0]].startswith(report.tables(results, "MAF")["log_prob"])
    assert sections[titles[0]].count("\n- ") == 1 and "MLP floor (" in sections[titles[0]]
    assert sections[titles[1]].endswith("Because of the passes.")
    assert "No explanation recorded" in sections[titles[2]]
    assert sections[titles[3]] == report.tables(results, "IAF")["sample"]  # no target: no sentence
    markdown = report.markdown(results, reasons)
    assert all(f"## {title}\n\n{body}\n" in markdown for title, body in sections.items())


def test_markdown_report_states_machine_versions_date_and_mismatched_counts() -> None:
    results = fake_results()
    results["results"][0]["parameters"]["zuko"] = 99
    text = report.markdown(results, {})
    for expected in ("Test CPU", "zuko 1.6", "2026-01-01", "abc123", "median of 15 repeats"):
        assert expected in text
    assert "**no**" in text  # the parameter counts of MAF D=2 differ in this file


def test_plot_has_a_panel_per_model_and_operation() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = report.plot(fake_results())
    try:
        assert len(figure.axes) == 2 * 3
        lines = {line.get_label() for line in figure.axes[1].get_lines()}  # MAF log_prob
        assert {"flowcourse", libraries.FLOOR} <= lines
    finally:
        plt.close(figure)


def test_a_one_cell_run_writes_results_the_report_reads(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    arguments = [
        "--quick",
        "--models",
        "NICE",
        "--dims",
        "2",
        "--hidden",
        "8",
        "--batches",
        "16",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--libraries",
        "flowcourse",
        "--out",
        str(out),
    ]
    run.main(arguments)
    results = json.loads(out.read_text())
    assert results["meta"]["quick"] and results["meta"]["versions"]["flowcourse"]
    assert [row["op"] for row in results["results"]] == list(timing.OPERATIONS)
    assert all(row["times"]["flowcourse"]["median"] > 0 for row in results["results"])
    assert "smoke run" in out.with_suffix(".md").read_text()


def test_quick_grid_is_small() -> None:
    parser_defaults = dict(
        models=None,
        dims=None,
        hidden=None,
        batches=None,
        threads=None,
        quick=True,
        device="cpu",
    )
    axes = run.grid(argparse.Namespace(**parser_defaults))
    assert axes["dims"] == [2, 8] and axes["threads"] == [1] and len(axes["models"]) == 4
    full = run.grid(argparse.Namespace(**{**parser_defaults, "quick": False}))
    assert full["dims"] == [2, 8, 32, 64] and full["threads"] == [1, 2]
    assert full["batches"] == [512, 1024] and full["hidden"] == [64, 256]
