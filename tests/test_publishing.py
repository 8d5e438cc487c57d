"""Publishing: workflows, releases, licences, citation, the website's footer and zip.

- the workflows in ``.github/workflows/`` run the README's commands (``bash .ci/run``,
  which runs ``make test``; ``make book``), deploy the folder ``make book`` writes with
  the official Pages actions, and publish releases with trusted publishing (no secret);
- the version is set once (``flowcourse/__init__.py``) and everything that names it
  agrees (``scripts/release_check.py``, which ``make release-check`` runs, and whose
  checks must be able to fail); the wheel, built from the sdist, holds the checkpoints
  and exercises, and installs and imports in a fresh virtual environment, offline;
- ``CITATION.cff`` is valid against the Citation File Format 1.2.0 schema and agrees
  with the package and ``_config.yml``; the licences are where the README and the
  footer say;
- ``book/_ext/notebooks_zip.py`` puts every student notebook into one zip and links it
  from the footer of every page, and the build fails on a footer with another version.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import jsonschema
import pytest
import tomllib
import yaml

import flowcourse
from tests.helpers import toc_pages

ROOT = Path(__file__).resolve().parent.parent
VERSION = flowcourse.__version__
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPOSITORY_URL = CONFIG["repository"]["url"].rstrip("/")
BASE_URL = CONFIG["html"]["baseurl"]
FOOTER = CONFIG["html"].get("extra_footer", "")
WORKFLOWS = ROOT / ".github" / "workflows"
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
CC_BY_URL = "https://creativecommons.org/licenses/by/4.0/"
# The Citation File Format 1.2.0 schema, as cffconvert 2.0.0 ships it
# (cffconvert/schemas/1.2.0/schema.json of cffconvert-2.0.0-py3-none-any.whl on PyPI).
CFF_SCHEMA = ROOT / "tests" / "data" / "citation-file-format-1.2.0.schema.json"
CFF_SCHEMA_SHA256 = "0b8d22140da702d766df318dcff3a91af2f39521298dcf36d76315fd99cc169b"


def _load(path: Path, name: str):
    """Import a script that is not in a package, by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


release_check = _load(ROOT / "scripts" / "release_check.py", "_flowcourse_release_check")
notebooks_zip = _load(ROOT / "book" / "_ext" / "notebooks_zip.py", "_flowcourse_notebooks_zip")


# --- Workflows ----------------------------------------------------------------------------


def workflow(name: str) -> dict:
    path = WORKFLOWS / name
    assert path.is_file(), f"expected {path.relative_to(ROOT)}"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def triggers(parsed: dict) -> dict:
    """The ``on:`` mapping (YAML 1.1 reads the key ``on`` as ``True``)."""
    on = parsed.get("on", parsed.get(True))
    assert isinstance(on, dict), f"expected an on: mapping, got {on!r}"
    return {event: (value or {}) for event, value in on.items()}


def steps(parsed: dict, job: str) -> list[dict]:
    return parsed["jobs"][job]["steps"]


def action(step: dict) -> str:
    """``owner/name`` of a step's action, or ``""`` for a ``run`` step."""
    return step.get("uses", "").split("@")[0]


def runs(parsed: dict, job: str) -> list[str]:
    """The commands of a job's ``run`` steps, one per line."""
    return [
        line.strip()
        for step in steps(parsed, job)
        for line in step.get("run", "").splitlines()
        if line.strip()
    ]


def make_recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target."""
    lines = MAKEFILE.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def book_output_folder() -> str:
    """The folder ``make book`` writes: jupyter-book builds ``<path>/_build/html``."""
    (build,) = [line for line in make_recipe("book") if "jupyter-book build" in line]
    path = build.split("jupyter-book build", 1)[1].split()[0]
    folder = os.path.normpath(os.path.join(path, "_build", "html"))
    assert any(f"{folder}/index.html" in line for line in make_recipe("book")), (
        f"expected make book to print the path of {folder}/index.html"
    )
    return folder


def test_workflows_run_on_the_documented_events() -> None:
    ci, book, release = workflow("ci.yml"), workflow("book.yml"), workflow("release.yml")
    assert {"push", "pull_request"} <= set(triggers(ci))
    assert not triggers(ci)["push"].get("branches"), "CI must run on every push"
    book_push = triggers(book)["push"]
    assert book_push["branches"] == [CONFIG["repository"]["branch"]]
    assert book_push["tags"] == ["v*"]
    assert set(triggers(release)) == {"push"}
    assert triggers(release)["push"] == {"tags": ["v*"]}


def test_ci_runs_the_script_of_the_ci_machine_on_python_311_with_the_pip_cache() -> None:
    ci = workflow("ci.yml")
    (job,) = ci["jobs"]
    assert ci["jobs"][job]["runs-on"] == "ubuntu-latest"
    assert "bash .ci/run" in runs(ci, job)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in README and "make book" in README


@pytest.mark.parametrize("name", ["ci.yml", "book.yml", "release.yml"])
def test_workflows_use_python_311_and_pinned_actions(name: str) -> None:
    parsed = workflow(name)
    setups = [
        step
        for job in parsed["jobs"]
        for step in steps(parsed, job)
        if action(step) == "actions/setup-python"
    ]
    assert setups, f"expected {name} to set up Python"
    for step in setups:
        # A string: YAML reads an unquoted 3.10 as 3.1.
        assert step["with"]["python-version"] == "3.11"
        if name != "release.yml":  # no cache in the publishing workflow
            assert step["with"]["cache"] == "pip"
            assert step["with"]["cache-dependency-path"] == "requirements-dev.txt"
    for job in parsed["jobs"]:
        for step in steps(parsed, job):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[\w./-]+", step["uses"]), step["uses"]


def test_book_workflow_builds_with_make_book_and_uploads_its_folder() -> None:
    book = workflow("book.yml")
    build = steps(book, "build")
    position = {action(step) or step.get("run", "").strip(): i for i, step in enumerate(build)}
    assert "make book" in position, "expected the build job to run make book"
    (upload,) = [step for step in build if action(step) == "actions/upload-pages-artifact"]
    folder = book_output_folder()
    assert folder == "_build/html"
    assert f"into {folder}" in README, "expected the README to say where make book writes"
    assert upload["with"]["path"] == folder
    assert position["make book"] < position["actions/upload-pages-artifact"]
    assert "actions/configure-pages" in position


def test_book_workflow_deploys_with_the_official_pages_actions() -> None:
    book = workflow("book.yml")
    deploy = book["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert [action(step) for step in deploy["steps"]] == ["actions/deploy-pages"]
    used = {action(step) for job in book["jobs"] for step in steps(book, job)} - {""}
    assert all(name.startswith("actions/") for name in used), used


def test_release_workflow_builds_checks_and_publishes_with_trusted_publishing() -> None:
    text = (WORKFLOWS / "release.yml").read_text(encoding="utf-8")
    release = workflow("release.yml")
    commands = runs(release, "build")
    assert any(command.startswith("python -m build") for command in commands)
    (check,) = [command for command in commands if "scripts/release_check.py" in command]
    assert "--tag" in check and "GITHUB_REF_NAME" in check and "--dist dist" in check
    assert "actions/upload-artifact" in [action(step) for step in steps(release, "build")]

    publish = release["jobs"]["publish"]
    assert publish["needs"] == "build"
    assert publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    (step,) = [step for step in publish["steps"] if action(step) == "pypa/gh-action-pypi-publish"]
    assert step["uses"] == "pypa/gh-action-pypi-publish@release/v1"
    assert not {"password", "user", "repository-url"} & set(step.get("with") or {})
    assert "secrets." not in text, "trusted publishing needs no stored secret"


def test_site_address_is_set_once_and_is_the_pages_address() -> None:
    owner, repository = REPOSITORY_URL.removeprefix("https://github.com/").split("/")
    assert BASE_URL == f"https://{owner.lower()}.github.io/{repository}/"
    for path in WORKFLOWS.glob("*.yml"):  # comments aside
        assert "github.io" not in json.dumps(workflow(path.name)), f"{path.name} repeats it"


# --- One version, and a release check that can fail ----------------------------------------


def test_version_is_set_once() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]
    assert release_check.read_version(ROOT) == VERSION
    assert release_check.pyproject_problems(ROOT, VERSION) == []


def test_make_release_check_runs_the_script() -> None:
    assert "release-check" in re.search(r"^\.PHONY:(.*)$", MAKEFILE, re.M)[1].split()
    assert make_recipe("release-check") == ["$(BIN)/python scripts/release_check.py"]


def test_repository_names_this_release_everywhere() -> None:
    assert release_check.repository_problems(ROOT, VERSION) == []
    cells = release_check.install_cells(ROOT)
    notebooks = sorted((ROOT / "book").glob("*.ipynb"))
    assert notebooks and set(notebooks) <= set(cells), "every notebook's install cell is read"
    assert all(len(codes) == 1 for codes in cells.values())


FAKE_FILES = [
    "pyproject.toml",
    "CHANGELOG.md",
    "CITATION.cff",
    "_config.yml",
    "README.md",
    "CONTRIBUTING.md",
    "book/nice.md",
    "book/nice.ipynb",
]


def _replace(old: str, new: str):
    def mutate(text: str) -> str:
        assert old in text, f"expected {old!r} in the file"
        return text.replace(old, new)

    return mutate


MUTATIONS = {
    "hard-coded version": (
        "pyproject.toml",
        _replace('name = "flowcourse"\n', f'name = "flowcourse"\nversion = "{VERSION}"\n'),
        "pyproject.toml sets version",
    ),
    "changelog without the version": (
        "CHANGELOG.md",
        _replace(f"## [{VERSION}]", "## [0.0.1]"),
        f"CHANGELOG.md has no section '## [{VERSION}]",
    ),
    "changelog without a date": (
        "CHANGELOG.md",
        lambda text: re.sub(
            rf"^## \[{re.escape(VERSION)}\].*$", f"## [{VERSION}]", text, flags=re.M
        ),
        "needs its date",
    ),
    "source pinned to another tag": (
        "book/nice.md",
        _replace(f"@v{VERSION}", "@v0.0.1"),
        "book/nice.md: its install cell installs 0.0.1",
    ),
    "notebook pinned to another tag": (
        "book/nice.ipynb",
        _replace(f"@v{VERSION}", "@v0.0.1"),
        "book/nice.ipynb: its install cell installs 0.0.1",
    ),
    "notebook without install cell": (
        "book/nice.ipynb",
        _replace('"colab-install"', '"another-tag"'),
        "book/nice.ipynb: expected one code cell tagged colab-install, got 0",
    ),
    "another CHAPTER_RELEASE": (
        "book/nice.md",
        _replace(f'CHAPTER_RELEASE = "{VERSION}"', 'CHAPTER_RELEASE = "0.0.1"'),
        "book/nice.md: CHAPTER_RELEASE is ['0.0.1']",
    ),
    "citation of another version": (
        "CITATION.cff",
        _replace(f'version: "{VERSION}"', 'version: "0.0.1"'),
        f"CITATION.cff: expected version: '{VERSION}'",
    ),
    "footer of another version": (
        "_config.yml",
        _replace(f"flowcourse v{VERSION}", "flowcourse v0.0.1"),
        "_config.yml: the footer names ['0.0.1']",
    ),
    "BibTeX of another version": (
        "README.md",
        _replace(f"version = {{{VERSION}}}", "version = {0.0.1}"),
        "README.md: the BibTeX entry cites version 0.0.1",
    ),
}


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    for name in FAKE_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path


def test_the_copied_files_pass(fake_root: Path) -> None:
    assert release_check.repository_problems(fake_root, VERSION) == []


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_release_check_names_what_disagrees(fake_root: Path, mutation: str) -> None:
    name, mutate, expected = MUTATIONS[mutation]
    path = fake_root / name
    path.write_text(mutate(path.read_text(encoding="utf-8")), encoding="utf-8")
    (problem,) = release_check.repository_problems(fake_root, VERSION)
    assert expected in problem


def test_install_cells_are_read_in_both_myst_option_forms_and_both_pin_forms() -> None:
    text = textwrap.dedent(
        """\
        ```{code-cell} ipython3
        ---
        tags: [colab-install]
        ---
        %pip install -q "flowcourse==1.2.3"
        ```

        ````{code-cell} ipython3
        :tags: [remove-cell, colab-install]

        %pip install -q "flowcourse @ git+https://github.com/o/r@v1.2.4"
        ```
        not the end
        ````

        ```{code-cell} ipython3
        print("flowcourse==9.9.9")
        ```
        """
    )
    cells = release_check._myst_code_cells(text)
    assert [tags for tags, _ in cells] == [["colab-install"], ["remove-cell", "colab-install"], []]
    assert [release_check._pins(code) for _, code in cells] == [["1.2.3"], ["1.2.4"], ["9.9.9"]]
    assert "not the end" in cells[1][1]


def test_tag_must_be_v_and_the_version() -> None:
    assert release_check.tag_problems(f"v{VERSION}", VERSION) == []
    assert release_check.tag_problems(VERSION, VERSION) != []
    assert release_check.tag_problems("v0.0.1", VERSION) != []


# --- The distributions ----------------------------------------------------------------------


# Under `make test` (pytest-xdist, --dist loadgroup) one worker builds them once.
IN_ONE_WORKER = pytest.mark.xdist_group("distributions")


@pytest.fixture(scope="module")
def distributions(tmp_path_factory):
    """The sdist and the wheel built from it, as ``make release-check`` builds them."""
    return release_check.build_distributions(ROOT, tmp_path_factory.mktemp("dist"))


@IN_ONE_WORKER
def test_wheel_and_sdist_hold_the_package_checkpoints_and_exercises(distributions) -> None:
    assert release_check.distribution_problems(distributions, ROOT, VERSION) == []
    with zipfile.ZipFile(distributions.wheel) as archive:
        names = set(archive.namelist())
    package = ROOT / "flowcourse"
    for pattern in ("checkpoints/*.pt", "checkpoints/*.json", "exercises/*.py"):
        files = sorted(package.glob(pattern))
        assert files, f"expected flowcourse/{pattern} in the repository"
        for path in files:
            assert path.relative_to(ROOT).as_posix() in names, f"the wheel lacks {path.name}"


@IN_ONE_WORKER
def test_release_check_names_a_missing_checkpoint(distributions, tmp_path: Path) -> None:
    broken = tmp_path / distributions.wheel.name
    with (
        zipfile.ZipFile(distributions.wheel) as source,
        zipfile.ZipFile(broken, "w") as target,
    ):
        for item in source.infolist():
            if item.filename != "flowcourse/checkpoints/nice_moons.pt":
                target.writestr(item, source.read(item))
    problems = release_check.distribution_problems(
        release_check.Distributions(distributions.sdist, broken), ROOT, VERSION
    )
    assert len(problems) == 1 and "flowcourse/checkpoints/nice_moons.pt" in problems[0]


@IN_ONE_WORKER
def test_release_check_command_checks_built_distributions_and_the_tag(
    distributions, capsys
) -> None:
    folder = str(distributions.wheel.parent)
    assert release_check.main(["--dist", folder, "--tag", f"v{VERSION}"]) == 0
    assert release_check.main(["--dist", folder, "--tag", "v0.0.1"]) == 1
    assert "the tag 'v0.0.1' is not v" in capsys.readouterr().out


IMPORT_CHECK = """
import importlib.metadata, json, sys, warnings
from importlib.resources import as_file, files

import torch

import flowcourse
from flowcourse import io
from flowcourse.exercises import check

with as_file(files("flowcourse") / "checkpoints" / "nice_moons.pt") as path:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was written by flowcourse")
        flow = io.load(path)
ablation = json.loads((files("flowcourse") / "checkpoints" / "glow_ablation.json").read_text())
print(json.dumps({
    "file": flowcourse.__file__,
    "version": flowcourse.__version__,
    "metadata_version": importlib.metadata.version("flowcourse"),
    "log_prob_finite": bool(torch.isfinite(flow.log_prob(torch.zeros(3, 2))).all()),
    "ablation": bool(ablation),
    "editable_finder": any("__editable__" in name for name in sys.modules),
}))
"""


@IN_ONE_WORKER
def test_wheel_installs_and_imports_in_a_fresh_virtual_environment(
    distributions, tmp_path: Path
) -> None:
    """A fresh venv, the wheel installed into it (offline, no dependencies); torch and
    the other dependencies come from the development venv through a path entry, which
    does not run that venv's ``.pth`` files, so its editable flowcourse stays out."""
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
        + ["--no-deps", "--no-index", "--disable-pip-version-check", str(distributions.wheel)],
        check=True,
        capture_output=True,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # After the install, so that pip does not see the development venv's flowcourse.
    (Path(purelib) / "_development_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [str(python), "-I", "-c", IMPORT_CHECK],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).is_relative_to(venv), report["file"]
    assert report["version"] == report["metadata_version"] == VERSION
    assert report["log_prob_finite"] and report["ablation"]
    assert not report["editable_finder"]
    command = subprocess.run(
        [str(venv / "bin" / "flowcourse"), "--help"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert command.returncode == 0 and "flowcourse grade" in command.stdout


# --- Citation ------------------------------------------------------------------------------


class _CffLoader(yaml.SafeLoader):
    """YAML as the Citation File Format reads it: dates stay strings."""


_CffLoader.yaml_implicit_resolvers = {
    first: [entry for entry in resolvers if entry[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def cff_errors(citation: dict) -> list[str]:
    schema = json.loads(CFF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(citation)
    ]


def read_citation() -> dict:
    return yaml.load((ROOT / "CITATION.cff").read_text(encoding="utf-8"), Loader=_CffLoader)


def test_the_schema_is_the_citation_file_format_1_2_0() -> None:
    assert hashlib.sha256(CFF_SCHEMA.read_bytes()).hexdigest() == CFF_SCHEMA_SHA256
    schema = json.loads(CFF_SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"] == "https://citation-file-format.github.io/1.2.0/schema.json"


def test_citation_cff_is_valid() -> None:
    citation = read_citation()
    assert citation["cff-version"] == "1.2.0"
    assert cff_errors(citation) == []


def test_citation_cff_agrees_with_the_package_and_the_book() -> None:
    citation = read_citation()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert citation["version"] == VERSION
    assert citation["license"] == pyproject["project"]["license"] == "MIT"
    assert citation["repository-code"] == REPOSITORY_URL
    assert citation["url"] == BASE_URL
    assert citation["type"] == "software"
    assert citation["authors"] == [{"name": CONFIG["author"]}]


@pytest.mark.parametrize(
    "change",
    [
        {"title": None},
        {"license": "MIT-ish"},
        {"authors": "The flowcourse authors"},
        {"date-released": "1 December 2026"},
        {"colour": "blue"},
    ],
)
def test_the_schema_rejects_a_broken_citation(change: dict) -> None:
    citation = {**read_citation(), **change}
    citation = {key: value for key, value in citation.items() if value is not None}
    assert cff_errors(citation)


# --- Licences, changelog, footer -------------------------------------------------------------


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"expected a section '## {heading}'"
    return match[1]


def test_licence_files_and_the_readme_name_both_licences() -> None:
    mit = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert mit.startswith("MIT License\n")
    assert "Copyright (c) 2026 The flowcourse authors" in mit
    text = (ROOT / "LICENSE-TEXT.md").read_text(encoding="utf-8")
    assert "Creative Commons Attribution 4.0 International" in text and CC_BY_URL in text
    licences = _section(README, "Licences")
    for needle in ("MIT", "`LICENSE`", "CC BY 4.0", "`LICENSE-TEXT.md`", CC_BY_URL):
        assert needle in licences, f"expected the README's Licences section to name {needle}"
    cite = _section(README, "How to cite")
    assert "CITATION.cff" in cite and f"version = {{{VERSION}}}" in cite


def test_changelog_has_the_releases() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "Keep a Changelog" in text
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[:3] == ["Unreleased", VERSION, "0.1.0"] or headings[:2] == [VERSION, "0.1.0"]
    current = re.search(rf"^## \[{re.escape(VERSION)}\].*?(?=^## \[)", text, re.M | re.S)[0]
    for needle in (
        "Colab",
        "check(",
        "flowcourse grade",
        "Gradescope",
        "hide_solutions",
        "For students",
        "For instructors",
        "flowcourse.notebook.glue",
    ):
        assert needle in current, f"expected the {VERSION} section to mention {needle}"


def test_footer_shows_the_version_the_licences_and_the_zip() -> None:
    assert f"flowcourse v{VERSION}" in FOOTER
    assert release_check.footer_problems(ROOT, VERSION) == []
    assert notebooks_zip.footer_versions(FOOTER) == [VERSION]
    links = re.findall(r'href="([^"]+)"', FOOTER)
    assert f"{REPOSITORY_URL}/blob/main/LICENSE" in links
    assert CC_BY_URL in links
    assert notebooks_zip.ZIP_NAME in links
    assert "MIT" in FOOTER and "CC BY 4.0" in FOOTER
    assert "notebooks_zip" in CONFIG["sphinx"]["local_extensions"]


# --- The zip of every student notebook ------------------------------------------------------


def test_the_zip_holds_every_student_notebook_unchanged(tmp_path: Path) -> None:
    notebooks = [
        (ROOT / f"{page}.ipynb", page) for page in toc_pages() if (ROOT / f"{page}.ipynb").exists()
    ]
    assert len(notebooks) >= 9, "expected the chapters' student notebooks"
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    names = notebooks_zip.write_notebooks_zip(first, notebooks, VERSION, BASE_URL)
    notebooks_zip.write_notebooks_zip(second, notebooks, VERSION, BASE_URL)
    assert first.read_bytes() == second.read_bytes(), "the same notebooks give the same zip"
    folder = f"flowcourse-notebooks-v{VERSION}"
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == [f"{folder}/README.md"] + [f"{folder}/{n}" for n in names]
        for path, _ in notebooks:
            assert archive.read(f"{folder}/{path.name}") == path.read_bytes()
        readme = archive.read(f"{folder}/README.md").decode()
    assert f"flowcourse v{VERSION}" in readme and CC_BY_URL in readme
    assert readme.index("nice.ipynb") < readme.index("realnvp.ipynb") < readme.index("maf.ipynb")


def test_reading_order_follows_the_toctrees() -> None:
    includes = {"intro": ["a", "b"], "a": ["a1"], "b": []}
    found = ["b", "a1", "a", "intro", "orphan"]
    assert notebooks_zip.reading_order("intro", includes, found) == [
        "intro",
        "a",
        "a1",
        "b",
        "orphan",
    ]


TINY_CONF = """
import sys
sys.path.insert(0, {ext!r})
project = "tiny"
extensions = ["notebooks_zip"]
html_theme = "sphinx_book_theme"
html_theme_options = {{"extra_footer": {footer!r}}}
html_baseurl = {base!r}
"""


def sphinx_build(tmp_path: Path, footer: str) -> subprocess.CompletedProcess:
    """Build a two-chapter site with the extension and the book's theme and footer."""
    source, out = tmp_path / "source", tmp_path / "html"
    (source / "book").mkdir(parents=True)
    (source / "conf.py").write_text(
        TINY_CONF.format(ext=str(ROOT / "book" / "_ext"), footer=footer, base=BASE_URL)
    )
    (source / "index.rst").write_text("Home\n====\n\n.. toctree::\n\n   book/two\n   book/one\n")
    for name in ("one", "two"):
        title = f"Chapter {name}"
        (source / "book" / f"{name}.rst").write_text(f"{title}\n{'=' * len(title)}\n\nText.\n")
        (source / "book" / f"{name}.ipynb").write_text(json.dumps({"name": name}))
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-q", str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_build_writes_the_zip_and_links_it_from_every_page(tmp_path: Path) -> None:
    result = sphinx_build(tmp_path, FOOTER)
    assert result.returncode == 0, result.stderr[-3000:]
    site = tmp_path / "html"
    with zipfile.ZipFile(site / notebooks_zip.ZIP_NAME) as archive:
        names = [Path(name).name for name in archive.namelist()]
    assert names == ["README.md", "two.ipynb", "one.ipynb"]  # reading order
    for page, link in [
        ("index.html", "flowcourse-notebooks.zip"),
        ("book/one.html", "../flowcourse-notebooks.zip"),
    ]:
        html = (site / page).read_text(encoding="utf-8")
        assert f'href="{link}"' in html, f"expected {page} to link the zip as {link}"
        assert f"flowcourse v{VERSION}" in html and CC_BY_URL in html


def test_the_build_fails_on_a_footer_with_another_version(tmp_path: Path) -> None:
    result = sphinx_build(tmp_path, FOOTER.replace(f"v{VERSION}", "v0.0.1"))
    assert result.returncode != 0
    assert "names flowcourse v0.0.1" in result.stderr
