"""The student notebooks (``book/*.ipynb``, what Colab opens) and the instructor notebooks.

``scripts/sync_notebooks.py`` generates both from the MyST chapters, converting the MyST
with ``scripts/myst_to_markdown.py``. These tests check that

- no MyST syntax (roles, directive fences, ``(label)=`` targets) is left in any Markdown
  cell, of the student and of the instructor notebooks;
- a student notebook holds no solution (code or text) and keeps each exercise's stub
  (without its website-only ``remove-cell`` tag) and check cell; an instructor notebook
  holds the solutions and no stubs;
- each exercise says how it is graded, from ``flowcourse.exercises``;
- the install cell is pinned to ``v{__version__}``, is the same in every source, warns
  without raising on another installed version, and installs only ``flowcourse``;
- the converter turns each role and directive into Markdown and fails on unknown ones;
- each student notebook runs top to bottom in a fresh kernel, outside the repository,
  where ``myst_nb``, ``sphinx`` and ``jupyter_book`` cannot be imported, and its
  unanswered exercise checks print "not answered yet".
"""

from __future__ import annotations

import copy
import os
import re
import sys
import types
from functools import cache
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

import flowcourse
from tests.helpers import load_sync_script

ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = ROOT / "book"
CELL_TIMEOUT_S = 300
NOT_ANSWERED = "not answered yet"


sync_notebooks = load_sync_script()
myst = sync_notebooks.myst
CHAPTERS = sync_notebooks.chapter_sources(BOOK_DIR)
CHAPTER_IDS = [path.stem for path in CHAPTERS]
PROJECT = sync_notebooks.load_project()
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


@cache
def student(chapter: Path) -> nbformat.NotebookNode:
    """The committed student notebook of ``chapter``."""
    path = chapter.with_suffix(".ipynb")
    if not path.exists():
        pytest.fail(f"{path.name} is missing: run .venv/bin/python scripts/sync_notebooks.py")
    return nbformat.read(path, as_version=4)


@cache
def instructor(chapter: Path) -> nbformat.NotebookNode:
    """The instructor notebook of ``chapter``, generated in memory."""
    return sync_notebooks.notebook_from_markdown(chapter, instructor=True)


@cache
def source_cells(chapter: Path) -> tuple[nbformat.NotebookNode, ...]:
    """The cells of the MyST source of ``chapter``, as jupytext reads them."""
    return tuple(jupytext.read(chapter).cells)


def tagged(cells, tag: str) -> list[nbformat.NotebookNode]:
    """The code cells of ``cells`` tagged ``tag``."""
    return [
        cell
        for cell in cells
        if cell.cell_type == "code" and tag in cell.get("metadata", {}).get("tags", [])
    ]


def markdown_of(notebook: nbformat.NotebookNode) -> str:
    return "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def code_of(notebook: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


# --- No MyST left ---------------------------------------------------------------------------

ROLE_OR_CODE = re.compile(r"\{[A-Za-z][\w:+.-]*\}`|`+")
FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,}|:{3,})(.*)$")
TARGET = re.compile(r"^[ \t]*\([^()\s]+\)=[ \t]*$", re.MULTILINE)


def _roles(text: str) -> list[str]:
    """The roles (``{name}`` right before a backtick) of ``text``, outside code spans."""
    found, position = [], 0
    while match := ROLE_OR_CODE.search(text, position):
        if match.group(0).startswith("{"):
            found.append(match.group(0))
            position = match.end()
            continue
        ticks = match.group(0)  # a code span: skip to its closing run, if any
        closing = re.compile(rf"(?<!`){ticks}(?!`)").search(text, match.end())
        position = closing.end() if closing else match.end()
    return found


def _closes(fence: re.Match | None, opening: str) -> bool:
    """Whether the fence line ``fence`` closes a fence opened with ``opening``."""
    return bool(
        fence
        and not fence[2].strip()
        and fence[1][0] == opening[0]
        and len(fence[1]) >= len(opening)
    )


def myst_left(markdown: str) -> list[str]:
    """The MyST syntax found in ``markdown``: directive fences (a line of 3+ backticks or
    colons followed by ``{``), ``(label)=`` target lines and roles (``{name}`` followed
    by a backtick); code spans and the inside of code fences are not looked into."""
    found, text, code_fence, directives = [], [], "", []
    for line in markdown.split("\n"):
        fence = FENCE_LINE.match(line)
        if code_fence:
            if _closes(fence, code_fence):
                code_fence = ""
        elif fence and fence[2].lstrip().startswith("{"):
            found.append(line.strip())
            directives.append(fence[1])
        elif directives and _closes(fence, directives[-1]):
            directives.pop()
        elif fence and fence[1][0] != ":":
            code_fence = fence[1]
        else:
            text.append(line)
    text = "\n".join(text)
    return found + [match.group(0).strip() for match in TARGET.finditer(text)] + _roles(text)


def test_myst_scan_finds_roles_directives_and_targets() -> None:
    raw = "See {cite}`x`.\n\n(sec)=\n## A\n\n````{exercise} T\n:label: e\n````\n:::{note}\n:::"
    assert myst_left(raw) == ["````{exercise} T", ":::{note}", "(sec)=", "{cite}`"]
    code = "```python\nx = {'a': 1}  # {cite}`y`\n```\n$\\{0, 1\\}$ and `code`, `{note}`"
    assert myst_left(code) == []
    assert myst_left("`{ref}` is literal, {ref}`this` is not") == ["{ref}`"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=CHAPTER_IDS)
@pytest.mark.parametrize("version", ["student", "instructor"])
def test_no_myst_syntax_in_markdown_cells(chapter: Path, version: str) -> None:
    notebook = student(chapter) if version == "student" else instructor(chapter)
    found = {
        number: left
        for number, cell in enumerate(notebook.cells)
        if cell.cell_type == "markdown" and (left := myst_left(cell.source))
    }
    assert not found, f"{chapter.stem} ({version}): MyST left in cells {found}"


# --- Solutions, stubs, checks -----------------------------------------------------------

SOLUTION_MARKER = re.compile(r"^ *(?:`{3,}|:{3,})\{(solution-start|solution-end)\}")


def _text_lines(lines: list[str]) -> list[str]:
    """The lines of Markdown ``lines`` outside code fences, directive bodies included."""
    text = []
    for block in myst.parse_blocks(lines):
        if isinstance(block, myst.TextBlock):
            text += block.lines
        elif isinstance(block, myst.DirectiveBlock):
            text += _text_lines(block.body)
    return text


def _directive_solutions(markdown: str) -> list[str]:
    """The body lines of the ``{solution}`` directives of a Markdown cell."""
    return [
        line
        for block in myst.parse_blocks(markdown.split("\n"))
        if isinstance(block, myst.DirectiveBlock) and block.name == "solution"
        for line in block.body
    ]


def solution_parts(chapter: Path) -> tuple[list[str], list[str]]:
    """The code cells of the chapter's gated solutions, and the text lines of all its
    solutions that a conversion keeps as they are (long lines of text without MyST;
    code shown in fences is left out, since an exercise may show the same code)."""
    code, gated, inside = [], [], False
    directive = []
    for cell in source_cells(chapter):
        if cell.cell_type == "code":
            if inside:
                code.append(cell.source)
            continue
        for line in cell.source.split("\n"):
            if marker := SOLUTION_MARKER.match(line):
                inside = marker[1] == "solution-start"
                gated.append("")
            elif inside:
                gated.append(line)
        directive += _directive_solutions(cell.source)
    text = _text_lines(gated) + _text_lines(directive)
    verbatim = [line.strip() for line in text if len(line.strip()) >= 30 and "{" not in line]
    return code, verbatim


@pytest.mark.parametrize("chapter", CHAPTERS, ids=CHAPTER_IDS)
def test_student_notebook_holds_no_solution(chapter: Path) -> None:
    code, text = solution_parts(chapter)
    if not code and not text:
        pytest.skip(f"{chapter.stem} has no solutions")
    kept_code = [source for source in code if source in code_of(student(chapter))]
    assert not kept_code, f"{chapter.stem}: solution code in the student notebook: {kept_code}"
    markdown = markdown_of(student(chapter))
    kept_text = [line for line in text if line in markdown]
    assert not kept_text, f"{chapter.stem}: solution text in the student notebook: {kept_text}"
    # The solutions found are real: the instructor notebook shows them.
    assert all(source in code_of(instructor(chapter)) for source in code)
    assert all(line in markdown_of(instructor(chapter)) for line in text)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=CHAPTER_IDS)
def test_stubs_and_checks_reach_the_student_notebook(chapter: Path) -> None:
    stubs = tagged(source_cells(chapter), sync_notebooks.STUB_TAG)
    checks = tagged(source_cells(chapter), sync_notebooks.CHECK_TAG)
    if not stubs and not checks:
        pytest.skip(f"{chapter.stem} has no exercise-stub or exercise-check cells yet")
    student_stubs = tagged(student(chapter).cells, sync_notebooks.STUB_TAG)
    assert [cell.source for cell in student_stubs] == [cell.source for cell in stubs]
    for cell in student_stubs:
        assert "remove-cell" not in cell.metadata["tags"], f"{chapter.stem}: {cell.metadata}"
    student_checks = tagged(student(chapter).cells, sync_notebooks.CHECK_TAG)
    assert [cell.source for cell in student_checks] == [cell.source for cell in checks]
    assert not tagged(instructor(chapter).cells, sync_notebooks.STUB_TAG)
    instructor_checks = tagged(instructor(chapter).cells, sync_notebooks.CHECK_TAG)
    assert [cell.source for cell in instructor_checks] == [cell.source for cell in checks]


def _exercise_registry():
    registry = sync_notebooks._exercise_registry()
    if registry is None:
        pytest.skip("flowcourse.exercises has no questions_for_exercise/is_self_assessed yet")
    return registry


def exercise_labels(chapter: Path) -> list[str]:
    """The labels of the chapter's ``{exercise}`` directives, in order."""
    targets = myst.page_targets(chapter.read_text(encoding="utf-8"), chapter.stem)
    return [target.label for target in targets if target.kind == "Exercise"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=CHAPTER_IDS)
def test_every_exercise_says_how_it_is_graded(chapter: Path) -> None:
    registry = _exercise_registry()
    labels = exercise_labels(chapter)
    if not labels:
        pytest.skip(f"{chapter.stem} has no exercises")
    markdown = markdown_of(student(chapter))
    lines = re.findall(r"^#### Exercise.*\n\n(.*)$", markdown, re.MULTILINE)
    assert len(lines) == len(labels), f"{chapter.stem}: expected one heading per exercise"
    for label, line in zip(labels, lines, strict=True):
        if registry.is_self_assessed(label):
            assert line == "*Self-assessed: no points.*", f"{label}: {line!r}"
            continue
        questions = registry.questions_for_exercise(label)
        assert questions, f"{label} is neither graded nor self-assessed in flowcourse.exercises"
        for question in questions:
            assert f"`{question.id}` ({question.points:g} point" in line, f"{label}: {line!r}"


# --- Header and install cell --------------------------------------------------------------


@pytest.mark.parametrize("chapter", CHAPTERS, ids=CHAPTER_IDS)
def test_header_links_colab_and_the_website(chapter: Path) -> None:
    header = student(chapter).cells[0]
    owner_repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    colab = (
        f"https://colab.research.google.com/github/{owner_repo}/blob/"
        f"v{flowcourse.__version__}/book/{chapter.stem}.ipynb"
    )
    assert header.cell_type == "markdown"
    assert header.source.startswith(f"[![Open In Colab]({sync_notebooks.COLAB_BADGE})]({colab})")
    assert f"]({CONFIG['html']['baseurl']}book/{chapter.stem}.html)" in header.source
    assert "Instructor" in instructor(chapter).cells[0].source
    assert "colab-badge" not in instructor(chapter).cells[0].source


def test_install_cell_is_pinned_to_the_package_version() -> None:
    template = sync_notebooks.install_cell_source(PROJECT)
    assert PROJECT.version == flowcourse.__version__
    specifier = f'"flowcourse @ git+{CONFIG["repository"]["url"]}@v{flowcourse.__version__}"'
    pip_lines = [line.strip() for line in template.split("\n") if line.strip().startswith("%pip")]
    assert pip_lines == [f"%pip install -q {specifier}"]
    assert "torch" not in pip_lines[0]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=CHAPTER_IDS)
def test_install_cell_of_the_source_and_notebook_is_the_template(chapter: Path) -> None:
    template = sync_notebooks.install_cell_source(PROJECT)
    in_source = tagged(source_cells(chapter), sync_notebooks.INSTALL_TAG)
    assert len(in_source) == 1, (
        f"{chapter.name}: expected one code cell tagged colab-install, found {len(in_source)}"
    )
    assert in_source[0].source == template, (
        f"{chapter.name}: its install cell differs from the template: run "
        ".venv/bin/python scripts/sync_notebooks.py"
    )
    assert [c.source for c in tagged(student(chapter).cells, "colab-install")] == [template]
    first_code = next(cell for cell in source_cells(chapter) if cell.cell_type == "code")
    assert first_code is in_source[0], f"{chapter.name}: the install cell must come first"


class _FakeShell:
    """Just enough of IPython to run the install cell: ``%pip`` is recorded and
    "installs" ``module`` under the name ``flowcourse``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> None:
        self.pip: list[str] = []
        self.monkeypatch, self.module = monkeypatch, module

    def run_line_magic(self, name: str, line: str) -> None:
        assert name == "pip", f"unexpected magic %{name}"
        self.pip.append(line)
        self.monkeypatch.setitem(sys.modules, "flowcourse", self.module)


def _run_install_cell(monkeypatch, *, installed_version: str | None, pip_version: str) -> tuple:
    """Run the install cell with flowcourse at ``installed_version`` (``None``: not
    installed); return the ``%pip`` lines and what it printed."""
    from IPython.core.inputtransformer2 import TransformerManager

    def fake(version: str) -> types.ModuleType:
        module = types.ModuleType("flowcourse")
        module.__version__ = version
        return module

    monkeypatch.setitem(
        sys.modules, "flowcourse", fake(installed_version) if installed_version else None
    )
    shell = _FakeShell(monkeypatch, fake(pip_version))
    code = TransformerManager().transform_cell(sync_notebooks.install_cell_source(PROJECT))
    printed: list[str] = []
    namespace = {"get_ipython": lambda: shell, "print": lambda *args: printed.append(str(args))}
    exec(compile(code, "<install cell>", "exec"), namespace)
    return shell.pip, "\n".join(printed)


def test_install_cell_installs_nothing_when_the_right_version_is_there(monkeypatch) -> None:
    version = flowcourse.__version__
    pip, printed = _run_install_cell(monkeypatch, installed_version=version, pip_version=version)
    assert pip == [] and printed == ""


def test_install_cell_installs_the_pinned_release_when_missing(monkeypatch) -> None:
    version = flowcourse.__version__
    pip, printed = _run_install_cell(monkeypatch, installed_version=None, pip_version=version)
    assert pip == [f'install -q "flowcourse @ git+{PROJECT.repository_url}@v{version}"']
    assert printed == ""


def test_install_cell_warns_without_raising_on_another_version(monkeypatch) -> None:
    pip, printed = _run_install_cell(monkeypatch, installed_version="0.0.1", pip_version="0.0.1")
    assert pip == []
    assert "Warning: flowcourse 0.0.1 is installed" in printed
    assert f"written for {flowcourse.__version__}" in printed
    assert "--force-reinstall" in printed


# --- The converter on small strings -------------------------------------------------------

BASE = "https://example.org/course/"


@pytest.fixture
def context() -> myst.Context:
    targets = {
        "sec-a": myst.Target("sec-a", "nice", "sec-a", "The additive coupling layer", "Section"),
        "thm-inv": myst.Target("thm-inv", "nice", "thm-inv", "Inverse of a coupling", "Theorem"),
        "ex-one": myst.Target("ex-one", "made", "ex-one", "Masks", "Exercise"),
    }
    titles = {
        "nice": "NICE: additive coupling",
        "made": "MADE",
        "references": "References",
        "api/core": "flowcourse.core",
    }
    bibliography = {
        "dinh2015nice": myst.Reference(("Dinh", "Krueger", "Bengio"), "2015"),
        "kingma2018glow": myst.Reference(("Kingma", "Dhariwal"), "2018"),
        "solo2020": myst.Reference(("Solo",), "2020"),
    }
    site = myst.Site(BASE, targets, titles, bibliography)
    return myst.Context(
        site, "nice", Path("toy.md"), grading_line=lambda label: f"*Graded: `{label}.q`.*"
    )


REFS = f"{BASE}book/references.html"


@pytest.mark.parametrize(
    "role, markdown",
    [
        ("{cite}`dinh2015nice`", f"([Dinh et al., 2015]({REFS}))"),
        (
            "{cite:p}`kingma2018glow,solo2020`",
            f"([Kingma and Dhariwal, 2018]({REFS}); [Solo, 2020]({REFS}))",
        ),
        ("{cite:t}`dinh2015nice`", f"[Dinh et al. (2015)]({REFS})"),
        ("{ref}`sec-a`", f"[The additive coupling layer]({BASE}book/nice.html#sec-a)"),
        ("{ref}`this section <sec-a>`", f"[this section]({BASE}book/nice.html#sec-a)"),
        ("{prf:ref}`thm-inv`", f"[Theorem: Inverse of a coupling]({BASE}book/nice.html#thm-inv)"),
        ("{numref}`ex-one`", f"[Exercise: Masks]({BASE}book/made.html#ex-one)"),
        ("{doc}`made`", f"[MADE]({BASE}book/made.html)"),
        ("{doc}`the next chapter <made>`", f"[the next chapter]({BASE}book/made.html)"),
        ("{glue:text}`nice_nll:.3f`", "`nice_nll`"),
        ("{glue}`nice.md::nice_nll`", "`nice_nll`"),
        ("{glue:text}`made.md::made_nll:.2f`", f"[`made_nll`]({BASE}book/made.html)"),
        ("{math}`x^2`", "$x^2$"),
        (
            "{py:class}`~flowcourse.core.Flow`",
            f"[`Flow`]({BASE}book/api/core.html#flowcourse.core.Flow)",
        ),
        (
            "{py:meth}`flowcourse.core.Flow.log_prob`",
            f"[`flowcourse.core.Flow.log_prob`]({BASE}book/api/core.html#flowcourse.core.Flow.log_prob)",
        ),
    ],
)
def test_roles_become_markdown(context: myst.Context, role: str, markdown: str) -> None:
    assert myst.convert(f"See {role} here.", context) == f"See {markdown} here."


def test_glued_names_are_collected_for_the_header(context: myst.Context) -> None:
    myst.convert("{glue:text}`a:.1f`, {glue}`b`, {glue:text}`a` and {glue}`made.md::c`", context)
    assert context.glue_names == ["a", "b"] and context.glue_elsewhere


def test_roles_in_code_are_left_alone(context: myst.Context) -> None:
    text = "Write `{cite}` as ``{cite}`key` `` in MyST; $\\{0, 1\\}^D$ is math."
    assert myst.convert(text, context) == text
    fenced = "```python\nd = {'cite': 1}  # {cite}`x`\n```"
    assert myst.convert(fenced, context) == fenced
    braces = "```\n{ref}`not-a-role`\n```"
    assert myst.convert(braces, context) == braces


@pytest.mark.parametrize(
    "text, error",
    [
        ("a {term}`flow` b", "toy.md:3: unknown role {term}"),
        ("x\n\n```{figure} a.png\n```", "toy.md:5: unknown directive {figure}"),
        ("{cite}`nobody2000`", "toy.md:3: unknown citation key 'nobody2000'"),
        ("{ref}`nowhere`", "toy.md:3: {ref} to an unknown label 'nowhere'"),
        ("{doc}`nowhere`", "toy.md:3: {doc} to an unknown page 'nowhere'"),
        ("```{note}\nnever closed", "has no closing fence"),
    ],
)
def test_unknown_or_broken_myst_raises(context: myst.Context, text: str, error: str) -> None:
    with pytest.raises(myst.MystConversionError, match=re.escape(error)):
        myst.convert(text, context, first_line=3)


def test_targets_and_comments_are_dropped(context: myst.Context) -> None:
    text = "(sec-a)=\n## The additive coupling layer\n\n% a note to authors\nText."
    assert myst.convert(text, context) == "## The additive coupling layer\n\nText."


def test_exercise_becomes_a_headed_block_with_its_grading(context: myst.Context) -> None:
    text = "```{exercise} Masks of {cite:t}`solo2020`\n:label: ex-one\n\nDo it.\n```"
    assert myst.convert(text, context) == (
        f"---\n\n#### Exercise: Masks of [Solo (2020)]({REFS})\n\n*Graded: `ex-one.q`.*\n\nDo it."
    )


def test_proof_directives_become_bold_lead_ins(context: myst.Context) -> None:
    theorem = "```{prf:theorem} Inverse\n:label: thm-x\n\nIt is a bijection.\n```"
    assert myst.convert(theorem, context) == "**Theorem (Inverse).** It is a bijection."
    untitled = "```{prf:lemma}\n:nonumber:\n$$\nx = 1\n$$\n```"
    assert myst.convert(untitled, context) == "**Lemma.**\n\n$$\nx = 1\n$$"
    proof = "```{prf:proof}\nSubtract.\n```"
    assert myst.convert(proof, context) == "*Proof.* Subtract. ∎"
    display = "```{prf:proof}\nSo\n\n$$\ny = 0\n$$\n```"
    assert myst.convert(display, context) == "*Proof.* So\n\n$$\ny = 0\n$$\n\n∎"


def test_admonitions_become_block_quotes(context: myst.Context) -> None:
    note = "```{note}\nOne line,\n\ntwo paragraphs.\n```"
    assert myst.convert(note, context) == "> **Note.** One line,\n>\n> two paragraphs."
    titled = ":::{admonition} Why?\n:class: tip\nBecause.\n:::"
    assert myst.convert(titled, context) == "> **Why?** Because."
    see_also = "```{seealso}\n- {doc}`made`\n```"
    assert (
        myst.convert(see_also, context) == f"> **See also.**\n>\n> - [MADE]({BASE}book/made.html)"
    )


def test_nested_directives_and_code_fences(context: myst.Context) -> None:
    text = (
        "````{prf:definition} Flow\n"
        "A flow:\n\n"
        "```{important}\nInvertible, see {prf:ref}`thm-inv`.\n```\n\n"
        "```python\nflow = {'layers': 3}\n```\n"
        "````\n\n"
        "::::{tip}\n:::{note}\nInner.\n:::\n::::"
    )
    assert myst.convert(text, context) == (
        "**Definition (Flow).** A flow:\n\n"
        f"> **Important.** Invertible, see [Theorem: Inverse of a coupling]({BASE}book/nice.html"
        "#thm-inv).\n\n"
        "```python\nflow = {'layers': 3}\n```\n\n"
        "> **Tip.**\n>\n> > **Note.** Inner."
    )


def test_solution_directive_is_dropped_or_kept(context: myst.Context) -> None:
    text = "Before.\n\n````{solution} ex-one\n:class: dropdown\n\nIt is $1$.\n````\n\nAfter."
    assert myst.convert(text, context) == "Before.\n\nAfter."
    context.keep_solutions = True
    assert myst.convert(text, context) == "Before.\n\n**Solution.** It is $1$.\n\nAfter."


def test_bibliography_links_the_references_page(context: myst.Context) -> None:
    assert REFS in myst.convert("```{bibliography}\n:all:\n```", context)


def test_site_index_uses_sphinx_anchors_and_titles(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "(A_Section)=\n# Page A\n\n```{prf:theorem} T\n:label: a-thm\n```\n\n"
        "````{exercise} E\n:label: a-ex\n```{note}\n:label: a-note\nN\n```\n````\n",
        encoding="utf-8",
    )
    (tmp_path / "references.bib").write_text(
        "@article{k, author = {Doe, Jane and others}, year = {1999}, title = {T}}\n",
        encoding="utf-8",
    )
    site = myst.build_site(tmp_path, "https://x.org")
    assert site.base_url == "https://x.org/" and site.titles == {"a": "Page A"}
    assert site.targets["A_Section"].anchor == "a-section"
    assert site.targets["A_Section"].title == "Page A"
    assert site.targets["a-thm"] == myst.Target("a-thm", "a", "a-thm", "T", "Theorem")
    assert site.targets["a-ex"].link_text == "Exercise: E"
    assert "a-note" in site.targets
    assert site.bibliography["k"].authors == "Doe et al."


def test_the_book_bibliography_gives_author_year() -> None:
    bibliography = myst.load_bibliography(BOOK_DIR / "references.bib")
    assert bibliography["dinh2015nice"].authors == "Dinh et al."
    assert bibliography["dinh2015nice"].year == "2015"
    assert bibliography["kingma2018glow"].authors == "Kingma and Dhariwal"


# --- Whole chapters made up here -----------------------------------------------------------

TOY_CHAPTER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

(toy-chapter)=
# Toy

```{code-cell} ipython3
:tags: [colab-install]

import flowcourse
```

```{exercise} Write f
:label: toy-ex

Define `f`.
```

```{code-cell} ipython3
:tags: [exercise-stub, remove-cell]

def f(x):
    raise NotImplementedError
```

```{solution-start} toy-ex
:class: dropdown
```

The answer is the identity.

```{code-cell} ipython3
def f(x):
    return x
```

Checked:

```{code-cell} ipython3
assert f(1) == 1
```

```{solution-end}
```

```{code-cell} ipython3
:tags: [exercise-check]

check("toy.f", f)
```

Done, see {ref}`toy-chapter`.
"""


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    path = tmp_path / "toy.md"
    path.write_text(TOY_CHAPTER, encoding="utf-8")
    return path


def _toy_notebook(path: Path, *, instructor: bool) -> nbformat.NotebookNode:
    return sync_notebooks.notebook_from_markdown(
        path, instructor=instructor, grading=lambda label: f"*Graded: `{label}`.*"
    )


def test_toy_student_notebook(toy: Path) -> None:
    cells = [
        (c.cell_type, c.source, c.metadata) for c in _toy_notebook(toy, instructor=False).cells
    ]
    template = sync_notebooks.install_cell_source(PROJECT)
    assert [cell[0] for cell in cells] == [
        "markdown",
        "markdown",
        "code",
        "markdown",
        "code",
        "code",
        "markdown",
    ]
    assert cells[1][1] == "# Toy"
    assert cells[2][1:] == (template, {"tags": ["colab-install"]})
    assert cells[3][1] == "---\n\n#### Exercise: Write f\n\n*Graded: `toy-ex`.*\n\nDefine `f`."
    assert cells[4][2] == {"tags": ["exercise-stub"]} and "NotImplementedError" in cells[4][1]
    assert cells[5][1:] == ('check("toy.f", f)', {"tags": ["exercise-check"]})
    assert cells[6][1] == f"Done, see [Toy]({PROJECT.base_url}book/toy.html#toy-chapter)."
    assert "identity" not in str(cells) and "return x" not in str(cells)


def test_toy_instructor_notebook(toy: Path) -> None:
    notebook = _toy_notebook(toy, instructor=True)
    sources = [cell.source for cell in notebook.cells]
    assert "**Solution.**\n\nThe answer is the identity." in sources
    assert "def f(x):\n    return x" in sources and "assert f(1) == 1" in sources
    assert not any("NotImplementedError" in source for source in sources)
    assert sources[-2] == 'check("toy.f", f)'


def test_unterminated_solution_raises(toy: Path) -> None:
    toy.write_text(TOY_CHAPTER.replace("```{solution-end}\n```\n", ""), encoding="utf-8")
    with pytest.raises(myst.MystConversionError, match="has no solution-end"):
        _toy_notebook(toy, instructor=False)


def test_instructor_notebooks_are_written_deterministically(tmp_path: Path) -> None:
    folder = tmp_path / "instructor"
    sources = CHAPTERS[:2]
    assert sync_notebooks.main([*map(str, sources), "--instructor", str(folder)]) == 0
    first = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert sorted(first) == [f"{source.stem}.ipynb" for source in sources]
    assert sync_notebooks.main([*map(str, sources), "--instructor", str(folder)]) == 0
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == first


# --- Running the student notebooks without the book's tools ----------------------------------

BLOCKED_MODULES = ("myst_nb", "sphinx", "jupyter_book")
BLOCKER = f'''\
"""Make the book's build tools unimportable in this kernel, as on Colab."""
import sys
from importlib.abc import MetaPathFinder

BLOCKED = {BLOCKED_MODULES!r}


class BlockBookTools(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            message = f"No module named {{name!r}} (blocked by the test)"
            raise ModuleNotFoundError(message, name=name)
        return None


sys.meta_path.insert(0, BlockBookTools())
for loaded in [name for name in sys.modules if name.split(".")[0] in BLOCKED]:
    del sys.modules[loaded]
'''
PROBE = """\
try:
    import myst_nb
except ModuleNotFoundError as error:
    print("blocked:", error)
else:
    raise AssertionError("myst_nb could be imported: the import block did not work")
"""


def _kernel_manager():
    """A kernel manager for a kernel of the Python running the tests."""
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    class CurrentPythonKernelSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return self.kernel_spec_class(
                resource_dir=ipykernel.kernelspec.RESOURCES,
                **ipykernel.kernelspec.get_kernel_dict(),
            )

    return KernelManager(kernel_name="python3", kernel_spec_manager=CurrentPythonKernelSpecs())


def with_probe(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` whose first cell checks that ``myst_nb`` cannot be imported."""
    probed = copy.deepcopy(notebook)
    probed.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    return probed


def run_without_book_tools(notebook: nbformat.NotebookNode, tmp_path: Path) -> None:
    """Run ``notebook``'s code cells in order, in place, in a fresh kernel of this Python
    started in ``tmp_path`` (outside the repository), where ``BLOCKED_MODULES`` cannot
    be imported. Raises nbclient's ``CellExecutionError`` at the first failing cell and
    ``CellTimeoutError`` when a cell runs past ``CELL_TIMEOUT_S``."""
    from nbclient import NotebookClient

    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-block.py").write_text(BLOCKER, encoding="utf-8")
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    client = NotebookClient(
        notebook,
        km=_kernel_manager(),
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=env)


def outputs_text(cell: nbformat.NotebookNode) -> str:
    """Everything a code cell printed or displayed, as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts += [str(output.data.get(kind, "")) for kind in ("text/plain", "text/markdown")]
    return "\n".join(parts)


def first_failure(notebook: nbformat.NotebookNode, error: Exception) -> str:
    """Which cell of an executed ``notebook`` failed, its code and the error, in short."""
    failed = next(
        (
            (number, cell)
            for number, cell in enumerate(notebook.cells)
            if any(output.output_type == "error" for output in cell.get("outputs", []))
        ),
        None,
    )
    if failed is None:  # a timeout leaves no error output
        return f"{type(error).__name__}: {str(error).strip().splitlines()[-1]}"
    number, cell = failed
    (output,) = [output for output in cell.outputs if output.output_type == "error"]
    code = "\n".join(f"    {line}" for line in cell.source.split("\n")[:12])
    return (
        f"code cell {number} (after the import-block probe, cell 0) failed with "
        f"{output.ename}: {output.evalue}\n{code}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=CHAPTER_IDS)
def test_student_notebook_runs_without_the_book_tools(chapter: Path, tmp_path: Path) -> None:
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = with_probe(student(chapter))
    try:
        run_without_book_tools(notebook, tmp_path)
    except (CellExecutionError, CellTimeoutError) as error:
        failure = first_failure(notebook, error)
    else:
        failure = ""
    assert not failure, f"{chapter.with_suffix('.ipynb').name}: {failure}"
    assert "blocked: No module named 'myst_nb'" in outputs_text(notebook.cells[0])
    checks = tagged(notebook.cells, sync_notebooks.CHECK_TAG)
    if not checks:
        pytest.skip(
            f"{chapter.stem} ran without the book tools; it has no exercise-check cells yet, "
            "so the 'not answered yet' assertion is skipped"
        )
    silent = [cell.source for cell in checks if NOT_ANSWERED not in outputs_text(cell)]
    assert not silent, f"{chapter.stem}: check cells not saying {NOT_ANSWERED!r}: {silent}"
