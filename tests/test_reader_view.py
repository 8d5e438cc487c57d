"""A reader's view without scaffolding: on the website, a chapter's first visible code is
about its idea.

A *set-up cell* is one of the cells every chapter has for running it rather than for
teaching: the install cell (it sets ``CHAPTER_RELEASE``), the standard set-up cell (it sets
``FULL_SCALE``), the long import cell (it opens with at least five imports, which make up
at least half of its statements; it usually starts the timer, ``CHAPTER_START``) and the
closing timer cell (it sets ``chapter_seconds``). Each must be tagged ``hide-input``
(collapsed on the website, one click opens it) or another tag that hides it; the notebooks
keep them as they are (Colab and Jupyter ignore the tag). Then the first code the website
shows is about the chapter's idea.
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
#: A line that assigns one of the names only the set-up cells and the chapter's timer assign.
SETUP_ASSIGNMENT = re.compile(
    r"^(FULL_SCALE|CHAPTER_START|CHAPTER_RELEASE|chapter_seconds)\s*=", re.MULTILINE
)
MAGIC = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)


def is_setup_cell(source: str) -> bool:
    """Whether the code ``source`` is a set-up cell (see the module's docstring)."""
    if SETUP_ASSIGNMENT.search(source):
        return True
    try:
        statements = ast.parse(MAGIC.sub(r"\1pass", source)).body
    except SyntaxError:
        return False  # not Python (a shell cell): not ours to judge
    imports = [s for s in statements if isinstance(s, ast.Import | ast.ImportFrom)]
    return (
        bool(imports)
        and statements[0] is imports[0]
        and len(imports) >= max(5, len(statements) / 2)
    )


def _tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def unhidden_setup_cells(notebook: nbformat.NotebookNode) -> list[str]:
    """The set-up cells of ``notebook`` that the website would show: their first lines."""
    return [
        cell.source.strip().splitlines()[0]
        for cell in notebook.cells
        if cell.cell_type == "code" and is_setup_cell(cell.source) and not _tags(cell) & HIDING_TAGS
    ]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_setup_cells_are_hidden_on_the_website(chapter: Path) -> None:
    notebook = jupytext.read(chapter)
    install = [c for c in notebook.cells if SYNC.INSTALL_TAG in _tags(c)]
    assert install and all(is_setup_cell(c.source) for c in install), (
        f"{chapter.name}: expected a {SYNC.INSTALL_TAG} cell that sets CHAPTER_RELEASE"
    )
    shown = unhidden_setup_cells(notebook)
    assert not shown, (
        f"{chapter.name}: tag these set-up cells hide-input (`:tags: [hide-input]`), so the "
        f"first code a reader sees is about the chapter's idea: {shown}"
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
TIMER_WITH_CPU = (  # the chapter *NSF*'s timer also measures the CPU time
    "chapter_seconds = time.perf_counter() - CHAPTER_START\n"
    "chapter_cpu_seconds = time.process_time() - CHAPTER_CPU_START\n"
    'glue("x_chapter_seconds", chapter_seconds, display=False)\n'
)


LONG_IMPORTS = (
    "import math\nimport time\n\nimport numpy as np\nfrom torch import nn\n"
    "from flowcourse import io, models\n\ndata = load_digits()\nD = math.prod(data.shape)\n"
)


@pytest.mark.parametrize(
    "source", [STANDARD_SETUP, IMPORTS_AND_HELPERS, INSTALL, TIMER, TIMER_WITH_CPU, LONG_IMPORTS]
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
        # an exercise stub: a few imports, then the work
        "import math\nimport torch\nfrom flowcourse.core import Transform\n\n\n"
        "class MyStep(Transform):\n    pass\n",
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
    hidden = text.replace(
        "```{code-cell} ipython3\nimport", "```{code-cell} ipython3\n:tags: [hide-input]\n\nimport"
    )
    notebook = jupytext.reads(hidden, fmt="myst")
    assert unhidden_setup_cells(notebook) == []
