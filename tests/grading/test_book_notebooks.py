"""The book's own notebooks through the grader: the instructor version of every chapter
earns full marks, the committed student notebook earns nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flowcourse.exercises.registry import CHAPTERS, questions_for_chapter
from flowcourse.grading import grade_folder
from tests.helpers import load_sync_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def instructor_notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sync = load_sync_script()
    folder = tmp_path_factory.mktemp("instructor")
    sync.write_instructor_notebooks(sync.chapter_sources(), folder)
    return folder


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_instructor_earns_everything_and_student_nothing(
    chapter: str, instructor_notebooks: Path, tmp_path: Path
) -> None:
    shutil.copy(instructor_notebooks / f"{chapter}.ipynb", tmp_path / "instructor.ipynb")
    shutil.copy(ROOT / "book" / f"{chapter}.ipynb", tmp_path / "student.ipynb")
    grades = {g.student: g for g in grade_folder(chapter, tmp_path, seed=0, progress=False)}
    instructor, student = grades["instructor"], grades["student"]
    possible = sum(item.points for item in questions_for_chapter(chapter))
    assert instructor.max_total == possible > 0
    assert instructor.total == pytest.approx(possible), instructor.feedback()
    assert student.total == 0, student.feedback()
    assert not any(score.answered for score in student.scores.values()), student.feedback()
