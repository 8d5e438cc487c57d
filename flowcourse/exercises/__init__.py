"""Graded exercises: one registry of questions, instant feedback, and the grader's judge.

Each exercise of the book has one or more graded questions (a stable id such as
``nice.additive_coupling``, a contract, points) or is self-assessed (proofs). In a
notebook, check an answer with::

    from flowcourse.exercises import check
    check("nice.additive_coupling", MyAdditiveCoupling)

Instructors grade a folder of submitted notebooks with ``flowcourse grade`` (see
:mod:`flowcourse.grading`).
"""

from flowcourse.exercises.feedback import check, grade_answer
from flowcourse.exercises.question import NOT_ANSWERED, Question, Result, Score
from flowcourse.exercises.registry import (
    CHAPTERS,
    all_questions,
    is_self_assessed,
    question,
    questions_for_chapter,
    questions_for_exercise,
    self_assessed,
)

__all__ = [
    "CHAPTERS",
    "NOT_ANSWERED",
    "Question",
    "Result",
    "Score",
    "all_questions",
    "check",
    "grade_answer",
    "is_self_assessed",
    "question",
    "questions_for_chapter",
    "questions_for_exercise",
    "self_assessed",
]
