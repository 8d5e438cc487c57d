"""The process that runs a student's answer to one question (the sandbox's inside).

Started by :mod:`flowcourse.grading.sandbox` in a scratch folder, with resource limits
already set, as ``python -I -c <bootstrap> SCRATCH``. It:

1. makes the package objects that answer the question raise when used
   (:func:`block`), so that wrapping them earns nothing;
2. reads the grader's request (the question id and the inputs the grader drew);
3. runs the submission's statements for this answer, each under a time limit, and
   records the errors they raise;
4. calls the question's ``respond`` on the answer and the inputs;
5. writes only the plain outputs (tensors, numbers, strings) to ``response.pt``, and
   the notes to ``log.json``.

Whatever the student's code prints, returns or writes, the grader reads only these
two files, loads the outputs with ``torch.load(weights_only=True)``, and judges them
itself against its own reference.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowcourse.exercises.question import TimeLimitExceeded

# The module itself (the package's attribute ``question`` is the registry's function).
question_module = importlib.import_module("flowcourse.exercises.question")

__all__ = ["block", "main"]

STATEMENT_TIME_S = 10
OUTPUT_LIMIT_CHARS = 20_000


class _CappedText(io.TextIOBase):
    """A text stream that keeps the first characters written to it and drops the rest."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.size < self.limit:
            self.parts.append(str(text)[: self.limit - self.size])
            self.size += len(self.parts[-1])
        return len(text)


def _raise_timeout(signum: int, frame: object) -> None:
    raise TimeLimitExceeded("the answer ran past its time limit")


def _limit_each_call(seconds: float):
    """A context manager factory: each call of the answer gets ``seconds``."""

    @contextlib.contextmanager
    def limited() -> Iterator[None]:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    return limited


def _blocked(name: str):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{name} answers this question, so it is not available while it is graded: "
            "write your own"
        )

    return refuse


def block(protected: tuple[str, ...]) -> None:
    """Make each ``"module:qualname"`` raise: a class's own methods and constructor,
    a method, or a function (wherever a ``flowcourse`` module holds it)."""
    for target in protected:
        module_name, _, qualname = target.partition(":")
        owner: Any = importlib.import_module(module_name)
        parts = qualname.split(".")
        for part in parts[:-1]:
            owner = getattr(owner, part)
        original = getattr(owner, parts[-1])
        refuse = _blocked(f"{module_name.split('.')[0]}'s {qualname}")
        if isinstance(original, type):
            for attribute, value in list(vars(original).items()):
                if callable(value) or isinstance(value, classmethod | staticmethod | property):
                    if not attribute.startswith("__") or attribute in ("__init__", "__call__"):
                        setattr(original, attribute, refuse)
            original.__init__ = refuse
            continue
        setattr(owner, parts[-1], refuse)
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("flowcourse"):
                for attribute, value in list(vars(module).items()):
                    if value is original:
                        setattr(module, attribute, refuse)


def _run_statements(statements: list[dict[str, Any]], namespace: dict[str, Any]) -> list[str]:
    """Run the submission's statements in order; return one note per failure."""
    notes = []
    for statement in statements:
        signal.setitimer(signal.ITIMER_REAL, STATEMENT_TIME_S)
        try:
            code = compile(statement["source"], f"<code cell {statement['cell']}>", "exec")
            exec(code, namespace)
        except BaseException as error:  # noqa: BLE001 - student code may raise anything
            first = statement["source"].strip().splitlines()[0][:60]
            reason = "ran too long" if isinstance(error, TimeLimitExceeded) else _describe(error)
            notes.append(f"code cell {statement['cell']}: `{first}` failed: {reason}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return notes


def _describe(error: BaseException) -> str:
    from flowcourse.exercises.question import error_of

    return error_of(error)


def main(scratch: str) -> None:
    """Grade one answer in ``scratch`` (see the module docstring)."""
    folder = Path(scratch)
    captured = _CappedText(OUTPUT_LIMIT_CHARS)
    sys.stdout = sys.stderr = captured
    signal.signal(signal.SIGALRM, _raise_timeout)

    import torch

    from flowcourse.exercises.question import NOT_ANSWERED, error_of, plain
    from flowcourse.exercises.registry import question

    torch.set_num_threads(1)
    request = torch.load(folder / "request.pt", weights_only=True)
    program = json.loads((folder / "program.json").read_text(encoding="utf-8"))
    item = question(request["question"])
    block(item.protected)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    notes = _run_statements(program["statements"], namespace)
    outputs: dict[str, Any]
    answer = namespace.get(item.answer_name, None)
    if item.answer_name not in namespace:
        outputs = {"missing": f"{item.answer_name} is not defined (its cell failed)"}
    elif answer is None or answer is Ellipsis:
        outputs = {"unanswered": True, "missing": f"{NOT_ANSWERED}: {item.answer_name} = ..."}
    else:
        # Each call of the answer gets a quarter of the question's time, so that one
        # endless method costs only its own points; the sandbox kills the process at
        # twice the time limit whatever happens.
        question_module._call_limit = _limit_each_call(max(1.0, float(request["time_s"]) / 4))
        signal.setitimer(signal.ITIMER_REAL, 2 * max(1.0, float(request["time_s"])))
        try:
            outputs = item.respond(answer, request["inputs"])
        except NotImplementedError as error:
            outputs = {"unanswered": True, "missing": f"{NOT_ANSWERED} ({error_of(error)})"}
        except BaseException as error:  # noqa: BLE001
            reason = "ran too long" if isinstance(error, TimeLimitExceeded) else error_of(error)
            outputs = {"missing": f"calling {item.answer_name} failed: {reason}", "crashed": True}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    torch.save(plain(outputs), folder / "response.pt")
    log = {"notes": notes, "printed": "".join(captured.parts)[:OUTPUT_LIMIT_CHARS]}
    (folder / "log.json").write_text(json.dumps(log), encoding="utf-8")
