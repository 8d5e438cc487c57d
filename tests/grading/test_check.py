"""``check`` gives feedback and never raises, whatever a student hands it."""

from __future__ import annotations

import pytest

from flowcourse.exercises import all_questions, check, grade_answer, question
from flowcourse.exercises.registry import CHAPTERS, questions_for_chapter, self_assessed

QUESTION_IDS = list(all_questions())


class Anything:
    """An object that accepts any construction and call, and returns nonsense."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return "nonsense"

    def forward(self, x, *args, **kwargs):
        return x

    def inverse(self, z, *args, **kwargs):
        return (z, z, z)


def raises_system_exit(*args, **kwargs):
    raise SystemExit(3)


WRONG_ANSWERS = [42, "an answer", Anything, Anything(), raises_system_exit, float("nan")]


@pytest.mark.parametrize("question_id", QUESTION_IDS)
def test_nonsense_answers_earn_nothing_and_never_raise(question_id: str, capsys) -> None:
    for answer in WRONG_ANSWERS:
        score = check(question_id, answer, seed=1)
        assert score.points == 0, f"{question_id}: {answer!r} earned {score.points}"
    printed = capsys.readouterr().out
    assert f"{question_id}: 0/" in printed


@pytest.mark.parametrize("question_id", QUESTION_IDS)
def test_an_unanswered_question_says_so(question_id: str, capsys) -> None:
    for stub in (None, ...):
        score = check(question_id, stub)
        assert score.points == 0 and not score.answered
    assert "not answered yet" in capsys.readouterr().out


def test_an_unknown_id_lists_the_known_ones(capsys) -> None:
    score = check("nice.no_such_question", None)
    assert score.points == 0
    assert "nice.additive_coupling" in capsys.readouterr().out
    with pytest.raises(ValueError, match="known ids"):
        question("nice.no_such_question")
    with pytest.raises(TypeError, match="expected a question id"):
        grade_answer(3, None)


def test_every_question_is_well_formed() -> None:
    for chapter in CHAPTERS:
        for item in questions_for_chapter(chapter):
            assert item.id.startswith(f"{chapter}."), item.id
            assert item.contract and item.title and item.points > 0, item.id
            assert item.exercise.split("-ex-")[0], item.id
    assert not set(self_assessed()) & {item.exercise for item in all_questions().values()}, (
        "an exercise is either self-assessed or has graded questions"
    )
