"""The API reference (book/api/): built strictly from the docstrings, every public name
of every sub-package documented, its math and examples shown.

The pages are built on their own (no notebook executes), with the book's Sphinx
configuration, so a broken reference or a docstring Sphinx cannot read fails here in
seconds; the full strict build checks them again inside the book.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
API_DIR = ROOT / "book" / "api"
PAGES = sorted(path.stem for path in API_DIR.glob("*.md") if path.stem != "index")

pytestmark = pytest.mark.xdist_group("api-reference")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    book = tmp_path_factory.mktemp("api-book")
    shutil.copytree(API_DIR, book / "api")
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    # The book's settings for the reference only (the rest needs the vendored files).
    sphinx = {
        "extra_extensions": [e for e in config["sphinx"]["extra_extensions"] if "ext" in e],
        "config": {
            key: value
            for key, value in config["sphinx"]["config"].items()
            if key.startswith(("autodoc", "napoleon", "nitpick", "add_module"))
        },
    }
    small = {
        "title": "flowcourse API",
        "execute": {"execute_notebooks": "off"},
        "only_build_toc_files": True,
        "parse": config["parse"],
        "sphinx": sphinx,
    }
    (book / "_config.yml").write_text(yaml.safe_dump(small), encoding="utf-8")
    toc = {
        "format": "jb-book",
        "root": "api/index",
        "chapters": [{"file": f"api/{p}"} for p in PAGES],
    }
    (book / "_toc.yml").write_text(yaml.safe_dump(toc), encoding="utf-8")
    process = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(book), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    warnings = [line for line in process.stderr.splitlines() if "WARNING" in line]
    assert process.returncode == 0 and not warnings, (
        "\n".join(warnings[:30]) or process.stdout[-3000:]
    )
    return book / "_build" / "html" / "api"


def test_every_sub_package_has_a_page_in_the_toc() -> None:
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    for page in PAGES:
        assert f"book/api/{page}" in toc, f"book/api/{page}.md is not in _toc.yml"
    modules = {path.stem for path in (ROOT / "flowcourse").glob("*.py")} | {
        path.parent.name for path in (ROOT / "flowcourse").glob("*/__init__.py")
    }
    modules -= {"__init__", "__main__", "grade", "checkpoints"}
    assert modules <= set(PAGES), f"sub-packages without a reference page: {modules - set(PAGES)}"


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed")
@pytest.mark.parametrize("page", PAGES)
def test_every_public_name_is_documented(built: Path, page: str) -> None:
    html = (built / f"{page}.html").read_text(encoding="utf-8")
    module = importlib.import_module(f"flowcourse.{page}")
    documented = set(re.findall(r'id="(flowcourse\.[\w.]+)"', html))
    missing = [
        name
        for name in getattr(module, "__all__", [])
        if not any(entry.endswith(f".{name}") for entry in documented)
    ]
    assert not missing, f"flowcourse.{page}: no entry for {missing}"


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed")
def test_math_and_examples_are_rendered(built: Path) -> None:
    core = (built / "core.html").read_text(encoding="utf-8")
    coupling = (built / "coupling.html").read_text(encoding="utf-8")
    assert 'class="math' in coupling, "the formulas of the docstrings are typeset"
    assert "&gt;&gt;&gt;" in core or 'class="gp"' in core, "the examples are shown"
    assert ":math:" not in coupling and ":class:" not in core, "no raw reST roles"
