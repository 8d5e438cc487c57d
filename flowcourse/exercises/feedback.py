"""Instant feedback in the student's notebook: ``check("nice.additive_coupling", answer)``.

:func:`check` runs a question's checks on fresh random inputs (random weights, float64)
in the student's own kernel, prints one line per property (PASS/FAIL, points, and what
to fix) and the points earned, and returns the :class:`Score`. It never raises for a
wrong or missing answer: an answer still at its stub prints "not answered yet".

The score printed here is feedback, not a grade: the instructor's grader
(``flowcourse grade``) runs the same checks on inputs it draws itself, in a separate
process, and trusts nothing that this function printed or returned.
"""

from __future__ import annotations

import secrets
from typing import Any

import torch

from flowcourse.exercises.question import NOT_ANSWERED, Result, Score, error_of
from flowcourse.exercises.registry import question

__all__ = ["check", "grade_answer"]


def _is_stub_value(answer: Any) -> bool:
    return answer is None or answer is Ellipsis


def grade_answer(question_id: str, answer: Any, seed: int | None = None) -> Score:
    """Judge ``answer`` to ``question_id`` on inputs drawn with ``seed`` (random if
    ``None``), in this process. Never raises for a wrong answer."""
    item = question(question_id)
    generator = torch.Generator().manual_seed(secrets.randbits(63) if seed is None else int(seed))
    inputs = item.make_inputs(generator)
    if _is_stub_value(answer):
        outputs: dict[str, Any] = {
            "unanswered": True,
            "missing": f"{NOT_ANSWERED}: define {item.answer_name} ({item.kind})",
        }
        return item.score(inputs, outputs)
    try:
        outputs = item.respond(answer, inputs)
    except NotImplementedError as error:
        outputs = {"unanswered": True, "missing": f"{NOT_ANSWERED} ({error_of(error)})"}
    except Exception as error:
        result = Result(
            "answer runs", False, 0.0, 0.0, f"calling the answer raised {error_of(error)}"
        )
        return Score(item.id, (result,), item.points)
    return item.score(inputs, outputs)


def check(question_id: str, answer: Any, seed: int | None = None) -> Score:
    """Check ``answer`` to the question ``question_id`` and print the feedback.

    Arguments:
        question_id: the question's id, printed under its exercise (``"nice.additive_coupling"``).
        answer: what the question asks for: a class, a function, or a value.
        seed: fix the random inputs (default: new ones at every call).

    Returns:
        The :class:`Score`, whose ``points`` and ``possible`` give the result.

    Example:
        >>> from flowcourse.exercises import check
        >>> score = check("nice.nll_gap_bound", None)
        nice.nll_gap_bound: 0/2 points, not answered yet: define nll_gap_lower_bound (function)
    """
    try:
        score = grade_answer(question_id, answer, seed)
    except (TypeError, ValueError) as error:  # an unknown id: say which ones exist
        print(f"check: {error}")
        return Score(str(question_id), (), 0.0, answered=False)
    print(score.report())
    return score
