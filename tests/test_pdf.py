"""The printable edition that ``make pdf`` writes: every chapter, figures, math and the
bibliography (run by ``make pdf`` after the build; not part of ``make test``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import toc_pages

ROOT = Path(__file__).resolve().parent.parent
PDF = ROOT / "_build" / "latex" / "flowcourse.pdf"

pytestmark = [
    pytest.mark.pdf,
    pytest.mark.skipif(not PDF.exists(), reason="no PDF: run `make pdf`"),
    pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils is missing"),
]


def title_of(page: Path) -> str:
    heading = next(line for line in page.read_text().splitlines() if line.startswith("# "))
    return re.sub(r"[`*]", "", heading[2:]).strip()


@pytest.fixture(scope="module")
def text() -> str:
    output = subprocess.run(["pdftotext", "-layout", str(PDF), "-"], capture_output=True)
    return re.sub(r"\s+", " ", output.stdout.decode("utf-8", errors="replace"))


def test_the_pdf_has_the_whole_book() -> None:
    info = subprocess.run(["pdfinfo", str(PDF)], capture_output=True, text=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 200, f"expected the whole book (over 200 pages), got {pages}"


def test_every_chapter_title_appears(text: str) -> None:
    # The root page is the PDF's preface, printed without its web title.
    chapters = [name for name in toc_pages()[1:] if not name.startswith("book/api/")]
    missing = [title_of(ROOT / f"{name}.md") for name in chapters]
    missing = [title for title in missing if re.sub(r"\s+", " ", title) not in text]
    assert not missing, f"chapter titles missing from the PDF: {missing}"


def test_figures_math_and_bibliography_are_in(text: str) -> None:
    images = subprocess.run(["pdfimages", "-list", str(PDF)], capture_output=True, text=True)
    figures = len(images.stdout.splitlines()) - 2
    assert figures >= 30, f"expected the chapters' figures, found {figures} images"
    assert "Germain" in text and "Kingma" in text, "the bibliography is printed"
    assert "log p" in text or "log 𝑝" in text, "the formulas are typeset"
