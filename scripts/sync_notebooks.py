"""Generate the student notebook (``.ipynb``) beside every MyST notebook chapter in ``book/``.

The ``.md`` file is the source a chapter is written in, for the website. The ``.ipynb``
beside it is what Colab opens (the book's Colab button links it only when it sits beside
the ``.md``): a **student notebook**, whose Markdown is plain Markdown that Jupyter and
Colab render (``scripts/myst_to_markdown.py`` converts the MyST), without the solutions
of the exercises, with the stubs a student fills in, and with an "Open in Colab" badge
and a link to the chapter's page on the website first. The same conversion writes an
**instructor notebook** (solutions kept, stubs dropped) into a folder that is not
committed. Notebooks are generated without outputs and with cell ids derived from the
cell contents, so the same sources always give the same bytes.

The chapter's install cell (the code cell tagged ``colab-install``) is owned by this
script: its code comes from :func:`install_cell_source`, pinned to the version in
``flowcourse/__init__.py``, and writing also updates it in the ``.md`` sources.

Usage::

    .venv/bin/python scripts/sync_notebooks.py            # rewrite what is stale
    .venv/bin/python scripts/sync_notebooks.py --check    # only report it (exit code 1)
    .venv/bin/python scripts/sync_notebooks.py --instructor _build/instructor
"""

# No "from __future__ import annotations": the tests load this file by path without
# registering it in sys.modules, where dataclasses look string annotations up.
import argparse
import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jupytext
import nbformat
import yaml

__all__ = [
    "BOOK_DIR",
    "INSTALL_TAG",
    "Project",
    "chapter_sources",
    "has_jupytext_header",
    "install_cell_problems",
    "install_cell_source",
    "load_project",
    "notebook_from_markdown",
    "notebook_text",
    "stale_notebooks",
    "sync",
    "sync_install_cells",
    "write_instructor_notebooks",
]

ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = ROOT / "book"
SYNC_COMMAND = ".venv/bin/python scripts/sync_notebooks.py"
INSTALL_TAG = "colab-install"
STUB_TAG = "exercise-stub"
CHECK_TAG = "exercise-check"
WEBSITE_ONLY_STUB_TAGS = {"remove-cell"}  # hides the stub on the website, not in a notebook
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def _load_sibling(name: str):
    """Import ``scripts/<name>.py`` (this script is loaded by path, not as a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


myst = _load_sibling("myst_to_markdown")


# --- Chapters -----------------------------------------------------------------------------


def has_jupytext_header(path: Path) -> bool:
    """Whether the Markdown file at ``path`` starts with a front matter holding a
    ``jupytext`` key, that is, whether it is a MyST notebook rather than a plain page."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return False
    end = text.find("\n---", 4)
    if end == -1:
        return False
    front_matter = yaml.safe_load(text[4:end])
    return isinstance(front_matter, dict) and "jupytext" in front_matter


def chapter_sources(book_dir: Path = BOOK_DIR) -> list[Path]:
    """The MyST notebooks directly in ``book_dir``, sorted by name."""
    return sorted(path for path in book_dir.glob("*.md") if has_jupytext_header(path))


# --- The project: repository, website, version ----------------------------------------------


@dataclass(frozen=True)
class Project:
    """What the notebooks point at: the repository, the website and the release."""

    repository_url: str  # https://github.com/<owner>/<repo>
    base_url: str  # the published website, ending with "/"
    version: str  # flowcourse.__version__

    @property
    def github_path(self) -> str:
        """``<owner>/<repo>`` of the repository."""
        path = self.repository_url.removeprefix("https://github.com/").removesuffix(".git")
        return path.strip("/")

    def colab_url(self, chapter: str) -> str:
        """Where Colab opens the student notebook of ``chapter`` at this release."""
        return (
            f"https://colab.research.google.com/github/{self.github_path}"
            f"/blob/v{self.version}/book/{chapter}.ipynb"
        )


def read_version(root: Path = ROOT) -> str:
    """``__version__`` of ``flowcourse/__init__.py``, the one place it is set."""
    text = (root / "flowcourse" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if not match:
        raise ValueError(f'expected __version__ = "X.Y.Z" in {root / "flowcourse"}')
    return match[1]


def load_project(root: Path = ROOT) -> Project:
    """The repository URL and website of ``_config.yml`` and the package's version."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    base_url = config.get("html", {}).get("baseurl", "")
    if not base_url:
        raise ValueError(f"expected html.baseurl (the website's address) in {root / '_config.yml'}")
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    return Project(config["repository"]["url"].rstrip("/"), base_url, read_version(root))


def install_cell_source(project: Project) -> str:
    """The code of every chapter's install cell: install flowcourse where it is missing
    (pinned to this release, keeping the installed torch), then warn, without raising,
    when the installed flowcourse is another version than the chapter's."""
    specifier = f"flowcourse @ git+{project.repository_url}@v{project.version}"
    return f"""\
# On Colab and Binder: install flowcourse (this chapter's release), keep their torch.
CHAPTER_RELEASE = "{project.version}"  # the flowcourse release this chapter was written for
try:
    import flowcourse
except ImportError:
    %pip install -q "{specifier}"
    import flowcourse
if flowcourse.__version__ != CHAPTER_RELEASE:
    print(
        f"Warning: flowcourse {{flowcourse.__version__}} is installed, but this chapter was "
        f"written for {{CHAPTER_RELEASE}}: some cells may fail. To install {{CHAPTER_RELEASE}}, "
        "run the %pip line above with --no-deps --force-reinstall added, then restart "
        "the kernel."
    )"""


# --- Grading lines ------------------------------------------------------------------------


@cache
def _exercise_registry():
    """``flowcourse.exercises`` when it offers the grading API, else ``None``."""
    try:
        module = importlib.import_module("flowcourse.exercises")
    except ImportError:
        return None
    if not all(hasattr(module, name) for name in ("questions_for_exercise", "is_self_assessed")):
        return None
    return module


def grading_line(label: str) -> str | None:
    """How the exercise ``label`` is graded, in one line; ``None`` while
    ``flowcourse.exercises`` does not exist."""
    registry = _exercise_registry()
    if registry is None:
        return None
    if registry.is_self_assessed(label):
        return "*Self-assessed: no points.*"
    questions = registry.questions_for_exercise(label)
    if not questions:
        return "*Not graded.*"
    parts = [
        f"`{question.id}` ({question.points:g} point{'' if question.points == 1 else 's'})"
        for question in questions
    ]
    return f"*Graded: {', '.join(parts)}.*"


# --- Conversion ---------------------------------------------------------------------------


def _content_id(cell: nbformat.NotebookNode, taken: set[str]) -> str:
    # Content-derived ids: editing one cell changes one id, so diffs stay small.
    digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
    cell_id, copy = digest, 1
    while cell_id in taken:
        copy += 1
        cell_id = f"{digest}-{copy}"
    taken.add(cell_id)
    return cell_id


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    """The cell's tags (a new list)."""
    return list(cell.get("metadata", {}).get("tags", []))


def _cell_lines(path: Path, cells: list[nbformat.NotebookNode]) -> list[int]:
    """The line number in ``path`` where each cell's source starts (best effort: the
    first occurrence after the previous cell; 0 when not found)."""
    text = path.read_text(encoding="utf-8")
    lines, position = [], 0
    for cell in cells:
        found = text.find(cell.source, position) if cell.source else -1
        if found == -1:
            lines.append(0)
            continue
        lines.append(text.count("\n", 0, found) + 1)
        position = found + len(cell.source)
    return lines


@dataclass
class _Converter:
    """Turns the cells of one chapter into student or instructor notebook cells."""

    context: myst.Context
    install_source: str
    instructor: bool
    solution: str | None = None  # the exercise label of the open gated solution

    def markdown(self, source: str, first_line: int) -> str:
        """A Markdown cell's converted text; gated solution markers open and close."""
        try:
            blocks = myst.parse_blocks(source.split("\n"), first_line)
        except myst.MystConversionError as error:
            raise myst.MystConversionError(f"{self.context.path}: {error}") from None
        parts = []
        for block in blocks:
            name = getattr(block, "name", None)
            if name == "solution-start":
                if self.solution is not None:
                    raise self.context.error(block.line, "a solution-start inside a solution")
                self.solution = block.argument
                parts.append("**Solution.**" if self.instructor else "")
            elif name == "solution-end":
                if self.solution is None:
                    raise self.context.error(block.line, "a solution-end without solution-start")
                self.solution = None
            elif self.solution is None or self.instructor:
                parts.append(myst.render_block(block, self.context))
        return myst.join_parts(parts)

    def code(self, cell: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
        """The notebook's code cell for a source code cell, or ``None`` to leave it out."""
        tags = _tags(cell)
        if self.solution is not None and not self.instructor:
            return None
        if STUB_TAG in tags:
            if self.instructor:
                return None
            tags = [tag for tag in tags if tag not in WEBSITE_ONLY_STUB_TAGS]
        source = self.install_source if INSTALL_TAG in tags else cell.source
        return nbformat.v4.new_code_cell(source, metadata={"tags": tags} if tags else {})


def header_source(project: Project, chapter: str, context: myst.Context, instructor: bool) -> str:
    """The first cell: the Colab badge, a link to the chapter's page on the website and,
    when the text shows glued values, how to see them."""
    title = context.site.titles.get(chapter) or chapter
    page = context.site.page_url(chapter)
    lines = []
    if instructor:
        lines.append("**Instructor notebook**: it holds the solutions; do not share it.")
    else:
        lines.append(f"[![Open In Colab]({COLAB_BADGE})]({project.colab_url(chapter)})")
    lines.append(f"This is the chapter [{title}]({page}) of the course website.")
    if context.glue_names:
        name = context.glue_names[0]
        lines.append(
            f"Values written like `{name}` in the text are computed when you run the "
            f'notebook; after running it, `flowcourse.notebook.glued("{name}")` shows one.'
        )
    if context.glue_elsewhere:
        lines.append("A value written as a linked name is computed in the chapter the link opens.")
    return "\n\n".join(lines)


def notebook_from_markdown(
    path: Path,
    *,
    instructor: bool = False,
    project: Project | None = None,
    site: myst.Site | None = None,
    grading: Callable[[str], str | None] = grading_line,
) -> nbformat.NotebookNode:
    """Read the MyST notebook at ``path`` and return its student notebook (or, with
    ``instructor=True``, its instructor notebook): Markdown converted, no outputs,
    content-derived cell ids, and only the metadata a reader's Jupyter needs."""
    project = project or load_project()
    site = site or myst.build_site(path.parent, project.base_url)
    source = jupytext.read(path)
    context = myst.Context(site, path.stem, path, keep_solutions=instructor, grading_line=grading)
    converter = _Converter(context, install_cell_source(project), instructor)
    cells = []
    for cell, line in zip(source.cells, _cell_lines(path, source.cells), strict=True):
        if cell.cell_type == "markdown":
            text = converter.markdown(cell.source, line)
            cells += [nbformat.v4.new_markdown_cell(text)] if text else []
        elif cell.cell_type == "code" and (code := converter.code(cell)) is not None:
            cells.append(code)
    if converter.solution is not None:
        raise context.error(0, f"the solution of {converter.solution!r} has no solution-end")
    header = header_source(project, path.stem, context, instructor)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(header), *cells]
    taken: set[str] = set()
    for cell in notebook.cells:
        cell.id = _content_id(cell, taken)
    notebook.metadata = nbformat.from_dict(
        {
            "kernelspec": source.metadata.get(
                "kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"}
            ),
            "language_info": {"name": "python"},
        }
    )
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    nbformat.validate(notebook)
    return notebook


def notebook_text(path: Path, *, instructor: bool = False, **options) -> str:
    """The exact text of the notebook generated from the MyST notebook at ``path``."""
    return nbformat.writes(notebook_from_markdown(path, instructor=instructor, **options)) + "\n"


# --- The install cell in the .md sources ----------------------------------------------------


@dataclass(frozen=True)
class _InstallCell:
    """Where the install cell's code lies in a source's lines."""

    lines: list[str]  # the whole file, split on "\n"
    code_start: int  # first line of the code (after the options)
    code_stop: int  # the closing fence


def _install_cells(text: str) -> list[_InstallCell]:
    """The code cells tagged ``colab-install`` of a MyST notebook's ``text``."""
    body, first_line = myst.split_front_matter(text)
    lines = text.split("\n")
    offset = first_line - 1
    found = []
    for block in myst.parse_blocks(body.split("\n"), first_line):
        if isinstance(block, myst.DirectiveBlock) and block.name == "code-cell":
            tags = block.options.get("tags", [])
            tags = yaml.safe_load(tags) if isinstance(tags, str) else tags
            if INSTALL_TAG in (tags or []):
                found.append(_InstallCell(lines, offset + block.option_stop, offset + block.stop))
    return found


def _with_install_code(cell: _InstallCell, code: str) -> str:
    """The file's text with the install cell's code replaced by ``code``."""
    lines = cell.lines[: cell.code_start] + ["", *code.split("\n")] + cell.lines[cell.code_stop :]
    return "\n".join(lines)


def install_cell_problems(sources: list[Path], project: Project | None = None) -> list[str]:
    """What is wrong with the install cells of ``sources``: missing, repeated, or not
    the code of :func:`install_cell_source`."""
    expected = install_cell_source(project or load_project())
    problems = []
    for source in sources:
        cells = _install_cells(source.read_text(encoding="utf-8"))
        if not cells:
            problems.append(
                f"{source} has no code cell tagged {INSTALL_TAG} (split the install code "
                "out of its first code cell and tag it)"
            )
        elif len(cells) > 1:
            problems.append(f"{source} has {len(cells)} code cells tagged {INSTALL_TAG}")
        elif _code_of(cells[0]) != expected:
            problems.append(f"{source}: its install cell is out of date: run {SYNC_COMMAND}")
    return problems


def _code_of(cell: _InstallCell) -> str:
    """The install cell's code, as jupytext reads it (blank lines around it dropped)."""
    return "\n".join(cell.lines[cell.code_start : cell.code_stop]).strip("\n")


def sync_install_cells(sources: list[Path], project: Project | None = None) -> list[Path]:
    """Rewrite the install cell of each source whose code differs from the template;
    return the sources written."""
    expected = install_cell_source(project or load_project())
    written = []
    for source in sources:
        cells = _install_cells(source.read_text(encoding="utf-8"))
        if len(cells) == 1 and _code_of(cells[0]) != expected:
            source.write_text(_with_install_code(cells[0], expected), encoding="utf-8")
            written.append(source)
    return written


# --- Writing ------------------------------------------------------------------------------


def _generated(sources: list[Path], *, instructor: bool) -> dict[Path, str]:
    """The notebook text of each source, sharing one index of the book per folder."""
    project = load_project()
    sites: dict[Path, myst.Site] = {}
    texts = {}
    for source in sources:
        if source.parent not in sites:
            sites[source.parent] = myst.build_site(source.parent, project.base_url)
        site = sites[source.parent]
        texts[source] = notebook_text(source, instructor=instructor, project=project, site=site)
    return texts


def stale_notebooks(sources: list[Path]) -> list[Path]:
    """The student ``.ipynb`` files, one per source, that are missing or differ from
    what :func:`notebook_text` generates."""
    stale = []
    for source, text in _generated(sources, instructor=False).items():
        target = source.with_suffix(".ipynb")
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(target)
    return stale


def sync(sources: list[Path]) -> list[Path]:
    """Update the install cells of ``sources``, then rewrite their stale student
    notebooks; return the paths written."""
    written = sync_install_cells(sources)
    for source, text in _generated(sources, instructor=False).items():
        target = source.with_suffix(".ipynb")
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def write_instructor_notebooks(sources: list[Path], folder: Path) -> list[Path]:
    """Write the instructor notebook of each source into ``folder``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source, text in _generated(sources, instructor=True).items():
        target = folder / f"{source.stem}.ipynb"
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sources",
        nargs="*",
        type=Path,
        help="MyST notebooks to convert (default: every one directly in book/)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="report stale notebooks and install cells and exit 1, write nothing",
    )
    mode.add_argument(
        "--instructor",
        type=Path,
        metavar="FOLDER",
        help="write the instructor notebooks (with solutions) into FOLDER, e.g. "
        "_build/instructor (not committed), and nothing else",
    )
    args = parser.parse_args(argv)
    sources = args.sources or chapter_sources()
    not_notebooks = [path for path in sources if not has_jupytext_header(path)]
    if not_notebooks:
        parser.error(f"expected MyST notebooks with a jupytext header, got {not_notebooks}")
    try:
        return _run(args, sources)
    except myst.MystConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, sources: list[Path]) -> int:
    if _exercise_registry() is None:
        print(
            "note: flowcourse.exercises (questions_for_exercise, is_self_assessed) is not "
            "available: exercises get no grading line",
            file=sys.stderr,
        )
    if args.instructor:
        for target in write_instructor_notebooks(sources, args.instructor):
            print(f"wrote {target}")
        return 0
    if args.check:
        problems = install_cell_problems(sources) + [
            f"{target} is out of date: run {SYNC_COMMAND}" for target in stale_notebooks(sources)
        ]
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    for target in sync(sources):
        print(f"wrote {target}")
    problems = install_cell_problems(sources)  # the ones writing cannot fix
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
