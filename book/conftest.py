"""Run every chapter of the book as a test: ``pytest book`` (``make notebooks``).

A chapter is a MyST notebook: a ``book/<chapter>.md`` file with a jupytext header. Each
one is a single test, ``book/<chapter>.md::notebook``. jupytext reads it in memory and
nbval runs its code cells in order, in a fresh kernel of the environment running pytest,
in lax mode: outputs are not compared, since the cells assert their claims themselves.
The first failing cell fails the test with its number, its source and its traceback.
Nothing is written to disk.

One test per chapter rather than one per cell: ``pytest -n 2`` hands whole tests to its
workers, and the cells of a chapter must share one kernel. Cells tagged ``skip-execution``
or ``nbval-skip`` (or containing the comment ``# NBVAL_SKIP``) are not run; a cell tagged
``raises-exception`` must raise. A cell may run for ``CELL_TIMEOUT_S`` seconds unless
``--nbval-cell-timeout`` says otherwise.
"""

from __future__ import annotations

import importlib.util
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import jupytext
import pytest
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, RunningKernel
from nbval.plugin import (
    IPyNbCell,
    IPyNbFile,
    NbCellError,
    find_comment_markers,
    find_metadata_tags,
)

__all__ = ["CELL_TIMEOUT_S", "ChapterNotebook", "ChapterRun"]

CELL_TIMEOUT_S = 300.0
BOOK_DIR = Path(__file__).resolve().parent
SKIP_TAGS = {"skip-execution"}  # myst-nb's tag for cells the book build does not run
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _load_sync_script():
    # One definition of "a chapter" for the tests, the build pipeline and the sync script.
    path = BOOK_DIR.parent / "scripts" / "sync_notebooks.py"
    spec = importlib.util.spec_from_file_location("_flowcourse_sync_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


has_jupytext_header = _load_sync_script().has_jupytext_header


def pytest_configure(config: pytest.Config) -> None:
    # nbval's own default (2000 s a cell) would let one stuck chapter hang CI for half an hour.
    arguments = [*config.invocation_params.args, *config.getini("addopts")]
    if not any(str(argument).startswith("--nbval-cell-timeout") for argument in arguments):
        config.option.nbval_cell_timeout = CELL_TIMEOUT_S


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name in {"_build", "_vendor", ".ipynb_checkpoints"}:
        return True
    # The .ipynb beside each chapter is generated from it: running it too (say under
    # --nbval-lax) would test every chapter twice.
    if collection_path.suffix == ".ipynb" and collection_path.with_suffix(".md").exists():
        return True
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".md" and file_path.parent == BOOK_DIR:
        if has_jupytext_header(file_path):
            return ChapterNotebook.from_parent(parent, path=file_path)
    return None


class ChapterNotebook(IPyNbFile):
    """A chapter's MyST notebook, read by jupytext and run by nbval in one kernel."""

    def collect(self) -> Iterator[pytest.Item]:
        self.nb = jupytext.read(self.path)
        yield ChapterRun.from_parent(self, name="notebook")

    def setup(self) -> None:
        # The environment running pytest is the one under test, whatever kernel the
        # chapter's header names; the working directory is book/, as in the book build.
        self.kernel = RunningKernel(
            CURRENT_ENV_KERNEL_NAME,
            cwd=str(self.path.parent),
            startup_timeout=self.config.option.nbval_kernel_startup_timeout,
        )


class ChapterRun(pytest.Item):
    """Run the code cells of the parent chapter in order; fail at the first error."""

    parent: ChapterNotebook

    def runtest(self) -> None:
        notebook = self.parent
        code_cells = [cell for cell in notebook.nb.cells if cell.cell_type == "code"]
        for number, cell in enumerate(code_cells):
            options = defaultdict(bool, find_metadata_tags(cell.metadata))
            options.update(find_comment_markers(cell.source))
            options["check"] = False  # lax: the cells assert what they claim
            if options["skip"] or SKIP_TAGS & set(cell.metadata.get("tags", [])):
                continue
            # nbval's cell item executes one cell in the parent's kernel and raises
            # NbCellError with the traceback; it is used here as a runner, not collected.
            runner = IPyNbCell.from_parent(
                notebook, name=f"Cell {number}", cell_num=number, cell=cell, options=options
            )
            runner.runtest()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        error = excinfo.value
        if not isinstance(error, NbCellError):
            return super().repr_failure(excinfo, style=style)
        total = sum(cell.cell_type == "code" for cell in self.parent.nb.cells)
        traceback = error.inner_traceback or ""
        if self.config.option.color == "no":
            traceback = ANSI_ESCAPE.sub("", traceback)
        source = "\n".join(f"    {line}" for line in error.source.splitlines())
        return (
            f"{self.path.name}: code cell {error.cell_num + 1} of {total} failed: {error}\n\n"
            f"{source}\n{traceback}"
        )

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}::{self.name}"
