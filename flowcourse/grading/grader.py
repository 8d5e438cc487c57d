"""Grade a folder of submitted notebooks: one row of points per student.

For every submission and every question of the chapter, the grader draws fresh inputs
(its own seed, chosen at grading time), runs the student's answer on them in a
sandbox (:mod:`flowcourse.grading.sandbox`), and judges the outputs in this process
against the package's reference. Submissions are graded independently: one that
crashes, hangs or floods its output costs only its own points.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from flowcourse.exercises.question import Question, Result, Score
from flowcourse.exercises.registry import CHAPTERS, questions_for_chapter
from flowcourse.grading.sandbox import Limits, run_answer
from flowcourse.grading.submission import read_submission

__all__ = [
    "SubmissionGrade",
    "chapter_name",
    "grade_folder",
    "grade_submission",
    "write_feedback",
    "write_gradescope_results",
    "write_grades_csv",
]


@dataclass
class SubmissionGrade:
    """The scores of one student's notebook."""

    student: str
    scores: dict[str, Score] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return sum(score.points for score in self.scores.values())

    @property
    def max_total(self) -> float:
        return sum(score.possible for score in self.scores.values())

    def feedback(self) -> str:
        """What each check said, question by question, and the total."""
        lines = [f"student: {self.student}"]
        lines += [f"note: {note}" for note in self.notes]
        for question_id, score in self.scores.items():
            lines += ["", f"== {question_id}", score.report()]
        lines += ["", f"total: {self.total:g}/{self.max_total:g} points"]
        return "\n".join(lines) + "\n"


def chapter_name(text: str) -> str:
    """``"nice"`` from ``"nice"``, ``"nice.md"``, ``"book/nice.ipynb"``."""
    name = Path(text).stem
    if name not in CHAPTERS:
        raise ValueError(f"expected a chapter among {', '.join(CHAPTERS)}, got {text!r}")
    return name


def _seed(base: int, student: str, question_id: str) -> int:
    digest = hashlib.sha256(f"{base}/{student}/{question_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def grade_submission(
    chapter: str, path: Path, *, seed: int | None = None, limits: Limits | None = None
) -> SubmissionGrade:
    """Grade one notebook; never raises for anything the notebook contains."""
    start = time.perf_counter()
    limits = limits or Limits()
    base = secrets.randbits(62) if seed is None else int(seed)
    questions = questions_for_chapter(chapter)
    grade = SubmissionGrade(student=path.stem)
    submission = read_submission(path, {item.answer_name for item in questions})
    grade.notes.extend(submission.problems)
    for item in questions:
        grade.scores[item.id] = _grade_question(item, submission, base, grade, limits)
    grade.seconds = time.perf_counter() - start
    return grade


def _grade_question(item: Question, submission, base: int, grade, limits: Limits) -> Score:
    generator = torch.Generator().manual_seed(_seed(base, grade.student, item.id))
    inputs = item.make_inputs(generator)
    statements, note = submission.program(item.answer_name)
    if not statements or not any(item.answer_name in s.defines for s in statements):
        message = note or f"no definition of {item.answer_name} was found"
        return item.score(inputs, {"missing": message})
    question_limits = Limits(
        min(limits.time_s, item.time_limit_s), limits.memory_mb, limits.processes, limits.file_mb
    )
    run = run_answer(item.id, inputs, statements, question_limits)
    grade.notes.extend(f"{item.id}: {text}" for text in run.notes)
    score = item.score(inputs, run.outputs)
    if note and score.answered:
        extra = Result("answer found", False, 0.0, 0.0, note)
        score = Score(score.question, (extra, *score.results), score.possible, score.answered)
    return score


def grade_folder(
    chapter: str,
    folder: Path,
    *,
    jobs: int = 1,
    seed: int | None = None,
    limits: Limits | None = None,
    progress: bool = True,
) -> list[SubmissionGrade]:
    """Grade every ``*.ipynb`` in ``folder`` (the file name is the student's id)."""
    from tqdm.auto import tqdm

    paths = sorted(p for p in Path(folder).glob("*.ipynb") if p.is_file())
    base = secrets.randbits(62) if seed is None else int(seed)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(grade_submission, chapter, path, seed=base, limits=limits) for path in paths
        ]
        grades = [
            future.result()
            for future in tqdm(futures, desc=f"grading {chapter}", disable=not progress)
        ]
    return grades


def write_grades_csv(grades: Iterable[SubmissionGrade], questions: list[Question], out: Path):
    """``student``, one column per question id (points earned), ``total``, ``max_total``."""
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *(item.id for item in questions), "total", "max_total"])
        for grade in grades:
            points = [f"{grade.scores[item.id].points:g}" for item in questions]
            writer.writerow([grade.student, *points, f"{grade.total:g}", f"{grade.max_total:g}"])


def write_feedback(grades: Iterable[SubmissionGrade], folder: Path) -> None:
    """One ``<student>.txt`` per student with what every check said."""
    folder.mkdir(parents=True, exist_ok=True)
    for grade in grades:
        (folder / f"{grade.student}.txt").write_text(grade.feedback(), encoding="utf-8")


def write_gradescope_results(grade: SubmissionGrade, out: Path) -> None:
    """Gradescope's ``results.json`` for one submission."""
    tests = [
        {
            "name": question_id,
            "score": score.points,
            "max_score": score.possible,
            "output": score.report(),
        }
        for question_id, score in grade.scores.items()
    ]
    results = {
        "score": grade.total,
        "output": "\n".join(grade.notes) or "Graded by flowcourse.",
        "tests": tests,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
