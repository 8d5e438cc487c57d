"""``flowcourse grade`` on sample NICE submissions: correct, partial and hostile ones.

The grader runs each answer in a limited process on inputs it draws itself and judges
the outputs against its own reference; each sample must get exactly its points.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from tests.grading.nice_submissions import SUBMISSIONS

pytestmark = pytest.mark.xdist_group("grading")  # one worker grades the samples once

ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 15


def write_notebook(path: Path, cells: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(notebook, path)
    return path


def run_grader(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowcourse.grade", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("submissions")
    for student, (cells, _) in SUBMISSIONS.items():
        write_notebook(folder / f"{student}.ipynb", cells)
    (folder / "not_json.ipynb").write_text("{this is not a notebook", encoding="utf-8")
    (folder / "notes.txt").write_text("not a submission", encoding="utf-8")
    out = tmp_path_factory.mktemp("out") / "grades.csv"
    process = run_grader(
        "nice", str(folder), "--out", str(out), "--jobs", "2", "--time-limit", str(TIME_LIMIT_S)
    )
    assert process.returncode == 0, process.stderr[-2000:]
    with open(out, newline="", encoding="utf-8") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    return {"rows": rows, "out": out, "stdout": process.stdout, "folder": folder}


def test_csv_has_one_row_per_notebook_and_the_documented_columns(graded: dict) -> None:
    rows = graded["rows"]
    assert set(rows) == {*SUBMISSIONS, "not_json"}, "one row per .ipynb, named by its file"
    columns = list(next(iter(rows.values())))
    assert columns[0] == "student" and columns[-2:] == ["total", "max_total"]
    assert columns[1:-2] == list(SUBMISSIONS["correct"][1]), "one column per question id"
    assert "graded 13 submission(s) of nice in" in graded["stdout"], graded["stdout"]


@pytest.mark.parametrize("student", list(SUBMISSIONS))
def test_each_sample_gets_exactly_its_points(graded: dict, student: str) -> None:
    row = graded["rows"][student]
    expected = SUBMISSIONS[student][1]
    got = {question_id: float(row[question_id]) for question_id in expected}
    feedback = (graded["out"].parent / "grades_feedback" / f"{student}.txt").read_text()
    assert got == pytest.approx(expected), f"{student}: got {got}\n{feedback}"
    assert float(row["total"]) == pytest.approx(sum(expected.values()))
    assert float(row["max_total"]) == 7


def test_an_unreadable_notebook_gets_zero_and_says_why(graded: dict) -> None:
    assert float(graded["rows"]["not_json"]["total"]) == 0
    feedback = (graded["out"].parent / "grades_feedback" / "not_json.txt").read_text()
    assert "not a readable notebook" in feedback


def test_feedback_says_what_is_wrong(graded: dict) -> None:
    folder = graded["out"].parent / "grades_feedback"
    partial = (folder / "partly_correct.txt").read_text()
    assert "FAIL [0/1] inverse(z) returns x" in partial and "expected" in partial
    assert "no definition of move_scaling_to_end" in partial
    assert "not answered yet" in (folder / "unanswered.txt").read_text()
    assert "syntax error" in (folder / "syntax_error.txt").read_text()
    assert "time limit" in (folder / "loops_forever.txt").read_text()
    assert "not available while it is graded" in (folder / "wraps_the_package.txt").read_text()


def test_files_written_by_answers_stay_in_their_scratch_folder(graded: dict) -> None:
    assert not (Path.home() / "grades.csv").exists() or "me,3" not in (
        Path.home() / "grades.csv"
    ).read_text(errors="replace")
    assert "me,3,2,2" not in graded["out"].read_text()


def test_gradescope_autograder_runs_as_gradescope_lays_it_out(tmp_path: Path) -> None:
    archive = tmp_path / "autograder.zip"
    process = run_grader("--gradescope", "nice", "--out", str(archive))
    assert process.returncode == 0, process.stderr[-2000:]
    root = tmp_path / "autograder"
    with zipfile.ZipFile(archive) as handle:
        names = handle.namelist()
        handle.extractall(root / "source")
    assert {"setup.sh", "run_autograder", "flowcourse/exercises/nice.py"} <= set(names)
    cells, expected = SUBMISSIONS["partly_correct"]
    (root / "submission").mkdir()
    write_notebook(root / "submission" / "homework.ipynb", cells)
    environment = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    run = subprocess.run(
        ["bash", str(root / "source" / "run_autograder")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == pytest.approx(sum(expected.values()))
    scores = {test["name"]: test["score"] for test in results["tests"]}
    assert scores == pytest.approx(expected)
    assert all(test["max_score"] > 0 and test["output"] for test in results["tests"])


def test_bad_command_lines_say_what_was_expected(tmp_path: Path) -> None:
    unknown = run_grader("chapter_x", str(tmp_path), "--out", str(tmp_path / "g.csv"))
    assert unknown.returncode == 2 and "expected a chapter among" in unknown.stderr
    missing = run_grader("nice", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g.csv"))
    assert missing.returncode == 2 and "expected a folder" in missing.stderr
