"""The book's pipeline agrees with itself: configuration, first cells, citations, runner.

- ``_config.yml`` serves the JavaScript that ``scripts/vendor_js.sh`` vendors;
- the standard first cell of ``CONTRIBUTING.md`` and the first cell of every chapter
  install ``flowcourse`` only when it is missing, with a quoted specifier that points at
  the repository of ``_config.yml`` and leaves torch alone, and set ``device``, the seed
  and ``FULL_SCALE``;
- every ``{cite}`` key exists in ``book/references.bib``;
- ``book/conftest.py`` collects one test per chapter and reports a failing cell.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import pytest
import torch
import yaml

import flowcourse
from flowcourse.exercises.registry import CHAPTERS as REGISTERED_CHAPTERS
from tests.helpers import load_sync_script

ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = ROOT / "book"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
SPHINX_CONFIG = CONFIG["sphinx"]["config"]
REPOSITORY_URL = CONFIG["repository"]["url"]


CHAPTERS = load_sync_script().chapter_sources(BOOK_DIR)


def standard_first_cell() -> str:
    """The code of the standard first two cells (install, set-up), as CONTRIBUTING.md
    shows them."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    block = re.search(
        r"<!-- standard-first-cell:start -->\n(.*?)<!-- standard-first-cell:end -->",
        text,
        re.DOTALL,
    )
    assert block, "expected CONTRIBUTING.md to hold the standard first cells between markers"
    cells = re.findall(
        r"```\{code-cell\} ipython3\n(?::tags: [^\n]*\n\n)?(.*?)```\n", block.group(1), re.DOTALL
    )
    assert len(cells) == 2, f"expected the install cell and the set-up cell, got {len(cells)}"
    return "\n".join(cells)


def first_code_cell(chapter: Path) -> str:
    """The chapter's install cell (tagged ``colab-install``) and its set-up cell, joined."""
    cells = [cell for cell in jupytext.read(chapter).cells if cell.cell_type == "code"]
    assert len(cells) >= 2, f"expected {chapter.name} to have code cells"
    tags = cells[0].metadata.get("tags", [])
    assert "colab-install" in tags, (
        f"expected {chapter.name}'s first code cell to be tagged colab-install"
    )
    return cells[0].source + "\n" + cells[1].source


# The course's chapters (the pages for students and instructors have no set-up cell).
COURSE_CHAPTERS = [chapter for chapter in CHAPTERS if chapter.stem in REGISTERED_CHAPTERS]
FIRST_CELLS = [("CONTRIBUTING.md", standard_first_cell)] + [
    (chapter.name, lambda chapter=chapter: first_code_cell(chapter)) for chapter in COURSE_CHAPTERS
]


@dataclass
class FirstCellRun:
    """What running a first cell did: its namespace and the magics it called."""

    namespace: dict
    pip: list[str] = field(default_factory=list)
    matplotlib: list[str] = field(default_factory=list)


@pytest.fixture
def run_first_cell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run a cell in an in-process IPython shell whose ``%pip`` and ``%matplotlib`` only
    record their arguments; ``flowcourse_importable=False`` hides the package until
    ``%pip`` "installs" it. Torch's random state is restored afterwards."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    rng_state = torch.get_rng_state()
    installed = flowcourse

    def run(source: str, *, flowcourse_importable: bool) -> FirstCellRun:
        shell.reset(new_session=False)
        record = FirstCellRun(namespace=shell.user_ns)

        def pip(line: str) -> None:
            record.pip.append(line)
            monkeypatch.setitem(sys.modules, "flowcourse", installed)

        shell.register_magic_function(pip, magic_kind="line", magic_name="pip")
        shell.register_magic_function(
            record.matplotlib.append, magic_kind="line", magic_name="matplotlib"
        )
        if not flowcourse_importable:
            monkeypatch.setitem(sys.modules, "flowcourse", None)  # import raises ImportError
        torch.manual_seed(12345)
        result = shell.run_cell(source)
        result.raise_error()
        return record

    yield run
    torch.set_rng_state(rng_state)


def _check_setup(record: FirstCellRun, name: str) -> None:
    namespace = record.namespace
    expected_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert namespace.get("device") == expected_device, (
        f"{name}: expected the first cell to set device = {expected_device!r}, "
        f"got {namespace.get('device')!r}"
    )
    assert namespace.get("FULL_SCALE") is False, (
        f"{name}: expected FULL_SCALE = False, got {namespace.get('FULL_SCALE')!r}"
    )
    assert torch.initial_seed() == 0, f"{name}: expected torch.manual_seed(0)"
    assert record.matplotlib == ["inline"], (
        f"{name}: expected %matplotlib inline (figures vanish under MPLBACKEND=Agg), "
        f"got {record.matplotlib}"
    )


@pytest.mark.parametrize("name, source", FIRST_CELLS, ids=[name for name, _ in FIRST_CELLS])
def test_first_cell_installs_nothing_when_flowcourse_is_importable(
    name: str, source, run_first_cell
) -> None:
    record = run_first_cell(source(), flowcourse_importable=True)
    assert record.pip == [], f"{name}: expected no %pip when flowcourse imports, got {record.pip}"
    _check_setup(record, name)


@pytest.mark.parametrize("name, source", FIRST_CELLS, ids=[name for name, _ in FIRST_CELLS])
def test_first_cell_installs_flowcourse_from_the_repository_when_missing(
    name: str, source, run_first_cell
) -> None:
    record = run_first_cell(source(), flowcourse_importable=False)
    specifier = f'"flowcourse @ git+{REPOSITORY_URL}@v{flowcourse.__version__}"'
    assert len(record.pip) == 1, f"{name}: expected one %pip call, got {record.pip}"
    (line,) = record.pip
    assert line.split()[0] == "install" and specifier in line, (
        f"{name}: expected %pip install ... {specifier} (quoted, from _config.yml's "
        f"repository), got %pip {line}"
    )
    assert "torch" not in line.replace(specifier, ""), (
        f"{name}: expected torch to be left alone, got %pip {line}"
    )
    _check_setup(record, name)


def test_first_cell_check_fails_on_a_cell_that_always_installs(run_first_cell) -> None:
    careless = standard_first_cell().replace("try:", '%pip install "flowcourse @ git+x"\ntry:', 1)
    record = run_first_cell(careless, flowcourse_importable=True)
    assert record.pip == ['install "flowcourse @ git+x"']


def test_config_serves_the_vendored_javascript() -> None:
    assert SPHINX_CONFIG["html_extra_path"] == ["book/_vendor"]
    urls = [SPHINX_CONFIG["mathjax_path"], *(u for u in SPHINX_CONFIG["nb_ipywidgets_js"] if u)]
    script = (ROOT / "scripts" / "vendor_js.sh").read_text(encoding="utf-8")
    vendored = BOOK_DIR / "_vendor" / "_vendor"
    for url in urls:
        assert url.startswith("../_vendor/"), f"expected {url} under ../_vendor/"
        relative = url.removeprefix("../_vendor/")
        assert f'"$site/{relative}"' in script, f"expected vendor_js.sh to provide {relative}"
        if (vendored / "VERSIONS").exists():
            assert (vendored / relative).is_file(), f"expected {vendored / relative}"


def test_config_keeps_notebooks_and_bookkeeping_out_of_the_site() -> None:
    for pattern in ("**.ipynb", ".gitignore", ".installed", "_build", ".venv"):
        assert pattern in CONFIG["exclude_patterns"], f"expected {pattern} in exclude_patterns"
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["execute"]["allow_errors"] is False


def test_config_has_launch_buttons() -> None:
    assert REPOSITORY_URL.startswith("https://github.com/")
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"] == "https://mybinder.org"


CITATION = re.compile(r"\{cite(?::\w+)?\}`([^`]*)`")


def test_every_citation_key_is_in_the_bibliography() -> None:
    bibliography = (BOOK_DIR / "references.bib").read_text(encoding="utf-8")
    known = set(re.findall(r"@\w+\{([^,\s]+),", bibliography))
    unknown = {
        f"{page.name}: {key.strip()}"
        for page in sorted(BOOK_DIR.glob("*.md"))
        for keys in CITATION.findall(page.read_text(encoding="utf-8"))
        for key in keys.split(",")
        if key.strip() not in known
    }
    assert not unknown, f"unknown citation keys (see book/references.bib): {sorted(unknown)}"
    assert CITATION.findall("see {cite:t}`a, b` and {cite}`c`") == ["a, b", "c"]


def test_vendor_script_is_idempotent_when_already_done(tmp_path: Path) -> None:
    if not (BOOK_DIR / "_vendor" / "_vendor" / "VERSIONS").exists():
        pytest.skip("book/_vendor is not set up (run make setup)")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "vendor_js.sh"), str(BOOK_DIR / "_vendor")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0 and "already holds" in result.stdout, result.stderr


def test_vendor_script_fails_loudly_without_npm(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "dirname").symlink_to(shutil.which("dirname"))  # the only tool it needs first
    result = subprocess.run(
        [shutil.which("bash"), str(ROOT / "scripts" / "vendor_js.sh"), str(tmp_path / "dest")],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": str(tools)},
        check=False,
    )
    assert result.returncode == 1
    assert "npm is required" in result.stderr, result.stderr


# Plugins the inner runs do not need cost seconds of start-up.
INNER_PYTEST_OPTIONS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--color=no")


def _pytest(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # A clean environment for the inner pytest: no xdist worker or plugin variables.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *INNER_PYTEST_OPTIONS, *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_pytest_book_collects_one_test_per_chapter() -> None:
    result = _pytest(["--collect-only", "-q", "book"], ROOT)
    collected = {line for line in result.stdout.splitlines() if "::" in line}
    expected = {f"book/{chapter.name}::notebook" for chapter in CHAPTERS}
    assert collected == expected, result.stdout + result.stderr


HEADER = """\
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
"""


def test_chapter_runner_reports_the_failing_cell(tmp_path: Path) -> None:
    # A copy of the pipeline in a scratch repository, with one good and one broken chapter.
    (tmp_path / "book").mkdir()
    (tmp_path / "scripts").mkdir()
    shutil.copy(BOOK_DIR / "conftest.py", tmp_path / "book" / "conftest.py")
    for script in ("sync_notebooks.py", "myst_to_markdown.py"):
        shutil.copy(ROOT / "scripts" / script, tmp_path / "scripts")
    cell = "```{code-cell} ipython3\n%s\n```\n\n"
    skipped = '```{code-cell} ipython3\n:tags: [skip-execution]\nraise RuntimeError("ran")\n```\n\n'
    good = HEADER + "# Good\n\n" + cell % "x = 41" + skipped + cell % "assert x + 1 == 42"
    broken = (
        HEADER
        + "# Broken\n\n"
        + cell % "x = 1"
        + cell % "def density(x):\n    return 1 / x\n\ndensity(0)"
        + cell % 'print("not reached")'
    )
    (tmp_path / "book" / "good.md").write_text(good, encoding="utf-8")
    (tmp_path / "book" / "broken.md").write_text(broken, encoding="utf-8")
    (tmp_path / "book" / "plain.md").write_text("# Not a notebook\n", encoding="utf-8")
    # A paired .ipynb is never run, even where nbval would collect notebooks.
    (tmp_path / "book" / "good.ipynb").write_text(
        jupytext.writes(jupytext.reads(good, fmt="md:myst"), fmt="ipynb"), encoding="utf-8"
    )

    result = _pytest(["-rA", "--nbval-lax", "book"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "PASSED book/good.md::notebook" in output, output
    assert "FAILED book/broken.md::notebook" in output, output
    assert "broken.md: code cell 2 of 3 failed" in output, output
    assert "density(0)" in output and "ZeroDivisionError" in output, output
    assert "not reached" not in output.split("FAILED book/broken.md")[0].split("Input")[-1]
    assert "collected 2 items" in output, output
