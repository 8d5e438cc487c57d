"""The website switch: ``hide_solutions: true`` publishes no solution, gated or not.

A two-exercise page is built twice with the book's own extensions, once per setting.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"

PAGE = """---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Exercises

```{exercise} Gated
:label: ex-gated

Write a function. EXERCISE-TEXT-ONE
```

```{solution-start} ex-gated
:class: dropdown
```

GATED-SOLUTION-PROSE

```{code-cell} ipython3
gated_solution_code = "GATED-SOLUTION-CODE"
```

```{solution-end}
```

```{code-cell} ipython3
:tags: [exercise-check]

print("CHECK-CELL")
```

```{exercise} Plain
:label: ex-plain

Prove it. EXERCISE-TEXT-TWO
```

```{solution} ex-plain
PLAIN-SOLUTION-PROSE
```

AFTER-THE-SOLUTIONS
"""


def build(tmp_path: Path, hide: bool) -> str:
    book = tmp_path / f"hide-{hide}"
    book.mkdir()
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx = config["sphinx"]
    sphinx["config"] = {"hide_solutions": hide}
    sphinx["local_extensions"] = {"hidden_solutions": str(ROOT / "book" / "_ext")}
    small = {
        "title": "test",
        "execute": {"execute_notebooks": "off"},
        "only_build_toc_files": True,
        "parse": config["parse"],
        "sphinx": sphinx,
    }
    (book / "_config.yml").write_text(yaml.safe_dump(small), encoding="utf-8")
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n", encoding="utf-8")
    (book / "page.md").write_text(PAGE, encoding="utf-8")
    process = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(book), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    html = (book / "_build" / "html" / "page.html").read_text(encoding="utf-8")
    shutil.rmtree(book / "_build" / ".doctrees", ignore_errors=True)
    return html


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed")
def test_hide_solutions_removes_gated_and_plain_solutions(tmp_path: Path) -> None:
    shown, hidden = build(tmp_path, hide=False), build(tmp_path, hide=True)
    always = ["EXERCISE-TEXT-ONE", "EXERCISE-TEXT-TWO", "CHECK-CELL", "AFTER-THE-SOLUTIONS"]
    solutions = ["GATED-SOLUTION-PROSE", "GATED-SOLUTION-CODE", "PLAIN-SOLUTION-PROSE"]
    for text in always:
        assert text in shown and text in hidden, f"{text} must be published in both settings"
    for text in solutions:
        assert text in shown, f"{text} is published with hide_solutions: false"
        assert text not in hidden, f"{text} leaks with hide_solutions: true"


def test_the_book_publishes_solutions_by_default() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["sphinx"]["config"]["hide_solutions"] is False
    assert "hidden_solutions" in config["sphinx"]["local_extensions"]
