"""The one place where the graded questions of the book are registered.

Each chapter with exercises has a module in this package (``nice.py`` for the NICE
chapter) that defines ``QUESTIONS``, a list of :class:`Question`, and ``SELF_ASSESSED``,
a mapping from the labels of its proof-only exercises to a sentence saying why they
carry no points. A new question is added to its chapter's module; nothing else
changes: the notebooks, :func:`~flowcourse.exercises.check` and the grader read it
from here.
"""

from __future__ import annotations

import importlib

from flowcourse.exercises.question import Question

__all__ = [
    "CHAPTERS",
    "all_questions",
    "chapter_of",
    "is_self_assessed",
    "question",
    "questions_for_chapter",
    "questions_for_exercise",
    "self_assessed",
]

#: The chapters with exercises, in the book's order (module names in this package).
CHAPTERS = (
    "generative_models",
    "change_of_variables",
    "nice",
    "realnvp",
    "glow",
    "made",
    "maf",
    "vi",
    "iaf",
    "nsf",
    "flow_matching",
    "summary",
)


def _chapter_module(chapter: str):
    if chapter not in CHAPTERS:
        raise ValueError(f"expected a chapter among {', '.join(CHAPTERS)}, got {chapter!r}")
    return importlib.import_module(f"flowcourse.exercises.{chapter}")


def questions_for_chapter(chapter: str) -> list[Question]:
    """The graded questions of one chapter, in the order of the book."""
    return list(_chapter_module(chapter).QUESTIONS)


def all_questions() -> dict[str, Question]:
    """Every graded question of the book, by id."""
    questions: dict[str, Question] = {}
    for chapter in CHAPTERS:
        for item in questions_for_chapter(chapter):
            if item.id in questions:
                raise RuntimeError(f"question id {item.id!r} is registered twice")
            if item.chapter != chapter:
                raise RuntimeError(f"question {item.id!r} is registered in chapter {chapter}")
            questions[item.id] = item
    return questions


def question(question_id: str) -> Question:
    """The question with id ``question_id`` (``"nice.additive_coupling"``)."""
    if not isinstance(question_id, str):
        raise TypeError(f"expected a question id (str), got {type(question_id).__name__}")
    questions = all_questions()
    if question_id not in questions:
        chapter = question_id.partition(".")[0]
        known = [q for q in questions if q.startswith(f"{chapter}.")] or list(questions)
        raise ValueError(f"no question {question_id!r}; known ids: {', '.join(known)}")
    return questions[question_id]


def questions_for_exercise(label: str) -> list[Question]:
    """The graded questions of the book's exercise labelled ``label``."""
    return [item for item in all_questions().values() if item.exercise == label]


def self_assessed() -> dict[str, str]:
    """Labels of the proof-only exercises, with why they carry no points."""
    labels: dict[str, str] = {}
    for chapter in CHAPTERS:
        labels.update(getattr(_chapter_module(chapter), "SELF_ASSESSED", {}))
    return labels


def is_self_assessed(label: str) -> bool:
    """Whether the exercise labelled ``label`` is self-assessed (no points)."""
    return label in self_assessed()


def chapter_of(label: str) -> str:
    """The chapter module of an exercise label, from its questions or its entry."""
    for item in all_questions().values():
        if item.exercise == label:
            return item.chapter
    for chapter in CHAPTERS:
        if label in getattr(_chapter_module(chapter), "SELF_ASSESSED", {}):
            return chapter
    raise ValueError(f"no exercise labelled {label!r} is registered")
