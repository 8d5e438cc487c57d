"""Read a submitted notebook and find the code that defines each answer.

Nothing in the notebook is run here: cells are parsed, not executed. A submission may
be edited in any way (cells moved, duplicated, renamed around, broken); the grader
keeps, from every code cell that parses:

- every top-level ``import``;
- every top-level function and class definition;
- top-level assignments of a question's answer name, and of values that call nothing
  (constants such as ``HIDDEN = 16``).

For one question it runs only the imports and the definitions that its answer needs
(the answer's last definition that is not the unanswered stub, and, transitively,
the last definitions of the names it uses), so a broken or endless cell elsewhere in
the notebook cannot cost the student that question. Training loops, plots, printed
text and calls to ``check`` are never run: they earn nothing.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Statement", "Submission", "read_submission"]

_MAGIC = re.compile(r"^(\s*)[%!]")
_STUB_MESSAGE = re.compile(r"^[a-z_]+\.[a-z0-9_]+:")
_MAX_NOTEBOOK_BYTES = 50 * 2**20


@dataclass(frozen=True)
class Statement:
    """A top-level statement of a code cell, with the names it defines and uses."""

    cell: int
    source: str
    defines: frozenset[str]
    uses: frozenset[str]
    is_import: bool
    is_stub: bool


@dataclass
class Submission:
    """The statements of a notebook, and what could not be read."""

    statements: list[Statement] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def program(self, answer_name: str) -> tuple[list[Statement], str]:
        """The statements to run for one answer, and a note (empty when it was found)."""
        definitions = [s for s in self.statements if not s.is_import]
        chosen: dict[str, Statement] = {}
        needed, pending = set(), [answer_name]
        while pending:
            name = pending.pop()
            if name in needed:
                continue
            needed.add(name)
            candidates = [s for s in definitions if name in s.defines]
            if not candidates:
                continue
            answered = [s for s in candidates if not (name == answer_name and s.is_stub)]
            statement = (answered or candidates)[-1]
            chosen[statement.source + str(statement.cell)] = statement
            pending.extend(statement.uses - needed)
        if not any(answer_name in s.defines for s in chosen.values()):
            return [], f"no definition of {answer_name} was found in the notebook"
        imports = [s for s in self.statements if s.is_import]
        body = sorted(chosen.values(), key=lambda s: (s.cell, self.statements.index(s)))
        note = ""
        if all(s.is_stub for s in body if answer_name in s.defines):
            note = f"{answer_name} is still the stub handed out with the notebook"
        return imports + body, note


def read_submission(path: Path, answer_names: set[str]) -> Submission:
    """Parse the notebook at ``path``; never raises for a malformed notebook."""
    submission = Submission()
    try:
        if path.stat().st_size > _MAX_NOTEBOOK_BYTES:
            raise ValueError(f"larger than {_MAX_NOTEBOOK_BYTES // 2**20} MB")
        notebook = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        cells = notebook["cells"]
        if not isinstance(cells, list):
            raise ValueError("its 'cells' is not a list")
    except (OSError, ValueError, KeyError, TypeError) as error:
        submission.problems.append(f"{path.name} is not a readable notebook: {error}")
        return submission
    code_number = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        code_number += 1
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        _read_cell(submission, code_number, source, answer_names)
    return submission


def _without_magics(source: str) -> str | None:
    """The cell with IPython magics and shell lines replaced by ``pass`` (``None`` for
    a cell magic, which makes the whole cell something other than Python)."""
    if source.lstrip().startswith("%%"):
        return None
    lines = []
    for line in source.splitlines():
        match = _MAGIC.match(line)
        lines.append(f"{match.group(1)}pass" if match else line)
    return "\n".join(lines)


def _read_cell(submission: Submission, number: int, source: str, answers: set[str]) -> None:
    python = _without_magics(source)
    if python is None:
        return
    try:
        tree = ast.parse(python)
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", "?")
        message = getattr(error, "msg", str(error))
        submission.problems.append(
            f"code cell {number} has a syntax error (line {line}: {message}); "
            "nothing in it was graded"
        )
        return
    lines = python.splitlines()
    for node in tree.body:
        statement = _statement(node, lines, number, answers)
        if statement is not None:
            submission.statements.append(statement)


def _names_used(node: ast.AST) -> frozenset[str]:
    return frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))


def _calls_nothing(node: ast.AST) -> bool:
    return not any(isinstance(n, ast.Call | ast.Await | ast.Lambda) for n in ast.walk(node))


def _is_stub(node: ast.AST) -> bool:
    """A definition that still raises the handed-out stub's error, whose message starts
    with a question id (``NotImplementedError("nice.additive_coupling: ...")``), or an
    answer left as ``...`` or ``None``."""
    if isinstance(node, ast.Assign | ast.AnnAssign):
        value = node.value
        return isinstance(value, ast.Constant) and value.value in (None, Ellipsis)
    for inner in ast.walk(node):
        if isinstance(inner, ast.Raise) and inner.exc is not None:
            call = inner.exc
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                continue
            if call.func.id != "NotImplementedError" or not call.args:
                continue
            message = call.args[0]
            if isinstance(message, ast.Constant) and _STUB_MESSAGE.match(str(message.value)):
                return True
    return False


def _statement(node: ast.stmt, lines: list[str], cell: int, answers: set[str]) -> Statement | None:
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    source = "\n".join(lines[start - 1 : node.end_lineno])
    if isinstance(node, ast.Import | ast.ImportFrom):
        names = frozenset((a.asname or a.name).split(".")[0] for a in node.names)
        return Statement(cell, source, names, frozenset(), True, False)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return Statement(
            cell, source, frozenset({node.name}), _names_used(node), False, _is_stub(node)
        )
    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = frozenset(t.id for t in targets if isinstance(t, ast.Name))
        if len(names) != len(targets):
            return None
        if names & answers or _calls_nothing(node.value):
            return Statement(cell, source, names, _names_used(node.value), False, _is_stub(node))
    return None
