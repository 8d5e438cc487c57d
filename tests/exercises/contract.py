"""What every graded question must do, as assertions shared by the chapters' tests.

A correct answer earns every point on every seed; the stub (and ``None``, ``...``)
earns nothing and counts as not answered; a plausible mistake loses points; a trivial
answer earns nothing. :func:`contract_tests` turns four tables of answers into the four
parametrised tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from flowcourse.exercises import Score, grade_answer, question

SEEDS = (0, 1, 2)


def points(question_id: str, answer: Any, seed: int = 0) -> float:
    """The points ``answer`` earns on the inputs of ``seed``."""
    return grade_answer(question_id, answer, seed=seed).points


def assert_full(question_id: str, answer: Any, seeds: Sequence[int] = SEEDS) -> Score:
    """Every point on every seed (the last score is returned)."""
    possible = question(question_id).points
    for seed in seeds:
        score = grade_answer(question_id, answer, seed=seed)
        assert score.points == pytest.approx(possible) and score.answered, score.report()
    return score


def assert_loses(question_id: str, answer: Any, seeds: Sequence[int] = SEEDS) -> Score:
    """Fewer than all the points on every seed, counted as answered."""
    possible = question(question_id).points
    for seed in seeds:
        score = grade_answer(question_id, answer, seed=seed)
        assert score.points < possible and score.answered, (answer, score.report())
    return score


def assert_zero(question_id: str, answer: Any, seeds: Sequence[int] = SEEDS) -> None:
    """No point on any seed."""
    for seed in seeds:
        score = grade_answer(question_id, answer, seed=seed)
        assert score.points == 0, (answer, score.report())


def assert_stub(question_id: str, *stubs: Any) -> None:
    """The stubs, ``None`` and ``...`` earn nothing and are not answered."""
    for answer in (*stubs, None, ...):
        score = grade_answer(question_id, answer, seed=0)
        assert score.points == 0 and score.answered is False, score.report()


def raising_stub(question_id: str) -> Callable[..., Any]:
    """A function stub as the notebooks hand it out."""

    def stub(*args: Any) -> Any:
        raise NotImplementedError(f"{question_id}: your answer")

    return stub


def contract_tests(
    correct: Mapping[str, Any],
    stubs: Mapping[str, Sequence[Any]],
    wrong: Mapping[str, Sequence[Any]],
    trivial: Mapping[str, Sequence[Any]],
) -> tuple[Callable[..., None], ...]:
    """The four tests of the contract, parametrised over the tables' questions; assign
    them to ``test_*`` names in a test module."""

    @pytest.mark.parametrize("question_id", list(correct))
    def test_the_solution_earns_every_point(question_id: str) -> None:
        score = assert_full(question_id, correct[question_id])
        assert all(result.passed for result in score.results), score.report()

    @pytest.mark.parametrize("question_id", list(stubs))
    def test_a_stub_earns_nothing_and_is_not_answered(question_id: str) -> None:
        assert_stub(question_id, *stubs[question_id])

    @pytest.mark.parametrize(
        ("question_id", "answer"),
        [(q, answer) for q, answers in wrong.items() for answer in answers],
    )
    def test_a_wrong_answer_loses_points(question_id: str, answer: Any) -> None:
        assert_loses(question_id, answer, seeds=SEEDS[:2])

    @pytest.mark.parametrize(
        ("question_id", "answer"),
        [(q, answer) for q, answers in trivial.items() for answer in answers],
    )
    def test_a_trivial_answer_earns_nothing(question_id: str, answer: Any) -> None:
        assert_zero(question_id, answer)

    return (
        test_the_solution_earns_every_point,
        test_a_stub_earns_nothing_and_is_not_answered,
        test_a_wrong_answer_loses_points,
        test_a_trivial_answer_earns_nothing,
    )
