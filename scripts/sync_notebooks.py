"""Regenerate the committed ``.ipynb`` beside every MyST notebook chapter in ``book/``.

The ``.md`` file is the source a chapter is written in; the ``.ipynb`` beside it exists
for Colab (which opens only ``.ipynb``, and the book's Colab button links it only when it
sits beside the ``.md``). The notebooks are generated without outputs, with cell ids
derived from the cell contents, so the same ``.md`` always gives the same bytes.

Usage::

    .venv/bin/python scripts/sync_notebooks.py           # rewrite the stale notebooks
    .venv/bin/python scripts/sync_notebooks.py --check   # only report them (exit code 1)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

__all__ = [
    "BOOK_DIR",
    "chapter_sources",
    "has_jupytext_header",
    "notebook_from_markdown",
    "notebook_text",
    "stale_notebooks",
    "sync",
]

BOOK_DIR = Path(__file__).resolve().parent.parent / "book"


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


def _content_id(cell: nbformat.NotebookNode, taken: set[str]) -> str:
    # Content-derived ids: editing one cell changes one id, so diffs stay small.
    digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
    cell_id, copy = digest, 1
    while cell_id in taken:
        copy += 1
        cell_id = f"{digest}-{copy}"
    taken.add(cell_id)
    return cell_id


def notebook_from_markdown(path: Path) -> nbformat.NotebookNode:
    """Read the MyST notebook at ``path`` and return it as an ``.ipynb`` notebook with no
    outputs, content-derived cell ids, and only the metadata a reader's Jupyter needs."""
    notebook = jupytext.read(path)
    taken: set[str] = set()
    for cell in notebook.cells:
        cell.id = _content_id(cell, taken)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    # jupytext's own metadata (its version, the text format) would only add churn.
    notebook.metadata = nbformat.from_dict(
        {
            "kernelspec": notebook.metadata.get(
                "kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"}
            ),
            "language_info": {"name": "python"},
        }
    )
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    nbformat.validate(notebook)
    return notebook


def notebook_text(path: Path) -> str:
    """The exact text of the ``.ipynb`` generated from the MyST notebook at ``path``."""
    return nbformat.writes(notebook_from_markdown(path)) + "\n"


def stale_notebooks(sources: list[Path]) -> list[Path]:
    """The ``.ipynb`` files, one per source, that are missing or differ from what
    :func:`notebook_text` generates."""
    stale = []
    for source in sources:
        target = source.with_suffix(".ipynb")
        if not target.exists() or target.read_text(encoding="utf-8") != notebook_text(source):
            stale.append(target)
    return stale


def sync(sources: list[Path]) -> list[Path]:
    """Rewrite the stale notebooks of ``sources``; return the paths written."""
    written = stale_notebooks(sources)
    for target in written:
        target.write_text(notebook_text(target.with_suffix(".md")), encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sources",
        nargs="*",
        type=Path,
        help="MyST notebooks to pair (default: every one directly in book/)",
    )
    parser.add_argument(
        "--check", action="store_true", help="report stale notebooks and exit 1, write nothing"
    )
    args = parser.parse_args(argv)
    sources = args.sources or chapter_sources()
    not_notebooks = [path for path in sources if not has_jupytext_header(path)]
    if not_notebooks:
        parser.error(f"expected MyST notebooks with a jupytext header, got {not_notebooks}")
    if args.check:
        stale = stale_notebooks(sources)
        for target in stale:
            print(f"{target} is out of date: run .venv/bin/python scripts/sync_notebooks.py")
        return 1 if stale else 0
    for target in sync(sources):
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
