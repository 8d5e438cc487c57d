r"""What a graded question is: a contract, inputs, a response, and a judgement.

A question is graded in three steps, and each step runs where it can be trusted:

1. ``make_inputs(generator)`` runs on the **grader's** side. It draws fresh inputs at
   grading time: sizes, random weights (a layer left at its identity initialisation
   would pass a check by accident), data, all in float64.
2. ``respond(answer, inputs)`` runs **beside the student's code** (in the student's
   kernel for :func:`~flowcourse.exercises.check`; in a sandboxed process for the
   grader). It calls the answer on the inputs and returns only plain data: tensors,
   numbers, strings, and the text of any error.
3. ``judge(inputs, outputs)`` runs on the grader's side again. It recomputes what the
   answer should have returned with the package's reference and compares. Points come
   only from agreeing with the reference on the question's task; other properties
   (invertible, log-determinant equal to autograd's, Jacobian structure, shapes) are
   reported with zero points, to explain *why* an answer disagrees.

A trivial answer (the identity, zeros, the input returned unchanged) can have some
properties of a correct one, but it does not agree with the reference on random
inputs, so it earns nothing.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "NOT_ANSWERED",
    "Question",
    "Result",
    "Score",
    "TimeLimitExceeded",
    "attempt",
    "compare",
    "diagnostic",
    "error_of",
    "not_answered",
    "plain",
]

#: What feedback says of an answer that is still the stub.
NOT_ANSWERED = "not answered yet"


class TimeLimitExceeded(BaseException):
    """Raised in an answer's code when its time is up, by the grader's sandbox (a
    BaseException, so that an ``except Exception`` in the answer does not swallow it)."""


TimeLimitExceeded.__module__ = "builtins"  # error messages name it without a path

#: Set by the grader's sandbox: a context manager that limits the time of one call.
_call_limit: Callable[[], Any] | None = None
_KINDS = ("class", "function", "value")


@dataclass(frozen=True)
class Result:
    """One judged property: ``points`` earned out of ``possible`` (0 for a diagnostic)."""

    name: str
    passed: bool
    points: float
    possible: float
    message: str

    def line(self) -> str:
        """One line of feedback: PASS/FAIL, the property, the points and the message."""
        status = "PASS" if self.passed else "FAIL"
        worth = f" [{self.points:g}/{self.possible:g}]" if self.possible else ""
        return f"{status}{worth} {self.name}: {self.message}"


@dataclass(frozen=True)
class Score:
    """The judgement of one answer to one question."""

    question: str
    results: tuple[Result, ...]
    possible: float
    answered: bool = True

    @property
    def points(self) -> float:
        """Points earned, never more than the question is worth."""
        return min(self.possible, sum(result.points for result in self.results))

    def __repr__(self) -> str:
        return f"Score({self.question!r}: {self.points:g}/{self.possible:g} points)"

    def report(self) -> str:
        """The feedback a student reads: one line per property, then the total."""
        total = f"{self.question}: {self.points:g}/{self.possible:g} points"
        if not self.answered:  # one line, not one failure per property
            reason = next(
                (r.message for r in self.results if r.name == "answer found"),
                "replace the stub's NotImplementedError with your code",
            )
            if NOT_ANSWERED not in reason:
                reason = f"{NOT_ANSWERED}: {reason}"
            return f"{total}, {reason}"
        lines = [result.line() for result in self.results]
        return "\n".join([*lines, total])


@dataclass(frozen=True)
class Question:
    """A graded part of an exercise of the book.

    Attributes:
        id: stable id ``<chapter>.<name>``, used by :func:`check` and the grader.
        exercise: the label of the book's exercise it belongs to.
        title: a short title.
        answer_name: the name the student defines in the notebook.
        kind: ``"class"``, ``"function"`` or ``"value"``.
        contract: what the answer must be: signature, shapes, dtypes, units.
        points: points of the whole question (the sum over the graded properties).
        make_inputs: grader side, ``generator -> inputs`` (plain data only).
        respond: student side, ``(answer, inputs) -> outputs`` (plain data only).
        judge: grader side, ``(inputs, outputs) -> [Result, ...]``.
        protected: package objects that answer the question, as ``"module:qualname"``;
            the grader makes them raise while a submission runs.
        open_book: why the package's source contains the answer, if it does.
        time_limit_s: seconds the grader gives the answer's process.
    """

    id: str
    exercise: str
    title: str
    answer_name: str
    kind: str
    contract: str
    points: float
    make_inputs: Callable[[torch.Generator], dict[str, Any]]
    respond: Callable[[Any, dict[str, Any]], dict[str, Any]]
    judge: Callable[[dict[str, Any], dict[str, Any]], list[Result]]
    protected: tuple[str, ...] = ()
    open_book: str = ""
    time_limit_s: float = 60.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        chapter, _, name = self.id.partition(".")
        if not chapter or not name or not name.isidentifier():
            raise ValueError(f"expected an id '<chapter>.<name>', got {self.id!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"expected kind in {_KINDS}, got {self.kind!r}")
        if not self.answer_name.isidentifier():
            raise ValueError(f"expected a Python name as answer_name, got {self.answer_name!r}")
        if not self.points > 0:
            raise ValueError(f"expected positive points, got {self.points!r}")

    @property
    def chapter(self) -> str:
        """The chapter part of the id (``nice`` for ``nice.additive_coupling``)."""
        return self.id.partition(".")[0]

    def score(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> Score:
        """Judge ``outputs`` against the reference on ``inputs``; never raises."""
        if outputs.get("missing"):
            message = str(outputs["missing"])
            if outputs.get("crashed"):  # answered, but its process died or timed out
                result = Result("answer ran", False, 0.0, 0.0, message)
                return Score(self.id, (result,), self.points, answered=True)
            result = Result("answer found", False, 0.0, 0.0, message)
            return Score(self.id, (result,), self.points, answered=False)
        try:
            results = list(self.judge(inputs, outputs))
        except Exception as error:  # a malformed output must not stop the grader
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            results = [Result("outputs readable", False, 0.0, 0.0, f"could not judge: {detail}")]
        graded = sum(result.possible for result in results)
        if graded and not math.isclose(graded, self.points):
            raise RuntimeError(f"{self.id}: judged {graded} points, declared {self.points}")
        answered = not not_answered(outputs)
        return Score(self.id, tuple(results), self.points, answered=answered)


# --- helpers for respond (student side) -------------------------------------------


def error_of(error: BaseException) -> str:
    """A one-line description of an exception, e.g. ``'ValueError: bad shape'``."""
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def plain(value: Any) -> Any:
    """``value`` reduced to data the grader can load safely: detached CPU tensors
    (never subclasses), numbers, strings, and lists or dicts of them."""
    if isinstance(value, Tensor):
        return value.detach().as_subclass(Tensor).to("cpu").clone()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    try:
        return float(value)
    except Exception:
        return f"<an object of type {type(value).__name__}>"


def attempt(outputs: dict[str, Any], key: str, compute: Callable[[], Any]) -> Any:
    """Store ``plain(compute())`` in ``outputs[key]``, or the error it raised under
    ``outputs[key + ":error"]``; return the raw value (``None`` after an error)."""
    try:
        if _call_limit is None:
            value = compute()
        else:
            with _call_limit():
                value = compute()
    except TimeLimitExceeded:
        outputs[f"{key}:error"] = "ran past its time limit"
        return None
    except NotImplementedError as error:
        outputs[f"{key}:error"] = f"{NOT_ANSWERED} ({error_of(error)})"
        return None
    except BaseException as error:  # the student's code may raise anything, even SystemExit
        if isinstance(error, KeyboardInterrupt):
            raise
        outputs[f"{key}:error"] = error_of(error)
        return None
    outputs[key] = plain(value)
    return value


def not_answered(outputs: dict[str, Any]) -> bool:
    """Whether the answer is still the stub: ``...``/``None``, or it raised
    :class:`NotImplementedError` wherever it was called."""
    if outputs.get("unanswered"):
        return True
    diagnostics = ("jacobian", "round_trip")  # computed from the answer's own calls
    kept = {key: value for key, value in outputs.items() if not key.startswith(diagnostics)}
    errors = [value for key, value in kept.items() if key.endswith(":error")]
    values = [key for key in kept if not key.endswith(":error") and key != "unanswered"]
    return bool(errors) and not values and all(NOT_ANSWERED in str(e) for e in errors)


# --- helpers for judge (grader side) ----------------------------------------------


def _describe(tensor: Tensor) -> str:
    return f"shape {tuple(tensor.shape)}, dtype {str(tensor.dtype).replace('torch.', '')}"


def compare(
    name: str,
    outputs: dict[str, Any],
    key: str,
    expected: Tensor | float,
    points: float,
    what: str,
    atol: float = 1e-6,
    rtol: float = 1e-6,
) -> Result:
    """Compare ``outputs[key]`` with ``expected`` and say where they differ.

    The message names the error the answer raised, or a wrong type, shape or dtype,
    or the entries that differ, with the expected and the actual value of the worst
    one. Points are earned only on agreement.
    """
    if f"{key}:error" in outputs:
        return Result(name, False, 0.0, points, f"{what} raised {outputs[f'{key}:error']}")
    if key not in outputs:
        return Result(name, False, 0.0, points, f"{what} was not computed")
    actual = outputs[key]
    if isinstance(actual, list):
        try:
            actual = torch.tensor(actual, dtype=torch.float64)
        except Exception:
            pass
    expected_tensor = torch.as_tensor(expected, dtype=torch.float64)
    if isinstance(actual, bool) or not isinstance(actual, Tensor | int | float):
        return Result(
            name, False, 0.0, points, f"{what}: expected a tensor or a number, got {actual!r:.80}"
        )
    actual_tensor = torch.as_tensor(actual)
    if isinstance(expected, Tensor) and actual_tensor.shape != expected_tensor.shape:
        return Result(
            name,
            False,
            0.0,
            points,
            f"{what}: expected {_describe(expected)}, got {_describe(actual_tensor)}",
        )
    if (
        isinstance(expected, Tensor)
        and isinstance(outputs[key], Tensor)
        and actual_tensor.dtype != expected.dtype
    ):
        return Result(
            name,
            False,
            0.0,
            points,
            f"{what}: expected dtype {expected.dtype}, got {actual_tensor.dtype} "
            "(compute in the dtype of the inputs)",
        )
    if not actual_tensor.is_floating_point():
        actual_tensor = actual_tensor.to(torch.float64)
    if actual_tensor.numel() != expected_tensor.numel():
        return Result(
            name,
            False,
            0.0,
            points,
            f"{what}: expected {expected_tensor.numel()} value(s), got {_describe(actual_tensor)}",
        )
    actual_tensor = actual_tensor.to(torch.float64).reshape(expected_tensor.shape)
    difference = (actual_tensor - expected_tensor).abs()
    tolerance = atol + rtol * expected_tensor.abs()
    bad = ~(difference <= tolerance)  # NaN counts as bad
    if not bool(bad.any()):
        worst = float(difference.max()) if difference.numel() else 0.0
        return Result(name, True, points, points, f"{what} agrees (max |error| {worst:.1e})")
    index = tuple(int(i) for i in bad.nonzero()[0])
    where = f" at index {list(index)}" if index else ""
    count = int(bad.sum())
    return Result(
        name,
        False,
        0.0,
        points,
        f"{what}: {count} of {bad.numel()} values differ; {where.strip() or 'value'}: "
        f"expected {float(expected_tensor[index]):.6g}, got {float(actual_tensor[index]):.6g}",
    )


def diagnostic(name: str, passed: bool, message: str) -> Result:
    """A property reported with no points, to explain a failure."""
    return Result(name, passed, 0.0, 0.0, message)
