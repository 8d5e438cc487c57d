"""The built website, as a reader's browser shows it, offline.

Run after ``jupyter-book build .`` (``make browser``; ``make test`` runs both): every page
of ``_toc.yml`` is served over loopback HTTP and opened in headless Chromium, which saves
a screenshot to ``_build/screenshots/<chapter>.png`` and dumps the DOM after the page's
JavaScript ran. The DOM must show typeset math, rendered widgets and no traceback, and the
page must not have asked the server for a file it lacks. Static checks of the built HTML
(no asset from the network, the Colab button opening the chapter's ``.ipynb``) run even
without Chromium.

The window is 1280 px wide, a common laptop's. The server adds a script to every page it
serves (:data:`LAYOUT_PROBE`) that opens every collapsed block, measures every code block
and printed output (``div.cell_input pre``, ``div.highlight pre``, ``div.cell_output pre``)
and reports each one whose ``scrollWidth`` exceeds its ``clientWidth`` (it would scroll
sideways), and clicks the article header's "Contents" button: the page's table of
contents must be reachable, beside the article or from that button. Only these checks::

    .venv/bin/pytest tests/test_browser.py -m browser -k "fits or contents"
"""

from __future__ import annotations

import functools
import html.parser
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml

from tests.helpers import toc_pages

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
REPOSITORY = "flowcourse/flowcourse"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--hide-scrollbars",
    "--window-size=1280,2000",
    "--virtual-time-budget=10000",  # let MathJax and the widget manager finish
)
CHROMIUM_TIMEOUT_S = 120
IGNORED_MISSING = {"/favicon.ico"}  # asked for by the browser itself, not by the page
SCROLL_TOLERANCE_PX = 1  # sub-pixel rounding

#: Added before ``</body>`` of every page served: after the page's own scripts ran, it
#: measures what would scroll sideways and tries the table of contents, and leaves a JSON
#: report in ``<script id="flowcourse-layout-report">`` for the DOM dump.
LAYOUT_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const closed = Array.from(document.querySelectorAll("details:not([open])"));
  closed.forEach((details) => { details.open = true; });
  const cells = Array.from(document.querySelectorAll("div.cell"));
  const selector = "div.cell_input pre, div.highlight pre, div.cell_output pre";
  const overflowing = [];
  document.querySelectorAll(selector).forEach((pre) => {
    if (pre.offsetParent === null || pre.scrollWidth <= pre.clientWidth + TOLERANCE) return;
    const cell = pre.closest("div.cell");
    const section = pre.closest("section");
    const heading = section && section.querySelector("h1, h2, h3, h4");
    const lines = pre.textContent.split("\\n");
    overflowing.push({
      where: (cell ? "code cell " + (cells.indexOf(cell) + 1) + " of " + cells.length
                     + (pre.closest("div.cell_output") ? ", its output" : ", its code")
                   : "a code block")
             + (heading ? " under '" + heading.textContent.replace(/#$/, "").trim() + "'" : ""),
      scrollWidth: pre.scrollWidth,
      clientWidth: pre.clientWidth,
      line: lines.reduce((a, b) => (b.length > a.length ? b : a), "").slice(0, 140),
    });
  });
  closed.forEach((details) => { details.open = false; });
  const tocLinks = document.querySelectorAll("#pst-secondary-sidebar nav.page-toc a").length;
  const sidebar = document.getElementById("pst-secondary-sidebar");
  const dialog = document.getElementById("pst-secondary-sidebar-modal");
  const button = Array.from(document.querySelectorAll(".bd-header-article .secondary-toggle"))
    .find((element) => element.offsetParent !== null);
  const toc = {links: tocLinks, beside: !!sidebar && sidebar.offsetParent !== null,
               button: !!button, opened: false, dialogLinks: 0};
  if (button && !toc.beside && dialog) {
    button.click();
    toc.opened = dialog.open;
    toc.dialogLinks = dialog.querySelectorAll("nav.page-toc a").length;
    if (dialog.open) dialog.close();
  }
  const report = document.createElement("script");
  report.type = "application/json";
  report.id = "flowcourse-layout-report";
  report.textContent = JSON.stringify({width: window.innerWidth, overflowing, toc})
    .replace(/</g, "\\u003c");
  document.body.appendChild(report);
}, 1000));
</script>
""".replace("TOLERANCE", str(SCROLL_TOLERANCE_PX))
LAYOUT_REPORT = re.compile(
    r'<script type="application/json" id="flowcourse-layout-report">(.*?)</script>', re.DOTALL
)

# Text that must not survive rendering: a traceback, raw ANSI escapes, TeX delimiters.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
RAW_ANSI = re.compile(r"\x1b\[|\[(?:\d+;)*3\d(?:;\d+)*m")
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\$[^$\n]{0,200}?\\[A-Za-z]+[^$\n]{0,200}?\$")


PAGES = toc_pages()


class VisibleText(html.parser.HTMLParser):
    """The text a reader sees as prose: code, scripts and typeset math are left out."""

    SKIPPED = {"script", "style", "pre", "code", "textarea", "svg", "mjx-container", "noscript"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.SKIPPED:
            self.skip_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self.skip_depth:
            self.skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.parts.append(data)

    @classmethod
    def of(cls, document: str) -> str:
        parser = cls()
        parser.feed(document)
        return " ".join(parser.parts)


class AssetReferences(html.parser.HTMLParser):
    """The ``src`` of scripts and images and the ``href`` of stylesheets in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag in {"script", "img"} and attributes.get("src"):
            self.urls.append(attributes["src"])
        if tag == "link" and "stylesheet" in (attributes.get("rel") or ""):
            self.urls.append(attributes["href"])

    @classmethod
    def of(cls, document: str) -> list[str]:
        parser = cls()
        parser.feed(document)
        return parser.urls


def raw_text_problems(dom: str) -> list[str]:
    """Untypeset TeX, tracebacks and raw ANSI escapes in the rendered page ``dom``."""
    problems = []
    text = VisibleText.of(dom)
    if match := RAW_TEX.search(text):
        problems.append(f"raw TeX left in the text: {match.group()[:80]!r}")
    if TRACEBACK.search(dom) or re.search(r'class="[^"]*\btraceback\b', dom):
        problems.append("a Python traceback is rendered")
    if match := RAW_ANSI.search(dom):
        problems.append(f"raw ANSI escape codes in the page: {match.group()!r}")
    return problems


def math_problems(built: str, dom: str) -> list[str]:
    """The page ``built`` by Sphinx has math: the rendered ``dom`` must show it typeset."""
    if 'class="math notranslate' not in built:
        return []
    problems = []
    if "<mjx-container" not in dom:
        problems.append("the page has math but MathJax typeset none (no <mjx-container>)")
    if "<mjx-merror" in dom or 'mathcolor="red"' in dom:
        problems.append("MathJax reports a TeX error (an undefined macro?)")
    return problems


def widget_problems(built: str, dom: str) -> list[str]:
    """The page ``built`` by Sphinx embeds widgets: the ``dom`` must show them rendered."""
    views = built.count('type="application/vnd.jupyter.widget-view+json"')
    rendered = len(re.findall(r'class="[^"]*\bjupyter-widgets\b', dom))
    if rendered < views:
        return [f"expected {views} rendered widgets (class jupyter-widgets), got {rendered}"]
    return []


@dataclass
class LoopbackServer:
    """Serves ``directory`` on 127.0.0.1 and records every request's path and status;
    adds ``inject`` before ``</body>`` of every HTML page it serves."""

    directory: Path
    requests: list[tuple[str, int]] = field(default_factory=list)
    inject: str = ""

    def __post_init__(self) -> None:
        requests = self.requests
        inject = self.inject

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                path = Path(self.translate_path(self.path))
                if not (inject and path.suffix == ".html" and path.is_file()):
                    super().do_GET()
                    return
                body = path.read_text(encoding="utf-8").replace("</body>", inject + "</body>", 1)
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                requests.append((urlsplit(self.path).path, int(code)))

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest's output clean

        handler = functools.partial(Handler, directory=str(self.directory))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").exists():
        pytest.fail(
            f"the website is not built ({SITE} has no index.html): run "
            "`.venv/bin/jupyter-book build .` (or `make build-strict`) first"
        )
    return SITE


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    message = (
        "headless Chromium is not installed, so the browser checks cannot run: "
        "install it as root with `make browser-deps` (Debian: apt-get install -y chromium)"
    )
    if os.environ.get("CI", "").lower() in {"true", "1"}:
        pytest.fail(f"{message} (CI=true: failing instead of skipping)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[LoopbackServer]:
    loopback = LoopbackServer(site, inject=LAYOUT_PROBE)
    yield loopback
    loopback.close()


@dataclass(frozen=True)
class Rendered:
    """One page as Chromium showed it: the DOM, the files it asked for in vain, the
    screenshot, and the layout probe's report."""

    dom: str
    missing: list[str]
    screenshot: Path

    def layout(self) -> dict:
        match = LAYOUT_REPORT.search(self.dom)
        if not match:
            pytest.fail(f"the layout probe left no report (screenshot: {self.screenshot})")
        return json.loads(match.group(1))


@pytest.fixture(scope="module")
def rendered(site: Path, chromium: str, server: LoopbackServer):
    """``rendered(page)``: the page opened once in Chromium, shared by the tests."""
    pages: dict[str, Rendered] = {}

    def open_page(page: str) -> Rendered:
        if page not in pages:
            built_path = site / f"{page}.html"
            assert built_path.exists(), f"expected {built_path} for the _toc.yml entry {page}"
            url = urljoin(server.url, f"{page}.html")
            with urllib.request.urlopen(url) as response:
                assert response.status == 200, f"expected HTTP 200 for {url}"
            already_logged = len(server.requests)
            screenshot = SCREENSHOTS / f"{Path(page).name}.png"
            dom = render(chromium, url, screenshot)
            missing = sorted(
                {path for path, status in server.requests[already_logged:] if status >= 400}
                - IGNORED_MISSING
            )
            pages[page] = Rendered(dom, missing, screenshot)
        return pages[page]

    return open_page


def render(chromium: str, url: str, screenshot: Path) -> str:
    """Open ``url`` in a fresh headless Chromium; save a screenshot; return the DOM."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={screenshot}",
            "--dump-dom",
            url,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False
        )
    if result.returncode != 0 or "<html" not in result.stdout:
        pytest.fail(
            f"chromium failed on {url} (exit code {result.returncode}):\n{result.stderr[-2000:]}"
        )
    return result.stdout


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_in_chromium(page: str, site: Path, rendered) -> None:
    shown = rendered(page)
    dom, missing, screenshot = shown.dom, shown.missing, shown.screenshot
    built = (site / f"{page}.html").read_text(encoding="utf-8")
    problems = [f"the page asked the server for missing files: {missing}"] if missing else []
    problems += [
        *math_problems(built, dom),
        *widget_problems(built, dom),
        *raw_text_problems(dom),
    ]
    assert screenshot.stat().st_size > 0, f"expected a screenshot in {screenshot}"
    assert not problems, f"{page} (screenshot: {screenshot}):\n" + "\n".join(problems)


def scroll_problems(report: dict) -> list[str]:
    """The code blocks and outputs of a layout ``report`` that scroll sideways."""
    return [
        f"{item['where']}: scrollWidth {item['scrollWidth']} px > clientWidth "
        f"{item['clientWidth']} px; its longest line: {item['line']!r}"
        for item in report["overflowing"]
    ]


def toc_problems(report: dict) -> list[str]:
    """Whether a reader can reach the page's table of contents (if it has one)."""
    toc = report["toc"]
    if not toc["links"] or toc["beside"]:
        return []
    if not toc["button"]:
        return ["the table of contents is hidden and no Contents button is shown"]
    if not (toc["opened"] and toc["dialogLinks"]):
        return [
            "the Contents button in the article header did not open the table of contents "
            f"(dialog open: {toc['opened']}, links in it: {toc['dialogLinks']})"
        ]
    return []


@pytest.mark.parametrize("page", PAGES)
def test_code_fits_the_page(page: str, rendered) -> None:
    shown = rendered(page)
    report = shown.layout()
    problems = scroll_problems(report)
    assert not problems, (
        f"{page} at a window {report['width']} px wide: {len(problems)} code blocks or "
        f"outputs scroll sideways (screenshot: {shown.screenshot}). Shorten the lines "
        "(100 characters at most) or see book/_static/flowcourse.css:\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("page", PAGES)
def test_contents_button_opens_the_table_of_contents(page: str, rendered) -> None:
    report = rendered(page).layout()
    problems = toc_problems(report)
    assert not problems, f"{page} at a window {report['width']} px wide: " + "; ".join(problems)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_nothing_from_the_network(page: str, site: Path) -> None:
    built_path = site / f"{page}.html"
    urls = AssetReferences.of(built_path.read_text(encoding="utf-8"))
    remote = [url for url in urls if urlsplit(url).scheme or url.startswith("//")]
    assert not remote, f"{page} loads assets from the network, so it fails offline: {remote}"
    missing = [
        url
        for url in urls
        if not (built_path.parent / unquote(urlsplit(url).path)).resolve().is_file()
    ]
    assert not missing, f"{page} refers to files the build did not produce: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_colab_button_opens_the_paired_notebook(page: str, site: Path) -> None:
    source = ROOT / f"{page}.md"
    if not source.with_suffix(".ipynb").exists():
        pytest.skip(f"{page} is a plain page (no .ipynb beside it)")
    built = (site / f"{page}.html").read_text(encoding="utf-8")
    expected = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/{page}.ipynb"
    links = re.findall(r"https://colab\.research\.google\.com/[^\"'<\s]*", built)
    assert expected in links, (
        f"expected the Colab button of {page} to link {expected}, got {links} "
        "(an incremental build keeps stale links: rebuild from scratch)"
    )


# The DOM checks must be able to fail.


def test_dom_checks_catch_raw_tex_tracebacks_and_ansi() -> None:
    assert raw_text_problems("<p>typeset <mjx-container>x</mjx-container></p>") == []
    assert raw_text_problems("<pre>$$ \\(x\\) in code is fine</pre>") == []
    assert raw_text_problems("<p>raw \\(x^2\\)</p>") == ["raw TeX left in the text: '\\\\('"]
    assert raw_text_problems("<p>$$x$$</p>") == ["raw TeX left in the text: '$$'"]
    assert raw_text_problems("<p>a $\\alpha$ b</p>") == ["raw TeX left in the text: '$\\\\alpha$'"]
    assert raw_text_problems("<p>costs $5 and $6</p>") == []
    assert raw_text_problems("<pre>Traceback (most recent call last):</pre>") == [
        "a Python traceback is rendered"
    ]
    assert raw_text_problems("<pre>\x1b[0;31mValueError</pre>") == [
        "raw ANSI escape codes in the page: '\\x1b['"
    ]


def test_math_and_widget_checks_fail_when_nothing_rendered() -> None:
    built = '<span class="math notranslate nohighlight">\\(x\\)</span>'
    assert math_problems(built, "<html></html>") == [
        "the page has math but MathJax typeset none (no <mjx-container>)"
    ]
    assert math_problems(built, "<mjx-container><mjx-merror/></mjx-container>") == [
        "MathJax reports a TeX error (an undefined macro?)"
    ]
    assert math_problems("<p>no math</p>", "<html></html>") == []
    view = '<script type="application/vnd.jupyter.widget-view+json">{}</script>'
    assert widget_problems(view, "<html></html>") == [
        "expected 1 rendered widgets (class jupyter-widgets), got 0"
    ]
    assert widget_problems(view, '<div class="lm-Widget jupyter-widgets widget-slider">') == []


def test_layout_checks_report_scrolling_code_and_an_unreachable_toc() -> None:
    wide = {
        "where": "code cell 3 of 9, its code",
        "scrollWidth": 816,
        "clientWidth": 672,
        "line": "x = 1",
    }
    toc = {"links": 5, "beside": False, "button": True, "opened": True, "dialogLinks": 5}
    assert scroll_problems({"overflowing": [], "toc": toc}) == []
    assert scroll_problems({"overflowing": [wide], "toc": toc}) == [
        "code cell 3 of 9, its code: scrollWidth 816 px > clientWidth 672 px; "
        "its longest line: 'x = 1'"
    ]
    assert toc_problems({"toc": toc}) == []
    assert toc_problems({"toc": toc | {"links": 0, "button": False}}) == []
    assert toc_problems({"toc": toc | {"beside": True, "opened": False}}) == []
    assert toc_problems({"toc": toc | {"button": False}}) == [
        "the table of contents is hidden and no Contents button is shown"
    ]
    assert toc_problems({"toc": toc | {"opened": False, "dialogLinks": 0}}) == [
        "the Contents button in the article header did not open the table of contents "
        "(dialog open: False, links in it: 0)"
    ]


def test_toc_pages_include_the_root() -> None:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    assert PAGES[0] == toc["root"]
