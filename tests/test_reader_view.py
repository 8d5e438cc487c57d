"""A reader's view without scaffolding: on the website, a chapter's first visible code is
about its idea.

A *set-up cell* is a code cell that only installs, imports, seeds, sets threads or the
device, starts or reads the chapter's timer, and may define helpers or print; the
install cell, the standard set-up cell with ``FULL_SCALE``, the long import cell and the
closing timer cell of every chapter are set-up cells. Each must be tagged
``hide-input`` (collapsed on the website, one click opens it) or another tag that hides
it; the notebooks keep them as they are (Colab and Jupyter ignore the tag). A cell that
also *does* something (builds a model, checks a claim, plots) is not a set-up cell.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from tests.helpers import load_sync_script

ROOT = Path(__file__).resolve().parent.parent
SYNC = load_sync_script()
CHAPTERS = SYNC.chapter_sources()

#: Tags that keep a cell's code off the website's first view.
HIDING_TAGS = {"hide-input", "hide-cell", "remove-input", "remove-cell"}
#: Calls that configure the run rather than teach: seeds, threads, device, timers.
SETUP_CALLS = {
    "set_num_threads",
    "set_num_interop_threads",
    "manual_seed",
    "seed",
    "device",
    "perf_counter",
    "set_default_dtype",
    "filterwarnings",
}
#: Names that only the set-up and the chapter's timer assign.
SETUP_NAMES = {"FULL_SCALE", "CHAPTER_START", "CHAPTER_RELEASE", "chapter_seconds", "device"}
#: Calls that neither teach nor set up: they report.
NEUTRAL_CALLS = {"print", "glue", "display"}
MAGIC = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        function = node.func
        if isinstance(function, ast.Attribute):
            return function.attr
        if isinstance(function, ast.Name):
            return function.id
    return None


def _assigned_names(node: ast.AST) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {
        name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)
    }


def _kind(node: ast.stmt) -> str:
    """``"setup"``, ``"neutral"`` (helpers, prints) or ``"idea"`` for one statement."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        return "setup"
    if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Pass):
        return "neutral"
    if isinstance(node, ast.Assign | ast.AnnAssign):
        value_call = _call_name(node.value) if node.value is not None else None
        if _assigned_names(node) <= SETUP_NAMES or value_call in SETUP_CALLS:
            return "setup"
        return "idea"
    if isinstance(node, ast.Expr):
        if isinstance(node.value, ast.Constant):
            return "neutral"  # a docstring or a bare string
        name = _call_name(node.value)
        if name == "__magic__" or name in SETUP_CALLS:
            return "setup"
        return "neutral" if name in NEUTRAL_CALLS else "idea"
    if isinstance(node, ast.If | ast.Try | ast.With):
        children = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
        for handler in getattr(node, "handlers", []):
            children += handler.body
        kinds = {_kind(child) for child in children}
        if "idea" in kinds:
            return "idea"
        return "setup" if "setup" in kinds else "neutral"
    return "idea"


def is_setup_cell(source: str) -> bool:
    """Whether the code ``source`` only sets up (see the module's docstring): at least one
    set-up statement, and nothing but set-up, helper definitions and reports; or a long
    import cell (it opens with imports, and at least five of them make up at least half
    of its statements), whatever else it prepares."""
    code = MAGIC.sub(r"\1__magic__()", source)
    try:
        statements = ast.parse(code).body
    except SyntaxError:
        return False  # not Python (a shell cell): not ours to judge
    imports = [s for s in statements if isinstance(s, ast.Import | ast.ImportFrom)]
    if statements and statements[0] in imports and len(imports) >= max(5, len(statements) / 2):
        return True
    kinds = {_kind(statement) for statement in statements}
    return "setup" in kinds and "idea" not in kinds


def _tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def unhidden_setup_cells(notebook: nbformat.NotebookNode) -> list[str]:
    """The set-up cells of ``notebook`` that the website would show: their first lines."""
    return [
        cell.source.strip().splitlines()[0]
        for cell in notebook.cells
        if cell.cell_type == "code" and is_setup_cell(cell.source) and not _tags(cell) & HIDING_TAGS
    ]


def first_visible_code(notebook: nbformat.NotebookNode) -> str | None:
    """The source of the first code cell that the website shows, if any."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and not _tags(cell) & HIDING_TAGS:
            return cell.source
    return None


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_setup_cells_are_hidden_on_the_website(chapter: Path) -> None:
    shown = unhidden_setup_cells(jupytext.read(chapter))
    assert not shown, (
        f"{chapter.name}: tag these set-up cells hide-input (`:tags: [hide-input]`), so the "
        f"first code a reader sees is about the chapter's idea: {shown}"
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_first_visible_code_is_about_the_idea(chapter: Path) -> None:
    notebook = jupytext.read(chapter)
    install = [c for c in notebook.cells if SYNC.INSTALL_TAG in _tags(c)]
    assert install and all(_tags(c) & HIDING_TAGS for c in install), (
        f"{chapter.name}: expected its {SYNC.INSTALL_TAG} cell to be hidden on the website"
    )
    first = first_visible_code(notebook)
    assert first is None or not is_setup_cell(first), (
        f"{chapter.name}: the first code cell the website shows only sets up:\n{first}"
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_the_student_notebook_keeps_the_setup_visible(chapter: Path) -> None:
    """Hidden on the website, not removed: the student still runs and reads the set-up."""
    source_cells = [c for c in jupytext.read(chapter).cells if c.cell_type == "code"]
    hidden = [c.source for c in source_cells if _tags(c) & HIDING_TAGS and is_setup_cell(c.source)]
    student = nbformat.read(chapter.with_suffix(".ipynb"), as_version=4)
    kept = {c.source for c in student.cells if c.cell_type == "code"}
    missing = [source.splitlines()[0] for source in hidden if source not in kept]
    assert not missing, (
        f"{chapter.name}: set-up cells hidden on the website are missing from the notebook: "
        f"{missing}"
    )


# The checks must be able to fail.

STANDARD_SETUP = """import torch

%matplotlib inline
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
FULL_SCALE = False  # set to True on a GPU for longer training
print(f"flowcourse {flowcourse.__version__} on {device}")
"""
IMPORTS_AND_HELPERS = '''import time

from flowcourse.core import Flow

CHAPTER_START = time.perf_counter()
if device.type == "cpu":
    torch.set_num_threads(1)


def show_source(obj):
    """Display the source code."""
    display(obj)
'''
INSTALL = """CHAPTER_RELEASE = "0.2.0"
try:
    import flowcourse
except ImportError:
    %pip install -q "flowcourse @ git+https://example.org/flowcourse@v0.2.0"
    import flowcourse
if flowcourse.__version__ != CHAPTER_RELEASE:
    print("Warning")
"""
TIMER = """chapter_seconds = time.perf_counter() - CHAPTER_START
glue("x_chapter_seconds", chapter_seconds, display=False)
print(f"this chapter ran in {chapter_seconds:.0f} s on {device}")
"""


LONG_IMPORTS = (
    "import math\nimport time\n\nimport numpy as np\nfrom torch import nn\n"
    "from flowcourse import io, models\n\ndata = load_digits()\nD = math.prod(data.shape)\n"
)


@pytest.mark.parametrize(
    "source", [STANDARD_SETUP, IMPORTS_AND_HELPERS, INSTALL, TIMER, LONG_IMPORTS]
)
def test_setup_cells_are_recognised(source: str) -> None:
    assert is_setup_cell(source)


@pytest.mark.parametrize(
    "source",
    [
        "show_source(Flow.sample_and_log_prob)",
        "import ipywidgets as widgets\n\nslider = widgets.IntSlider()\nslider",
        "from flowcourse import models\n\nflow = models.maf(features=2)",
        "def helper(x):\n    return x\n",  # a definition alone sets nothing up
        "torch.manual_seed(0)\nx = torch.randn(3)\nprint(x)",
        "git clone https://example.org/repository",  # not Python
    ],
)
def test_cells_that_do_something_are_not_setup(source: str) -> None:
    assert not is_setup_cell(source)


def test_an_untagged_import_cell_is_reported() -> None:
    text = (
        "```{code-cell} ipython3\n:tags: [colab-install, hide-input]\n\n" + INSTALL + "```\n\n"
        "```{code-cell} ipython3\n" + STANDARD_SETUP + "```\n\n"
        "# A chapter\n\n"
        "```{code-cell} ipython3\nflow = Flow()\n```\n"
    )
    notebook = jupytext.reads(text, fmt="myst")
    assert unhidden_setup_cells(notebook) == ["import torch"]
    assert first_visible_code(notebook) == STANDARD_SETUP.rstrip("\n")
    hidden = text.replace(
        "```{code-cell} ipython3\nimport", "```{code-cell} ipython3\n:tags: [hide-input]\n\nimport"
    )
    notebook = jupytext.reads(hidden, fmt="myst")
    assert unhidden_setup_cells(notebook) == []
    assert first_visible_code(notebook) == "flow = Flow()"
